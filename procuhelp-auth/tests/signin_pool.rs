//! Sign-in under concurrency, on a real PostgreSQL with small connection pools (issue #11
//! findings 1 and 4): a burst of sign-ins never stalls the pool, parallel guesses never
//! exceed the throttle's allowance, and a saturated password hasher answers at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod auth_fx;

use std::sync::Arc;
use std::time::{Duration, Instant};

use procuhelp_audit::MemorySink;
use procuhelp_auth::hash_limiter::HashLimiter;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::throttle::{LoginThrottle, ThrottlePolicy};
use procuhelp_auth::{AuthError, Authenticator, ClientInfo, Role};
use procuhelp_core::{ManualClock, OrgId, SecretText};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use auth_fx::PASSWORD;

struct Fx {
    scratch: ScratchDb,
    pool: PgPool,
    key_pool: PgPool,
    db: TenantDb,
    auth: Authenticator,
    audit: Arc<MemorySink>,
    orgs: [OrgId; 2],
    vault_dir: std::path::PathBuf,
}

/// A migrated database with two organisations and one user (`user@a.test`) in the first,
/// and an authenticator (made by `configure`) on a runtime pool of `size` connections that
/// gives up waiting for a connection after `acquire_timeout`.
async fn fx_with(
    size: u32,
    acquire_timeout: Duration,
    hasher: PasswordHasher,
    configure: impl FnOnce(Authenticator) -> Authenticator,
) -> Fx {
    let (scratch, [a, b]) = auth_fx::two_orgs().await;
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .connect_with(scratch.options_for(scratch.runtime_role().name()))
        .await
        .unwrap();
    // Key management has a pool of its own, as in the server.
    let key_pool = scratch.runtime_pool(2).await.unwrap();
    let (vault_dir, cipher) = auth_fx::file_cipher("ph-pool", TenantDb::new(key_pool.clone()));
    let db = TenantDb::new(pool.clone());
    let phc = hasher.hash(&SecretText::new(PASSWORD.to_owned())).unwrap();
    let now = time::OffsetDateTime::now_utc();
    auth_fx::create_user(
        &db,
        a,
        "user@a.test",
        "User",
        Role::Requester,
        Some(phc),
        now,
    )
    .await;
    let audit = Arc::new(MemorySink::new());
    let auth = configure(Authenticator::new(
        db.clone(),
        Arc::new(hasher),
        LoginThrottle::new(pool.clone(), ThrottlePolicy::default()),
        procuhelp_auth::totp::Totp::new("Test"),
        cipher,
        audit.clone(),
        Arc::new(ManualClock::new(
            time::macros::datetime!(2026-11-25 09:00 UTC),
        )),
        Default::default(),
    ));
    Fx {
        scratch,
        pool,
        key_pool,
        db,
        auth,
        audit,
        orgs: [a, b],
        vault_dir,
    }
}

impl Fx {
    async fn close(self) {
        self.pool.close().await;
        self.key_pool.close().await;
        self.scratch.drop_all().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.vault_dir);
    }
}

/// Finding 1: a sign-in never holds one pooled connection while it waits for another, so
/// four times as many concurrent wrong-password sign-ins as the pool has connections all
/// finish promptly, and another organisation is served while they run. (The old code held
/// the tenant transaction while asking the same pool for the throttle's connection: every
/// connection waited for a second one until the acquire timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_never_stalls_the_pool() {
    const SIZE: u32 = 3;
    // Permits for the whole burst: the pool, not the hashing bound, is what is tested.
    let permits = HashLimiter::new(4 * SIZE as usize, Duration::from_secs(2));
    let fx = fx_with(
        SIZE,
        Duration::from_secs(5),
        PasswordHasher::for_tests(),
        |a| a.with_hash_limiter(permits),
    )
    .await;
    let started = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..(4 * SIZE) {
        let auth = fx.auth.clone();
        let org = fx.orgs[0];
        burst.spawn(async move {
            auth.login(
                org,
                &format!("guess{i}@a.test"),
                SecretText::new("not the password".into()),
                &ClientInfo::default(),
            )
            .await
        });
    }
    // Another organisation's request during the burst gets a connection at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Instant::now();
    let other = tokio::time::timeout(Duration::from_secs(2), fx.db.begin(fx.orgs[1]))
        .await
        .expect("another organisation waited more than 2 s for a connection")
        .unwrap();
    other.rollback().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let results = tokio::time::timeout(Duration::from_secs(3), burst.join_all())
        .await
        .expect("the burst of sign-ins did not finish within 3 s");
    for r in results {
        assert!(
            matches!(
                r,
                Err(AuthError::InvalidCredentials | AuthError::Throttled { .. })
            ),
            "{r:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    fx.close().await;
}

/// Finding 4: N parallel wrong guesses for one account are reserved one by one before any
/// is verified, so no more than the free allowance plus the one that starts the back-off
/// are ever verified; the rest are throttled. (The old check-verify-record let all pass.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_never_exceed_the_allowance() {
    const N: usize = 16;
    // Hashing costs a few milliseconds, so the guesses overlap.
    let hasher = PasswordHasher::with_params(4 * 1024, 2, 1).unwrap();
    let fx = fx_with(40, Duration::from_secs(10), hasher, |a| {
        a.with_hash_limiter(HashLimiter::new(N, Duration::from_secs(5)))
    })
    .await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..N {
        let auth = fx.auth.clone();
        let org = fx.orgs[0];
        guesses.spawn(async move {
            auth.login(
                org,
                "user@a.test",
                SecretText::new(format!("wrong guess {i}")),
                &ClientInfo::default(),
            )
            .await
        });
    }
    let (mut verified, mut throttled) = (0, 0);
    for r in guesses.join_all().await {
        match r {
            Err(AuthError::InvalidCredentials) => verified += 1,
            Err(AuthError::Throttled { .. }) => throttled += 1,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    let allowed = usize::try_from(ThrottlePolicy::default().account_free).unwrap() + 1;
    assert!(
        verified <= allowed,
        "{verified} of {N} parallel guesses were verified (allowance {allowed}), {throttled} throttled"
    );
    assert_eq!(verified + throttled, N);
    fx.close().await;
}

/// Finding 4: with every hashing permit taken, a sign-in is refused at once with
/// `Busy` (and a `Retry-After`), before anything is looked up, counted or recorded; once a
/// permit is free, sign-in works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_hashing_bound_refuses_fast_and_counts_nothing() {
    let fx = fx_with(
        4,
        Duration::from_secs(5),
        PasswordHasher::for_tests(),
        |a| a.with_hash_limiter(HashLimiter::new(1, Duration::from_millis(50))),
    )
    .await;
    let held = fx.auth.hash_limiter().acquire().await.unwrap();
    let client = ClientInfo::default();
    let login = |password: &str| {
        fx.auth.login(
            fx.orgs[0],
            "user@a.test",
            SecretText::new(password.to_owned()),
            &client,
        )
    };
    let t = Instant::now();
    let refused = login("not the password").await;
    assert!(
        matches!(refused, Err(AuthError::Busy { retry_after }) if retry_after >= time::Duration::seconds(1)),
        "{refused:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        fx.audit.events().is_empty(),
        "a busy refusal records nothing"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM app.login_throttle")
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a busy refusal counts nothing");
    drop(held);
    assert!(login(PASSWORD).await.is_ok());
    fx.close().await;
}
