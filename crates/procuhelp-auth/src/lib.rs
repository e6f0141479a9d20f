//! # procuhelp-auth
//!
//! Who gets in: the role and permission matrix every endpoint checks against,
//! [`password`] hashing and policy, and [`totp`] second factors. Sessions, elevation and
//! SSO arrive with their issues.
//!
//! ```
//! use procuhelp_auth::Role;
//! assert_eq!(Role::least_privileged(), Role::ReadOnly);
//! assert_eq!("approver".parse::<Role>(), Ok(Role::Approver));
//! ```
#![forbid(unsafe_code)]

pub mod password;
mod permission;
pub mod recovery;
pub mod session;
pub mod totp;

pub use permission::{Permission, access_matrix_markdown, may_approve};

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
    /// Reads only.
    ReadOnly,
}

impl Role {
    /// The role new users start with unless an admin or an SSO mapping says otherwise.
    pub const fn least_privileged() -> Self {
        Role::ReadOnly
    }

    /// The stable string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Requester => "requester",
            Role::ReadOnly => "read_only",
        }
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
        f.write_str("unknown role (expected admin, approver, requester or read_only)")
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
        for r in [Role::Admin, Role::Approver, Role::Requester, Role::ReadOnly] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole));
        assert_eq!("Admin".parse::<Role>(), Err(UnknownRole));
    }
}
