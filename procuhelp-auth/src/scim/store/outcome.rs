//! What a store write reports — its effects, for the caller's audit records — and how a
//! database refusal becomes a SCIM error.

use procuhelp_core::UserId;

use crate::scim::error::ScimError;
use crate::{AuthError, Role};

/// A role changed because group membership or the mapping changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// Whose.
    pub user: UserId,
    /// Before.
    pub from: Role,
    /// After.
    pub to: Role,
    /// Sessions revoked (a privilege change ends every session).
    pub sessions_revoked: u64,
}

/// What a SCIM write did, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// The user was deprovisioned now, with this many sessions revoked.
    pub deprovisioned: Option<u64>,
    /// The user was re-activated now.
    pub reactivated: bool,
    /// A deleted user was revived by POST.
    pub revived: bool,
    /// Roles that changed.
    pub role_changes: Vec<RoleChange>,
    /// Members added to a group.
    pub members_added: usize,
    /// Members removed from a group.
    pub members_removed: usize,
}

/// A conflict from the auth stores as SCIM's one `uniqueness` answer.
pub(super) fn conflict(e: AuthError) -> ScimError {
    match e {
        AuthError::Conflict(_) => {
            ScimError::uniqueness("userName, e-mail or externalId already in use")
        }
        other => other.into(),
    }
}

/// A unique-constraint violation as `uniqueness`; anything else unchanged.
pub(super) fn storage(e: sqlx::Error) -> ScimError {
    match procuhelp_tenancy::Error::from(e) {
        procuhelp_tenancy::Error::Conflict { .. } => {
            ScimError::uniqueness("userName, e-mail, displayName or externalId already in use")
        }
        other => other.into(),
    }
}
