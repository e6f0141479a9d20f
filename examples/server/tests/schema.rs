//! The server's composed schema (tenancy, auth, audit and its own tables): every table in
//! `app` has a runtime grant from the part that owns it, the runtime role gets exactly
//! those, the posture check passes, and key rotation sees every crate's encrypted columns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_tenancy::testkit::ScratchDb;

#[tokio::test]
async fn every_table_has_its_owners_grant_and_posture_passes() {
    let schema = procuhelp_server::database::schema();
    let scratch = ScratchDb::migrated_with(&schema).await.unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let granted: Vec<&str> = schema.grants().map(|g| g.table).collect();
    for t in &tables {
        assert!(granted.contains(&t.as_str()), "{t} has no runtime grant");
    }
    for t in [
        "app.suppliers",
        "app.purchase_requests",
        "app.users",
        "app.audit_events",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing: {tables:?}");
    }
    let role = scratch.runtime_role().name().to_owned();
    for (table, privilege, allowed) in [
        ("app.suppliers", "DELETE", true),
        ("app.purchase_requests", "DELETE", false),
        ("app.scim_tokens", "UPDATE", true),
        // Expired tokens are purged by the retention job; users never deleted (erasure
        // leaves "a former user").
        ("app.scim_tokens", "DELETE", true),
        ("app.users", "DELETE", false),
        ("app.audit_events", "INSERT", true),
        ("app.audit_events", "UPDATE", false),
        ("app.organisations", "UPDATE", false),
    ] {
        let can: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2, $3)")
            .bind(&role)
            .bind(table)
            .bind(privilege)
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(can, allowed, "{privilege} on {table}");
    }
    // Of the organisation row, the runtime may change only auth's policy columns.
    for (column, allowed) in [
        ("sso_jit_provisioning", true),
        ("mfa_required", true),
        ("name", false),
    ] {
        let can: bool = sqlx::query_scalar(
            "SELECT has_column_privilege($1, 'app.organisations', $2, 'UPDATE')",
        )
        .bind(&role)
        .bind(column)
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(can, allowed, "UPDATE organisations.{column}");
    }
    let runtime = scratch.runtime_pool(1).await.unwrap();
    procuhelp_tenancy::posture::check(&runtime).await.unwrap();

    let columns: Vec<(&str, &str)> = schema
        .encrypted_columns()
        .iter()
        .map(|c| (c.table, c.column))
        .collect();
    for expected in [
        ("app.users", "totp_sealed"),
        ("app.users", "totp_pending_sealed"),
        ("app.suppliers", "iban_sealed"),
    ] {
        assert!(
            columns.contains(&expected),
            "{expected:?} not in {columns:?}"
        );
    }
    runtime.close().await;
    admin.close().await;
    scratch.drop_all().await.unwrap();
}

/// The personal-data register covers every column of every table after all migrations
/// (a new column fails this test until it is classified), and docs/retention.md is the
/// register rendered (`PROCUHELP_WRITE_DOCS=1` rewrites it).
#[tokio::test]
async fn every_column_is_in_the_personal_data_register_and_the_record_is_current() {
    use procuhelp_tenancy::personal_data;
    let schema = procuhelp_server::database::schema();
    let scratch = ScratchDb::migrated_with(&schema).await.unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    personal_data::check(&admin, &schema).await.unwrap();
    // A column added by hand is caught.
    sqlx::query("ALTER TABLE app.users ADD COLUMN nickname text")
        .execute(&admin)
        .await
        .unwrap();
    let err = personal_data::check(&admin, &schema).await.unwrap_err();
    assert!(err.to_string().contains("app.users.nickname"), "{err}");
    sqlx::query("ALTER TABLE app.users DROP COLUMN nickname")
        .execute(&admin)
        .await
        .unwrap();
    // So is a user id no index leads with: finding a person's rows would scan.
    sqlx::query("DROP INDEX app.purchase_requests_by_approver")
        .execute(&admin)
        .await
        .unwrap();
    let err = personal_data::check(&admin, &schema).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("app.purchase_requests.approved_by is a user id that no index leads with"),
        "{err}"
    );
    admin.close().await;
    scratch.drop_all().await.unwrap();

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/retention.md");
    let expected = personal_data::markdown(&schema);
    if std::env::var_os("PROCUHELP_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == expected,
        "docs/retention.md is not the register: run with PROCUHELP_WRITE_DOCS=1"
    );
}
