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
    let report = procuhelp_audit::verify_export(std::io::Cursor::new(&export)).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.checkpoints_verified >= 1);
    let dir = std::env::temp_dir().join(format!("ph-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let verify = |path: &std::path::Path| {
        let cli = procuhelp_server::cli::Cli::parse_from([
            "procuhelp-server",
            "audit",
            "verify",
            "--file",
            path.to_str().unwrap(),
        ]);
        procuhelp_server::run(cli)
    };
    verify(&file).await.unwrap();
    let text = String::from_utf8(export.clone()).unwrap();
    let tampered = text.replacen("supplier.invited", "supplier.updated", 1);
    assert_ne!(tampered, text);
    std::fs::write(&file, tampered).unwrap();
    let err = verify(&file).await.unwrap_err();
    assert!(err.to_string().contains("NOT intact"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    // The live chain verifies too.
    let log = w.state.audit_log.clone().unwrap();
    assert!(log.verify_live(w.orgs[0]).await.unwrap().is_intact());
    w.close().await;
}
