//! SAML 2.0 sign-in: SP metadata, SP-initiated login (HTTP-Redirect AuthnRequest) and
//! the assertion consumer service (HTTP-POST).
//!
//! The request id travels as RelayState and is stored single-use, bound to this browser
//! by a cookie (SameSite=None: the IdP posts the response cross-site). The response is
//! verified off the async executor (`samael` is not `Send`), then the assertion id goes
//! into the replay cache until it expires, and the identity goes through the same
//! federated sign-in policy as OpenID Connect.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_auth::ClientInfo;
use procuhelp_auth::sso::FederatedIdentity;
use procuhelp_auth::sso::saml::{Expected, SamlSettings, ServiceProvider, VerifiedAssertion};
use procuhelp_auth::sso::store::{self, InFlight, Protocol};
use procuhelp_core::OrgId;
use serde::Deserialize;

use super::flow::{self, Departure};
use super::refusal::{Refusal, SAML_COOKIE, answer, named_cookie, parse_org, unavailable};
use crate::{Client, Sdk};

async fn settings(sdk: &Sdk, org: OrgId) -> Result<SamlSettings, Refusal> {
    let stored = flow::stored_connection(sdk, org, Protocol::Saml).await?;
    serde_json::from_value(stored.settings)
        .map_err(|e| unavailable(format!("stored settings: {e}")))
}

/// `GET /sso/{org}/saml/metadata`: the SP metadata for the IdP administrator.
pub(super) async fn metadata(State(sdk): State<Sdk>, Path(org): Path<String>) -> Response {
    let result = async {
        let org = parse_org(&org)?;
        let s = settings(&sdk, org).await?;
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

/// `GET /sso/{org}/saml/start`: an AuthnRequest with our own 128-bit id, stored
/// single-use and bound to this browser; redirects to the IdP.
pub(super) async fn start(
    State(sdk): State<Sdk>,
    Client(client): Client,
    Path(org): Path<String>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = start_inner(&sdk, org).await;
    answer(&sdk, org, &client, "saml", result).await
}

async fn start_inner(sdk: &Sdk, org: OrgId) -> Result<Response, Refusal> {
    let s = settings(sdk, org).await?;
    let sp = ServiceProvider::new(s.connection).map_err(|e| unavailable(e.to_string()))?;
    let request = sp
        .authn_request(sdk.now(), None)
        .map_err(|e| unavailable(e.to_string()))?;
    // The request id is not secret; it travels as RelayState to find the request again
    // (the browser cookie is the secret part).
    let mut redirect =
        url::Url::parse(&request.redirect_url).map_err(|e| unavailable(e.to_string()))?;
    redirect
        .query_pairs_mut()
        .append_pair("RelayState", &request.id);
    let departure = Departure {
        protocol: Protocol::Saml,
        lookup: &request.id,
        in_flight: InFlight {
            nonce: None,
            pkce_verifier: None,
        },
        cookie: (SAML_COOKIE, "None"),
        to: redirect.as_str(),
    };
    flow::redirect_to_idp(sdk, org, departure).await
}

#[derive(Deserialize)]
pub(super) struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `POST /sso/{org}/saml/acs`: verifies the response and opens a session.
pub(super) async fn acs(
    State(sdk): State<Sdk>,
    Client(client): Client,
    Path(org): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Response {
    let org = match parse_org(&org) {
        Ok(org) => org,
        Err(refusal) => return refusal.into_response(),
    };
    let result = acs_inner(&sdk, org, &client, &headers, form).await;
    answer(&sdk, org, &client, "saml", result).await
}

async fn acs_inner(
    sdk: &Sdk,
    org: OrgId,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: AcsForm,
) -> Result<Response, Refusal> {
    let s = settings(sdk, org).await?;
    let roles = s.roles().map_err(|e| unavailable(e.to_string()))?;
    let now = sdk.now();
    // SP-initiated: the RelayState names our request, which this browser started.
    let request_id = match form.relay_state.filter(|r| !r.is_empty()) {
        None => None,
        Some(relay) => {
            let browser = named_cookie(headers, SAML_COOKIE)
                .ok_or_else(|| Refusal::bad("sso_state_mismatch", "no browser binding cookie"))?;
            flow::take_login(sdk, org, Protocol::Saml, &relay, &browser).await?;
            Some(relay)
        }
    };
    let connection = s.connection;
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
    first_use(sdk, org, &assertion).await?;
    let identity = FederatedIdentity::from_saml(&assertion);
    flow::sign_in(sdk, org, &identity, &roles, client).await
}

/// The assertion id is used up once verified, whether the sign-in then succeeds or not:
/// recorded in a transaction of its own, committed before the sign-in's.
async fn first_use(sdk: &Sdk, org: OrgId, assertion: &VerifiedAssertion) -> Result<(), Refusal> {
    let mut tx = sdk
        .tenants()
        .begin(org)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let first = store::first_use_of_assertion(
        &mut tx,
        &assertion.assertion_id,
        sdk.now(),
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
    Ok(())
}
