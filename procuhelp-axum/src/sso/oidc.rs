//! OpenID Connect sign-in: `GET /sso/{org}/oidc/start` (to the provider, with state,
//! nonce and PKCE) and `GET /sso/{org}/oidc/callback` (code → verified ID token →
//! federated sign-in). A callback works once, and only in the browser that started it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use procuhelp_auth::ClientInfo;
use procuhelp_auth::sso::FederatedIdentity;
use procuhelp_auth::sso::oidc::{OidcClient, OidcConnection, PendingLogin};
use procuhelp_auth::sso::store::{InFlight, Protocol};
use procuhelp_core::OrgId;
use procuhelp_core::vault::SecretName;
use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::SsoClients;
use super::flow::{self, Departure};
use super::refusal::{OIDC_COOKIE, Refusal, answer, named_cookie, parse_org, unavailable};
use crate::{Client, Sdk};

/// The vault name of an organisation's OIDC client secret.
pub(super) fn client_secret_name(org: OrgId) -> Option<SecretName> {
    SecretName::new(&format!("sso/{}/oidc-client-secret", org.as_uuid())).ok()
}

/// The organisation's OIDC client, built from its stored connection and vault secret,
/// cached until the connection changes.
async fn client(sdk: &Sdk, sso: &SsoClients, org: OrgId) -> Result<Arc<OidcClient>, Refusal> {
    let stored = flow::stored_connection(sdk, org, Protocol::Oidc).await?;
    let mut cache = sso.inner.oidc.lock().await;
    if let Some((version, client)) = cache.get(&org)
        && *version == stored.updated_at
    {
        return Ok(Arc::clone(client));
    }
    let settings: OidcConnection = serde_json::from_value(stored.settings)
        .map_err(|e| unavailable(format!("stored settings: {e}")))?;
    let name = client_secret_name(org).ok_or_else(|| unavailable("secret name"))?;
    let secret = sdk
        .vault()
        .get(&name)
        .await
        .map_err(|e| unavailable(format!("client secret: {e}")))?;
    let secret = String::from_utf8(secret.value.expose().to_vec())
        .map_err(|_| unavailable("client secret is not UTF-8"))?;
    let client = Arc::new(
        OidcClient::new(settings, SecretString::from(secret), sso.outbound())
            .map_err(|e| Refusal::from_oidc(&e))?,
    );
    cache.insert(org, (stored.updated_at, Arc::clone(&client)));
    Ok(client)
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    login_hint: Option<String>,
}

/// `GET /sso/{org}/oidc/start`: redirects the browser to the provider, binding the
/// sign-in to this browser with a short-lived cookie.
pub(super) async fn start(
    State(sdk): State<Sdk>,
    State(sso): State<SsoClients>,
    Client(client): Client,
    Path(org): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = start_inner(&sdk, &sso, org, query.login_hint.as_deref()).await;
    answer(&sdk, org, &client, "oidc", result).await
}

async fn start_inner(
    sdk: &Sdk,
    sso: &SsoClients,
    org: OrgId,
    login_hint: Option<&str>,
) -> Result<Response, Refusal> {
    let hint =
        login_hint.filter(|h| !h.is_empty() && h.len() <= 256 && !h.chars().any(char::is_control));
    let client = client(sdk, sso, org).await?;
    let (url, pending) = client
        .begin(hint)
        .await
        .map_err(|e| Refusal::from_oidc(&e))?;
    let departure = Departure {
        protocol: Protocol::Oidc,
        lookup: &pending.state,
        in_flight: InFlight {
            nonce: Some(pending.nonce.to_string()),
            pkce_verifier: Some(pending.pkce_verifier.to_string()),
        },
        cookie: (OIDC_COOKIE, "Lax"),
        to: &url,
    };
    flow::redirect_to_idp(sdk, org, departure).await
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /sso/{org}/oidc/callback`: finishes the sign-in and opens a session.
pub(super) async fn callback(
    State(sdk): State<Sdk>,
    State(sso): State<SsoClients>,
    Client(client): Client,
    Path(org): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = callback_inner(&sdk, &sso, org, &client, query, &headers).await;
    answer(&sdk, org, &client, "oidc", result).await
}

async fn callback_inner(
    sdk: &Sdk,
    sso: &SsoClients,
    org: OrgId,
    client_info: &ClientInfo,
    query: CallbackQuery,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let client = client(sdk, sso, org).await?;
    let returned_state = query
        .state
        .ok_or_else(|| Refusal::bad("sso_state_mismatch", "no state"))?;
    let browser = named_cookie(headers, OIDC_COOKIE)
        .ok_or_else(|| Refusal::bad("sso_state_mismatch", "no browser binding cookie"))?;
    let in_flight = flow::take_login(sdk, org, Protocol::Oidc, &returned_state, &browser).await?;
    if let Some(error) = query.error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return Err(Refusal::bad(
            "provider_refused",
            format!("provider error {error}"),
        ));
    }
    let code = query.code.ok_or_else(|| {
        Refusal::new(
            axum::http::StatusCode::BAD_REQUEST,
            "sso_rejected",
            "no code",
        )
    })?;
    let pending = PendingLogin {
        state: Zeroizing::new(returned_state),
        nonce: Zeroizing::new(in_flight.nonce.unwrap_or_default()),
        pkce_verifier: Zeroizing::new(in_flight.pkce_verifier.unwrap_or_default()),
    };
    let identity = client
        .complete(&pending, &pending.state, &code, sdk.now())
        .await
        .map_err(|e| Refusal::from_oidc(&e))?;
    let identity = FederatedIdentity::from_oidc(&identity);
    flow::sign_in(sdk, org, &identity, client.roles(), client_info).await
}
