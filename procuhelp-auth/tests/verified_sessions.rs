//! Remembered session answers (`session_read::fetch_all_cached`, `VerifiedSessions`,
//! migration 0016's session epochs) on a real PostgreSQL, as the runtime role: a
//! remembered session reads without the session check; every change that can take
//! access away is seen by the very next read, on any cache; an answer ends with its
//! session and elevations by the clock; and over a long random run of changes and reads,
//! the cached answer is always the answer of the full check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth_fx.rs"]
mod fx;

use procuhelp_auth::directory::{self, UserStatus};
use procuhelp_auth::session::{self, Credential, SessionPolicy, SessionStage};
use procuhelp_auth::session_read::{self, AuthenticatedRead, ReadOnce, VerifiedSessions};
use procuhelp_auth::{AuthError, Permission, Role};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const EMAILS: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT u.email FROM app.users u WHERE tenant.org IS NOT NULL ORDER BY u.email",
);

/// What a read answered, comparable across the two paths.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Rows(Vec<String>),
    NeedsTransaction,
    Refused(String),
}

fn answer(r: Result<ReadOnce<(String,)>, AuthError>) -> Answer {
    match r {
        Ok(ReadOnce::Read(read)) => Answer::Rows(read.rows.into_iter().map(|(e,)| e).collect()),
        Ok(ReadOnce::NeedsTransaction) => Answer::NeedsTransaction,
        Err(e) => Answer::Refused(format!("{e:?}")),
    }
}

struct World {
    scratch: ScratchDb,
    db: TenantDb,
    a: OrgId,
    b: OrgId,
    now: OffsetDateTime,
}

impl World {
    async fn new() -> Self {
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

    async fn user(&self, org: OrgId, email: &str, role: Role) -> UserId {
        fx::create_user(&self.db, org, email, "u", role, None, self.now).await
    }

    async fn session(&self, org: OrgId, user: UserId, policy: SessionPolicy) -> (Uuid, Credential) {
        fx::open_session(&self.db, org, user, SessionStage::Full, policy, self.now).await
    }

    async fn cached(
        &self,
        cache: &VerifiedSessions,
        credential: &Credential,
        permission: Permission,
        at: OffsetDateTime,
    ) -> Answer {
        answer(
            session_read::fetch_all_cached(
                &self.db,
                cache,
                credential,
                permission,
                at,
                &EMAILS.query_as::<(String,)>(),
            )
            .await,
        )
    }

    async fn full(
        &self,
        credential: &Credential,
        permission: Permission,
        at: OffsetDateTime,
    ) -> Answer {
        answer(
            session_read::fetch_all(
                &self.db,
                credential,
                permission,
                at,
                &EMAILS.query_as::<(String,)>(),
            )
            .await,
        )
    }

    /// Runs `sql` in a committed tenant transaction of `org`, binding `id`.
    async fn exec(&self, org: OrgId, sql: &str, id: Uuid) {
        let mut tx = self.db.begin(org).await.unwrap();
        sqlx::query(sql).bind(id).execute(tx.conn()).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// As [`exec`](Self::exec), as the owner role (the runtime role may not delete
    /// sessions), entering `org` first.
    async fn exec_as_owner(&self, org: OrgId, sql: &str, id: Uuid) {
        let owner = self.scratch.owner_pool(1).await.unwrap();
        let mut tx = owner.begin().await.unwrap();
        sqlx::query("SELECT app.enter_org($1)")
            .bind(org.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(sql).bind(id).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        owner.close().await;
    }

    /// The user's session epoch (0: no row).
    async fn epoch(&self, org: OrgId, user: UserId) -> i64 {
        let mut tx = self.db.begin(org).await.unwrap();
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM app.session_epochs WHERE user_id = $1")
                .bind(user.as_uuid())
                .fetch_optional(tx.conn())
                .await
                .unwrap();
        tx.rollback().await.unwrap();
        epoch.unwrap_or(0)
    }

    async fn elevation(
        &self,
        org: OrgId,
        user: UserId,
        role: &str,
        at: OffsetDateTime,
        secs: i64,
    ) -> Uuid {
        fx::active_elevation(&self.db, org, user, role, at, at + Duration::seconds(secs)).await
    }

    async fn set_role(&self, org: OrgId, user: UserId, role: Role, at: OffsetDateTime) {
        let mut tx = self.db.begin(org).await.unwrap();
        directory::set_role(&mut tx, user, role, at).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn set_status(&self, org: OrgId, user: UserId, status: UserStatus, at: OffsetDateTime) {
        let mut tx = self.db.begin(org).await.unwrap();
        directory::set_status(&mut tx, user, status, at)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// Revokes session `id` of `org` at `at` (committed); whether it was live.
    async fn revoke(&self, org: OrgId, id: Uuid, at: OffsetDateTime) -> bool {
        let mut tx = self.db.begin(org).await.unwrap();
        let revoked = session::revoke(&mut tx, id, None, at).await.unwrap();
        tx.commit().await.unwrap();
        revoked
    }

    async fn done(self) {
        self.db.close().await;
        self.scratch.drop_all().await.unwrap();
    }
}

/// Ages `session`'s `last_seen_at` far past its idle limit, directly: the full check
/// would now refuse it as idle, and the touch column does not move the epoch, so a read
/// that still succeeds was served from the cache without the session check.
const AGE_LAST_SEEN: &str =
    "UPDATE app.sessions SET last_seen_at = last_seen_at - interval '1 day' WHERE id = $1";

#[tokio::test]
async fn a_remembered_session_reads_without_the_session_check_until_its_epoch_moves() {
    let w = World::new().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let (session, mine) = w.session(w.a, me, SessionPolicy::default()).await;
    let cache = VerifiedSessions::default();
    let rows = Answer::Rows(vec!["a1@a.test".into()]);

    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        rows
    );
    assert_eq!(cache.len(), 1, "a verified session is remembered");
    w.exec(w.a, AGE_LAST_SEEN, session).await;
    assert_eq!(
        w.epoch(w.a, me).await,
        1,
        "the touch column does not move the epoch"
    );
    assert_eq!(
        w.full(&mine, Permission::ReadSuppliers, w.now).await,
        Answer::Refused("Unauthenticated".into()),
        "the full check sees the aged session as idle"
    );
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        rows,
        "served from the cache: no session check"
    );
    assert_eq!(cache.served(), 1);

    // Other users' changes, in this organisation or another, leave my answer standing;
    // the rows themselves are always read fresh.
    let colleague = w.user(w.a, "a2@a.test", Role::ReadOnly).await;
    w.elevation(w.a, colleague, "admin", w.now, 600).await;
    let them = w.user(w.b, "b1@b.test", Role::Admin).await;
    let (theirs, _) = w.session(w.b, them, SessionPolicy::default()).await;
    assert!(w.revoke(w.b, theirs, w.now).await);
    assert_eq!(w.epoch(w.a, colleague).await, 2, "created, then elevated");
    assert_eq!(
        w.epoch(w.b, them).await,
        2,
        "created, then a session revoked"
    );
    assert_eq!(w.epoch(w.a, me).await, 1, "created");
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        Answer::Rows(vec!["a1@a.test".into(), "a2@a.test".into()])
    );
    assert_eq!(cache.served(), 2);

    // My epoch moves (an elevation of mine): the remembered answer is not used, the full
    // check runs and refuses the aged session, and the answer is forgotten.
    w.elevation(w.a, me, "requester", w.now, 600).await;
    assert_eq!(w.epoch(w.a, me).await, 2);
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        Answer::Refused("Unauthenticated".into())
    );
    assert!(cache.is_empty());

    // A permission the remembered role does not hold is decided by the full check.
    let (_, fresh) = w.session(w.a, me, SessionPolicy::default()).await;
    assert!(matches!(
        w.cached(&cache, &fresh, Permission::ReadSuppliers, w.now)
            .await,
        Answer::Rows(_)
    ));
    assert_eq!(
        w.cached(&cache, &fresh, Permission::ManageUsers, w.now)
            .await,
        Answer::Refused("Forbidden".into())
    );
    // A disabled cache never remembers.
    let off = VerifiedSessions::disabled();
    assert!(matches!(
        w.cached(&off, &fresh, Permission::ReadSuppliers, w.now)
            .await,
        Answer::Rows(_)
    ));
    assert!(off.is_empty());
    w.done().await;
}

#[tokio::test]
async fn every_change_that_can_take_access_away_is_seen_by_the_next_read() {
    let w = World::new().await;
    let admin = w.user(w.a, "boss@a.test", Role::Admin).await;
    let cache = VerifiedSessions::default();
    let unauthenticated = Answer::Refused("Unauthenticated".into());
    let forbidden = Answer::Refused("Forbidden".into());

    // Each case: remember the session, change one thing in its own committed
    // transaction, read again at once.
    // 1. The session revoked.
    let (id, c) = w.session(w.a, admin, SessionPolicy::default()).await;
    assert!(matches!(
        w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
        Answer::Rows(_)
    ));
    assert!(w.revoke(w.a, id, w.now).await);
    assert_eq!(
        w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
        unauthenticated
    );

    // 2. The session shortened, or put back to a pending second factor, or deleted.
    for change in [
        "UPDATE app.sessions SET expires_at = created_at WHERE id = $1",
        "UPDATE app.sessions SET stage = 'mfa' WHERE id = $1",
        "DELETE FROM app.sessions WHERE id = $1",
    ] {
        let (id, c) = w.session(w.a, admin, SessionPolicy::default()).await;
        assert!(matches!(
            w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
            Answer::Rows(_)
        ));
        w.exec_as_owner(w.a, change, id).await;
        let after = w.cached(&cache, &c, Permission::ManageUsers, w.now).await;
        assert!(
            after == unauthenticated || after == Answer::Refused("SecondFactorRequired".into()),
            "{change}: {after:?}"
        );
    }

    // 3. The user's role lowered, then the user disabled.
    let (_, c) = w.session(w.a, admin, SessionPolicy::default()).await;
    assert!(matches!(
        w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
        Answer::Rows(_)
    ));
    w.set_role(w.a, admin, Role::ReadOnly, w.now).await;
    assert_eq!(
        w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
        forbidden
    );
    assert!(matches!(
        w.cached(&cache, &c, Permission::ReadSuppliers, w.now).await,
        Answer::Rows(_)
    ));
    w.set_status(w.a, admin, UserStatus::Disabled, w.now).await;
    assert_eq!(
        w.cached(&cache, &c, Permission::ReadSuppliers, w.now).await,
        unauthenticated
    );

    // 4. An elevation in force revoked: the remembered elevated principal is not used.
    let helper = w.user(w.a, "helper@a.test", Role::ReadOnly).await;
    let (_, c) = w.session(w.a, helper, SessionPolicy::default()).await;
    let elevation = w
        .elevation(w.a, helper, "admin", w.now - Duration::minutes(1), 3600)
        .await;
    assert!(matches!(
        w.cached(&cache, &c, Permission::ReadSuppliers, w.now).await,
        Answer::Rows(_)
    ));
    w.exec(
        w.a,
        "UPDATE app.elevations SET state = 'revoked' WHERE id = $1",
        elevation,
    )
    .await;
    assert_eq!(
        w.cached(&cache, &c, Permission::ManageUsers, w.now).await,
        forbidden,
        "without the elevation, a read-only user may not"
    );

    // Two caches (two servers): the change is seen by both, with no message between them.
    let other_server = VerifiedSessions::default();
    let boss2 = w.user(w.a, "boss2@a.test", Role::Admin).await;
    let (id, c) = w.session(w.a, boss2, SessionPolicy::default()).await;
    for cache in [&cache, &other_server] {
        assert!(matches!(
            w.cached(cache, &c, Permission::ManageUsers, w.now).await,
            Answer::Rows(_)
        ));
    }
    assert!(w.revoke(w.a, id, w.now).await);
    for cache in [&cache, &other_server] {
        assert_eq!(
            w.cached(cache, &c, Permission::ManageUsers, w.now).await,
            unauthenticated
        );
    }
    w.done().await;
}

#[tokio::test]
async fn an_answer_ends_with_its_session_and_elevations_by_the_clock() {
    let w = World::new().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let cache = VerifiedSessions::new(Duration::minutes(10), 100);
    let short = SessionPolicy {
        idle: Duration::minutes(5),
        absolute: Duration::seconds(90),
    };
    let (_, c) = w.session(w.a, me, short).await;
    assert!(matches!(
        w.cached(&cache, &c, Permission::ReadSuppliers, w.now).await,
        Answer::Rows(_)
    ));
    assert!(matches!(
        w.cached(
            &cache,
            &c,
            Permission::ReadSuppliers,
            w.now + Duration::seconds(89)
        )
        .await,
        Answer::Rows(_)
    ));
    assert_eq!(
        w.cached(
            &cache,
            &c,
            Permission::ReadSuppliers,
            w.now + Duration::seconds(90)
        )
        .await,
        Answer::Refused("Unauthenticated".into()),
        "past its absolute expiry, even though the cache's time to live is 10 minutes"
    );

    // An elevation that runs out: its expiry must be recorded first, by the
    // transactional path, exactly as without the cache.
    let (_, c) = w.session(w.a, me, SessionPolicy::default()).await;
    w.elevation(w.a, me, "approver", w.now - Duration::seconds(1), 61)
        .await;
    assert!(matches!(
        w.cached(&cache, &c, Permission::ReadSuppliers, w.now).await,
        Answer::Rows(_)
    ));
    assert_eq!(
        w.cached(
            &cache,
            &c,
            Permission::ReadSuppliers,
            w.now + Duration::seconds(61)
        )
        .await,
        Answer::NeedsTransaction
    );
    w.done().await;
}

/// A small deterministic generator (xorshift64*): the run is the same every time.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[tokio::test]
async fn over_a_random_run_the_cached_answer_is_the_full_checks_answer() {
    let w = World::new().await;
    let policy = SessionPolicy {
        idle: Duration::seconds(150),
        absolute: Duration::minutes(10),
    };
    let roles = Role::ALL;
    let permissions = [
        Permission::ReadSuppliers,
        Permission::ManageUsers,
        Permission::ApproveRequest,
    ];
    let mut users = Vec::new();
    for (n, role) in roles.into_iter().enumerate() {
        let user = w.user(w.a, &format!("u{n}@a.test"), role).await;
        let (id, c) = w.session(w.a, user, policy).await;
        users.push((user, id, c));
    }
    let cache = VerifiedSessions::new(Duration::seconds(30), 100);
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let mut at = w.now;
    let mut elevations = Vec::new();
    for step in 0..300 {
        let who = dice.roll(users.len() as u64) as usize;
        let (user, session, _) = users[who];
        match dice.roll(30) {
            0 => {
                w.revoke(w.a, session, at).await;
            }
            1 => {
                // A new session at the current time (this run's clock runs ahead).
                let opened =
                    fx::open_session(&w.db, w.a, user, SessionStage::Full, policy, at).await;
                users[who] = (user, opened.0, opened.1);
            }
            2 => {
                let role = roles[dice.roll(4) as usize];
                w.set_role(w.a, user, role, at).await;
            }
            3 => {
                let status = if dice.roll(3) == 0 {
                    UserStatus::Disabled
                } else {
                    UserStatus::Active
                };
                w.set_status(w.a, user, status, at).await;
            }
            4 => {
                let role = ["admin", "approver", "requester"][dice.roll(3) as usize];
                let secs = 60 + dice.roll(120) as i64;
                elevations.push(w.elevation(w.a, user, role, at, secs).await);
            }
            5 if !elevations.is_empty() => {
                let e = elevations[dice.roll(elevations.len() as u64) as usize];
                w.exec(w.a, "UPDATE app.elevations SET state = 'revoked' WHERE id = $1 AND state = 'active'", e).await;
            }
            6 => at += Duration::seconds(dice.roll(45) as i64),
            _ => {}
        }
        // Every step reads, through the cache first, then in full at the same moment.
        let permission = permissions[dice.roll(permissions.len() as u64) as usize];
        let credential = &users[dice.roll(users.len() as u64) as usize].2;
        let cached = w.cached(&cache, credential, permission, at).await;
        let full = w.full(credential, permission, at).await;
        assert_eq!(
            cached,
            full,
            "step {step}: {permission:?} at +{}s",
            (at - w.now).whole_seconds()
        );
    }
    let served = cache.served();
    assert!(
        served > 25,
        "the run exercised the cache: {served} reads served from it"
    );
    w.done().await;
}

/// The epochs cannot be walked back or bypassed by the runtime role or the owner: an epoch
/// only rises, TRUNCATE is refused on the tables that bump it, a user without an epoch row
/// is checked in full (and gets one), and a read may not depend on the full check's
/// principal columns (the remembered statement does not have them).
#[tokio::test]
async fn the_epochs_only_rise_and_a_missing_epoch_is_never_fresh() {
    let w = World::new().await;
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    let (_, mine) = w.session(w.a, me, SessionPolicy::default()).await;
    let sqlstate = |e: sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
    };

    let mut tx = w.db.begin(w.a).await.unwrap();
    let err = sqlx::query("UPDATE app.session_epochs SET epoch = 1")
        .execute(tx.conn())
        .await
        .unwrap_err();
    assert_eq!(sqlstate(err).as_deref(), Some("PH423"));
    tx.rollback().await.unwrap();
    let owner = w.scratch.owner_pool(1).await.unwrap();
    for table in ["app.sessions", "app.users", "app.elevations"] {
        let err = sqlx::query(&format!("TRUNCATE {table} CASCADE"))
            .execute(&owner)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(err).as_deref(), Some("PH423"), "{table}");
    }
    owner.close().await;

    // A user whose epoch row is missing (created before migration 0016): the first read
    // is checked in full and not remembered, and gives the user an epoch; the next is
    // remembered.
    w.exec_as_owner(
        w.a,
        "DELETE FROM app.session_epochs WHERE user_id = $1",
        me.as_uuid(),
    )
    .await;
    assert_eq!(w.epoch(w.a, me).await, 0);
    let cache = VerifiedSessions::default();
    let rows = Answer::Rows(vec!["a1@a.test".into()]);
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        rows
    );
    assert!(cache.is_empty(), "no epoch, not remembered");
    assert_eq!(w.epoch(w.a, me).await, 1);
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        rows
    );
    assert_eq!(cache.len(), 1);
    // Its row deleted again: the remembered answer is not fresh.
    w.exec_as_owner(
        w.a,
        "DELETE FROM app.session_epochs WHERE user_id = $1",
        me.as_uuid(),
    )
    .await;
    assert_eq!(
        w.cached(&cache, &mine, Permission::ReadSuppliers, w.now)
            .await,
        rows
    );
    assert_eq!(cache.served(), 0, "a missing epoch is never fresh");

    const USES_ROLE: AuthenticatedRead = AuthenticatedRead::new(
        "SELECT u.email FROM app.users u WHERE tenant.org IS NOT NULL AND tenant.ph_role = 'admin'",
    );
    let refused = session_read::fetch_all_cached(
        &w.db,
        &cache,
        &mine,
        Permission::ReadSuppliers,
        w.now,
        &USES_ROLE.query_as::<(String,)>(),
    )
    .await;
    assert!(
        matches!(refused, Err(AuthError::Invalid { .. })),
        "{refused:?}"
    );
    w.done().await;
}
