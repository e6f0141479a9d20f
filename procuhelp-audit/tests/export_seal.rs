#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Security review follow-up: an export cut after a periodic checkpoint (its tail, with
//! the final checkpoint and the header's `last_seq` adjusted) or before one (its head,
//! with `first_seq` and `prev_hash` adjusted) used to verify as intact with a pinned key:
//! every remaining event is covered by a genuine checkpoint and the header is unsigned.
//! The export now carries a signed statement of its range and head, which a pinned
//! verification requires.

mod common;

use common::{Fixture, event};
use procuhelp_audit::{
    Action, Actor, AuditEvent, AuditSink, CheckpointSigner as _, Ed25519Signer, ExportFormat,
    ExportRange, ExportSeal, Outcome, ProblemKind, VerifyReport, verify_export,
};
use procuhelp_core::UserId;

async fn export(f: &Fixture, sink: &procuhelp_audit::PgAuditSink) -> String {
    let mut out = Vec::new();
    let access = AuditEvent::new(
        Some(f.a),
        Actor::User { id: UserId::new() },
        Action::AuditExported,
        Outcome::Success,
    );
    sink.export(
        access,
        ExportRange::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out).unwrap()
}

struct Parts {
    header: serde_json::Value,
    checkpoints: Vec<serde_json::Value>,
    events: Vec<serde_json::Value>,
}

fn parts(file: &str) -> Parts {
    let mut lines = file.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let n = header["checkpoints"].as_u64().unwrap();
    let checkpoints = (0..n)
        .map(|_| serde_json::from_str(lines.next().unwrap()).unwrap())
        .collect();
    let events = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    Parts {
        header,
        checkpoints,
        events,
    }
}

impl Parts {
    fn join(&self) -> String {
        let mut header = self.header.clone();
        header["checkpoints"] = self.checkpoints.len().into();
        let mut out: Vec<String> = vec![header.to_string()];
        out.extend(self.checkpoints.iter().map(|c| c.to_string()));
        out.extend(self.events.iter().map(|e| e.to_string()));
        out.join("\n") + "\n"
    }

    fn keep_seqs(&mut self, range: std::ops::RangeInclusive<u64>) {
        let seq = |v: &serde_json::Value, path: &[&str]| {
            path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap()
        };
        self.events.retain(|e| range.contains(&seq(e, &["seq"])));
        self.checkpoints
            .retain(|c| range.contains(&seq(c, &["checkpoint", "seq"])));
        self.header["first_seq"] = (*range.start()).into();
        self.header["last_seq"] = (*range.end()).into();
        self.header["prev_hash"] = self.events[0]["prev_hash"].clone();
    }
}

async fn verify(f: &Fixture, sink: &procuhelp_audit::PgAuditSink, file: &str) -> VerifyReport {
    let _ = f;
    verify_export(file.as_bytes(), &common::pinned(sink).await).unwrap()
}

#[tokio::test]
async fn an_export_cut_at_a_periodic_checkpoint_is_detected() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..5 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    // The periodic checkpoint at seq 5; the export signs one at its end (seq 11: its own
    // access event).
    sink.checkpoint(f.a).await.unwrap();
    for n in 5..10 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let file = export(&f, &sink).await;
    let report = verify(&f, &sink, &file).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.checkpoints_verified), (11, 2));

    // The tail cut after the periodic checkpoint (events 6..=11 and the final checkpoint
    // removed, the header says 1..=5).
    let mut cut = parts(&file);
    cut.keep_seqs(1..=5);
    let report = verify(&f, &sink, &cut.join()).await;
    let problem = report.problem.expect("a cut tail must not verify");
    assert_eq!((problem.seq, problem.kind), (6, ProblemKind::Truncated));

    // The head cut before it (events 1..=5 removed, the header says 6..=11 from event 5's
    // hash): the periodic checkpoint at 5 falls outside, the final one still verifies.
    let mut cut = parts(&file);
    cut.keep_seqs(6..=11);
    let report = verify(&f, &sink, &cut.join()).await;
    let problem = report.problem.expect("a cut head must not verify");
    assert_eq!((problem.seq, problem.kind), (1, ProblemKind::Missing));

    // The seal removed as well (the file passed off as a version 1 export): unsealed.
    let mut cut = parts(&file);
    cut.keep_seqs(1..=5);
    cut.header["version"] = 1.into();
    cut.header.as_object_mut().unwrap().remove("seal");
    let report = verify(&f, &sink, &cut.join()).await;
    let problem = report.problem.expect("an unsealed export must not verify");
    assert_eq!((problem.seq, problem.kind), (6, ProblemKind::Unsealed));
    // Only the seal: a version 2 header without one is malformed.
    let mut cut = parts(&file);
    cut.header.as_object_mut().unwrap().remove("seal");
    let pinned = common::pinned(&sink).await;
    assert!(verify_export(cut.join().as_bytes(), &pinned).is_err());

    // Re-sealed over the cut range by another key: untrusted.
    let attacker = Ed25519Signer::from_pkcs8(&Ed25519Signer::generate_pkcs8().unwrap()).unwrap();
    let mut cut = parts(&file);
    cut.keep_seqs(1..=5);
    let mut seal: ExportSeal = serde_json::from_value(cut.header["seal"].clone()).unwrap();
    seal.last_seq = 5;
    seal.head = hex_hash(&cut.events[4]["hash"]);
    seal.public_key = attacker.public_key();
    seal.signature = attacker.sign(&seal.signed_bytes()).await.unwrap();
    cut.header["seal"] = serde_json::to_value(&seal).unwrap();
    let report = verify(&f, &sink, &cut.join()).await;
    let problem = report
        .problem
        .expect("a seal by another key must not verify");
    assert_eq!((problem.seq, problem.kind), (6, ProblemKind::UntrustedKey));
    assert_eq!(report.untrusted_key, Some(attacker.public_key()));
    // The same seal with our key's name but the attacker's signature: a bad signature.
    seal.public_key = sink.signing_keys().await.unwrap()[0];
    cut.header["seal"] = serde_json::to_value(&seal).unwrap();
    let report = verify(&f, &sink, &cut.join()).await;
    assert_eq!(
        report.problem.map(|p| (p.seq, p.kind)),
        Some((6, ProblemKind::BadSignature))
    );
    f.teardown().await;
}

fn hex_hash(v: &serde_json::Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

/// An export of an empty range is sealed too; an export with events whose seal claims
/// more is truncated, one whose events were all removed as well.
#[tokio::test]
async fn a_sealed_export_with_its_events_removed_is_truncated() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..3 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let file = export(&f, &sink).await;
    let mut cut = parts(&file);
    cut.events.clear();
    cut.checkpoints.clear();
    cut.header["first_seq"] = 1.into();
    cut.header["last_seq"] = 0.into();
    let report = verify(&f, &sink, &cut.join()).await;
    assert_eq!(
        report.problem.map(|p| (p.seq, p.kind)),
        Some((1, ProblemKind::Truncated))
    );
    f.teardown().await;
}
