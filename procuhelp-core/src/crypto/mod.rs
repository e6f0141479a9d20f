//! AES-256-GCM envelope encryption.
//!
//! * [`DataKey`] — a 256-bit key, zeroized on drop, never printed.
//! * [`AeadProvider`] — the cipher seam (in the spirit of rustls' `CryptoProvider`):
//!   [`RustCryptoAead`] (portable default, crate `aes-gcm`) and, with feature `aws-lc`,
//!   [`AwsLcAead`] (AES-NI/VAES assembly; the fast bulk path). Both run the Wycheproof
//!   vectors and are cross-checked against each other.
//! * [`EnvelopeKey`] — the versioned ciphertext format: key version and a random 96-bit
//!   nonce in a header, and associated data binding every ciphertext to where it belongs
//!   ([`Aad`]: tenant, table, column, row).
//!
//! ```
//! use procuhelp_core::crypto::{Aad, DataKey, EnvelopeKey, RustCryptoAead, key_version};
//! use procuhelp_core::OrgId;
//!
//! let key = EnvelopeKey::new(&RustCryptoAead, &DataKey::generate()?, 7)?;
//! let org = OrgId::new();
//! let here = Aad::field(org, "suppliers", "iban", "row-1");
//! let sealed = key.seal(&here, b"DE89 3704 0044 0532 0130 00")?;
//! assert_eq!(key_version(&sealed)?, 7);
//! assert_eq!(key.open(&here, &sealed)?, b"DE89 3704 0044 0532 0130 00");
//! // Moved to another row, the ciphertext no longer opens.
//! let elsewhere = Aad::field(org, "suppliers", "iban", "row-2");
//! assert!(key.open(&elsewhere, &sealed).is_err());
//! # Ok::<(), procuhelp_core::crypto::CryptoError>(())
//! ```

mod aead;
mod envelope;
mod key;

#[cfg(feature = "aws-lc")]
pub use aead::AwsLcAead;
pub use aead::{AeadProvider, PreparedKey, RustCryptoAead};
pub use envelope::{Aad, EnvelopeKey, FORMAT_V1, HEADER_LEN, key_version};
pub use key::{CryptoError, DataKey, NONCE_LEN, TAG_LEN};

/// Every provider compiled in, for tests that must hold for all of them.
pub fn providers() -> Vec<&'static dyn AeadProvider> {
    #[allow(unused_mut)]
    let mut all: Vec<&'static dyn AeadProvider> = vec![&RustCryptoAead];
    #[cfg(feature = "aws-lc")]
    all.push(&AwsLcAead);
    all
}

/// The default provider: aws-lc-rs when compiled in, else RustCrypto.
pub fn default_provider() -> &'static dyn AeadProvider {
    #[cfg(feature = "aws-lc")]
    {
        &AwsLcAead
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        &RustCryptoAead
    }
}
