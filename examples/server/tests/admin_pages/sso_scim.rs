//! The single sign-on and SCIM pages: forms that do what `/api/sso` and `/api/scim` do,
//! with the same permission, audited (a refused setting too); a refusal shown next to its
//! form in fixed words, nothing changed; a SCIM token's secret shown once.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use procuhelp_audit::{Action, AuditEvent, Outcome};
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::common::{Session, World, world};
use crate::forms::{BUTTON, Page, open, post, redirected};

/// The organisation's stored connections, through the API.
async fn stored(w: &World, admin: &Session) -> Value {
    let r = w.request(Method::GET, "/api/sso", Some(admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

fn last_event(w: &World, action: Action) -> AuditEvent {
    w.audit
        .events()
        .into_iter()
        .rev()
        .find(|e| e.action == action)
        .expect("an event")
}

const TENANT: &str = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5";
const SECRET: &str = "page-client-secret-4711";

/// The OIDC settings the matrix test saves (they validate offline), as the form's fields.
fn oidc_form<'a>(discovery: &'a str, issuer: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("discovery_url", discovery),
        ("issuer", issuer),
        ("client_id", "13f0eaea-7284-4cae-8822-bcd14389d2fc"),
        ("tenant_ids", TENANT),
        (
            "redirect_uri",
            "https://procuhelp.example/sso/oidc/callback",
        ),
        (
            "group_roles",
            "65df403a-b4b0-457b-a977-0841ac8f8e7c = admin",
        ),
        ("client_secret", secret),
    ]
}

/// An admin saves an OIDC connection through the form and sees it without its secret; a
/// bad one (http discovery URL, wrong issuer) is refused next to the form with its fixed
/// message, audited as refused, nothing changed, the input not echoed; saved again
/// without a secret keeps the stored one; removed. An approver gets 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oidc_form_saves_refuses_and_removes() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let discovery =
        format!("https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration");
    let issuer = format!("https://login.microsoftonline.com/{TENANT}/v2.0");

    let p = open(&w, &admin, "/admin/sso").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    assert!(p.html.contains("action=\"/admin/sso/oidc\""), "{}", p.html);
    assert!(!p.html.contains("data-configured=\"oidc\""));

    // The first time without a secret: refused, recorded, nothing stored.
    let p = post(
        &w,
        &admin,
        "/admin/sso/oidc",
        &oidc_form(&discovery, &issuer, ""),
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.html);
    assert_eq!(p.error_code(), "client_secret");
    assert!(stored(&w, &admin).await["oidc"].is_null());

    let p = post(
        &w,
        &admin,
        "/admin/sso/oidc",
        &oidc_form(&discovery, &issuer, SECRET),
    )
    .await;
    redirected(&p, "/admin/sso?done=oidc_saved");
    let saved = last_event(&w, Action::SsoConfigured);
    assert_eq!(saved.outcome, Outcome::Success);
    assert_eq!(saved.context["client_secret_replaced"], true);
    let before = stored(&w, &admin).await;
    assert_eq!(before["oidc"]["settings"]["issuer"], issuer.as_str());
    assert_eq!(
        before["oidc"]["settings"]["group_roles"]["65df403a-b4b0-457b-a977-0841ac8f8e7c"],
        "admin"
    );

    let p = open(&w, &admin, "/admin/sso?done=oidc_saved").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.html.contains("data-notice=\"oidc_saved\""), "{}", p.html);
    assert!(p.html.contains("data-configured=\"oidc\""));
    assert!(p.html.contains(&issuer) && p.html.contains("13f0eaea-7284-4cae-8822-bcd14389d2fc"));
    assert!(!p.html.contains(SECRET), "the secret is never shown back");
    assert!(p.html.contains("type=\"password\""));
    // An unknown notice key shows nothing.
    let p = open(&w, &admin, "/admin/sso?done=%3Cb%3Ehi").await;
    assert!(!p.html.contains("data-notice") && !p.html.contains("<b>hi"));

    // Refused: each with its fixed message next to the form, audited, nothing changed.
    let marker = "https://login.microsoftonline.com/<b>marker</b>";
    for (discovery_url, issuer_url, code) in [
        (
            discovery.replace("https://", "http://"),
            issuer.clone(),
            "discovery_url",
        ),
        (
            discovery.clone(),
            issuer.replace("https://", "http://"),
            "issuer",
        ),
        (
            discovery.clone(),
            "https://sts.windows.net/00000000-0000-0000-0000-000000000001/".to_owned(),
            "tenant_ids",
        ),
        (
            "https://127.0.0.1:8200/.well-known/openid-configuration".to_owned(),
            issuer.clone(),
            "destination_not_allowed",
        ),
        (discovery.clone(), format!("{marker}{{x}}"), "issuer"),
    ] {
        let refusals = w.audit.events().len();
        let p = post(
            &w,
            &admin,
            "/admin/sso/oidc",
            &oidc_form(&discovery_url, &issuer_url, "another-secret"),
        )
        .await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}: {}",
            p.html
        );
        assert_eq!(p.error_code(), code, "{}", p.html);
        assert!(p.html.contains("role=\"alert\""));
        assert!(!p.html.contains("marker"), "the input is never echoed");
        assert!(!p.html.contains("another-secret"));
        assert!(p.html.contains(&issuer), "the stored settings are shown");
        let refusal = last_event(&w, Action::SsoConfigured);
        assert!(w.audit.events().len() > refusals);
        assert_eq!(refusal.outcome, Outcome::Failure, "{code}");
        assert_eq!(refusal.context["refusal"], code);
        assert_eq!(stored(&w, &admin).await, before, "{code}: nothing changed");
    }

    // Saved again without a secret: the stored one is kept.
    let p = post(
        &w,
        &admin,
        "/admin/sso/oidc",
        &oidc_form(&discovery, &issuer, ""),
    )
    .await;
    redirected(&p, "/admin/sso?done=oidc_saved");
    assert_eq!(
        last_event(&w, Action::SsoConfigured).context["client_secret_replaced"],
        false
    );
    // Pointed at another client without a secret: the stored one does not follow it.
    let before = stored(&w, &admin).await;
    let mut other_client = oidc_form(&discovery, &issuer, "");
    other_client[2] = ("client_id", "0b7c1e2a-5d7e-4a8e-9c41-2f3b7e9d6a10");
    let p = post(&w, &admin, "/admin/sso/oidc", &other_client).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.html);
    assert_eq!(p.error_code(), "client_secret");
    assert_eq!(stored(&w, &admin).await, before);

    // An approver: 403 on the page and on every form, nothing changed.
    let approver = w.login(0, Role::Approver).await;
    for p in [
        open(&w, &approver, "/admin/sso").await,
        post(
            &w,
            &approver,
            "/admin/sso/oidc",
            &oidc_form(&discovery, &issuer, "x"),
        )
        .await,
        post(&w, &approver, "/admin/sso/oidc/delete", BUTTON).await,
        post(&w, &approver, "/admin/sso/saml", &[("bad", "form")]).await,
    ] {
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.html);
        assert_eq!(p.error_code(), "forbidden");
    }
    assert!(stored(&w, &admin).await["oidc"].is_object());

    let p = post(&w, &admin, "/admin/sso/oidc/delete", BUTTON).await;
    redirected(&p, "/admin/sso?done=oidc_removed");
    assert!(stored(&w, &admin).await["oidc"].is_null());
    let p = open(&w, &admin, "/admin/sso?done=oidc_removed").await;
    assert!(p.html.contains("data-notice=\"oidc_removed\""));
    assert!(!p.html.contains("data-configured=\"oidc\""));
    w.close().await;
}

const IDP_ENTITY: &str = "https://sts.windows.net/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/";
const IDP_SSO: &str =
    "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/saml2";
const IDP_CERT: &str = include_str!("../../../../procuhelp-auth/tests/data/saml/unit-test-idp.crt");
const WEAK_CERT: &str = include_str!("../../../../procuhelp-auth/tests/data/saml/weak-rsa1024.crt");

/// The SAML form: no certificate, a weak one or a plain-http ACS URL refused next to the
/// form (audited, nothing stored); a good one saved, the SP entity id, ACS URL and the
/// metadata link on the page, the metadata served; removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saml_form_saves_refuses_and_links_the_metadata() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let org = w.orgs[0];
    let sp_entity = format!("https://procuhelp.example/sso/{org}/saml");
    let acs = format!("https://procuhelp.example/sso/{org}/saml/acs");
    let metadata = format!("/sso/{org}/saml/metadata");
    let form = |certs: &'static str, acs: String| {
        vec![
            ("idp_entity_id", IDP_ENTITY.to_owned()),
            ("idp_sso_url", IDP_SSO.to_owned()),
            ("idp_certificates", certs.to_owned()),
            ("sp_entity_id", sp_entity.clone()),
            ("acs_url", acs),
            (
                "group_roles",
                "65df403a-b4b0-457b-a977-0841ac8f8e7c = admin".to_owned(),
            ),
        ]
    };
    async fn send(w: &World, s: &Session, f: Vec<(&'static str, String)>) -> Page {
        post(w, s, "/admin/sso/saml", &f).await
    }

    let p = open(&w, &admin, "/admin/sso").await;
    assert!(
        !p.html.contains(&metadata),
        "no metadata before a connection"
    );

    for (certs, acs_url, code) in [
        ("", acs.clone(), "no_certificate"),
        (WEAK_CERT, acs.clone(), "bad_certificate"),
        (IDP_CERT, acs.replace("https://", "http://"), "insecure_url"),
    ] {
        let p = send(&w, &admin, form(certs, acs_url)).await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}: {}",
            p.html
        );
        assert_eq!(p.error_code(), code, "{}", p.html);
        let refusal = last_event(&w, Action::SsoConfigured);
        assert_eq!(
            (refusal.outcome, refusal.target.as_deref()),
            (Outcome::Failure, Some("sso:saml"))
        );
        assert!(stored(&w, &admin).await["saml"].is_null(), "{code}");
    }

    let p = send(&w, &admin, form(IDP_CERT, acs.clone())).await;
    redirected(&p, "/admin/sso?done=saml_saved");
    assert_eq!(
        last_event(&w, Action::SsoConfigured).outcome,
        Outcome::Success
    );
    let settings = stored(&w, &admin).await;
    assert_eq!(
        settings["saml"]["settings"]["connection"]["idp_entity_id"],
        IDP_ENTITY
    );
    assert_eq!(
        settings["saml"]["settings"]["connection"]["allow_idp_initiated"],
        false
    );

    let p = open(&w, &admin, "/admin/sso?done=saml_saved").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.html.contains("data-notice=\"saml_saved\""));
    assert!(p.html.contains("data-configured=\"saml\""));
    assert!(
        p.html.contains(&format!("href=\"{metadata}\"")),
        "{}",
        p.html
    );
    assert!(p.html.contains(&sp_entity) && p.html.contains(&acs));
    let (status, _, xml) =
        crate::common::browser_call(&w, Method::GET, &metadata, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(xml.contains(&sp_entity) && xml.contains(&acs), "{xml}");

    let p = post(&w, &admin, "/admin/sso/saml/delete", BUTTON).await;
    redirected(&p, "/admin/sso?done=saml_removed");
    assert!(stored(&w, &admin).await["saml"].is_null());
    w.close().await;
}

/// A SCIM token created through the page is shown once (in the answer, never in a URL),
/// works as the identity provider's bearer token, is listed without its secret, and once
/// revoked is refused; another organisation's admin cannot revoke it; an approver gets
/// 403 and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_token_from_the_page_is_shown_once_works_and_is_revoked() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let org = w.orgs[0];
    let users = format!("/scim/v2/{org}/Users");
    let scim_get = |token: String| {
        let req = Request::builder()
            .uri(users.clone())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let app = w.app.clone();
        async move { app.oneshot(req).await.unwrap().status() }
    };

    let p = open(&w, &admin, "/admin/scim").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    assert!(
        p.text_of("scim-base-url")
            .ends_with(&format!("/scim/v2/{org}"))
    );

    let approver = w.login(0, Role::Approver).await;
    for p in [
        open(&w, &approver, "/admin/scim").await,
        post(
            &w,
            &approver,
            "/admin/scim/tokens",
            &[("name", "x"), ("days", "1")],
        )
        .await,
    ] {
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.html);
        assert_eq!(p.error_code(), "forbidden");
    }
    assert_eq!(w.count(Action::ScimTokenIssued), 0);

    let p = post(
        &w,
        &admin,
        "/admin/scim/tokens",
        &[("name", "x"), ("days", "0")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.html);
    assert_eq!(w.count(Action::ScimTokenIssued), 0);

    let p = post(
        &w,
        &admin,
        "/admin/scim/tokens",
        &[("name", "Entra <b>ID</b>"), ("days", "30")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    assert!(p.location().is_none(), "an answer page, not a redirect");
    assert!(!p.html.contains("<b>ID"), "escaped");
    let secret = p.text_of("scim-token-secret").to_owned();
    assert_eq!(secret.len(), 43, "{secret}");
    assert_eq!(w.count(Action::ScimTokenIssued), 1);
    assert_eq!(scim_get(secret.clone()).await, StatusCode::OK);

    let p = open(&w, &admin, "/admin/scim").await;
    assert!(p.html.contains("Entra &lt;b&gt;ID&lt;/b&gt;"), "{}", p.html);
    assert!(!p.html.contains(&secret), "listed without its secret");
    assert!(p.html.contains("data-state=\"live\""));
    let id = p
        .html
        .split("data-scim-token=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let revoke = format!("/admin/scim/tokens/{id}/revoke");

    // Another organisation's admin: not found, the token still works.
    let stranger = w.login(1, Role::Admin).await;
    let p = post(&w, &stranger, &revoke, BUTTON).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.html);
    assert_eq!(scim_get(secret.clone()).await, StatusCode::OK);

    let p = post(&w, &admin, &revoke, BUTTON).await;
    redirected(&p, "/admin/scim?done=revoked");
    assert_eq!(w.count(Action::ScimTokenRevoked), 1);
    assert_eq!(scim_get(secret.clone()).await, StatusCode::UNAUTHORIZED);
    let p = open(&w, &admin, "/admin/scim?done=revoked").await;
    assert!(p.html.contains("data-notice=\"revoked\""));
    assert!(p.html.contains("data-state=\"revoked\""));
    assert!(
        !p.html.contains(&revoke),
        "no revoke button for a revoked token"
    );
    let p = post(&w, &admin, &revoke, BUTTON).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    // The group → role mapping from the page: as PUT /api/scim/settings.
    let mapping = "Approvers = approver\n\n 9f1c0a52-6d2e-4f3b-8a7d-1e2b3c4d5e6f = auditor \n";
    let p = post(
        &w,
        &admin,
        "/admin/scim/settings",
        &[
            ("settings", "all"),
            ("role_mappings", mapping),
            ("sso_jit_provisioning", "on"),
        ],
    )
    .await;
    redirected(&p, "/admin/scim?done=settings");
    let saved = w
        .request(Method::GET, "/api/scim/settings", Some(&admin), None)
        .await;
    assert_eq!(saved.body["sso_jit_provisioning"], true, "{:?}", saved.body);
    let mappings = saved.body["role_mappings"].to_string();
    assert!(
        mappings.contains("Approvers") && mappings.contains("auditor"),
        "{mappings}"
    );
    // Bad lines (no role, an unknown role) and a cut-off form: told, nothing changed.
    for bad in [
        vec![("settings", "all"), ("role_mappings", "Approvers")],
        vec![("settings", "all"), ("role_mappings", "Approvers = root")],
        vec![("role_mappings", "")],
    ] {
        let p = post(&w, &admin, "/admin/scim/settings", &bad).await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {}",
            p.html
        );
    }
    let after = w
        .request(Method::GET, "/api/scim/settings", Some(&admin), None)
        .await;
    assert_eq!(after.body, saved.body);
    // Shown back as the form's text.
    let p = open(&w, &admin, "/admin/scim").await;
    assert!(p.html.contains("Approvers = approver"), "{}", p.html);
    w.close().await;
}
