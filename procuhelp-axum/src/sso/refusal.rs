//! How a public SSO endpoint says no: a stable code for the client (`{"error": code}`,
//! the browser-binding cookies cleared), the detail for the audit log only.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::ClientInfo;
#[cfg(feature = "oidc")]
use procuhelp_auth::sso::oidc::OidcError;
use procuhelp_core::OrgId;
use serde_json::json;

use crate::Sdk;

/// The browser-binding cookie of an OIDC sign-in in flight. SameSite=Lax: the provider
/// brings the browser back with a top-level cross-site GET.
pub(super) const OIDC_COOKIE: &str = "__Host-procuhelp_sso";
/// The browser-binding cookie of a SAML sign-in in flight. SameSite=None: the IdP posts
/// the response cross-site.
pub(super) const SAML_COOKIE: &str = "__Host-procuhelp_saml";

/// Why a public SSO request was refused.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    code: &'static str,
    /// For the audit log only (never in the response).
    detail: String,
    /// Already recorded (the federated sign-in policy records its own refusals).
    recorded: bool,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            recorded: false,
        }
    }

    /// A refusal the policy recorded already.
    pub(super) fn recorded(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            detail: String::new(),
            recorded: true,
        }
    }

    #[cfg(feature = "oidc")]
    pub(super) fn from_oidc(e: &OidcError) -> Self {
        let (status, code) = match e {
            OidcError::Config(_) | OidcError::Discovery(_) | OidcError::Fetch(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "sso_unavailable")
            }
            OidcError::Provider(_) => (StatusCode::BAD_REQUEST, "provider_refused"),
            _ => (StatusCode::UNAUTHORIZED, "sso_rejected"),
        };
        Self::new(status, code, e.to_string())
    }

    /// A 400 for a sign-in this browser did not start, or a malformed callback.
    pub(super) fn bad(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// The organisation has no such connection (or the id is malformed): never recorded.
    pub(super) fn not_configured() -> Self {
        Self::new(StatusCode::NOT_FOUND, "sso_not_configured", "no connection")
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.code }))).into_response();
        // A refused sign-in ends the browser's binding, whichever protocol it started.
        for cookie in [OIDC_COOKIE, SAML_COOKIE] {
            if let Ok(v) = clear_cookie(cookie).parse() {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }
}

/// A dependency (database, vault, provider discovery) failed.
pub(super) fn unavailable(detail: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "sso_unavailable", detail)
}

/// A `Set-Cookie` value that removes cookie `name`.
pub(super) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The value of cookie `name`; `None` when absent or sent twice (refuse rather than guess).
pub(super) fn named_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
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

/// The organisation id of a public SSO path; a malformed one is answered like an
/// organisation without a connection.
pub(super) fn parse_org(org: &str) -> Result<OrgId, Refusal> {
    org.parse().map_err(|_| Refusal::not_configured())
}

/// The response of a public SSO endpoint: a refusal is recorded (`auth.login_failed`
/// with `method` and its reason) unless the policy recorded it already or it is a 404
/// for an organisation without a connection.
pub(super) async fn answer(
    sdk: &Sdk,
    org: OrgId,
    client: &ClientInfo,
    method: &'static str,
    result: Result<Response, Refusal>,
) -> Response {
    match result {
        Ok(response) => response,
        Err(refusal) => {
            if refusal.status != StatusCode::NOT_FOUND && !refusal.recorded {
                record_refusal(sdk, org, client, method, &refusal).await;
            }
            refusal.into_response()
        }
    }
}

async fn record_refusal(
    sdk: &Sdk,
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
    .at(sdk.now())
    .source(client.source, client.user_agent.as_deref())
    .context(json!({ "method": method, "reason": refusal.code, "detail": refusal.detail }));
    if let Some(id) = &client.request_id {
        event = event.request_id(id.clone());
    }
    // Nothing was granted: a failing audit log is logged and the refusal stands.
    if let Err(e) = sdk.record(event).await {
        tracing::error!(error = %e, "could not record an SSO refusal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_sent_twice_is_no_cookie() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; __Host-procuhelp_sso=x".parse().unwrap(),
        );
        assert_eq!(named_cookie(&headers, OIDC_COOKIE).as_deref(), Some("x"));
        headers.append(header::COOKIE, "__Host-procuhelp_sso=y".parse().unwrap());
        assert_eq!(named_cookie(&headers, OIDC_COOKIE), None);
        assert_eq!(named_cookie(&HeaderMap::new(), OIDC_COOKIE), None);
    }

    #[test]
    fn a_refusal_shows_only_its_code() {
        let response = Refusal::bad("sso_state_mismatch", "secret detail").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let cookies: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .collect();
        assert_eq!(cookies.len(), 2, "both binding cookies are cleared");
        for (cookie, name) in cookies.iter().zip([OIDC_COOKIE, SAML_COOKIE]) {
            let cookie = cookie.to_str().unwrap_or_default();
            assert!(cookie.starts_with(&format!("{name}=;")), "{cookie}");
            assert!(cookie.contains("Max-Age=0"), "{cookie}");
        }
    }
}
