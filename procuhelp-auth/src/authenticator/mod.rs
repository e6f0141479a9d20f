//! Sign-in and the account's own security actions, composed from the pieces of this
//! crate: throttle → directory → Argon2id (off the executor, under the hashing bound) →
//! second factor → session, each outcome recorded in the audit log before it takes effect.
//!
//! Database discipline (issue #11 finding 1): no path holds one pooled connection while it
//! waits for another. Throttle reservations run on a connection of their own *between*
//! tenant transactions, never inside one; what a success changes in the throttle runs in
//! the tenant transaction that commits the success.
//!
//! One job per module: password sign-in and its second factor in [`sign_in`], the
//! password and code re-checks inside a session in [`recheck`], reserving and recording
//! attempts (and hashing) in [`attempts`], the authenticator's sessions in [`sessions`],
//! TOTP enrolment and codes in [`mfa`].

use std::net::IpAddr;
use std::sync::Arc;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome};
use procuhelp_core::{Clock, OrgId, SecretText, UserId};
use procuhelp_tenancy::{FieldCipher, TenantDb, TenantTx};
use time::OffsetDateTime;

use crate::AuthResult;
use crate::directory::UserRecord;
use crate::hash_limiter::HashLimiter;
use crate::password::{PasswordHasher, PasswordPolicy};
use crate::session::{Credential, SessionPolicy, SessionStage};
use crate::throttle::LoginThrottle;
use crate::totp::Totp;

mod attempts;
mod invitations;
mod mfa;
mod recheck;
mod sessions;
mod sign_in;

/// Where a request came from: recorded with every event.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client address.
    pub source: Option<IpAddr>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request id, to correlate with logs.
    pub request_id: Option<String>,
}

/// A session handed out: give `credential` to the client (cookie), once.
#[derive(Debug)]
pub struct Issued {
    /// The new credential.
    pub credential: Credential,
    /// What the session may do.
    pub stage: SessionStage,
    /// The user.
    pub user: UserId,
}

/// A started TOTP enrolment: show the URI (and its QR code) to the user.
#[derive(Debug)]
pub struct Enrolment {
    /// `otpauth://totp/…` with the secret: secret material, never logged.
    pub uri: SecretText,
    /// The same URI as an SVG QR code: secret material too.
    pub qr_svg: SecretText,
}

/// Sign-in and account security, with everything it needs.
#[derive(Debug, Clone)]
pub struct Authenticator {
    db: TenantDb,
    hasher: Arc<PasswordHasher>,
    password_policy: Arc<PasswordPolicy>,
    throttle: LoginThrottle,
    totp: Totp,
    cipher: Arc<FieldCipher>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    sessions: SessionPolicy,
    limiter: HashLimiter,
}

/// The field names bound into the TOTP secrets' ciphertexts (`app.users.totp_sealed` and
/// `app.users.totp_pending_sealed`); key rotation jobs re-encrypt them under these names.
pub const TOTP_FIELD: (&str, &str) = ("users", "totp");
/// See [`TOTP_FIELD`].
pub const TOTP_PENDING_FIELD: (&str, &str) = ("users", "totp_pending");
const USERS: &str = TOTP_FIELD.0;
const TOTP_COLUMN: &str = TOTP_FIELD.1;
const TOTP_PENDING_COLUMN: &str = TOTP_PENDING_FIELD.1;

impl Authenticator {
    /// Assembles the authenticator.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: TenantDb,
        hasher: Arc<PasswordHasher>,
        throttle: LoginThrottle,
        totp: Totp,
        cipher: Arc<FieldCipher>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        sessions: SessionPolicy,
    ) -> Self {
        Self {
            db,
            hasher,
            password_policy: Arc::new(PasswordPolicy::default()),
            throttle,
            totp,
            cipher,
            audit,
            clock,
            sessions,
            limiter: HashLimiter::default(),
        }
    }

    /// The same authenticator with `limiter` bounding its password hashing (default: one
    /// hash per core, [`crate::hash_limiter::DEFAULT_MAX_WAIT`] of waiting).
    pub fn with_hash_limiter(mut self, limiter: HashLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The bound on concurrent password hashing.
    pub fn hash_limiter(&self) -> &HashLimiter {
        &self.limiter
    }

    /// The clock every check uses. Not the application's channel: handlers take the time
    /// from the application's one clock (`procuhelp_axum::Sdk::now`).
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The sign-in throttle (an admin's unlock goes through it).
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// The session lifetimes.
    pub fn session_policy(&self) -> SessionPolicy {
        self.sessions
    }

    /// The password policy for new passwords.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.password_policy
    }

    /// Records `event` durably, or fails (and the caller does not go on). Not the
    /// application's channel: handlers record through the application's one sink
    /// (`procuhelp_axum::Sdk::record`), the same one this authenticator was given.
    pub(crate) async fn record(&self, event: AuditEvent) -> AuthResult<()> {
        self.audit.record(event).await?;
        Ok(())
    }

    fn event(
        &self,
        org: Option<OrgId>,
        actor: Actor,
        action: Action,
        outcome: Outcome,
        client: &ClientInfo,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(org, actor, action, outcome)
            .at(self.now())
            .source(client.source, client.user_agent.as_deref());
        if let Some(id) = &client.request_id {
            event = event.request_id(id.clone());
        }
        event
    }

    /// An event of `user` acting on their own account, with their personal data (sealed
    /// per person by the audit log).
    fn user_event(
        &self,
        org: Option<OrgId>,
        user: &UserRecord,
        action: Action,
        outcome: Outcome,
        client: &ClientInfo,
    ) -> AuditEvent {
        self.event(org, Actor::User { id: user.id }, action, outcome, client)
            .person(user.id, Some(&user.email), Some(&user.display_name))
    }
}

/// Commits `tx` if `result` is a success, else rolls it back; returns `result` (or the
/// commit's failure).
async fn commit_if_ok<T>(tx: TenantTx, result: AuthResult<T>) -> AuthResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            // The error that ended the action is the one to report.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
