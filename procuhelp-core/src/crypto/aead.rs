//! The AES-256-GCM seam and its providers.

use std::fmt;

use super::key::{CryptoError, DataKey, NONCE_LEN, TAG_LEN};

/// One AES-256-GCM implementation. Small and object-safe so a provider can be chosen at
/// start-up; every provider must pass the Wycheproof vectors.
pub trait AeadProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and benches.
    fn name(&self) -> &'static str;

    /// Expands `key` once (the key schedule), for many operations.
    fn prepare(&self, key: &DataKey) -> Result<Box<dyn PreparedKey>, CryptoError>;
}

/// A key ready for use with one provider. Implementations zeroize their key schedule on
/// drop (aws-lc cleanses its context; `aes-gcm` is built with its `zeroize` feature).
pub trait PreparedKey: Send + Sync {
    /// Encrypts `in_out` in place and returns the 16-byte tag.
    fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError>;

    /// Verifies and decrypts `buf` (ciphertext ‖ tag) in place, truncating the tag. On
    /// failure the buffer's content is unspecified and must be discarded; no plaintext is
    /// released before the tag is verified.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError>;

    /// Encrypts `buf` in place and appends the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let tag = self.seal_detached(nonce, aad, buf)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }
}

impl fmt::Debug for dyn PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedKey([redacted])")
    }
}

/// AES-256-GCM from RustCrypto's `aes-gcm` (portable; AES-NI and CLMUL detected at run
/// time).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoAead;

struct RustCryptoKey(aes_gcm::Aes256Gcm);

impl AeadProvider for RustCryptoAead {
    fn name(&self) -> &'static str {
        "rustcrypto-aes-gcm"
    }

    fn prepare(&self, key: &DataKey) -> Result<Box<dyn PreparedKey>, CryptoError> {
        use aes_gcm::aead::KeyInit;
        Ok(Box::new(RustCryptoKey(aes_gcm::Aes256Gcm::new(
            key.expose().into(),
        ))))
    }
}

impl PreparedKey for RustCryptoKey {
    fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        use aes_gcm::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(nonce.into(), aad, in_out)
            .map_err(|_| CryptoError::Malformed)?;
        Ok(tag.into())
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aes_gcm::aead::AeadInPlace;
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let split = buf.len() - TAG_LEN;
        let tag = aes_gcm::Tag::clone_from_slice(&buf[split..]);
        buf.truncate(split);
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, buf, &tag)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// AES-256-GCM from aws-lc-rs (assembly, VAES where available). Feature `aws-lc`.
#[cfg(feature = "aws-lc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLcAead;

#[cfg(feature = "aws-lc")]
struct AwsLcKey(aws_lc_rs::aead::LessSafeKey);

#[cfg(feature = "aws-lc")]
impl AeadProvider for AwsLcAead {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn prepare(&self, key: &DataKey) -> Result<Box<dyn PreparedKey>, CryptoError> {
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key.expose())
            .map_err(|_| CryptoError::KeyLength)?;
        Ok(Box::new(AwsLcKey(aws_lc_rs::aead::LessSafeKey::new(
            unbound,
        ))))
    }
}

#[cfg(feature = "aws-lc")]
impl PreparedKey for AwsLcKey {
    fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| CryptoError::Malformed)?;
        tag.as_ref().try_into().map_err(|_| CryptoError::Malformed)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let plain_len = self
            .0
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Unauthentic)?
            .len();
        buf.truncate(plain_len);
        Ok(())
    }
}
