//! The organisation's SSO connections (`ManageSso`): read (never a secret), save after
//! validation, remove. Every change and every refused change is an audit event, durable
//! before anything changes.

use axum::Json;
#[cfg(feature = "oidc")]
use axum::extract::State;
use axum::http::StatusCode;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::Permission;
#[cfg(feature = "oidc")]
use procuhelp_auth::sso::oidc::OidcConnection;
#[cfg(feature = "saml")]
use procuhelp_auth::sso::saml::{SamlSettings, ServiceProvider};
use procuhelp_auth::sso::store::{self, Protocol};
#[cfg(feature = "oidc")]
use procuhelp_core::SecretBytes;
#[cfg(feature = "oidc")]
use serde::Deserialize;
use serde_json::{Value, json};

#[cfg(feature = "oidc")]
use super::SsoClients;
#[cfg(feature = "oidc")]
use super::oidc::client_secret_name;
use crate::{Authed, Error, Result};

#[cfg(feature = "oidc")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSettingsBody {
    settings: OidcConnection,
    /// Required the first time; omitted to keep the stored one.
    client_secret: Option<String>,
}

/// `GET /api/sso`: the organisation's connections (never their secrets).
pub(super) async fn get_settings(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let oidc = store::connection(authed.tx().await?, Protocol::Oidc).await?;
    let saml = store::connection(authed.tx().await?, Protocol::Saml).await?;
    authed.commit().await?;
    Ok(Json(json!({
        "oidc": oidc.map(|c| json!({ "settings": c.settings })),
        "saml": saml.map(|c| json!({ "settings": c.settings })),
    })))
}

/// Records the refusal of a connection's settings (the reason, no secret) and answers
/// 422.
async fn refuse_settings(mut authed: Authed, protocol: Protocol, reason: String) -> Error {
    let event = authed
        .event(Action::SsoConfigured, Outcome::Failure)
        .target(format!("sso:{}", protocol.as_str()))
        .context(json!({ "reason": reason }));
    if let Err(e) = authed.record(event).await {
        return e;
    }
    if let Err(e) = authed.commit().await {
        return e;
    }
    Error::Invalid("settings")
}

#[cfg(feature = "oidc")]
/// `PUT /api/sso/oidc`: validates and stores the connection; the client secret goes to
/// the vault. The audit event is durable before anything changes: the vault write
/// (which no transaction rolls back) comes after it, the settings' commit last.
pub(super) async fn put_oidc(
    State(sso): State<SsoClients>,
    mut authed: Authed,
    Json(body): Json<OidcSettingsBody>,
) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let org = authed.org();
    let checked = body
        .settings
        .validate()
        .and_then(|_| body.settings.check_destinations(sso.outbound()));
    if let Err(e) = checked {
        return Err(refuse_settings(authed, Protocol::Oidc, e.to_string()).await);
    }
    let vault = authed.sdk().vault().clone();
    let name = client_secret_name(org).ok_or(Error::Invalid("org"))?;
    let new_secret = match body.client_secret {
        Some(secret) if !secret.is_empty() && secret.len() <= 1024 => {
            Some(SecretBytes::new(secret.into_bytes()))
        }
        Some(_) => return Err(Error::Invalid("client_secret")),
        None => {
            if vault.get(&name).await.is_err() {
                return Err(Error::Invalid("client_secret"));
            }
            None
        }
    };
    let settings = serde_json::to_value(&body.settings).map_err(|_| Error::Invalid("settings"))?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target("sso:oidc")
        .context(json!({
            "issuer": body.settings.issuer,
            "client_id": body.settings.client_id,
            "tenant_ids": body.settings.tenant_ids,
            "client_secret_replaced": new_secret.is_some(),
        }));
    // Recorded first (fails closed: a failing audit log leaves vault and settings as they
    // were); a vault failure after it aborts the request and leaves the settings as they
    // were, the event then records an attempt.
    authed.record(event).await?;
    if let Some(secret) = new_secret {
        vault
            .put(&name, secret)
            .await
            .map_err(|_| Error::Unavailable)?;
    }
    let now = authed.sdk().now();
    store::save_connection(authed.tx().await?, Protocol::Oidc, &settings, now).await?;
    authed.commit().await?;
    Ok(Json(json!({ "settings": settings })))
}

#[cfg(feature = "saml")]
/// `PUT /api/sso/saml`: validates (a connection without an IdP certificate is refused)
/// and stores the connection with its group → role mapping.
pub(super) async fn put_saml(mut authed: Authed, Json(body): Json<Value>) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let checked = serde_json::from_value::<SamlSettings>(body.clone())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.roles().map_err(|e| e.to_string())?;
            ServiceProvider::new(s.connection.clone()).map_err(|e| e.to_string())?;
            Ok(s)
        });
    let settings = match checked {
        Ok(s) => s,
        Err(reason) => return Err(refuse_settings(authed, Protocol::Saml, reason).await),
    };
    let now = authed.sdk().now();
    store::save_connection(authed.tx().await?, Protocol::Saml, &body, now).await?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target("sso:saml")
        .context(json!({
            "idp_entity_id": settings.connection.idp_entity_id,
            "certificates": settings.connection.idp_certificates.len(),
            "allow_sha1": settings.connection.allows_sha1(),
            "allow_idp_initiated": settings.connection.allows_idp_initiated(),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "settings": body })))
}

#[cfg(feature = "oidc")]
/// `DELETE /api/sso/oidc`.
pub(super) async fn delete_oidc(authed: Authed) -> Result<StatusCode> {
    delete_connection(authed, Protocol::Oidc).await
}

#[cfg(feature = "saml")]
/// `DELETE /api/sso/saml`.
pub(super) async fn delete_saml(authed: Authed) -> Result<StatusCode> {
    delete_connection(authed, Protocol::Saml).await
}

/// Removes the organisation's connection for `protocol`, recorded.
async fn delete_connection(mut authed: Authed, protocol: Protocol) -> Result<StatusCode> {
    authed.require(Permission::ManageSso).await?;
    let removed = store::delete_connection(authed.tx().await?, protocol).await?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target(format!("sso:{}", protocol.as_str()))
        .context(json!({ "removed": removed }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
