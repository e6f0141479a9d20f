//! API tokens for service accounts.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::{AuthError, Permission, api_token};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{parse_role, within_base_role};
use crate::{Authed, Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    name: String,
    role: String,
    days: i64,
}

/// `POST /api/tokens`: an API token for a service account (shown once). Its role is at
/// most the creator's *base* role; minted with a permission only an elevation gave, it
/// ends with that elevation (expiry or revocation).
pub(super) async fn create_token(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let session = authed.principal.session()?;
    let by = session.user;
    let under = match (grant.via_elevation, session.elevation) {
        (Some(id), Some(e)) if e.id == id => Some(api_token::MintedUnder {
            elevation: id,
            expires_at: e.expires_at,
        }),
        (Some(_), _) => return Err(AuthError::Internal.into()),
        (None, _) => None,
    };
    let role = parse_role(&body.role)?;
    within_base_role(&authed, role)?;
    if !(1..=365).contains(&body.days) {
        return Err(Error::Invalid("days"));
    }
    let now = authed.sdk().now();
    let (id, credential) = api_token::issue(
        authed.tx().await?,
        &body.name,
        role,
        time::Duration::days(body.days),
        by,
        under,
        now,
    )
    .await?;
    let event = authed
        .event(Action::ApiTokenCreated, Outcome::Success)
        .target(format!("api_token:{id}"))
        .context(json!({
            "name": body.name, "role": role, "days": body.days,
            "elevation": under.map(|u| u.elevation),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "id": id, "token": credential.expose(), "role": role }),
    ))
}

/// `POST /api/tokens/{id}/revoke`.
pub(super) async fn revoke_token(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    if !api_token::revoke(authed.tx().await?, id, now).await? {
        return Err(AuthError::NotFound.into());
    }
    let event = authed
        .event(Action::ApiTokenRevoked, Outcome::Success)
        .target(format!("api_token:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": id })))
}
