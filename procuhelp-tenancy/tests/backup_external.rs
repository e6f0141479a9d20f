//! Backups of a PostgreSQL server reached over TCP (as an external server is), with the
//! real `pg_dump`/`pg_restore`: the copy equals the source row for row; a role that RLS
//! binds is refused; the drill proves the copy and drops it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;

use procuhelp_core::UserId;
use procuhelp_core::vault::FileVault;
use procuhelp_tenancy::backup::{
    self, BackupError, CheckOutcome, DrillChecks, Findings, Manifest, PgServer, Placement,
    Repository, RestoreTarget, ScratchCopy,
};
use procuhelp_tenancy::testkit::{ScratchDb, TestRecords};
use procuhelp_tenancy::{TenantDb, create_organisation};
use sqlx::PgPool;

fn pg_bin() -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("pg_dump").is_file())
        .collect();
    dirs.sort();
    dirs.pop().expect("pg_dump under /usr/lib/postgresql/*/bin")
}

async fn contents(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    procuhelp_tenancy::testkit::rows_by_table(pool)
        .await
        .unwrap()
}

struct NoChecks;
#[async_trait::async_trait]
impl DrillChecks for NoChecks {
    async fn check(&self, _: &ScratchCopy, _: &Manifest) -> Findings {
        Findings {
            outcomes: vec![CheckOutcome::pass("none", "")],
            shredded: Vec::new(),
        }
    }
}

#[tokio::test]
async fn a_server_over_tcp_is_backed_up_restored_and_drilled() {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = create_organisation(&owner, "A").await.unwrap();
    let b = create_organisation(&owner, "B").await.unwrap();
    owner.close().await;
    let runtime = scratch.runtime_pool(2).await.unwrap();
    let db = TenantDb::new(runtime.clone());
    for (org, n) in [(a, 30), (b, 20)] {
        let mut tx = db.begin(org).await.unwrap();
        for i in 0..n {
            TestRecords
                .create(&mut tx, &format!("record {i} <'\"\\>"), UserId::new())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let admin = scratch.admin_pool(1).await.unwrap();
    let before = contents(&admin).await;
    assert!(before.values().map(Vec::len).sum::<usize>() >= 50);

    let id = uuid::Uuid::new_v4().simple().to_string();
    let repo_dir = std::path::PathBuf::from(format!("/dev/shm/ph-ext-repo-{id}"));
    let repo = Repository::open(&repo_dir, None, Placement::Apart).unwrap();
    let vault = FileVault::open_or_create(&std::env::temp_dir().join(format!("ph-ext-vault-{id}")))
        .unwrap();
    let superuser = scratch.options_for(&scratch_admin_user());
    let server = Arc::new(PgServer::new(&pg_bin(), superuser, None, None));

    // A role that RLS binds is refused: its dump would hold no tenant's rows.
    let bound = PgServer::new(
        &pg_bin(),
        scratch.options_for(scratch.runtime_role().name()),
        None,
        None,
    );
    let err = backup::take(&bound, &repo, &vault).await.unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    assert!(
        repo.list().unwrap().is_empty(),
        "a refused backup leaves nothing"
    );

    let info = backup::take(&server, &repo, &vault).await.unwrap();
    // Written after the backup: not in it.
    let mut tx = db.begin(a).await.unwrap();
    TestRecords
        .create(&mut tx, "after the backup", UserId::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    runtime.close().await;

    let target = format!("ext_restored_{}", &id[..8]);
    let restored = backup::restore(
        &server,
        &repo,
        &vault,
        Some(&info.label),
        &RestoreTarget {
            database: target.clone(),
            replace_existing: false,
            accept_destroyed_keys: false,
        },
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(restored.database, target);
    let copy_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(server.connect_options(&target))
        .await
        .unwrap();
    let copy = contents(&copy_pool).await;
    copy_pool.close().await;
    assert_eq!(
        copy, before,
        "the copy equals the source at backup time, row for row"
    );
    // A second restore to the same name is refused without replace_existing.
    let err = backup::restore(
        &server,
        &repo,
        &vault,
        None,
        &RestoreTarget {
            database: target.clone(),
            replace_existing: false,
            accept_destroyed_keys: false,
        },
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");

    let manifest = backup::verify(&repo, &info, &vault).await.unwrap();
    let report = backup::drill(
        server.clone(),
        &repo,
        &vault,
        None,
        &manifest.migrations,
        &NoChecks,
    )
    .await
    .unwrap();
    assert!(report.passed, "{:?}", report.checks);
    // A server with newer migrations than the backup still passes (migrate applies them
    // after a restore); one that lacks the backup's migrations does not.
    let mut newer = manifest.migrations.clone();
    newer.push(i64::MAX);
    let report = backup::drill(server.clone(), &repo, &vault, None, &newer, &NoChecks)
        .await
        .unwrap();
    assert!(report.passed, "{:?}", report.checks);
    let older = &manifest.migrations[..manifest.migrations.len() - 1];
    let report = backup::drill(server.clone(), &repo, &vault, None, older, &NoChecks)
        .await
        .unwrap();
    assert!(!report.passed);
    assert_eq!(
        report.rows,
        before.values().map(|r| r.len() as i64).sum::<i64>()
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'procuhelp_drill%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(left.iter().all(|d| !d.contains(&report.label)), "{left:?}");
    sqlx::query(&format!("DROP DATABASE {target} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    scratch.drop_all().await.unwrap();
    std::fs::remove_dir_all(&repo_dir).ok();
}

/// The superuser of PROCUHELP_TEST_ADMIN_URL.
fn scratch_admin_user() -> String {
    let url = std::env::var("PROCUHELP_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    url::Url::parse(&url).unwrap().username().to_owned()
}
