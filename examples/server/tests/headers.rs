//! Every response — 200, 401, 404, 405, 408, 413, 500 and redirects — carries the full set
//! of browser protections, exactly once each.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::get;
use procuhelp_server::app::{AppState, Limits, harden, redirect_app, routes};
use procuhelp_tenancy::TenantDb;
use tower::ServiceExt;

fn state() -> AppState {
    // Header behaviour must not depend on the database: a pool that never connects.
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(opts);
    let vault_dir = std::env::temp_dir().join(format!(
        "ph-headers-vault-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider> =
        std::sync::Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let cipher = std::sync::Arc::new(procuhelp_server::keys::field_cipher(
        TenantDb::new(pool.clone()),
        vault.clone(),
    ));
    AppState::assemble(
        pool,
        cipher,
        vault,
        std::sync::Arc::new(procuhelp_audit::MemorySink::new()),
        std::sync::Arc::new(procuhelp_core::SystemClock),
        procuhelp_auth::password::PasswordHasher::for_tests(),
    )
}

async fn boom() -> &'static str {
    panic!("internal detail that must not leak")
}

fn test_app() -> Router {
    let limits = Limits {
        max_body_bytes: 1024,
        request_timeout: Duration::from_millis(300),
    };
    harden(
        routes(state()).route("/boom", get(boom)).route(
            "/slow",
            get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }),
        ),
        limits,
    )
}

fn assert_protected(headers: &HeaderMap, context: &str) {
    let one = |name: &str| -> String {
        let values: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(
            values.len(),
            1,
            "{context}: {name} must appear exactly once, got {values:?}"
        );
        values[0].to_str().unwrap().to_owned()
    };
    let csp = one("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{context}: CSP lacks {directive}: {csp}"
        );
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{context}: {csp}"
    );
    assert!(
        csp.contains("script-src 'self' 'nonce-"),
        "{context}: {csp}"
    );
    let hsts = one("strict-transport-security");
    let max_age: u64 = hsts
        .split(';')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        max_age >= 31_536_000 && hsts.contains("includeSubDomains"),
        "{context}: {hsts}"
    );
    assert_eq!(one("x-frame-options"), "DENY", "{context}");
    assert_eq!(one("x-content-type-options"), "nosniff", "{context}");
    let referrer = one("referrer-policy");
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer.as_str()),
        "{context}"
    );
    let permissions = one("permissions-policy");
    assert!(
        permissions.contains("camera=()") && permissions.contains("geolocation=()"),
        "{context}: {permissions}"
    );
    assert_eq!(
        one("cross-origin-opener-policy"),
        "same-origin",
        "{context}"
    );
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn ok_page_carries_headers_and_its_nonce() {
    let (status, headers, body) = send(test_app(), get_req("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_protected(&headers, "200");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(
        body.contains(&format!("<style nonce=\"{nonce}\">")),
        "page style must use the response's nonce"
    );
}

#[tokio::test]
async fn not_found() {
    let (status, headers, _) = send(test_app(), get_req("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_protected(&headers, "404");
}

#[tokio::test]
async fn method_not_allowed() {
    let req = Request::builder()
        .method(Method::DELETE)
        .uri("/healthz")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(test_app(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_protected(&headers, "405");
}

#[tokio::test]
async fn payload_too_large() {
    let req = Request::post("/api/suppliers")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "4096")
        .body(Body::from(vec![b'x'; 4096]))
        .unwrap();
    let (status, headers, _) = send(test_app(), req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_protected(&headers, "413");
}

#[tokio::test]
async fn panic_becomes_an_opaque_500() {
    let (status, headers, body) = send(test_app(), get_req("/boom")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_protected(&headers, "500");
    assert!(!body.contains("internal detail"), "{body}");
}

#[tokio::test]
async fn timeout() {
    let (status, headers, _) = send(test_app(), get_req("/slow")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_protected(&headers, "408");
}

#[tokio::test]
async fn database_down_is_503_with_headers() {
    let (status, headers, body) = send(test_app(), get_req("/healthz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_protected(&headers, "503");
    assert_eq!(
        body,
        r#"{"code":"database_unavailable","error":"database unavailable"}"#
    );
}

#[tokio::test]
async fn tenant_endpoints_fail_closed_without_a_session() {
    for method in [Method::GET, Method::POST] {
        let req = Request::builder()
            .method(method)
            .uri("/api/suppliers")
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = send(test_app(), req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_protected(&headers, "401");
    }
}

#[tokio::test]
async fn redirect_to_https_ignores_the_host_header() {
    let app = redirect_app("127.0.0.1".to_owned(), 8443);
    let req = Request::get("/suppliers?page=2")
        .header(header::HOST, "evil.example")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(app, req).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        headers[header::LOCATION],
        "https://127.0.0.1:8443/suppliers?page=2"
    );
    assert_protected(&headers, "308");
}
