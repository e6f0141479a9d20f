//! The error of the stateful parts (directory, sessions, elevation, sign-in).

use time::Duration;

/// Why an authentication or administration step did not happen.
///
/// Messages are fixed strings: they never contain a password, token, code, email or
/// hash, so they can be logged and returned to clients as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown organisation, unknown user, wrong password, disabled user: one answer,
    /// so a caller cannot tell which (enumeration resistance).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures for this account or source address: try again later.
    #[error("too many attempts; try again later")]
    Throttled {
        /// How long until the next attempt is considered.
        retry_after: Duration,
    },
    /// Too many password hashes are running (sign-in load beyond the machine's bound):
    /// try again shortly. Nothing was checked or counted.
    #[error("busy; try again shortly")]
    Busy {
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// No valid session or token was presented (missing, malformed, expired, revoked).
    #[error("authentication required")]
    Unauthenticated,
    /// The session has not completed the steps this action needs (second factor,
    /// enrolment required by the organisation's policy).
    #[error("second factor required")]
    SecondFactorRequired,
    /// A TOTP or recovery code did not verify (or was already used).
    #[error("invalid code")]
    InvalidCode,
    /// Authenticated, but the role does not grant the permission.
    #[error("forbidden")]
    Forbidden,
    /// The action would let someone approve their own request or elevation.
    #[error("segregation of duties: nobody approves their own request")]
    SelfApproval,
    /// The referenced record does not exist in this organisation.
    #[error("not found")]
    NotFound,
    /// The record is in a state that does not allow the action.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Input failed validation.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A new password breaks the password policy.
    #[error(transparent)]
    Password(#[from] crate::password::PasswordError),
    /// The audit event of a privileged action could not be durably recorded, so the
    /// action did not happen (fail closed).
    #[error("audit log unavailable")]
    Audit(#[source] procuhelp_audit::AuditError),
    /// Storage (database, field cipher, vault) failed.
    #[error("storage: {0}")]
    Storage(#[source] procuhelp_tenancy::Error),
    /// A system resource (RNG, worker thread) failed.
    #[error("internal error")]
    Internal,
}

impl From<procuhelp_tenancy::Error> for AuthError {
    fn from(e: procuhelp_tenancy::Error) -> Self {
        match e {
            procuhelp_tenancy::Error::NotFound => AuthError::NotFound,
            other => AuthError::Storage(other),
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        procuhelp_tenancy::Error::from(e).into()
    }
}

impl From<procuhelp_audit::AuditError> for AuthError {
    fn from(e: procuhelp_audit::AuditError) -> Self {
        AuthError::Audit(e)
    }
}

/// Result with [`AuthError`].
pub type AuthResult<T> = Result<T, AuthError>;
