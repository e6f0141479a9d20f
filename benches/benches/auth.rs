//! Sign-in's hot paths, each against a peer measured in the same run:
//!
//! * Argon2id with OWASP parameters (m = 19 MiB, t = 2, p = 1): our `PasswordHasher`
//!   against the `argon2` crate called directly, and against PyPI `argon2-cffi` (the
//!   reference C implementation) timed by its own process in the same run.
//! * Session lookup per request: `session::authenticate` (hash lookup, expiry,
//!   user status, elevation, last-seen update in one statement) against a bare
//!   `SELECT user_id FROM app.sessions WHERE token_hash = $1`, both in a tenant
//!   transaction.
//!
//! Needs the machine's PostgreSQL and `python3 -m pip install argon2-cffi` (scripts/setup.sh).
//! Run: `cargo bench -p procuhelp-benches --bench auth`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench set-up failure should stop the bench
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::process::Command;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, SaltString, rand_core::OsRng};
use criterion::{Criterion, criterion_group, criterion_main};
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::session::{self, NewSession, SessionPolicy, SessionStage};
use procuhelp_core::SecretText;
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;

const PASSWORD: &str = "correct horse battery staple";

fn argon2id(c: &mut Criterion) {
    let mut g = c.benchmark_group("argon2id_owasp_hash");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    let ours = PasswordHasher::default();
    let secret = SecretText::new(PASSWORD.to_owned());
    g.bench_function("sdk_password_hasher", |b| {
        b.iter(|| ours.hash(&secret).unwrap())
    });
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap();
    let raw = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    g.bench_function("argon2_crate_direct", |b| {
        b.iter(|| {
            let salt = SaltString::generate(&mut OsRng);
            raw.hash_password(PASSWORD.as_bytes(), &salt)
                .unwrap()
                .to_string()
        })
    });
    // The reference C implementation, timed inside its own process (start-up excluded).
    g.bench_function("argon2_cffi_reference", |b| {
        b.iter_custom(|iters| {
            let script = format!(
                "import time\nfrom argon2 import PasswordHasher, Type\n\
                 h = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)\n\
                 t = time.perf_counter()\nfor _ in range({iters}): h.hash('{PASSWORD}')\n\
                 print(time.perf_counter() - t)"
            );
            let out = Command::new("python3")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "argon2-cffi missing: run scripts/setup.sh"
            );
            let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            Duration::from_secs_f64(secs)
        })
    });
    g.finish();
}

fn session_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (scratch, db, org, credentials) = rt.block_on(async {
        let scratch = ScratchDb::migrated_with(
            &procuhelp_tenancy::migrate::Schema::new()
                .with(procuhelp_auth::MIGRATIONS)
                .with(procuhelp_audit::MIGRATIONS),
        )
        .await
        .unwrap();
        let owner = scratch.owner_pool(1).await.unwrap();
        let org = procuhelp_tenancy::create_organisation(&owner, "bench")
            .await
            .unwrap();
        owner.close().await;
        let db = TenantDb::new(scratch.runtime_pool(2).await.unwrap());
        let mut tx = db.begin(org).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let mut credentials = Vec::new();
        for i in 0..200 {
            let user = directory::create(
                &mut tx,
                NewUser {
                    email: Email::parse(&format!("u{i}@bench.test")).unwrap(),
                    display_name: "u".into(),
                    role: None,
                    password_hash: None,
                },
                now,
            )
            .await
            .unwrap();
            let (_, credential) = session::open(
                &mut tx,
                NewSession {
                    user,
                    stage: SessionStage::Full,
                    amr: &["pwd"],
                    policy: SessionPolicy::default(),
                    source: None,
                    user_agent: None,
                },
                now,
            )
            .await
            .unwrap();
            credentials.push(credential);
        }
        tx.commit().await.unwrap();
        (scratch, db, org, credentials)
    });
    let mut g = c.benchmark_group("session_lookup");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    g.bench_function("sdk_authenticate", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % credentials.len();
            let credential = &credentials[i];
            let db = db.clone();
            async move {
                let mut tx = db.begin(org).await.unwrap();
                let p = session::authenticate(&mut tx, credential, time::OffsetDateTime::now_utc())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                p
            }
        })
    });
    let mut j = 0usize;
    g.bench_function("bare_select_by_hash", |b| {
        b.to_async(&rt).iter(|| {
            j = (j + 1) % credentials.len();
            let hash = credentials[j].token.hash();
            let db = db.clone();
            async move {
                let mut tx = db.begin(org).await.unwrap();
                let user: uuid::Uuid =
                    sqlx::query_scalar("SELECT user_id FROM app.sessions WHERE token_hash = $1")
                        .bind(hash.as_slice())
                        .fetch_one(tx.conn())
                        .await
                        .unwrap();
                tx.commit().await.unwrap();
                user
            }
        })
    });
    g.finish();
    rt.block_on(async {
        db.close().await;
        scratch.drop_all().await.unwrap();
    });
}

criterion_group!(benches, argon2id, session_lookup);
criterion_main!(benches);
