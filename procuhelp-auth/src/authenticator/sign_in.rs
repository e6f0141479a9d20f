//! Password sign-in and its second factor.
//!
//! The order is what makes it safe under load (issue #11 findings 1, 3 and 4):
//! 1. a hashing permit, or a fast [`AuthError::Busy`] before any database work;
//! 2. who the account is, in a short read-only transaction that ends at once;
//! 3. the attempt reserved on the throttle (no connection held), or refused;
//! 4. Argon2id with no connection held;
//! 5. on success only, one transaction that re-reads the user, opens the session, gives the
//!    reservation back and commits.
//!
//! The second factor has a throttle key of its own per user, which no password success
//! resets (a correct password cannot buy more code guesses), with a daily cap.
//!
//! Every attempt that was reserved ends in a recorded outcome: a success, or an
//! `auth.login_failed` naming the method and the reason (wrong password, unusable stored
//! hash, account changed during the sign-in, session ended, wrong code) and, when the
//! failure locks the key, an `auth.account_locked`.

use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_core::{OrgId, SecretText};
use serde_json::json;

use super::attempts::Method;
use super::{Authenticator, ClientInfo, Issued, commit_if_ok};
use crate::directory::{self, Email, UserRecord, UserStatus};
use crate::hash_limiter::HashPermit;
use crate::password::Verification;
use crate::session::Credential;
use crate::session::{SessionPrincipal, SessionStage};
use crate::throttle::{Reserved, ThrottleKey};
use crate::{AuthError, AuthResult};

impl Authenticator {
    /// Password sign-in to `org` as `email`.
    ///
    /// Unknown organisation, unknown email, disabled user and wrong password all return
    /// [`AuthError::InvalidCredentials`] after the same Argon2id work. A throttled key
    /// returns [`AuthError::Throttled`] without looking at the password; a saturated
    /// hashing bound returns [`AuthError::Busy`] without looking at anything.
    ///
    /// Opens its own transactions: call it holding no connection of the authenticator's
    /// pool.
    pub async fn login(
        &self,
        org: OrgId,
        email: &str,
        password: SecretText,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let email = Email::parse(email).map_err(|_| AuthError::InvalidCredentials)?;
        let permit = self.limiter.acquire().await?;
        let mut keys = vec![ThrottleKey::Account(org, &email)];
        if let Some(ip) = client.source {
            keys.push(ThrottleKey::Address(ip));
        }
        // Events about an organisation that does not exist go to the system chain.
        let (event_org, user) = match self.db.begin(org).await {
            Ok(mut tx) => {
                let found = directory::find_by_email(&mut tx, &email).await;
                tx.rollback().await?;
                (Some(org), found?)
            }
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => (None, None),
            Err(e) => return Err(e.into()),
        };
        let anonymous =
            |action, outcome| self.event(event_org, Actor::System, action, outcome, client);
        let reserved = self
            .reserve(&keys, Method::Password, anonymous, json!({}))
            .await?
            .first()
            .copied()
            .ok_or(AuthError::Internal)?;
        let usable = user.as_ref().filter(|u| u.status == UserStatus::Active);
        let stored = usable.and_then(|u| u.password_hash.clone());
        let verified = self
            .verify_with(
                permit,
                SecretText::new(password.expose().to_owned()),
                stored,
            )
            .await;
        let (verification, permit) = match verified {
            Ok(done) => done,
            // The stored hash cannot be parsed: a failed sign-in like any other.
            Err(AuthError::InvalidCredentials) => {
                let reason = "unusable password hash";
                return Err(self
                    .login_failed(event_org, org, user.as_ref(), reserved, reason, client)
                    .await);
            }
            Err(e) => return Err(e),
        };
        match usable.filter(|_| verification.ok) {
            Some(user) => {
                let verified = Verified {
                    user,
                    verification,
                    password,
                    permit,
                    reserved,
                };
                self.signed_in(org, &keys, verified, client).await
            }
            None => {
                let reason = "invalid credentials";
                Err(self
                    .login_failed(event_org, org, user.as_ref(), reserved, reason, client)
                    .await)
            }
        }
    }

    /// The password was right: re-reads the user (it must not have changed since it was
    /// verified), rehashes a weak hash, opens the session, gives the reservation back.
    async fn signed_in(
        &self,
        org: OrgId,
        keys: &[ThrottleKey<'_>],
        verified: Verified<'_>,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let Verified {
            user: checked,
            verification,
            password,
            permit,
            reserved,
        } = verified;
        let now = self.now();
        let email = Email::parse(&checked.email)?;
        let mut tx = self.db.begin(org).await?;
        let current = match directory::find_by_email(&mut tx, &email).await {
            Ok(current) => current,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        // A password change or a disabled user between the check and now: refuse.
        let Some(user) = current.filter(|u| {
            u.id == checked.id
                && u.status == UserStatus::Active
                && u.password_hash == checked.password_hash
        }) else {
            tx.rollback().await?;
            let reason = "account changed during sign-in";
            return Err(self
                .login_failed(Some(org), org, Some(checked), reserved, reason, client)
                .await);
        };
        let done = async {
            if verification.needs_rehash {
                let (phc, _) = self.hash_with(permit, password).await?;
                directory::set_password_hash(&mut tx, user.id, &phc, now).await?;
            } else {
                drop(permit);
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
            // Last, so the throttle's rows stay locked only until the commit.
            self.throttle.succeeded(tx.conn(), keys).await?;
            Ok(issued)
        }
        .await;
        commit_if_ok(tx, done).await
    }

    /// Records a failed password sign-in for `reason`; returns
    /// [`AuthError::InvalidCredentials`].
    async fn login_failed(
        &self,
        event_org: Option<OrgId>,
        org: OrgId,
        user: Option<&UserRecord>,
        reserved: Reserved,
        reason: &'static str,
        client: &ClientInfo,
    ) -> AuthError {
        let event = |action, outcome| match user {
            Some(u) => self.user_event(event_org, u, action, outcome, client),
            None => self.event(event_org, Actor::System, action, outcome, client),
        };
        let detail = json!({
            "account_failures": reserved.failures,
            "org": org.to_string(),
        });
        let error = AuthError::InvalidCredentials;
        self.attempt_failed(event, reserved, Method::Password, reason, detail, error)
            .await
    }

    /// Finishes a sign-in that is waiting for its second factor: the code (or a recovery
    /// code) is checked, the half session is revoked and a new, full one is issued.
    ///
    /// `expected` is the session `credential` authenticated for the caller; it is checked
    /// again inside this method's own transaction. Every attempt is reserved first on the
    /// user's second-factor key (not the password's): lock after repeated failures and a
    /// daily cap, and a correct password resets neither. Call it holding no connection of
    /// the authenticator's pool (end the request's transaction first).
    pub async fn complete_second_factor(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        if expected.stage != SessionStage::SecondFactor {
            return Err(AuthError::Conflict("no second factor pending"));
        }
        let (tx, _, user, method) = self
            .checked_code(credential, expected, code, "sign-in", client)
            .await?;
        let mut tx = tx;
        let amr = ["pwd", method, "mfa"];
        let issued = self.step_up(&mut tx, &user, expected, &amr, client).await;
        commit_if_ok(tx, issued).await
    }

    /// Reserves a second-factor attempt for the session's user, then checks `code` in a
    /// transaction of its own. On success the transaction is returned open, with the
    /// reservation given back in it (it counts only if the caller commits), with the
    /// fresh principal, the user and the `amr` method. On a wrong code the transaction is
    /// rolled back and the failure (and lock) recorded, with `during` as its context.
    pub(super) async fn checked_code(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        code: &str,
        during: &'static str,
        client: &ClientInfo,
    ) -> AuthResult<(
        procuhelp_tenancy::TenantTx,
        SessionPrincipal,
        UserRecord,
        &'static str,
    )> {
        let org = credential.org;
        let key = [ThrottleKey::SecondFactor(org, expected.user)];
        let actor = Actor::User { id: expected.user };
        let event = |action, outcome| self.event(Some(org), actor, action, outcome, client);
        let reserved = self
            .reserve(
                &key,
                Method::SecondFactor,
                event,
                json!({ "factor": "second", "during": during }),
            )
            .await?
            .first()
            .copied()
            .ok_or(AuthError::Internal)?;
        let (mut tx, principal, user) = match self.session_user(credential, expected, client).await
        {
            Ok(found) => found,
            // The session ended (expired, revoked, stepped up) since the caller looked:
            // the attempt was counted, so it is recorded.
            Err(AuthError::Unauthenticated) => {
                let detail = json!({ "during": during });
                let error = AuthError::Unauthenticated;
                let reason = "session ended";
                return Err(self
                    .attempt_failed(event, reserved, Method::SecondFactor, reason, detail, error)
                    .await);
            }
            Err(e) => return Err(e),
        };
        let checked = async {
            let method = self.second_factor(&mut tx, &user, code, client).await?;
            self.throttle.succeeded(tx.conn(), &key).await?;
            Ok(method)
        }
        .await;
        match checked {
            Ok(method) => Ok((tx, principal, user, method)),
            Err(e) => {
                tx.rollback().await?;
                if !matches!(e, AuthError::InvalidCode) {
                    return Err(e);
                }
                let event =
                    |action, outcome| self.user_event(Some(org), &user, action, outcome, client);
                let detail = json!({
                    "during": during,
                    "second_factor_failures": reserved.failures,
                    "second_factor_failures_today": reserved.day_failures,
                });
                let (method, reason) = (Method::SecondFactor, "invalid second factor");
                Err(self
                    .attempt_failed(
                        event,
                        reserved,
                        method,
                        reason,
                        detail,
                        AuthError::InvalidCode,
                    )
                    .await)
            }
        }
    }
}

/// A password that verified, with what the sign-in needs to finish.
struct Verified<'a> {
    user: &'a UserRecord,
    verification: Verification,
    password: SecretText,
    permit: HashPermit,
    reserved: Reserved,
}
