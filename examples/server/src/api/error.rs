//! How failures become HTTP responses: a status and a fixed message, never internal
//! detail (database errors are logged, not returned).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_auth::AuthError;

use crate::app::error_response;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the auth layer.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The anti-CSRF header is missing or wrong on a cookie-authenticated change.
    #[error("csrf token missing or invalid")]
    Csrf,
    /// Bad input.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A dependency (the vault) is unavailable.
    #[error("service unavailable")]
    Unavailable,
}

impl From<procuhelp_tenancy::Error> for ApiError {
    fn from(e: procuhelp_tenancy::Error) -> Self {
        match e {
            procuhelp_tenancy::Error::Invalid { field, .. } => ApiError::Invalid(field),
            other => ApiError::Auth(other.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        procuhelp_tenancy::Error::from(e).into()
    }
}

impl From<procuhelp_audit::AuditError> for ApiError {
    fn from(e: procuhelp_audit::AuditError) -> Self {
        ApiError::Auth(AuthError::Audit(e))
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use AuthError as A;
        let (status, message) = match &self {
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf token missing or invalid"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid input"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "service unavailable"),
            ApiError::Auth(e) => match e {
                A::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid credentials"),
                A::Throttled { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many attempts; try again later",
                ),
                // Sign-in load beyond the hashing bound: nothing was checked or counted.
                A::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy; try again shortly"),
                A::Unauthenticated => (StatusCode::UNAUTHORIZED, "authentication required"),
                A::SecondFactorRequired => (StatusCode::FORBIDDEN, "second factor required"),
                A::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid code"),
                A::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                A::SelfApproval => (
                    StatusCode::FORBIDDEN,
                    "segregation of duties: nobody approves their own request",
                ),
                A::NotFound => (StatusCode::NOT_FOUND, "not found"),
                A::Conflict(why) => (StatusCode::CONFLICT, *why),
                A::Invalid { .. } | A::Password(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid input")
                }
                A::Audit(_) => (StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable"),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "service unavailable"),
            },
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = error_response(status, message);
        // Detail that helps the user and reveals nothing: which field, what rule.
        if let ApiError::Auth(A::Invalid { field, problem }) = &self {
            response = (
                status,
                axum::Json(serde_json::json!({ "error": "invalid input", "field": field, "problem": problem })),
            )
                .into_response();
        }
        if let ApiError::Auth(A::Password(p)) = &self {
            response = (
                status,
                axum::Json(serde_json::json!({ "error": "invalid input", "field": "password", "problem": p.to_string() })),
            )
                .into_response();
        }
        if let ApiError::Invalid(field) = &self {
            response = (
                status,
                axum::Json(serde_json::json!({ "error": "invalid input", "field": field })),
            )
                .into_response();
        }
        if let ApiError::Auth(A::Throttled { retry_after } | A::Busy { retry_after }) = &self {
            let secs = retry_after.whole_seconds().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
