//! Who is making a request, and what they may do: every permission check goes through
//! [`Principal::require`].

use procuhelp_audit::Actor;
use procuhelp_core::UserId;
use uuid::Uuid;

use crate::api_token::TokenPrincipal;
use crate::session::{SessionPrincipal, SessionStage};
use crate::{AuthError, AuthResult, Permission, Role};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user with a browser session.
    User(SessionPrincipal),
    /// A service account with an API token.
    Service(TokenPrincipal),
}

/// A permission check that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The permission came from this elevation (the base role lacks it): the caller
    /// records the use.
    pub via_elevation: Option<Uuid>,
}

impl Principal {
    /// The role in force for this request.
    pub fn role(&self) -> Role {
        match self {
            Principal::User(s) => s.effective_role(),
            Principal::Service(t) => t.role,
        }
    }

    /// The role held without any elevation: the ceiling for whatever this principal grants
    /// others (tokens, roles, new users, elevations), so that a short elevation never
    /// mints lasting power. A token's role is already capped by its creator's base role.
    pub fn base_role(&self) -> Role {
        match self {
            Principal::User(s) => s.base_role,
            Principal::Service(t) => t.role,
        }
    }

    /// The person acting: the signed-in user, or the user who created the token.
    /// Segregation of duties compares this, so nobody approves their own request through
    /// a token, and a token's request is its creator's.
    pub fn acting_user(&self) -> UserId {
        match self {
            Principal::User(s) => s.user,
            Principal::Service(t) => t.created_by,
        }
    }

    /// Segregation of duties for a request raised by `requester`: refused when the acting
    /// person (through a session or any token of theirs) raised it, or when the role in
    /// force cannot approve.
    pub fn may_approve(&self, requester: UserId) -> bool {
        crate::may_approve(&self.acting_user(), self.role(), &requester)
    }

    /// The actor recorded in audit events.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User(s) => Actor::User { id: s.user },
            Principal::Service(t) => Actor::ServiceAccount { id: t.id },
        }
    }

    /// The user's session, for actions only a signed-in user can take.
    pub fn session(&self) -> AuthResult<&SessionPrincipal> {
        match self {
            Principal::User(s) => Ok(s),
            Principal::Service(_) => Err(AuthError::Forbidden),
        }
    }

    /// Passes only a fully signed-in principal whose role in force grants `permission`.
    pub fn require(&self, permission: Permission) -> AuthResult<Grant> {
        match self {
            Principal::User(s) => s.require(permission),
            Principal::Service(t) if t.role.allows(permission) => Ok(Grant {
                via_elevation: None,
            }),
            Principal::Service(_) => Err(AuthError::Forbidden),
        }
    }

    /// Passes a fully signed-in user or a service account, whatever the role.
    pub fn require_signed_in(&self) -> AuthResult<()> {
        match self {
            Principal::User(s) if s.stage != SessionStage::Full => {
                Err(AuthError::SecondFactorRequired)
            }
            _ => Ok(()),
        }
    }
}
