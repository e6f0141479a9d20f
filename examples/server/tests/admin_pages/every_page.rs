//! Every page of the route table, opened by a signed-in admin (and the auditor): the
//! hardened headers, never cached, and no script, style or event handler written into
//! the markup (the strict CSP would refuse them; the browser journeys check what runs).

use axum::http::{Method, StatusCode};
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;

use crate::common::{Session, World, world};
use crate::forms::open;

/// The pages a GET opens: the route table's non-API routes, ids filled from this
/// organisation.
fn pages(ids: &[(&str, String)]) -> Vec<String> {
    procuhelp_server::api::endpoints()
        .iter()
        .filter(|e| e.method == "GET")
        .filter(|e| {
            ![
                "/api/",
                "/sso/",
                "/scim/",
                "/operator/",
                "/.well-known/",
                "/metrics",
            ]
            .iter()
            .any(|p| e.path.starts_with(p))
                && e.path != "/static/app.css"
        })
        .filter_map(|e| {
            let mut path = e.path.to_owned();
            for (name, id) in ids {
                path = path.replace(&format!("{{{name}}}"), id);
            }
            (!path.contains('{')).then_some(path)
        })
        .collect()
}

async fn check(w: &World, who: &Session, path: &str) {
    let page = open(w, who, path).await;
    // A page that needs a link's token answers without one with its own refusal (410).
    assert!(
        !page.status.is_server_error(),
        "{path}: {} {}",
        page.status,
        page.html
    );
    let h = &page.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{path}: {csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{path}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    assert!(h.contains_key("strict-transport-security"), "{path}");
    if page.status == StatusCode::OK {
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let html = page.html.to_ascii_lowercase();
    for inline in [
        "<script",
        "<style",
        " style=",
        " onclick=",
        " onload=",
        " onerror=",
        "javascript:",
    ] {
        assert!(!html.contains(inline), "{path} has {inline}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_hardened_and_has_no_inline_code() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let supplier = w
        .request(
            Method::POST,
            "/api/suppliers",
            Some(&admin),
            Some(json!({ "name": "Acme", "country": "DE" })),
        )
        .await;
    let supplier = supplier.body["id"].as_str().unwrap().to_owned();
    let contract = w
        .request(
            Method::POST,
            "/api/contracts",
            Some(&admin),
            Some(
                json!({ "supplier": supplier, "title": "Frame", "value_cents": 100,
                         "starts_on": "2027-01-01", "ends_on": "2027-12-31" }),
            ),
        )
        .await;
    let contract = contract.body["id"].as_str().unwrap().to_owned();
    let requester = w.login(0, Role::Requester).await;
    let request = w
        .request(
            Method::POST,
            "/api/requests",
            Some(&requester),
            Some(json!({ "title": "Chairs", "amount_cents": 5000 })),
        )
        .await;
    let request = request.body["id"].as_str().unwrap().to_owned();
    let ids = [
        ("supplier", supplier),
        ("contract", contract),
        ("request", request),
        ("user", w.users[&(0, Role::Requester)].to_string()),
    ];
    let pages = pages(&ids);
    // The admin pages are among them (the walk is not empty by accident).
    for must in [
        "/admin",
        "/admin/sso",
        "/admin/scim",
        "/audit",
        "/users",
        "/suppliers",
    ] {
        assert!(
            pages.iter().any(|p| p == must),
            "{must} not walked: {pages:?}"
        );
    }
    for path in &pages {
        check(&w, &admin, path).await;
    }
    // The auditor: the pages their role opens, the same headers.
    let auditor = w.login(0, Role::Auditor).await;
    for path in [
        "/audit",
        "/suppliers",
        "/requests",
        "/contracts",
        "/account",
        "/admin",
    ] {
        check(&w, &auditor, path).await;
    }
    w.close().await;
}
