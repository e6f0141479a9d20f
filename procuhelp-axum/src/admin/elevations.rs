//! Elevations: a higher role for a reason and a bounded time, granted or (where the
//! organisation requires it) approved by a second admin.
//!
//! Each SDK function does the whole thing — the permission check, the elevation limits,
//! the audit events and the commit — so the JSON handlers here and the example server's
//! pages obey one rule.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory;
use procuhelp_auth::elevation::{self, Elevation, ElevationRequest, ElevationState};
use procuhelp_auth::session;
use procuhelp_auth::{AuthError, Permission, Role};
use procuhelp_core::UserId;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ElevationLimit, acting_user, parse_role, refuse_under_elevation};
use crate::{Authed, Result};

/// The organisation's elevations, as [`list_elevations`] found them.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ElevationList {
    /// Newest first (at most 200).
    pub elevations: Vec<Elevation>,
    /// Those that ran out since the last look: now `expired`, and recorded as
    /// `elevation.expired` by this call.
    pub expired: Vec<Uuid>,
}

/// The organisation's elevations, newest first. Those that ran out are marked expired and
/// recorded (`elevation.expired`); needs `manage_elevation`. Commits the request's
/// transaction (read what else the response needs first).
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let list = procuhelp_axum::admin::list_elevations(&mut authed).await?;
/// for e in &list.elevations {
///     println!("{} {} {:?} until {:?}", e.user, e.role, e.state, e.expires_at);
/// }
/// # Ok(()) }
/// ```
pub async fn list_elevations(authed: &mut Authed) -> Result<ElevationList> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.sdk().now();
    let (elevations, expired) = elevation::list(authed.tx().await?, now).await?;
    for id in &expired {
        let event = authed
            .event(Action::ElevationExpired, Outcome::Success)
            .target(format!("elevation:{id}"));
        authed.record(event).await?;
    }
    authed.commit().await?;
    Ok(ElevationList {
        elevations,
        expired,
    })
}

/// Who may ask for an elevation of `user`: `manage_elevation`, never through another
/// elevation (a refusal is recorded), and a person in a session (not a token).
async fn may_request(authed: &mut Authed, user: UserId) -> Result<UserId> {
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_under_elevation(
        authed,
        &grant,
        ElevationLimit::Chained(format!("user:{user}")),
    )
    .await?;
    acting_user(authed).ok_or_else(|| AuthError::Forbidden.into())
}

/// Grants `user` the higher `role` for `minutes` (1 to 480) and a `reason` (3 to 500
/// characters) — or, where the organisation requires a second admin, asks for it
/// (`pending` until [`approve_elevation`]). Needs `manage_elevation` by base role (an
/// elevation never grants another); nobody elevates themselves. Recorded as
/// `elevation.requested` (and `elevation.granted` when in force at once, which signs the
/// user out everywhere: their privileges changed). Commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// #     -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::Role;
/// let e = procuhelp_axum::admin::request_elevation(
///     &mut authed, user, Role::Approver, "month-end close", 60,
/// ).await?;
/// println!("{:?}", e.state); // Active, or Pending for a second admin
/// # Ok(()) }
/// ```
pub async fn request_elevation(
    authed: &mut Authed,
    user: UserId,
    role: Role,
    reason: &str,
    minutes: i64,
) -> Result<Elevation> {
    let by = may_request(authed, user).await?;
    if !(1..=480).contains(&minutes) {
        return Err(AuthError::Invalid {
            field: "minutes",
            problem: "must be between 1 and 480",
        }
        .into());
    }
    let now = authed.sdk().now();
    let policy = directory::org_policy(authed.tx().await?).await?;
    let request = ElevationRequest {
        user,
        role,
        reason: reason.to_owned(),
        duration: time::Duration::minutes(minutes),
    };
    let e = elevation::request(
        authed.tx().await?,
        by,
        request,
        policy.elevation_needs_second_admin,
        now,
    )
    .await?;
    record_elevation(authed, &e, Action::ElevationRequested).await?;
    if e.state == ElevationState::Active {
        activated(authed, &e).await?;
    }
    authed.commit().await?;
    Ok(e)
}

async fn record_elevation(authed: &mut Authed, e: &Elevation, action: Action) -> Result<()> {
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
async fn activated(authed: &mut Authed, e: &Elevation) -> Result<()> {
    let now = authed.sdk().now();
    session::revoke_all(authed.tx().await?, e.user, None, now).await?;
    record_elevation(authed, e, Action::ElevationGranted).await
}

/// A second admin approves pending elevation `id`: in force from now, the elevated user
/// signed out everywhere. Needs `manage_elevation` by base role; neither the admin who
/// asked nor the elevated user may approve (refused with `self_approval`, recorded as
/// `elevation.refused`). Recorded as `elevation.approved` and `elevation.granted`.
/// Another organisation's id is not found. Commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, id: uuid::Uuid)
/// #     -> procuhelp_axum::Result<()> {
/// let e = procuhelp_axum::admin::approve_elevation(&mut authed, id).await?;
/// println!("in force until {:?}", e.expires_at);
/// # Ok(()) }
/// ```
pub async fn approve_elevation(authed: &mut Authed, id: Uuid) -> Result<Elevation> {
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_under_elevation(
        authed,
        &grant,
        ElevationLimit::Chained(format!("elevation:{id}")),
    )
    .await?;
    let by = acting_user(authed).ok_or(AuthError::Forbidden)?;
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
    record_elevation(authed, &e, Action::ElevationApproved).await?;
    activated(authed, &e).await?;
    authed.commit().await?;
    Ok(e)
}

/// Ends pending or active elevation `id` now (an ended one is a conflict; another
/// organisation's is not found); tokens minted under it end with it. Needs
/// `manage_elevation`; recorded as `elevation.revoked`. Commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, id: uuid::Uuid)
/// #     -> procuhelp_axum::Result<()> {
/// let e = procuhelp_axum::admin::revoke_elevation(&mut authed, id).await?;
/// assert_eq!(e.state, procuhelp_auth::elevation::ElevationState::Revoked);
/// # Ok(()) }
/// ```
pub async fn revoke_elevation(authed: &mut Authed, id: Uuid) -> Result<Elevation> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.sdk().now();
    let e = elevation::revoke(authed.tx().await?, id, now).await?;
    record_elevation(authed, &e, Action::ElevationRevoked).await?;
    authed.commit().await?;
    Ok(e)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ElevationBody {
    user: UserId,
    role: String,
    reason: String,
    minutes: i64,
}

/// `GET /api/elevations`.
pub(super) async fn list_json(mut authed: Authed) -> Result<Json<Value>> {
    let list = list_elevations(&mut authed).await?;
    Ok(Json(json!({ "elevations": list.elevations })))
}

/// `POST /api/elevations`: [`request_elevation`].
pub(super) async fn request_json(
    mut authed: Authed,
    Json(body): Json<ElevationBody>,
) -> Result<Json<Value>> {
    let role = match parse_role(&body.role) {
        Ok(role) => role,
        Err(e) => {
            // Who may not ask is told so first, whatever the body holds.
            may_request(&mut authed, body.user).await?;
            return Err(e);
        }
    };
    let e = request_elevation(&mut authed, body.user, role, &body.reason, body.minutes).await?;
    Ok(Json(json!(e)))
}

/// `POST /api/elevations/{id}/approve`: [`approve_elevation`].
pub(super) async fn approve_json(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    let e = approve_elevation(&mut authed, id).await?;
    Ok(Json(json!(e)))
}

/// `POST /api/elevations/{id}/revoke`: [`revoke_elevation`].
pub(super) async fn revoke_json(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    let e = revoke_elevation(&mut authed, id).await?;
    Ok(Json(json!(e)))
}
