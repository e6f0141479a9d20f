//! Backups on the embedded default, end to end through the CLI: backup → more writes →
//! restore equals the source at backup time row for row; the drill passes on a good
//! backup, reports a shredded organisation, fails naming the table on a corrupted copy;
//! damaged, truncated and wrongly keyed backups restore nothing and say which part is
//! bad; the repository holds no plaintext; a repository beside the data is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{run, superuser};
use procuhelp_core::vault::{FileVault, SecretProvider};
use procuhelp_tenancy::backup::{
    self, BackupError, CheckOutcome, DrillChecks, Findings, Manifest, PgServer, Placement,
    Repository, ScratchCopy,
};
use procuhelp_tenancy::embedded::LocalCluster;
use procuhelp_tenancy::{RuntimeRole, TenantDb};
use sqlx::PgPool;

/// Runs a drill that must fail, and returns check `name` of its signed report.
async fn failed_drill_check(
    data_dir: &str,
    repo_arg: &str,
    repo: &Repository,
    key: procuhelp_audit::PublicKey,
    name: &str,
) -> CheckOutcome {
    let err = run(&[
        "backup",
        "drill",
        "--data-dir",
        data_dir,
        "--repo",
        repo_arg,
    ])
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("FAILED"), "{err:#}");
    let last = procuhelp_server::backups::drills(repo, &[key])
        .unwrap()
        .pop()
        .unwrap();
    last.report
        .checks
        .into_iter()
        .find(|c| c.check == name)
        .unwrap()
}

/// Rewrites a field of a backup's (unsealed) completion record.
fn edit_record(repo_dir: &Path, label: &str, field: &str, value: serde_json::Value) -> Vec<u8> {
    let path = repo_dir.join(label).join(backup::COMPLETE_FILE);
    let original = std::fs::read(&path).unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(&original).unwrap();
    record[field] = value;
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    original
}

/// A data directory under /tmp, and a repository on /dev/shm: another filesystem here.
fn dirs() -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("ph-backup-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    (
        dir.join("data"),
        PathBuf::from(format!("/dev/shm/ph-repo-{id}")),
    )
}

async fn contents(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    procuhelp_tenancy::testkit::rows_by_table(pool)
        .await
        .unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_drill_and_every_kind_of_damage() {
    procuhelp_server::tls::install_crypto_provider();
    let (data, repo_dir) = dirs();
    let d = data.to_str().unwrap().to_owned();
    let r = repo_dir.to_str().unwrap().to_owned();
    run(&["seed-demo", "--data-dir", &d]).await.unwrap();

    // A repository beside the data (one filesystem) is refused, and nothing is left there.
    let beside = data.parent().unwrap().join("repo");
    let err = run(&[
        "backup",
        "run",
        "--data-dir",
        &d,
        "--repo",
        beside.to_str().unwrap(),
    ])
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("same filesystem"), "{err:#}");
    assert!(!beside.exists());
    let inside = data.join("backups");
    let err = run(&[
        "backup",
        "run",
        "--data-dir",
        &d,
        "--repo",
        inside.to_str().unwrap(),
        "--allow-repo-on-same-filesystem",
    ])
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("overlaps the data directory"),
        "{err:#}"
    );

    // The database as it is (nothing writes until the backup's snapshot), then the backup.
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let live = superuser(&cluster, LocalCluster::DATABASE).await;
    let at_backup = contents(&live).await;
    assert!(at_backup["app.suppliers"].len() == 4 && at_backup["app.users"].len() >= 8);
    live.close().await;
    cluster.stop().await.unwrap();
    run(&["backup", "run", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let live = superuser(&cluster, LocalCluster::DATABASE).await;
    // More writes after it (the `backup.taken` event itself is one).
    sqlx::query("UPDATE app.suppliers SET name = name || ' (renamed)'")
        .execute(&live)
        .await
        .unwrap();
    live.close().await;
    cluster.stop().await.unwrap();

    // No plaintext in the repository: names, IBANs, e-mail addresses.
    let needles: [&[u8]; 4] = [
        b"Acme GmbH",
        b"DE89370400440532013000",
        b"demo.procuhelp.test",
        b"Cobalt Ltd",
    ];
    for file in files_under(&repo_dir) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                file.display()
            );
        }
    }

    // Restore over the live database is refused without --force.
    let err = run(&["backup", "restore", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--force"), "{err:#}");
    // Restore into a new database equals the source at backup time, row for row.
    run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--into-database",
        "restored",
    ])
    .await
    .unwrap();
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let restored = superuser(&cluster, "restored").await;
    let copy = contents(&restored).await;
    restored.close().await;
    assert_eq!(
        copy.keys().collect::<Vec<_>>(),
        at_backup.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &at_backup {
        assert_eq!(
            &copy[table], rows,
            "table {table} differs from the source at backup time"
        );
    }

    // Pieces for the library-level checks below.
    let server = Arc::new(PgServer::new(
        cluster.bin_dir(),
        cluster.connect_options(LocalCluster::DATABASE, LocalCluster::SUPERUSER),
        None,
        None,
    ));
    let vault = Arc::new(FileVault::open_or_create(&data.join("vault")).unwrap());
    let repo = Repository::open(&repo_dir, Some(&data), Placement::Apart).unwrap();
    let info = repo.find(None).unwrap();

    // The drill fails, naming the table, on a copy corrupted on purpose.
    let copy = ScratchCopy::restore(server.clone(), &repo, vault.as_ref(), None)
        .await
        .unwrap();
    assert_ne!(copy.database(), LocalCluster::DATABASE);
    let scratch = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(copy.connect_options())
        .await
        .unwrap();
    sqlx::query("UPDATE app.suppliers SET country = 'XX' WHERE name = 'Acme GmbH'")
        .execute(&scratch)
        .await
        .unwrap();
    scratch.close().await;
    let expected = procuhelp_server::backups::expected_migrations().unwrap();
    let report = copy
        .check(&expected, &NoChecks, time::OffsetDateTime::now_utc())
        .await;
    assert!(!report.passed);
    let tables = report.checks.iter().find(|c| c.check == "tables").unwrap();
    assert!(
        !tables.passed && tables.detail.contains("app.suppliers"),
        "{tables:?}"
    );
    copy.discard().await.unwrap();

    // Another vault cannot open the backup.
    let other = FileVault::open_or_create(&data.parent().unwrap().join("other-vault")).unwrap();
    let err = backup::verify(&repo, &info, &other).await.unwrap_err();
    assert!(matches!(err, BackupError::KeyUnavailable(_)), "{err}");
    cluster.stop().await.unwrap();

    // The drill through the CLI passes on the good backup, with a signed report and the
    // event in the system chain.
    run(&["backup", "drill", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    let drills = files_under(&repo_dir.join(backup::DRILLS_DIR));
    assert_eq!(drills.len(), 1);
    let signed: procuhelp_server::backups::SignedReport =
        serde_json::from_slice(&std::fs::read(&drills[0]).unwrap()).unwrap();
    assert!(signed.report.passed, "{:?}", signed.report.checks);
    let names: Vec<&str> = signed
        .report
        .checks
        .iter()
        .map(|c| c.check.as_str())
        .collect();
    for check in [
        "tables",
        "migrations",
        "organisations",
        "posture",
        "audit chains",
        "keys",
    ] {
        assert!(names.contains(&check), "{check} missing from {names:?}");
    }
    let key: [u8; 32] = hex::decode(&signed.public_key).unwrap().try_into().unwrap();
    assert!(procuhelp_server::backups::verify_report(&signed, &[key]));
    let mut forged = signed.clone();
    forged.report.rows += 1;
    assert!(!procuhelp_server::backups::verify_report(&forged, &[key]));

    // An organisation shredded after the backup: the drill reports it, and passes.
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let runtime = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, RuntimeRole::DEFAULT_NAME))
        .await
        .unwrap();
    let su = superuser(&cluster, LocalCluster::DATABASE).await;
    let org: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.organisations WHERE name = 'Demo Org A'")
            .fetch_one(&su)
            .await
            .unwrap();
    // The system chain holds the backup's and the drill's events.
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM app.audit_events WHERE action LIKE 'backup.%' ORDER BY seq",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    for action in ["backup.taken", "backup.restored", "backup.drilled"] {
        assert!(
            events.iter().any(|e| e == action),
            "{action} not in {events:?}"
        );
    }
    su.close().await;
    let vault_dyn: Arc<dyn SecretProvider> = vault.clone();
    procuhelp_server::keys::field_cipher(TenantDb::new(runtime.clone()), vault_dyn)
        .shred(procuhelp_core::OrgId::from_uuid(org).unwrap())
        .await
        .unwrap();
    runtime.close().await;
    cluster.stop().await.unwrap();
    run(&["backup", "drill", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    let newest = files_under(&repo_dir.join(backup::DRILLS_DIR))
        .into_iter()
        .max()
        .unwrap();
    let signed: procuhelp_server::backups::SignedReport =
        serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    assert!(signed.report.passed, "{:?}", signed.report.checks);
    assert_eq!(signed.report.shredded_organisations, vec![org]);

    // One byte changed: restore and drill name the damaged chunk; nothing is restored.
    let dump = repo_dir.join(&info.label).join(backup::DUMP_FILE);
    let original = std::fs::read(&dump).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x01;
    std::fs::write(&dump, &damaged).unwrap();
    let err = run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--into-database",
        "damaged",
    ])
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("fails authentication"),
        "{err:#}"
    );
    let err = run(&["backup", "drill", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("FAILED"), "{err:#}");
    // Truncated at any point.
    std::fs::write(&dump, &original[..original.len() - 7]).unwrap();
    let err = run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--into-database",
        "damaged",
    ])
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("truncated") || format!("{err:#}").contains("damaged"),
        "{err:#}"
    );
    std::fs::write(&dump, &original).unwrap();
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = superuser(&cluster, "postgres").await;
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'damaged%' OR datname LIKE 'procuhelp_drill%'",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(
        leftovers.is_empty(),
        "half-restored databases left: {leftovers:?}"
    );
    su.close().await;
    cluster.stop().await.unwrap();

    // An interrupted backup (no completion record) is listed as such and never chosen.
    let partial = repo_dir.join("20200101T000000Z-0000");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(backup::DUMP_FILE), b"half").unwrap();
    assert_eq!(repo.find(None).unwrap().label, info.label);
    assert!(repo.list().unwrap().iter().any(
        |e| matches!(e, backup::Entry::Incomplete { label } if label == "20200101T000000Z-0000")
    ));
    // A second backup, then retention keeping one daily only: the older complete one and
    // the stale interrupted one go.
    run(&[
        "backup",
        "run",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--keep-daily",
        "1",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ])
    .await
    .unwrap();
    let left: Vec<String> = repo
        .list()
        .unwrap()
        .iter()
        .map(|e| e.label().to_owned())
        .collect();
    // The first backup is past the policy but kept: it is the newest a drill proved.
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0], info.label);
    let newest = left[1].clone();

    // posture --backup-repo reports the ages and passes once the newest drill passed...
    let err = run(&["posture", "--data-dir", &d, "--backup-repo", &r])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("FAILED"), "{err:#}");
    run(&["backup", "drill", "--data-dir", &d, "--repo", &r])
        .await
        .unwrap();
    run(&["posture", "--data-dir", &d, "--backup-repo", &r])
        .await
        .unwrap();
    // ...and fails when the last drill is older than allowed.
    let err = run(&[
        "posture",
        "--data-dir",
        &d,
        "--backup-repo",
        &r,
        "--drill-max-age-hours",
        "0",
    ])
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("overdue"), "{err:#}");

    // A completion record that says other than the sealed manifest is refused...
    let original = edit_record(
        &repo_dir,
        &newest,
        "taken_at",
        serde_json::json!("2020-01-01T00:00:00Z"),
    );
    let err = run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--label",
        &newest,
        "--into-database",
        "forged",
    ])
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match the sealed manifest"),
        "{err:#}"
    );
    std::fs::write(
        repo_dir.join(&newest).join(backup::COMPLETE_FILE),
        &original,
    )
    .unwrap();
    // ...and one from the future never makes the schedule look fresh.
    edit_record(
        &repo_dir,
        &newest,
        "finished_at",
        serde_json::json!("2999-01-01T00:00:00Z"),
    );
    let err = run(&["posture", "--data-dir", &d, "--backup-repo", &r])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("overdue"), "{err:#}");
    std::fs::write(
        repo_dir.join(&newest).join(backup::COMPLETE_FILE),
        &original,
    )
    .unwrap();

    // A vault that lost an organisation's key that the live database never shredded
    // (an old escrow copy restored, say) fails the drill; it is not "shredded".
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = superuser(&cluster, LocalCluster::DATABASE).await;
    let other_org: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.organisations WHERE name = 'Demo Org B'")
            .fetch_one(&su)
            .await
            .unwrap();
    su.close().await;
    cluster.stop().await.unwrap();
    vault
        .destroy_kek(&format!("tenant-{}", other_org.simple()))
        .await
        .unwrap();
    let keys = failed_drill_check(&d, &r, &repo, key, "keys").await;
    assert!(
        !keys.passed && keys.detail.contains("has not shredded"),
        "{keys:?}"
    );
    // Its backup key lost too: its part cannot be opened, and the live database holds no
    // tombstone — a restore is refused, the drill fails; nobody is silently left out.
    vault
        .destroy_kek(&format!("tenant-{}-backup", other_org.simple()))
        .await
        .unwrap();
    let err = run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &r,
        "--into-database",
        "without_b",
    ])
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("still holds"), "{err:#}");
    let destroyed = failed_drill_check(&d, &r, &repo, key, "destroyed keys").await;
    assert!(
        !destroyed.passed && destroyed.detail.contains(&other_org.to_string()),
        "{destroyed:?}"
    );

    std::fs::remove_dir_all(&repo_dir).ok();
    std::fs::remove_dir_all(data.parent().unwrap()).ok();
}

/// `serve --backup-repo` takes a backup and runs a drill on its own (the repository is
/// empty, so both are due at start), and records them in the system chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_schedule() {
    use axum_server::Handle;
    use procuhelp_server::cli::{DatabaseArgs, ScheduleArgs, ServeArgs};
    use std::net::SocketAddr;
    use std::time::Duration;
    procuhelp_server::tls::install_crypto_provider();
    let (data, repo_dir) = dirs();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let args = ServeArgs {
        db: DatabaseArgs {
            data_dir: data.clone(),
            database_url_file: None,
            database_url_secret: None,
            pg_bin_dir: None,
            dangerous_database_without_verified_tls: false,
            residency: None,
            vault: Default::default(),
        },
        https_addr: SocketAddr::from(([127, 0, 0, 1], port())),
        dangerous_allow_loopback_fetch: false,
        http_redirect_addr: None,
        public_host: None,
        max_body_bytes: 1024 * 1024,
        request_timeout_secs: 10,
        alerts: None,
        network: Default::default(),
        backups: ScheduleArgs {
            backup_repo: Some(repo_dir.clone()),
            ..ScheduleArgs::default()
        },
        retention_every_hours: 24,
        operators: None,
        security_txt: None,
        audit_stream: None,
        smtp: None,
        otlp: Default::default(),
    };
    let handle: Handle<SocketAddr> = Handle::new();
    let server = tokio::spawn(procuhelp_server::serve::serve(args, Some(handle.clone())));
    let drills = repo_dir.join(backup::DRILLS_DIR);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !(drills.exists() && std::fs::read_dir(&drills).unwrap().count() > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "no drill report within 120 s"
        );
        assert!(!server.is_finished(), "serve stopped: {:?}", server.await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let signed: procuhelp_server::backups::SignedReport =
        serde_json::from_slice(&std::fs::read(files_under(&drills).pop().unwrap()).unwrap())
            .unwrap();
    assert!(signed.report.passed, "{:?}", signed.report.checks);
    let repo = Repository::open(&repo_dir, Some(&data), Placement::Apart).unwrap();
    assert_eq!(repo.find(None).unwrap().label, signed.report.label);
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    server.await.unwrap().unwrap();
    // Both are in the system chain.
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = superuser(&cluster, LocalCluster::DATABASE).await;
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, outcome FROM app.audit_events WHERE action LIKE 'backup.%' ORDER BY seq",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    su.close().await;
    cluster.stop().await.unwrap();
    assert!(
        events.contains(&("backup.taken".to_owned(), "success".to_owned())),
        "{events:?}"
    );
    assert!(
        events.contains(&("backup.drilled".to_owned(), "success".to_owned())),
        "{events:?}"
    );
    std::fs::remove_dir_all(&repo_dir).ok();
    std::fs::remove_dir_all(data.parent().unwrap()).ok();
}
