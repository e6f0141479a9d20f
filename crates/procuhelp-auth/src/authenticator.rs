//! Sign-in and the account's own security actions, composed from the pieces of this
//! crate: throttle → directory → Argon2id (off the executor) → second factor → session,
//! each outcome recorded in the audit log before it takes effect.

use std::net::IpAddr;
use std::sync::Arc;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome};
use procuhelp_core::{Clock, OrgId, SecretText, UserId};
use procuhelp_tenancy::{FieldCipher, FieldRef, TenantDb, TenantTx};
use serde_json::json;
use time::OffsetDateTime;

use crate::directory::{self, Email, UserRecord};
use crate::password::{PasswordHasher, PasswordPolicy};
use crate::recovery::RecoveryCodes;
use crate::session::{Credential, SessionPolicy};
use crate::session_store::{self, NewSession, SessionPrincipal, SessionStage};
use crate::throttle::{LoginThrottle, ThrottleKey};
use crate::totp::{Totp, TotpSecret};
use crate::{AuthError, AuthResult};

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
        }
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

    /// Hashes a new password off the executor, after checking the policy.
    pub async fn hash_new_password(&self, password: SecretText) -> AuthResult<String> {
        self.password_policy.check(&password)?;
        self.hash_new_password_unchecked(password).await
    }

    async fn verify_password(
        &self,
        password: SecretText,
        stored: Option<String>,
    ) -> AuthResult<crate::password::Verification> {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.verify(&password, stored.as_deref()))
            .await
            .map_err(|_| AuthError::Internal)?
            .map_err(|_| AuthError::InvalidCredentials)
    }

    /// Password sign-in to `org` as `email`.
    ///
    /// Unknown organisation, unknown email, disabled user and wrong password all return
    /// [`AuthError::InvalidCredentials`] after the same Argon2id work. A throttled key
    /// returns [`AuthError::Throttled`] without looking at the password.
    pub async fn login(
        &self,
        org: OrgId,
        email: &str,
        password: SecretText,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let now = self.now();
        let email = Email::parse(email).map_err(|_| AuthError::InvalidCredentials)?;
        let mut keys = vec![ThrottleKey::Account(org, &email)];
        if let Some(ip) = client.source {
            keys.push(ThrottleKey::Address(ip));
        }
        // Events about an org that does not exist go to the system chain.
        let mut tx = match self.db.begin(org).await {
            Ok(tx) => Some(tx),
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let event_org = tx.as_ref().map(|_| org);
        match self.throttle.check(&keys, now).await {
            Ok(true) => {
                self.record(
                    self.event(
                        event_org,
                        Actor::System,
                        Action::AccountUnlocked,
                        Outcome::Success,
                        client,
                    )
                    .context(json!({ "reason": "lock expired" })),
                )
                .await?;
            }
            Ok(false) => {}
            Err(e @ AuthError::Throttled { .. }) => {
                self.record(
                    self.event(
                        event_org,
                        Actor::System,
                        Action::LoginFailed,
                        Outcome::Denied,
                        client,
                    )
                    .context(json!({ "reason": "throttled" })),
                )
                .await?;
                // End the transaction cleanly, so the connection goes back to the pool.
                if let Some(tx) = tx {
                    tx.rollback().await?;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        let user = match tx.as_mut() {
            Some(tx) => directory::find_by_email(tx, &email).await?,
            None => None,
        };
        let usable = user
            .as_ref()
            .filter(|u| u.status == directory::UserStatus::Active);
        let stored = usable.and_then(|u| u.password_hash.clone());
        let verification = self
            .verify_password(SecretText::new(password.expose().to_owned()), stored)
            .await?;
        let accepted = usable.filter(|_| verification.ok).cloned();
        let Some(user) = accepted else {
            if let Some(tx) = tx {
                tx.rollback().await?;
            }
            return Err(self
                .login_failed(org, event_org, &keys, user.as_ref(), client, now)
                .await);
        };
        let Some(mut tx) = tx else {
            return Err(AuthError::Internal);
        };
        self.throttle
            .reset(ThrottleKey::Account(org, &email))
            .await?;
        if verification.needs_rehash {
            let phc = self.hash_new_password_unchecked(password).await?;
            directory::set_password_hash(&mut tx, user.id, &phc, now).await?;
        }
        let stage = if user.has_mfa() {
            SessionStage::SecondFactor
        } else if directory::org_policy(&mut tx).await?.mfa_required {
            SessionStage::Enrolment
        } else {
            SessionStage::Full
        };
        let issued = self
            .open_session(&mut tx, user.id, stage, &["pwd"], client)
            .await?;
        self.record(
            self.user_event(
                Some(org),
                &user,
                Action::LoginSucceeded,
                Outcome::Success,
                client,
            )
            .context(json!({ "stage": stage, "rehashed": verification.needs_rehash })),
        )
        .await?;
        tx.commit().await?;
        Ok(issued)
    }

    async fn hash_new_password_unchecked(&self, password: SecretText) -> AuthResult<String> {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|_| AuthError::Internal)?
            .map_err(AuthError::from)
    }

    async fn login_failed(
        &self,
        org: OrgId,
        event_org: Option<OrgId>,
        keys: &[ThrottleKey<'_>],
        user: Option<&UserRecord>,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> AuthError {
        let result: AuthResult<()> = async {
            let mut locked = false;
            let mut failures = 0;
            for key in keys {
                let outcome = self.throttle.record_failure(*key, now).await?;
                if matches!(key, ThrottleKey::Account(..)) {
                    locked = outcome.locked_now;
                    failures = outcome.failures;
                }
            }
            let actor = user.map_or(Actor::System, |u| Actor::User { id: u.id });
            let mut event = self
                .event(event_org, actor, Action::LoginFailed, Outcome::Failure, client)
                .context(json!({ "reason": "invalid credentials", "account_failures": failures, "org": org.to_string() }));
            if let Some(u) = user {
                event = event.person(u.id, Some(&u.email), Some(&u.display_name));
            }
            self.record(event).await?;
            if locked {
                let mut event = self
                    .event(event_org, actor, Action::AccountLocked, Outcome::Success, client)
                    .context(json!({ "account_failures": failures }));
                if let Some(u) = user {
                    event = event.person(u.id, Some(&u.email), Some(&u.display_name));
                }
                self.record(event).await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => AuthError::InvalidCredentials,
            Err(e) => e,
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

    /// Finishes a sign-in that is waiting for its second factor: the code (or a recovery
    /// code) is checked, the half session is revoked and a new, full one is issued.
    /// Failures count against the account's throttle like wrong passwords.
    pub async fn complete_second_factor(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        if principal.stage != SessionStage::SecondFactor {
            return Err(AuthError::Conflict("no second factor pending"));
        }
        let org = tx.org();
        let user = directory::get(tx, principal.user).await?;
        let email = Email::parse(&user.email)?;
        let key = ThrottleKey::Account(org, &email);
        self.throttle.check(&[key], self.now()).await?;
        match self.second_factor(tx, &user, code, client).await {
            Ok(method) => {
                self.throttle.reset(key).await?;
                self.step_up(tx, &user, principal, &["pwd", method, "mfa"], client)
                    .await
            }
            Err(AuthError::InvalidCode) => {
                let outcome = self.throttle.record_failure(key, self.now()).await?;
                self.record(
                    self.user_event(Some(org), &user, Action::LoginFailed, Outcome::Failure, client)
                    .context(json!({ "reason": "invalid second factor", "account_failures": outcome.failures })),
                )
                .await?;
                if outcome.locked_now {
                    self.record(self.user_event(
                        Some(org),
                        &user,
                        Action::AccountLocked,
                        Outcome::Success,
                        client,
                    ))
                    .await?;
                }
                Err(AuthError::InvalidCode)
            }
            Err(e) => Err(e),
        }
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

    /// Checks a fresh password and second factor, for actions that weaken or reset the
    /// account's protection.
    async fn reauthenticate(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        password: SecretText,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        let verification = self
            .verify_password(password, user.password_hash.clone())
            .await?;
        if !verification.ok {
            return Err(AuthError::InvalidCredentials);
        }
        self.second_factor(tx, user, code, client).await?;
        Ok(())
    }

    /// Turns MFA off (fresh password and code required). Refused while the organisation
    /// requires MFA.
    pub async fn disable_mfa(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        password: SecretText,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        let user = directory::get(tx, principal.user).await?;
        if !user.has_mfa() {
            return Err(AuthError::Conflict("MFA is not enabled"));
        }
        if directory::org_policy(tx).await?.mfa_required {
            return Err(AuthError::Conflict("the organisation requires MFA"));
        }
        self.reauthenticate(tx, &user, password, code, client)
            .await?;
        directory::clear_mfa(tx, user.id, self.now()).await?;
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::MfaDisabled,
            Outcome::Success,
            client,
        ))
        .await
    }

    /// Replaces the recovery codes (fresh password and code required); the old ones stop
    /// working.
    pub async fn regenerate_recovery_codes(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        password: SecretText,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<RecoveryCodes> {
        let user = directory::get(tx, principal.user).await?;
        self.reauthenticate(tx, &user, password, code, client)
            .await?;
        let codes = RecoveryCodes::generate().map_err(|_| AuthError::Internal)?;
        directory::replace_recovery_codes(tx, user.id, &codes.hashes).await?;
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::RecoveryCodesRegenerated,
            Outcome::Success,
            client,
        ))
        .await?;
        Ok(codes)
    }

    /// Changes the password (the current one is required), revokes every session of the
    /// user and issues a new one.
    pub async fn change_password(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        current: SecretText,
        new: SecretText,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let user = directory::get(tx, principal.user).await?;
        let verification = self
            .verify_password(current, user.password_hash.clone())
            .await?;
        if !verification.ok {
            return Err(AuthError::InvalidCredentials);
        }
        let phc = self.hash_new_password(new).await?;
        directory::set_password_hash(tx, user.id, &phc, self.now()).await?;
        let revoked = session_store::revoke_all(tx, user.id, None, self.now()).await?;
        let amr: Vec<&str> = principal.amr.iter().map(String::as_str).collect();
        let issued = self
            .open_session(tx, user.id, principal.stage, &amr, client)
            .await?;
        self.record(
            self.user_event(
                Some(tx.org()),
                &user,
                Action::PasswordChanged,
                Outcome::Success,
                client,
            )
            .context(json!({ "sessions_revoked": revoked })),
        )
        .await?;
        Ok(issued)
    }
}
