//! The organisation's sign-in policy (MFA required, a second admin for elevations) and
//! the proposals that wait for a second admin.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, OrgPolicy};
use procuhelp_auth::policy_change::{self, PolicyChange};
use procuhelp_auth::{AuthError, Permission};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ElevationLimit, acting_user, refuse_under_elevation};
use crate::{Authed, Result};

/// The organisation's sign-in policy, as `GET /api/org/policy` (`manage_users`). Read in
/// the request's transaction, which the caller commits (or lets end).
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let policy = procuhelp_axum::admin::org_policy(&mut authed).await?;
/// authed.commit().await?;
/// println!("MFA required: {}", policy.mfa_required);
/// # Ok(()) }
/// ```
pub async fn org_policy(authed: &mut Authed) -> Result<OrgPolicy> {
    authed.require(Permission::ManageUsers).await?;
    Ok(directory::org_policy(authed.tx().await?).await?)
}

/// `GET /api/org/policy`.
pub(super) async fn get_policy(mut authed: Authed) -> Result<Json<OrgPolicy>> {
    let policy = org_policy(&mut authed).await?;
    authed.commit().await?;
    Ok(Json(policy))
}

/// What [`update_policy`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyUpdate {
    /// The policy in force now.
    pub policy: OrgPolicy,
    /// Switching the second-admin rule for elevations off was only proposed: this waits
    /// for another admin ([`approve_pending_change`]); the rest applied at once.
    pub pending_change: Option<PolicyChange>,
}

/// Sets the sign-in policy, as `PUT /api/org/policy`: `manage_users` by base role for any
/// change (the policy outlives an elevation). Switching "elevation needs a second admin"
/// off is only proposed (recorded as `org.policy_change_requested`); the rest applies at
/// once (`org.policy_changed`). Committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::directory::OrgPolicy;
/// let mut wanted: OrgPolicy = procuhelp_axum::admin::org_policy(&mut authed).await?;
/// wanted.mfa_required = true;
/// let update = procuhelp_axum::admin::update_policy(&mut authed, wanted).await?;
/// assert!(update.policy.mfa_required);
/// # Ok(()) }
/// ```
pub async fn update_policy(authed: &mut Authed, wanted: OrgPolicy) -> Result<PolicyUpdate> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let current = directory::org_policy(authed.tx().await?).await?;
    if wanted != current {
        // The sign-in policy (MFA required, the second-admin rule) outlives any elevation.
        refuse_under_elevation(
            authed,
            &grant,
            ElevationLimit::LastingChange(Action::OrgPolicyChanged),
        )
        .await?;
    }
    let waits = policy_change::needs_second_admin(current, wanted);
    let applied = OrgPolicy {
        elevation_needs_second_admin: if waits {
            current.elevation_needs_second_admin
        } else {
            wanted.elevation_needs_second_admin
        },
        ..wanted
    };
    if applied != current {
        directory::set_org_policy(authed.tx().await?, applied).await?;
        let event = authed
            .event(Action::OrgPolicyChanged, Outcome::Success)
            .target("org:policy")
            .context(json!({ "from": current, "to": applied }));
        authed.record(event).await?;
    }
    if !waits {
        authed.commit().await?;
        return Ok(PolicyUpdate {
            policy: applied,
            pending_change: None,
        });
    }
    let now = authed.sdk().now();
    let by = authed.principal.acting_user();
    let change = policy_change::propose(authed.tx().await?, by, now).await?;
    let event = authed
        .event(Action::OrgPolicyChangeRequested, Outcome::Success)
        .target(format!("policy_change:{}", change.id))
        .context(json!({ "setting": change.setting, "value": change.value }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(PolicyUpdate {
        policy: applied,
        pending_change: Some(change),
    })
}

/// `PUT /api/org/policy`: require MFA; require a second admin for elevation. Switching
/// the second-admin rule off is only proposed (202 with the pending change): another admin
/// approves it with [`approve_pending_change`]. The rest of the policy applies at once.
pub(super) async fn set_policy(
    mut authed: Authed,
    Json(wanted): Json<OrgPolicy>,
) -> Result<Response> {
    let update = update_policy(&mut authed, wanted).await?;
    Ok(match update.pending_change {
        None => Json(update.policy).into_response(),
        Some(change) => {
            let body = json!({ "policy": update.policy, "pending_change": change });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

/// The proposals waiting for a second admin, newest first, as
/// `GET /api/org/policy/changes` (`manage_users`). Lapsed ones are marked expired in the
/// request's transaction, which the caller commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let changes = procuhelp_axum::admin::pending_policy_changes(&mut authed).await?;
/// authed.commit().await?;
/// for change in &changes {
///     println!("{} → {} proposed by {}", change.setting, change.value, change.requested_by);
/// }
/// # Ok(()) }
/// ```
pub async fn pending_policy_changes(authed: &mut Authed) -> Result<Vec<PolicyChange>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    Ok(policy_change::pending(authed.tx().await?, now).await?)
}

/// `GET /api/org/policy/changes`: proposals waiting for a second admin.
pub(super) async fn list_policy_changes(mut authed: Authed) -> Result<Json<Value>> {
    let changes = pending_policy_changes(&mut authed).await?;
    authed.commit().await?;
    Ok(Json(json!({ "changes": changes })))
}

/// A second admin puts a pending proposal into force, as
/// `POST /api/org/policy/changes/{change}/approve`: `manage_users` held by base role (not
/// an elevation), in a session (not with a token), and not the proposer — a refusal is
/// recorded as `org.policy_change_refused` and answered 403. Another organisation's
/// proposal is not found; a lapsed or decided one is a conflict. Recorded as
/// `org.policy_changed` and committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, change: uuid::Uuid)
/// # -> procuhelp_axum::Result<()> {
/// let applied = procuhelp_axum::admin::approve_pending_change(&mut authed, change).await?;
/// println!("{} is now {}", applied.setting, applied.value);
/// # Ok(()) }
/// ```
pub async fn approve_pending_change(authed: &mut Authed, id: Uuid) -> Result<PolicyChange> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let approver = acting_user(authed);
    let refusal = match approver {
        None => Some("a second admin approves in a session, not with a token"),
        Some(_) if grant.via_elevation.is_some() => {
            Some("a second admin holds the role without elevation")
        }
        Some(_) => None,
    };
    let result = match (refusal, approver) {
        (None, Some(by)) => {
            let now = authed.sdk().now();
            policy_change::approve(authed.tx().await?, id, by, now).await
        }
        _ => Err(AuthError::Forbidden),
    };
    let change = match result {
        Ok(change) => change,
        Err(e @ (AuthError::SelfApproval | AuthError::Forbidden)) => {
            authed.abandon().await;
            let reason = refusal.unwrap_or("the proposer cannot approve their own change");
            let event = authed
                .event(Action::OrgPolicyChangeRefused, Outcome::Denied)
                .target(format!("policy_change:{id}"))
                .context(json!({ "reason": reason }));
            authed.sdk().record(event).await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let event = authed
        .event(Action::OrgPolicyChanged, Outcome::Success)
        .target(format!("policy_change:{id}"))
        .context(json!({
            "setting": change.setting, "value": change.value,
            "requested_by": change.requested_by.to_string(),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(change)
}

/// `POST /api/org/policy/changes/{change}/approve`: a second admin — in a session, with
/// the base role (not an elevation), and not the proposer — puts a proposal into force.
pub(super) async fn approve_policy_change(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    Ok(Json(json!(approve_pending_change(&mut authed, id).await?)))
}
