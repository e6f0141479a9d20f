//! How failures become HTTP responses: a status, a stable machine-readable `code` and a
//! fixed human message, never internal detail (database errors are logged, not returned).
//!
//! ```json
//! { "code": "invalid_credentials", "error": "invalid credentials" }
//! ```
//!
//! The `code`s are part of the API: clients branch on them, and they do not change.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_auth::AuthError;
use serde_json::json;

/// A request failure. Authentication failures stay one opaque answer to the caller; the
/// cause goes to tracing and the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the auth layer (refused credentials, permissions, conflicts, storage).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The anti-CSRF header is missing or wrong on a cookie-authenticated change.
    #[error("csrf token missing or invalid")]
    Csrf,
    /// Bad input in the named field.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A dependency (the vault) is unavailable.
    #[error("service unavailable")]
    Unavailable,
}

/// Result of a handler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<procuhelp_tenancy::Error> for Error {
    fn from(e: procuhelp_tenancy::Error) -> Self {
        match e {
            // The rule broken, as well as the field: fixed text from the validator.
            procuhelp_tenancy::Error::Invalid { field, problem } => {
                Error::Auth(AuthError::Invalid { field, problem })
            }
            other => Error::Auth(other.into()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        procuhelp_tenancy::Error::from(e).into()
    }
}

impl From<procuhelp_audit::AuditError> for Error {
    fn from(e: procuhelp_audit::AuditError) -> Self {
        Error::Auth(AuthError::Audit(e))
    }
}

impl Error {
    /// The status, the stable code and the fixed message this failure is answered with.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use AuthError as A;
        match self {
            Error::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                "csrf token missing or invalid",
            ),
            Error::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "invalid input",
            ),
            Error::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service unavailable",
            ),
            Error::Auth(e) => match e {
                A::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "invalid credentials",
                ),
                A::Throttled { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "too many attempts; try again later",
                ),
                // Sign-in load beyond the hashing bound: nothing was checked or counted.
                A::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "busy; try again shortly",
                ),
                A::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "authentication required",
                ),
                A::SecondFactorRequired => (
                    StatusCode::FORBIDDEN,
                    "second_factor_required",
                    "second factor required",
                ),
                A::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid_code", "invalid code"),
                A::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "forbidden"),
                A::SelfApproval => (
                    StatusCode::FORBIDDEN,
                    "self_approval",
                    "segregation of duties: nobody approves their own request",
                ),
                A::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found"),
                A::Conflict(why) => (StatusCode::CONFLICT, "conflict", why),
                A::Invalid { .. } | A::Password(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    "invalid input",
                ),
                A::Audit(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "audit log unavailable",
                ),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "service unavailable",
                ),
            },
        }
    }

    /// For bad input, which field and (when the validator says) what rule it broke —
    /// fixed text from the code, never the input: `("vat_id", Some("must be …"))`.
    pub fn field(&self) -> Option<(&'static str, Option<String>)> {
        match self {
            Error::Invalid(field) => Some((field, None)),
            Error::Auth(AuthError::Invalid { field, problem }) => {
                Some((field, Some((*problem).to_owned())))
            }
            Error::Auth(AuthError::Password(p)) => Some(("password", Some(p.to_string()))),
            _ => None,
        }
    }

    /// The stable machine-readable code of the response (`"code"` in the body).
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        use AuthError as A;
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // Detail that helps the user and reveals nothing: which field, what rule.
        let body = match &self {
            Error::Auth(A::Invalid { field, problem }) => {
                json!({ "code": code, "error": message, "field": field, "problem": problem })
            }
            Error::Auth(A::Password(p)) => {
                json!({ "code": code, "error": message, "field": "password", "problem": p.to_string() })
            }
            Error::Invalid(field) => json!({ "code": code, "error": message, "field": field }),
            _ => json!({ "code": code, "error": message }),
        };
        let mut response = (status, Json(body)).into_response();
        if let Error::Auth(A::Throttled { retry_after } | A::Busy { retry_after }) = &self {
            let secs = retry_after.whole_seconds().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// A JSON error body with a stable `code` and a fixed, non-revealing message, for
/// answers that are not an [`Error`] (the body limit, a timeout, a fallback 404).
pub fn error_response(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    (status, Json(json!({ "code": code, "error": message }))).into_response()
}
