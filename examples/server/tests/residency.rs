//! Data residency (issue #14, point 6): a deployment serves only the organisations of its
//! own region — another region's organisation is, to it, an unknown one — and the
//! posture check fails when an EU organisation's data would leave the EU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{PASSWORD, email, run, world};
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_core::OrgId;
use procuhelp_tenancy::residency::{self, Region};
use serde_json::json;

async fn login(w: &common::World, org: OrgId, email: &str) -> common::Reply {
    w.request(
        Method::POST,
        "/api/login",
        None,
        Some(json!({ "org": org.to_string(), "email": email, "password": PASSWORD })),
    )
    .await
}

#[tokio::test]
async fn an_organisation_of_another_region_is_refused_as_unknown() {
    let w = world(PasswordHasher::for_tests()).await;
    // An organisation of region us, with an admin, on this eu deployment.
    let us = procuhelp_tenancy::create_organisation_in(&w.owner, "US Org", Region::Us)
        .await
        .unwrap();
    let superuser = w.scratch.admin_pool(1).await.unwrap();
    sqlx::query(
        "INSERT INTO app.users (org_id, id, email, display_name, role, password_hash)
         SELECT $1, gen_random_uuid(), 'admin@us.test', 'US admin', 'admin', password_hash
         FROM app.users WHERE email = $2",
    )
    .bind(us.as_uuid())
    .bind(email(0, Role::Admin))
    .execute(&superuser)
    .await
    .unwrap();
    superuser.close().await;

    // The database will not enter it, and sign-in answers exactly as for an organisation
    // that does not exist.
    let err = w.state.sdk.tenants().begin(us).await.unwrap_err();
    assert!(
        matches!(err, procuhelp_tenancy::Error::UnknownOrg(o) if o == us),
        "{err:?}"
    );
    let refused = login(&w, us, "admin@us.test").await;
    let unknown = login(&w, OrgId::new(), "admin@us.test").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(
        (refused.status, refused.text),
        (unknown.status, unknown.text)
    );

    // A session of an eu organisation stops being served when the deployment's region
    // changes (the session check reads it), and is served again when it changes back.
    let session = w.login(0, Role::Admin).await;
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&session), None)
            .await
            .status,
        StatusCode::OK
    );
    // A one-round-trip read remembers the verified session (for up to 15 s)...
    let r = w
        .request(Method::GET, "/api/suppliers", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    residency::set_deployment_region(&w.owner, Region::Us)
        .await
        .unwrap();
    let r = w
        .request(Method::GET, "/api/session", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // ...and its remembered answer is not served for another region's organisation either.
    let r = w
        .request(Method::GET, "/api/suppliers", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(w.state.sdk.tenants().begin(w.orgs[0]).await.is_err());
    // The us organisation is served now.
    let r = login(&w, us, "admin@us.test").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    residency::set_deployment_region(&w.owner, Region::Eu)
        .await
        .unwrap();
    let r = w
        .request(Method::GET, "/api/session", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Jobs that visit every organisation visit the served ones: another region's does
    // not stop the retention purge.
    let log = w.state.sdk.audit_log().cloned().unwrap();
    let served = procuhelp_tenancy::organisation_ids(&w.owner).await.unwrap();
    assert!(!served.contains(&us) && served.contains(&w.orgs[0]));
    procuhelp_server::retention::run_once(&w.owner, &w.runtime, &log, w.state.sdk.audit().as_ref())
        .await
        .unwrap();
    // The runtime role cannot change what the deployment serves.
    let err = sqlx::query("UPDATE app.deployment SET region = 'us'")
        .execute(&w.runtime)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    w.close().await;
}

/// `posture` on the embedded default: the built-in EU configuration passes; a vault or a
/// subprocessor outside the EU fails it, naming them; a malformed file is a clear error.
#[tokio::test]
async fn posture_fails_when_an_eu_organisation_s_data_would_leave_the_eu() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-residency-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.join("data").to_str().unwrap().to_owned();
    run(&["seed-demo", "--data-dir", &d]).await.unwrap();
    run(&["posture", "--data-dir", &d]).await.unwrap();

    // security.txt (RFC 9116): a valid one passes; an expired one, one a year and more
    // ahead, or a malformed one fails `posture`, naming why.
    let sectxt = |expires: time::OffsetDateTime, contact: &str| {
        let file = dir.join(format!("sectxt-{}.json", uuid::Uuid::new_v4().simple()));
        let expires = expires
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        std::fs::write(
            &file,
            format!(r#"{{"contact": ["{contact}"], "expires": "{expires}"}}"#),
        )
        .unwrap();
        file.to_str().unwrap().to_owned()
    };
    let now = time::OffsetDateTime::now_utc();
    let valid = sectxt(
        now + time::Duration::days(100),
        "mailto:security@procuhelp.example",
    );
    run(&["posture", "--data-dir", &d, "--security-txt", &valid])
        .await
        .unwrap();
    for (file, expected) in [
        (
            sectxt(now - time::Duration::days(1), "mailto:s@p.example"),
            "expired",
        ),
        (
            sectxt(now + time::Duration::days(400), "mailto:s@p.example"),
            "more than a year",
        ),
        (
            sectxt(now + time::Duration::days(10), "http://p.example"),
            "Contact",
        ),
    ] {
        let err = run(&["posture", "--data-dir", &d, "--security-txt", &file])
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains(expected), "{err:#}");
    }

    let mut config: serde_json::Value =
        serde_json::from_str(procuhelp_server::residency::DEFAULT).unwrap();
    config["vault"]["country"] = json!("US");
    config["subprocessors"][1]["country"] = json!("US");
    let file = dir.join("residency.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let err = run(&["posture", "--data-dir", &d, "--residency", f])
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("the vault is in US"), "{text}");
    assert!(text.contains("E-mail delivery"), "{text}");

    // A configuration for another region than the database serves: refused too.
    let mut other: serde_json::Value =
        serde_json::from_str(procuhelp_server::residency::DEFAULT).unwrap();
    other["region"] = json!("uk");
    std::fs::write(&file, other.to_string()).unwrap();
    let err = run(&["posture", "--data-dir", &d, "--residency", f])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("database is set to eu"),
        "{err:#}"
    );

    std::fs::write(&file, r#"{"region": "mars"}"#).unwrap();
    let err = run(&["posture", "--data-dir", &d, "--residency", f])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown data region"),
        "{err:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `docs/subprocessors.md` is the built-in configuration rendered
/// (`PROCUHELP_WRITE_DOCS=1` rewrites it).
#[test]
fn the_subprocessor_list_is_generated_from_the_configuration() {
    let residency: residency::Residency =
        serde_json::from_str(procuhelp_server::residency::DEFAULT).unwrap();
    let expected = residency.subprocessors_markdown();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/subprocessors.md");
    if std::env::var_os("PROCUHELP_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == expected,
        "docs/subprocessors.md is not the configuration: run with PROCUHELP_WRITE_DOCS=1"
    );
}
