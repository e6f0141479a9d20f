//! A real PostgreSQL for the auth stores' tests: a scratch database migrated with auth's
//! schema, two organisations, a runtime pool logged in as the non-superuser
//! NOBYPASSRLS role (so row-level security is what the tests meet), a superuser pool to
//! look behind RLS, a manual clock and an audit sink that keeps events (and can run a
//! hook when one action is recorded, to change the world at an exact point of a flow).
#![allow(dead_code, unreachable_pub)] // each test binary uses a part of it

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use procuhelp_audit::{Action, AuditEvent, AuditSink, MemorySink, Receipt};
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::session::{self, Credential, NewSession, SessionPolicy, SessionStage};
use procuhelp_auth::throttle::{LoginThrottle, ThrottlePolicy};
use procuhelp_auth::totp::Totp;
use procuhelp_auth::{Authenticator, ClientInfo, Issued, Role};
use procuhelp_core::crypto::RustCryptoAead;
use procuhelp_core::vault::FileVault;
use procuhelp_core::{Clock, ManualClock, OrgId, SecretText, UserId};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{FieldCipher, TenantDb, TenantTx, create_organisation};
use sqlx::PgPool;

pub const PASSWORD: &str = "correct horse battery staple";
pub const T0: time::OffsetDateTime = time::macros::datetime!(2026-11-25 09:00 UTC);

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Keeps events in memory; runs a hook (once) when an event of a given action arrives,
/// before the event is kept.
#[derive(Default)]
pub struct HookSink {
    pub inner: MemorySink,
    hook: Mutex<Option<(Action, Hook)>>,
}

impl std::fmt::Debug for HookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSink").finish_non_exhaustive()
    }
}

impl HookSink {
    /// Runs `hook` when the next event with `action` is recorded.
    pub fn on<F, Fut>(&self, action: Action, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        *self.hook.lock().unwrap() = Some((action, hook));
    }
}

// `AuditSink` is an `async_trait`; written out by hand so the tests need no more crates.
impl AuditSink for HookSink {
    fn record<'life0, 'async_trait>(
        &'life0 self,
        event: AuditEvent,
    ) -> Pin<Box<dyn Future<Output = procuhelp_audit::Result<Receipt>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let hook = {
                let mut slot = self.hook.lock().unwrap();
                match slot.take() {
                    Some((action, hook)) if action == event.action => Some(hook),
                    other => {
                        *slot = other;
                        None
                    }
                }
            };
            if let Some(hook) = hook {
                hook().await;
            }
            self.inner.record(event).await
        })
    }
}

pub struct Fx {
    pub scratch: ScratchDb,
    /// Runtime role: not superuser, NOBYPASSRLS.
    pub pool: PgPool,
    key_pool: PgPool,
    /// Superuser, to look behind row-level security.
    pub admin: PgPool,
    pub db: TenantDb,
    pub auth: Authenticator,
    pub audit: Arc<HookSink>,
    pub clock: Arc<ManualClock>,
    pub totp: Totp,
    pub orgs: [OrgId; 2],
    vault_dir: std::path::PathBuf,
}

/// Throttle limits small enough to reach in a test: the account locks at the second
/// failure (no back-off before), for one minute; second factors likewise.
pub fn quick_locks() -> ThrottlePolicy {
    ThrottlePolicy {
        account_free: 10,
        account_lock_after: 2,
        second_factor_free: 10,
        second_factor_lock_after: 2,
        lock_for: time::Duration::minutes(1),
        ..ThrottlePolicy::default()
    }
}

impl Fx {
    pub async fn new() -> Fx {
        Fx::with_throttle(ThrottlePolicy::default()).await
    }

    pub async fn with_throttle(policy: ThrottlePolicy) -> Fx {
        let (scratch, [a, b]) = two_orgs().await;
        let pool = scratch.runtime_pool(8).await.unwrap();
        let key_pool = scratch.runtime_pool(2).await.unwrap();
        let admin = scratch.admin_pool(2).await.unwrap();
        let (vault_dir, cipher) = file_cipher("ph-auth", TenantDb::new(key_pool.clone()));
        let db = TenantDb::new(pool.clone());
        let audit = Arc::new(HookSink::default());
        let clock = Arc::new(ManualClock::new(T0));
        let totp = Totp::new("Test");
        let auth = Authenticator::new(
            db.clone(),
            Arc::new(PasswordHasher::for_tests()),
            LoginThrottle::new(pool.clone(), policy),
            totp.clone(),
            cipher,
            audit.clone(),
            clock.clone(),
            Default::default(),
        );
        Fx {
            scratch,
            pool,
            key_pool,
            admin,
            db,
            auth,
            audit,
            clock,
            totp,
            orgs: [a, b],
            vault_dir,
        }
    }

    pub async fn close(self) {
        self.pool.close().await;
        self.key_pool.close().await;
        self.admin.close().await;
        self.scratch.drop_all().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.vault_dir);
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub async fn tx(&self, org: OrgId) -> TenantTx {
        self.db.begin(org).await.unwrap()
    }

    /// Creates an active user with [`PASSWORD`] in `org`.
    pub async fn user(&self, org: OrgId, email: &str, role: Role) -> UserId {
        let phc = PasswordHasher::for_tests()
            .hash(&SecretText::new(PASSWORD.to_owned()))
            .unwrap();
        create_user(&self.db, org, email, "Someone", role, Some(phc), self.now()).await
    }

    pub async fn login(
        &self,
        org: OrgId,
        email: &str,
        password: &str,
    ) -> procuhelp_auth::AuthResult<Issued> {
        self.auth
            .login(org, email, SecretText::new(password.to_owned()), &client())
            .await
    }

    /// The session `credential` authenticates now, in its own organisation (committed).
    pub async fn principal(
        &self,
        credential: &Credential,
    ) -> procuhelp_auth::session::SessionPrincipal {
        let mut tx = self.tx(credential.org).await;
        let p = self
            .auth
            .session(&mut tx, credential, &client())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        p
    }

    /// Enrols and confirms TOTP for the fully signed-in session `issued`; returns the
    /// `otpauth://` URI, the new full session and the recovery codes.
    pub async fn enrol(&self, issued: &Issued) -> (String, Issued, Vec<String>) {
        let principal = self.principal(&issued.credential).await;
        let mut tx = self.tx(issued.credential.org).await;
        let enrolment = self
            .auth
            .start_enrolment(&mut tx, &principal, &client())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let uri = enrolment.uri.expose().to_owned();
        let mut tx = self.tx(issued.credential.org).await;
        let (full, codes) = self
            .auth
            .confirm_enrolment(&mut tx, &principal, &totp_for(&uri, self.now()), &client())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let codes = codes.codes.iter().map(|c| c.expose().to_owned()).collect();
        (uri, full, codes)
    }

    /// Recorded events with `action`.
    pub fn events(&self, action: Action) -> Vec<AuditEvent> {
        self.audit
            .inner
            .events()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    /// Runs `sql` as the superuser (behind row-level security).
    pub async fn as_superuser(&self, sql: &str) {
        sqlx::query(sql).execute(&self.admin).await.unwrap();
    }
}

/// A scratch database migrated with auth's schema (auth's tables only: the audit events
/// go to an in-memory sink) and two organisations, "A" and "B".
pub async fn two_orgs() -> (ScratchDb, [OrgId; 2]) {
    let scratch = ScratchDb::migrated_with(
        &procuhelp_tenancy::migrate::Schema::new().with(procuhelp_auth::MIGRATIONS),
    )
    .await
    .unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = create_organisation(&owner, "A").await.unwrap();
    let b = create_organisation(&owner, "B").await.unwrap();
    owner.close().await;
    (scratch, [a, b])
}

/// A file vault in a fresh temporary directory (named after `prefix`; the caller removes
/// it) and a field cipher whose key management runs on `key_db`.
pub fn file_cipher(prefix: &str, key_db: TenantDb) -> (std::path::PathBuf, Arc<FieldCipher>) {
    let vault_dir =
        std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    let vault = Arc::new(FileVault::open_or_create(&vault_dir).unwrap());
    let cipher = Arc::new(FieldCipher::new(key_db, vault, &RustCryptoAead));
    (vault_dir, cipher)
}

/// Creates an active user in `org` at `at` (committed).
pub async fn create_user(
    db: &TenantDb,
    org: OrgId,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: Option<String>,
    at: time::OffsetDateTime,
) -> UserId {
    let mut tx = db.begin(org).await.unwrap();
    let id = directory::create(
        &mut tx,
        NewUser {
            email: Email::parse(email).unwrap(),
            display_name: display_name.into(),
            role: Some(role),
            password_hash,
        },
        at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Opens a password session of `user` in `org` at `at`, with no source or user agent
/// (committed).
pub async fn open_session(
    db: &TenantDb,
    org: OrgId,
    user: UserId,
    stage: SessionStage,
    policy: SessionPolicy,
    at: time::OffsetDateTime,
) -> (uuid::Uuid, Credential) {
    let mut tx = db.begin(org).await.unwrap();
    let opened = session::open(
        &mut tx,
        NewSession {
            user,
            stage,
            amr: &["pwd"],
            policy,
            source: None,
            user_agent: None,
        },
        at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    opened
}

/// Asserts that `r` is the refusal of an unknown, expired or revoked credential.
pub fn unauthenticated<T: std::fmt::Debug>(r: Result<T, procuhelp_auth::AuthError>) {
    assert!(
        matches!(r, Err(procuhelp_auth::AuthError::Unauthenticated)),
        "{r:?}"
    );
}

pub fn client() -> ClientInfo {
    ClientInfo {
        source: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("tests".into()),
        request_id: None,
    }
}

/// The TOTP code of `uri` at `at`.
pub fn totp_for(uri: &str, at: time::OffsetDateTime) -> String {
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    totp.generate(u64::try_from(at.unix_timestamp()).unwrap())
}

/// A six-digit code no nearby time step accepts.
pub fn wrong_code(uri: &str, at: time::OffsetDateTime) -> String {
    let near: Vec<String> = (-3i64..=3)
        .map(|d| totp_for(uri, at + time::Duration::seconds(30 * d)))
        .collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Inserts an elevation of `user` to `role`, active from `starts` to `expires`
/// (committed), as if requested and granted; returns its id.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub async fn active_elevation(
    db: &TenantDb,
    org: OrgId,
    user: UserId,
    role: &str,
    starts: time::OffsetDateTime,
    expires: time::OffsetDateTime,
) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let mut tx = db.begin(org).await.unwrap();
    sqlx::query(
        "INSERT INTO app.elevations (org_id, id, user_id, role, reason, state, requested_by,
                                     duration_secs, created_at, starts_at, expires_at)
         VALUES ($1, $2, $3, $4, 'incident 42', 'active', $3, 3600, $5, $5, $6)",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(user.as_uuid())
    .bind(role)
    .bind(starts)
    .bind(expires)
    .execute(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}
