//! Actions inside a session that need the password (and code) again: changing the
//! password, turning MFA off, new recovery codes.
//!
//! A session is no way around the sign-in throttle (issue #11 finding 3): the password is
//! reserved on the account's sign-in key and the code on the user's second-factor key
//! before either is checked, failures are recorded as failed sign-ins (with what they
//! were for) and count towards the same back-off and locks.

use procuhelp_core::SecretText;
use serde_json::json;

use super::attempts::Method;
use super::{Authenticator, ClientInfo, Issued, commit_if_ok};
use crate::directory::{self, Email, UserRecord};
use crate::hash_limiter::HashPermit;
use crate::recovery::RecoveryCodes;
use crate::session::Credential;
use crate::session::{self, SessionPrincipal};
use crate::throttle::ThrottleKey;
use crate::{AuthError, AuthResult};
use procuhelp_audit::{Action, Outcome};
use procuhelp_tenancy::TenantTx;

impl Authenticator {
    /// Checks the current password of the session's user. The account's sign-in key is
    /// found in a short transaction of its own, the attempt reserved with no connection
    /// held, then a second transaction re-checks the session and verifies the password.
    /// On success that transaction is returned open, with the reservation given back in
    /// it; on failure it is rolled back and the failure recorded.
    async fn checked_password(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        password: SecretText,
        permit: HashPermit,
        during: &'static str,
        client: &ClientInfo,
    ) -> AuthResult<(TenantTx, SessionPrincipal, UserRecord, HashPermit)> {
        let org = credential.org;
        let (tx, _, user) = self.session_user(credential, expected, client).await?;
        tx.rollback().await?;
        let email = Email::parse(&user.email)?;
        let keys = [ThrottleKey::Account(org, &email)];
        let event = |action, outcome| self.user_event(Some(org), &user, action, outcome, client);
        let reserved = self
            .reserve(&keys, Method::Password, event, json!({ "during": during }))
            .await?
            .first()
            .copied()
            .ok_or(AuthError::Internal)?;
        let (mut tx, principal, current) =
            match self.session_user(credential, expected, client).await {
                Ok(found) => found,
                // The session ended since the caller looked: the attempt was counted, so
                // it is recorded.
                Err(AuthError::Unauthenticated) => {
                    let detail = json!({ "during": during });
                    let (method, reason) = (Method::Password, "session ended");
                    let error = AuthError::Unauthenticated;
                    return Err(self
                        .attempt_failed(event, reserved, method, reason, detail, error)
                        .await);
                }
                Err(e) => return Err(e),
            };
        let checked = async {
            let (verification, permit) = self
                .verify_with(permit, password, current.password_hash.clone())
                .await?;
            if !verification.ok {
                return Err(AuthError::InvalidCredentials);
            }
            self.throttle.succeeded(tx.conn(), &keys).await?;
            Ok(permit)
        }
        .await;
        match checked {
            Ok(permit) => Ok((tx, principal, current, permit)),
            Err(e) => {
                tx.rollback().await?;
                if !matches!(e, AuthError::InvalidCredentials) {
                    return Err(e);
                }
                let detail = json!({
                    "during": during,
                    "account_failures": reserved.failures,
                });
                let (method, reason) = (Method::Password, "invalid credentials");
                let error = AuthError::InvalidCredentials;
                Err(self
                    .attempt_failed(event, reserved, method, reason, detail, error)
                    .await)
            }
        }
    }

    /// Checks a fresh password, then a fresh code, each throttled and recorded. The
    /// password's success is committed before the code is reserved (so no connection is
    /// held across the reservation); `guard` is checked with each.
    #[allow(clippy::too_many_arguments)]
    async fn checked_password_and_code(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        password: SecretText,
        code: &str,
        during: &'static str,
        client: &ClientInfo,
        guard: Guard,
    ) -> AuthResult<(TenantTx, UserRecord)> {
        let permit = self.limiter.acquire().await?;
        let (mut tx, _, user, permit) = self
            .checked_password(credential, expected, password, permit, during, client)
            .await?;
        drop(permit);
        let allowed = self.allowed(guard, &mut tx, &user).await;
        // The password was right: that counts even if the action is not allowed.
        tx.commit().await?;
        allowed?;
        let (mut tx, _, user, _) = self
            .checked_code(credential, expected, code, during, client)
            .await?;
        match self.allowed(guard, &mut tx, &user).await {
            Ok(()) => Ok((tx, user)),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Turns MFA off (fresh password and code required). Refused while the organisation
    /// requires MFA.
    ///
    /// `expected` is the session `credential` authenticated for the caller. Opens its own
    /// transactions: call it holding no connection of the authenticator's pool.
    pub async fn disable_mfa(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        password: SecretText,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        let (mut tx, user) = self
            .checked_password_and_code(
                credential,
                expected,
                password,
                code,
                "MFA disable",
                client,
                Guard::MfaDisable,
            )
            .await?;
        let done = async {
            directory::clear_mfa(&mut tx, user.id, self.now()).await?;
            self.record(self.user_event(
                Some(credential.org),
                &user,
                Action::MfaDisabled,
                Outcome::Success,
                client,
            ))
            .await
        }
        .await;
        commit_if_ok(tx, done).await
    }

    /// Whether the action `guard` stands for is allowed for `user` now.
    async fn allowed(&self, guard: Guard, tx: &mut TenantTx, user: &UserRecord) -> AuthResult<()> {
        match guard {
            Guard::None => Ok(()),
            Guard::MfaDisable => {
                if !user.has_mfa() {
                    return Err(AuthError::Conflict("MFA is not enabled"));
                }
                if directory::org_policy(tx).await?.mfa_required {
                    return Err(AuthError::Conflict("the organisation requires MFA"));
                }
                Ok(())
            }
        }
    }

    /// Replaces the recovery codes (fresh password and code required); the old ones stop
    /// working.
    ///
    /// `expected` is the session `credential` authenticated for the caller. Opens its own
    /// transactions: call it holding no connection of the authenticator's pool.
    pub async fn regenerate_recovery_codes(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        password: SecretText,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<RecoveryCodes> {
        let (mut tx, user) = self
            .checked_password_and_code(
                credential,
                expected,
                password,
                code,
                "new recovery codes",
                client,
                Guard::None,
            )
            .await?;
        let done = async {
            let codes = RecoveryCodes::generate().map_err(|_| AuthError::Internal)?;
            directory::replace_recovery_codes(&mut tx, user.id, &codes.hashes).await?;
            self.record(self.user_event(
                Some(credential.org),
                &user,
                Action::RecoveryCodesRegenerated,
                Outcome::Success,
                client,
            ))
            .await?;
            Ok(codes)
        }
        .await;
        commit_if_ok(tx, done).await
    }

    /// Changes the password (the current one is required), revokes every session of the
    /// user and issues a new one.
    ///
    /// `expected` is the session `credential` authenticated for the caller. Opens its own
    /// transactions: call it holding no connection of the authenticator's pool.
    pub async fn change_password(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        current: SecretText,
        new: SecretText,
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        // A new password the policy refuses costs no attempt.
        self.password_policy.check(&new)?;
        let permit = self.limiter.acquire().await?;
        let (mut tx, principal, user, permit) = self
            .checked_password(
                credential,
                expected,
                current,
                permit,
                "password change",
                client,
            )
            .await?;
        let done = async {
            let (phc, _) = self.hash_with(permit, new).await?;
            let now = self.now();
            directory::set_password_hash(&mut tx, user.id, &phc, now).await?;
            let revoked = session::revoke_all(&mut tx, user.id, None, now).await?;
            let amr: Vec<&str> = principal.amr.iter().map(String::as_str).collect();
            let issued = self
                .open_session(&mut tx, user.id, principal.stage, &amr, client)
                .await?;
            self.record(
                self.user_event(
                    Some(credential.org),
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
        .await;
        commit_if_ok(tx, done).await
    }
}

/// What must hold, besides the password and code, for a re-checked action.
#[derive(Debug, Clone, Copy)]
enum Guard {
    /// Nothing more.
    None,
    /// MFA is on and the organisation does not require it.
    MfaDisable,
}
