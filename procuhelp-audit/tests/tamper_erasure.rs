#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Export, offline and live verification, tamper detection, erasure.

mod common;

use common::{Fixture, event, personal_event};
use procuhelp_audit::{
    Action, Actor, AuditEvent, AuditSink, ExportFormat, ExportRange, Outcome, PersonalView,
    ProblemKind, Subject, verify_export,
};
use procuhelp_core::UserId;

fn access(org: procuhelp_core::OrgId, action: Action) -> AuditEvent {
    AuditEvent::new(
        Some(org),
        Actor::User { id: UserId::new() },
        action,
        Outcome::Success,
    )
}

async fn export(f: &Fixture, sink: &procuhelp_audit::PgAuditSink) -> Vec<u8> {
    let mut out = Vec::new();
    sink.export(
        access(f.a, Action::AuditExported),
        ExportRange::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .await
    .unwrap();
    out
}

fn lines(file: &[u8]) -> Vec<String> {
    String::from_utf8(file.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut s = lines.join("\n");
    s.push('\n');
    s.into_bytes()
}

fn first_problem(file: &[u8], trust: &procuhelp_audit::Trust) -> Option<(u64, ProblemKind)> {
    verify_export(file, trust)
        .unwrap()
        .problem
        .map(|p| (p.seq, p.kind))
}

#[tokio::test]
async fn export_verifies_and_each_file_tamper_is_found_at_its_seq() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..10 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let file = export(&f, &sink).await;
    let trust = common::pinned(&sink).await;
    let report = verify_export(&file[..], &trust).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events, 11); // 10 + the export event itself
    assert_eq!(report.checkpoints_verified, 1);
    assert_eq!(report.signing_keys, sink.signing_keys().await.unwrap());
    let l = lines(&file);
    // Header, one checkpoint, then seq 1.. at index 2..
    let at = |seq: usize| seq + 1;
    // Modify a field of seq 5.
    let mut m = l.clone();
    m[at(5)] = m[at(5)].replace("supplier:4", "supplier:X");
    assert_eq!(
        first_problem(&join(&m), &trust),
        Some((5, ProblemKind::Modified))
    );
    // Delete seq 5.
    let mut d = l.clone();
    d.remove(at(5));
    assert_eq!(
        first_problem(&join(&d), &trust),
        Some((5, ProblemKind::Missing))
    );
    // Insert a copy of seq 3 before seq 5.
    let mut i = l.clone();
    i.insert(at(5), l[at(3)].clone());
    assert_eq!(
        first_problem(&join(&i), &trust),
        Some((5, ProblemKind::OutOfOrder))
    );
    // Reorder 5 and 6.
    let mut r = l.clone();
    r.swap(at(5), at(6));
    assert_eq!(
        first_problem(&join(&r), &trust),
        Some((5, ProblemKind::Missing))
    );
    // Truncate the tail (seq 9..11).
    let t: Vec<String> = l[..at(9)].to_vec();
    assert_eq!(
        first_problem(&join(&t), &trust),
        Some((9, ProblemKind::Truncated))
    );
    // Bad input names the line.
    let mut u = l.clone();
    u[at(4)] = u[at(4)].replace("supplier.updated", "supplier.exploded");
    match verify_export(&join(&u)[..], &trust) {
        Err(procuhelp_audit::AuditError::BadInput { line, .. }) => {
            assert_eq!(line as usize, at(4) + 1)
        }
        other => panic!("{other:?}"),
    }
    let mut bad = join(&l);
    let pos = bad.len() - 10;
    bad[pos] = 0xff;
    assert!(matches!(
        verify_export(&bad[..], &trust),
        Err(procuhelp_audit::AuditError::BadInput { .. })
    ));
    // CSV export works too.
    let mut csv = Vec::new();
    sink.export(
        access(f.a, Action::AuditExported),
        ExportRange::default(),
        ExportFormat::Csv,
        &mut csv,
    )
    .await
    .unwrap();
    assert!(
        String::from_utf8(csv)
            .unwrap()
            .starts_with("\"record\",\"seq\"")
    );
    f.teardown().await;
}

/// As the owner with the append-only trigger switched off, run `sql` in org A.
async fn tamper(f: &Fixture, sql: &str) {
    let mut tx = f.owner.begin().await.unwrap();
    sqlx::query("SELECT app.enter_org($1)")
        .bind(f.a.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE app.audit_events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
    sqlx::raw_sql("ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER audit_events_append_only; ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER audit_events_link").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn live_tampering_is_found_at_its_seq() {
    for (sql, expected) in [
        ("UPDATE app.audit_events SET target = 'forged' WHERE seq = 5", (5, ProblemKind::Modified)),
        ("DELETE FROM app.audit_events WHERE seq = 5", (5, ProblemKind::Missing)),
        // Insert: shift 5.. up by one, put a copy of 3 at 5.
        ("UPDATE app.audit_events SET seq = seq + 1000 WHERE seq >= 5;
          UPDATE app.audit_events SET seq = seq - 999 WHERE seq >= 1000;
          INSERT INTO app.audit_events SELECT org_id, 5, at, actor_kind, actor_id, action, target, outcome, context,
             request_id, subject, person_key, personal, prev_hash, hash FROM app.audit_events WHERE seq = 3", (5, ProblemKind::BrokenLink)),
        // Reorder: swap 5 and 6.
        ("UPDATE app.audit_events SET seq = 1000 WHERE seq = 5; UPDATE app.audit_events SET seq = 5 WHERE seq = 6;
          UPDATE app.audit_events SET seq = 6 WHERE seq = 1000", (5, ProblemKind::BrokenLink)),
        // Truncate the tail past the checkpoint.
        ("DELETE FROM app.audit_events WHERE seq >= 8", (8, ProblemKind::Truncated)),
    ] {
        let f = Fixture::new().await;
        let sink = f.sink();
        for n in 0..10 {
            sink.record(event(f.a, n)).await.unwrap();
        }
        sink.checkpoint(f.a).await.unwrap();
        assert!(sink.verify_live(f.a, &common::pinned(&sink).await).await.unwrap().is_intact());
        tamper(&f, sql).await;
        let report = sink.verify_live(f.a, &common::pinned(&sink).await).await.unwrap();
        assert_eq!(report.problem.map(|p| (p.seq, p.kind)), Some(expected), "{sql}");
        f.teardown().await;
    }
}

#[tokio::test]
async fn erasure_makes_personal_data_unreadable_and_the_chain_still_verifies() {
    let f = Fixture::new().await;
    let sink = f.sink();
    let (ada, bob) = (UserId::new(), UserId::new());
    for n in 0..4 {
        sink.record(personal_event(f.a, ada, n)).await.unwrap();
        sink.record(personal_event(f.a, bob, n)).await.unwrap();
    }
    sink.checkpoint(f.a).await.unwrap();
    // Stored ciphertext never contains the clear values.
    let mut tx = f.db.begin(f.a).await.unwrap();
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT personal FROM app.audit_events WHERE personal IS NOT NULL")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(sealed.len(), 8);
    for s in &sealed {
        assert!(!String::from_utf8_lossy(s).contains("ada@example.com"));
    }
    let read = |sink: procuhelp_audit::PgAuditSink, org| async move {
        sink.read_events(
            access(org, Action::AuditRead),
            &procuhelp_audit::EventQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    let before = read(sink.clone(), f.a).await;
    let ada_s = Subject::from(ada).to_string();
    let readable = |events: &[procuhelp_audit::StoredEvent], who: &str| {
        events
            .iter()
            .filter(|e| e.event.subject.as_ref().map(|s| s.as_str()) == Some(who))
            .map(|e| matches!(&e.personal, PersonalView::Readable(p) if p.email.as_deref() == Some("ada@example.com")))
            .collect::<Vec<_>>()
    };
    assert_eq!(readable(&before, &ada_s), vec![true; 4]);

    let erasure = sink
        .erase_person(f.a, &Subject::from(ada), Actor::System)
        .await
        .unwrap();
    assert_eq!(erasure.keys_erased, 1);
    let after = read(sink.clone(), f.a).await;
    for e in after
        .iter()
        .filter(|e| e.event.subject.as_ref().map(|s| s.as_str()) == Some(ada_s.as_str()))
    {
        assert_eq!(e.personal, PersonalView::Erased);
    }
    // Bob is untouched.
    let bob_s = Subject::from(bob).to_string();
    assert!(
        after
            .iter()
            .filter(|e| e.event.subject.as_ref().map(|s| s.as_str()) == Some(bob_s.as_str()))
            .all(|e| matches!(e.personal, PersonalView::Readable(_)))
    );
    // A fresh sink (no cache) cannot open it either.
    let fresh = procuhelp_audit::PgAuditSink::new(f.db.clone(), f.vault.clone());
    let again = read(fresh, f.a).await;
    assert!(again.iter().any(|e| e.personal == PersonalView::Erased));
    // The erasure is an event; chain, checkpoint and export still verify.
    assert!(
        after
            .iter()
            .any(|e| e.event.action == Action::AuditPersonErased)
    );
    assert!(
        sink.verify_live(f.a, &common::pinned(&sink).await)
            .await
            .unwrap()
            .is_intact()
    );
    let file = export(&f, &sink).await;
    let report = verify_export(&file[..], &common::pinned(&sink).await).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.checkpoints_verified >= 2);
    // A returning person gets a new key.
    sink.record(personal_event(f.a, ada, 99)).await.unwrap();
    let last = read(sink.clone(), f.a).await;
    assert!(matches!(last.last().map(|e| &e.personal), Some(PersonalView::Readable(_))) || last.iter().rev().any(|e| matches!(&e.personal, PersonalView::Readable(p) if p.email.as_deref() == Some("ada@example.com"))));
    f.teardown().await;
}

#[tokio::test]
async fn a_read_that_cannot_be_audited_is_refused() {
    let f = Fixture::new().await;
    let sink = f.sink();
    sink.record(event(f.a, 1)).await.unwrap();
    // Wrong action for a read: refused before anything is read.
    let err = sink
        .read_events(access(f.a, Action::SupplierCreated), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        procuhelp_audit::AuditError::Invalid {
            field: "action",
            ..
        }
    ));
    // Reads are themselves in the trail.
    let page = sink
        .read_events(
            access(f.a, Action::AuditRead),
            &procuhelp_audit::EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.iter().any(|e| e.event.action == Action::AuditRead));
    f.teardown().await;
}

/// The writer seals and hashes against the head it predicts from its own last append;
/// a second writer (another process) and an erasure by it make that prediction stale:
/// the database refuses the guessed head or key, the writer falls back to the locked
/// read, the chain stays intact and nothing is sealed under the erased key.
#[tokio::test]
async fn stale_predictions_from_another_writer_or_an_erasure_fall_back_safely() {
    let f = Fixture::new().await;
    let a = f.sink();
    let b = f.sink();
    let ada = UserId::new();
    for n in 0..3 {
        a.record(personal_event(f.a, ada, n)).await.unwrap();
    }
    for n in 3..5 {
        b.record(personal_event(f.a, ada, n)).await.unwrap();
    }
    // a's prediction (seq 3) is stale: b appended 4 and 5.
    assert_eq!(
        a.record(personal_event(f.a, ada, 5)).await.unwrap().seq,
        Some(6)
    );
    // b erases ada; a still caches ada's key and predicts seq 6.
    let erasure = b
        .erase_person(f.a, &Subject::from(ada), Actor::System)
        .await
        .unwrap();
    assert_eq!(erasure.keys_erased, 1);
    let r = a.record(personal_event(f.a, ada, 7)).await.unwrap();
    assert_eq!(r.seq, Some(8));
    // Read by a fresh sink: everything before the erasure is erased, the new event is
    // readable (sealed under a new key, not the erased one).
    let fresh = procuhelp_audit::PgAuditSink::new(f.db.clone(), f.vault.clone());
    let events = fresh
        .read_events(
            access(f.a, Action::AuditRead),
            &procuhelp_audit::EventQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let by_seq = |seq: u64| events.iter().find(|e| e.event.seq == seq).unwrap();
    for seq in 1..=6 {
        assert_eq!(by_seq(seq).personal, PersonalView::Erased, "seq {seq}");
    }
    assert!(
        matches!(&by_seq(8).personal, PersonalView::Readable(p) if p.email.as_deref() == Some("ada@example.com"))
    );
    assert_ne!(by_seq(8).event.person_key, by_seq(1).event.person_key);
    assert!(
        fresh
            .verify_live(f.a, &common::pinned(&fresh).await)
            .await
            .unwrap()
            .is_intact()
    );
    f.teardown().await;
}

/// A file written by the JSON-lines sink is imported in one transaction: the chain
/// verifies and the count is exact; a bad line, a future date or the same file twice
/// imports nothing; personal data of a person erased since stays erased.
#[tokio::test]
async fn a_file_sink_log_imports_whole_or_not_at_all_and_erasure_wins() {
    use procuhelp_audit::{AuditError, JsonLinesFileSink, PersonalView, read_events};
    let f = Fixture::new().await;
    let sink = f.sink();
    let dir = std::env::temp_dir().join(format!("ph-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("copy.jsonl");
    let file_sink = JsonLinesFileSink::open(&path)
        .unwrap()
        .with_personal_data(true);
    let (ada, bob) = (UserId::new(), UserId::new());
    for n in 0..25 {
        let who = if n % 5 == 0 { bob } else { ada };
        file_sink.record(personal_event(f.a, who, n)).await.unwrap();
    }
    sink.record(personal_event(f.a, bob, 100)).await.unwrap();
    // Bob is erased after the file was written.
    let bob_subject = Subject::from(bob);
    sink.erase_person(f.a, &bob_subject, Actor::System)
        .await
        .unwrap();
    let count = || async {
        let report = sink
            .verify_live(f.a, &common::pinned(&sink).await)
            .await
            .unwrap();
        assert!(report.is_intact(), "{report:?}");
        report.events
    };
    assert_eq!(count().await, 2);
    let file = std::fs::read(&path).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();

    // One bad line (an unknown action at line 7): a typed error naming it, nothing written.
    let mut lines: Vec<&str> = text.lines().collect();
    let broken = lines[6].replace("supplier.updated", "supplier.vanished");
    lines[6] = &broken;
    let bad_file = format!("{}\n", lines.join("\n"));
    match sink
        .import_file(f.a, bad_file.as_bytes(), Actor::System, "test")
        .await
    {
        Err(AuditError::BadInput { line: 7, reason }) => assert_eq!(reason, "unknown action"),
        other => panic!("expected line 7 to be refused, got {other:?}"),
    }
    // An event dated in the future (line 3).
    let mut future: Vec<AuditEvent> = read_events(&file[..], f.a).unwrap();
    future[2].at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .replace_nanosecond(0)
        .unwrap();
    let future_file: String = future
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    match sink
        .import_file(f.a, future_file.as_bytes(), Actor::System, "test")
        .await
    {
        Err(AuditError::BadInput { line: 3, reason }) => assert_eq!(reason, "at is in the future"),
        other => panic!("expected line 3 to be refused, got {other:?}"),
    }
    // Another organisation's events are refused at line 1.
    assert!(matches!(
        sink.import_file(f.b, &file, Actor::System, "test").await,
        Err(AuditError::BadInput { line: 1, .. })
    ));
    assert_eq!(count().await, 2);

    // The good file: 25 events in order, then the import record; bob's 5 events arrive
    // without his personal data, ada's keep theirs.
    let s = sink
        .import_file(f.a, &file, Actor::System, "test")
        .await
        .unwrap();
    assert_eq!(
        (s.events, s.first_seq, s.last_seq, s.import_seq),
        (25, 3, 27, 28)
    );
    assert_eq!(s.personal_data_withheld, 5);
    assert_eq!(count().await, 28);
    // The same file again: refused, nothing appended.
    assert!(matches!(
        sink.import_file(f.a, &file, Actor::System, "test").await,
        Err(AuditError::Invalid { field: "file", .. })
    ));
    assert_eq!(count().await, 28);

    let query = procuhelp_audit::EventQuery {
        limit: 1000,
        ..Default::default()
    };
    let read = sink
        .read_events(access(f.a, Action::AuditRead), &query)
        .await
        .unwrap();
    let mut with_email = 0;
    for e in read.iter().filter(|e| (3..=27).contains(&e.event.seq)) {
        match &e.personal {
            PersonalView::Readable(p) => {
                assert_ne!(
                    e.event.subject.as_ref(),
                    Some(&bob_subject),
                    "erased data came back"
                );
                with_email += usize::from(p.email.is_some());
            }
            PersonalView::None => assert_eq!(e.event.subject.as_ref(), Some(&bob_subject)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(with_email, 20);
    let record = read.iter().find(|e| e.event.seq == 28).unwrap();
    assert_eq!(record.event.action, Action::AuditImported);
    let context: serde_json::Value = serde_json::from_str(&record.event.context).unwrap();
    assert_eq!(context["file_sha256"], s.file_sha256.as_str());
    assert_eq!(context["personal_data_withheld"], 5);
    std::fs::remove_dir_all(&dir).unwrap();
    f.teardown().await;
}
