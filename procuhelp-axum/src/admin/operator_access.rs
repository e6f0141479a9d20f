//! The organisation's view of operators' access (issue #16 point 7): its admins list the
//! grants our operators asked for or hold, approve one that waits for them (where the
//! policy says `operator_access_needs_approval`), and end or decline one. The grants
//! themselves are asked for through the operator API, never here.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::operator_access::{self, AccessError, Grant};
use procuhelp_auth::{AuthError, Permission};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ElevationLimit, acting_user, refuse_under_elevation};
use crate::{Authed, Error, Result};

/// The most grants one listing returns.
const LIST_LIMIT: u32 = 200;

impl From<AccessError> for Error {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => AuthError::NotFound.into(),
            AccessError::NotPending => {
                AuthError::Conflict("the grant is not waiting for approval").into()
            }
            AccessError::Reason => Error::Invalid("reason"),
            AccessError::Duration => Error::Invalid("duration"),
            AccessError::Database(e) => e.into(),
            // A future refusal is still a refusal.
            _ => AuthError::Forbidden.into(),
        }
    }
}

fn grant_json(g: &Grant) -> Value {
    json!({
        "id": g.id,
        "operator": g.operator.as_str(),
        "reason": g.reason,
        "state": g.state,
        "starts_at": g.starts_at,
        "ends_at": g.ends_at,
        "approved_by": g.approved_by.map(|u| u.to_string()),
    })
}

/// `GET /api/org/operator-access`: grants pending or in force, and those of the last 90
/// days.
pub(super) async fn list_grants(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    let grants = operator_access::list(authed.tx().await?, now, LIST_LIMIT).await?;
    authed.commit().await?;
    let grants: Vec<Value> = grants.iter().map(grant_json).collect();
    Ok(Json(json!({ "grants": grants })))
}

/// `POST /api/org/operator-access/{grant}/approve`: an admin — in a session, by base role
/// (an elevation does not let an operator in) — puts a pending grant in force, from now,
/// for the duration the operator asked.
pub(super) async fn approve_grant(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    refuse_under_elevation(
        &mut authed,
        &grant,
        ElevationLimit::LastingChange(Action::OperatorAccessApproved),
    )
    .await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let now = authed.sdk().now();
    let approved = operator_access::approve(authed.tx().await?, id, by, now).await?;
    let event = authed
        .event(Action::OperatorAccessApproved, Outcome::Success)
        .target(format!("operator_grant:{id}"))
        .context(json!({
            "operator": approved.operator.as_str(),
            "starts_at": approved.starts_at,
            "ends_at": approved.ends_at,
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(grant_json(&approved)))
}

/// `POST /api/org/operator-access/{grant}/revoke`: ends a grant in force, or declines one
/// that waits; 409 when it is already over.
pub(super) async fn revoke_grant(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    let Some(holder) = operator_access::revoke(authed.tx().await?, id, now).await? else {
        return Err(AuthError::Conflict("the grant is already over").into());
    };
    let event = authed
        .event(Action::OperatorAccessRevoked, Outcome::Success)
        .target(format!("operator_grant:{id}"))
        .context(json!({ "grant_holder": holder.as_str() }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "id": id, "state": "revoked" })))
}
