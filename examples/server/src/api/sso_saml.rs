//! SAML 2.0 sign-in: the organisation's connection (admins), SP metadata, SP-initiated
//! login (HTTP-Redirect AuthnRequest) and the assertion consumer service (HTTP-POST).
//!
//! The request id travels as RelayState and is stored single-use, bound to this browser
//! by a cookie (SameSite=None: the IdP posts the response cross-site). The response is
//! verified off the async executor (`samael` is not `Send`), then the assertion id goes
//! into the replay cache until it expires, and the identity goes through the same
//! linking, MFA and role rules as OpenID Connect (`api::sso::sign_in`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::sso::RoleMapping;
use procuhelp_auth::sso::saml::{Expected, SamlConnection, ServiceProvider, VerifiedAssertion};
use procuhelp_auth::sso::store::{self, InFlight, Protocol};
use procuhelp_auth::{ClientInfo, Permission, Role};
use procuhelp_core::OrgId;
use serde::Deserialize;
use serde_json::{Value, json};

use procuhelp_axum::{Authed, Client};
use procuhelp_axum::{Error as ApiError, Result as ApiResult};
use super::sso::{
    Federated, Refusal, answer, named_cookie, parse_org, redirect_to_idp, sign_in,
    stored_connection, unavailable,
};
use crate::app::AppState;

/// The browser-binding cookie of a SAML sign-in in flight.
pub(crate) const SAML_COOKIE: &str = "__Host-procuhelp_saml";

/// What an organisation stores for SAML: the connection and the group → role mapping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SamlSettings {
    connection: SamlConnection,
    #[serde(default)]
    group_roles: BTreeMap<String, String>,
}

impl SamlSettings {
    fn roles(&self) -> Result<RoleMapping, String> {
        let mut pairs = Vec::with_capacity(self.group_roles.len());
        for (group, role) in &self.group_roles {
            if group.is_empty() || group.len() > 256 {
                return Err("group ids must be 1 to 256 characters".to_owned());
            }
            let role: Role = role
                .parse()
                .map_err(|_| format!("group {group}: unknown role {role:?}"))?;
            pairs.push((group.clone(), role));
        }
        Ok(RoleMapping::new(pairs))
    }
}

/// `PUT /api/sso/saml`: validates (a connection without an IdP certificate is refused)
/// and stores the connection.
pub(crate) async fn put_saml(
    mut authed: Authed,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let checked = serde_json::from_value::<SamlSettings>(body.clone())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.roles()?;
            ServiceProvider::new(s.connection.clone()).map_err(|e| e.to_string())?;
            Ok(s)
        });
    let settings = match checked {
        Ok(s) => s,
        Err(reason) => {
            let event = authed
                .event(Action::SsoConfigured, Outcome::Failure)
                .target("sso:saml")
                .context(json!({ "reason": reason }));
            authed.record(event).await?;
            authed.commit().await?;
            return Err(ApiError::Invalid("settings"));
        }
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

/// `DELETE /api/sso/saml`.
pub(crate) async fn delete_saml(authed: Authed) -> ApiResult<StatusCode> {
    super::sso::delete_connection(authed, Protocol::Saml).await
}

async fn settings(state: &AppState, org: OrgId) -> Result<SamlSettings, Refusal> {
    let stored = stored_connection(state, org, Protocol::Saml).await?;
    serde_json::from_value(stored.settings)
        .map_err(|e| unavailable(format!("stored settings: {e}")))
}

/// `GET /sso/{org}/saml/metadata`: the SP metadata for the IdP administrator.
pub(crate) async fn metadata(State(state): State<AppState>, Path(org): Path<String>) -> Response {
    let result = async {
        let org = parse_org(&org)?;
        let s = settings(&state, org).await?;
        let sp = ServiceProvider::new(s.connection).map_err(|e| unavailable(e.to_string()))?;
        Ok::<_, Refusal>(sp.metadata_xml())
    }
    .await;
    match result {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /sso/{org}/saml/start`: an AuthnRequest with our own 128-bit id, stored single-use
/// and bound to this browser; redirects to the IdP.
pub(crate) async fn start(
    State(state): State<AppState>,
    Client(client): Client,
    Path(org): Path<String>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = start_inner(&state, org).await;
    answer(&state, org, &client, "saml", result).await
}

async fn start_inner(state: &AppState, org: OrgId) -> Result<Response, Refusal> {
    let s = settings(state, org).await?;
    let now = state.sdk.now();
    let sp = ServiceProvider::new(s.connection).map_err(|e| unavailable(e.to_string()))?;
    let request = sp
        .authn_request(now, None)
        .map_err(|e| unavailable(e.to_string()))?;
    // The request id is not secret; it travels as RelayState to find the request again
    // (the browser cookie is the secret part).
    let mut redirect =
        url::Url::parse(&request.redirect_url).map_err(|e| unavailable(e.to_string()))?;
    redirect
        .query_pairs_mut()
        .append_pair("RelayState", &request.id);
    redirect_to_idp(
        state,
        org,
        Protocol::Saml,
        &request.id,
        &InFlight {
            nonce: None,
            pkce_verifier: None,
        },
        (SAML_COOKIE, "None"),
        redirect.as_str(),
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `POST /sso/{org}/saml/acs`: verifies the response and opens a session.
pub(crate) async fn acs(
    State(state): State<AppState>,
    Client(client): Client,
    Path(org): Path<String>,
    headers: axum::http::HeaderMap,
    Form(form): Form<AcsForm>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = acs_inner(&state, org, &client, &headers, form).await;
    answer(&state, org, &client, "saml", result).await
}

async fn acs_inner(
    state: &AppState,
    org: OrgId,
    client: &ClientInfo,
    headers: &axum::http::HeaderMap,
    form: AcsForm,
) -> Result<Response, Refusal> {
    let s = settings(state, org).await?;
    let roles = s.roles().map_err(unavailable)?;
    let now = state.sdk.now();
    // SP-initiated: the RelayState names our request, which this browser started.
    let request_id = match form.relay_state.filter(|r| !r.is_empty()) {
        None => None,
        Some(relay) => {
            let browser = named_cookie(headers, SAML_COOKIE).ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "sso_state_mismatch",
                    "no browser binding cookie",
                )
            })?;
            let mut tx = state
                .sdk
                .tenants()
                .begin(org)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let taken = store::take_login(&mut tx, Protocol::Saml, &relay, &browser, now)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
            if taken.is_none() {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "sso_state_mismatch",
                    "no sign-in in flight for this request and browser",
                ));
            }
            Some(relay)
        }
    };
    let connection = s.connection.clone();
    let response = form.saml_response;
    let verified: Result<VerifiedAssertion, String> = tokio::task::spawn_blocking(move || {
        let sp = ServiceProvider::new(connection).map_err(|e| e.to_string())?;
        let expected = match &request_id {
            Some(id) => Expected::InResponseTo(id),
            None => Expected::Unsolicited,
        };
        sp.validate_response(&response, expected, now)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    let assertion =
        verified.map_err(|e| Refusal::new(StatusCode::UNAUTHORIZED, "sso_rejected", e))?;

    // The assertion id is used up once verified, whether the sign-in then succeeds or not:
    // recorded in a transaction of its own, committed before the sign-in's.
    let mut tx = state
        .sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let first = store::first_use_of_assertion(
        &mut tx,
        &assertion.assertion_id,
        now,
        assertion.not_on_or_after,
    )
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    tx.commit().await.map_err(|e| unavailable(e.to_string()))?;
    if !first {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "sso_replay",
            format!("assertion {} was already used", assertion.assertion_id),
        ));
    }
    let mut amr = vec!["saml".to_owned()];
    if assertion.mfa {
        amr.push("mfa".to_owned());
    }
    let federated = Federated {
        method: "saml",
        subject_key: format!("saml:{}:{}", assertion.issuer, assertion.name_id),
        scim_external_id: None,
        scim_user_name: Some(assertion.name_id.clone()),
        email: assertion.email.clone(),
        name: assertion.display_name.clone(),
        groups: assertion.group_claim(),
        mfa: assertion.mfa,
        amr,
    };
    let mut tx = state
        .sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    match sign_in(state, &mut tx, &federated, &roles, client).await {
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

/// The self-check's SSO warnings: SAML connections that accept SHA-1 signatures or
/// unsolicited (IdP-initiated) responses. Settings an organisation chose, so warnings,
/// not failures; `procuhelp-server posture` prints them.
pub async fn weak_settings(db: &procuhelp_tenancy::TenantDb, orgs: &[OrgId]) -> Vec<String> {
    let mut warnings = Vec::new();
    for &org in orgs {
        let Ok(mut tx) = db.begin(org).await else {
            continue;
        };
        let stored = store::connection(&mut tx, Protocol::Saml).await;
        let _ = tx.rollback().await;
        let Ok(Some(stored)) = stored else { continue };
        let Ok(settings) = serde_json::from_value::<SamlSettings>(stored.settings) else {
            warnings.push(format!("org {org}: stored SAML settings do not parse"));
            continue;
        };
        if settings.connection.allows_sha1() {
            warnings.push(format!(
                "org {org}: SAML accepts SHA-1 signatures and digests (allow_sha1): ask the IdP for SHA-256"
            ));
        }
        if settings.connection.allows_idp_initiated() {
            warnings.push(format!(
                "org {org}: SAML accepts unsolicited (IdP-initiated) responses (allow_idp_initiated)"
            ));
        }
    }
    warnings
}
