//! The hash chain: the canonical, versioned, length-prefixed encoding of a stored event
//! and the SHA-256 that links each event to the one before it.
//!
//! ```text
//! hash(e) = SHA-256( field("procuhelp.audit.event.v1")
//!                  ‖ field(org: 16 bytes) ‖ field(seq: u64 BE) ‖ field(prev_hash: 32 bytes)
//!                  ‖ field(at: i64 BE, microseconds since the Unix epoch, UTC)
//!                  ‖ field(actor_kind) ‖ field?(actor_id: 16 bytes)
//!                  ‖ field(action) ‖ field?(target) ‖ field(outcome)
//!                  ‖ field(context: canonical JSON) ‖ field?(request_id)
//!                  ‖ field?(subject) ‖ field?(person_key: 16 bytes) ‖ field?(personal) )
//! field(x)        = 0x01 ‖ len(x): u32 BE ‖ x
//! field?(absent)  = 0x00
//! ```
//! Strings are UTF-8; `prev_hash` of sequence number 1 is [`GENESIS`] (32 zero bytes).
//! The version is in the domain string: a future encoding gets a new one.

use procuhelp_core::OrgId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Action, Actor, AuditError, Outcome, Result, Subject};

/// The `prev_hash` of the first event of every chain.
pub const GENESIS: [u8; 32] = [0; 32];
/// The encoding version hashed into every event.
pub const CHAIN_VERSION: u32 = 1;
const DOMAIN: &[u8] = b"procuhelp.audit.event.v1";

/// A SHA-256 chain hash.
pub type Hash = [u8; 32];

/// One event as stored in its organisation's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    /// The chain (the organisation, or the system chain's reserved organisation).
    pub org: OrgId,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When (UTC, microseconds).
    pub at: OffsetDateTime,
    /// Who acted.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// To what.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The context as canonical JSON (the exact hashed bytes).
    pub context: String,
    /// The request id.
    pub request_id: Option<String>,
    /// Whose personal data `personal` holds.
    pub subject: Option<Subject>,
    /// The per-person key that sealed `personal`.
    pub person_key: Option<Uuid>,
    /// Personal data, sealed (AES-256-GCM) under the person key.
    pub personal: Option<Vec<u8>>,
    /// The previous event's hash ([`GENESIS`] for seq 1).
    pub prev_hash: Hash,
    /// This event's hash.
    pub hash: Hash,
}

impl ChainedEvent {
    /// The hash this event should have, recomputed from its fields.
    pub fn compute_hash(&self) -> Hash {
        let mut buf = Vec::with_capacity(256 + self.context.len());
        self.fields().encode(&mut buf);
        sha256(&buf)
    }

    /// Borrowed view of the hashed fields.
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            org: self.org.as_uuid(),
            seq: self.seq,
            prev_hash: &self.prev_hash,
            at_micros: unix_micros(self.at),
            actor_kind: self.actor.kind(),
            actor_id: self.actor.id(),
            action: self.action.as_str(),
            target: self.target.as_deref(),
            outcome: self.outcome.as_str(),
            context: &self.context,
            request_id: self.request_id.as_deref(),
            subject: self.subject.as_ref().map(Subject::as_str),
            person_key: self.person_key,
            personal: self.personal.as_deref(),
        }
    }
}

/// The hashed fields, borrowed (so a verifier can hash what it parsed without copying).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) org: Uuid,
    pub(crate) seq: u64,
    pub(crate) prev_hash: &'a Hash,
    pub(crate) at_micros: i64,
    pub(crate) actor_kind: &'a str,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) action: &'a str,
    pub(crate) target: Option<&'a str>,
    pub(crate) outcome: &'a str,
    pub(crate) context: &'a str,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) person_key: Option<Uuid>,
    pub(crate) personal: Option<&'a [u8]>,
}

impl Fields<'_> {
    /// Appends the canonical encoding to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        field(buf, DOMAIN);
        field(buf, self.org.as_bytes());
        field(buf, &self.seq.to_be_bytes());
        field(buf, self.prev_hash);
        field(buf, &self.at_micros.to_be_bytes());
        field(buf, self.actor_kind.as_bytes());
        opt(buf, self.actor_id.as_ref().map(|u| &u.as_bytes()[..]));
        field(buf, self.action.as_bytes());
        opt(buf, self.target.map(str::as_bytes));
        field(buf, self.outcome.as_bytes());
        field(buf, self.context.as_bytes());
        opt(buf, self.request_id.map(str::as_bytes));
        opt(buf, self.subject.map(str::as_bytes));
        opt(buf, self.person_key.as_ref().map(|u| &u.as_bytes()[..]));
        opt(buf, self.personal);
    }

    /// The hash, using `buf` as scratch space.
    pub(crate) fn hash_with(&self, buf: &mut Vec<u8>) -> Hash {
        buf.clear();
        self.encode(buf);
        sha256(buf)
    }
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.push(1);
    // Every field is bounded far below 4 GiB (the context by MAX_CONTEXT_BYTES, personal
    // data by its limits); saturating keeps this total without a panic path.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn opt(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => field(buf, b),
        None => buf.push(0),
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> Hash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Microseconds since the Unix epoch.
pub(crate) fn unix_micros(at: OffsetDateTime) -> i64 {
    // i128 nanoseconds of any OffsetDateTime fit i64 microseconds (±292,000 years).
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Parses a 32-byte hash from a byte slice.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) fn hash_from_slice(field: &'static str, bytes: &[u8]) -> Result<Hash> {
    <[u8; 32]>::try_from(bytes).map_err(|_| AuditError::Invalid {
        field,
        reason: "must be 32 bytes",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChainedEvent {
        ChainedEvent {
            org: OrgId::from_uuid(Uuid::from_u128(0x0191d2a4_6c1e_7a41_9c55_0d1b2f3e4a5b))
                .unwrap_or_default(),
            seq: 1,
            at: time::macros::datetime!(2024-05-01 12:00:00.000001 UTC),
            actor: Actor::System,
            action: Action::KeysRotated,
            target: None,
            outcome: Outcome::Success,
            context: "{}".to_owned(),
            request_id: None,
            subject: None,
            person_key: None,
            personal: None,
            prev_hash: GENESIS,
            hash: [0; 32],
        }
    }

    #[test]
    fn known_answer() {
        // Pinned, and cross-checked with an independent Python implementation of the
        // encoding documented above: a change here breaks every stored chain.
        let mut buf = Vec::new();
        sample().fields().encode(&mut buf);
        assert_eq!(buf.len(), 166);
        assert_eq!(
            hex::encode(sample().compute_hash()),
            "fedff5f2f5a72b1a005be8fe9ee18d92335e08f01c8023c7f05c59fc6c956251"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample().compute_hash();
        let mut variants: Vec<ChainedEvent> = Vec::new();
        let mut e = sample();
        e.seq = 2;
        variants.push(e);
        let mut e = sample();
        e.prev_hash[0] = 1;
        variants.push(e);
        let mut e = sample();
        e.at += time::Duration::microseconds(1);
        variants.push(e);
        let mut e = sample();
        e.actor = Actor::ServiceAccount { id: Uuid::nil() };
        variants.push(e);
        let mut e = sample();
        e.action = Action::AuditRead;
        variants.push(e);
        let mut e = sample();
        e.target = Some(String::new());
        variants.push(e);
        let mut e = sample();
        e.outcome = Outcome::Denied;
        variants.push(e);
        let mut e = sample();
        e.context = "{\"a\":1}".to_owned();
        variants.push(e);
        let mut e = sample();
        e.request_id = Some("r".to_owned());
        variants.push(e);
        let mut e = sample();
        e.subject = Subject::new("s").ok();
        variants.push(e);
        let mut e = sample();
        e.person_key = Some(Uuid::nil());
        e.personal = Some(vec![]);
        variants.push(e);
        let mut e = sample();
        e.org = OrgId::new();
        variants.push(e);
        for v in &variants {
            assert_ne!(v.compute_hash(), base, "{v:?}");
        }
    }

    #[test]
    fn absent_and_empty_differ_and_boundaries_are_unambiguous() {
        let mut a = sample();
        a.target = Some("ab".to_owned());
        a.request_id = Some("c".to_owned());
        let mut b = sample();
        b.target = Some("a".to_owned());
        b.request_id = Some("bc".to_owned());
        assert_ne!(a.compute_hash(), b.compute_hash());
        let mut c = sample();
        c.target = Some(String::new());
        assert_ne!(c.compute_hash(), sample().compute_hash());
    }
}
