//! Elevations: a higher role for a reason and a bounded time, granted or (where the
//! organisation requires it) approved by a second admin.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory;
use procuhelp_auth::elevation::{self, ElevationRequest, ElevationState};
use procuhelp_auth::session;
use procuhelp_auth::{AuthError, Permission};
use procuhelp_core::UserId;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ElevationLimit, acting_user, parse_role, refuse_under_elevation};
use crate::{Authed, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ElevationBody {
    user: UserId,
    role: String,
    reason: String,
    minutes: i64,
}

/// `GET /api/elevations`.
pub(super) async fn list_elevations(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.sdk().now();
    let (list, expired) = elevation::list(authed.tx().await?, now).await?;
    for id in expired {
        let event = authed
            .event(Action::ElevationExpired, Outcome::Success)
            .target(format!("elevation:{id}"));
        authed.record(event).await?;
    }
    authed.commit().await?;
    Ok(Json(json!({ "elevations": list })))
}

/// `POST /api/elevations`: grants (or, where a second admin must approve, requests) a
/// higher role for a reason and a bounded time.
pub(super) async fn request_elevation(
    mut authed: Authed,
    Json(body): Json<ElevationBody>,
) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_under_elevation(
        &mut authed,
        &grant,
        ElevationLimit::Chained(format!("user:{}", body.user)),
    )
    .await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let role = parse_role(&body.role)?;
    if !(1..=480).contains(&body.minutes) {
        return Err(AuthError::Invalid {
            field: "minutes",
            problem: "must be between 1 and 480",
        }
        .into());
    }
    let now = authed.sdk().now();
    let policy = directory::org_policy(authed.tx().await?).await?;
    let request = ElevationRequest {
        user: body.user,
        role,
        reason: body.reason,
        duration: time::Duration::minutes(body.minutes),
    };
    let e = elevation::request(
        authed.tx().await?,
        by,
        request,
        policy.elevation_needs_second_admin,
        now,
    )
    .await?;
    record_elevation(&mut authed, &e, Action::ElevationRequested).await?;
    if e.state == ElevationState::Active {
        activated(&mut authed, &e).await?;
    }
    authed.commit().await?;
    Ok(Json(json!(e)))
}

async fn record_elevation(
    authed: &mut Authed,
    e: &elevation::Elevation,
    action: Action,
) -> Result<()> {
    let event = authed
        .event(action, Outcome::Success)
        .target(format!("elevation:{}", e.id))
        .context(json!({
            "user": e.user.to_string(), "role": e.role, "reason": e.reason,
            "state": e.state, "expires_at": e.expires_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        }));
    authed.record(event).await
}

/// An elevation took effect: the user's privileges changed, so their sessions are
/// revoked (they sign in again and get a new session id).
async fn activated(authed: &mut Authed, e: &elevation::Elevation) -> Result<()> {
    let now = authed.sdk().now();
    session::revoke_all(authed.tx().await?, e.user, None, now).await?;
    record_elevation(authed, e, Action::ElevationGranted).await
}

/// `POST /api/elevations/{id}/approve`: a second admin (neither the requester nor the
/// elevated user) approves.
pub(super) async fn approve_elevation(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_under_elevation(
        &mut authed,
        &grant,
        ElevationLimit::Chained(format!("elevation:{id}")),
    )
    .await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let now = authed.sdk().now();
    let result = elevation::approve(authed.tx().await?, id, by, now).await;
    let e = match result {
        Ok(e) => e,
        Err(AuthError::SelfApproval) => {
            authed.abandon().await;
            let event = authed
                .event(Action::ElevationRefused, Outcome::Denied)
                .target(format!("elevation:{id}"))
                .context(json!({ "reason": "self-approval" }));
            authed.sdk().record(event).await?;
            return Err(AuthError::SelfApproval.into());
        }
        Err(e) => return Err(e.into()),
    };
    record_elevation(&mut authed, &e, Action::ElevationApproved).await?;
    activated(&mut authed, &e).await?;
    authed.commit().await?;
    Ok(Json(json!(e)))
}

/// `POST /api/elevations/{id}/revoke`: ends an elevation now.
pub(super) async fn revoke_elevation(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.sdk().now();
    let e = elevation::revoke(authed.tx().await?, id, now).await?;
    record_elevation(&mut authed, &e, Action::ElevationRevoked).await?;
    authed.commit().await?;
    Ok(Json(json!(e)))
}
