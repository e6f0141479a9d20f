//! The elevation and API-token pages: forms that do what `/api/elevations` and
//! `/api/tokens` do, with the same permission, audited; a token's secret shown once.

use axum::http::{Method, StatusCode, header};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;

use crate::common::{PASSWORD, Session, World, session_from, world};
use crate::forms::{BUTTON, open, post};

/// A second admin in organisation 0, signed in.
async fn second_admin(w: &World, admin: &Session) -> Session {
    let r = w
        .request(
            Method::POST,
            "/api/users",
            Some(admin),
            Some(
                json!({ "email": "admin2@org0.test", "display_name": "Admin Two",
                         "password": PASSWORD, "role": "admin" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    session_from(&w.try_login(0, "admin2@org0.test", PASSWORD).await)
}

async fn role_in_force(w: &World, s: &Session) -> String {
    let me = w.request(Method::GET, "/api/session", Some(s), None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    me.body["role"].as_str().unwrap().to_owned()
}

/// One admin asks through the page, a second approves it there; it shows as active with
/// its expiry and the person acts with it; revoking it ends it; each step audited. The
/// asking admin cannot approve, a requester cannot open the page, and another
/// organisation's admin finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevation_asked_approved_and_revoked_through_the_pages() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let admin2 = second_admin(&w, &admin).await;
    let r = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&admin),
            Some(
                json!({ "mfa_required": false, "elevation_needs_second_admin": true,
                         "operator_access_needs_approval": false }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let requester = w.users[&(0, Role::Requester)].to_string();

    let page = open(&w, &admin, "/admin/elevations").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.html.contains(&format!("value=\"{requester}\"")),
        "the person is offered"
    );
    assert_eq!(page.html.matches("<h1").count(), 1);

    // Out of bounds: told, nothing kept.
    let ask = |minutes: &'static str| {
        [
            ("user", requester.as_str()),
            ("role", "approver"),
            ("reason", "month-end <b>close</b>"),
            ("minutes", minutes),
        ]
    };
    let page = post(&w, &admin, "/admin/elevations", &ask("481")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(page.error_code(), "invalid_input");
    assert_eq!(w.count(Action::ElevationRequested), 0);

    let page = post(&w, &admin, "/admin/elevations", &ask("60")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), Some("/admin/elevations?done=requested"));
    assert_eq!(w.count(Action::ElevationRequested), 1);
    let list = w
        .request(Method::GET, "/api/elevations", Some(&admin), None)
        .await;
    let id = list.body["elevations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(list.body["elevations"][0]["state"], "pending");

    let page = open(&w, &admin, "/admin/elevations?done=requested").await;
    assert!(page.html.contains("data-notice=\"requested\""));
    assert!(page.html.contains("data-state=\"pending\""));
    // The reason is text, not markup.
    assert!(page.html.contains("month-end &lt;b&gt;close&lt;/b&gt;"));
    assert!(!page.html.contains("<b>close"));
    // Not offered to who asked; refused when forged.
    assert!(
        !page
            .html
            .contains(&format!("/admin/elevations/{id}/approve"))
    );
    let page = post(
        &w,
        &admin,
        &format!("/admin/elevations/{id}/approve"),
        BUTTON,
    )
    .await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::FORBIDDEN, "self_approval")
    );
    assert_eq!(w.count(Action::ElevationRefused), 1);
    assert_eq!(
        role_in_force(&w, &w.login(0, Role::Requester).await).await,
        "requester"
    );

    // The second admin approves: in force for an hour from now.
    let page = open(&w, &admin2, "/admin/elevations").await;
    assert!(
        page.html
            .contains(&format!("/admin/elevations/{id}/approve"))
    );
    let page = post(
        &w,
        &admin2,
        &format!("/admin/elevations/{id}/approve"),
        BUTTON,
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), Some("/admin/elevations?done=approved"));
    assert_eq!(w.count(Action::ElevationApproved), 1);
    assert_eq!(w.count(Action::ElevationGranted), 1);
    let page = open(&w, &admin, "/admin/elevations").await;
    assert!(page.html.contains("data-state=\"active\""), "{}", page.html);
    assert!(
        page.html.contains("2026-11-25 10:00 UTC"),
        "the expiry is shown"
    );
    let elevated = w.login(0, Role::Requester).await;
    assert_eq!(role_in_force(&w, &elevated).await, "approver");

    // Another organisation's admin: not found, not listed.
    let stranger = w.login(1, Role::Admin).await;
    for what in ["approve", "revoke"] {
        let page = post(
            &w,
            &stranger,
            &format!("/admin/elevations/{id}/{what}"),
            BUTTON,
        )
        .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(page.error_code(), "not_found");
    }
    let page = open(&w, &stranger, "/admin/elevations").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains(&id) && !page.html.contains("month-end"));

    // A requester (even elevated to approver) may not open or use the page: 403, whatever
    // the form holds.
    let plain = elevated.clone();
    assert_eq!(
        open(&w, &plain, "/admin/elevations").await.status,
        StatusCode::FORBIDDEN
    );
    let page = post(&w, &plain, "/admin/elevations", &ask("60")).await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let page = post(
        &w,
        &plain,
        &format!("/admin/elevations/{id}/revoke"),
        BUTTON,
    )
    .await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    // Revoked: ended at once, recorded, not revoked twice.
    let page = post(
        &w,
        &admin,
        &format!("/admin/elevations/{id}/revoke"),
        BUTTON,
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), Some("/admin/elevations?done=revoked"));
    assert_eq!(w.count(Action::ElevationRevoked), 1);
    assert_eq!(role_in_force(&w, &elevated).await, "requester");
    let page = open(&w, &admin, "/admin/elevations").await;
    assert!(page.html.contains("data-state=\"revoked\""));
    assert!(
        !page
            .html
            .contains(&format!("/admin/elevations/{id}/revoke"))
    );
    let page = post(
        &w,
        &admin,
        &format!("/admin/elevations/{id}/revoke"),
        BUTTON,
    )
    .await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::CONFLICT, "conflict")
    );

    // A notice is chosen by key, never reflected.
    let page = open(&w, &admin, "/admin/elevations?done=%3Cscript%3Ex").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("<script") && !page.html.contains("data-notice"));
    w.close().await;
}

async fn bearer(w: &World, secret: &str, path: &str) -> StatusCode {
    let auth = format!("Bearer {secret}");
    w.request_from(
        Method::GET,
        path,
        None,
        None,
        None,
        &[("authorization", &auth)],
    )
    .await
    .status
}

/// A token made on the page is shown once (on the answer, never in a URL), works on the
/// API, is listed without its secret, and is refused once revoked; a requester is refused
/// the page and another organisation's admin finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_the_page_is_shown_once_works_and_is_revoked() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;

    let page = open(&w, &admin, "/admin/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("name=\"csrf_token\""));

    let page = post(
        &w,
        &admin,
        "/admin/tokens",
        &[
            ("name", "ledger export"),
            ("role", "read_only"),
            ("days", "30"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert_eq!(
        page.location(),
        None,
        "shown on the answer, not after a redirect"
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    let secret = page.text_of("token-secret").to_owned();
    assert!(secret.starts_with(&format!("{}.", w.orgs[0])), "{secret}");
    let key = secret.split_once('.').unwrap().1.to_owned();
    assert!(
        page.html.contains("2026-12-25 09:00 UTC"),
        "its expiry is shown"
    );
    assert_eq!(w.count(Action::ApiTokenCreated), 1);

    // It works as a bearer token (with its read-only role).
    assert_eq!(bearer(&w, &secret, "/api/suppliers").await, StatusCode::OK);
    assert_eq!(
        bearer(&w, &secret, "/api/users").await,
        StatusCode::FORBIDDEN
    );

    // Listed, never with its secret or hash: on the API and on the page.
    let list = w
        .request(Method::GET, "/api/tokens", Some(&admin), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let t = &list.body["tokens"][0];
    assert_eq!(
        (
            t["name"].as_str(),
            t["role"].as_str(),
            t["revoked"].is_null()
        ),
        (Some("ledger export"), Some("read_only"), true)
    );
    assert_eq!(t["created"], "2026-11-25T09:00:00Z");
    assert_eq!(t["expires"], "2026-12-25T09:00:00Z");
    let mut fields: Vec<_> = t.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created", "expires", "id", "name", "revoked", "role"]
    );
    assert!(!list.text.contains(&key));
    let id = t["id"].as_str().unwrap().to_owned();
    let page = open(&w, &admin, "/admin/tokens").await;
    assert!(page.html.contains("ledger export") && page.html.contains("data-state=\"live\""));
    assert!(!page.html.contains(&key), "the secret is shown once only");

    // A requester: refused (403 before the form is read), nothing made.
    let requester = w.login(0, Role::Requester).await;
    assert_eq!(
        open(&w, &requester, "/admin/tokens").await.status,
        StatusCode::FORBIDDEN
    );
    let page = post(
        &w,
        &requester,
        "/admin/tokens",
        &[("name", "x"), ("role", "read_only"), ("days", "1")],
    )
    .await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let page = post(&w, &requester, "/admin/tokens", &[("bogus", "1")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = post(
        &w,
        &requester,
        &format!("/admin/tokens/{id}/revoke"),
        BUTTON,
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(w.count(Action::ApiTokenCreated), 1);

    // Another organisation's admin: not found, not listed; the token still works.
    let stranger = w.login(1, Role::Admin).await;
    let page = post(&w, &stranger, &format!("/admin/tokens/{id}/revoke"), BUTTON).await;
    assert_eq!(
        (page.status, page.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let theirs = w
        .request(Method::GET, "/api/tokens", Some(&stranger), None)
        .await;
    assert_eq!(theirs.body["tokens"], json!([]));
    assert!(
        !open(&w, &stranger, "/admin/tokens")
            .await
            .html
            .contains("ledger export")
    );
    assert_eq!(bearer(&w, &secret, "/api/suppliers").await, StatusCode::OK);

    // Revoked on the page: refused at once, recorded, listed as revoked.
    let page = post(&w, &admin, &format!("/admin/tokens/{id}/revoke"), BUTTON).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), Some("/admin/tokens?done=revoked"));
    assert_eq!(w.count(Action::ApiTokenRevoked), 1);
    assert_eq!(
        bearer(&w, &secret, "/api/suppliers").await,
        StatusCode::UNAUTHORIZED
    );
    let page = open(&w, &admin, "/admin/tokens?done=revoked").await;
    assert!(page.html.contains("data-notice=\"revoked\""));
    assert!(page.html.contains("data-state=\"revoked\""));
    assert!(!page.html.contains(&format!("/admin/tokens/{id}/revoke")));
    let list = w
        .request(Method::GET, "/api/tokens", Some(&admin), None)
        .await;
    assert!(list.body["tokens"][0]["revoked"].is_string());
    w.close().await;
}
