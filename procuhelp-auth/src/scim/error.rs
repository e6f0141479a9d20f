//! SCIM errors (RFC 7644 §3.12): an HTTP status, a `scimType` and a fixed detail string.
//!
//! The bottom of the `scim` module order: it depends on no other `scim` module.

use serde_json::{Value, json};

use crate::AuthError;

/// The SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Why a SCIM request was refused.
///
/// `detail` is a fixed string: it never echoes input (a name, an id, a token), so it can
/// be logged and returned as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scim {status} {}: {detail}", scim_type.unwrap_or("-"))]
pub struct ScimError {
    /// HTTP status.
    pub status: u16,
    /// RFC 7644 `scimType` (`invalidFilter`, `invalidSyntax`, `invalidValue`,
    /// `invalidPath`, `noTarget`, `uniqueness`, `mutability`, `tooMany`), if one applies.
    pub scim_type: Option<&'static str>,
    /// What is wrong.
    pub detail: &'static str,
}

impl ScimError {
    /// 400 with a `scimType`.
    pub const fn bad_request(scim_type: &'static str, detail: &'static str) -> Self {
        Self {
            status: 400,
            scim_type: Some(scim_type),
            detail,
        }
    }

    /// 400 `invalidFilter`.
    pub const fn invalid_filter(detail: &'static str) -> Self {
        Self::bad_request("invalidFilter", detail)
    }

    /// 400 `invalidValue`.
    pub const fn invalid_value(detail: &'static str) -> Self {
        Self::bad_request("invalidValue", detail)
    }

    /// 400 `invalidSyntax`.
    pub const fn invalid_syntax(detail: &'static str) -> Self {
        Self::bad_request("invalidSyntax", detail)
    }

    /// 401: no valid SCIM token for this organisation (unknown organisation, missing,
    /// malformed, unknown, expired or revoked token: one answer).
    pub const fn unauthorized() -> Self {
        Self {
            status: 401,
            scim_type: None,
            detail: "authentication required",
        }
    }

    /// 404.
    pub const fn not_found() -> Self {
        Self {
            status: 404,
            scim_type: None,
            detail: "resource not found",
        }
    }

    /// 409 `uniqueness`.
    pub const fn uniqueness(detail: &'static str) -> Self {
        Self {
            status: 409,
            scim_type: Some("uniqueness"),
            detail,
        }
    }

    /// 409 `uniqueness`: a create names the userName or e-mail address of a user SCIM
    /// does not manage (a local user). SCIM never adopts such a user: an admin hands
    /// them over explicitly, or the identity provider uses another userName.
    pub const fn not_managed() -> Self {
        Self::uniqueness("userName or e-mail address belongs to a user that SCIM does not manage")
    }

    /// 400 `mutability`: `active: true` for a user an administrator disabled. The
    /// administrator's decision wins; only an administrator lifts it.
    pub const fn disabled_by_admin() -> Self {
        Self::bad_request(
            "mutability",
            "an administrator disabled this user; only an administrator can enable them",
        )
    }

    /// Whether this is one of the ownership refusals ([`Self::not_managed`],
    /// [`Self::disabled_by_admin`]) that the caller records in the audit log.
    pub fn is_ownership_refusal(&self) -> bool {
        *self == Self::not_managed() || *self == Self::disabled_by_admin()
    }

    /// 413: the body is larger than we accept.
    pub const fn too_large() -> Self {
        Self {
            status: 413,
            scim_type: None,
            detail: "request body too large",
        }
    }

    /// 501: an optional feature we do not offer (bulk, sorting, /Me, root search).
    pub const fn not_implemented() -> Self {
        Self {
            status: 501,
            scim_type: None,
            detail: "not implemented",
        }
    }

    /// 503: storage or the audit log failed; nothing was changed.
    pub const fn unavailable() -> Self {
        Self {
            status: 503,
            scim_type: None,
            detail: "service unavailable",
        }
    }

    /// The RFC 7644 error body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".to_owned(), Value::from(t));
        }
        body
    }
}

impl From<AuthError> for ScimError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotFound => Self::not_found(),
            AuthError::Conflict(why) => Self::uniqueness(why),
            AuthError::Invalid { problem, .. } => Self::invalid_value(problem),
            AuthError::Unauthenticated | AuthError::InvalidCredentials => Self::unauthorized(),
            other => {
                tracing::error!(error = %other, "scim request failed");
                Self::unavailable()
            }
        }
    }
}

impl From<procuhelp_tenancy::Error> for ScimError {
    fn from(e: procuhelp_tenancy::Error) -> Self {
        AuthError::from(e).into()
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::from(e).into()
    }
}

/// Result with [`ScimError`].
pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_follow_rfc_7644() {
        let body = ScimError::invalid_filter("unsupported filter").to_json();
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
        assert_eq!(body["status"], "400");
        assert_eq!(body["scimType"], "invalidFilter");
        assert!(ScimError::not_found().to_json().get("scimType").is_none());
        assert_eq!(
            ScimError::from(AuthError::Conflict("x")).scim_type,
            Some("uniqueness")
        );
    }

    #[test]
    fn ownership_refusals_are_told_apart_from_look_alikes() {
        assert!(ScimError::not_managed().is_ownership_refusal());
        assert!(ScimError::disabled_by_admin().is_ownership_refusal());
        assert_eq!(ScimError::not_managed().status, 409);
        assert_eq!(ScimError::disabled_by_admin().scim_type, Some("mutability"));
        // Same status and type, another cause: not recorded as an ownership refusal.
        assert!(
            !ScimError::uniqueness("userName, e-mail or externalId already in use")
                .is_ownership_refusal()
        );
        assert!(!ScimError::not_found().is_ownership_refusal());
    }
}
