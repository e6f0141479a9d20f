//! The admin router: users, roles, elevation, API tokens and the organisation's sign-in
//! policy. Every change is audited before it is committed; role changes and disabling
//! revoke the user's sessions.
//!
//! An elevation lets its holder act, never hand out more than they hold without it
//! (issue #11, finding 5): roles granted, new users and tokens are capped at the actor's
//! base role ([`may_manage`] and the checks of the user routes); new users, role grants,
//! re-enabled users and the sign-in policy need the permission by base role, a chain of
//! elevations is refused ([`refuse_under_elevation`]); a token minted under an elevation
//! ends with it; and switching off the second-admin rule for elevations waits for a
//! second admin ([`procuhelp_auth::policy_change`]).

use axum::Router;
use axum::extract::FromRef;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, UserStatus};
use procuhelp_auth::{AuthError, Grant, Permission, Role};
use procuhelp_core::UserId;
use serde_json::{Value, json};

use crate::{Access, Authed, Error, Result, RouteTable, Sdk};

mod elevations;
mod operator_access;
mod personal_data;
mod policy;
mod tokens;
mod users;

pub use elevations::{
    ElevationList, approve_elevation, list_elevations, request_elevation, revoke_elevation,
};
pub use policy::{
    PolicyUpdate, approve_pending_change, org_policy, pending_policy_changes, update_policy,
};
pub use tokens::{NewToken, create_token, list_tokens, revoke_token};
pub use users::invite_user;
pub use users::{
    RoleChange, SignedOut, StatusChange, Unlocked, change_role, disable_account, enable_account,
    sign_in_held_until, sign_out_everywhere, unlock_account,
};

/// The admin routes with the permission each needs.
pub fn table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/api/users", Needs(P::ManageUsers), users::list_users)
        .post("/api/users", Needs(P::ManageUsers), users::create_user)
        .put(
            "/api/users/{user}/role",
            Needs(P::ManageRoles),
            users::set_role,
        )
        .post(
            "/api/users/{user}/disable",
            Needs(P::ManageUsers),
            users::disable_user,
        )
        .post(
            "/api/users/{user}/enable",
            Needs(P::ManageUsers),
            users::enable_user,
        )
        .post(
            "/api/users/{user}/sessions/revoke",
            Needs(P::ManageUsers),
            users::revoke_user_sessions,
        )
        .post(
            "/api/users/{user}/unlock",
            Needs(P::ManageUsers),
            users::unlock_user,
        )
        .get(
            "/api/users/{user}/personal-data",
            Needs(P::ManageUsers),
            personal_data::export_user,
        )
        .post(
            "/api/users/{user}/erase",
            Needs(P::ManageUsers),
            personal_data::erase_user,
        )
        .get("/api/org/policy", Needs(P::ManageUsers), policy::get_policy)
        .put("/api/org/policy", Needs(P::ManageUsers), policy::set_policy)
        .get(
            "/api/org/policy/changes",
            Needs(P::ManageUsers),
            policy::list_policy_changes,
        )
        .post(
            "/api/org/policy/changes/{change}/approve",
            Needs(P::ManageUsers),
            policy::approve_policy_change,
        )
        .get(
            "/api/org/operator-access",
            Needs(P::ManageUsers),
            operator_access::list_grants,
        )
        .post(
            "/api/org/operator-access/{grant}/approve",
            Needs(P::ManageUsers),
            operator_access::approve_grant,
        )
        .post(
            "/api/org/operator-access/{grant}/revoke",
            Needs(P::ManageUsers),
            operator_access::revoke_grant,
        )
        .get(
            "/api/elevations",
            Needs(P::ManageElevation),
            elevations::list_json,
        )
        .post(
            "/api/elevations",
            Needs(P::ManageElevation),
            elevations::request_json,
        )
        .post(
            "/api/elevations/{elevation}/approve",
            Needs(P::ManageElevation),
            elevations::approve_json,
        )
        .post(
            "/api/elevations/{elevation}/revoke",
            Needs(P::ManageElevation),
            elevations::revoke_json,
        )
        .get("/api/tokens", Needs(P::ManageUsers), tokens::list_json)
        .post("/api/tokens", Needs(P::ManageUsers), tokens::create_json)
        .post(
            "/api/tokens/{token}/revoke",
            Needs(P::ManageUsers),
            tokens::revoke_json,
        )
}

/// The admin router ([`table`]'s routes).
pub fn routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table().into_router()
}

/// What an elevation may not be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElevationLimit {
    /// A change that outlives the elevation (a new user, a role grant, a re-enabled user,
    /// the sign-in policy, a SCIM handover): recorded as `action`, denied, on the
    /// elevation that was tried.
    LastingChange(Action),
    /// Granting or approving another elevation (on `target`: the user or the elevation):
    /// one elevation never grants or approves another, so a chain of them cannot outlast
    /// the first. Recorded as `elevation.refused`.
    Chained(String),
}

/// Refuses what `limit` names when `grant` came from an elevation; passes a permission
/// held by base role. The refusal rolls the request back and is recorded (fail closed:
/// if the trail refuses the record, 503), then answered 403.
pub async fn refuse_under_elevation(
    authed: &mut Authed,
    grant: &Grant,
    limit: ElevationLimit,
) -> Result<()> {
    let Some(elevation) = grant.via_elevation else {
        return Ok(());
    };
    let (action, target, reason) = match limit {
        ElevationLimit::LastingChange(action) => (
            action,
            format!("elevation:{elevation}"),
            "lasting change under an elevation",
        ),
        ElevationLimit::Chained(target) => (
            Action::ElevationRefused,
            target,
            "an elevation cannot grant or approve another",
        ),
    };
    authed.abandon().await;
    let event = authed
        .event(action, Outcome::Denied)
        .target(target)
        .context(json!({ "reason": reason }));
    authed.sdk().record(event).await?;
    Err(AuthError::Forbidden.into())
}

/// Refuses to act on a user whose role is above the actor's base role: an elevated
/// approver may not demote or disable the admins who oversee them.
pub fn may_manage(authed: &Authed, target: &directory::UserRecord) -> Result<()> {
    within_base_role(authed, target.role)
}

/// Refuses to hand out `role` (to a user, a new user or a token) above the acting
/// principal's base role: what an elevation allows is acting, and it ends with the
/// elevation; a grant would outlive it. For a base-role admin this never refuses.
pub(super) fn within_base_role(authed: &Authed, role: Role) -> Result<()> {
    if !authed.principal.base_role().covers(role) {
        return Err(AuthError::Forbidden.into());
    }
    Ok(())
}

/// approving policy changes); `None` for a token.
pub(super) fn acting_user(authed: &Authed) -> Option<UserId> {
    authed.principal.session().ok().map(|s| s.user)
}

pub(super) fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(|_| Error::Invalid("role"))
}

pub(super) fn user_json(u: &directory::UserRecord) -> Value {
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role,
        "status": if u.status == UserStatus::Active { "active" } else { "disabled" },
        "mfa": u.has_mfa(),
    })
}
