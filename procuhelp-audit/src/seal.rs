//! An export's seal: "this export of `org`'s chain holds the events `first_seq..=last_seq`,
//! starting from `prev_hash` and ending in `head`", signed at export time by the
//! checkpoint signer.
//!
//! ```text
//! signed = field("procuhelp.audit.export.v1") ‖ field(org: 16 bytes)
//!        ‖ field(first_seq: u64 BE) ‖ field(last_seq: u64 BE)
//!        ‖ field(prev_hash: 32 bytes) ‖ field(head: 32 bytes)
//!        ‖ field(at: i64 BE µs since epoch)
//! ```
//! (`field` as in the chain encoding; the domain differs from a checkpoint's, so neither
//! signature can be passed off as the other.)
//!
//! Why checkpoints are not enough: they say what a chain held at some point, not where
//! an export ends. Cut an export after a periodic checkpoint (or before one, at its
//! head) and fix the unsigned header, and every event left is still covered by a genuine
//! checkpoint. The seal signs the range itself, so a verifier pinning the key finds the
//! cut.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use procuhelp_core::OrgId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::chain::{Hash, unix_micros};
use crate::checkpoint::{PublicKey, hex_array};

const DOMAIN: &[u8] = b"procuhelp.audit.export.v1";

/// The signed statement of an export's range and head (in the header of a JSON-lines
/// export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSeal {
    /// The chain.
    pub org: OrgId,
    /// The first event exported (1 with nothing exported).
    pub first_seq: u64,
    /// The last event exported (0 with nothing exported).
    pub last_seq: u64,
    /// The hash the first event links to ([`GENESIS`](crate::GENESIS) from seq 1).
    #[serde(with = "hex_array")]
    pub prev_hash: Hash,
    /// The hash of event `last_seq` (`prev_hash` with nothing exported).
    #[serde(with = "hex_array")]
    pub head: Hash,
    /// When the export was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The signer's public key.
    #[serde(with = "hex_array")]
    pub public_key: PublicKey,
    /// Ed25519 signature over [`signed_bytes`](Self::signed_bytes).
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

impl ExportSeal {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        for part in [
            DOMAIN,
            self.org.as_uuid().as_bytes(),
            &self.first_seq.to_be_bytes(),
            &self.last_seq.to_be_bytes(),
            &self.prev_hash,
            &self.head,
            &unix_micros(self.at).to_be_bytes(),
        ] {
            out.push(1);
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Whether the signature is valid for `public_key`.
    pub fn signature_is_valid(&self) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&self.signed_bytes(), &self.signature)
            .is_ok()
    }
}

// Sealing is the PostgreSQL export's (feature `postgres`); the seal's format and its
// verification are always built, for offline verifiers.
#[cfg(any(feature = "postgres", test))]
pub(crate) use sealing::{Range, seal};

#[cfg(any(feature = "postgres", test))]
mod sealing {
    use procuhelp_core::OrgId;
    use time::OffsetDateTime;

    use super::ExportSeal;
    use crate::chain::Hash;
    use crate::checkpoint::CheckpointSigner;
    use crate::{AuditError, Result};

    /// What an export seals: its chain, range, and the hashes at both ends (the PostgreSQL
    /// export is the one sealer).
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Range {
        pub(crate) org: OrgId,
        pub(crate) first_seq: u64,
        pub(crate) last_seq: u64,
        pub(crate) prev_hash: Hash,
        pub(crate) head: Hash,
    }

    /// Seals `range` at `at` with `signer`, checking the signature before returning (a
    /// remote signer that answered with anything else is an error, never a seal).
    pub(crate) async fn seal(
        signer: &dyn CheckpointSigner,
        range: Range,
        at: OffsetDateTime,
    ) -> Result<ExportSeal> {
        let mut seal = ExportSeal {
            org: range.org,
            first_seq: range.first_seq,
            last_seq: range.last_seq,
            prev_hash: range.prev_hash,
            head: range.head,
            at: crate::event::normalise_time(at),
            public_key: signer.public_key(),
            signature: [0; 64],
        };
        seal.signature = signer.sign(&seal.signed_bytes()).await?;
        if !seal.signature_is_valid() {
            return Err(AuditError::Signature(
                "the signer's signature does not verify under its public key",
            ));
        }
        Ok(seal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ed25519Signer;

    #[tokio::test]
    async fn the_seal_binds_every_field() {
        let signer =
            Ed25519Signer::from_pkcs8(&Ed25519Signer::generate_pkcs8().unwrap_or_default());
        let Ok(signer) = signer else {
            panic!("key generation failed")
        };
        let range = Range {
            org: OrgId::new(),
            first_seq: 3,
            last_seq: 9,
            prev_hash: [1; 32],
            head: [2; 32],
        };
        let sealed = seal(&signer, range, OffsetDateTime::now_utc()).await;
        let Ok(sealed) = sealed else {
            panic!("sealing failed")
        };
        assert!(sealed.signature_is_valid());
        let changes: [fn(&mut ExportSeal); 6] = [
            |s| s.org = OrgId::new(),
            |s| s.first_seq += 1,
            |s| s.last_seq -= 1,
            |s| s.prev_hash[0] ^= 1,
            |s| s.head[31] ^= 1,
            |s| s.at += time::Duration::microseconds(1),
        ];
        for change in changes {
            let mut bad = sealed.clone();
            change(&mut bad);
            assert!(!bad.signature_is_valid(), "{bad:?}");
        }
        let json = serde_json::to_string(&sealed).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ExportSeal>(&json).ok(), Some(sealed));
    }
}
