//! The SSO router mounted in an embedder's own state (`FromRef` for `Sdk` and
//! `SsoClients`), driven with `oneshot` on a real PostgreSQL: connection admin (only
//! `ManageSso`, recorded through the `Sdk`'s one audit sink), the sign-in page, SAML
//! metadata, a sign-in bound to the browser that started it and used once, and the
//! route table the permission matrix walks. The full flows against real identity
//! providers are `examples/server/tests/sso_oidc.rs` and `sso_saml.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{Method, Request, StatusCode, header};
use common::{Reply, Session, World, request, send, world};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::{Permission, Role};
use procuhelp_axum::sso::{self, SsoClients};
use procuhelp_axum::{Access, Limits, Sdk, harden};
use procuhelp_core::{Clock as _, OutboundPolicy};
use serde_json::{Value, json};

const IDP_CERT: &str = include_str!("../../procuhelp-auth/tests/data/saml/unit-test-idp.crt");
const SAML_COOKIE: &str = "__Host-procuhelp_saml";

/// The embedder's state: the SDK's and the SSO clients, nothing else.
#[derive(Clone)]
struct SsoState {
    sdk: Sdk,
    sso: SsoClients,
}

impl FromRef<SsoState> for Sdk {
    fn from_ref(s: &SsoState) -> Sdk {
        s.sdk.clone()
    }
}

impl FromRef<SsoState> for SsoClients {
    fn from_ref(s: &SsoState) -> SsoClients {
        s.sso.clone()
    }
}

fn app(sdk: Sdk) -> Router {
    let routes = Router::new()
        .merge(procuhelp_axum::account::routes())
        .merge(sso::sso_routes());
    harden(
        routes.with_state(SsoState {
            sdk,
            sso: SsoClients::new(OutboundPolicy::public_only()),
        }),
        Limits::default(),
    )
}

fn saml_settings(w: &World, org: usize) -> Value {
    let base = format!("https://sp.example.test/sso/{}", w.orgs[org]);
    json!({
        "connection": {
            "idp_entity_id": "https://idp.example.test/",
            "idp_sso_url": "https://idp.example.test/saml2",
            "idp_certificates": [IDP_CERT],
            "sp_entity_id": format!("{base}/saml"),
            "acs_url": format!("{base}/saml/acs"),
        },
        "group_roles": { "admins": "admin" },
    })
}

/// A plain GET, with the raw body as text.
async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn acs(app: &Router, org: &str, form: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::post(format!("/sso/{org}/saml/acs"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("{SAML_COOKIE}={c}"));
    }
    send(app, req.body(Body::from(form.to_owned())).unwrap()).await
}

#[tokio::test]
async fn the_connection_admin_needs_manage_sso_and_is_recorded_through_the_sdk() {
    let w = world().await;
    let app = app(w.sdk.clone());
    let admin = w.login_on(&app, 0, Role::Admin).await;
    let approver = w.login_on(&app, 0, Role::Approver).await;
    let put = |s: &Session, body: Value| request(Method::PUT, "/api/sso/saml", Some(s), Some(body));
    let reply = send(&app, put(&approver, saml_settings(&w, 0))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // No certificate: refused, and the refusal recorded.
    let mut bad = saml_settings(&w, 0);
    bad["connection"]["idp_certificates"] = json!([]);
    let reply = send(&app, put(&admin, bad)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reply.body
    );
    let refused = w.audit.events().last().cloned().unwrap();
    assert_eq!(
        (refused.action, refused.outcome),
        (Action::SsoConfigured, Outcome::Failure)
    );

    let reply = send(&app, put(&admin, saml_settings(&w, 0))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let saved = w.audit.events().last().cloned().unwrap();
    assert_eq!(saved.action, Action::SsoConfigured);
    assert_eq!(saved.context["allow_idp_initiated"], json!(false));
    assert_eq!(saved.context["allow_sha1"], json!(false));
    assert_eq!(saved.at, w.clock.now(), "the Sdk's clock");

    let reply = send(&app, request(Method::GET, "/api/sso", Some(&admin), None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["saml"]["settings"], saml_settings(&w, 0));
    assert_eq!(reply.body["oidc"], Value::Null);

    // The sign-in page offers SAML in org 0 only; metadata names our entity id.
    let (status, _, page) = get(&app, &format!("/sso/{}", w.orgs[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("/sso/{}/saml/start", w.orgs[0])),
        "{page}"
    );
    assert!(!page.contains("/oidc/start"));
    let (_, _, other) = get(&app, &format!("/sso/{}", w.orgs[1])).await;
    assert!(!other.contains("/saml/start"));
    let (status, headers, xml) = get(&app, &format!("/sso/{}/saml/metadata", w.orgs[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/samlmetadata+xml"
    );
    assert!(xml.contains(&format!("https://sp.example.test/sso/{}/saml", w.orgs[0])));

    let reply = send(
        &app,
        request(Method::DELETE, "/api/sso/saml", Some(&admin), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let (status, _, _) = get(&app, &format!("/sso/{}/saml/metadata", w.orgs[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.close().await;
}

#[tokio::test]
async fn a_saml_sign_in_is_bound_to_the_browser_that_started_it_and_used_once() {
    let w = world().await;
    let app = app(w.sdk.clone());
    let admin = w.login_on(&app, 0, Role::Admin).await;
    let reply = send(
        &app,
        request(
            Method::PUT,
            "/api/sso/saml",
            Some(&admin),
            Some(saml_settings(&w, 0)),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let org = w.orgs[0].to_string();

    let (status, headers, _) = get(&app, &format!("/sso/{org}/saml/start")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = url::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with("https://idp.example.test/saml2?")
    );
    let relay = location
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .into_owned();
    assert!(location.query_pairs().any(|(k, _)| k == "SAMLRequest"));
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with(&format!("{SAML_COOKIE}=")), "{set}");
    assert!(set.contains("SameSite=None") && set.contains("Secure") && set.contains("HttpOnly"));
    let browser = set.split(';').next().unwrap().split_once('=').unwrap().1;

    let before = w.audit.events().len();
    let form = format!("SAMLResponse=bm90IHNhbWw%3D&RelayState={relay}");
    // Another browser (no cookie, or another cookie) cannot use it.
    let stranger = acs(&app, &org, &form, None).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    assert_eq!(stranger.body, json!({ "error": "sso_state_mismatch" }));
    let stranger = acs(&app, &org, &form, Some("another-browser")).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    // The browser that started it: the request is taken, the forged response refused.
    let forged = acs(&app, &org, &form, Some(browser)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{:?}", forged.body);
    assert_eq!(forged.body, json!({ "error": "sso_rejected" }));
    // A refusal ends the browser's binding: both SSO cookies are cleared.
    let cleared: Vec<&str> = forged
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with(&format!("{SAML_COOKIE}=;")) && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    // Used up: the same browser cannot try again.
    let again = acs(&app, &org, &form, Some(browser)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let refusals: Vec<_> = w.audit.events()[before..]
        .iter()
        .filter(|e| e.action == Action::LoginFailed)
        .map(|e| e.context["reason"].clone())
        .collect();
    assert_eq!(
        refusals,
        [
            json!("sso_state_mismatch"),
            json!("sso_state_mismatch"),
            json!("sso_rejected"),
            json!("sso_state_mismatch")
        ],
        "every refusal is recorded once"
    );
    for e in &w.audit.events()[before..] {
        assert_eq!(e.context["method"], json!("saml"));
        assert_eq!(e.org, Some(w.orgs[0]));
    }
    w.close().await;
}

#[tokio::test]
async fn an_unknown_or_unconfigured_organisation_is_a_404_and_nothing_is_recorded() {
    let w = world().await;
    let app = app(w.sdk.clone());
    let before = w.audit.events().len();
    for path in [
        "/sso/not-an-org/saml/start".to_owned(),
        "/sso/not-an-org/oidc/start".to_owned(),
        format!("/sso/{}/oidc/start", w.orgs[1]),
        format!("/sso/{}/oidc/callback?state=x&code=y", w.orgs[1]),
        format!("/sso/{}/saml/start", w.orgs[1]),
        format!("/sso/{}/saml/metadata", w.orgs[1]),
        format!("/sso/{}", uuid::Uuid::now_v7()),
    ] {
        let (status, _, body) = get(&app, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let reply = acs(&app, &w.orgs[1].to_string(), "SAMLResponse=eA%3D%3D", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(w.audit.events().len(), before);
    w.close().await;
}

/// The admin routes are in the table the permission matrix walks, with `ManageSso`;
/// the sign-in routes are public (they check what they need themselves).
#[test]
fn the_route_table_lists_every_sso_route() {
    let table = sso::table::<SsoState>();
    let entries: Vec<_> = table
        .endpoints()
        .iter()
        .map(|e| (e.method, e.path, e.access))
        .collect();
    let manage = Access::Needs(Permission::ManageSso);
    for admin in [
        ("GET", "/api/sso"),
        ("PUT", "/api/sso/oidc"),
        ("DELETE", "/api/sso/oidc"),
        ("PUT", "/api/sso/saml"),
        ("DELETE", "/api/sso/saml"),
    ] {
        assert!(entries.contains(&(admin.0, admin.1, manage)), "{admin:?}");
    }
    assert_eq!(
        entries.iter().filter(|e| e.2 == Access::Public).count(),
        6,
        "{entries:?}"
    );
    assert_eq!(entries.len(), 11);
}
