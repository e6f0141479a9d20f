//! SAML 2.0 sign-in through the server with responses from the real IdP (pysaml2 signing
//! with xmlsec1, `scripts/saml-idp/idp.py`): configuration (a connection without a
//! certificate is refused), SP metadata, SP-initiated login ending in a session with the
//! mapped role, and refusals — forged signature, replayed response, another browser,
//! unsolicited response — each audited and without a session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::process::Command;

use axum::http::{Method, StatusCode, header};
use common::{Session, World, browser_call, set_cookie_value, world};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::{Value, json};

const IDP_ENTITY: &str = "https://sts.windows.net/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/";
const ADMINS: &str = "65df403a-b4b0-457b-a977-0841ac8f8e7c";
const GROUPS_ATTR: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
const EMAIL_ATTR: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";

struct Idp {
    script: PathBuf,
    dir: PathBuf,
}

fn idp() -> Idp {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/saml-idp/idp.py");
    let dir = std::env::temp_dir().join(format!("procuhelp-saml-server-{}", std::process::id()));
    let out = Command::new("python3")
        .arg(&script)
        .args(["keys", "--dir"])
        .arg(&dir)
        .output()
        .expect("python3 (the SAML IdP needs python3, pysaml2 and xmlsec1: scripts/setup.sh)");
    assert!(
        out.status.success(),
        "the SAML IdP is not usable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Idp { script, dir }
}

impl Idp {
    fn cert(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.crt"))).unwrap()
    }

    fn response(&self, w: &World, org: usize, extra: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(&self.script)
            .arg("response")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--acs", &acs(w, org), "--audience", &sp_entity(w, org)])
            .args(["--issuer", IDP_ENTITY, "--name-id", "alice@contoso.example"])
            .args(["--attr", &format!("{EMAIL_ATTR}=alice@contoso.example")])
            .args(["--attr", &format!("{GROUPS_ATTR}={ADMINS}")])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn sp_entity(w: &World, org: usize) -> String {
    format!("https://procuhelp.example/sso/{}/saml", w.orgs[org])
}

fn acs(w: &World, org: usize) -> String {
    format!("https://procuhelp.example/sso/{}/saml/acs", w.orgs[org])
}

/// Starts an SP-initiated sign-in: (request id from RelayState, browser cookie).
async fn start(w: &World, org: usize) -> (String, String) {
    let (status, headers, body) = browser_call(
        w,
        Method::GET,
        &format!("/sso/{}/saml/start", w.orgs[org]),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = reqwest::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(location.query_pairs().any(|(k, _)| k == "SAMLRequest"));
    let relay = location
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(relay.len(), 33, "_ + 128 random bits in hex: {relay}");
    let cookie = set_cookie_value(&headers, "__Host-procuhelp_saml").expect("binding cookie");
    (relay, cookie)
}

fn form(response: &str, relay: Option<&str>) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("SAMLResponse", response);
    if let Some(r) = relay {
        f.append_pair("RelayState", r);
    }
    f.finish()
}

async fn post_acs(
    w: &World,
    org: usize,
    cookie: Option<&str>,
    body: String,
) -> (StatusCode, Option<Session>, Value) {
    let cookie = cookie.map(|c| format!("__Host-procuhelp_saml={c}"));
    let (status, headers, text) = browser_call(
        w,
        Method::POST,
        &format!("/sso/{}/saml/acs", w.orgs[org]),
        cookie.as_deref(),
        Some(body),
    )
    .await;
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
            Some(Session {
                cookie,
                csrf: who.body["csrf_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
    };
    (
        status,
        session,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn configure(
    w: &World,
    admin: &Session,
    certs: Vec<String>,
    unsolicited: bool,
) -> common::Reply {
    w.request(
        Method::PUT,
        "/api/sso/saml",
        Some(admin),
        Some(json!({
            "connection": {
                "idp_entity_id": IDP_ENTITY,
                "idp_sso_url": "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/saml2",
                "idp_certificates": certs,
                "sp_entity_id": sp_entity(w, 0),
                "acs_url": acs(w, 0),
                "allow_idp_initiated": unsolicited,
            },
            "group_roles": { ADMINS: "admin" },
        })),
    )
    .await
}

#[tokio::test]
async fn saml_sign_in_maps_the_role_and_refuses_forgeries_replays_and_strangers() {
    let idp = idp();
    let w = world(PasswordHasher::for_tests()).await;
    w.clock.set(time::OffsetDateTime::now_utc());
    let admin = w.login(0, Role::Admin).await;

    // No certificate: refused, and the refusal is audited.
    let reply = configure(&w, &admin, vec![], false).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    let reply = configure(&w, &admin, vec![idp.cert("idp")], false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&admin),
            Some(json!({ "role_mappings": [], "sso_jit_provisioning": true })),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);

    let (status, headers, xml) = browser_call(
        &w,
        Method::GET,
        &format!("/sso/{}/saml/metadata", w.orgs[0]),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("samlmetadata")
    );
    assert!(xml.contains(&acs(&w, 0)) && xml.contains(&sp_entity(&w, 0)));

    // SP-initiated, assertion signed by the IdP: a session with the mapped role.
    let (relay, cookie) = start(&w, 0).await;
    let response = idp.response(&w, 0, &["--in-response-to", &relay, "--sign-assertion"]);
    let (status, session, body) =
        post_acs(&w, 0, Some(&cookie), form(&response, Some(&relay))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let session = session.expect("a session");
    let me = w
        .request(Method::GET, "/api/session", Some(&session), None)
        .await
        .body;
    assert_eq!(me["role"], json!("admin"), "{me}");
    assert!(me["amr"].as_array().unwrap().contains(&json!("saml")));

    // The same response again: the request was used up.
    let (status, session, _) = post_acs(&w, 0, Some(&cookie), form(&response, Some(&relay))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(session.is_none());

    // Signed by another key: rejected.
    let (relay, cookie) = start(&w, 0).await;
    let forged = idp.response(
        &w,
        0,
        &[
            "--in-response-to",
            &relay,
            "--sign-assertion",
            "--key",
            "attacker",
        ],
    );
    let (status, session, body) = post_acs(&w, 0, Some(&cookie), form(&forged, Some(&relay))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], json!("sso_rejected"));
    assert!(session.is_none());

    // Another browser (no binding cookie) cannot use a started sign-in.
    let (relay, _cookie) = start(&w, 0).await;
    let response = idp.response(&w, 0, &["--in-response-to", &relay, "--sign-response"]);
    let (status, session, _) = post_acs(&w, 0, None, form(&response, Some(&relay))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(session.is_none());

    // Unsolicited (IdP-initiated) is off by default.
    let unsolicited = idp.response(&w, 0, &["--sign-assertion"]);
    let (status, session, body) = post_acs(&w, 0, None, form(&unsolicited, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(session.is_none());
    assert!(
        procuhelp_auth::sso::saml::weak_settings(w.state.sdk.tenants(), &w.orgs)
            .await
            .is_empty()
    );
    // Allowed by the org: accepted once, then the replay cache refuses it.
    let reply = configure(&w, &admin, vec![idp.cert("idp"), idp.cert("idp2")], true).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let warnings = procuhelp_auth::sso::saml::weak_settings(w.state.sdk.tenants(), &w.orgs).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("allow_idp_initiated"));
    let (status, session, body) = post_acs(&w, 0, None, form(&unsolicited, None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(session.is_some());
    let (status, session, body) = post_acs(&w, 0, None, form(&unsolicited, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], json!("sso_replay"));
    assert!(session.is_none());
    // A second server process on the same database refuses the replay too: the cache is
    // the database's, not a process's.
    let second = w.second_instance().await;
    let (status, headers, text) = common::browser_call_on(
        &second,
        Method::POST,
        &format!("/sso/{}/saml/acs", w.orgs[0]),
        None,
        Some(form(&unsolicited, None)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("sso_replay"), "{text}");
    assert!(set_cookie_value(&headers, procuhelp_auth::session::COOKIE_NAME).is_none());
    // Garbage is a clear 4xx, never a panic or a session.
    for junk in ["", "%%%", "PCFET0NUWVBFIHg+"] {
        let (status, session, _) = post_acs(&w, 0, None, form(junk, None)).await;
        assert!(status.is_client_error(), "{status}");
        assert!(session.is_none());
    }
    let refusals = w
        .audit
        .events()
        .iter()
        .filter(|e| {
            e.action == Action::LoginFailed && e.context.to_string().contains("\"method\":\"saml\"")
        })
        .count();
    assert!(refusals >= 5, "every refusal is audited ({refusals})");
    w.close().await;
}
