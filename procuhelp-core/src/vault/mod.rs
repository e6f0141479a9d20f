//! Secrets and key-encryption keys behind one small trait.
//!
//! [`SecretProvider`] stores named, versioned secrets (SSO client secrets, SCIM tokens,
//! the server's own credentials) and wraps/unwraps data keys under a key-encryption key
//! (KEK) that never leaves it. Implementations:
//! * [`FileVault`] — the embedded default: one file, every value AES-256-GCM-sealed under a
//!   master key read from a 0600 key file (generated on first run; looser permissions are
//!   refused).
//! * `OpenBao` (feature `openbao`) — KV v2 for secrets, Transit for wrapping (the KEK
//!   never leaves the vault).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use procuhelp_core::vault::{FileVault, SecretName, SecretProvider};
//! use procuhelp_core::{SecretBytes, crypto::DataKey};
//!
//! let dir = std::env::temp_dir().join(format!("vault-doc-{}", std::process::id()));
//! let vault = FileVault::open_or_create(&dir)?;
//! let name = SecretName::new("sso/entra/client-secret")?;
//! let v1 = vault.put(&name, SecretBytes::new(b"s3cret".to_vec())).await?;
//! assert_eq!(vault.get(&name).await?.version, v1);
//!
//! let dek = DataKey::generate()?;
//! let wrapped = vault.wrap_key("tenant-data", &dek).await?;
//! assert_eq!(vault.unwrap_key("tenant-data", &wrapped).await?.expose(), dek.expose());
//! # std::fs::remove_dir_all(&dir).ok(); Ok(()) }
//! ```

mod file;
#[cfg(feature = "openbao")]
mod openbao;

use std::fmt;

use async_trait::async_trait;

use crate::SecretBytes;
use crate::crypto::DataKey;

pub use file::FileVault;
#[cfg(feature = "openbao")]
pub use openbao::{OpenBao, OpenBaoAuth};

/// Why a vault operation failed. Never carries secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// No such secret (or version, or key).
    #[error("{0} not found in the vault")]
    NotFound(String),
    /// The vault is sealed, unreachable or answered with a server error.
    #[error("vault unavailable: {0}")]
    Unavailable(String),
    /// The vault refused: bad credentials or policy.
    #[error("vault denied access: {0}")]
    Denied(String),
    /// A name or argument is not acceptable.
    #[error("invalid vault request: {0}")]
    Invalid(&'static str),
    /// Stored data failed authentication or does not parse: tampering or a wrong master key.
    #[error("vault data is corrupt or sealed under another master key: {0}")]
    Corrupt(String),
    /// The master key file is missing, unreadable or too permissive.
    #[error("master key file {path}: {problem}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// Local I/O.
    #[error("vault I/O ({context}): {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A validated secret name: 1–200 characters of `a-z 0-9 / _ - .`, no empty segment, no
/// `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, VaultError> {
        let ok_chars = name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'_' | b'-' | b'.')
        });
        if name.is_empty()
            || name.len() > 200
            || !ok_chars
            || name
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(VaultError::Invalid(
                "secret names are 1-200 chars of a-z 0-9 / _ - . with no empty, . or .. segment",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret value with its version.
#[derive(Debug)]
pub struct VersionedSecret {
    /// Version (1, 2, …).
    pub version: u32,
    /// The value.
    pub value: SecretBytes,
}

/// A data key wrapped under a KEK version. Not secret: only the KEK opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The KEK version that wrapped it.
    pub kek_version: u32,
    /// The provider's opaque ciphertext.
    pub ciphertext: Vec<u8>,
}

/// Named, versioned secrets and data-key wrapping.
#[async_trait]
pub trait SecretProvider: Send + Sync + fmt::Debug {
    /// The latest version of a secret.
    async fn get(&self, name: &SecretName) -> Result<VersionedSecret, VaultError>;
    /// A given version of a secret.
    async fn get_version(
        &self,
        name: &SecretName,
        version: u32,
    ) -> Result<VersionedSecret, VaultError>;
    /// Stores a new version; returns its number.
    async fn put(&self, name: &SecretName, value: SecretBytes) -> Result<u32, VaultError>;
    /// Names under `prefix` (e.g. `"sso/"`; `""` for all).
    async fn list(&self, prefix: &str) -> Result<Vec<SecretName>, VaultError>;
    /// Deletes every version of a secret.
    async fn delete(&self, name: &SecretName) -> Result<(), VaultError>;

    /// Wraps `key` under the latest version of KEK `kek` (created on first use).
    async fn wrap_key(&self, kek: &str, key: &DataKey) -> Result<WrappedKey, VaultError>;
    /// Unwraps a key wrapped by [`wrap_key`](Self::wrap_key).
    async fn unwrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError>;
    /// Creates a new KEK version; returns it. Old versions keep unwrapping.
    async fn rotate_kek(&self, kek: &str) -> Result<u32, VaultError>;
    /// Creates KEK `kek` if it does not exist (idempotent).
    async fn create_kek(&self, kek: &str) -> Result<(), VaultError>;
    /// Destroys every version of KEK `kek`: every key it wrapped — in the database and in
    /// every backup — can no longer be unwrapped (crypto-shredding).
    async fn destroy_kek(&self, kek: &str) -> Result<(), VaultError>;
    /// Re-wraps under the latest KEK version (without the data key leaving the provider
    /// where the backend supports it).
    async fn rewrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<WrappedKey, VaultError>;
}

/// Validates a KEK name: 1–64 chars of `a-z 0-9 _ -`.
pub(crate) fn check_kek_name(kek: &str) -> Result<(), VaultError> {
    if kek.is_empty()
        || kek.len() > 64
        || !kek
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(VaultError::Invalid(
            "KEK names are 1-64 chars of a-z 0-9 _ -",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["a", "sso/entra/client-secret", "scim/org-1.token"] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "A",
            "a b",
            "a\0",
            &"x".repeat(201),
        ] {
            assert!(SecretName::new(bad).is_err(), "{bad:?}");
        }
    }
}
