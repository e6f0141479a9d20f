//! The AES-256-GCM seam and its providers.

use std::fmt;

use super::key::{CryptoError, DataKey, NONCE_LEN, TAG_LEN};

/// One AES-256-GCM implementation. Small and object-safe so a provider can be chosen at
/// start-up; every provider must pass the Wycheproof vectors.
pub trait AeadProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and benches.
    fn name(&self) -> &'static str;

    /// Encrypts `buf` in place and appends the 16-byte tag.
    fn seal_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError>;

    /// Verifies and decrypts `buf` (ciphertext ‖ tag) in place, truncating the tag. On
    /// failure the buffer's content is unspecified and must not be used (the caller
    /// discards it); no plaintext is released before the tag is verified.
    fn open_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError>;
}

/// AES-256-GCM from RustCrypto's `aes-gcm` (portable; AES-NI and CLMUL detected at run
/// time).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoAead;

impl AeadProvider for RustCryptoAead {
    fn name(&self) -> &'static str {
        "rustcrypto-aes-gcm"
    }

    fn seal_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new(key.expose().into());
        let tag = cipher
            .encrypt_in_place_detached(nonce.into(), aad, buf)
            .map_err(|_| CryptoError::Malformed)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    fn open_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let split = buf.len() - TAG_LEN;
        let tag = aes_gcm::Tag::clone_from_slice(&buf[split..]);
        buf.truncate(split);
        let cipher = aes_gcm::Aes256Gcm::new(key.expose().into());
        cipher
            .decrypt_in_place_detached(nonce.into(), aad, buf, &tag)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// AES-256-GCM from aws-lc-rs (assembly, VAES where available). Feature `aws-lc`.
#[cfg(feature = "aws-lc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLcAead;

#[cfg(feature = "aws-lc")]
impl AwsLcAead {
    fn key(key: &DataKey) -> Result<aws_lc_rs::aead::LessSafeKey, CryptoError> {
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key.expose())
            .map_err(|_| CryptoError::KeyLength)?;
        Ok(aws_lc_rs::aead::LessSafeKey::new(unbound))
    }
}

#[cfg(feature = "aws-lc")]
impl AeadProvider for AwsLcAead {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn seal_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        Self::key(key)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Malformed)
    }

    fn open_in_place(
        &self,
        key: &DataKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let plain_len = Self::key(key)?
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Unauthentic)?
            .len();
        buf.truncate(plain_len);
        Ok(())
    }
}
