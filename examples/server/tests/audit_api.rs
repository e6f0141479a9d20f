//! The audit trail through the server: admins read, filter and export it (each read is
//! itself recorded), others are refused, exports verify offline and tampering is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use clap::Parser as _;
use common::world;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_read_filter_and_export_the_trail_and_reading_is_recorded() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::POST,
            "/api/suppliers",
            Some(&admin),
            Some(json!({ "name": "<script>alert(1)</script>", "country": "DE" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let _ = w.try_login(0, "nobody@org0.test", "wrong password").await;

    let r = w
        .request(Method::GET, "/api/audit", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let actions: Vec<String> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "auth.login_succeeded",
        "supplier.invited",
        "auth.login_failed",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    // Filtered by action; the previous read is itself in the trail.
    let r = w
        .request(
            Method::GET,
            "/api/audit?action=audit.read",
            Some(&admin),
            None,
        )
        .await;
    let reads = r.body["events"].as_array().unwrap();
    assert!(!reads.is_empty(), "reading the trail is recorded");
    assert!(reads.iter().all(|e| e["action"] == "audit.read"));
    assert_eq!(reads[0]["actor"]["type"], "user");
    let r = w
        .request(Method::GET, "/api/audit?action=no.such", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Other roles are refused, and org B's admin sees only org B.
    for role in [Role::Approver, Role::Requester, Role::ReadOnly] {
        let s = w.login(0, role).await;
        let r = w.request(Method::GET, "/api/audit", Some(&s), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
    }
    let admin_b = w.login(1, Role::Admin).await;
    let r = w
        .request(Method::GET, "/api/audit", Some(&admin_b), None)
        .await;
    assert!(!r.body.to_string().contains("alert(1)"));

    // The page escapes what it shows.
    let r = w
        .request_from(Method::GET, "/audit", Some(&admin), None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("supplier.invited"));
    assert!(r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!r.text.contains("<script>alert(1)"));

    // Export, verify offline (library and CLI), then tamper.
    let export = w.export(&admin).await;
    let log = w.state.sdk.audit_log().cloned().unwrap();
    let keys = log.signing_keys().await.unwrap();
    let trust = procuhelp_audit::Trust::pinned(keys.clone()).unwrap();
    let report = procuhelp_audit::verify_export(std::io::Cursor::new(&export), &trust).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.checkpoints_verified >= 1);
    let dir = std::env::temp_dir().join(format!("ph-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let key = hex::encode(keys[0]);
    let verify = |path: &std::path::Path| {
        let cli = procuhelp_server::cli::Cli::parse_from([
            "procuhelp-server",
            "audit",
            "verify",
            "--file",
            path.to_str().unwrap(),
            "--trusted-key",
            &key,
        ]);
        procuhelp_server::run(cli)
    };
    verify(&file).await.unwrap();
    // Without a pinned key the CLI refuses, naming the explicit escape hatch.
    let unpinned = procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "audit",
        "verify",
        "--file",
        file.to_str().unwrap(),
    ]);
    let err = procuhelp_server::run(unpinned).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("--dangerously-trust-embedded-keys"),
        "{err}"
    );
    // A key that did not sign the checkpoints: refused, naming the checkpoint's key.
    let stranger = "11".repeat(32);
    let cli = procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "audit",
        "verify",
        "--file",
        file.to_str().unwrap(),
        "--trusted-key",
        &stranger,
    ]);
    let err = procuhelp_server::run(cli).await.unwrap_err().to_string();
    assert!(err.contains("UntrustedKey") && err.contains(&key), "{err}");
    let text = String::from_utf8(export.clone()).unwrap();
    let tampered = text.replacen("supplier.invited", "supplier.updated", 1);
    assert_ne!(tampered, text);
    std::fs::write(&file, tampered).unwrap();
    let err = verify(&file).await.unwrap_err();
    assert!(err.to_string().contains("NOT intact"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    // The live chain verifies too, against the pinned keys.
    assert!(
        log.verify_live(w.orgs[0], &trust)
            .await
            .unwrap()
            .is_intact()
    );
    w.close().await;
}

/// Issue #11 finding 10: unauthenticated refusals (unknown account, then throttled) from
/// one address grow the trail by a bounded number of rows per window, yet every refusal
/// is still seen by what watches the stream (here the in-memory sink, as the detectors
/// would) and the counts reach the trail in a summary event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_refused_sign_ins_from_one_address_append_a_bounded_number_of_rows() {
    use procuhelp_audit::Action;
    let w = world(PasswordHasher::for_tests()).await;
    let admin_db = w.scratch.admin_pool(1).await.unwrap();
    let from: std::net::SocketAddr = "203.0.113.9:4711".parse().unwrap();
    let attempt = || {
        w.request_from(
            Method::POST,
            "/api/login",
            None,
            Some(json!({ "org": w.orgs[0].to_string(), "email": "nobody@org0.test", "password": "guess" })),
            Some(from),
            &[],
        )
    };
    for n in 0..1000 {
        let r = attempt().await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "attempt {n}: {:?}",
            r.status
        );
    }
    assert_eq!(w.count(Action::LoginFailed), 1000, "every refusal is seen");
    let rows = |sql: &'static str| {
        let pool = admin_db.clone();
        let org = w.orgs[0].as_uuid();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(org)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let written = rows(
        "SELECT count(*) FROM app.audit_events WHERE org_id = $1 AND action = 'auth.login_failed'",
    )
    .await;
    // The throttle lets a few password checks through (each recorded in full, as for a
    // known account, so both take equally long); the rest are throttled and counted.
    assert!(
        written <= 12,
        "1,000 refusals from one address appended {written} rows"
    );
    // After the window the next refusal flushes a summary carrying the counts.
    w.clock.advance(time::Duration::hours(2));
    attempt().await;
    let counted = rows(
        "SELECT coalesce(sum((context::jsonb->>'suppressed')::bigint), 0)::bigint
           FROM app.audit_events WHERE org_id = $1 AND action = 'audit.refusals_aggregated'",
    )
    .await;
    let full = rows(
        "SELECT count(*) FROM app.audit_events WHERE org_id = $1 AND action = 'auth.login_failed'",
    )
    .await;
    assert_eq!(
        full + counted,
        1001,
        "every refusal is in the trail, in full or counted"
    );
    admin_db.close().await;
    w.close().await;
}

/// The HTTP-fed alert detectors see every response with its status, the organisation only
/// once its credential was verified, and the client address (docs/observability.md).
#[tokio::test]
async fn responses_reach_the_alert_observer_with_the_verified_organisation() {
    use procuhelp_audit::HttpResponse;
    use procuhelp_auth::Role;
    use procuhelp_auth::password::PasswordHasher;
    use tower::ServiceExt as _;
    let w = world(PasswordHasher::for_tests()).await;
    let session = w.login(0, Role::Admin).await;
    let seen: std::sync::Arc<std::sync::Mutex<Vec<HttpResponse>>> = Default::default();
    let app = w.app.clone().layer(axum::Extension(
        procuhelp_axum::access_log::ResponseObserver(std::sync::Arc::new({
            let seen = seen.clone();
            move |r: &HttpResponse| seen.lock().unwrap().push(*r)
        })),
    ));
    let client: std::net::SocketAddr = "203.0.113.9:4711".parse().unwrap();
    for cookie in [
        Some(format!(
            "{}={}",
            procuhelp_auth::session::COOKIE_NAME,
            session.cookie
        )),
        Some(format!("{}=forged", procuhelp_auth::session::COOKIE_NAME)),
        None,
    ] {
        let mut req = axum::http::Request::get("/api/suppliers");
        if let Some(c) = &cookie {
            req = req.header(axum::http::header::COOKIE, c);
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(client));
        app.clone().oneshot(req).await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let summary: Vec<(u16, Option<procuhelp_core::OrgId>, Option<std::net::IpAddr>)> =
        seen.iter().map(|r| (r.status, r.org, r.source)).collect();
    assert_eq!(
        summary,
        vec![
            (200, Some(w.orgs[0]), Some(client.ip())),
            (401, None, Some(client.ip())),
            (401, None, Some(client.ip())),
        ]
    );
    w.close().await;
}
