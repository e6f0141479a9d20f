//! [`Sdk`]: what the extractor and the SDK's routers need, in one cheap-to-clone value
//! the embedder puts in (or derives from) their own axum state.

use std::fmt;
use std::sync::Arc;

use procuhelp_audit::{AuditEvent, AuditSink, PgAuditSink};
use procuhelp_auth::Authenticator;
use procuhelp_auth::hash_limiter::HashLimiter;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::session::SessionPolicy;
use procuhelp_auth::session_read::VerifiedSessions;
use procuhelp_auth::throttle::{LoginThrottle, ThrottlePolicy};
use procuhelp_auth::totp::Totp;
use procuhelp_core::vault::SecretProvider;
use procuhelp_core::{Clock, SystemClock};
use procuhelp_tenancy::personal_data::PersonalTable;
use procuhelp_tenancy::{FieldCipher, Schema, TenantDb};
use time::OffsetDateTime;

use crate::Result;

/// The SDK's request-side state: tenant-scoped data access, the authenticator, the one
/// audit path (sink and clock), field encryption and the vault.
///
/// Clone it freely (one `Arc`). Put it in your state and implement
/// [`FromRef`](axum::extract::FromRef) so that [`Authed`](crate::Authed) and the routers
/// find it:
///
/// ```
/// use axum::extract::FromRef;
/// use procuhelp_axum::Sdk;
///
/// #[derive(Clone)]
/// struct MyState {
///     sdk: Sdk,
///     // ... your own fields
/// }
///
/// impl FromRef<MyState> for Sdk {
///     fn from_ref(state: &MyState) -> Sdk {
///         state.sdk.clone()
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Sdk {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    tenants: TenantDb,
    auth: Authenticator,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    cipher: Arc<FieldCipher>,
    vault: Arc<dyn SecretProvider>,
    audit_log: Option<PgAuditSink>,
    verified_sessions: Arc<VerifiedSessions>,
    personal_data: Arc<[PersonalTable]>,
}

impl fmt::Debug for Sdk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sdk")
            .field("tenants", &self.inner.tenants)
            .field("audit_log", &self.inner.audit_log.is_some())
            .finish_non_exhaustive()
    }
}

impl Sdk {
    /// Starts an [`Sdk`] on the runtime role's pool (`runtime`, the role row-level
    /// security applies to), with its field cipher, vault and the application's one
    /// audit sink: every event of the SDK and of your handlers goes there.
    pub fn builder(
        runtime: sqlx::PgPool,
        cipher: Arc<FieldCipher>,
        vault: Arc<dyn SecretProvider>,
        audit: Arc<dyn AuditSink>,
    ) -> SdkBuilder {
        SdkBuilder {
            runtime,
            cipher,
            vault,
            audit,
            clock: Arc::new(SystemClock),
            hasher: None,
            totp_issuer: "ProcuHelp".to_owned(),
            sessions: SessionPolicy::default(),
            throttle: ThrottlePolicy::default(),
            hash_limiter: None,
            audit_log: None,
            verified_sessions: VerifiedSessions::default(),
            personal_data: Arc::from(Vec::new()),
        }
    }

    /// Tenant-scoped data access (the only door to tenant tables).
    pub fn tenants(&self) -> &TenantDb {
        &self.inner.tenants
    }

    /// Sign-in, sessions and account security.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The application's audit sink: handlers record through it (or [`Sdk::record`]).
    pub fn audit(&self) -> &Arc<dyn AuditSink> {
        &self.inner.audit
    }

    /// The application's clock: every expiry and event time comes from it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The clock's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Records `event` durably, or fails (fail closed: the caller does not go on).
    pub async fn record(&self, event: AuditEvent) -> Result<()> {
        self.inner.audit.record(event).await?;
        Ok(())
    }

    /// Field encryption (per-tenant keys).
    pub fn cipher(&self) -> &Arc<FieldCipher> {
        &self.inner.cipher
    }

    /// Where secrets live.
    pub fn vault(&self) -> &Arc<dyn SecretProvider> {
        &self.inner.vault
    }

    /// The PostgreSQL audit log, for the audit router's reads and exports (`None`: the
    /// audit router answers 409 "no audit database configured").
    pub fn audit_log(&self) -> Option<&PgAuditSink> {
        self.inner.audit_log.as_ref()
    }

    /// The verified-session answers [`ReadAuth`](crate::read::ReadAuth) reads with (see
    /// [`SdkBuilder::verified_sessions`]).
    pub fn verified_sessions(&self) -> &VerifiedSessions {
        &self.inner.verified_sessions
    }

    /// The personal-data register given to [`SdkBuilder::personal_data`] (empty if none
    /// was).
    pub fn personal_data(&self) -> &[PersonalTable] {
        &self.inner.personal_data
    }

    /// The same SDK, with `log` for the audit router (see [`SdkBuilder::audit_log`]).
    pub fn with_audit_log(self, log: PgAuditSink) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.audit_log = Some(log);
        Self {
            inner: Arc::new(inner),
        }
    }
}

/// Builds an [`Sdk`]: see [`Sdk::builder`].
pub struct SdkBuilder {
    runtime: sqlx::PgPool,
    cipher: Arc<FieldCipher>,
    vault: Arc<dyn SecretProvider>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    hasher: Option<PasswordHasher>,
    totp_issuer: String,
    sessions: SessionPolicy,
    throttle: ThrottlePolicy,
    hash_limiter: Option<HashLimiter>,
    audit_log: Option<PgAuditSink>,
    verified_sessions: VerifiedSessions,
    personal_data: Arc<[PersonalTable]>,
}

impl fmt::Debug for SdkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkBuilder")
            .field("totp_issuer", &self.totp_issuer)
            .finish_non_exhaustive()
    }
}

impl SdkBuilder {
    /// The clock (default: the system clock). Inject one to test expiry without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The password hasher (default: [`PasswordHasher::default`], Argon2id).
    pub fn password_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The issuer shown in authenticator apps (default `ProcuHelp`).
    pub fn totp_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.totp_issuer = issuer.into();
        self
    }

    /// Session lifetimes (default: [`SessionPolicy::default`]).
    pub fn session_policy(mut self, sessions: SessionPolicy) -> Self {
        self.sessions = sessions;
        self
    }

    /// Sign-in throttling (default: [`ThrottlePolicy::default`]).
    pub fn throttle_policy(mut self, throttle: ThrottlePolicy) -> Self {
        self.throttle = throttle;
        self
    }

    /// The bound on concurrent password hashing (default: one hash per core).
    pub fn hash_limiter(mut self, limiter: HashLimiter) -> Self {
        self.hash_limiter = Some(limiter);
        self
    }

    /// The PostgreSQL audit log the audit router reads and exports.
    pub fn audit_log(mut self, log: PgAuditSink) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// The personal-data register of the application's whole schema (every crate's and
    /// the application's own tables): what a data subject's export and erasure
    /// ([`subject_rights`](crate::subject_rights)) cover. Without it they refuse to run.
    pub fn personal_data(mut self, schema: &Schema) -> Self {
        self.personal_data = schema.personal_data().copied().collect();
        self
    }

    /// Where [`ReadAuth`](crate::read::ReadAuth) remembers verified sessions (default:
    /// [`VerifiedSessions::default`], 15 s, 10,000 sessions;
    /// [`VerifiedSessions::disabled`] checks every read's session in full). A remembered
    /// session is still refused by the read that follows a revocation, role change or
    /// elevation change: the database compares the user's session epoch in the
    /// read's own snapshot (`procuhelp_auth::session_read`).
    pub fn verified_sessions(mut self, cache: VerifiedSessions) -> Self {
        self.verified_sessions = cache;
        self
    }

    /// The [`Sdk`]. The authenticator records to the same sink and reads the same clock.
    pub fn build(self) -> Sdk {
        let tenants = TenantDb::new(self.runtime.clone());
        let mut auth = Authenticator::new(
            tenants.clone(),
            Arc::new(self.hasher.unwrap_or_default()),
            LoginThrottle::new(self.runtime, self.throttle),
            Totp::new(&self.totp_issuer),
            self.cipher.clone(),
            self.audit.clone(),
            self.clock.clone(),
            self.sessions,
        );
        if let Some(limiter) = self.hash_limiter {
            auth = auth.with_hash_limiter(limiter);
        }
        Sdk {
            inner: Arc::new(Inner {
                tenants,
                auth,
                audit: self.audit,
                clock: self.clock,
                cipher: self.cipher,
                vault: self.vault,
                audit_log: self.audit_log,
                verified_sessions: Arc::new(self.verified_sessions),
                personal_data: self.personal_data,
            }),
        }
    }
}
