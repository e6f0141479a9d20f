//! The audit trail's hot paths, each against a peer or a target in the same run:
//!
//! * `append_100` — 100 events appended as the next links of a tenant's hash chain in one
//!   transaction (`PgAuditSink::append_batch`: BEGIN and tenant context, AES-GCM sealing
//!   of personal data and the SHA-256 chain against the predicted head while the
//!   transaction opens, one multi-row INSERT guarded by the chain lock + head check and
//!   checked by the statement-level link trigger, COMMIT) against a
//!   raw batched INSERT of the same 100 rows
//!   (pre-computed, same statement) into a table of the same shape without triggers or
//!   RLS, as the superuser. Target ≥ 0.7×.
//! * `group_commit_64` — 64 tasks each recording events one at a time through
//!   `PgAuditSink::record` to the same tenant, each waiting until its event is durable.
//!   Target ≥ 10,000 acknowledged events/s; the chain is verified afterwards.
//! * `verify_export_100k` — `verify_export` of an in-memory JSON-lines export of 100,000
//!   events (lines parsed and hashed on every core, links checked in order).
//!   Target ≥ 1,000,000 events/s, which the issue set when SHA-256 of a 256-byte record
//!   cost ≈ 0.2 µs: the bench also measures that yardstick (`yardstick_sha256_256b`,
//!   one thread), and the machine-independent target is verify ≤ 5× its time per event.
//!
//! Needs the machine's PostgreSQL (`PROCUHELP_TEST_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `synchronous_commit = on`.
//! Run: `cargo bench -p procuhelp-benches --bench audit`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench set-up failure should stop the bench
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use procuhelp_audit::{
    Action, Actor, AuditEvent, AuditSink, ExportFormat, ExportRange, Outcome, PgAuditSink,
    verify_export, verify_live,
};
use procuhelp_core::vault::{FileVault, SecretProvider};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{TenantDb, create_organisation};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

const BATCH: usize = 100;
const TASKS: usize = 64;
/// Back-to-back (raw, sdk) pairs for the paired append ratio.
const PAIRS: usize = 300;
const EXPORT_EVENTS: usize = 100_000;

struct Fixture {
    scratch: ScratchDb,
    admin: PgPool,
    runtime: PgPool,
    db: TenantDb,
    sink: PgAuditSink,
    vault_dir: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let scratch = ScratchDb::migrated_with(
        &procuhelp_tenancy::migrate::Schema::new().with(procuhelp_audit::MIGRATIONS),
    )
    .await
    .unwrap();
    let admin = scratch.admin_pool(4).await.unwrap();
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(sync, "on", "the bench assumes synchronous_commit = on");
    // The peer's table: same columns, constraints and indexes; no triggers, no RLS.
    sqlx::query(
        "CREATE TABLE public.audit_raw (LIKE app.audit_events INCLUDING DEFAULTS
             INCLUDING CONSTRAINTS INCLUDING INDEXES)",
    )
    .execute(&admin)
    .await
    .unwrap();
    let runtime = scratch.runtime_pool(8).await.unwrap();
    let db = TenantDb::new(runtime.clone());
    let vault_dir = std::env::temp_dir().join(format!("audit-bench-{}", uuid::Uuid::now_v7()));
    let vault: Arc<dyn SecretProvider> = Arc::new(FileVault::open_or_create(&vault_dir).unwrap());
    let sink = PgAuditSink::new(db.clone(), vault);
    Fixture {
        scratch,
        admin,
        runtime,
        db,
        sink,
        vault_dir,
    }
}

async fn new_org(f: &Fixture, name: &str) -> OrgId {
    let owner = f.scratch.owner_pool(1).await.unwrap();
    let org = create_organisation(&owner, name).await.unwrap();
    owner.close().await;
    org
}

/// A realistic event: a user acting from an address, with personal data to seal.
fn event(org: OrgId, user: UserId, n: usize) -> AuditEvent {
    AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        Action::SupplierUpdated,
        Outcome::Success,
    )
    .target(format!("supplier:0191d2a4-6c1e-7a41-9c55-{n:012}"))
    .context(serde_json::json!({ "fields": ["name", "vat_id"], "n": n }))
    .request_id(format!("req-{n}"))
    .source(
        Some("192.0.2.44".parse().unwrap()),
        Some("Mozilla/5.0 (bench)"),
    )
    .person(user, Some("ada@example.com"), Some("Ada Lovelace"))
}

const COLUMNS: &str = "seq, at, actor_kind, actor_id, action, target, outcome, context, \
                       request_id, subject, person_key, personal, prev_hash, hash";

/// The stored rows of the first `BATCH` events of `org`, column by column.
#[derive(sqlx::FromRow)]
struct Columns {
    at: Vec<time::OffsetDateTime>,
    actor_kind: Vec<String>,
    actor_id: Vec<Option<uuid::Uuid>>,
    action: Vec<String>,
    target: Vec<Option<String>>,
    outcome: Vec<String>,
    context: Vec<String>,
    request_id: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    person_key: Vec<Option<uuid::Uuid>>,
    personal: Vec<Option<Vec<u8>>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

async fn stored_columns(admin: &PgPool, org: OrgId) -> Columns {
    sqlx::query_as(
        "SELECT array_agg(at ORDER BY seq) at, array_agg(actor_kind ORDER BY seq) actor_kind,
                array_agg(actor_id ORDER BY seq) actor_id, array_agg(action ORDER BY seq) action,
                array_agg(target ORDER BY seq) target, array_agg(outcome ORDER BY seq) outcome,
                array_agg(context ORDER BY seq) context, array_agg(request_id ORDER BY seq) request_id,
                array_agg(subject ORDER BY seq) subject, array_agg(person_key ORDER BY seq) person_key,
                array_agg(personal ORDER BY seq) personal, array_agg(prev_hash ORDER BY seq) prev_hash,
                array_agg(hash ORDER BY seq) hash
         FROM app.audit_events WHERE org_id = $1 AND seq <= $2",
    )
    .bind(org.as_uuid())
    .bind(BATCH as i64)
    .fetch_one(admin)
    .await
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());

    // (a) batched chained append vs raw batched INSERT of the same rows.
    let org = rt.block_on(new_org(&f, "append"));
    let user = UserId::new();
    let events: Vec<AuditEvent> = (0..BATCH).map(|n| event(org, user, n)).collect();
    let append = || async { f.sink.append_batch(org, &events).await.unwrap() };
    let append_in_tx = || async {
        let mut tx = f.db.begin(org).await.unwrap();
        let receipts = f.sink.append_all_in_tx(&mut tx, &events).await.unwrap();
        tx.commit().await.unwrap();
        receipts
    };
    rt.block_on(append());
    let cols = rt.block_on(stored_columns(&f.admin, org));
    let raw_sql = format!(
        "INSERT INTO public.audit_raw (org_id, {COLUMNS})
         SELECT $1, * FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::uuid[], $6::text[],
                                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                                  $12::uuid[], $13::bytea[], $14::bytea[], $15::bytea[])"
    );
    let next_seq = std::sync::atomic::AtomicI64::new(1);
    let raw = || async {
        let first = next_seq.fetch_add(BATCH as i64, std::sync::atomic::Ordering::Relaxed);
        let seqs: Vec<i64> = (first..first + BATCH as i64).collect();
        let mut tx = f.admin.begin().await.unwrap();
        sqlx::query(&raw_sql)
            .bind(org.as_uuid())
            .bind(seqs)
            .bind(&cols.at)
            .bind(&cols.actor_kind)
            .bind(&cols.actor_id)
            .bind(&cols.action)
            .bind(&cols.target)
            .bind(&cols.outcome)
            .bind(&cols.context)
            .bind(&cols.request_id)
            .bind(&cols.subject)
            .bind(&cols.person_key)
            .bind(&cols.personal)
            .bind(&cols.prev_hash)
            .bind(&cols.hash)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let mut g = c.benchmark_group("append_100");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    // Interleaved: every timed call of one is followed by an untimed call of the other, so
    // both are measured under the same conditions (table sizes, autovacuum, WAL
    // checkpoints, fsync latency), which drift over a run; measured one after the other,
    // the ratio moved by ±0.06 between runs.
    let (raw, append) = (&raw, &append);
    g.bench_function("raw_batched_insert", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| interleaved(iters, raw, append))
    });
    g.bench_function("sdk_chained_append", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| interleaved(iters, append, raw))
    });
    // Informational: the same batch inside a transaction the caller opened and commits.
    g.bench_function("sdk_append_in_callers_tx", |b| {
        b.to_async(&rt).iter(append_in_tx)
    });
    g.finish();
    // The same comparison, paired: criterion measures one function after the other, so
    // a WAL checkpoint or fsync drift during one window biases the ratio. Here each pair
    // runs both back to back (alternating which goes first) and the ratio is per pair.
    let mut ratios: Vec<f64> = rt.block_on(async {
        let mut ratios = Vec::with_capacity(PAIRS);
        for i in 0..PAIRS {
            let (mut t_raw, mut t_sdk) = (Duration::ZERO, Duration::ZERO);
            for first_raw in [i % 2 == 0, i % 2 != 0] {
                let start = Instant::now();
                if first_raw {
                    raw().await;
                    t_raw += start.elapsed();
                } else {
                    append().await;
                    t_sdk += start.elapsed();
                }
            }
            ratios.push(t_raw.as_secs_f64() / t_sdk.as_secs_f64());
        }
        ratios
    });
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "append_100 paired ({PAIRS} pairs): raw/sdk median {:.3}x (p10 {:.3}x, p90 {:.3}x)",
        at(0.5),
        at(0.1),
        at(0.9)
    );
    let (n, intact) = rt.block_on(chain(&f.db, org));
    assert!(intact, "append chain broken");
    eprintln!("append_100: chain of {n} events verified");

    // (b) group commit: 64 closed-loop clients, one event at a time, each awaited.
    let org = rt.block_on(new_org(&f, "group commit"));
    let users: Vec<UserId> = (0..TASKS).map(|_| UserId::new()).collect();
    let mut g = c.benchmark_group("group_commit_64");
    g.throughput(Throughput::Elements(TASKS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("record_awaited", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sink = f.sink.clone();
            let users = users.clone();
            async move {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(TASKS);
                for user in users {
                    let sink = sink.clone();
                    tasks.push(tokio::spawn(async move {
                        for n in 0..iters {
                            sink.record(event(org, user, n as usize)).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    g.finish();
    let (n, intact) = rt.block_on(chain(&f.db, org));
    assert!(intact, "group-commit chain broken");
    eprintln!("group_commit_64: chain of {n} events verified");

    // (c) verification of an exported file.
    let org = rt.block_on(new_org(&f, "export"));
    let export = rt.block_on(async {
        let user = UserId::new();
        for chunk in 0..EXPORT_EVENTS / 1000 {
            let batch: Vec<AuditEvent> = (0..1000)
                .map(|n| event(org, user, chunk * 1000 + n))
                .collect();
            let mut tx = f.db.begin(org).await.unwrap();
            f.sink.append_all_in_tx(&mut tx, &batch).await.unwrap();
            tx.commit().await.unwrap();
        }
        let access = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::AuditExported,
            Outcome::Success,
        );
        let mut out = Vec::with_capacity(64 << 20);
        f.sink
            .export(
                access,
                ExportRange::default(),
                ExportFormat::JsonLines,
                &mut out,
            )
            .await
            .unwrap();
        out
    });
    let report = verify_export(
        &export[..],
        &procuhelp_audit::Trust::DangerouslyTrustEmbeddedKeys,
    )
    .unwrap();
    assert!(report.is_intact() && report.events as usize > EXPORT_EVENTS);
    eprintln!(
        "verify_export: {} events, {} bytes, {} checkpoint(s)",
        report.events,
        export.len(),
        report.checkpoints_verified
    );
    let mut g = c.benchmark_group("verify_export_100k");
    g.throughput(Throughput::Elements(report.events));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("verify_export", |b| {
        b.iter(|| {
            let r = verify_export(
                &export[..],
                &procuhelp_audit::Trust::DangerouslyTrustEmbeddedKeys,
            )
            .unwrap();
            assert!(r.is_intact());
            r
        })
    });
    // The yardstick, measured in the same run: SHA-256 of one 256-byte record
    // per event, on one thread ("≈ 0.2 µs here" when the 1,000,000 events/s target was
    // set, i.e. the target is 5× this cost per event). BENCHMARKS.md states the target
    // as that ratio, so it holds on a faster or slower machine alike.
    let records: Vec<[u8; 256]> = (0..report.events)
        .map(|n| {
            let mut r = [0u8; 256];
            for (i, b) in r.iter_mut().enumerate() {
                *b = (n as usize).wrapping_add(i) as u8;
            }
            r
        })
        .collect();
    g.bench_function("yardstick_sha256_256b", |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for r in &records {
                acc ^= Sha256::digest(r)[0];
            }
            acc
        })
    });
    g.finish();

    rt.block_on(async {
        f.runtime.close().await;
        f.admin.close().await;
    });
    std::fs::remove_dir_all(&f.vault_dir).ok();
    drop(f.sink);
    rt.block_on(f.scratch.drop_all()).unwrap();
}

/// `iters` calls of `timed`, each followed by an untimed call of `other`; the time of the
/// `timed` calls.
async fn interleaved<T, TF, O, OF>(iters: u64, timed: &T, other: &O) -> Duration
where
    T: Fn() -> TF,
    TF: std::future::Future,
    O: Fn() -> OF,
    OF: std::future::Future,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        timed().await;
        total += start.elapsed();
        other().await;
    }
    total
}

async fn chain(db: &TenantDb, org: OrgId) -> (u64, bool) {
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

criterion_group!(benches, bench);
criterion_main!(benches);
