//! API tokens for service accounts.
//!
//! Each SDK function does the whole thing — the permission check, the base-role cap, the
//! audit event and the commit — so the JSON handlers here and the example server's pages
//! obey one rule.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::api_token::{self, TokenRecord};
use procuhelp_auth::session::Credential;
use procuhelp_auth::{AuthError, Permission, Role};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{parse_role, within_base_role};
use crate::{Authed, Error, Result};

/// A token [`create_token`] issued. `credential` is its secret, to hand over once: only
/// its hash is kept. `Debug` does not show the secret.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewToken {
    /// The token's id (its service account in the audit log; revoke it by this id).
    pub id: Uuid,
    /// Its role.
    pub role: Role,
    /// When it ends by itself (at the latest when the elevation it was minted under
    /// ends).
    pub expires_at: OffsetDateTime,
    /// The secret: `Authorization: Bearer {credential.expose()}`.
    pub credential: Credential,
}

/// Who may create a token: `manage_users`, a person in a session (the token acts for
/// them); with the permission only an elevation gave, the token ends with it.
async fn may_create(authed: &mut Authed) -> Result<Option<api_token::MintedUnder>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let session = authed.principal.session()?;
    match (grant.via_elevation, session.elevation) {
        (Some(id), Some(e)) if e.id == id => Ok(Some(api_token::MintedUnder {
            elevation: id,
            expires_at: e.expires_at,
        })),
        (Some(_), _) => Err(AuthError::Internal.into()),
        (None, _) => Ok(None),
    }
}

/// Issues an API token named `name` (1 to 100 printable characters) with `role`, valid
/// for `days` (1 to 365). Needs `manage_users`, in a session (a token does not mint
/// tokens); `role` is at most the creator's *base* role, and a token minted with a
/// permission only an elevation gave ends with that elevation (expiry or revocation).
/// Recorded as `api_token.created`. Commits: show the secret once, afterwards.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::Role;
/// let token = procuhelp_axum::admin::create_token(&mut authed, "ci", Role::ReadOnly, 30).await?;
/// println!("Bearer {} (shown once)", token.credential.expose());
/// # Ok(()) }
/// ```
pub async fn create_token(
    authed: &mut Authed,
    name: &str,
    role: Role,
    days: i64,
) -> Result<NewToken> {
    let under = may_create(authed).await?;
    within_base_role(authed, role)?;
    if !(1..=365).contains(&days) {
        return Err(Error::Invalid("days"));
    }
    let by = authed.principal.session()?.user;
    let now = authed.sdk().now();
    let lifetime = time::Duration::days(days);
    let (id, credential) =
        api_token::issue(authed.tx().await?, name, role, lifetime, by, under, now).await?;
    let event = authed
        .event(Action::ApiTokenCreated, Outcome::Success)
        .target(format!("api_token:{id}"))
        .context(json!({
            "name": name, "role": role, "days": days,
            "elevation": under.map(|u| u.elevation),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    // As `issue` cut it: never past the elevation it was minted under.
    let expires_at = under.map_or(now + lifetime, |u| (now + lifetime).min(u.expires_at));
    Ok(NewToken {
        id,
        role,
        expires_at,
        credential,
    })
}

/// The organisation's API tokens, newest first (at most
/// [`api_token::LIST_LIMIT`]), revoked and expired ones too — never a secret or a hash.
/// Needs `manage_users`. Commits (nothing is written: read what else the response needs
/// first).
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// for t in procuhelp_axum::admin::list_tokens(&mut authed).await? {
///     println!("{} {} until {} (revoked: {:?})", t.name, t.role, t.expires_at, t.revoked_at);
/// }
/// # Ok(()) }
/// ```
pub async fn list_tokens(authed: &mut Authed) -> Result<Vec<TokenRecord>> {
    authed.require(Permission::ManageUsers).await?;
    let tokens = api_token::list(authed.tx().await?).await?;
    authed.commit().await?;
    Ok(tokens)
}

/// Revokes live token `id` (another organisation's, or one already revoked, is not
/// found). Needs `manage_users`; recorded as `api_token.revoked`. Commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, id: uuid::Uuid)
/// #     -> procuhelp_axum::Result<()> {
/// procuhelp_axum::admin::revoke_token(&mut authed, id).await?;
/// # Ok(()) }
/// ```
pub async fn revoke_token(authed: &mut Authed, id: Uuid) -> Result<()> {
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
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    name: String,
    role: String,
    days: i64,
}

/// `POST /api/tokens`: [`create_token`]; the secret is in the answer, once.
pub(super) async fn create_json(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>> {
    let role = match parse_role(&body.role) {
        Ok(role) => role,
        Err(e) => {
            // Who may not create one is told so first, whatever the body holds.
            may_create(&mut authed).await?;
            return Err(e);
        }
    };
    let token = create_token(&mut authed, &body.name, role, body.days).await?;
    Ok(Json(
        json!({ "id": token.id, "token": token.credential.expose(), "role": token.role }),
    ))
}

/// `GET /api/tokens`: [`list_tokens`] — id, name, role, created, expires, revoked (RFC
/// 3339; `revoked` null while not revoked).
pub(super) async fn list_json(mut authed: Authed) -> Result<Json<Value>> {
    let tokens = list_tokens(&mut authed).await?;
    let rfc3339 = |t: OffsetDateTime| t.format(&Rfc3339).map_err(|_| AuthError::Internal);
    let tokens = tokens
        .iter()
        .map(|t| {
            Ok(json!({
                "id": t.id,
                "name": t.name,
                "role": t.role,
                "created": rfc3339(t.created_at)?,
                "expires": rfc3339(t.expires_at)?,
                "revoked": t.revoked_at.map(rfc3339).transpose()?,
            }))
        })
        .collect::<std::result::Result<Vec<_>, AuthError>>()?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// `POST /api/tokens/{id}/revoke`: [`revoke_token`].
pub(super) async fn revoke_json(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    revoke_token(&mut authed, id).await?;
    Ok(Json(json!({ "revoked": id })))
}
