//! The steps both protocols share: the organisation's stored connection, a sign-in
//! leaving for the identity provider (single use, bound to this browser), taking it back
//! when the provider returns, and the federated sign-in that ends it with a session.

use axum::http::{StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use base64::Engine as _;
use procuhelp_auth::ClientInfo;
use procuhelp_auth::sso::store::{self, InFlight, Protocol, StoredConnection};
use procuhelp_auth::sso::{FederatedError, FederatedIdentity, FederatedSignIn, RoleMapping};
use procuhelp_core::OrgId;
use zeroize::Zeroizing;

use super::refusal::{OIDC_COOKIE, Refusal, SAML_COOKIE, clear_cookie, unavailable};
use crate::Sdk;

/// How long a started sign-in may take.
const LOGIN_LIFETIME: time::Duration = time::Duration::minutes(10);

/// The organisation's stored connection for `protocol`: 404 for an unknown organisation
/// or no connection (nothing is recorded then), 503 when the database fails.
pub(super) async fn stored_connection(
    sdk: &Sdk,
    org: OrgId,
    protocol: Protocol,
) -> Result<StoredConnection, Refusal> {
    let mut tx = match sdk.tenants().begin(org).await {
        Ok(tx) => tx,
        Err(procuhelp_tenancy::Error::UnknownOrg(_)) => return Err(Refusal::not_configured()),
        Err(e) => return Err(unavailable(e.to_string())),
    };
    let stored = store::connection(&mut tx, protocol)
        .await
        .map_err(|e| unavailable(e.to_string()));
    let _ = tx.rollback().await;
    stored?.ok_or_else(Refusal::not_configured)
}

/// A fresh 256-bit browser-binding secret.
fn browser_secret() -> Result<Zeroizing<String>, Refusal> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| unavailable(e.to_string()))?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ))
}

/// Where a sign-in goes and how the browser comes back.
pub(super) struct Departure<'a> {
    pub(super) protocol: Protocol,
    /// The OIDC `state` or the SAML request id: what finds the sign-in again.
    pub(super) lookup: &'a str,
    pub(super) in_flight: InFlight,
    /// The browser-binding cookie and its SameSite: `Lax` when the provider sends the
    /// browser back with a top-level GET (OIDC), `None` when it POSTs cross-site (SAML).
    pub(super) cookie: (&'static str, &'static str),
    /// The identity provider's URL.
    pub(super) to: &'a str,
}

/// Stores a sign-in leaving for the identity provider — single use, `LOGIN_LIFETIME`,
/// bound to this browser by a fresh secret in a cookie (only its hash is stored) — and
/// redirects the browser to the provider.
pub(super) async fn redirect_to_idp(
    sdk: &Sdk,
    org: OrgId,
    departure: Departure<'_>,
) -> Result<Response, Refusal> {
    let browser = browser_secret()?;
    let now = sdk.now();
    let mut tx = sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    store::begin_login(
        &mut tx,
        departure.protocol,
        departure.lookup,
        &browser,
        &departure.in_flight,
        now,
        now + LOGIN_LIFETIME,
    )
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
    let (name, same_site) = departure.cookie;
    let cookie = format!(
        "{name}={}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
        browser.as_str(),
        LOGIN_LIFETIME.whole_seconds()
    );
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(departure.to),
    )
        .into_response())
}

/// Takes the sign-in in flight under `lookup` if this browser (`browser`, its cookie)
/// started it: used up in a transaction of its own, whatever happens next.
pub(super) async fn take_login(
    sdk: &Sdk,
    org: OrgId,
    protocol: Protocol,
    lookup: &str,
    browser: &str,
) -> Result<InFlight, Refusal> {
    let mut tx = sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let taken = store::take_login(&mut tx, protocol, lookup, browser, sdk.now())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
    taken.ok_or_else(|| {
        Refusal::bad(
            "sso_state_mismatch",
            "no sign-in in flight for this request and browser",
        )
    })
}

/// Signs `identity` in through the federated sign-in policy; on success the session
/// cookie is set, the binding cookies cleared and the browser sent to `/`.
pub(super) async fn sign_in(
    sdk: &Sdk,
    org: OrgId,
    identity: &FederatedIdentity,
    mapping: &RoleMapping,
    client: &ClientInfo,
) -> Result<Response, Refusal> {
    let policy = FederatedSignIn::new(
        sdk.tenants().clone(),
        sdk.auth().clone(),
        sdk.audit().clone(),
        sdk.clock().clone(),
    );
    let issued = match policy.sign_in(org, identity, mapping, client).await {
        Ok(issued) => issued,
        Err(FederatedError::Refused(refusal)) => {
            return Err(Refusal::recorded(StatusCode::FORBIDDEN, refusal.code()));
        }
        Err(FederatedError::Unavailable(procuhelp_auth::AuthError::Audit(e))) => {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                e.to_string(),
            ));
        }
        Err(e) => return Err(unavailable(e.to_string())),
    };
    let mut response = Redirect::to("/").into_response();
    for cookie in [
        issued.credential.set_cookie(),
        clear_cookie(OIDC_COOKIE),
        clear_cookie(SAML_COOKIE),
    ] {
        if let Ok(v) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}
