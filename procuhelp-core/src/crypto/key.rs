//! Keys and errors.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Nonce length of AES-256-GCM as used here (96 bits).
pub const NONCE_LEN: usize = 12;
/// Tag length (128 bits).
pub const TAG_LEN: usize = 16;

/// Why encryption or decryption failed. Deliberately coarse for decryption: which check
/// failed is not an oracle we hand out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The ciphertext is not one of ours: too short, unknown format byte.
    #[error("malformed ciphertext")]
    Malformed,
    /// Authentication failed: wrong key, wrong context (row/column/tenant), or tampering.
    #[error("ciphertext could not be authenticated (wrong key, wrong context or tampered)")]
    Unauthentic,
    /// The ciphertext names a key version that is unknown or has been retired.
    #[error("key version {0} is not available for decryption")]
    UnknownKeyVersion(u32),
    /// The key has reached its message limit and must be rotated.
    #[error("data key version {0} reached its encryption limit; rotate it")]
    KeyExhausted(u32),
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Rng,
    /// A key had the wrong length.
    #[error("key material has the wrong length")]
    KeyLength,
}

/// A 256-bit data key. Zeroized on drop; `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh random key from the OS RNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| CryptoError::Rng)?;
        Ok(Self(key))
    }

    /// A key from 32 bytes (e.g. unwrapped by the KMS). The source should be zeroized by
    /// the caller.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(key))
    }

    /// The key bytes, for a cipher or a wrapping call.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A fresh random nonce from the thread-local CSPRNG (ChaCha, seeded and periodically
/// reseeded from the OS): a system call per nonce would cost more than sealing 64 bytes.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    use rand::Rng as _;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill(&mut nonce);
    nonce
}
