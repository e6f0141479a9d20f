//! A data subject's requests, made by an admin for a user of their organisation
//! ([`subject_rights`](crate::subject_rights)): export everything held about them, or
//! erase them. Another organisation's user, an erased one and an unknown id are the same
//! 404.

use axum::Json;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory;
use procuhelp_auth::{AuthError, Permission};
use procuhelp_core::UserId;
use serde_json::Value;

use super::{ElevationLimit, may_manage, refuse_under_elevation};
use crate::subject_rights::{self, Person};
use crate::{Authed, Result};

/// `GET /api/users/{id}/personal-data`: one JSON file of everything held about the user
/// (manifest, summary, rows, audit events with personal fields opened), recorded as
/// `personal_data.exported`.
pub(super) async fn export_user(mut authed: Authed, Path(id): Path<UserId>) -> Result<Response> {
    authed.require(Permission::ManageUsers).await?;
    let (log, event, sdk) = prepare(&mut authed, id, Action::PersonalDataExported).await?;
    let export = subject_rights::export(
        authed.tx().await?,
        &log,
        sdk.personal_data(),
        &Person::Id(id),
        event,
        sdk.now(),
    )
    .await?;
    authed.commit().await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|_| AuthError::Internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"personal-data-{id}.json\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/users/{id}/erase`: erases the user (their account becomes "a former user",
/// their sessions end, their rows go, their audit personal data is shredded), recorded
/// as `personal_data.erased` with counts. Idempotent; refused for the last admin, for
/// oneself, and under an elevation (it destroys data for good: base role only).
pub(super) async fn erase_user(mut authed: Authed, Path(id): Path<UserId>) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    refuse_under_elevation(
        &mut authed,
        &grant,
        ElevationLimit::LastingChange(Action::PersonalDataErased),
    )
    .await?;
    if authed.principal.acting_user() == id {
        return Err(
            AuthError::Conflict("admins cannot erase themselves: ask another admin").into(),
        );
    }
    let (log, event, sdk) = prepare(&mut authed, id, Action::PersonalDataErased).await?;
    let report = subject_rights::erase(
        authed.tx().await?,
        &log,
        sdk.personal_data(),
        &Person::Id(id),
        event,
        sdk.now(),
    )
    .await?;
    authed.commit().await?;
    Ok(Json(
        serde_json::to_value(&report).map_err(|_| AuthError::Internal)?,
    ))
}

/// The user `id` must be one the admin may manage (404 for another organisation's or an
/// unknown one); then the audit log, the request's event and the SDK for the call.
async fn prepare(
    authed: &mut Authed,
    id: UserId,
    action: Action,
) -> Result<(
    procuhelp_audit::PgAuditSink,
    procuhelp_audit::AuditEvent,
    crate::Sdk,
)> {
    let target = directory::get(authed.tx().await?, id).await?;
    may_manage(authed, &target)?;
    let log = crate::audit::audit_log(authed)?;
    Ok((
        log,
        authed.event(action, Outcome::Success),
        authed.sdk().clone(),
    ))
}
