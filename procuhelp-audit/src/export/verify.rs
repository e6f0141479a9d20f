//! Offline verification of a JSON-lines export.

use std::io::BufRead;

use super::decode::hex32;
use super::line::Scratch;
use super::parallel::{Chunk, Fill, MAX_WORKERS, parse_chunk};
use procuhelp_core::OrgId;

use super::{
    CheckpointLine, Classify as _, EXPORT_FORMAT, EXPORT_VERSION, Header, bad, read_line, utf8,
};
use crate::chain::{CHAIN_VERSION, GENESIS};
use crate::checkpoint::Trust;
use crate::verify::{ChainVerifier, VerifyReport};
use crate::{ExportSeal, ProblemKind, Result};

/// Verifies a JSON-lines export against `trust`: the deployment's pinned public key(s)
/// ([`Trust::Pinned`]), or — only for diagnostics — whatever keys the file names.
///
/// Returns the report with the first bad sequence number for any modified, deleted,
/// inserted, reordered or truncated event, any checkpoint signed by a key not pinned
/// ([`ProblemKind::UntrustedKey`]), and — with pinned keys — events after the last
/// trusted checkpoint ([`ProblemKind::Unsigned`]; an export always ends at a checkpoint).
///
/// The range the file must hold is the one its [`ExportSeal`] signs, when a key `trust`
/// accepts signed it: events missing at either end are [`ProblemKind::Missing`] or
/// [`ProblemKind::Truncated`] whatever the (unsigned) header says. With pinned keys, an
/// export without such a seal (version 1, or the seal removed) is
/// [`ProblemKind::Unsealed`], and a seal by another key [`ProblemKind::UntrustedKey`];
/// these are reported after any problem inside the chain. Malformed input (invalid
/// UTF-8, unknown action, a corrupt or oversized line) is an
/// [`AuditError::BadInput`](crate::AuditError::BadInput) naming the line.
///
/// The input is read in bounded chunks (at most 4 MiB of lines plus one line), whose
/// lines are parsed and hashed on up to 8 threads (`std::thread::scope`); the chain is
/// then checked in file order, so the result is the same as a sequential pass.
pub fn verify_export<R: BufRead>(mut reader: R, trust: &Trust) -> Result<VerifyReport> {
    let mut buf = Vec::with_capacity(4096);
    let mut line: u64 = 1;
    if !read_line(&mut reader, &mut buf, line, "reading the export")? {
        return Err(bad(line, "empty export"));
    }
    let header: Header = serde_json::from_str(utf8(&buf, line)?)
        .map_err(|e| bad(line, format!("not an export header: {}", e.classify_str())))?;
    // Version 1 has no seal; version 2 always has one (a version 2 header without its
    // seal was edited, which is malformed input rather than a chain problem).
    let versioned = matches!(
        (header.version, &header.seal),
        (1, None) | (EXPORT_VERSION, Some(_))
    );
    if header.format != EXPORT_FORMAT || !versioned || header.chain_version != CHAIN_VERSION {
        return Err(bad(line, "unsupported export format or version"));
    }
    let org = header.org;
    // A seal counts when a trusted key signed it for this chain: then its range and
    // hashes, not the unsigned header's, say what the file must hold.
    let seal = header
        .seal
        .as_ref()
        .map(|s| (s, seal_status(s, org, trust)));
    let (first_seq, last_seq, prev) = match seal {
        Some((s, SealStatus::Trusted)) => (s.first_seq, s.last_seq, s.prev_hash),
        _ => (
            header.first_seq,
            header.last_seq,
            hex32(&header.prev_hash, line, "prev_hash")?,
        ),
    };
    if first_seq == 1 && prev != GENESIS {
        return Err(bad(
            line,
            "a chain starting at seq 1 must start from the genesis hash",
        ));
    }
    let mut checkpoints = Vec::new();
    for _ in 0..header.checkpoints {
        line += 1;
        if !read_line(&mut reader, &mut buf, line, "reading the export")? {
            return Err(bad(line, "missing checkpoint line"));
        }
        let cp: CheckpointLine = serde_json::from_str(utf8(&buf, line)?)
            .map_err(|e| bad(line, format!("not a checkpoint: {}", e.classify_str())))?;
        checkpoints.push(cp.checkpoint);
    }
    let mut verifier = ChainVerifier::new(org, first_seq, prev, checkpoints, trust);
    if let Some((s, SealStatus::Trusted)) = seal {
        verifier.seal_end(s.last_seq, s.head);
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_WORKERS);
    let mut chunk = Chunk::default();
    let mut scratch: Vec<Scratch> = (0..workers).map(|_| Scratch::default()).collect();
    loop {
        // Read a bounded chunk of lines; a read error or an oversized line is reported
        // after the lines before it (which may hold an earlier error).
        let first_line = line + 1;
        let pending = chunk.fill(&mut reader, &mut line);
        let results = parse_chunk(&chunk, first_line, org.as_uuid(), &mut scratch);
        for parsed in results.into_iter().flatten() {
            let p = parsed?;
            verifier.push_hashed(p.seq, &p.prev_hash, &p.hash, &p.computed);
        }
        match pending {
            Fill::More => {}
            Fill::End => break,
            Fill::Failed(e) => return Err(e),
        }
    }
    verifier.expect_end(last_seq);
    let pinned = matches!(trust, Trust::Pinned(_));
    if pinned {
        verifier.require_signed_end();
    }
    // Last, so that a problem inside the chain is the one reported: a seal that does
    // not count, or (pinned) none at all, leaves the range unproven.
    match seal {
        Some((_, SealStatus::Trusted)) => {}
        Some((s, SealStatus::UntrustedKey)) => verifier.fail_at_end_untrusted(s.public_key),
        Some((_, SealStatus::BadSignature)) => verifier.fail_at_end(ProblemKind::BadSignature),
        Some((_, SealStatus::OtherChain)) => verifier.fail_at_end(ProblemKind::Unsealed),
        None if pinned => verifier.fail_at_end(ProblemKind::Unsealed),
        None => {}
    }
    Ok(verifier.finish())
}

/// Whether a seal counts for a verification of `org`'s chain under `trust`.
enum SealStatus {
    Trusted,
    UntrustedKey,
    BadSignature,
    OtherChain,
}

fn seal_status(seal: &ExportSeal, org: OrgId, trust: &Trust) -> SealStatus {
    if !trust.accepts(&seal.public_key) {
        SealStatus::UntrustedKey
    } else if !seal.signature_is_valid() {
        SealStatus::BadSignature
    } else if seal.org != org {
        SealStatus::OtherChain
    } else {
        SealStatus::Trusted
    }
}

#[cfg(test)]
mod tests {
    use procuhelp_core::OrgId;
    use serde_json::value::RawValue;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::export::parallel::CHUNK_LINES;
    use crate::export::{LineOut, MAX_LINE_BYTES, b64, format_time};
    use crate::{Action, AuditError, Outcome};

    /// A valid export of `n` events (chain from seq 1), one line per element.
    fn export_lines(n: u64) -> Vec<String> {
        use crate::{Actor, ChainedEvent};
        let org = OrgId::new();
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        let header = Header {
            format: EXPORT_FORMAT.to_owned(),
            version: 1,
            chain_version: CHAIN_VERSION,
            org,
            first_seq: 1,
            last_seq: n,
            prev_hash: hex::encode(GENESIS),
            exported_at: OffsetDateTime::UNIX_EPOCH,
            checkpoints: 0,
            seal: None,
        };
        lines.push(serde_json::to_string(&header).unwrap_or_default());
        for seq in 1..=n {
            let mut e = ChainedEvent {
                org,
                seq,
                at: OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(seq as i64),
                actor: Actor::System,
                action: Action::AdminCommand,
                target: Some(format!("t{seq}")),
                outcome: Outcome::Success,
                context: format!("{{\"n\":{seq}}}"),
                request_id: None,
                subject: None,
                person_key: (seq % 2 == 0).then(Uuid::nil),
                personal: (seq % 2 == 0).then(|| vec![1, 2, 3]),
                prev_hash: prev,
                hash: [0; 32],
            };
            e.hash = e.compute_hash();
            prev = e.hash;
            let context = RawValue::from_string(e.context.clone()).unwrap_or_else(|_| {
                RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!())
            });
            lines.push(
                serde_json::to_string(&LineOut {
                    seq,
                    at: format_time(e.at).unwrap_or_default(),
                    actor_kind: e.actor.kind(),
                    actor_id: e.actor.id(),
                    action: e.action.as_str(),
                    target: e.target.as_deref(),
                    outcome: e.outcome.as_str(),
                    context: &context,
                    request_id: None,
                    subject: None,
                    person_key: e.person_key,
                    personal: e.personal.as_deref().map(b64),
                    prev_hash: hex::encode(e.prev_hash),
                    hash: hex::encode(e.hash),
                })
                .unwrap_or_default(),
            );
        }
        lines
    }

    fn join(lines: &[String]) -> Vec<u8> {
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        out
    }

    #[test]
    fn parallel_chunks_report_the_first_problem_in_file_order() {
        // More lines than one chunk holds, so runs and chunk boundaries are crossed.
        let n = CHUNK_LINES as u64 + 900;
        let lines = export_lines(n);
        let report = verify_export(&join(&lines)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.events, report.last_seq), (n, n));

        // A modified event deep in a later run and in the second chunk.
        for seq in [3_000u64, CHUNK_LINES as u64 + 5] {
            let mut t = lines.clone();
            let i = seq as usize; // line index: the header is line 1 (index 0)
            t[i] = t[i].replace(&format!("\"t{seq}\""), "\"forged\"");
            let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                r.problem.map(|p| (p.seq, p.kind)),
                Some((seq, crate::ProblemKind::Modified))
            );
        }
        // Deleted and swapped lines.
        let mut t = lines.clone();
        t.remove(5_000);
        let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((5_000, crate::ProblemKind::Missing))
        );
        let mut t = lines.clone();
        t.swap(700, 701);
        let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((700, crate::ProblemKind::Missing))
        );
        // The first corrupt line wins, whichever worker or chunk saw it; a chain
        // problem before it does not hide it.
        let mut t = lines.clone();
        t[100] = t[100].replace("\"t100\"", "\"forged\"");
        t[6_001] = "{garbage".to_owned();
        t[8_500] = "{garbage".to_owned();
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 6_002),
            other => panic!("{other:?}"),
        }
        let mut t = lines.clone();
        t[8_500] = "{garbage".to_owned();
        t.insert(9_000, "x".repeat(MAX_LINE_BYTES + 1));
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 8_501),
            other => panic!("{other:?}"),
        }
        let mut t = lines.clone();
        t.insert(9_000, "x".repeat(MAX_LINE_BYTES + 1));
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 9_001),
            other => panic!("{other:?}"),
        }
        // A cut tail.
        let t = &lines[..lines.len() - 10];
        let r = verify_export(&join(t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((n - 9, crate::ProblemKind::Truncated))
        );
    }

    #[test]
    fn bad_input_names_the_line() {
        let cases: Vec<(Vec<u8>, u64)> = vec![
            (b"".to_vec(), 1),
            (b"{not json}\n".to_vec(), 1),
            (vec![0xff, 0xfe, b'\n'], 1),
            (vec![b'a'; MAX_LINE_BYTES + 10], 1),
        ];
        for (input, line) in cases {
            match verify_export(&input[..], &Trust::DangerouslyTrustEmbeddedKeys) {
                Err(AuditError::BadInput { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{other:?}"),
            }
        }
    }
}
