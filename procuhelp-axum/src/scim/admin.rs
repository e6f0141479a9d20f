//! SCIM administration by the organisation's admins (session or API token, permission
//! `manage_sso`): issue, list and revoke SCIM bearer tokens, set the group → role
//! mapping and the SSO just-in-time provisioning flag, and hand a local user over to
//! SCIM. Every change is audited before it is committed.
//!
//! The tokens and settings are also SDK functions — [`list_tokens`], [`issue_token`],
//! [`revoke_token`], [`settings`], [`set_settings`] — each doing the whole of one step
//! (permission; for a change, audit and commit), for a page or any other caller; the JSON
//! handlers are thin wrappers around them.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::store::{self, RoleChange, RoleMapping, ScimSettings};
use procuhelp_auth::scim::token::{self, ScimTokenInfo};
use procuhelp_auth::session::SessionToken;
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

/// The organisation's SCIM tokens, newest first (never their secrets). Needs
/// `manage_sso`. Reads in the request's transaction and leaves it open: read more if
/// needed, then commit.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let tokens = procuhelp_axum::scim::list_tokens(&mut authed).await?;
/// authed.commit().await?;
/// for t in &tokens {
///     println!("{} ends {}", t.name, t.expires_at);
/// }
/// # Ok(()) }
/// ```
pub async fn list_tokens(authed: &mut Authed) -> Result<Vec<ScimTokenInfo>> {
    authed.require(Permission::ManageSso).await?;
    Ok(token::list(authed.tx().await?).await?)
}

/// `GET /api/scim/tokens`: [`list_tokens`].
pub(super) async fn api_list_tokens(mut authed: Authed) -> Result<Json<Value>> {
    let tokens = list_tokens(&mut authed).await?;
    authed.commit().await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// A SCIM token just issued. Its secret exists only here: show it once (never in a URL),
/// only its hash is kept.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedScimToken {
    /// The token's id (the SCIM client's identity in the audit log).
    pub id: Uuid,
    /// The bearer secret for the identity provider (`Debug` is redacted).
    pub secret: SessionToken,
    /// The SCIM base path the identity provider needs (`/scim/v2/{org}`): the tenant
    /// URL is the server's public origin followed by it.
    pub tenant_url: String,
}

/// Issues a SCIM bearer token named `name`, valid for `days` (1 to 730); recorded as
/// `scim.token_issued` and committed. Needs `manage_sso`.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let issued = procuhelp_axum::scim::issue_token(&mut authed, "Entra ID", 365).await?;
/// // Shown once: the IdP needs the tenant URL and the secret.
/// println!("{} {}", issued.tenant_url, issued.secret.expose());
/// # Ok(()) }
/// ```
pub async fn issue_token(authed: &mut Authed, name: &str, days: i64) -> Result<IssuedScimToken> {
    authed.require(Permission::ManageSso).await?;
    if !(1..=730).contains(&days) {
        return Err(Error::Invalid("days"));
    }
    let by = authed.principal.session().ok().map(|s| s.user);
    let now = authed.sdk().now();
    let (id, secret) = token::issue(
        authed.tx().await?,
        name,
        time::Duration::days(days),
        by,
        now,
    )
    .await?;
    let event = authed
        .event(Action::ScimTokenIssued, Outcome::Success)
        .target(format!("scim_token:{id}"))
        .context(json!({ "name": name, "days": days }));
    authed.record(event).await?;
    authed.commit().await?;
    let org = authed.org();
    Ok(IssuedScimToken {
        id,
        secret,
        tenant_url: format!("/scim/v2/{org}"),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    name: String,
    days: i64,
}

/// `POST /api/scim/tokens`: [`issue_token`]; the secret is in this answer only.
pub(super) async fn api_issue_token(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>> {
    let issued = issue_token(&mut authed, &body.name, body.days).await?;
    Ok(Json(json!({
        "id": issued.id,
        "token": issued.secret.expose(),
        "tenant_url": issued.tenant_url,
    })))
}

/// Revokes the organisation's live SCIM token `id` (recorded as `scim.token_revoked`)
/// and commits: the identity provider's next request with it is refused. Needs
/// `manage_sso`. Not found (another organisation's, unknown or already revoked):
/// [`AuthError::NotFound`].
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, id: uuid::Uuid) -> procuhelp_axum::Result<()> {
/// procuhelp_axum::scim::revoke_token(&mut authed, id).await?;
/// # Ok(()) }
/// ```
pub async fn revoke_token(authed: &mut Authed, id: Uuid) -> Result<()> {
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
    Ok(())
}

/// `POST /api/scim/tokens/{id}/revoke`: [`revoke_token`].
pub(super) async fn api_revoke_token(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    revoke_token(&mut authed, id).await?;
    Ok(Json(json!({ "revoked": id })))
}

/// The organisation's SCIM settings: the group → role mapping and the SSO just-in-time
/// flag. Needs `manage_sso`. Reads in the request's transaction and leaves it open.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let settings = procuhelp_axum::scim::settings(&mut authed).await?;
/// authed.commit().await?;
/// println!("{} mappings", settings.role_mappings.len());
/// # Ok(()) }
/// ```
pub async fn settings(authed: &mut Authed) -> Result<ScimSettings> {
    authed.require(Permission::ManageSso).await?;
    store::settings(authed.tx().await?).await.map_err(scim)
}

/// `GET /api/scim/settings`: [`settings`].
pub(super) async fn api_get_settings(mut authed: Authed) -> Result<Json<Value>> {
    let settings = settings(&mut authed).await?;
    authed.commit().await?;
    Ok(Json(json!(settings)))
}

/// Replaces the group → role mapping (and the JIT flag), then recomputes the role of
/// every SCIM-managed user — changed users are signed out; recorded
/// (`scim.settings_changed`, and `user.role_changed` for each change) and committed.
/// Needs `manage_sso`; mapping a group to a role above the caller's is refused (that
/// would be granting it). Returns the role changes made.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::Role;
/// use procuhelp_auth::scim::store::RoleMapping;
/// let mappings = [RoleMapping { group: "Approvers".into(), role: Role::Approver }];
/// let changed = procuhelp_axum::scim::set_settings(&mut authed, &mappings, false).await?;
/// println!("{} roles changed", changed.len());
/// # Ok(()) }
/// ```
pub async fn set_settings(
    authed: &mut Authed,
    role_mappings: &[RoleMapping],
    sso_jit_provisioning: bool,
) -> Result<Vec<RoleChange>> {
    authed.require(Permission::ManageSso).await?;
    // Mapping a group to a role is granting that role.
    if role_mappings
        .iter()
        .any(|m| !authed.principal.base_role().covers(m.role))
    {
        return Err(AuthError::Forbidden.into());
    }
    let now = authed.sdk().now();
    let changes = store::set_settings(authed.tx().await?, role_mappings, sso_jit_provisioning, now)
        .await
        .map_err(scim)?;
    let event = authed
        .event(Action::ScimSettingsChanged, Outcome::Success)
        .target("org:scim")
        .context(json!({ "role_mappings": role_mappings,
                         "sso_jit_provisioning": sso_jit_provisioning,
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
    Ok(changes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsBody {
    role_mappings: Vec<RoleMapping>,
    #[serde(default)]
    sso_jit_provisioning: bool,
}

/// `PUT /api/scim/settings`: [`set_settings`].
pub(super) async fn api_set_settings(
    mut authed: Authed,
    Json(body): Json<SettingsBody>,
) -> Result<Json<Value>> {
    let changes = set_settings(&mut authed, &body.role_mappings, body.sso_jit_provisioning).await?;
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
