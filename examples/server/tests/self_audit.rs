#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `procuhelp-server self-audit` against the embedded default: it passes on a correct
//! deployment (seeded, backed up, drilled) and names each failure on deliberately broken
//! ones — FORCE RLS off, weak headers, an old backup, a broken audit chain — and the
//! backlog it keeps is updated, not duplicated, from run to run.

mod common;

use std::path::{Path, PathBuf};

use common::{run, superuser};
use procuhelp_tenancy::embedded::LocalCluster;

fn dirs() -> (PathBuf, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("ph-self-audit-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    (
        dir.join("data"),
        PathBuf::from(format!("/dev/shm/ph-repo-{id}")),
        dir.join("report"),
    )
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("self-audit.json")).unwrap()).unwrap()
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

fn finding_keys(report: &serde_json::Value, id: &str) -> Vec<String> {
    check(report, id)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn with_superuser(data: &Path, sql: &[&str]) {
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = superuser(&cluster, LocalCluster::DATABASE).await;
    for statement in sql {
        let done = sqlx::raw_sql(statement).execute(&su).await.unwrap();
        if statement.starts_with("UPDATE") {
            assert!(done.rows_affected() > 0, "{statement}");
        }
    }
    su.close().await;
    cluster.stop().await.unwrap();
}

/// A tiny plain-HTTP origin answering with weak headers (as an edge that strips them).
async fn weak_origin() -> u16 {
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async {
            (
                [
                    ("content-security-policy", "default-src * 'unsafe-inline'"),
                    ("x-content-type-options", "nosniff"),
                ],
                "ok",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_a_correct_deployment_and_names_each_deliberate_break() {
    let (data, repo, out) = dirs();
    let (d, r, o) = (
        data.to_str().unwrap().to_owned(),
        repo.to_str().unwrap().to_owned(),
        out.to_str().unwrap().to_owned(),
    );
    run(&["seed-demo", "--data-dir", &d]).await.unwrap();
    run(&["backup", "run", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    run(&["backup", "drill", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    // Its certificate, as `serve` makes it on first start.
    procuhelp_server::tls::install_crypto_provider();
    procuhelp_server::tls::load_or_create(&data, "127.0.0.1").unwrap();
    // Both demo organisations require MFA (else the MFA check warns, which is no failure).
    with_superuser(&data, &["UPDATE app.organisations SET mfa_required = true"]).await;

    // 1. The correct deployment: no check fails.
    let base = [
        "self-audit",
        "--out",
        &o,
        "--data-dir",
        &d,
        "--backup-repo",
        &r,
    ];
    let verdict = run(&base).await;
    let first = report(&out);
    for c in first["checks"].as_array().unwrap() {
        if c["id"] == "dependencies" {
            continue; // what the build recorded, below
        }
        assert_ne!(c["status"], "fail", "{c:#}");
    }
    // The build recorded cargo-deny's result (CI runs scripts/deny.sh before building).
    let deny = env!("PROCUHELP_DENY_RESULT");
    assert_eq!(check(&first, "dependencies")["details"]["cargo_deny"], deny);
    if deny == "passed" {
        verdict.unwrap();
        assert_eq!(first["verdict"], "pass");
    }
    // 31 sections, the LLM ones not applicable, each section with a status.
    let sections = first["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 31);
    assert_eq!(
        sections
            .iter()
            .filter(|s| s["status"] == "not_applicable")
            .count(),
        10
    );
    // Intact chains; without --trusted-key the deployment's own signer was trusted, and
    // the check says so (a warning, not a failure).
    assert_ne!(check(&first, "audit_chains")["status"], "fail");
    assert!(finding_keys(&first, "audit_chains").contains(&"key-not-pinned".to_owned()));
    assert!(
        std::fs::read_to_string(out.join("self-audit.html"))
            .unwrap()
            .contains("A01 Broken Access Control")
    );

    // 2. Broken: FORCE RLS off, an audit event altered behind the triggers' back, weak
    // headers at the served origin, and a backup older than the policy allows.
    with_superuser(
        &data,
        &[
            "ALTER TABLE app.suppliers NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE app.audit_events DISABLE TRIGGER USER",
            "UPDATE app.audit_events SET target = 'forged' WHERE seq = 1",
            "DO $$ DECLARE t text; BEGIN
               FOR t IN SELECT tgname FROM pg_trigger
                        WHERE tgrelid = 'app.audit_events'::regclass AND NOT tgisinternal LOOP
                 EXECUTE format('ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER %I', t);
               END LOOP; END $$",
        ],
    )
    .await;
    let port = weak_origin().await;
    let url = format!("http://127.0.0.1:{port}");
    let broken = [&base[..], &["--url", &url, "--backup-max-age-hours", "0"]].concat();
    let err = run(&broken).await.unwrap_err();
    assert!(format!("{err:#}").contains("self-audit failed"), "{err:#}");
    let second = report(&out);
    assert_eq!(second["verdict"], "fail");
    let rls = finding_keys(&second, "rls_posture");
    let rls_key = rls
        .iter()
        .find(|k| k.starts_with("table app.suppliers"))
        .expect("RLS finding")
        .clone();
    let chains = finding_keys(&second, "audit_chains");
    assert!(chains.iter().any(|k| k.starts_with("chain:")), "{chains:?}");
    let headers = finding_keys(&second, "security_headers");
    for k in [
        "header:strict-transport-security",
        "header:content-security-policy",
        "header:frame-ancestors",
    ] {
        assert!(headers.contains(&k.to_owned()), "{k} not in {headers:?}");
    }
    assert!(finding_keys(&second, "backups").contains(&"backup-age".to_owned()));
    for id in ["rls_posture", "audit_chains", "security_headers", "backups"] {
        assert_eq!(check(&second, id)["status"], "fail", "{id}");
    }
    // The sections those checks cover fail too.
    let a01 = second["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "A01")
        .unwrap();
    assert_eq!(a01["status"], "fail");

    // 3. The backlog: a second broken run updates the same entries; fixing RLS resolves
    // its entry and keeps it.
    let backlog = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("backlog.json")).unwrap()).unwrap()
    };
    let before = backlog(&out)["findings"].as_object().unwrap().len();
    run(&broken).await.unwrap_err();
    let again = backlog(&out);
    assert_eq!(again["findings"].as_object().unwrap().len(), before);
    let rls = &again["findings"][format!("rls_posture:{rls_key}")];
    assert_eq!(rls["status"], "open");
    assert_ne!(rls["first_seen"], rls["last_seen"]);
    with_superuser(
        &data,
        &["ALTER TABLE app.suppliers FORCE ROW LEVEL SECURITY"],
    )
    .await;
    run(&broken).await.unwrap_err();
    let fixed = backlog(&out);
    assert_eq!(
        fixed["findings"][format!("rls_posture:{rls_key}")]["status"],
        "resolved"
    );
    assert_eq!(fixed["findings"].as_object().unwrap().len(), before);

    let _ = std::fs::remove_dir_all(data.parent().unwrap());
    let _ = std::fs::remove_dir_all(&repo);
}
