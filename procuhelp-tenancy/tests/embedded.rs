//! The embedded default: a private cluster from the system's binaries starts with nothing
//! set up by hand, runs the same migrations and posture check, and keeps its data across
//! restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_tenancy::embedded::LocalCluster;
use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::{RuntimeRole, TenantDb, create_organisation, posture, testkit};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn starts_migrates_passes_posture_and_persists() {
    // /tmp is world-searchable, which the cluster's OS user needs when tests run as root.
    let dir = std::env::temp_dir().join(format!("ph-emb-{}", uuid::Uuid::new_v4().simple()));
    let data = dir.join("pg");

    let cluster = LocalCluster::start(&data, None).await.unwrap();
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, LocalCluster::OWNER_ROLE))
        .await
        .unwrap();
    Schema::new()
        .with(testkit::MIGRATIONS)
        .migrate(&owner, &RuntimeRole::default())
        .await
        .unwrap();
    let org = create_organisation(&owner, "persisted").await.unwrap();
    owner.close().await;
    let runtime = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, RuntimeRole::DEFAULT_NAME))
        .await
        .unwrap();
    posture::check(&runtime).await.unwrap();
    runtime.close().await;
    cluster.stop().await.unwrap();

    // Restart: same data directory, data still there, isolation still enforced.
    let cluster = LocalCluster::start(&data, None).await.unwrap();
    let runtime = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, RuntimeRole::DEFAULT_NAME))
        .await
        .unwrap();
    let db = TenantDb::new(runtime.clone());
    let mut tx = db.begin(org).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM app.organisations")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(name, "persisted");
    tx.commit().await.unwrap();
    // No TCP listener: the cluster is reachable only through its socket.
    let tcp: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&runtime)
        .await
        .unwrap();
    assert_eq!(tcp, "");
    runtime.close().await;
    cluster.stop().await.unwrap();

    // A handle that did not start the cluster leaves it running when dropped (an admin
    // command beside a running server); the handle that started it stops it even when
    // dropped without `stop` (a command that failed half-way), so no cluster is left
    // that nobody owns.
    let postmaster = data.join("cluster/postmaster.pid");
    let owner = LocalCluster::start(&data, None).await.unwrap();
    assert!(postmaster.exists());
    let visitor = LocalCluster::start(&data, None).await.unwrap();
    drop(visitor);
    assert!(postmaster.exists(), "a visiting handle stopped the cluster");
    drop(owner);
    assert!(
        !postmaster.exists(),
        "a dropped owning handle left the cluster running"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn missing_binaries_are_named() {
    let dir = std::env::temp_dir().join(format!("ph-emb-{}", uuid::Uuid::new_v4().simple()));
    let err = LocalCluster::start(&dir, Some("/nonexistent/bin".as_ref()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("initdb")
            && msg.contains("/nonexistent/bin")
            && msg.contains("--database-url"),
        "{msg}"
    );
}
