#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The PostgreSQL sink: append-only, isolation, chain under concurrency, crash safety.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::sync::Arc;

use common::{Fixture, event};
use procuhelp_audit::{
    AuditEvent, AuditSink, PgAuditConfig, PgAuditSink, system_chain_org, verify_live,
};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantDb;

async fn chain_ok(db: &TenantDb, org: OrgId) -> (u64, bool) {
    let mut tx = db.begin(org).await.unwrap();
    let report = verify_live(
        &mut tx,
        &procuhelp_audit::Trust::DangerouslyTrustEmbeddedKeys,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    (report.events, report.is_intact())
}

#[tokio::test]
async fn update_delete_truncate_are_refused_for_runtime_and_owner() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..3 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    assert_eq!(sink.checkpoint(f.a).await.unwrap().map(|c| c.seq), Some(3));
    // Runtime role: no privilege at all.
    for sql in [
        "UPDATE app.audit_events SET target = 'x'",
        "DELETE FROM app.audit_events",
        "TRUNCATE app.audit_events",
        "UPDATE app.audit_checkpoints SET seq = 1",
        "DELETE FROM app.audit_person_keys",
    ] {
        let mut tx = f.db.begin(f.a).await.unwrap();
        let err = sqlx::query(sql).execute(tx.conn()).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}"); // insufficient_privilege
        tx.rollback().await.ok();
    }
    // Owner (owns the table, bound by FORCE RLS, enters the org): the trigger refuses.
    for sql in [
        "UPDATE app.audit_events SET target = 'x'",
        "DELETE FROM app.audit_events",
        "TRUNCATE app.audit_events",
        "UPDATE app.audit_checkpoints SET seq = 1",
        "TRUNCATE app.audit_checkpoints",
    ] {
        let mut tx = f.owner.begin().await.unwrap();
        sqlx::query("SELECT app.enter_org($1)")
            .bind(f.a.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("PH423"), "{sql}: {err}");
        tx.rollback().await.unwrap();
    }
    // Even a superuser in replica mode (ordinary triggers off) is refused: ENABLE ALWAYS.
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let mut tx = admin.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("DELETE FROM app.audit_events")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    tx.rollback().await.unwrap();
    admin.close().await;
    // The runtime role cannot INSERT a row that does not extend the chain (fork or gap).
    let mut tx = f.db.begin(f.a).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO app.audit_events (org_id, seq, at, actor_kind, action, outcome, context, prev_hash, hash)
         VALUES ($1, 2, now(), 'system', 'admin.command', 'success', '{}', $2, $2)",
    )
    .bind(f.a.as_uuid())
    .bind(vec![0u8; 32])
    .execute(tx.conn())
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("duplicate key") || err.to_string().contains("link broken"),
        "{err}"
    );
    tx.rollback().await.ok();
    let mut tx = f.db.begin(f.a).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO app.audit_events (org_id, seq, at, actor_kind, action, outcome, context, prev_hash, hash)
         VALUES ($1, 9, now(), 'system', 'admin.command', 'success', '{}', $2, $2)",
    )
    .bind(f.a.as_uuid())
    .bind(vec![0u8; 32])
    .execute(tx.conn())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("link broken"), "{err}");
    tx.rollback().await.ok();
    // The statement-level check also covers links inside one multi-row INSERT: the first
    // row follows the head, the second names the wrong hash (or skips a seq).
    for (second_seq, second_prev) in [(5i64, vec![7u8; 32]), (6, vec![4u8; 32])] {
        let mut tx = f.db.begin(f.a).await.unwrap();
        let head: Vec<u8> = sqlx::query_scalar("SELECT hash FROM app.audit_events WHERE seq = 3")
            .fetch_one(tx.conn())
            .await
            .unwrap();
        let err = sqlx::query(
            "INSERT INTO app.audit_events (org_id, seq, at, actor_kind, action, outcome, context, prev_hash, hash)
             VALUES ($1, 4, now(), 'system', 'admin.command', 'success', '{}', $2, $3),
                    ($1, $4, now(), 'system', 'admin.command', 'success', '{}', $5, $3)",
        )
        .bind(f.a.as_uuid())
        .bind(head)
        .bind(vec![4u8; 32])
        .bind(second_seq)
        .bind(second_prev)
        .execute(tx.conn())
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("link broken at seq {second_seq}")),
            "{err}"
        );
        tx.rollback().await.ok();
    }
    assert_eq!(chain_ok(&f.db, f.a).await, (3, true));
    f.teardown().await;
}

#[tokio::test]
async fn a_tenant_reads_only_its_own_events_and_system_events_are_apart() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..5 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    for n in 0..2 {
        sink.record(event(f.b, n)).await.unwrap();
    }
    let sys = sink
        .record(AuditEvent::new(
            None,
            procuhelp_audit::Actor::System,
            procuhelp_audit::Action::AdminCommand,
            procuhelp_audit::Outcome::Success,
        ))
        .await
        .unwrap();
    assert_eq!((sys.org, sys.seq), (None, Some(1)));
    for (org, n) in [(f.a, 5i64), (f.b, 2), (system_chain_org(), 1)] {
        let mut tx = f.db.begin(org).await.unwrap();
        // No WHERE clause: RLS alone filters.
        let rows: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT org_id FROM app.audit_events")
            .fetch_all(tx.conn())
            .await
            .unwrap();
        assert_eq!(rows.len() as i64, n);
        assert!(rows.iter().all(|o| *o == org.as_uuid()));
        tx.rollback().await.unwrap();
    }
    // With no tenant: nothing.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.audit_events")
        .fetch_one(&f.runtime)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A tenant cannot write into another tenant's chain.
    let mut tx = f.db.begin(f.a).await.unwrap();
    let err = sink
        .append_in_tx(&mut tx, &event(f.b, 1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        procuhelp_audit::AuditError::Invalid { field: "org", .. }
    ));
    tx.rollback().await.ok();
    assert!(procuhelp_tenancy::posture::check(&f.runtime).await.is_ok());
    f.teardown().await;
}

#[tokio::test]
async fn append_in_tx_commits_or_rolls_back_with_the_action() {
    let f = Fixture::new().await;
    let sink = f.sink();
    sink.record(event(f.a, 0)).await.unwrap();
    let mut tx = f.db.begin(f.a).await.unwrap();
    let r = sink.append_in_tx(&mut tx, &event(f.a, 1)).await.unwrap();
    assert_eq!(r.seq, Some(2));
    tx.rollback().await.unwrap();
    let mut tx = f.db.begin(f.a).await.unwrap();
    let r = sink.append_in_tx(&mut tx, &event(f.a, 2)).await.unwrap();
    assert_eq!(r.seq, Some(2));
    tx.commit().await.unwrap();
    assert_eq!(sink.record(event(f.a, 3)).await.unwrap().seq, Some(3));
    assert_eq!(chain_ok(&f.db, f.a).await, (3, true));
    f.teardown().await;
}

#[tokio::test]
async fn oversized_context_is_refused_and_nothing_is_written() {
    let f = Fixture::new().await;
    let sink = f.sink();
    let big = event(f.a, 0).context(serde_json::json!({ "x": "y".repeat(20_000) }));
    assert!(matches!(
        sink.record(big).await,
        Err(procuhelp_audit::AuditError::TooLarge {
            field: "context",
            ..
        })
    ));
    assert_eq!(chain_ok(&f.db, f.a).await, (0, true));
    f.teardown().await;
}

#[tokio::test]
async fn four_writers_ten_thousand_events_one_tenant_exact_count_and_valid_chain() {
    let f = Fixture::new().await;
    const WRITERS: usize = 4;
    const TASKS_PER_WRITER: usize = 25;
    const EVENTS_PER_TASK: usize = 100; // 4 × 25 × 100 = 10,000
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        // Each writer is its own sink with its own pool, as separate server processes are.
        let pool = f.scratch.runtime_pool(3).await.unwrap();
        let sink = Arc::new(PgAuditSink::with_config(
            TenantDb::new(pool),
            f.vault.clone(),
            PgAuditConfig {
                max_batch: 256,
                ..PgAuditConfig::default()
            },
        ));
        for t in 0..TASKS_PER_WRITER {
            let sink = sink.clone();
            let org = f.a;
            handles.push(tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(EVENTS_PER_TASK);
                for i in 0..EVENTS_PER_TASK {
                    let n = ((w * TASKS_PER_WRITER + t) * EVENTS_PER_TASK + i) as u64;
                    seqs.push(sink.record(event(org, n)).await.unwrap().seq.unwrap());
                }
                seqs
            }));
        }
    }
    // Meanwhile, events appended inside other transactions interleave with the batches.
    let direct = f.sink();
    for i in 0..20u64 {
        let mut tx = f.db.begin(f.a).await.unwrap();
        direct
            .append_in_tx(&mut tx, &event(f.a, 1_000_000 + i))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut all = BTreeSet::new();
    for h in handles {
        for s in h.await.unwrap() {
            assert!(all.insert(s), "seq {s} acknowledged twice");
        }
    }
    let total = (WRITERS * TASKS_PER_WRITER * EVENTS_PER_TASK) as u64 + 20;
    assert_eq!(all.len() as u64, total - 20);
    let mut tx = f.db.begin(f.a).await.unwrap();
    let (count, max): (i64, i64) =
        sqlx::query_as("SELECT count(*), max(seq) FROM app.audit_events")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    let distinct_targets: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT target) FROM app.audit_events")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        (count as u64, max as u64, distinct_targets as u64),
        (total, total, total)
    );
    assert_eq!(chain_ok(&f.db, f.a).await, (total, true));
    f.teardown().await;
}

const CHILD_ENV: &str = "PROCUHELP_AUDIT_CRASH_CHILD";

/// Not a test on its own: the crash test runs this binary again with `CHILD_ENV` set, and
/// this function then appends until it is killed, printing each acknowledged seq.
#[tokio::test]
async fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let (db_name, role, org, vault_dir) = (parts[0], parts[1], parts[2], parts[3]);
    let admin = std::env::var("PROCUHELP_TEST_ADMIN_URL")
        .unwrap_or_else(|_| procuhelp_tenancy::testkit::DEFAULT_ADMIN_URL.to_owned());
    let opts: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts.database(db_name).username(role))
        .await
        .unwrap();
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> = Arc::new(
        procuhelp_core::vault::FileVault::open_or_create(std::path::Path::new(vault_dir)).unwrap(),
    );
    let sink = Arc::new(PgAuditSink::new(TenantDb::new(pool), vault));
    let org: OrgId = org.parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    for t in 0..16u64 {
        let sink = sink.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let user = procuhelp_core::UserId::new();
            for i in 0.. {
                let e = if i % 3 == 0 {
                    common::personal_event(org, user, t * 1_000_000 + i)
                } else {
                    event(org, t * 1_000_000 + i)
                };
                if let Ok(r) = sink.record(e).await {
                    let _ = tx.send(r.seq.unwrap());
                }
            }
        });
    }
    drop(tx);
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    while let Some(seq) = rx.recv().await {
        writeln!(out, "ACK {seq}").unwrap();
        out.flush().unwrap();
    }
}

/// Waits (at most 20 s) until no other backend of the scratch database is running a
/// statement or holding a transaction open.
async fn wait_for_quiet_backends(f: &Fixture) {
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'",
        )
        .bind(f.scratch.name())
        .fetch_one(&admin)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{busy} backends still busy 20 s after the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    admin.close().await;
}

#[tokio::test]
async fn sigkilled_writer_loses_no_acknowledged_event() {
    let f = Fixture::new().await;
    let spec = format!(
        "{},{},{},{}",
        f.scratch.name(),
        f.scratch.runtime_role().name(),
        f.a,
        f.vault_dir.display()
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("ACK ") {
                acked.push(seq.trim().parse::<u64>().unwrap());
            }
        }
        acked
    });
    // Let it write for a while, then kill it mid-flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut tx = f.db.begin(f.a).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.audit_events")
            .fetch_one(tx.conn())
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        if n > 2000 || std::time::Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    // A statement the child had already sent still commits after the kill (the server
    // finishes it before it notices the closed socket), so count only once the child's
    // backends are gone: no other session of this database is still busy.
    wait_for_quiet_backends(&f).await;
    assert!(
        acked.len() > 100,
        "the child acknowledged only {} events",
        acked.len()
    );
    let mut tx = f.db.begin(f.a).await.unwrap();
    let present: Vec<i64> = sqlx::query_scalar("SELECT seq FROM app.audit_events ORDER BY seq")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let present: BTreeSet<u64> = present.into_iter().map(|s| s as u64).collect();
    for seq in &acked {
        assert!(present.contains(seq), "acknowledged seq {seq} is missing");
    }
    let (events, intact) = chain_ok(&f.db, f.a).await;
    assert!(intact);
    assert_eq!(events as usize, present.len());
    // And the chain continues cleanly after the crash.
    assert_eq!(
        f.sink().record(event(f.a, 0)).await.unwrap().seq,
        Some(events + 1)
    );
    f.teardown().await;
}

#[tokio::test]
async fn append_batch_is_durable_in_order_and_refuses_a_mixed_batch_whole() {
    let f = Fixture::new().await;
    let sink = f.sink();
    let batch: Vec<AuditEvent> = (0..5).map(|n| event(f.a, n)).collect();
    let receipts = sink.append_batch(f.a, &batch).await.unwrap();
    let seqs: Vec<_> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=5).map(Some).collect::<Vec<_>>());
    // Predicted head from this writer's last batch, then a writer elsewhere moves it.
    let receipts = sink.append_batch(f.a, &batch).await.unwrap();
    assert_eq!(receipts.last().unwrap().seq, Some(10));
    f.sink().record(event(f.a, 99)).await.unwrap();
    let receipts = sink.append_batch(f.a, &batch).await.unwrap();
    assert_eq!(receipts.first().unwrap().seq, Some(12));
    // One event of another organisation: nothing of the batch is appended.
    let mut mixed = batch.clone();
    mixed.push(event(f.b, 7));
    assert!(sink.append_batch(f.a, &mixed).await.is_err());
    assert_eq!(chain_ok(&f.db, f.a).await, (16, true));
    assert_eq!(chain_ok(&f.db, f.b).await, (0, true));
    assert!(sink.append_batch(f.a, &[]).await.unwrap().is_empty());
    f.teardown().await;
}

/// One organisation's stalled chain (its lock held by an unfinished transaction, as an
/// import does) holds one writer slot at most: other organisations' events are still
/// written, and the stalled ones are written, in order, once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_chain_does_not_hold_up_other_organisations() {
    let f = Fixture::new().await;
    let sink = Arc::new(f.sink());
    // The chain lock of `a`, held until `holder` commits.
    let mut holder = f.db.begin(f.a).await.unwrap();
    sink.append_all_in_tx(&mut holder, &[event(f.a, 0)])
        .await
        .unwrap();
    // Several batches' worth of `a` events, arriving one after another (each would have
    // been a batch of its own, taking a writer slot and blocking on the lock).
    let mut stalled = Vec::new();
    for n in 1..=4 {
        let sink = sink.clone();
        let org = f.a;
        stalled.push(tokio::spawn(
            async move { sink.record(event(org, n)).await },
        ));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // `b` is written meanwhile.
    let receipt = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sink.record(event(f.b, 0)),
    )
    .await
    .expect("another organisation's chain held up this one")
    .unwrap();
    assert_eq!(receipt.seq, Some(1));
    assert!(stalled.iter().all(|t| !t.is_finished()));
    holder.commit().await.unwrap();
    let mut seqs = Vec::new();
    for t in stalled {
        seqs.push(t.await.unwrap().unwrap().seq.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    assert!(
        sink.verify_live(f.a, &common::pinned(&sink).await)
            .await
            .unwrap()
            .is_intact()
    );
    f.teardown().await;
}
