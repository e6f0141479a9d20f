//! The organisation's sign-in policy (MFA required, a second admin for elevations) and
//! the proposals that wait for a second admin.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, OrgPolicy};
use procuhelp_auth::{AuthError, Permission, policy_change};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ElevationLimit, acting_user, refuse_under_elevation};
use crate::{Authed, Result};

/// `GET /api/org/policy`.
pub(super) async fn get_policy(mut authed: Authed) -> Result<Json<OrgPolicy>> {
    authed.require(Permission::ManageUsers).await?;
    let policy = directory::org_policy(authed.tx().await?).await?;
    authed.commit().await?;
    Ok(Json(policy))
}

/// `PUT /api/org/policy`: require MFA; require a second admin for elevation. Switching
/// the second-admin rule off is only proposed (202 with the pending change): another admin
/// approves it with [`approve_policy_change`]. The rest of the policy applies at once.
pub(super) async fn set_policy(
    mut authed: Authed,
    Json(wanted): Json<OrgPolicy>,
) -> Result<Response> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let current = directory::org_policy(authed.tx().await?).await?;
    if wanted != current {
        // The sign-in policy (MFA required, the second-admin rule) outlives any elevation.
        refuse_under_elevation(
            &mut authed,
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
        return Ok(Json(applied).into_response());
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
    let body = json!({ "policy": applied, "pending_change": change });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /api/org/policy/changes`: proposals waiting for a second admin.
pub(super) async fn list_policy_changes(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    let changes = policy_change::pending(authed.tx().await?, now).await?;
    authed.commit().await?;
    Ok(Json(json!({ "changes": changes })))
}

/// `POST /api/org/policy/changes/{change}/approve`: a second admin — in a session, with
/// the base role (not an elevation), and not the proposer — puts a proposal into force.
pub(super) async fn approve_policy_change(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let approver = acting_user(&authed);
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
    Ok(Json(json!(change)))
}
