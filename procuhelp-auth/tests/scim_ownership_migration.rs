//! Migration 0012 (SCIM ownership, issue #11 finding 7) repairs what SCIM's old adoption
//! left behind. It runs as the owner role, which row-level security binds like everyone
//! else (FORCE), so the repair must reach every organisation's rows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::borrow::Cow;

use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::testkit::ScratchDb;

/// The schema this migration runs in: tenancy and auth (which owns 0012).
fn schema() -> Schema {
    Schema::new().with(procuhelp_auth::MIGRATIONS)
}
use sqlx::migrate::Migrator;
use uuid::Uuid;

const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// A user as the old code could leave them: password, SCIM-managed, SCIM externalId,
/// status, deprovisioned by SCIM.
type OldUser = (
    Option<&'static str>,
    bool,
    Option<&'static str>,
    &'static str,
    bool,
);

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Row {
    status: String,
    scim_managed: bool,
    scim_external_id: Option<String>,
    scim_user_name: Option<String>,
    deprovisioned_by_scim: bool,
    disabled_by_admin: bool,
    groups: i64,
}

#[tokio::test]
async fn migration_0012_undoes_adoptions_and_records_admin_disables() {
    let scratch = ScratchDb::empty().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let before: Vec<_> = schema()
        .migrator()
        .unwrap()
        .iter()
        .filter(|m| m.version < 12)
        .cloned()
        .collect();
    Migrator {
        migrations: Cow::Owned(before),
        ..Migrator::DEFAULT
    }
    .run(&owner)
    .await
    .unwrap();

    // The state the old code could leave, in two organisations (loaded as the superuser).
    let admin = scratch.admin_pool(1).await.unwrap();
    let mut ids = Vec::new();
    for org_name in ["a", "b"] {
        let org = Uuid::now_v7();
        sqlx::query("INSERT INTO app.organisations (id, name) VALUES ($1, $2)")
            .bind(org)
            .bind(org_name)
            .execute(&admin)
            .await
            .unwrap();
        let group = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO app.scim_groups (org_id, id, display_name, created_at, changed_at)
             VALUES ($1, $2, 'Admins', now(), now())",
        )
        .bind(org)
        .bind(group)
        .execute(&admin)
        .await
        .unwrap();
        let users: [OldUser; 4] = [
            // A local admin SCIM adopted and pointed at an attacker's oid.
            (Some(PHC), true, Some("attacker-oid"), "active", false),
            // A local user SCIM adopted, then deprovisioned.
            (Some(PHC), true, None, "disabled", true),
            // A user SCIM created (no password): stays SCIM's.
            (None, true, Some("entra-oid"), "active", false),
            // A local user an admin disabled.
            (Some(PHC), false, None, "disabled", false),
        ];
        for (i, (password, managed, external_id, status, deprovisioned)) in
            users.into_iter().enumerate()
        {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO app.users (org_id, id, email, display_name, role, status, password_hash,
                     scim_managed, scim_user_name, scim_external_id, deprovisioned_by_scim)
                 VALUES ($1, $2, $3, 'U', 'admin', $4, $5, $6, $7, $8, $9)",
            )
            .bind(org)
            .bind(id)
            .bind(format!("u{i}@{org_name}.test"))
            .bind(status)
            .bind(password)
            .bind(managed)
            .bind(managed.then(|| format!("scim-u{i}")))
            .bind(external_id)
            .bind(deprovisioned)
            .execute(&admin)
            .await
            .unwrap();
            if managed {
                sqlx::query(
                    "INSERT INTO app.scim_group_members (org_id, group_id, user_id) VALUES ($1, $2, $3)",
                )
                .bind(org)
                .bind(group)
                .bind(id)
                .execute(&admin)
                .await
                .unwrap();
            }
            ids.push(id);
        }
    }

    schema()
        .migrate(&owner, scratch.runtime_role())
        .await
        .unwrap();

    let mut rows = Vec::new();
    for id in &ids {
        let row: Row = sqlx::query_as(
            "SELECT status, scim_managed, scim_external_id, scim_user_name, deprovisioned_by_scim,
                 disabled_by_admin,
                 (SELECT count(*) FROM app.scim_group_members m WHERE m.user_id = u.id) AS groups
             FROM app.users u WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&admin)
        .await
        .unwrap();
        rows.push(row);
    }
    let local = |status: &str, disabled_by_admin: bool| Row {
        status: status.to_owned(),
        scim_managed: false,
        scim_external_id: None,
        scim_user_name: None,
        deprovisioned_by_scim: false,
        disabled_by_admin,
        groups: 0,
    };
    for org in rows.chunks(4) {
        // Adopted local accounts are local again: no SCIM identifiers to link by, no
        // groups; SCIM's deprovisioning became an admin's disable.
        assert_eq!(org[0], local("active", false));
        assert_eq!(org[1], local("disabled", true));
        // SCIM's own user is untouched.
        assert_eq!(
            org[2],
            Row {
                status: "active".into(),
                scim_managed: true,
                scim_external_id: Some("entra-oid".into()),
                scim_user_name: Some("scim-u2".into()),
                deprovisioned_by_scim: false,
                disabled_by_admin: false,
                groups: 1,
            }
        );
        // An admin's earlier disable is recorded as such.
        assert_eq!(org[3], local("disabled", true));
    }
    // Row-level security is forced again on the tables the repair lifted it from.
    let forced: Vec<bool> = sqlx::query_scalar(
        "SELECT relforcerowsecurity FROM pg_class
         WHERE oid IN ('app.users'::regclass, 'app.scim_group_members'::regclass)",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(forced, [true, true]);
    scratch.drop_all().await.unwrap();
}
