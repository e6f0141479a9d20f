//! Signed checkpoints: "the chain of `org` had `seq` events ending in `head` at `at`",
//! signed with Ed25519.
//!
//! ```text
//! signed = field("procuhelp.audit.checkpoint.v1") ‖ field(org: 16 bytes)
//!        ‖ field(seq: u64 BE) ‖ field(head: 32 bytes) ‖ field(at: i64 BE µs since epoch)
//! ```
//! (`field` as in the chain encoding: `0x01 ‖ len: u32 BE ‖ bytes`.)

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use procuhelp_core::OrgId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::chain::{Hash, unix_micros};
use crate::{AuditError, Result};

const DOMAIN: &[u8] = b"procuhelp.audit.checkpoint.v1";
/// The vault secret holding the PKCS#8 Ed25519 signing key.
pub const SIGNING_KEY_NAME: &str = "audit-signing-key";

/// An Ed25519 public key (32 bytes).
pub type PublicKey = [u8; 32];

/// A signed statement of a chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain.
    pub org: OrgId,
    /// The number of events (the head's sequence number).
    pub seq: u64,
    /// The hash of event `seq`.
    #[serde(with = "hex_array")]
    pub head: Hash,
    /// When it was signed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The signer's public key.
    #[serde(with = "hex_array")]
    pub public_key: PublicKey,
    /// Ed25519 signature over [`signed_bytes`](Self::signed_bytes).
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.org, self.seq, &self.head, self.at)
    }

    /// Whether the signature is valid for `public_key`.
    pub fn signature_is_valid(&self) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&self.signed_bytes(), &self.signature)
            .is_ok()
    }
}

fn signed_bytes(org: OrgId, seq: u64, head: &Hash, at: OffsetDateTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for part in [
        DOMAIN,
        org.as_uuid().as_bytes(),
        &seq.to_be_bytes(),
        head,
        &unix_micros(at).to_be_bytes(),
    ] {
        out.push(1);
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Signs checkpoints: Ed25519 over [`Checkpoint::signed_bytes`].
///
/// Implementations: [`Ed25519Signer`] (a local key: in its own file apart from the data
/// vault, or — the legacy default — in the vault) and, with the `transit` feature,
/// `TransitSigner` (OpenBao Transit with a non-exportable key: the process can ask for
/// signatures but never holds the key).
#[async_trait::async_trait]
pub trait CheckpointSigner: Send + Sync + std::fmt::Debug {
    /// The Ed25519 signature of `message` under the current key.
    async fn sign(&self, message: &[u8]) -> Result<[u8; 64]>;

    /// The current key's public key (what a fresh checkpoint names).
    fn public_key(&self) -> PublicKey;

    /// Every public key this signer ever signed with (older versions after a rotation),
    /// for publishing. Defaults to the current one.
    async fn public_keys(&self) -> Result<Vec<PublicKey>> {
        Ok(vec![self.public_key()])
    }
}

/// Signs `org`'s head `(seq, head)` at `at` (normalised to UTC microseconds) with
/// `signer`, and checks the signature against the signer's public key before returning:
/// a remote signer that answered with anything else is an error, never a checkpoint.
pub async fn sign_checkpoint(
    signer: &dyn CheckpointSigner,
    org: OrgId,
    seq: u64,
    head: Hash,
    at: OffsetDateTime,
) -> Result<Checkpoint> {
    let at = crate::event::normalise_time(at);
    let signature = signer.sign(&signed_bytes(org, seq, &head, at)).await?;
    let cp = Checkpoint {
        org,
        seq,
        head,
        at,
        public_key: signer.public_key(),
        signature,
    };
    if !cp.signature_is_valid() {
        return Err(AuditError::Signature(
            "the signer's signature does not verify under its public key",
        ));
    }
    Ok(cp)
}

/// A local Ed25519 signing key. The private key never leaves this value (and is not
/// `Debug`).
///
/// Where the key lives decides who can forge checkpoints:
/// * [`open_or_create_file`](Self::open_or_create_file): a PKCS#8 file of its own (mode
///   0600, looser is refused), kept apart from the data vault. Someone holding the
///   vault's files (`vault.key`, `vault.json`, or a backup of them) or the vault's
///   `secrets` interface cannot read it; it can sit on another volume or belong to
///   another user. It does **not** stop someone who runs code as the server's user (they
///   read the file as the server does); against that, use OpenBao Transit.
/// * [`from_vault`](Self::from_vault) (legacy default of `PgAuditSink`): the vault secret
///   [`SIGNING_KEY_NAME`] — whoever holds the runtime's vault can re-sign history.
pub struct Ed25519Signer {
    key: Ed25519KeyPair,
    public_key: PublicKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// A signer from a PKCS#8 (v1 or v2) Ed25519 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| AuditError::Signature("not a PKCS#8 Ed25519 key"))?;
        let public_key = <[u8; 32]>::try_from(key.public_key().as_ref())
            .map_err(|_| AuditError::Signature("Ed25519 public key is not 32 bytes"))?;
        Ok(Self { key, public_key })
    }

    /// A fresh PKCS#8 document for a new signing key.
    pub fn generate_pkcs8() -> Result<Vec<u8>> {
        Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| AuditError::Signature("key generation failed"))
    }

    /// The signer whose PKCS#8 key is the file `path`, created (mode 0600, in a directory
    /// created 0700) on first use. A file readable or writable by group or others is
    /// refused, like the vault's master key.
    pub fn open_or_create_file(path: &std::path::Path) -> Result<Self> {
        crate::key_file::read_or_create(path, Self::generate_pkcs8)
            .and_then(|pkcs8| Self::from_pkcs8(&pkcs8))
    }

    /// The signer stored in the vault under [`SIGNING_KEY_NAME`], created on first use.
    ///
    /// Legacy: the runtime can read this key, so whoever holds its vault can re-sign a
    /// rewritten trail. Prefer [`open_or_create_file`](Self::open_or_create_file) or
    /// OpenBao Transit.
    pub async fn from_vault(vault: &dyn procuhelp_core::vault::SecretProvider) -> Result<Self> {
        use procuhelp_core::vault::{SecretName, VaultError};
        let name = SecretName::new(SIGNING_KEY_NAME)?;
        match vault.get(&name).await {
            Ok(secret) => Self::from_pkcs8(secret.value.expose()),
            Err(VaultError::NotFound(_)) => {
                let pkcs8 = Self::generate_pkcs8()?;
                let signer = Self::from_pkcs8(&pkcs8)?;
                vault
                    .put(&name, procuhelp_core::SecretBytes::new(pkcs8))
                    .await?;
                // Two processes creating the key at once each store a version; read back
                // the latest so everyone signs with the same one.
                let secret = vault.get(&name).await?;
                Self::from_pkcs8(secret.value.expose()).or(Ok(signer))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every public key ever stored under [`SIGNING_KEY_NAME`] (checkpoints signed by older
    /// versions stay valid).
    pub async fn public_keys_in_vault(
        vault: &dyn procuhelp_core::vault::SecretProvider,
    ) -> Result<Vec<PublicKey>> {
        use procuhelp_core::vault::SecretName;
        let name = SecretName::new(SIGNING_KEY_NAME)?;
        let latest = vault.get(&name).await?;
        let mut keys = Vec::new();
        for v in 1..=latest.version {
            if let Ok(secret) = vault.get_version(&name, v).await {
                keys.push(Self::from_pkcs8(secret.value.expose())?.public_key);
            }
        }
        Ok(keys)
    }

    /// Signs `org`'s head `(seq, head)` at `at` at once (a local key needs no I/O).
    pub fn sign_head(&self, org: OrgId, seq: u64, head: Hash, at: OffsetDateTime) -> Checkpoint {
        let at = crate::event::normalise_time(at);
        let sig = self.key.sign(&signed_bytes(org, seq, &head, at));
        let mut signature = [0u8; 64];
        signature.copy_from_slice(sig.as_ref());
        Checkpoint {
            org,
            seq,
            head,
            at,
            public_key: self.public_key,
            signature,
        }
    }
}

#[async_trait::async_trait]
impl CheckpointSigner for Ed25519Signer {
    async fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let sig = self.key.sign(message);
        <[u8; 64]>::try_from(sig.as_ref())
            .map_err(|_| AuditError::Signature("Ed25519 signature is not 64 bytes"))
    }

    fn public_key(&self) -> PublicKey {
        self.public_key
    }
}

/// The legacy signer of a sink without a configured one: the vault key, and every
/// version of it for [`CheckpointSigner::public_keys`].
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub(crate) struct VaultSigner {
    pub(crate) key: Ed25519Signer,
    pub(crate) vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
}

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl CheckpointSigner for VaultSigner {
    async fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        self.key.sign(message).await
    }

    fn public_key(&self) -> PublicKey {
        self.key.public_key
    }

    async fn public_keys(&self) -> Result<Vec<PublicKey>> {
        Ed25519Signer::public_keys_in_vault(self.vault.as_ref()).await
    }
}

/// Parses a public key given as 64 hex digits (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<PublicKey> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim().as_bytes(), &mut out).map_err(|_| AuditError::Invalid {
        field: "public_key",
        reason: "must be 64 hex digits (an Ed25519 public key)",
    })?;
    Ok(out)
}

/// Which checkpoint keys a verification accepts.
///
/// A verifier must pin the deployment's published key(s): a file (or a database) that
/// brings its own keys proves nothing, since whoever rewrote it can re-hash the chain and
/// sign with a fresh key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// Only checkpoints signed by one of these keys count; any other key is
    /// [`ProblemKind::UntrustedKey`](crate::ProblemKind::UntrustedKey), and (for an export)
    /// events after the last such checkpoint are [`ProblemKind::Unsigned`](crate::ProblemKind::Unsigned).
    Pinned(Vec<PublicKey>),
    /// Accept whatever key a checkpoint names. This only checks the file's internal
    /// consistency: a re-hashed, re-signed forgery passes. For tests and diagnostics.
    DangerouslyTrustEmbeddedKeys,
}

impl Trust {
    /// Pins `keys`; an empty list is refused (it would trust nothing and mean nothing).
    pub fn pinned(keys: impl IntoIterator<Item = PublicKey>) -> Result<Self> {
        let keys: Vec<PublicKey> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(AuditError::Invalid {
                field: "trusted_keys",
                reason: "verification needs at least one pinned public key",
            });
        }
        Ok(Self::Pinned(keys))
    }

    /// Whether a checkpoint naming `key` may count.
    pub(crate) fn accepts(&self, key: &PublicKey) -> bool {
        match self {
            Self::Pinned(keys) => keys.contains(key),
            Self::DangerouslyTrustEmbeddedKeys => true,
        }
    }
}

pub(crate) mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_bind_every_field() {
        let pkcs8 = Ed25519Signer::generate_pkcs8().unwrap_or_default();
        let signer = Ed25519Signer::from_pkcs8(&pkcs8);
        assert!(signer.is_ok());
        let Ok(signer) = signer else { return };
        let org = OrgId::new();
        let cp = signer.sign_head(org, 7, [9; 32], OffsetDateTime::now_utc());
        assert!(cp.signature_is_valid());
        let mut bad = cp.clone();
        bad.seq = 8;
        assert!(!bad.signature_is_valid());
        let mut bad = cp.clone();
        bad.head[0] ^= 1;
        assert!(!bad.signature_is_valid());
        let mut bad = cp.clone();
        bad.org = OrgId::new();
        assert!(!bad.signature_is_valid());
        let mut bad = cp.clone();
        bad.at += time::Duration::microseconds(1);
        assert!(!bad.signature_is_valid());
        let json = serde_json::to_string(&cp).unwrap_or_default();
        let back: Option<Checkpoint> = serde_json::from_str(&json).ok();
        assert_eq!(back, Some(cp));
        assert!(!format!("{signer:?}").contains(&hex::encode(&pkcs8)));
    }
}
