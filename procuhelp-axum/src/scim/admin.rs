//! SCIM administration by the organisation's admins (session or API token, permission
//! `manage_sso`): issue, list and revoke SCIM bearer tokens, set the group → role
//! mapping and the SSO just-in-time provisioning flag, and hand a local user over to
//! SCIM. Every change is audited before it is committed.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::store::{self, RoleMapping};
use procuhelp_auth::scim::token;
use procuhelp_auth::{AuthError, Permission, directory};
use procuhelp_core::UserId;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::admin::{ElevationLimit, may_manage, refuse_under_elevation};
use crate::{Authed, Error, Result};

/// A SCIM store refusal as the admin API's error (same statuses, the fixed detail).
fn scim(e: ScimError) -> Error {
    match e.status {
        404 => AuthError::NotFound.into(),
        409 => AuthError::Conflict(e.detail).into(),
        400 => AuthError::Invalid {
            field: "scim",
            problem: e.detail,
        }
        .into(),
        _ => AuthError::Internal.into(),
    }
}

/// `GET /api/scim/tokens`: the organisation's SCIM tokens (never their secrets).
pub(super) async fn list_tokens(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let tokens = token::list(authed.tx().await?).await?;
    authed.commit().await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    name: String,
    days: i64,
}

/// `POST /api/scim/tokens`: a SCIM bearer token for the identity provider, shown once.
pub(super) async fn issue_token(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    if !(1..=730).contains(&body.days) {
        return Err(Error::Invalid("days"));
    }
    let by = authed.principal.session().ok().map(|s| s.user);
    let now = authed.sdk().now();
    let (id, secret) = token::issue(
        authed.tx().await?,
        &body.name,
        time::Duration::days(body.days),
        by,
        now,
    )
    .await?;
    let event = authed
        .event(Action::ScimTokenIssued, Outcome::Success)
        .target(format!("scim_token:{id}"))
        .context(json!({ "name": body.name, "days": body.days }));
    authed.record(event).await?;
    authed.commit().await?;
    let org = authed.org();
    Ok(Json(json!({
        "id": id,
        "token": secret.expose(),
        "tenant_url": format!("/scim/v2/{org}"),
    })))
}

/// `POST /api/scim/tokens/{id}/revoke`.
pub(super) async fn revoke_token(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let now = authed.sdk().now();
    if !token::revoke(authed.tx().await?, id, now).await? {
        return Err(AuthError::NotFound.into());
    }
    let event = authed
        .event(Action::ScimTokenRevoked, Outcome::Success)
        .target(format!("scim_token:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": id })))
}

/// `GET /api/scim/settings`.
pub(super) async fn get_settings(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let settings = store::settings(authed.tx().await?).await.map_err(scim)?;
    authed.commit().await?;
    Ok(Json(json!(settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsBody {
    role_mappings: Vec<RoleMapping>,
    #[serde(default)]
    sso_jit_provisioning: bool,
}

/// `PUT /api/scim/settings`: replaces the group → role mapping (and the JIT flag), then
/// recomputes the role of every SCIM-managed user; changed users are signed out.
pub(super) async fn set_settings(
    mut authed: Authed,
    Json(body): Json<SettingsBody>,
) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    // Mapping a group to a role is granting that role.
    if body
        .role_mappings
        .iter()
        .any(|m| m.role.outranks(authed.principal.role()))
    {
        return Err(AuthError::Forbidden.into());
    }
    let now = authed.sdk().now();
    let changes = store::set_settings(
        authed.tx().await?,
        &body.role_mappings,
        body.sso_jit_provisioning,
        now,
    )
    .await
    .map_err(scim)?;
    let event = authed
        .event(Action::ScimSettingsChanged, Outcome::Success)
        .target("org:scim")
        .context(json!({ "role_mappings": body.role_mappings,
                         "sso_jit_provisioning": body.sso_jit_provisioning,
                         "roles_changed": changes.len() }));
    authed.record(event).await?;
    for c in &changes {
        let event = authed
            .event(Action::UserRoleChanged, Outcome::Success)
            .target(format!("user:{}", c.user))
            .context(
                json!({ "from": c.from, "to": c.to, "sessions_revoked": c.sessions_revoked,
                             "reason": "scim group mapping" }),
            );
        authed.record(event).await?;
    }
    authed.commit().await?;
    Ok(Json(json!({
        "role_mappings": body.role_mappings,
        "sso_jit_provisioning": body.sso_jit_provisioning,
        "roles_changed": changes.len(),
    })))
}

/// `POST /api/users/{id}/scim-handover`: hands a local user over to SCIM — the only way
/// SCIM comes to manage a user it did not create (it never adopts one). Needs
/// `manage_users` and `manage_sso`; not for the caller themselves (SCIM could then change
/// their own role and status). From now on SCIM sees the user (userName = their sign-in
/// address, so Entra's first lookup finds them), manages their attributes and status, and
/// — with a group mapping — their role (recomputed now: they are in no SCIM group yet);
/// a federated sign-in may be linked to them by their SCIM externalId/userName. Audited
/// (`scim.user_handed_over`) before it takes effect.
pub(super) async fn hand_over(mut authed: Authed, Path(id): Path<UserId>) -> Result<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    authed.require(Permission::ManageSso).await?;
    // What SCIM manages outlives any elevation, as a new user would.
    refuse_under_elevation(
        &mut authed,
        &grant,
        ElevationLimit::LastingChange(Action::ScimUserHandedOver),
    )
    .await?;
    // Through a token too: a token acts for its creator.
    if authed.principal.acting_user() == id {
        return Err(AuthError::Conflict("admins cannot hand themselves over to SCIM").into());
    }
    // SCIM may demote and disable whom it manages: never someone above the caller.
    let target = directory::get(authed.tx().await?, id).await?;
    may_manage(&authed, &target)?;
    let by = match authed.principal.actor() {
        Actor::User { id } => id.as_uuid(),
        Actor::ServiceAccount { id } => id,
        _ => return Err(AuthError::Internal.into()),
    };
    let now = authed.sdk().now();
    let done = store::hand_over(authed.tx().await?, id, by, now)
        .await
        .map_err(scim)?;
    let event = authed
        .event(Action::ScimUserHandedOver, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "role_changed": done.role_change.is_some() }))
        .person(
            id,
            Some(&done.user.email),
            done.user.display_name.as_deref(),
        );
    authed.record(event).await?;
    if let Some(c) = &done.role_change {
        let event = authed
            .event(Action::UserRoleChanged, Outcome::Success)
            .target(format!("user:{id}"))
            .context(
                json!({ "from": c.from, "to": c.to, "sessions_revoked": c.sessions_revoked,
                        "reason": "scim group mapping" }),
            );
        authed.record(event).await?;
    }
    authed.commit().await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "scim_managed": true,
        "user_name": done.user.user_name,
        "role_changed": done.role_change.map(|c| c.to),
    })))
}
