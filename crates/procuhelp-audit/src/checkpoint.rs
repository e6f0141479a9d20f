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

/// Signs checkpoints. The private key never leaves this value (and is not `Debug`).
pub struct CheckpointSigner {
    key: Ed25519KeyPair,
    public_key: PublicKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
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

    /// The signer stored in the vault under [`SIGNING_KEY_NAME`], created on first use.
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

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Signs `org`'s head `(seq, head)` at `at` (normalised to UTC microseconds).
    pub fn sign(&self, org: OrgId, seq: u64, head: Hash, at: OffsetDateTime) -> Checkpoint {
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

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
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
        let pkcs8 = CheckpointSigner::generate_pkcs8().unwrap_or_default();
        let signer = CheckpointSigner::from_pkcs8(&pkcs8);
        assert!(signer.is_ok());
        let Ok(signer) = signer else { return };
        let org = OrgId::new();
        let cp = signer.sign(org, 7, [9; 32], OffsetDateTime::now_utc());
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
