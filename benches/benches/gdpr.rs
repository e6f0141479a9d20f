//! A data subject's requests at scale (issue #14): export and erasure of one person on a
//! database of 1,000 organisations x 10,000 users (10 million users, one session each,
//! about a million purchase requests, and 10,000 audit events with personal data in each
//! measured organisation), through `procuhelp_axum::subject_rights` as the API runs them.
//!
//! Peer, in the same run: the two lookups a hand-written export cannot avoid — the user's
//! row by e-mail and their sessions by user id — as a superuser with explicit
//! `WHERE org_id`, in one transaction.
//!
//! Needs the machine's PostgreSQL (`PROCUHELP_TEST_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and about 10 GB of disk; seeding takes
//! several minutes. Run: `cargo bench -p procuhelp-benches --bench gdpr`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench set-up failure should stop the bench
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome, PgAuditSink};
use procuhelp_auth::directory::Email;
use procuhelp_axum::subject_rights::{self, Person};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::personal_data::PersonalTable;
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{TenantDb, create_organisation};
use sqlx::PgPool;
use uuid::Uuid;

const ORGS: usize = 1_000;
const USERS_PER_ORG: i32 = 10_000;
/// Organisations whose users get audit events (the export reads them).
const MEASURED_ORGS: usize = 4;

struct Fixture {
    scratch: ScratchDb,
    raw: PgPool,
    db: TenantDb,
    log: PgAuditSink,
    register: Vec<PersonalTable>,
    /// (organisation, user id, e-mail) of users in the measured organisations.
    people: Vec<(OrgId, UserId, String)>,
}

async fn fixture() -> Fixture {
    let started = Instant::now();
    let schema = procuhelp_server::database::schema();
    let scratch = ScratchDb::migrated_with(&schema).await.unwrap();
    let owner = scratch.owner_pool(2).await.unwrap();
    let mut orgs = Vec::with_capacity(ORGS);
    for i in 0..ORGS {
        orgs.push(
            create_organisation(&owner, &format!("org {i}"))
                .await
                .unwrap(),
        );
    }
    owner.close().await;
    let admin = scratch.admin_pool(2).await.unwrap();
    for chunk in orgs.chunks(20) {
        let ids: Vec<Uuid> = chunk.iter().map(|o| o.as_uuid()).collect();
        sqlx::query(
            "INSERT INTO app.users (org_id, id, email, display_name, role, status, created_at,
                 changed_at)
             SELECT o, gen_random_uuid(), 'user' || g || '@' || left(o::text, 8) || '.test',
                 'User ' || g, CASE WHEN g <= 2 THEN 'admin' ELSE 'requester' END, 'active',
                 now(), now()
             FROM unnest($1::uuid[]) AS o, generate_series(1, $2) AS g",
        )
        .bind(&ids)
        .bind(USERS_PER_ORG)
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO app.sessions (org_id, id, token_hash, user_id, stage, created_at,
                 last_seen_at, idle_secs, expires_at, source, user_agent)
             SELECT org_id, gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), id, 'full',
                 now(), now(), 1800, now() + interval '8 hours', '192.0.2.1', 'bench'
             FROM app.users WHERE org_id = ANY($1)",
        )
        .bind(&ids)
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO app.purchase_requests (org_id, id, title, amount_cents, requested_by)
             SELECT org_id, gen_random_uuid(), 'Request of ' || display_name, 10000, id
             FROM app.users TABLESAMPLE BERNOULLI (10) WHERE org_id = ANY($1)",
        )
        .bind(&ids)
        .execute(&admin)
        .await
        .unwrap();
    }
    eprintln!(
        "seeded users, sessions, requests in {:?}",
        started.elapsed()
    );
    let vault_dir = std::env::temp_dir().join(format!("ph-bench-gdpr-{}", Uuid::new_v4().simple()));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let runtime = scratch.runtime_pool(4).await.unwrap();
    let db = TenantDb::new(runtime.clone());
    let log = PgAuditSink::new(db.clone(), vault);
    let mut people = Vec::new();
    for org in &orgs[..MEASURED_ORGS] {
        let users: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, email FROM app.users WHERE org_id = $1 ORDER BY email")
                .bind(org.as_uuid())
                .fetch_all(&admin)
                .await
                .unwrap();
        // One sign-in event per user, with their address sealed under their own key.
        for chunk in users.chunks(1000) {
            let events: Vec<AuditEvent> = chunk
                .iter()
                .map(|(id, email)| {
                    let user = UserId::from_uuid(*id).unwrap();
                    AuditEvent::new(
                        Some(*org),
                        Actor::User { id: user },
                        Action::LoginSucceeded,
                        Outcome::Success,
                    )
                    .person(user, Some(email), None)
                    .source(Some("192.0.2.7".parse().unwrap()), Some("bench"))
                })
                .collect();
            log.append_batch(*org, &events).await.unwrap();
        }
        people.extend(
            users
                .into_iter()
                .filter(|(_, e)| !e.starts_with("user1@") && !e.starts_with("user2@"))
                .map(|(id, email)| (*org, UserId::from_uuid(id).unwrap(), email)),
        );
    }
    sqlx::query("VACUUM ANALYZE").execute(&admin).await.unwrap();
    eprintln!("fixture ready in {:?}", started.elapsed());
    Fixture {
        scratch,
        raw: admin,
        db,
        log,
        register: schema.personal_data().copied().collect(),
        people,
    }
}

fn event(org: OrgId, action: Action) -> AuditEvent {
    AuditEvent::new(Some(org), Actor::System, action, Outcome::Success)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let next = AtomicUsize::new(0);
    let mut g = c.benchmark_group("gdpr");
    g.sample_size(20).measurement_time(Duration::from_secs(10));

    g.bench_function("peer_user_and_sessions_by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, _, email) = &f.people[next.fetch_add(1, Ordering::Relaxed) % 5000];
            let mut tx = f.raw.begin().await.unwrap();
            let user: serde_json::Value = sqlx::query_scalar(
                "SELECT to_jsonb(u) FROM app.users u WHERE org_id = $1 AND email = $2",
            )
            .bind(org.as_uuid())
            .bind(email)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            let sessions: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT to_jsonb(s) FROM app.sessions s WHERE org_id = $1 AND user_id = $2",
            )
            .bind(org.as_uuid())
            .bind(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap())
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            sessions.len()
        })
    });

    g.bench_function("export_one_person", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, _, email) = &f.people[next.fetch_add(1, Ordering::Relaxed) % 5000];
            let mut tx = f.db.begin(*org).await.unwrap();
            let who = Person::Email(Email::parse(email).unwrap());
            let export = subject_rights::export(
                &mut tx,
                &f.log,
                &f.register,
                &who,
                event(*org, Action::PersonalDataExported),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            assert!(!export.audit_events.is_empty());
            export.tables.len()
        })
    });

    // Each iteration erases a person never erased before (from the end of the list, away
    // from those the export reads).
    let erased = AtomicUsize::new(0);
    g.bench_function("erase_one_person", |b| {
        b.to_async(&rt).iter(|| async {
            let i = f.people.len() - 1 - erased.fetch_add(1, Ordering::Relaxed);
            let (org, id, _) = &f.people[i];
            let mut tx = f.db.begin(*org).await.unwrap();
            let report = subject_rights::erase(
                &mut tx,
                &f.log,
                &f.register,
                &Person::Id(*id),
                event(*org, Action::PersonalDataErased),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(report.audit_keys_erased, 1);
            report.sessions_ended
        })
    });
    g.finish();
    eprintln!("erased {} people", erased.load(Ordering::Relaxed));
    rt.block_on(async {
        f.raw.close().await;
        f.scratch.drop_all().await.unwrap();
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
