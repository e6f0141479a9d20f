//! Single sign-on: the organisation's connection settings (admins), and the public
//! OpenID Connect sign-in (`/sso/{org}/oidc/start` → provider → `/sso/{org}/oidc/callback`).
//!
//! The callback links the provider identity `(tid, oid)` to a user — never by e-mail — and
//! refuses: a sign-in this browser did not start (state + browser cookie, single use), any
//! token the provider library rejects, an unknown identity when just-in-time provisioning
//! is off, a disabled (deprovisioned) user, and a sign-in without MFA where the org
//! requires it. Every refusal and every success is an audit event.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use base64::Engine as _;
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::directory::{self, Email, NewUser, UserStatus};
use procuhelp_auth::sso::oidc::{OidcClient, OidcConnection, OidcError, PendingLogin};
use procuhelp_auth::sso::store::{self, InFlight, Protocol};
use procuhelp_auth::{ClientInfo, Permission, Role, scim};
use procuhelp_core::OrgId;
use procuhelp_core::OutboundPolicy;
use procuhelp_core::SecretBytes;
use procuhelp_core::vault::SecretName;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use procuhelp_axum::{Authed, Client};
use procuhelp_axum::{Error as ApiError, Result as ApiResult};
use crate::app::AppState;

/// The browser-binding cookie of a sign-in in flight. SameSite=Lax: the provider brings
/// the browser back with a top-level cross-site GET.
const SSO_COOKIE: &str = "__Host-procuhelp_sso";
/// How long a started sign-in may take.
const LOGIN_LIFETIME: time::Duration = time::Duration::minutes(10);

/// OIDC clients per organisation, rebuilt when the connection changes (their discovery
/// and key caches live as long as the connection), and the outbound policy every one of
/// them fetches under (default: public addresses only).
#[derive(Default)]
pub struct SsoClients {
    oidc: Mutex<HashMap<OrgId, (time::OffsetDateTime, Arc<OidcClient>)>>,
    outbound: OutboundPolicy,
}

impl SsoClients {
    /// No clients yet; their fetches held to `outbound` (the operator's choice).
    pub fn new(outbound: OutboundPolicy) -> Self {
        Self {
            oidc: Mutex::default(),
            outbound,
        }
    }
}

impl std::fmt::Debug for SsoClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SsoClients { .. }")
    }
}

fn client_secret_name(org: OrgId) -> Result<SecretName, ApiError> {
    SecretName::new(&format!("sso/{}/oidc-client-secret", org.as_uuid()))
        .map_err(|_| ApiError::Invalid("org"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OidcSettingsBody {
    settings: OidcConnection,
    /// Required the first time; omitted to keep the stored one.
    client_secret: Option<String>,
}

/// `GET /api/sso`: the organisation's connections (never their secrets).
pub(crate) async fn get_settings(mut authed: Authed) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let oidc = store::connection(authed.tx().await?, Protocol::Oidc).await?;
    let saml = store::connection(authed.tx().await?, Protocol::Saml).await?;
    authed.commit().await?;
    Ok(Json(json!({
        "oidc": oidc.map(|c| json!({ "settings": c.settings })),
        "saml": saml.map(|c| json!({ "settings": c.settings })),
    })))
}

/// `PUT /api/sso/oidc`: validates and stores the connection; the client secret goes to
/// the vault. The audit event is durable before anything changes: the vault write
/// (which no transaction rolls back) comes after it, the settings' commit last.
pub(crate) async fn put_oidc(
    State(state): State<AppState>,
    mut authed: Authed,
    Json(body): Json<OidcSettingsBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let org = authed.org();
    let outbound = state.sso.outbound;
    let checked = body
        .settings
        .validate()
        .and_then(|_| body.settings.check_destinations(outbound));
    if let Err(e) = checked {
        let event = authed
            .event(Action::SsoConfigured, Outcome::Failure)
            .target("sso:oidc")
            .context(json!({ "reason": e.to_string() }));
        authed.record(event).await?;
        authed.commit().await?;
        return Err(ApiError::Invalid("settings"));
    }
    let vault = authed.sdk().vault().clone();
    let name = client_secret_name(org)?;
    let new_secret = match body.client_secret {
        Some(secret) if !secret.is_empty() && secret.len() <= 1024 => {
            Some(SecretBytes::new(secret.into_bytes()))
        }
        Some(_) => return Err(ApiError::Invalid("client_secret")),
        None => {
            if vault.get(&name).await.is_err() {
                return Err(ApiError::Invalid("client_secret"));
            }
            None
        }
    };
    let settings =
        serde_json::to_value(&body.settings).map_err(|_| ApiError::Invalid("settings"))?;
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
            .map_err(|_| ApiError::Unavailable)?;
    }
    let now = authed.sdk().now();
    store::save_connection(authed.tx().await?, Protocol::Oidc, &settings, now).await?;
    authed.commit().await?;
    Ok(Json(json!({ "settings": settings })))
}

/// `DELETE /api/sso/oidc`.
pub(crate) async fn delete_oidc(authed: Authed) -> ApiResult<StatusCode> {
    delete_connection(authed, Protocol::Oidc).await
}

/// Removes the organisation's connection for `protocol`, recorded.
pub(crate) async fn delete_connection(
    mut authed: Authed,
    protocol: Protocol,
) -> ApiResult<StatusCode> {
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

/// Why a public SSO request was refused: a stable code for the client, the detail for
/// the audit log.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    code: &'static str,
    detail: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    fn from_oidc(e: &OidcError) -> Self {
        let (status, code) = match e {
            OidcError::Config(_) | OidcError::Discovery(_) | OidcError::Fetch(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "sso_unavailable")
            }
            OidcError::Provider(_) => (StatusCode::BAD_REQUEST, "provider_refused"),
            _ => (StatusCode::UNAUTHORIZED, "sso_rejected"),
        };
        Self::new(status, code, e.to_string())
    }

    pub(crate) fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.code }))).into_response();
        if let Ok(v) = clear_cookie(SSO_COOKIE).parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    }
}

pub(crate) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// A fresh 256-bit browser-binding secret.
pub(crate) fn browser_secret() -> Result<Zeroizing<String>, Refusal> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sso_unavailable",
            e.to_string(),
        )
    })?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ))
}

fn browser_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    named_cookie(headers, SSO_COOKIE)
}

/// The value of cookie `name`; `None` when absent or sent twice (refuse rather than guess).
pub(crate) fn named_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        for pair in value.to_str().ok()?.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None; // two binding cookies: refuse rather than guess
                }
                found = Some(v.to_owned());
            }
        }
    }
    found
}

pub(crate) async fn record_refusal(
    state: &AppState,
    org: OrgId,
    client: &ClientInfo,
    method: &'static str,
    refusal: &Refusal,
) {
    let mut event = AuditEvent::new(
        Some(org),
        Actor::System,
        Action::LoginFailed,
        Outcome::Failure,
    )
    .at(state.sdk.now())
    .source(client.source, client.user_agent.as_deref())
    .context(json!({ "method": method, "reason": refusal.code, "detail": refusal.detail }));
    if let Some(id) = &client.request_id {
        event = event.request_id(id.clone());
    }
    if let Err(e) = state.sdk.record(event).await {
        tracing::error!(error = %e, "could not record an SSO refusal");
    }
}

/// A dependency (database, vault, provider discovery) failed.
pub(crate) fn unavailable(detail: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "sso_unavailable", detail)
}

/// The organisation id of a public SSO path; a malformed one is answered like an
/// organisation without a connection.
pub(crate) fn parse_org(org: &str) -> Result<OrgId, Refusal> {
    org.parse()
        .map_err(|_| Refusal::new(StatusCode::NOT_FOUND, "sso_not_configured", "bad org"))
}

/// The organisation's stored connection for `protocol`: 404 for an unknown organisation
/// or no connection (nothing is recorded then), 503 when the database fails.
pub(crate) async fn stored_connection(
    state: &AppState,
    org: OrgId,
    protocol: Protocol,
) -> Result<store::StoredConnection, Refusal> {
    let not_configured =
        || Refusal::new(StatusCode::NOT_FOUND, "sso_not_configured", "no connection");
    let mut tx = match state.sdk.tenants().begin(org).await {
        Ok(tx) => tx,
        Err(procuhelp_tenancy::Error::UnknownOrg(_)) => return Err(not_configured()),
        Err(e) => return Err(unavailable(e.to_string())),
    };
    let stored = store::connection(&mut tx, protocol)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let _ = tx.rollback().await;
    stored.ok_or_else(not_configured)
}

/// The response of a public SSO endpoint: a refusal is recorded (with `method` and its
/// reason) unless it is a 404 for an organisation without a connection.
pub(crate) async fn answer(
    state: &AppState,
    org: OrgId,
    client: &ClientInfo,
    method: &'static str,
    result: Result<Response, Refusal>,
) -> Response {
    match result {
        Ok(response) => response,
        Err(refusal) => {
            if refusal.status != StatusCode::NOT_FOUND {
                record_refusal(state, org, client, method, &refusal).await;
            }
            refusal.into_response()
        }
    }
}

/// The organisation's OIDC client, built from its stored connection and vault secret.
async fn oidc_client(state: &AppState, org: OrgId) -> Result<Arc<OidcClient>, Refusal> {
    let stored = stored_connection(state, org, Protocol::Oidc).await?;
    let mut cache = state.sso.oidc.lock().await;
    if let Some((version, client)) = cache.get(&org)
        && *version == stored.updated_at
    {
        return Ok(Arc::clone(client));
    }
    let settings: OidcConnection = serde_json::from_value(stored.settings)
        .map_err(|e| unavailable(format!("stored settings: {e}")))?;
    let name = client_secret_name(org).map_err(|_| unavailable("secret name".to_owned()))?;
    let secret = state
        .sdk
        .vault()
        .get(&name)
        .await
        .map_err(|e| unavailable(format!("client secret: {e}")))?;
    let secret = String::from_utf8(secret.value.expose().to_vec())
        .map_err(|_| unavailable("client secret is not UTF-8".to_owned()))?;
    let client = Arc::new(
        OidcClient::new(settings, SecretString::from(secret), state.sso.outbound)
            .map_err(|e| Refusal::from_oidc(&e))?,
    );
    cache.insert(org, (stored.updated_at, Arc::clone(&client)));
    Ok(client)
}

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    login_hint: Option<String>,
}

/// `GET /sso/{org}/oidc/start`: redirects the browser to the provider, binding the
/// sign-in to this browser with a short-lived cookie.
pub(crate) async fn oidc_start(
    State(state): State<AppState>,
    Client(client): Client,
    Path(org): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = start(&state, org, query.login_hint.as_deref()).await;
    answer(&state, org, &client, "oidc", result).await
}

async fn start(
    state: &AppState,
    org: OrgId,
    login_hint: Option<&str>,
) -> Result<Response, Refusal> {
    let hint =
        login_hint.filter(|h| !h.is_empty() && h.len() <= 256 && !h.chars().any(char::is_control));
    let client = oidc_client(state, org).await?;
    let (url, pending) = client
        .begin(hint)
        .await
        .map_err(|e| Refusal::from_oidc(&e))?;
    redirect_to_idp(
        state,
        org,
        Protocol::Oidc,
        &pending.state,
        &InFlight {
            nonce: Some(pending.nonce.to_string()),
            pkce_verifier: Some(pending.pkce_verifier.to_string()),
        },
        (SSO_COOKIE, "Lax"),
        &url,
    )
    .await
}

/// Stores a sign-in leaving for the identity provider — single use, `LOGIN_LIFETIME`,
/// bound to this browser by a fresh secret in cookie `cookie.0` (only its hash is stored)
/// — and redirects the browser to `to`. `cookie.1` is the cookie's SameSite: `Lax` when
/// the provider sends the browser back with a top-level GET (OIDC), `None` when it POSTs
/// cross-site (the SAML ACS).
pub(crate) async fn redirect_to_idp(
    state: &AppState,
    org: OrgId,
    protocol: Protocol,
    request_id: &str,
    in_flight: &InFlight,
    cookie: (&str, &str),
    to: &str,
) -> Result<Response, Refusal> {
    let browser = browser_secret()?;
    let now = state.sdk.now();
    let mut tx = state
        .sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    store::begin_login(
        &mut tx,
        protocol,
        request_id,
        &browser,
        in_flight,
        now,
        now + LOGIN_LIFETIME,
    )
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
    let (name, same_site) = cookie;
    let cookie = format!(
        "{name}={}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
        browser.as_str(),
        LOGIN_LIFETIME.whole_seconds()
    );
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(to),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /sso/{org}/oidc/callback`: finishes the sign-in and opens a session.
pub(crate) async fn oidc_callback(
    State(state): State<AppState>,
    Client(client): Client,
    Path(org): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = callback(&state, org, &client, query, &headers).await;
    answer(&state, org, &client, "oidc", result).await
}

async fn callback(
    state: &AppState,
    org: OrgId,
    client_info: &ClientInfo,
    query: CallbackQuery,
    headers: &axum::http::HeaderMap,
) -> Result<Response, Refusal> {
    let bad = |code: &'static str, d: &str| Refusal::new(StatusCode::BAD_REQUEST, code, d);
    let client = oidc_client(state, org).await?;
    let returned_state = query
        .state
        .ok_or_else(|| bad("sso_state_mismatch", "no state"))?;
    let browser = browser_cookie(headers)
        .ok_or_else(|| bad("sso_state_mismatch", "no browser binding cookie"))?;
    let now = state.sdk.now();
    // Taken in its own transaction: the sign-in is used up whatever happens next.
    let mut tx = state
        .sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let in_flight = store::take_login(&mut tx, Protocol::Oidc, &returned_state, &browser, now)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
    let in_flight = in_flight.ok_or_else(|| {
        bad(
            "sso_state_mismatch",
            "no sign-in in flight for this state and browser",
        )
    })?;
    if let Some(error) = query.error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return Err(bad("provider_refused", &format!("provider error {error}")));
    }
    let code = query.code.ok_or_else(|| bad("sso_rejected", "no code"))?;
    let pending = PendingLogin {
        state: Zeroizing::new(returned_state),
        nonce: Zeroizing::new(in_flight.nonce.unwrap_or_default()),
        pkce_verifier: Zeroizing::new(in_flight.pkce_verifier.unwrap_or_default()),
    };
    let identity = client
        .complete(&pending, &pending.state, &code, now)
        .await
        .map_err(|e| Refusal::from_oidc(&e))?;

    let mut tx = state
        .sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let federated = Federated {
        method: "oidc",
        subject_key: identity.subject_key(),
        scim_external_id: Some(identity.object_id.clone()),
        scim_user_name: None,
        email: identity.email.clone(),
        name: identity.name.clone(),
        groups: identity.groups.clone(),
        mfa: identity.mfa,
        amr: identity.amr.clone(),
    };
    let result = sign_in(state, &mut tx, &federated, client.roles(), client_info).await;
    match result {
        Ok(response) => {
            tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
            Ok(response)
        }
        Err(refusal) => {
            let _ = tx.rollback().await;
            Err(refusal)
        }
    }
}

/// An identity a provider asserted, protocol aside.
pub(crate) struct Federated {
    /// `oidc` or `saml` (audit context).
    pub(crate) method: &'static str,
    /// The immutable link key (`oidc:<tid>:<oid>`, `saml:<issuer>:<NameID>`).
    pub(crate) subject_key: String,
    /// A SCIM externalId that identifies the same person (Entra object id).
    pub(crate) scim_external_id: Option<String>,
    /// A SCIM userName that identifies the same person (SAML NameID).
    pub(crate) scim_user_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) groups: procuhelp_auth::sso::GroupClaim,
    pub(crate) mfa: bool,
    pub(crate) amr: Vec<String>,
}

/// Links `identity` to a user (or creates one, with JIT on), applies the org's MFA
/// policy and the group → role mapping, and opens a full session. The caller commits.
pub(crate) async fn sign_in(
    state: &AppState,
    tx: &mut procuhelp_tenancy::TenantTx,
    identity: &Federated,
    mapping: &procuhelp_auth::sso::RoleMapping,
    client_info: &ClientInfo,
) -> Result<Response, Refusal> {
    let forbidden = |code: &'static str, d: String| Refusal::new(StatusCode::FORBIDDEN, code, d);
    let now = state.sdk.now();
    let key = identity.subject_key.clone();
    let mapped = mapping.role_for(&identity.groups);
    let manages_roles = mapping.iter().next().is_some();
    let overage = identity.groups == procuhelp_auth::sso::GroupClaim::Overage;
    let wanted_role = match (manages_roles, overage) {
        (false, _) | (true, true) => None,
        (true, false) => Some(mapped.unwrap_or(Role::least_privileged())),
    };
    let mut linked = store::linked_user(tx, &key)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if linked.is_none() {
        // A user SCIM provisioned with externalId = the Entra object id is this person:
        // link once, by the immutable id (never by e-mail) — and only to a user SCIM owns
        // that may be linked implicitly (`scim::LINKABLE`: never a local account, one
        // with a password or TOTP an admin did not hand over, or one already linked).
        if let Some(external_id) = &identity.scim_external_id {
            linked = scim::user_by_external_id(tx, external_id)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        if linked.is_none()
            && let Some(user_name) = &identity.scim_user_name
        {
            linked = scim::user_by_user_name(tx, user_name)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        if let Some(user) = linked {
            store::link(tx, &key, user, now)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
    }
    let jit = scim::sso_jit_provisioning(tx)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let user = match linked {
        Some(user) => directory::get(tx, user)
            .await
            .map_err(|e| unavailable(e.to_string()))?,
        None if !jit => {
            return Err(forbidden(
                "sso_no_account",
                format!("no user is linked to {key}"),
            ));
        }
        None => {
            let email = identity
                .email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
                .ok_or_else(|| {
                    forbidden(
                        "sso_no_account",
                        "no usable e-mail for a new user".to_owned(),
                    )
                })?;
            let display_name = identity
                .name
                .clone()
                .unwrap_or_else(|| email.as_str().to_owned());
            let id = directory::create(
                tx,
                NewUser {
                    email,
                    display_name,
                    role: wanted_role,
                    password_hash: None,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                procuhelp_auth::AuthError::Conflict(_) => forbidden(
                    "sso_no_account",
                    "another user has this e-mail address; identities are never linked by e-mail"
                        .to_owned(),
                ),
                other => unavailable(other.to_string()),
            })?;
            store::link(tx, &key, id, now)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            record(
                state,
                tx.org(),
                Actor::System,
                Action::UserCreated,
                client_info,
                json!({
                    "user": id.to_string(), "method": format!("{}_jit", identity.method), "subject": key,
                }),
            )
            .await?;
            directory::get(tx, id)
                .await
                .map_err(|e| unavailable(e.to_string()))?
        }
    };
    if user.status != UserStatus::Active {
        return Err(forbidden(
            "sso_account_disabled",
            format!("user {} is disabled", user.id),
        ));
    }
    let policy = directory::org_policy(tx)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if policy.mfa_required && !identity.mfa {
        return Err(forbidden(
            "sso_mfa_required",
            format!("the provider asserted no MFA (amr {:?})", identity.amr),
        ));
    }
    // SCIM is authoritative for the roles of the users it manages.
    let scim_managed = scim::user_is_scim_managed(tx, user.id)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if let Some(role) = wanted_role
        && role != user.role
        && !scim_managed
    {
        directory::set_role(tx, user.id, role, now)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        record(
            state,
            tx.org(),
            Actor::System,
            Action::UserRoleChanged,
            client_info,
            json!({
                "user": user.id.to_string(), "from": user.role, "to": role, "source": "sso_groups",
            }),
        )
        .await?;
    }
    let mut amr: Vec<&str> = identity.amr.iter().map(String::as_str).collect();
    if identity.mfa && !amr.contains(&"mfa") {
        amr.push("mfa");
    }
    amr.push("fed");
    let issued = state
        .sdk
        .auth()
        .open_full_session(tx, user.id, &amr, client_info)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    record(
        state,
        tx.org(),
        Actor::User { id: user.id },
        Action::LoginSucceeded,
        client_info,
        json!({
            "method": identity.method, "subject": key, "mfa": identity.mfa, "groups_overage": overage,
        }),
    )
    .await?;
    let mut response = Redirect::to("/").into_response();
    for cookie in [
        issued.credential.set_cookie(),
        clear_cookie(SSO_COOKIE),
        clear_cookie(super::sso_saml::SAML_COOKIE),
    ] {
        if let Ok(v) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

async fn record(
    state: &AppState,
    org: OrgId,
    actor: Actor,
    action: Action,
    client: &ClientInfo,
    context: Value,
) -> Result<(), Refusal> {
    let mut event = AuditEvent::new(Some(org), actor, action, Outcome::Success)
        .at(state.sdk.now())
        .source(client.source, client.user_agent.as_deref())
        .context(context);
    if let Some(id) = &client.request_id {
        event = event.request_id(id.clone());
    }
    state.sdk.record(event).await.map_err(|e| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            e.to_string(),
        )
    })
}

/// `GET /sso/{org}`: the organisation's sign-in page — a button for each configured
/// connection (nothing else of the organisation is shown; unknown org → 404).
pub(crate) async fn login_page(
    State(state): State<AppState>,
    Path(org): Path<String>,
    axum::Extension(nonce): axum::Extension<procuhelp_core::http::CspNonce>,
) -> Response {
    let Ok(org) = org.parse::<OrgId>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(mut tx) = state.sdk.tenants().begin(org).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let oidc = store::connection(&mut tx, Protocol::Oidc).await;
    let saml = store::connection(&mut tx, Protocol::Saml).await;
    let _ = tx.rollback().await;
    let (Ok(oidc), Ok(saml)) = (oidc, saml) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // The org id is a UUID we parsed: hex digits and hyphens only, safe in HTML.
    let mut buttons = String::new();
    if oidc.is_some() {
        buttons.push_str(&format!(
            r#"<p><a class="button" href="/sso/{org}/oidc/start">Sign in with Microsoft Entra ID</a></p>"#
        ));
    }
    if saml.is_some() {
        buttons.push_str(&format!(
            r#"<p><a class="button" href="/sso/{org}/saml/start">Sign in with your organisation (SAML)</a></p>"#
        ));
    }
    if buttons.is_empty() {
        buttons.push_str("<p>Single sign-on is not configured for this organisation.</p>");
    }
    axum::response::Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — ProcuHelp</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}.button{{display:inline-block;padding:.6rem 1rem;border:1px solid #0b5cad;border-radius:4px;color:#0b5cad;text-decoration:none}}</style>
</head><body><h1>Sign in</h1>
{buttons}
</body></html>"#,
        nonce = nonce.as_str()
    ))
    .into_response()
}
