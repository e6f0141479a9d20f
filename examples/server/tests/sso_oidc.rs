//! OpenID Connect sign-in through the server against the real provider (npm
//! `oidc-provider` shaped like Entra ID, started by scripts/sso-peers.sh): configuration
//! by an admin (secret to the vault), the browserless code flow ending in a session with
//! the role mapped from groups, and the refusals — no linked account, deprovisioned user,
//! MFA policy, another browser, replayed callback, nOAuth e-mail collision — each audited
//! and without a session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;
#[path = "../../../procuhelp-auth/tests/support/sso_peers.rs"]
mod sso_peers;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Session, World, browser_call, set_cookie_value, world};
use http_body_util::BodyExt as _;
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::{Value, json};
use sso_peers::sso_peers;
use tower::ServiceExt as _;

const ADMINS: &str = "65df403a-b4b0-457b-a977-0841ac8f8e7c";
const ALICE_OID: &str = "15c3cd26-a73b-4031-9bb6-f765472dc802";
const BUYERS: &str = "a8fa8371-9126-4886-affc-323a1c0f44f4";

fn redirect_uri(w: &World, org: usize) -> String {
    format!("http://127.0.0.1:9/sso/{}/oidc/callback", w.orgs[org])
}

async fn configure(
    w: &World,
    admin: &Session,
    org: usize,
    jit: bool,
    secret: Option<String>,
) -> common::Reply {
    let peers = sso_peers();
    let reply = w
        .request(
            Method::PUT,
            "/api/sso/oidc",
            Some(admin),
            Some(json!({
                "settings": {
                    "discovery_url": peers.var("PROCUHELP_OIDC_DISCOVERY_URL"),
                    "issuer": peers.var("PROCUHELP_OIDC_ISSUER"),
                    "client_id": peers.var("PROCUHELP_OIDC_CLIENT_ID"),
                    "tenant_ids": [peers.var("PROCUHELP_OIDC_TENANT_ID")],
                    "redirect_uri": redirect_uri(w, org),
                    "group_roles": { ADMINS: "admin", BUYERS: "requester" },
                },
                "client_secret": secret,
            })),
        )
        .await;
    let jit_reply = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(admin),
            Some(json!({ "role_mappings": [], "sso_jit_provisioning": jit })),
        )
        .await;
    assert!(jit_reply.status.is_success(), "{}", jit_reply.text);
    reply
}

/// A browser: our start endpoint (through the router), the provider (over loopback,
/// following its redirects with a cookie jar), and our callback (through the router).
struct Browser {
    sso_cookie: Option<String>,
}

struct Outcome {
    status: StatusCode,
    session: Option<Session>,
    body: Value,
    callback: String,
}

async fn call(
    w: &World,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let (status, headers, text) = browser_call(w, Method::GET, uri, cookie, None).await;
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

impl Browser {
    fn new() -> Self {
        Self { sso_cookie: None }
    }

    /// Starts at our server and returns the callback URL the provider sends back to.
    async fn visit_provider(&mut self, w: &World, org: usize, login: &str) -> String {
        let (status, headers, body) = call(
            w,
            &format!("/sso/{}/oidc/start?login_hint={login}", w.orgs[org]),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        self.sso_cookie = set_cookie_value(&headers, "__Host-procuhelp_sso");
        assert!(self.sso_cookie.is_some());
        let mut url = reqwest::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
        let provider = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let back = redirect_uri(w, org);
        for _ in 0..10 {
            let response = provider.get(url.clone()).send().await.unwrap();
            assert!(response.status().is_redirection(), "{}", response.status());
            url = url
                .join(response.headers()["location"].to_str().unwrap())
                .unwrap();
            if url.as_str().starts_with(&back) {
                return format!("{}?{}", url.path(), url.query().unwrap_or_default());
            }
        }
        panic!("the provider never sent the browser back");
    }

    async fn callback(&self, w: &World, path: &str) -> Outcome {
        let cookie = self
            .sso_cookie
            .as_ref()
            .map(|c| format!("__Host-procuhelp_sso={c}"));
        let (status, headers, body) = call(w, path, cookie.as_deref()).await;
        let session = match set_cookie_value(&headers, procuhelp_auth::session::COOKIE_NAME) {
            None => None,
            Some(cookie) => {
                let who = w
                    .request(
                        Method::GET,
                        "/api/session",
                        Some(&Session {
                            cookie: cookie.clone(),
                            csrf: String::new(),
                        }),
                        None,
                    )
                    .await;
                assert_eq!(who.status, StatusCode::OK, "{}", who.text);
                Some(Session {
                    cookie,
                    csrf: who.body["csrf_token"].as_str().unwrap().to_owned(),
                })
            }
        };
        Outcome {
            status,
            session,
            body,
            callback: path.to_owned(),
        }
    }

    async fn sign_in(&mut self, w: &World, org: usize, login: &str) -> Outcome {
        let path = self.visit_provider(w, org, login).await;
        self.callback(w, &path).await
    }
}

async fn whoami(w: &World, session: &Session) -> Value {
    w.request(Method::GET, "/api/session", Some(session), None)
        .await
        .body
}

/// A world whose SSO fetches may reach loopback (the test provider runs there): what
/// `serve --dangerous-allow-loopback-fetch` sets.
async fn setup() -> (World, Session) {
    let (mut w, admin) = setup_public_only().await;
    w.state = w
        .state
        .clone()
        .with_outbound_policy(procuhelp_core::OutboundPolicy::dangerous_allow_loopback_for_tests());
    w.app = procuhelp_server::app::app(w.state.clone(), procuhelp_server::app::Limits::default());
    (w, admin)
}

/// A world with the production outbound policy: public addresses only.
async fn setup_public_only() -> (World, Session) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let w = world(PasswordHasher::for_tests()).await;
    // The provider's tokens carry real time.
    w.clock.set(time::OffsetDateTime::now_utc());
    let admin = w.login(0, Role::Admin).await;
    (w, admin)
}

#[tokio::test]
async fn admin_configures_oidc_and_a_jit_user_signs_in_with_the_mapped_role() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    // Without a client secret the first time: refused.
    let reply = configure(&w, &admin, 0, true, None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    let reply = configure(&w, &admin, 0, true, Some(peers.oidc_client_secret())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!reply.text.contains(&peers.oidc_client_secret()));
    let settings = w.request(Method::GET, "/api/sso", Some(&admin), None).await;
    assert!(!settings.text.contains(&peers.oidc_client_secret()));
    assert!(w.count(Action::SsoConfigured) >= 1);
    // The org's sign-in page offers the button.
    let page = w
        .request(Method::GET, &format!("/sso/{}", w.orgs[0]), None, None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains(&format!("/sso/{}/oidc/start", w.orgs[0])),
        "{}",
        page.text
    );
    let other = w
        .request(Method::GET, &format!("/sso/{}", w.orgs[1]), None, None)
        .await;
    assert!(!other.text.contains("/oidc/start"));
    // Non-admins cannot read or change it.
    let approver = w.login(0, Role::Approver).await;
    let reply = w
        .request(Method::GET, "/api/sso", Some(&approver), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // alice: admin group, MFA at the provider → admin session with amr mfa.
    let mut browser = Browser::new();
    let alice = browser.sign_in(&w, 0, "alice").await;
    assert_eq!(alice.status, StatusCode::SEE_OTHER, "{}", alice.body);
    let alice = alice.session.expect("a session");
    let me = whoami(&w, &alice).await;
    assert_eq!(me["role"], json!("admin"), "{me}");
    assert!(me["amr"].as_array().unwrap().contains(&json!("mfa")));
    // bob: buyers → requester.
    let bob = Browser::new()
        .sign_in(&w, 0, "bob")
        .await
        .session
        .expect("bob's session");
    assert_eq!(whoami(&w, &bob).await["role"], json!("requester"));
    // Signing in again reuses the linked user.
    let again = Browser::new()
        .sign_in(&w, 0, "alice")
        .await
        .session
        .unwrap();
    assert_eq!(whoami(&w, &again).await["user"], me["user"]);

    // nOAuth: eve has alice's e-mail but another (tid, oid) → never alice's account.
    let eve = Browser::new().sign_in(&w, 0, "eve").await;
    assert_eq!(eve.status, StatusCode::FORBIDDEN, "{}", eve.body);
    assert!(eve.session.is_none());
    assert_eq!(eve.body["error"], json!("sso_no_account"));

    // The callback works once, and only in the browser that started it.
    let mut browser = Browser::new();
    let path = browser.visit_provider(&w, 0, "bob").await;
    let stranger = Browser::new().callback(&w, &path).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    assert!(stranger.session.is_none());
    let mut browser = Browser::new();
    let path = browser.visit_provider(&w, 0, "bob").await;
    let first = browser.callback(&w, &path).await;
    assert!(first.session.is_some());
    let replay = browser.callback(&w, &first.callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.session.is_none());
    let refusals = w
        .audit
        .events()
        .iter()
        .filter(|e| {
            e.action == Action::LoginFailed && e.context.to_string().contains("\"method\":\"oidc\"")
        })
        .count();
    assert!(refusals >= 3, "every refusal is audited ({refusals})");
    w.close().await;
}

#[tokio::test]
async fn without_jit_unknown_users_deprovisioned_users_and_missing_mfa_are_refused() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    let reply = configure(&w, &admin, 0, false, Some(peers.oidc_client_secret())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // JIT off: nobody is created.
    let bob = Browser::new().sign_in(&w, 0, "bob").await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.body["error"], json!("sso_no_account"));
    assert!(bob.session.is_none());

    // With JIT on, bob is created.
    configure(&w, &admin, 0, true, None).await;
    let bob = Browser::new().sign_in(&w, 0, "bob").await.session.unwrap();
    let bob_id = whoami(&w, &bob).await["user"].as_str().unwrap().to_owned();

    // The org requires MFA: bob's provider sign-in has none → refused; alice's has it.
    let policy = |mfa: bool| json!({ "mfa_required": mfa, "elevation_needs_second_admin": false, "operator_access_needs_approval": false });
    let reply = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&admin),
            Some(policy(true)),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let refused = Browser::new().sign_in(&w, 0, "bob").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["error"], json!("sso_mfa_required"));
    assert!(refused.session.is_none());
    let alice = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(alice.status, StatusCode::SEE_OTHER, "{}", alice.body);
    w.request(
        Method::PUT,
        "/api/org/policy",
        Some(&admin),
        Some(policy(false)),
    )
    .await;

    // Deprovisioned (disabled): his session ends at once and SSO does not bring him back.
    let reply = w
        .request(
            Method::POST,
            &format!("/api/users/{bob_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let reply = w
        .request(Method::GET, "/api/session", Some(&bob), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let again = Browser::new().sign_in(&w, 0, "bob").await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert_eq!(again.body["error"], json!("sso_account_disabled"));
    assert!(again.session.is_none());

    // Another org's users cannot use org 0's connection to reach org 1.
    let elsewhere = call(&w, &format!("/sso/{}/oidc/start", w.orgs[1]), None).await;
    assert_eq!(elsewhere.0, StatusCode::NOT_FOUND);
    let bogus = call(&w, "/sso/not-an-org/oidc/start", None).await;
    assert_eq!(bogus.0, StatusCode::NOT_FOUND);
    w.close().await;
}

#[tokio::test]
async fn a_provider_error_and_a_missing_state_are_refused_without_a_session() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    configure(&w, &admin, 0, true, Some(peers.oidc_client_secret())).await;
    let mut browser = Browser::new();
    let path = browser.visit_provider(&w, 0, "alice").await;
    let query: HashMap<String, String> = reqwest::Url::parse(&format!("http://x{path}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let base = path.split('?').next().unwrap().to_owned();
    let no_state = browser
        .callback(&w, &format!("{base}?code={}", query["code"]))
        .await;
    assert_eq!(no_state.status, StatusCode::BAD_REQUEST);
    assert!(no_state.session.is_none());
    let denied = browser
        .callback(
            &w,
            &format!("{base}?state={}&error=access_denied", query["state"]),
        )
        .await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST);
    assert_eq!(denied.body["error"], json!("provider_refused"));
    assert!(denied.session.is_none());
    w.close().await;
}

async fn scim(
    w: &World,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let req = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/scim+json");
            req.body(Body::from(b.to_string())).unwrap()
        }
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Entra provisions alice through SCIM (externalId = her object id), she signs in with
/// SSO (linked by that id, JIT off), then Entra deprovisions her: her session ends at
/// once and SSO does not bring her back.
#[tokio::test]
async fn scim_provisioned_user_signs_in_then_deprovisioning_ends_it_and_sso_cannot_revive() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    let reply = configure(&w, &admin, 0, false, Some(peers.oidc_client_secret())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = w
        .request(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "Entra", "days": 1 })),
        )
        .await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    let token = token.body["token"].as_str().unwrap().to_owned();
    let base = format!("/scim/v2/{}", w.orgs[0]);
    let (status, created) = scim(
        &w,
        Method::POST,
        &format!("{base}/Users"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice@contoso.example",
            "externalId": ALICE_OID,
            "active": true,
            "displayName": "Alice Admin",
            "emails": [{ "primary": true, "type": "work", "value": "alice@contoso.example" }],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let scim_id = created["id"].as_str().unwrap().to_owned();

    let alice = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(alice.status, StatusCode::SEE_OTHER, "{}", alice.body);
    let alice = alice.session.unwrap();
    assert_eq!(whoami(&w, &alice).await["user"].as_str().unwrap(), scim_id);

    let (status, body) = scim(
        &w,
        Method::PATCH,
        &format!("{base}/Users/{scim_id}"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "path": "active", "value": "False" }],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply = w
        .request(Method::GET, "/api/session", Some(&alice), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the session ends at once"
    );
    let again = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert_eq!(again.body["error"], json!("sso_account_disabled"));
    assert!(again.session.is_none());
    // Even with JIT on, the deprovisioned user is not re-created.
    configure(&w, &admin, 0, true, None).await;
    let again = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert!(again.session.is_none());
    w.close().await;
}

/// A loopback TCP listener that records every connection it accepts (and answers each
/// with an HTTP 404), standing in for an internal service (the vault, the database).
async fn internal_service() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    (addr, connections)
}

/// Issue #11 (SSRF): a tenant admin points `discovery_url` at a port of the server's own
/// machine (here through the name `localhost`, so only the check after DNS resolution can
/// stop it) and calls the unauthenticated start endpoint. The server connects nowhere,
/// and the tenant's audit trail holds only the fixed reason — no status, no connect
/// detail, nothing that tells an open port from a closed one.
#[tokio::test]
async fn a_discovery_url_on_a_loopback_port_is_refused_and_the_audit_holds_no_detail() {
    let (w, admin) = setup_public_only().await;
    let peers = sso_peers();
    let (addr, connections) = internal_service().await;
    let reply = w
        .request(
            Method::PUT,
            "/api/sso/oidc",
            Some(&admin),
            Some(json!({
                "settings": {
                    "discovery_url": format!("https://localhost:{}/.well-known/openid-configuration", addr.port()),
                    "issuer": peers.var("PROCUHELP_OIDC_ISSUER"),
                    "client_id": peers.var("PROCUHELP_OIDC_CLIENT_ID"),
                    "tenant_ids": [peers.var("PROCUHELP_OIDC_TENANT_ID")],
                    "redirect_uri": redirect_uri(&w, 0),
                },
                "client_secret": "a-client-secret",
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let before = w.audit.events().len();
    let (status, _, body) = call(&w, &format!("/sso/{}/oidc/start", w.orgs[0]), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, json!({ "error": "sso_unavailable" }));
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server connected to the loopback port"
    );
    let events = w.audit.events();
    let refusal = events[before..]
        .iter()
        .find(|e| e.action == Action::LoginFailed)
        .expect("the refusal is audited");
    assert_eq!(
        refusal.context,
        json!({
            "method": "oidc",
            "reason": "sso_unavailable",
            "detail": "OIDC provider: destination not allowed",
        })
    );
    w.close().await;
}

/// The static half of the same rule at configuration time: an address literal that is
/// loopback, private, link-local or IPv4-mapped is refused when the settings are saved
/// (fixed reason in the audit event), before any fetch.
#[tokio::test]
async fn settings_naming_an_internal_address_are_refused_when_saved() {
    let (w, admin) = setup_public_only().await;
    let peers = sso_peers();
    for url in [
        "https://127.0.0.1:8200/.well-known/openid-configuration",
        "https://[::ffff:127.0.0.1]:8200/.well-known/openid-configuration",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/.well-known/openid-configuration",
        "http://127.0.0.1:8200/.well-known/openid-configuration",
    ] {
        let reply = w
            .request(
                Method::PUT,
                "/api/sso/oidc",
                Some(&admin),
                Some(json!({
                    "settings": {
                        "discovery_url": url,
                        "issuer": peers.var("PROCUHELP_OIDC_ISSUER"),
                        "client_id": peers.var("PROCUHELP_OIDC_CLIENT_ID"),
                        "tenant_ids": [peers.var("PROCUHELP_OIDC_TENANT_ID")],
                        "redirect_uri": redirect_uri(&w, 0),
                    },
                    "client_secret": "a-client-secret",
                })),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            reply.text
        );
        let refusal = w.audit.events().last().cloned().unwrap();
        assert_eq!(refusal.action, Action::SsoConfigured);
        assert!(
            refusal.context["reason"]
                .as_str()
                .unwrap()
                .ends_with("destination not allowed"),
            "{url}: {}",
            refusal.context
        );
    }
    w.close().await;
}

/// Issue #11: the client secret was written to the vault before its audit event was
/// durable. With the audit log failing, saving the settings fails and the vault still
/// holds the old secret.
#[tokio::test]
async fn the_client_secret_reaches_the_vault_only_after_its_audit_event() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    let reply = configure(&w, &admin, 0, true, Some("first-secret".to_owned())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let name = procuhelp_core::vault::SecretName::new(&format!(
        "sso/{}/oidc-client-secret",
        w.orgs[0].as_uuid()
    ))
    .unwrap();
    w.audit.set_failing(true);
    let reply = w
        .request(
            Method::PUT,
            "/api/sso/oidc",
            Some(&admin),
            Some(json!({
                "settings": {
                    "discovery_url": peers.var("PROCUHELP_OIDC_DISCOVERY_URL"),
                    "issuer": peers.var("PROCUHELP_OIDC_ISSUER"),
                    "client_id": peers.var("PROCUHELP_OIDC_CLIENT_ID"),
                    "tenant_ids": [peers.var("PROCUHELP_OIDC_TENANT_ID")],
                    "redirect_uri": redirect_uri(&w, 0),
                },
                "client_secret": "second-secret",
            })),
        )
        .await;
    w.audit.set_failing(false);
    assert!(!reply.status.is_success(), "{}", reply.text);
    let stored = w.state.sdk.vault().get(&name).await.unwrap();
    assert_eq!(stored.value.expose(), b"first-secret");
    w.close().await;
}

/// Issue #11, finding 7: whoever holds the SCIM token (or edits the IdP's attribute
/// mapping) must not be able to point a local admin's externalId at their own `oid` and
/// sign in as that admin (skipping the admin's password and TOTP). SCIM cannot see the
/// admin, cannot adopt them by creating a user with their address, and even a local
/// admin marked SCIM-managed without an admin's handover (as the old adoption did) is
/// never linked implicitly.
#[tokio::test]
async fn scim_cannot_point_a_local_admins_external_id_at_an_attackers_oid() {
    let (w, admin) = setup().await;
    let peers = sso_peers();
    let reply = configure(&w, &admin, 0, false, Some(peers.oidc_client_secret())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = w
        .request(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "Entra", "days": 1 })),
        )
        .await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let base = format!("/scim/v2/{}", w.orgs[0]);
    let victim = w.users[&(0, Role::Admin)].to_string();
    let victim_email = common::email(0, Role::Admin);

    // The attacker (signing in at the provider as "alice") sets the admin's externalId.
    let (status, body) = scim(
        &w,
        Method::PATCH,
        &format!("{base}/Users/{victim}"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "path": "externalId", "value": ALICE_OID }],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = scim(
        &w,
        Method::POST,
        &format!("{base}/Users"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": victim_email,
            "externalId": ALICE_OID,
            "active": true,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let attacker = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(attacker.status, StatusCode::FORBIDDEN, "{}", attacker.body);
    assert_eq!(attacker.body["error"], json!("sso_no_account"));
    assert!(attacker.session.is_none());

    // Defence in depth: the state the old adoption left behind (SCIM-managed, externalId
    // = the attacker's oid, no handover) still links nobody to a local admin.
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    sqlx::query(
        "UPDATE app.users SET scim_managed = true, scim_external_id = $2 WHERE id = $1::uuid",
    )
    .bind(&victim)
    .bind(ALICE_OID)
    .execute(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let attacker = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(attacker.status, StatusCode::FORBIDDEN, "{}", attacker.body);
    assert_eq!(attacker.body["error"], json!("sso_no_account"));
    assert!(attacker.session.is_none());
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM app.sso_identities")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(links, 0, "no identity was linked");
    w.close().await;
}

/// Issue #11, finding 7 (re-pointing): a SCIM user who already signs in with their own
/// identity is never linked to a second one because SCIM changed their externalId — the
/// SCIM token holder cannot move an existing account over to their own `oid`.
#[tokio::test]
async fn scim_cannot_repoint_a_linked_user_at_another_identity() {
    const BOB_OID: &str = "4bd1adea-7cd3-49a1-b496-d6f116cc3642";
    let (w, admin) = setup().await;
    let peers = sso_peers();
    let reply = configure(&w, &admin, 0, false, Some(peers.oidc_client_secret())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = w
        .request(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "Entra", "days": 1 })),
        )
        .await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let base = format!("/scim/v2/{}", w.orgs[0]);
    let (status, created) = scim(
        &w,
        Method::POST,
        &format!("{base}/Users"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@contoso.example",
            "externalId": BOB_OID,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let bob_id = created["id"].as_str().unwrap().to_owned();
    let bob = Browser::new().sign_in(&w, 0, "bob").await;
    assert_eq!(bob.status, StatusCode::SEE_OTHER, "{}", bob.body);
    assert_eq!(
        whoami(&w, &bob.session.unwrap()).await["user"].as_str(),
        Some(bob_id.as_str())
    );

    // The attacker points bob's externalId at their own identity ("alice").
    let (status, body) = scim(
        &w,
        Method::PATCH,
        &format!("{base}/Users/{bob_id}"),
        &token,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "path": "externalId", "value": ALICE_OID }],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "SCIM owns bob: {body}");
    let attacker = Browser::new().sign_in(&w, 0, "alice").await;
    assert_eq!(attacker.status, StatusCode::FORBIDDEN, "{}", attacker.body);
    assert_eq!(attacker.body["error"], json!("sso_no_account"));
    assert!(attacker.session.is_none());
    // Bob himself still signs in (found by his linked identity, not by SCIM data).
    let again = Browser::new().sign_in(&w, 0, "bob").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    w.close().await;
}
