//! SCIM's routers mounted in an embedder's own state (`FromRef<EmbedderState> for Sdk`),
//! driven with `oneshot` on a real PostgreSQL: the admins issue a token through
//! `admin_table`, the identity provider provisions through `scim_routes`, everything is
//! recorded through the `Sdk`'s one audit sink and clock, a refusing trail keeps nothing,
//! and failed requests give their pooled connection back. The whole SCIM protocol is
//! tested end to end by `examples/server/tests/scim.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{EmbedderState, World, request, sdk_on, send, world};
use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_auth::{Permission, Role};
use procuhelp_axum::scim::{self, SCIM_CONTENT_TYPE};
use procuhelp_axum::{Access, Sdk};
use serde_json::{Value, json};

/// The embedder's app: sign-in, and SCIM's two routers.
fn scim_app(sdk: Sdk) -> Router {
    Router::new()
        .merge(procuhelp_axum::account::routes())
        .merge(scim::admin_routes())
        .merge(scim::scim_routes())
        .with_state(EmbedderState {
            sdk,
            greeting: "hello",
        })
}

/// An admin of `org` issues a SCIM token: (token id, secret, tenant URL path).
async fn issue_token(app: &Router, w: &World, org: usize) -> (String, String, String) {
    let admin = w.login_on(app, org, Role::Admin).await;
    let reply = send(
        app,
        request(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "Entra", "days": 30 })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let text = |k: &str| reply.body[k].as_str().unwrap().to_owned();
    (text("id"), text("token"), text("tenant_url"))
}

fn scim_request(method: Method, path: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, SCIM_CONTENT_TYPE)
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

fn new_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
    })
}

#[tokio::test]
async fn an_embedders_state_serves_scim_and_records_through_the_sdk() {
    let w = world().await;
    let app = scim_app(w.sdk.clone());

    // Only a holder of manage_sso issues tokens.
    let approver = w.login_on(&app, 0, Role::Approver).await;
    let reply = send(
        &app,
        request(
            Method::POST,
            "/api/scim/tokens",
            Some(&approver),
            Some(json!({ "name": "x", "days": 1 })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let (token_id, secret, tenant) = issue_token(&app, &w, 0).await;
    assert_eq!(tenant, format!("/scim/v2/{}", w.orgs[0]));
    let reply = send(
        &app,
        scim_request(
            Method::POST,
            &format!("{tenant}/Users"),
            &secret,
            Some(new_user("ada@contoso.com")),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("https://localhost{tenant}/Users/{id}").as_str()
    );

    // Recorded through the Sdk's sink, at the Sdk's clock, by the token as a service
    // account, marked as SCIM's.
    let events = w.audit.events();
    let issued = events
        .iter()
        .find(|e| e.action == Action::ScimTokenIssued)
        .expect("the token's issue is recorded");
    assert_eq!(issued.org, Some(w.orgs[0]));
    let provisioned = events
        .iter()
        .find(|e| e.action == Action::ScimUserProvisioned)
        .expect("the provisioning is recorded");
    assert_eq!(
        provisioned.actor,
        Actor::ServiceAccount {
            id: token_id.parse().unwrap()
        }
    );
    assert_eq!(provisioned.at, w.sdk.now());
    assert_eq!(provisioned.outcome, Outcome::Success);
    assert_eq!(provisioned.context["via"], "scim");

    // Org A's token on org B's tenant URL, an unknown org, no token: one 401.
    for (path, token) in [
        (format!("/scim/v2/{}/Users", w.orgs[1]), secret.as_str()),
        (
            format!("/scim/v2/{}/Users", uuid::Uuid::now_v7()),
            secret.as_str(),
        ),
        (format!("{tenant}/Users"), "not-a-token"),
    ] {
        let reply = send(&app, scim_request(Method::GET, &path, token, None)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            reply.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"scim\""
        );
        assert_eq!(reply.body["detail"], "authentication required");
    }
    w.close().await;
}

#[tokio::test]
async fn a_refusing_audit_trail_keeps_nothing_of_a_scim_change() {
    let w = world().await;
    let app = scim_app(w.sdk.clone());
    let (_, secret, tenant) = issue_token(&app, &w, 0).await;

    w.audit.set_failing(true);
    let reply = send(
        &app,
        scim_request(
            Method::POST,
            &format!("{tenant}/Users"),
            &secret,
            Some(new_user("bob@contoso.com")),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["status"], "503");
    w.audit.set_failing(false);

    let reply = send(
        &app,
        scim_request(
            Method::GET,
            &format!("{tenant}/Users?filter=userName%20eq%20%22bob@contoso.com%22"),
            &secret,
            None,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["totalResults"], 0);
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scim_requests_give_their_connection_back() {
    let w = world().await;
    let (_, secret, tenant) = issue_token(&scim_app(w.sdk.clone()), &w, 0).await;
    // SCIM's transactions through a pool that counts the PostgreSQL sessions it opens.
    const POOL: u32 = 2;
    let (pool, opened) = w.counting_pool(POOL).await;
    let app = scim_app(sdk_on(pool.clone(), &w.sdk));

    // Each fails after its transaction is open: unknown ids, a malformed PATCH, a user
    // body with an attribute we refuse.
    for i in 0..10 {
        let unknown = uuid::Uuid::now_v7();
        let (method, path, body, status) = match i % 3 {
            0 => (
                Method::GET,
                format!("{tenant}/Users/{unknown}"),
                None,
                StatusCode::NOT_FOUND,
            ),
            1 => (
                Method::PATCH,
                format!("{tenant}/Groups/{unknown}"),
                Some(json!({ "Operations": "nope" })),
                StatusCode::BAD_REQUEST,
            ),
            _ => (
                Method::POST,
                format!("{tenant}/Users"),
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "eve@contoso.com",
                    "roles": [{"value": "admin"}],
                })),
                StatusCode::BAD_REQUEST,
            ),
        };
        let reply = send(&app, scim_request(method, &path, &secret, body)).await;
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
    }
    // Let the last background rollback finish, then one more request.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let reply = send(
        &app,
        scim_request(Method::GET, &format!("{tenant}/Users"), &secret, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        opened.load(Ordering::SeqCst) <= POOL as usize,
        "{} connections opened for a pool of {POOL}: failed requests closed theirs",
        opened.load(Ordering::SeqCst)
    );
    pool.close().await;
    w.close().await;
}

/// A refused SCIM token (well-formed but unknown, another organisation's, for an unknown
/// organisation) is refused by one autocommit statement: no transaction is opened (none
/// begun and rolled back in `pg_stat_database`) and none is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_scim_tokens_open_no_transaction() {
    let w = world().await;
    let (_, secret_a, tenant_a) = issue_token(&scim_app(w.sdk.clone()), &w, 0).await;
    let (_, secret_b, _) = issue_token(&scim_app(w.sdk.clone()), &w, 1).await;
    let (pool, _) = w.counting_pool(2).await;
    let app = scim_app(sdk_on(pool.clone(), &w.sdk));
    // Flush every other session's statistics first (a closed session's are flushed as it
    // ends), then count.
    w.runtime.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let before = rollbacks(&w).await;
    let unknown = procuhelp_auth::session::SessionToken::generate().unwrap();
    const N: usize = 5;
    for _ in 0..N {
        for token in [unknown.expose(), secret_b.as_str()] {
            let reply = send(
                &app,
                scim_request(Method::GET, &format!("{tenant_a}/Users"), token, None),
            )
            .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        }
    }
    // An unknown organisation: its one failed statement is the only rollback counted.
    let reply = send(
        &app,
        scim_request(
            Method::GET,
            &format!("/scim/v2/{}/Users", procuhelp_core::OrgId::new()),
            &secret_a,
            None,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The right token still works.
    let reply = send(
        &app,
        scim_request(Method::GET, &format!("{tenant_a}/Users"), &secret_a, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    pool.close().await;
    // A closed session's statistics reach pg_stat_database when its backend has exited:
    // under a loaded machine that can take longer than a fixed pause. Wait for the one
    // expected rollback (bounded), then give stragglers the same time to show.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rollbacks(&w).await - before < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        rollbacks(&w).await - before,
        1,
        "refused SCIM tokens opened (and rolled back) transactions; only the unknown \
         organisation's failed statement counts"
    );
    w.close().await;
}

/// Transactions rolled back in the scratch database so far (`pg_stat_database`).
async fn rollbacks(w: &World) -> i64 {
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

#[test]
fn the_admin_routes_are_in_the_permission_table() {
    let table = scim::admin_table::<EmbedderState>();
    let endpoints: Vec<_> = table
        .endpoints()
        .iter()
        .map(|e| (e.method, e.path, e.access))
        .collect();
    let sso = Access::Needs(Permission::ManageSso);
    assert_eq!(
        endpoints,
        [
            ("POST", "/api/users/{user}/scim-handover", sso),
            ("GET", "/api/scim/tokens", sso),
            ("POST", "/api/scim/tokens", sso),
            ("POST", "/api/scim/tokens/{scim_token}/revoke", sso),
            ("GET", "/api/scim/settings", sso),
            ("PUT", "/api/scim/settings", sso),
        ]
    );
    // The SCIM side takes the SCIM token only: none of its routes is in a table.
    assert!(
        scim::SCIM_ENDPOINTS
            .iter()
            .all(|(_, p)| !endpoints.iter().any(|(_, e, _)| e == p))
    );
}
