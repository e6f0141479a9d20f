//! The migration composer: parts from several crates become one migrator; duplicate
//! versions and mismatched histories are refused before anything runs; the runtime grants
//! are applied after the migrations, so the NOBYPASSRLS runtime role works on a table an
//! application declared, which gets row-level security and is seen by the posture check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_core::UserId;
use procuhelp_tenancy::migrate::{Grant, Migrations, Schema, SchemaError};
use procuhelp_tenancy::posture::{self, Problem};
use procuhelp_tenancy::testkit::{self, ScratchDb, TestRecords};
use procuhelp_tenancy::{Error, TenantDb, create_organisation};

fn app_schema() -> Schema {
    Schema::new().with(testkit::MIGRATIONS)
}

/// A part with the same versions as the testkit's (as if an application reused 9001).
fn clashing() -> Migrations {
    let migrations: Vec<_> = testkit::MIGRATIONS.migrator().iter().cloned().collect();
    Migrations::testkit(
        "clashing-app",
        sqlx::migrate::Migrator {
            migrations: migrations.into(),
            ..sqlx::migrate::Migrator::DEFAULT
        },
    )
}

#[test]
fn versions_are_ordered_across_parts() {
    let migrator = app_schema().migrator().unwrap();
    let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    assert_eq!(versions, sorted);
    assert_eq!(versions.first(), Some(&1));
    assert_eq!(versions.last(), Some(&9001), "the testkit's part runs last");
}

#[tokio::test]
async fn a_duplicate_version_is_refused_before_anything_runs() {
    let err = app_schema().with(clashing()).migrator().unwrap_err();
    assert_eq!(
        err,
        SchemaError::DuplicateVersion {
            version: 9001,
            first: "procuhelp-tenancy testkit",
            second: "clashing-app",
        }
    );
    let scratch = ScratchDb::empty().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let err = app_schema()
        .with(clashing())
        .migrate(&owner, scratch.runtime_role())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::DuplicateVersion { version: 9001, .. })
        ),
        "{err:?}"
    );
    let touched: bool = sqlx::query_scalar("SELECT to_regclass('app.organisations') IS NOT NULL")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(!touched, "nothing may be applied");
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn grants_follow_the_migrations_and_the_app_table_is_isolated_and_checked() {
    let scratch = ScratchDb::migrated_with(&app_schema()).await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = create_organisation(&owner, "A").await.unwrap();
    let b = create_organisation(&owner, "B").await.unwrap();
    // The app-declared table: RLS enabled and forced, the tenant policy.
    let (enabled, forced, policies): (bool, bool, i64) = sqlx::query_as(
        "SELECT c.relrowsecurity, c.relforcerowsecurity,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
         FROM pg_class c WHERE c.oid = 'app.test_records'::regclass",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(enabled && forced && policies == 1);

    // The runtime role (NOBYPASSRLS, owns nothing) works on it through its grants, and
    // sees only its own organisation's rows.
    let runtime = scratch.runtime_pool(2).await.unwrap();
    let db = TenantDb::new(runtime.clone());
    for org in [a, b] {
        let mut tx = db.begin(org).await.unwrap();
        TestRecords
            .create(&mut tx, "mine", UserId::new())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = db.begin(a).await.unwrap();
    let seen = TestRecords.list(&mut tx, 10).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].org_id, a);
    posture::check(&runtime).await.unwrap();

    // The posture check covers the app's table like the SDK's own.
    let admin = scratch.admin_pool(1).await.unwrap();
    sqlx::raw_sql("ALTER TABLE app.test_records NO FORCE ROW LEVEL SECURITY")
        .execute(&admin)
        .await
        .unwrap();
    let err = posture::check(&runtime).await.unwrap_err();
    let Error::Posture(p) = err else {
        panic!("{err:?}")
    };
    assert!(
        p.findings
            .iter()
            .any(|f| f.object == "table app.test_records" && f.problem == Problem::RlsNotForced),
        "{p}"
    );
    runtime.close().await;
    admin.close().await;
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn mismatched_histories_are_refused_with_the_fix_named() {
    let scratch = ScratchDb::migrated_with(&app_schema()).await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let role = scratch.runtime_role().clone();

    // Migrating again is a no-op.
    app_schema().migrate(&owner, &role).await.unwrap();

    // A part that migrated this database is missing from the composition.
    let err = Schema::new().migrate(&owner, &role).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::AppliedMigrationUnknown { version: 9001 })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("Schema::with"), "{err}");

    // An applied migration was edited afterwards.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 9001")
        .execute(&owner)
        .await
        .unwrap();
    let err = app_schema().migrate(&owner, &role).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::AppliedMigrationChanged { version: 9001 })
        ),
        "{err:?}"
    );

    // A database migrated by the layout from before the split (its combined 0004).
    sqlx::query(
        "UPDATE _sqlx_migrations SET checksum = decode($1, 'hex') WHERE version = 4",
    )
    .bind("8c8a77f0cbb87d52964cd395da5045dbf05b861748009770c081389c90d88154c3921b9c15732c6ac2a983b8fb9b3c96")
    .execute(&owner)
    .await
    .unwrap();
    let err = app_schema().migrate(&owner, &role).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::PreSplitDatabase { version: 4 })
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("re-create the database") && msg.contains("docs/tenancy.md"),
        "{msg}"
    );
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

/// An application part with the testkit's migrations renumbered to `version`.
fn app_at(version: i64) -> Migrations {
    let migrations: Vec<_> = testkit::MIGRATIONS
        .migrator()
        .iter()
        .cloned()
        .map(|mut m| {
            m.version = version;
            m
        })
        .collect();
    Migrations::app(
        "early-app",
        sqlx::migrate::Migrator {
            migrations: migrations.into(),
            ..sqlx::migrate::Migrator::DEFAULT
        },
    )
}

#[tokio::test]
async fn an_application_version_below_10000_is_refused_before_anything_runs() {
    let err = Schema::new().with(app_at(5)).migrator().unwrap_err();
    assert_eq!(
        err,
        SchemaError::VersionOutOfRange {
            part: "early-app",
            version: 5,
        }
    );
    assert!(Schema::new().with(app_at(10_000)).migrator().is_ok());
    let scratch = ScratchDb::empty().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let err = Schema::new()
        .with(app_at(5))
        .migrate(&owner, scratch.runtime_role())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::VersionOutOfRange { version: 5, .. })
        ),
        "{err:?}"
    );
    let touched: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(!touched, "nothing may be applied");
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn an_application_grant_on_an_sdk_table_is_refused_before_anything_runs() {
    const WIDENING: &[Grant] = &[Grant::new("app.organisations", "INSERT, UPDATE")];
    let widening = app_at(10_000).grants(WIDENING);
    let scratch = ScratchDb::empty().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let err = Schema::new()
        .with(widening)
        .migrate(&owner, scratch.runtime_role())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Schema(SchemaError::GrantOnForeignTable {
                part: "early-app",
                table: "app.organisations",
                owner: "procuhelp-tenancy",
            })
        ),
        "{err:?}"
    );
    let touched: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(!touched, "nothing may be applied");
    owner.close().await;
    scratch.drop_all().await.unwrap();
}
