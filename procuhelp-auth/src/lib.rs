//! # procuhelp-auth
//!
//! Who gets in: the role and permission matrix every endpoint checks against,
//! [`password`] hashing and policy, [`totp`] second factors and [`recovery`] codes,
//! [`session`] tokens and their store, sign-in [`throttle`]s, time-bound [`elevation`],
//! service-account [`api_token`]s, and the [`Authenticator`] that composes them, recording
//! every outcome in the audit log (`procuhelp-audit`) before it takes effect.
//! Single sign-on with an organisation's identity provider is in [`sso`] (OpenID Connect
//! with the `oidc` feature, SAML 2.0 with `saml`).
//! [`scim`] provisions users and groups from an identity provider (SCIM 2.0, shaped for
//! Entra).
//!
//! Users, sessions and elevations live in tenant tables (`procuhelp-tenancy`): every
//! function takes the caller's `TenantTx`, so PostgreSQL row-level security scopes it to
//! one organisation.
//!
//! ```
//! use procuhelp_auth::Role;
//! assert_eq!(Role::least_privileged(), Role::ReadOnly);
//! assert_eq!("approver".parse::<Role>(), Ok(Role::Approver));
//! ```
#![forbid(unsafe_code)]

pub mod api_token;
mod authenticator;
mod credential_row;
pub mod directory;
pub mod elevation;
mod error;
pub mod hash_limiter;
pub mod invitation;
pub mod operator;
pub mod operator_access;
pub mod password;
mod permission;
pub mod policy_change;
mod principal;
pub mod recovery;
mod register;
mod schema;
pub mod scim;
pub mod session;
pub mod session_read;
pub mod sso;
pub mod throttle;
pub mod totp;

pub use authenticator::{
    Authenticator, ClientInfo, Enrolment, Issued, TOTP_FIELD, TOTP_PENDING_FIELD,
};
pub use error::{AuthError, AuthResult};
pub use permission::{Permission, access_matrix_markdown, may_approve};
pub use principal::{Grant, Principal};
pub use schema::{ENCRYPTED_COLUMNS, MIGRATIONS};

use std::fmt;
use std::str::FromStr;

/// The roles of the product, from most to least privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// Organisation administrator.
    Admin,
    /// Approves requests raised by others.
    Approver,
    /// Raises purchase requests.
    Requester,
    /// Reads what read-only users read, and the audit log (and its export); changes
    /// nothing.
    Auditor,
    /// Reads only.
    ReadOnly,
}

impl Role {
    /// The role new users start with unless an admin or an SSO mapping says otherwise.
    pub const fn least_privileged() -> Self {
        Role::ReadOnly
    }

    /// Whether `self` comes before `other` in the product's one total order of roles
    /// (declaration order: admin, approver, requester, auditor, read-only). It chooses
    /// among a user's elevations in force, and whether an elevation raises the base role,
    /// as the database's `app.role_rank` does. It does **not** say that `self` holds
    /// everything `other` holds (an auditor reads the audit log, a requester does not):
    /// caps on what may be handed out use [`Role::covers`].
    pub fn outranks(self, other: Role) -> bool {
        self < other
    }

    /// Whether `self` holds every permission `other` holds: what caps a role handed out
    /// (to a user, a token, an elevation) by the role of who hands it out.
    ///
    /// ```
    /// use procuhelp_auth::Role;
    /// assert!(Role::Admin.covers(Role::Auditor));
    /// assert!(Role::Auditor.covers(Role::ReadOnly));
    /// assert!(!Role::Approver.covers(Role::Auditor)); // approvers do not read the audit log
    /// assert!(!Role::Auditor.covers(Role::Requester));
    /// ```
    pub fn covers(self, other: Role) -> bool {
        crate::Permission::ALL
            .iter()
            .all(|p| !other.allows(*p) || self.allows(*p))
    }

    /// The most privileged role both `self` and `other` cover (what a token acts as: at
    /// most its own role and at most its creator's). Read-only is covered by every role,
    /// so there always is one.
    ///
    /// ```
    /// use procuhelp_auth::Role;
    /// assert_eq!(Role::Approver.meet(Role::Auditor), Role::ReadOnly);
    /// assert_eq!(Role::Admin.meet(Role::Auditor), Role::Auditor);
    /// ```
    pub fn meet(self, other: Role) -> Role {
        Role::ALL
            .into_iter()
            .find(|r| self.covers(*r) && other.covers(*r))
            .unwrap_or(Role::ReadOnly)
    }

    /// The stable string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Requester => "requester",
            Role::Auditor => "auditor",
            Role::ReadOnly => "read_only",
        }
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownRole;

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown role (expected admin, approver, requester, auditor or read_only)")
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "admin" => Role::Admin,
            "approver" => Role::Approver,
            "requester" => Role::Requester,
            "auditor" => Role::Auditor,
            "read_only" => Role::ReadOnly,
            _ => return Err(UnknownRole),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_strings_round_trip_and_unknown_is_refused() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole));
        assert_eq!("Admin".parse::<Role>(), Err(UnknownRole));
    }
}
