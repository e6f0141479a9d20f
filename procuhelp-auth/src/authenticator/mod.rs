//! Sign-in and the account's own security actions, composed from the pieces of this
//! crate: throttle → directory → Argon2id (off the executor, under the hashing bound) →
//! second factor → session, each outcome recorded in the audit log before it takes effect.
//!
//! Database discipline (issue #11 finding 1): no path holds one pooled connection while it
//! waits for another. Throttle reservations run on a connection of their own *between*
//! tenant transactions, never inside one; what a success changes in the throttle runs in
//! the tenant transaction that commits the success. Password sign-in is in [`sign_in`],
//! the password and code re-checks inside a session in [`recheck`].

use std::net::IpAddr;
use std::sync::Arc;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome};
use procuhelp_core::{Clock, OrgId, SecretText, UserId};
use procuhelp_tenancy::{FieldCipher, FieldRef, TenantDb, TenantTx};
use serde_json::json;
use time::OffsetDateTime;

use crate::directory::{self, UserRecord};
use crate::hash_limiter::{HashLimiter, HashPermit};
use crate::password::{PasswordHasher, PasswordPolicy, Verification};
use crate::recovery::RecoveryCodes;
use crate::session::{Credential, SessionPolicy};
use crate::session_store::{self, NewSession, SessionPrincipal, SessionStage};
use crate::throttle::{LoginThrottle, Reserved, ThrottleKey};
use crate::totp::{Totp, TotpSecret};
use crate::{AuthError, AuthResult};

mod recheck;
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

    /// The clock every check uses.
    pub fn now(&self) -> OffsetDateTime {
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

    /// Records `event` durably, or fails (and the caller does not go on).
    pub async fn record(&self, event: AuditEvent) -> AuthResult<()> {
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

    /// Hashes a new password off the executor, after checking the policy, under the
    /// hashing bound ([`AuthError::Busy`] when it is saturated).
    pub async fn hash_new_password(&self, password: SecretText) -> AuthResult<String> {
        self.password_policy.check(&password)?;
        let permit = self.limiter.acquire().await?;
        Ok(self.hash_with(permit, password).await?.0)
    }

    /// Verifies `password` against `stored` (a dummy hash if `None`) on a blocking thread.
    /// The permit travels with the job and comes back with its result, so it is held
    /// until the hash is done even if the caller is cancelled.
    async fn verify_with(
        &self,
        permit: HashPermit,
        password: SecretText,
        stored: Option<String>,
    ) -> AuthResult<(Verification, HashPermit)> {
        let hasher = self.hasher.clone();
        let (verified, permit) = tokio::task::spawn_blocking(move || {
            (hasher.verify(&password, stored.as_deref()), permit)
        })
        .await
        .map_err(|_| AuthError::Internal)?;
        // A malformed stored hash is a failed sign-in, never a match.
        Ok((verified.map_err(|_| AuthError::InvalidCredentials)?, permit))
    }

    /// Hashes `password` on a blocking thread, holding `permit` (see [`Self::verify_with`]).
    async fn hash_with(
        &self,
        permit: HashPermit,
        password: SecretText,
    ) -> AuthResult<(String, HashPermit)> {
        let hasher = self.hasher.clone();
        let (hashed, permit) =
            tokio::task::spawn_blocking(move || (hasher.hash(&password), permit))
                .await
                .map_err(|_| AuthError::Internal)?;
        Ok((hashed?, permit))
    }

    /// Reserves an attempt on `keys` before anything is verified. A refusal is recorded
    /// (as `event` would, denied, with the reason added to `detail`) and returned; a
    /// lock that had run out is recorded as lifted. Call it holding no pooled connection.
    async fn reserve(
        &self,
        keys: &[ThrottleKey<'_>],
        event: impl Fn(Action, Outcome) -> AuditEvent,
        detail: serde_json::Value,
    ) -> AuthResult<Vec<Reserved>> {
        let because = |reason: &str| {
            let mut context = detail.clone();
            if let Some(fields) = context.as_object_mut() {
                fields.insert("reason".to_owned(), json!(reason));
            }
            context
        };
        match self.throttle.reserve(keys, self.now()).await {
            Ok(reserved) => {
                if reserved.iter().any(|r| r.lock_lifted) {
                    self.record(
                        event(Action::AccountUnlocked, Outcome::Success)
                            .context(because("lock expired")),
                    )
                    .await?;
                }
                Ok(reserved)
            }
            Err(e @ AuthError::Throttled { .. }) => {
                self.record(
                    event(Action::LoginFailed, Outcome::Denied).context(because("throttled")),
                )
                .await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Records a failed attempt (and the lock it caused, if any) and returns `error`, or
    /// the audit failure that stopped the recording. `context` says what failed.
    async fn attempt_failed(
        &self,
        event: impl Fn(Action, Outcome) -> AuditEvent,
        reserved: Reserved,
        context: serde_json::Value,
        error: AuthError,
    ) -> AuthError {
        let recorded = async {
            self.record(event(Action::LoginFailed, Outcome::Failure).context(context))
                .await?;
            if reserved.locks_if_failed {
                self.record(event(Action::AccountLocked, Outcome::Success).context(
                    json!({ "failures": reserved.failures, "today": reserved.day_failures }),
                ))
                .await?;
            }
            Ok::<(), AuthError>(())
        }
        .await;
        match recorded {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// Opens a transaction of `credential`'s organisation and checks that it still
    /// authenticates the session `expected` (same session, user and stage: it may have
    /// been revoked or stepped up since the caller looked); returns it with its user.
    /// Any failure ends the transaction.
    async fn session_user(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        client: &ClientInfo,
    ) -> AuthResult<(TenantTx, SessionPrincipal, UserRecord)> {
        let mut tx = match self.db.begin(credential.org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => {
                return Err(AuthError::Unauthenticated);
            }
            Err(e) => return Err(e.into()),
        };
        let found = async {
            let principal = self.session(&mut tx, credential, client).await?;
            let same = principal.session == expected.session
                && principal.user == expected.user
                && principal.stage == expected.stage;
            if !same {
                return Err(AuthError::Unauthenticated);
            }
            let user = directory::get(&mut tx, principal.user).await?;
            Ok((principal, user))
        }
        .await;
        match found {
            Ok((principal, user)) => Ok((tx, principal, user)),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn open_session(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        stage: SessionStage,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let mut policy = self.sessions;
        if stage != SessionStage::Full {
            // A half-signed-in session lives just long enough to finish signing in.
            policy.absolute = policy.absolute.min(time::Duration::minutes(10));
        }
        let (_, credential) = session_store::open(
            tx,
            NewSession {
                user,
                stage,
                amr,
                policy,
                source: client.source,
                user_agent: client.user_agent.as_deref(),
            },
            self.now(),
        )
        .await?;
        Ok(Issued {
            credential,
            stage,
            user,
        })
    }

    /// Opens a new full session for `user` (used by SSO sign-in, with the IdP's `amr`).
    pub async fn open_full_session(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        self.open_session(tx, user, SessionStage::Full, amr, client)
            .await
    }

    /// Looks up a session credential in `tx`'s organisation and records the expiry of
    /// elevations that ran out.
    pub async fn session(
        &self,
        tx: &mut TenantTx,
        credential: &Credential,
        client: &ClientInfo,
    ) -> AuthResult<SessionPrincipal> {
        let principal = session_store::authenticate(tx, credential, self.now()).await?;
        for id in &principal.expired_elevations {
            self.record(
                self.event(
                    Some(tx.org()),
                    Actor::System,
                    Action::ElevationExpired,
                    Outcome::Success,
                    client,
                )
                .target(format!("elevation:{id}"))
                .context(json!({ "user": principal.user.to_string() })),
            )
            .await?;
        }
        Ok(principal)
    }

    async fn user_secret(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        column: &'static str,
        sealed: &[u8],
    ) -> AuthResult<TotpSecret> {
        let row = user.id.to_string();
        let bytes = self
            .cipher
            .decrypt(tx.org(), FieldRef::new(USERS, column, &row), sealed)
            .await?;
        TotpSecret::from_bytes(bytes).map_err(|_| AuthError::Internal)
    }

    /// Checks a TOTP code (never the same step twice) or, if it is not one, a recovery
    /// code (consumed). Returns the `amr` value that was used.
    async fn second_factor(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<&'static str> {
        let Some(sealed) = &user.totp_sealed else {
            return Err(AuthError::InvalidCode);
        };
        let secret = self.user_secret(tx, user, TOTP_COLUMN, sealed).await?;
        let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
        if let Ok(step) = self.totp.verify(&secret, code.trim(), self.now(), last) {
            let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
            if directory::advance_totp_step(tx, user.id, step).await? {
                return Ok("otp");
            }
            return Err(AuthError::InvalidCode);
        }
        if directory::use_recovery_code(tx, user.id, code).await? {
            self.record(self.user_event(
                Some(tx.org()),
                user,
                Action::RecoveryCodeUsed,
                Outcome::Success,
                client,
            ))
            .await?;
            return Ok("otp");
        }
        Err(AuthError::InvalidCode)
    }

    /// Replaces the current session by a new full one (new id: no fixation across a
    /// privilege change) and records the step-up.
    async fn step_up(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        principal: &SessionPrincipal,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        session_store::revoke(tx, principal.session, None, self.now()).await?;
        let issued = self
            .open_session(tx, user.id, SessionStage::Full, amr, client)
            .await?;
        self.record(
            self.user_event(
                Some(tx.org()),
                user,
                Action::MfaStepUp,
                Outcome::Success,
                client,
            )
            .context(json!({ "amr": amr })),
        )
        .await?;
        Ok(issued)
    }

    /// Starts TOTP enrolment: a new 160-bit secret, stored sealed as *pending* (it does
    /// nothing until confirmed).
    pub async fn start_enrolment(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        client: &ClientInfo,
    ) -> AuthResult<Enrolment> {
        let user = directory::get(tx, principal.user).await?;
        if user.has_mfa() {
            return Err(AuthError::Conflict("MFA is already enabled"));
        }
        let secret = TotpSecret::generate().map_err(|_| AuthError::Internal)?;
        let row = user.id.to_string();
        let sealed = self
            .cipher
            .encrypt(
                tx.org(),
                FieldRef::new(USERS, TOTP_PENDING_COLUMN, &row),
                secret.expose(),
            )
            .await?;
        directory::set_totp_pending(tx, user.id, &sealed, self.now()).await?;
        let uri = self
            .totp
            .enrolment_uri(&secret, &user.email)
            .map_err(|_| AuthError::Internal)?;
        let qr = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|_| AuthError::Internal)?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::MfaEnrolmentStarted,
            Outcome::Success,
            client,
        ))
        .await?;
        Ok(Enrolment {
            uri: SecretText::new(uri),
            qr_svg: SecretText::new(qr),
        })
    }

    /// Confirms enrolment with a code from the authenticator app: the secret becomes
    /// active, ten recovery codes are issued (shown once), the session is replaced by a
    /// new one with `mfa` in its `amr`.
    pub async fn confirm_enrolment(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<(Issued, RecoveryCodes)> {
        let user = directory::get(tx, principal.user).await?;
        let pending = directory::totp_pending(tx, user.id)
            .await?
            .ok_or(AuthError::Conflict("no enrolment in progress"))?;
        let secret = self
            .user_secret(tx, &user, TOTP_PENDING_COLUMN, &pending)
            .await?;
        let step = self
            .totp
            .verify(&secret, code.trim(), self.now(), None)
            .map_err(|_| AuthError::InvalidCode)?;
        let row = user.id.to_string();
        let sealed = self
            .cipher
            .encrypt(
                tx.org(),
                FieldRef::new(USERS, TOTP_COLUMN, &row),
                secret.expose(),
            )
            .await?;
        let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
        directory::confirm_totp(tx, user.id, &sealed, step, self.now()).await?;
        let codes = RecoveryCodes::generate().map_err(|_| AuthError::Internal)?;
        directory::replace_recovery_codes(tx, user.id, &codes.hashes).await?;
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::MfaEnabled,
            Outcome::Success,
            client,
        ))
        .await?;
        let issued = self
            .step_up(tx, &user, principal, &["pwd", "otp", "mfa"], client)
            .await?;
        Ok((issued, codes))
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
