//! Who is making a request, and what they may do: every permission check goes through
//! [`Principal::require`].

use procuhelp_audit::Actor;
use uuid::Uuid;

use crate::api_token::TokenPrincipal;
use crate::session_store::{SessionPrincipal, SessionStage};
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
            Principal::User(s) => {
                if s.stage != SessionStage::Full {
                    return Err(AuthError::SecondFactorRequired);
                }
                if !s.effective_role().allows(permission) {
                    return Err(AuthError::Forbidden);
                }
                let via_elevation = s
                    .elevation
                    .filter(|_| !s.base_role.allows(permission))
                    .map(|e| e.id);
                Ok(Grant { via_elevation })
            }
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
