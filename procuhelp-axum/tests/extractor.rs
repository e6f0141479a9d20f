//! The extractor and the mounted routers, driven in-process with `oneshot` on a real
//! PostgreSQL, in an embedder's own state (`FromRef<EmbedderState> for Sdk`).
//!
//! Bad input (issue #12): a missing, malformed, expired, revoked or other-organisation
//! credential gets the same fast 401 and leaves no transaction open and no connection
//! closed; a missing CSRF header gets 403 before the database is asked; no handler runs
//! without a verified tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Session, app, cookie, offline_sdk, request, sdk_on, send, world};
use procuhelp_auth::Role;
use procuhelp_auth::session::Credential;
use serde_json::json;

/// The one answer every refused credential gets.
fn unauthenticated() -> serde_json::Value {
    json!({ "code": "unauthenticated", "error": "authentication required" })
}

fn get_with_cookie(path: &str, value: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie(value))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_get_one_401_and_leave_no_transaction_or_closed_connection() {
    let w = world().await;
    // Request transactions through a pool that counts the PostgreSQL sessions it opens.
    const POOL: u32 = 2;
    let (pool, opened) = w.counting_pool(POOL).await;
    let counted = app(sdk_on(pool.clone(), &w.sdk));

    let [a, b] = w.orgs;
    let live = w.login(0, Role::Admin).await;
    let token = live.cookie.split_once('.').unwrap().1.to_owned();
    let revoked = w.login(0, Role::Approver).await;
    let reply = send(
        &w.app,
        request(Method::POST, "/api/logout", Some(&revoked), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let unknown = Credential::generate(a).unwrap().expose();
    // From here on only the counted pool reaches the database: its transactions are the
    // database's (the statistics of a closed session are flushed as it ends).
    w.runtime.close().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rollbacks_before = rollbacks(&w).await;
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "missing",
            Request::get("/api/things").body(Body::empty()).unwrap(),
        ),
        (
            "malformed cookie",
            get_with_cookie("/api/things", "not-a-credential"),
        ),
        (
            "malformed bearer",
            Request::get("/api/things")
                .header(header::AUTHORIZATION, "Basic Zm9vOmJhcg==")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "two session cookies",
            Request::get("/api/things")
                .header(
                    header::COOKIE,
                    format!("{}; {}", cookie(&live.cookie), cookie(&unknown)),
                )
                .body(Body::empty())
                .unwrap(),
        ),
        ("unknown token", get_with_cookie("/api/things", &unknown)),
        (
            "unknown bearer token",
            Request::get("/api/things")
                .header(header::AUTHORIZATION, format!("Bearer {unknown}"))
                .body(Body::empty())
                .unwrap(),
        ),
        // Org A's session presented as org B's: row-level security finds nothing.
        (
            "other organisation",
            get_with_cookie("/api/things", &format!("{b}.{token}")),
        ),
        ("revoked", get_with_cookie("/api/things", &revoked.cookie)),
    ];
    for _ in 0..10 {
        for (what, req) in &cases {
            let mut again = Request::builder().method(req.method()).uri(req.uri());
            for (k, v) in req.headers() {
                again = again.header(k, v);
            }
            let reply = send(&counted, again.body(Body::empty()).unwrap()).await;
            assert_eq!(
                (reply.status, &reply.body),
                (StatusCode::UNAUTHORIZED, &unauthenticated()),
                "{what}"
            );
        }
    }
    // An unknown organisation: the same answer (the statement that would enter it fails,
    // which PostgreSQL counts as a rolled-back transaction: not counted below).
    let reply = send(
        &counted,
        get_with_cookie(
            "/api/things",
            &format!("{}.{token}", procuhelp_core::OrgId::new()),
        ),
    )
    .await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::UNAUTHORIZED, &unauthenticated()),
        "unknown organisation"
    );
    // Expired: idle past the session policy (30 minutes); the clock is the SDK's.
    w.clock.advance(time::Duration::minutes(31));
    let reply = send(&counted, get_with_cookie("/api/things", &live.cookie)).await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::UNAUTHORIZED, &unauthenticated()),
        "expired"
    );

    // No refused request left a transaction open, and none closed its connection: the
    // pool never had to open more than it holds.
    let opened = opened.load(Ordering::SeqCst);
    assert!(
        opened <= POOL as usize,
        "{} refused requests opened {opened} PostgreSQL sessions (pool of {POOL})",
        cases.len() * 10 + 1
    );
    // No transaction was opened for any of them: none was rolled back (a refusal in a
    // tenant transaction would have rolled one back each).
    pool.close().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        rollbacks(&w).await - rollbacks_before,
        1,
        "refused credentials opened (and rolled back) transactions; only the unknown \
         organisation's failed statement counts"
    );
    let owner = w.scratch.owner_pool(1).await.unwrap();
    let in_transaction: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = $1
           AND state LIKE 'idle in transaction%'",
    )
    .bind(w.scratch.runtime_role().name())
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(
        in_transaction, 0,
        "a refused request left a transaction open"
    );
    owner.close().await;
    w.close().await;
}

/// Transactions rolled back in the scratch database so far (`pg_stat_database`).
async fn rollbacks(w: &common::World) -> i64 {
    let owner = w.scratch.owner_pool(1).await.unwrap();
    let mut conn = owner.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    let n = sqlx::query_scalar(
        "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    owner.close().await;
    n
}

#[tokio::test]
async fn credential_shape_and_csrf_are_refused_before_the_database_is_asked() {
    // The database is unreachable: any answer but a 503 was decided without it.
    let app = app(offline_sdk());
    let valid_shape = Credential::generate(procuhelp_core::OrgId::new())
        .unwrap()
        .expose();
    let started = Instant::now();
    for req in [
        Request::get("/api/things").body(Body::empty()).unwrap(),
        get_with_cookie("/api/things", "garbage"),
        Request::get("/api/things")
            .header(header::AUTHORIZATION, "Bearer garbage")
            .body(Body::empty())
            .unwrap(),
        Request::get("/api/things")
            .header(
                header::COOKIE,
                format!("{}; {}", cookie(&valid_shape), cookie(&valid_shape)),
            )
            .body(Body::empty())
            .unwrap(),
    ] {
        let reply = send(&app, req).await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::UNAUTHORIZED, unauthenticated())
        );
    }
    // A cookie-authenticated change without (or with a wrong) anti-CSRF header.
    for csrf in [None, Some("wrong")] {
        let mut req = Request::post("/api/touch").header(header::COOKIE, cookie(&valid_shape));
        if let Some(v) = csrf {
            req = req.header(procuhelp_axum::CSRF_HEADER, v);
        }
        let reply = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(
            (reply.status, reply.body),
            (
                StatusCode::FORBIDDEN,
                json!({ "code": "csrf", "error": "csrf token missing or invalid" })
            )
        );
    }
    // Fast: nothing waited for the (unreachable) pool's 200 ms acquire timeout.
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mounted_account_router_signs_in_and_the_extractor_serves_the_tenant() {
    let w = world().await;
    let s = w.login(0, Role::Requester).await;
    let reply = send(&w.app, request(Method::GET, "/api/session", Some(&s), None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["org"], w.orgs[0].to_string());
    assert_eq!(reply.body["role"], "requester");
    // The embedder's own route, in the credential's tenant, with its own state.
    let reply = send(&w.app, request(Method::GET, "/api/things", Some(&s), None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["greeting"], "hello");
    assert_eq!(reply.body["org"], w.orgs[0].to_string());
    // A change with the CSRF token passes.
    let reply = send(&w.app, request(Method::POST, "/api/touch", Some(&s), None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // A wrong password: the opaque refusal, with its code.
    let reply = send(
        &w.app,
        request(
            Method::POST,
            "/api/login",
            None,
            Some(json!({ "org": w.orgs[0].to_string(), "email": common::email(0, Role::Admin), "password": "wrong" })),
        ),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body),
        (
            StatusCode::UNAUTHORIZED,
            json!({ "code": "invalid_credentials", "error": "invalid credentials" })
        )
    );
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_missing_permission_with_403() {
    let w = world().await;
    let reader = w.login(0, Role::ReadOnly).await;
    let admin = w.login(0, Role::Admin).await;
    let forbidden = json!({ "code": "forbidden", "error": "forbidden" });
    // The admin router: manage_users.
    let reply = send(
        &w.app,
        request(Method::GET, "/api/users", Some(&reader), None),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::FORBIDDEN, forbidden.clone())
    );
    let reply = send(
        &w.app,
        request(Method::GET, "/api/users", Some(&admin), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // Org B's users are not org A's admin's to see.
    let listed = reply.body["users"].to_string();
    assert!(!listed.contains("@org1.test"), "{listed}");
    // The audit router: read_audit_log, which a requester lacks.
    let requester: Session = w.login(0, Role::Requester).await;
    let reply = send(
        &w.app,
        request(Method::GET, "/api/audit", Some(&requester), None),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::FORBIDDEN, forbidden)
    );
    w.close().await;
}

#[test]
fn every_sdk_router_lists_its_routes() {
    type S = common::EmbedderState;
    for (name, table) in [
        ("account", procuhelp_axum::account::table::<S>()),
        ("admin", procuhelp_axum::admin::table::<S>()),
        ("audit", procuhelp_axum::audit::table::<S>()),
    ] {
        assert!(!table.endpoints().is_empty(), "{name}");
    }
    let all = procuhelp_axum::account::table::<S>()
        .merge(procuhelp_axum::admin::table())
        .merge(procuhelp_axum::audit::table());
    let mut seen = std::collections::HashSet::new();
    for e in all.endpoints() {
        assert!(
            seen.insert((e.method, e.path)),
            "{} {} twice",
            e.method,
            e.path
        );
    }
}
