//! Password hashing off the executor under the hashing bound, and throttled attempts:
//! an attempt is reserved before anything is verified, and a failure (with the lock it
//! causes) is recorded before it is answered.

use procuhelp_audit::{Action, AuditEvent, Outcome};
use procuhelp_core::SecretText;
use serde_json::json;

use super::Authenticator;
use crate::hash_limiter::HashPermit;
use crate::password::Verification;
use crate::throttle::{Reserved, ThrottleKey};
use crate::{AuthError, AuthResult};

impl Authenticator {
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
    pub(super) async fn verify_with(
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
    pub(super) async fn hash_with(
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

    /// Reserves an attempt of `method` on `keys` before anything is verified. A refusal
    /// is recorded (as `event` would, denied, with `detail`, the method, the reason and
    /// whether a lock refused it) and returned; a lock that had run out is recorded as
    /// lifted. Call it holding no pooled connection.
    pub(super) async fn reserve(
        &self,
        keys: &[ThrottleKey<'_>],
        method: Method,
        event: impl Fn(Action, Outcome) -> AuditEvent,
        detail: serde_json::Value,
    ) -> AuthResult<Vec<Reserved>> {
        let because = |reason: &str| context(&detail, method, reason);
        match self.throttle.try_reserve(keys, self.now()).await? {
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
            Err(refused) => {
                metrics::counter!("procuhelp_auth_throttled_total", "method" => method.as_str())
                    .increment(1);
                let mut detail = because("throttled");
                if let Some(fields) = detail.as_object_mut() {
                    fields.insert("locked".to_owned(), json!(refused.locked));
                }
                self.record(event(Action::LoginFailed, Outcome::Denied).context(detail))
                    .await?;
                Err(AuthError::Throttled {
                    retry_after: refused.retry_after,
                })
            }
        }
    }

    /// Records a failed attempt of `method` (and the lock it caused, if any) and returns
    /// `error`, or the audit failure that stopped the recording. Every refusal after a
    /// reservation ends here, so each counted attempt leaves a trace: `reason` says why
    /// (for the audit log only, never the caller), `detail` adds what the attempt was for.
    pub(super) async fn attempt_failed(
        &self,
        event: impl Fn(Action, Outcome) -> AuditEvent,
        reserved: Reserved,
        method: Method,
        reason: &'static str,
        detail: serde_json::Value,
        error: AuthError,
    ) -> AuthError {
        metrics::counter!(
            "procuhelp_auth_sign_in_failures_total",
            "method" => method.as_str(),
            "reason" => reason,
        )
        .increment(1);
        if reserved.locks_if_failed {
            metrics::counter!("procuhelp_auth_lockouts_total").increment(1);
        }
        let recorded = async {
            self.record(
                event(Action::LoginFailed, Outcome::Failure)
                    .context(context(&detail, method, reason)),
            )
            .await?;
            if reserved.locks_if_failed {
                self.record(
                    event(Action::AccountLocked, Outcome::Success).context(json!({
                        "method": method.as_str(),
                        "failures": reserved.failures,
                        "today": reserved.day_failures,
                    })),
                )
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
}

/// What an attempt checks: recorded with every refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// The account's password (sign-in or a re-check inside a session).
    Password,
    /// A TOTP or recovery code.
    SecondFactor,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::SecondFactor => "second_factor",
        }
    }
}

/// `detail` with the method and the reason added.
fn context(detail: &serde_json::Value, method: Method, reason: &str) -> serde_json::Value {
    let mut context = detail.clone();
    if !context.is_object() {
        context = json!({});
    }
    if let Some(fields) = context.as_object_mut() {
        fields.insert("method".to_owned(), json!(method.as_str()));
        fields.insert("reason".to_owned(), json!(reason));
    }
    context
}
