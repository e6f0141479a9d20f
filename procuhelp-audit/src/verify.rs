//! Chain verification, shared by the live database check and the export-file check.

use std::collections::BTreeMap;

use procuhelp_core::OrgId;

use crate::chain::{Fields, Hash};
use crate::checkpoint::{Checkpoint, PublicKey, Trust};

/// What is wrong at the first bad sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The event's fields do not hash to its stored hash: it was modified (or forged).
    Modified,
    /// The event does not name the hash of the event before it.
    BrokenLink,
    /// The event with this sequence number is not where it belongs: deleted, or moved.
    Missing,
    /// An event with an earlier sequence number appears here: inserted or reordered.
    OutOfOrder,
    /// The chain ends before a signed checkpoint: events from here on were removed.
    Truncated,
    /// The event at a signed checkpoint does not have the signed head hash.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify.
    BadSignature,
    /// A checkpoint is signed by a key the verifier did not pin
    /// ([`VerifyReport::untrusted_key`] names it): the file may have been re-signed.
    UntrustedKey,
    /// No checkpoint signed by a pinned key covers the events from here on (an export
    /// always ends at one): they could have been rewritten or appended by anyone.
    Unsigned,
    /// The export carries no seal signed by a pinned key for this chain (an export of
    /// version 1, or its seal was removed): events could have been cut at either end, at
    /// a checkpoint, unseen. The sequence number is the one after the last event.
    Unsealed,
}

/// The first problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainProblem {
    /// The first bad sequence number.
    pub seq: u64,
    /// What is wrong there.
    pub kind: ProblemKind,
}

/// The result of verifying a chain (or a range of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The chain.
    pub org: OrgId,
    /// Events checked.
    pub events: u64,
    /// The last sequence number checked (0 for none).
    pub last_seq: u64,
    /// The hash of the last event checked.
    pub head: Hash,
    /// Checkpoints whose signature verified and whose head matched.
    pub checkpoints_verified: usize,
    /// The public keys those checkpoints were signed with (compare with the published key).
    pub signing_keys: Vec<PublicKey>,
    /// The first key a checkpoint was signed with that the verifier did not pin.
    pub untrusted_key: Option<PublicKey>,
    /// The first problem, if any.
    pub problem: Option<ChainProblem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Walks events in order, checking each link, hash and checkpoint.
pub(crate) struct ChainVerifier {
    org: OrgId,
    expected: u64,
    prev: Hash,
    events: u64,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    buf: Vec<u8>,
    problem: Option<ChainProblem>,
    checkpoints: BTreeMap<u64, Checkpoint>,
    verified: usize,
    /// The highest checkpoint whose head matched (all kept checkpoints are trusted).
    last_verified: Option<u64>,
    signing_keys: Vec<PublicKey>,
    untrusted_key: Option<PublicKey>,
    /// The last event and its hash, as a trusted export seal states them.
    sealed_end: Option<(u64, Hash)>,
}

impl ChainVerifier {
    /// Starts at `first_seq`, whose `prev_hash` must be `prev`. Checkpoints of other
    /// chains are ignored; only keys `trust` accepts count.
    pub(crate) fn new(
        org: OrgId,
        first_seq: u64,
        prev: Hash,
        checkpoints: impl IntoIterator<Item = Checkpoint>,
        trust: &Trust,
    ) -> Self {
        let mut v = Self {
            org,
            expected: first_seq,
            prev,
            events: 0,
            buf: Vec::with_capacity(512),
            problem: None,
            checkpoints: BTreeMap::new(),
            verified: 0,
            last_verified: None,
            signing_keys: Vec::new(),
            untrusted_key: None,
            sealed_end: None,
        };
        for cp in checkpoints {
            if cp.org != org || cp.seq < first_seq {
                continue;
            }
            if !trust.accepts(&cp.public_key) {
                // Lowest such checkpoint: the key reported is the first one in the chain.
                if v.problem.is_none_or(|p| cp.seq < p.seq) {
                    v.untrusted_key = Some(cp.public_key);
                }
                v.fail(cp.seq, ProblemKind::UntrustedKey);
            } else if !cp.signature_is_valid() {
                v.fail(cp.seq, ProblemKind::BadSignature);
            } else if !v.signing_keys.contains(&cp.public_key) {
                v.signing_keys.push(cp.public_key);
            }
            v.checkpoints.insert(cp.seq, cp);
        }
        v
    }

    fn fail(&mut self, seq: u64, kind: ProblemKind) {
        // Keep the lowest sequence number: that is "the first bad one".
        match self.problem {
            Some(p) if p.seq <= seq => {}
            _ => self.problem = Some(ChainProblem { seq, kind }),
        }
    }

    /// Whether a problem was found before `seq` (nothing later can change the answer).
    pub(crate) fn done_before(&self, seq: u64) -> bool {
        self.problem.is_some_and(|p| p.seq < seq)
    }

    /// Checks the next event. `fields.prev_hash` is the event's stored `prev_hash`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn push(&mut self, fields: &Fields<'_>, stored_hash: &Hash) {
        let mut buf = std::mem::take(&mut self.buf);
        self.check(fields.seq, fields.prev_hash, stored_hash, || {
            fields.hash_with(&mut buf)
        });
        self.buf = buf;
    }

    /// Checks the next event, whose hash was already computed (by a parallel parser).
    pub(crate) fn push_hashed(
        &mut self,
        seq: u64,
        prev_hash: &Hash,
        stored: &Hash,
        computed: &Hash,
    ) {
        self.check(seq, prev_hash, stored, || *computed);
    }

    fn check(
        &mut self,
        seq: u64,
        prev_hash: &Hash,
        stored_hash: &Hash,
        computed: impl FnOnce() -> Hash,
    ) {
        if self.done_before(self.expected) {
            return;
        }
        if seq != self.expected {
            let kind = if seq > self.expected {
                ProblemKind::Missing
            } else {
                ProblemKind::OutOfOrder
            };
            self.fail(self.expected, kind);
            return;
        }
        if prev_hash != &self.prev {
            self.fail(seq, ProblemKind::BrokenLink);
            return;
        }
        if &computed() != stored_hash {
            self.fail(seq, ProblemKind::Modified);
            return;
        }
        if let Some(cp) = self.checkpoints.get(&seq) {
            if &cp.head == stored_hash {
                self.verified += 1;
                self.last_verified = Some(seq);
            } else {
                self.fail(seq, ProblemKind::CheckpointMismatch);
                return;
            }
        }
        if let Some((end, head)) = self.sealed_end
            && end == seq
        {
            if &head == stored_hash {
                self.last_verified = Some(seq);
            } else {
                self.fail(seq, ProblemKind::CheckpointMismatch);
                return;
            }
        }
        self.prev = *stored_hash;
        self.events += 1;
        self.expected += 1;
    }

    /// The report; a checkpoint beyond the last event means the tail was cut.
    pub(crate) fn finish(mut self) -> VerifyReport {
        let last = self.expected.saturating_sub(1);
        if self.problem.is_none()
            && let Some((&seq, _)) = self.checkpoints.range(self.expected..).next()
        {
            let _ = seq;
            self.fail(self.expected, ProblemKind::Truncated);
        }
        VerifyReport {
            org: self.org,
            events: self.events,
            last_seq: last,
            head: self.prev,
            checkpoints_verified: self.verified,
            signing_keys: self.signing_keys,
            untrusted_key: self.untrusted_key,
            problem: self.problem,
        }
    }

    /// Requires the last event checked to be covered by a trusted checkpoint: otherwise
    /// the events after the last one (all of them, with none) are `Unsigned`. Call after
    /// every event was pushed; for exports, which always end at a checkpoint.
    pub(crate) fn require_signed_end(&mut self) {
        let last = self.expected.saturating_sub(1);
        if self.problem.is_some() || self.events == 0 {
            return;
        }
        let first_unsigned = match self.last_verified {
            Some(seq) if seq >= last => return,
            Some(seq) => seq + 1,
            None => last + 1 - self.events,
        };
        self.fail(first_unsigned, ProblemKind::Unsigned);
    }

    /// Declares the end a trusted export seal states: event `last_seq` must have `head`
    /// (a signed end, like a checkpoint there).
    pub(crate) fn seal_end(&mut self, last_seq: u64, head: Hash) {
        self.sealed_end = Some((last_seq, head));
    }

    /// Reports `kind` after the last event checked (a problem of the whole file, found
    /// once the chain itself was checked: any problem inside it comes first).
    pub(crate) fn fail_at_end(&mut self, kind: ProblemKind) {
        self.fail(self.expected, kind);
    }

    /// [`fail_at_end`](Self::fail_at_end) with [`ProblemKind::UntrustedKey`] for `key`.
    pub(crate) fn fail_at_end_untrusted(&mut self, key: PublicKey) {
        if self.problem.is_none() {
            self.untrusted_key = Some(key);
        }
        self.fail_at_end(ProblemKind::UntrustedKey);
    }

    /// Declares that the source claims `last_seq` as its end: fewer events is truncation.
    pub(crate) fn expect_end(&mut self, last_seq: u64) {
        if self.problem.is_none() && self.expected <= last_seq {
            self.fail(self.expected, ProblemKind::Truncated);
        } else if self.problem.is_none() && self.expected > last_seq + 1 {
            self.fail(last_seq + 1, ProblemKind::OutOfOrder);
        }
    }
}
