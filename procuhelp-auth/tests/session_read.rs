//! One-round-trip authenticated reads (`session_read`, `app.enter_session`) on a real
//! PostgreSQL, as the runtime role: a valid session reads its own organisation's rows in
//! one statement; every refusal (unknown, other organisation's, revoked, expired, idle,
//! disabled user, second factor pending, missing permission) returns no row and has its
//! own SQLSTATE; what must be audited first takes the transactional path; and the read
//! is one round trip on the wire (counted by a proxy between the pool and PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth_fx.rs"]
mod fx;

use std::sync::Arc;
use std::sync::Mutex;

use procuhelp_auth::directory::{self, UserStatus};
use procuhelp_auth::session::{self, Credential, SessionPolicy, SessionStage, SessionToken};
use procuhelp_auth::session_read::{self, AuthenticatedRead, ReadOnce};
use procuhelp_auth::{AuthError, Permission, Role};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use sqlx::postgres::{PgPoolOptions, PgSslMode};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Every user of the organisation, whatever the query filters: RLS scopes it.
const EMAILS: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT u.email FROM app.users u WHERE tenant.org IS NOT NULL ORDER BY u.email",
);

struct World {
    scratch: ScratchDb,
    db: TenantDb,
    a: OrgId,
    b: OrgId,
    now: OffsetDateTime,
}

async fn world() -> World {
    let (scratch, [a, b]) = fx::two_orgs().await;
    let db = TenantDb::new(scratch.runtime_pool(2).await.unwrap());
    World {
        scratch,
        db,
        a,
        b,
        now: OffsetDateTime::now_utc(),
    }
}

impl World {
    async fn user(&self, org: OrgId, email: &str, role: Role) -> UserId {
        fx::create_user(&self.db, org, email, "u", role, None, self.now).await
    }

    async fn session(
        &self,
        org: OrgId,
        user: UserId,
        stage: SessionStage,
        policy: SessionPolicy,
    ) -> (Uuid, Credential) {
        fx::open_session(&self.db, org, user, stage, policy, self.now).await
    }

    async fn read(
        &self,
        credential: &Credential,
        permission: Permission,
        at: OffsetDateTime,
    ) -> Result<ReadOnce<(String,)>, AuthError> {
        session_read::fetch_all(
            &self.db,
            credential,
            permission,
            at,
            &EMAILS.query_as::<(String,)>(),
        )
        .await
    }

    /// The SQLSTATE `app.enter_session` raises for `credential` at `at`.
    async fn sqlstate(
        &self,
        credential: &Credential,
        permission: Permission,
        at: OffsetDateTime,
    ) -> String {
        let holders: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| r.allows(permission))
            .map(Role::as_str)
            .collect();
        let pool = self.scratch.runtime_pool(1).await.unwrap();
        let err = sqlx::query("SELECT * FROM app.enter_session($1, $2, $3, $4, $5)")
            .bind(credential.org.as_uuid())
            .bind(credential.token.hash().to_vec())
            .bind(at)
            .bind(holders)
            .bind(permission.elevation_may_grant())
            .fetch_all(&pool)
            .await
            .expect_err("enter_session should refuse");
        pool.close().await;
        match err {
            sqlx::Error::Database(db) => db.code().unwrap().into_owned(),
            other => panic!("not a database error: {other:?}"),
        }
    }

    async fn elevation(
        &self,
        org: OrgId,
        user: UserId,
        role: &str,
        starts: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Uuid {
        fx::active_elevation(&self.db, org, user, role, starts, expires).await
    }

    async fn done(self) {
        self.db.close().await;
        self.scratch.drop_all().await.unwrap();
    }
}

fn rows(read: ReadOnce<(String,)>) -> Vec<String> {
    match read {
        ReadOnce::Read(r) => r.rows.into_iter().map(|(e,)| e).collect(),
        ReadOnce::NeedsTransaction => panic!("expected rows, got NeedsTransaction"),
    }
}

fn refused(result: Result<ReadOnce<(String,)>, AuthError>) -> AuthError {
    match result {
        Ok(ReadOnce::Read(r)) => panic!("expected a refusal, got {} rows", r.rows.len()),
        Ok(ReadOnce::NeedsTransaction) => panic!("expected a refusal, got NeedsTransaction"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_valid_session_reads_its_own_organisations_rows_and_is_touched() {
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    w.user(w.a, "a2@a.test", Role::Admin).await;
    w.user(w.b, "b1@b.test", Role::Admin).await;
    let (session, credential) = w
        .session(w.a, me, SessionStage::Full, SessionPolicy::default())
        .await;

    let read = w
        .read(&credential, Permission::ReadSuppliers, w.now)
        .await
        .unwrap();
    let ReadOnce::Read(read) = read else {
        panic!("NeedsTransaction")
    };
    assert_eq!(read.principal.session, session);
    assert_eq!(read.principal.user, me);
    assert_eq!(read.principal.base_role, Role::ReadOnly);
    assert_eq!(read.principal.stage, SessionStage::Full);
    assert_eq!(read.principal.amr, vec!["pwd".to_owned()]);
    assert!(read.principal.elevation.is_none());
    // The query has no org filter of its own: row-level security kept B's user out.
    let emails: Vec<String> = read.rows.into_iter().map(|(e,)| e).collect();
    assert_eq!(emails, ["a1@a.test", "a2@a.test"]);

    // An empty result still authenticates (the principal comes with no rows).
    const NONE: AuthenticatedRead = AuthenticatedRead::new(
        "SELECT u.email FROM app.users u WHERE u.org_id = tenant.org AND false",
    );
    let read = session_read::fetch_all(
        &w.db,
        &credential,
        Permission::ReadSuppliers,
        w.now,
        &NONE.query_as::<(String,)>(),
    )
    .await
    .unwrap();
    let ReadOnce::Read(read) = read else {
        panic!("NeedsTransaction")
    };
    assert!(read.rows.is_empty());
    assert_eq!(read.principal.user, me);

    // Used again two minutes later: last_seen_at moves (at most once a minute), so the
    // idle timeout counts from the last use, as with the transactional lookup.
    let later = w.now + Duration::minutes(2);
    rows(
        w.read(&credential, Permission::ReadSuppliers, later)
            .await
            .unwrap(),
    );
    let mut tx = w.db.begin(w.a).await.unwrap();
    let seen: OffsetDateTime =
        sqlx::query_scalar("SELECT last_seen_at FROM app.sessions WHERE id = $1")
            .bind(session)
            .fetch_one(tx.conn())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seen.unix_timestamp(), later.unix_timestamp());
    // 29 minutes after that use it is still valid, though 31 after the first one.
    rows(
        w.read(
            &credential,
            Permission::ReadSuppliers,
            later + Duration::minutes(29),
        )
        .await
        .unwrap(),
    );
    w.done().await;
}

#[tokio::test]
async fn every_refusal_returns_no_row_and_has_its_own_sqlstate() {
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let other = w.user(w.b, "b1@b.test", Role::Admin).await;
    let read = Permission::ReadSuppliers;
    let short = SessionPolicy {
        idle: Duration::minutes(30),
        absolute: Duration::hours(1),
    };
    let (_, valid) = w.session(w.a, me, SessionStage::Full, short).await;

    // Unknown token; a token of organisation B presented as A's; an unknown organisation.
    let unknown = Credential {
        org: w.a,
        token: SessionToken::generate().unwrap(),
    };
    let (_, b_session) = w.session(w.b, other, SessionStage::Full, short).await;
    let b_as_a = Credential::parse(&b_session.expose().replacen(
        &w.b.to_string(),
        &w.a.to_string(),
        1,
    ))
    .unwrap();
    let nowhere = Credential::parse(&valid.expose().replacen(
        &w.a.to_string(),
        &Uuid::new_v4().to_string(),
        1,
    ))
    .unwrap();
    for c in [&unknown, &b_as_a, &nowhere] {
        assert!(matches!(
            refused(w.read(c, read, w.now).await),
            AuthError::Unauthenticated
        ));
        assert_eq!(w.sqlstate(c, read, w.now).await, "PHA01");
    }
    // B's own credential still works in B: the refusal was about the organisation.
    assert_eq!(
        rows(w.read(&b_session, read, w.now).await.unwrap()),
        ["b1@b.test"]
    );

    // Idle for 31 minutes; past the absolute lifetime (kept busy, so not idle).
    let idle = w.now + Duration::minutes(31);
    assert!(matches!(
        refused(w.read(&valid, read, idle).await),
        AuthError::Unauthenticated
    ));
    assert_eq!(w.sqlstate(&valid, read, idle).await, "PHA04");
    for minutes in [20, 40, 59] {
        rows(
            w.read(&valid, read, w.now + Duration::minutes(minutes))
                .await
                .unwrap(),
        );
    }
    let old = w.now + Duration::minutes(61);
    assert!(matches!(
        refused(w.read(&valid, read, old).await),
        AuthError::Unauthenticated
    ));
    assert_eq!(w.sqlstate(&valid, read, old).await, "PHA03");

    // Revoked.
    let (id, revoked) = w.session(w.a, me, SessionStage::Full, short).await;
    let mut tx = w.db.begin(w.a).await.unwrap();
    assert!(session::revoke(&mut tx, id, None, w.now).await.unwrap());
    tx.commit().await.unwrap();
    assert!(matches!(
        refused(w.read(&revoked, read, w.now).await),
        AuthError::Unauthenticated
    ));
    assert_eq!(w.sqlstate(&revoked, read, w.now).await, "PHA02");

    // Second factor pending: 403 (SecondFactorRequired), as Principal::require says.
    let (_, half) = w.session(w.a, me, SessionStage::SecondFactor, short).await;
    assert!(matches!(
        refused(w.read(&half, read, w.now).await),
        AuthError::SecondFactorRequired
    ));
    assert_eq!(w.sqlstate(&half, read, w.now).await, "PHA06");

    // Missing permission: a read-only user asking to manage suppliers.
    let (_, fresh) = w.session(w.a, me, SessionStage::Full, short).await;
    assert!(matches!(
        refused(w.read(&fresh, Permission::ManageSuppliers, w.now).await),
        AuthError::Forbidden
    ));
    assert_eq!(
        w.sqlstate(&fresh, Permission::ManageSuppliers, w.now).await,
        "PHA07"
    );

    // Disabled user: every session of theirs stops at once.
    let mut tx = w.db.begin(w.a).await.unwrap();
    directory::set_status(&mut tx, me, UserStatus::Disabled, w.now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(
        refused(w.read(&fresh, read, w.now).await),
        AuthError::Unauthenticated
    ));
    assert_eq!(w.sqlstate(&fresh, read, w.now).await, "PHA05");

    // A query that does not enter through tenant.org is refused before it is sent.
    const BARE: AuthenticatedRead = AuthenticatedRead::new("SELECT email FROM app.users");
    let e = session_read::fetch_all(
        &w.db,
        &b_session,
        read,
        w.now,
        &BARE.query_as::<(String,)>(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AuthError::Invalid { .. }));
    w.done().await;
}

#[tokio::test]
async fn what_must_be_audited_first_takes_the_transactional_path() {
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    // Idle timeout longer than the elevation, so the session outlives it.
    let long = SessionPolicy {
        idle: Duration::hours(2),
        absolute: Duration::hours(12),
    };
    let (_, credential) = w.session(w.a, me, SessionStage::Full, long).await;
    // An elevation to admin in force: a permission only it grants needs its use recorded.
    let elevation = w
        .elevation(
            w.a,
            me,
            "admin",
            w.now - Duration::minutes(1),
            w.now + Duration::minutes(30),
        )
        .await;
    assert!(matches!(
        w.read(&credential, Permission::ManageSuppliers, w.now)
            .await
            .unwrap(),
        ReadOnce::NeedsTransaction
    ));
    assert_eq!(
        w.sqlstate(&credential, Permission::ManageSuppliers, w.now)
            .await,
        "PHA08"
    );
    // ... one no elevation may grant is refused outright ...
    assert!(matches!(
        refused(w.read(&credential, Permission::ManageKeys, w.now).await),
        AuthError::Forbidden
    ));
    // ... and one the base role holds is read in one statement, the elevation reported.
    let ReadOnce::Read(read) = w
        .read(&credential, Permission::ReadSuppliers, w.now)
        .await
        .unwrap()
    else {
        panic!("NeedsTransaction");
    };
    assert_eq!(read.principal.elevation.map(|e| e.id), Some(elevation));
    assert_eq!(read.principal.effective_role(), Role::Admin);

    // The elevation runs out: its expiry must be recorded first; nothing is changed here.
    let after = w.now + Duration::minutes(31);
    assert!(matches!(
        w.read(&credential, Permission::ReadSuppliers, after)
            .await
            .unwrap(),
        ReadOnce::NeedsTransaction
    ));
    let mut tx = w.db.begin(w.a).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM app.elevations WHERE id = $1")
        .bind(elevation)
        .fetch_one(tx.conn())
        .await
        .unwrap();
    // The transactional lookup marks it (the caller then records the expiry) ...
    let principal = session::authenticate(&mut tx, &credential, after)
        .await
        .unwrap();
    // ... and reads the same query in its transaction.
    let in_tx = session_read::fetch_all_in_tx(&mut tx, &EMAILS.query_as::<(String,)>())
        .await
        .unwrap();
    assert_eq!(in_tx, [("a1@a.test".to_owned(),)]);
    tx.commit().await.unwrap();
    assert_eq!(state, "active");
    assert_eq!(principal.expired_elevations, vec![elevation]);
    // ... after which the one-statement read serves the user again.
    rows(
        w.read(&credential, Permission::ReadSuppliers, after)
            .await
            .unwrap(),
    );
    w.done().await;
}

#[tokio::test]
async fn the_elevation_in_force_is_the_one_the_transactional_lookup_picks() {
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let (_, credential) = w
        .session(w.a, me, SessionStage::Full, SessionPolicy::default())
        .await;
    let started = w.now - Duration::minutes(1);
    w.elevation(w.a, me, "approver", started, w.now + Duration::hours(2))
        .await;
    let admin_soon = w
        .elevation(w.a, me, "admin", started, w.now + Duration::minutes(20))
        .await;
    let admin_later = w
        .elevation(w.a, me, "admin", started, w.now + Duration::minutes(40))
        .await;
    // Not started yet: never in force.
    w.elevation(
        w.a,
        me,
        "admin",
        w.now + Duration::minutes(5),
        w.now + Duration::hours(3),
    )
    .await;
    let ReadOnce::Read(read) = w
        .read(&credential, Permission::ReadSuppliers, w.now)
        .await
        .unwrap()
    else {
        panic!("NeedsTransaction");
    };
    let mut tx = w.db.begin(w.a).await.unwrap();
    let looked_up = session::authenticate(&mut tx, &credential, w.now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(read.principal.elevation, looked_up.elevation);
    assert_eq!(read.principal.elevation.map(|e| e.id), Some(admin_later));
    assert_ne!(admin_soon, admin_later);
    w.done().await;
}

/// A proxy between the pool and PostgreSQL that logs the kind of every frontend message.
async fn logging_proxy(target: (String, u16)) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kinds = log.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect((target.0.as_str(), target.1))
                .await
                .unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await.ok() });
            let kinds = kinds.clone();
            tokio::spawn(async move {
                // Startup message: length-prefixed, no type byte.
                let len = cr.read_i32().await.unwrap();
                let mut body = vec![0u8; usize::try_from(len).unwrap() - 4];
                cr.read_exact(&mut body).await.unwrap();
                sw.write_i32(len).await.unwrap();
                sw.write_all(&body).await.unwrap();
                loop {
                    let Ok(kind) = cr.read_u8().await else { return };
                    let len = cr.read_i32().await.unwrap();
                    let mut body = vec![0u8; usize::try_from(len).unwrap() - 4];
                    cr.read_exact(&mut body).await.unwrap();
                    kinds.lock().unwrap().push(kind);
                    sw.write_u8(kind).await.unwrap();
                    sw.write_i32(len).await.unwrap();
                    sw.write_all(&body).await.unwrap();
                }
            });
        }
    });
    (port, log)
}

/// Round trips in a log of frontend messages: a simple Query ('Q'), or a batch of
/// extended-protocol messages ended by Sync ('S'); the client waits for ReadyForQuery
/// after each. A Sync alone is sqlx's ping when a connection goes back to the pool
/// (after the caller has its rows; every sqlx query pays it): counted apart.
fn round_trips(log: &Mutex<Vec<u8>>) -> (usize, usize) {
    let kinds = std::mem::take(&mut *log.lock().unwrap());
    let (mut trips, mut pings, mut batch) = (0, 0, false);
    for kind in kinds {
        match kind {
            b'Q' => trips += 1,
            b'S' if batch => trips += 1,
            b'S' => pings += 1,
            _ => {}
        }
        batch = !matches!(kind, b'Q' | b'S');
    }
    (trips, pings)
}
#[tokio::test]
async fn an_authenticated_read_is_one_round_trip() {
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let (_, credential) = w
        .session(w.a, me, SessionStage::Full, SessionPolicy::default())
        .await;
    let direct = w.scratch.options_for(w.scratch.runtime_role().name());
    let (port, log) = logging_proxy((direct.get_host().to_owned(), direct.get_port())).await;
    // One connection, no ping on acquire: every message on the wire is the request's.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(
            direct
                .host("127.0.0.1")
                .port(port)
                .ssl_mode(PgSslMode::Disable),
        )
        .await
        .unwrap();
    let db = TenantDb::new(pool.clone());
    let emails = EMAILS.query_as::<(String,)>();
    let read =
        || session_read::fetch_all(&db, &credential, Permission::ReadSuppliers, w.now, &emails);
    // The first use prepares the statement (sqlx caches it per connection).
    rows(read().await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    round_trips(&log);
    assert_eq!(rows(read().await.unwrap()), ["a1@a.test"]);
    // The release ping runs after the caller has its rows: let it finish.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let sdk = round_trips(&log);
    assert_eq!(
        sdk.0, 1,
        "session, tenant, permission and rows in one round trip"
    );

    // A bare statement on the same pool (the peer of the bench) costs the same.
    let bare = || sqlx::query("SELECT 1").fetch_all(&pool);
    bare().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    round_trips(&log);
    bare().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        round_trips(&log),
        sdk,
        "the SDK read's messages cost what a bare query's do"
    );

    // The transactional path, for comparison: BEGIN + tenant, lookup, read, COMMIT.
    let tx_read = || async {
        let mut tx = db.begin(w.a).await.unwrap();
        session::authenticate(&mut tx, &credential, w.now)
            .await
            .unwrap();
        let rows: Vec<(String,)> = sqlx::query_as("SELECT email FROM app.users")
            .fetch_all(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows
    };
    tx_read().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    round_trips(&log);
    tx_read().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (transactional, _) = round_trips(&log);
    assert!(
        transactional >= 4,
        "the transactional path took {transactional} round trips"
    );
    db.close().await;
    w.done().await;
}

/// A flat join of two tenant tables, with no ORDER BY or LIMIT of its own, is the shape
/// PostgreSQL pulls up into the outer join; unfenced, its row-level-security checks ran
/// before `app.enter_session` (no tenant yet) and the read came back empty
/// (procuhelp-tenancy/tests/one_shot_planner.rs shows the hazard on scoped reads).
#[tokio::test]
async fn a_flat_join_of_tenant_tables_reads_after_the_session_is_entered() {
    const JOINED: AuthenticatedRead = AuthenticatedRead::new(
        "SELECT u.email FROM app.users u JOIN app.sessions s
           ON s.org_id = u.org_id AND s.user_id = u.id
         WHERE u.org_id = tenant.org",
    );
    let w = world().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let other = w.user(w.b, "b1@b.test", Role::Admin).await;
    w.session(w.b, other, SessionStage::Full, SessionPolicy::default())
        .await;
    let (_, credential) = w
        .session(w.a, me, SessionStage::Full, SessionPolicy::default())
        .await;
    // The same through a remembered session: its plain statement sets the tenant (a
    // function scan) before any row-level-security check runs.
    let cache = session_read::VerifiedSessions::default();
    for remembered in [false, true] {
        for _ in 0..7 {
            // Seven runs on a small pool: from the sixth, a cached generic plan is used.
            let query = JOINED.query_as::<(String,)>();
            let p = Permission::ReadSuppliers;
            let read = if remembered {
                session_read::fetch_all_cached(&w.db, &cache, &credential, p, w.now, &query).await
            } else {
                session_read::fetch_all(&w.db, &credential, p, w.now, &query).await
            };
            assert_eq!(rows(read.unwrap()), ["a1@a.test"]);
        }
    }
    assert_eq!(
        cache.served(),
        6,
        "the first remembered read checks in full"
    );
}
