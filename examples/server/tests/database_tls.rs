//! Database connections in transit (issue #11): a configured database is reached with
//! verified TLS. A private PostgreSQL cluster is started here on a loopback TCP port with
//! `ssl=on` and a certificate from a test CA; `sslmode=verify-full` with the right CA
//! connects (and the session is encrypted), with another CA or a host name the
//! certificate does not name it is refused, and a non-loopback URL without verified TLS
//! is refused by our policy before any connection is tried.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use procuhelp_core::vault::FileVault;
use procuhelp_server::cli::DatabaseArgs;
use procuhelp_server::database::Database;

/// The newest `/usr/lib/postgresql/<major>/bin` with initdb and pg_ctl. Missing binaries
/// fail the test where peers are required (CI), and skip it elsewhere.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    let found = dirs.pop().map(|(_, d)| d);
    if found.is_none() {
        assert!(
            std::env::var("PROCUHELP_REQUIRE_PEERS").as_deref() != Ok("1"),
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are missing and PROCUHELP_REQUIRE_PEERS=1"
        );
        eprintln!("skipped: no PostgreSQL server binaries");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private cluster with TLS on 127.0.0.1; stopped when dropped.
struct TlsCluster {
    bin: PathBuf,
    pgdata: PathBuf,
    dir: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
}

impl TlsCluster {
    fn run(&self, program: &str, args: &[&str]) {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
        // PostgreSQL refuses to run as root (as the embedded cluster does, run as postgres).
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    fn give(&self, path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    fn start(bin: PathBuf, server_cert: &str, server_key: &str) -> Self {
        // Under /tmp: the cluster's OS user must reach it when tests run as root.
        let dir = std::env::temp_dir().join(format!("ph-pgtls-{}", uuid::Uuid::new_v4().simple()));
        let cluster = Self {
            bin,
            pgdata: dir.join("pgdata"),
            run_as: procuhelp_tenancy::embedded::cluster_os_user().unwrap(),
            port: free_port(),
            dir,
        };
        std::fs::create_dir_all(cluster.dir.join("run")).unwrap();
        cluster.give(&cluster.dir, 0o700);
        cluster.give(&cluster.dir.join("run"), 0o700);
        let pgdata = cluster.pgdata.display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &pgdata,
                "-U",
                "tls_admin",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        let (crt, key) = (
            cluster.dir.join("server.crt"),
            cluster.dir.join("server.key"),
        );
        std::fs::write(&crt, server_cert).unwrap();
        std::fs::write(&key, server_key).unwrap();
        cluster.give(&crt, 0o600);
        cluster.give(&key, 0o600);
        // TCP on loopback only, and only over TLS.
        std::fs::write(
            cluster.pgdata.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
        )
        .unwrap();
        let conf = cluster.pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            cluster.port,
            cluster.dir.join("run").display(),
            crt.display(),
            key.display()
        ));
        std::fs::write(&conf, text).unwrap();
        let log = cluster.dir.join("log").display().to_string();
        cluster.run(
            "pg_ctl",
            &["-D", &pgdata, "-w", "-t", "60", "-l", &log, "start"],
        );
        cluster
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let pgdata = self.pgdata.display().to_string();
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.args(["-D", &pgdata, "-m", "immediate", "-w", "stop"]);
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA certificate (PEM) and its issuer.
fn ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

fn args(dir: &Path, url: &str, dangerous: bool) -> DatabaseArgs {
    use std::os::unix::fs::PermissionsExt as _;
    let file = dir.join(format!("url-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, url).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    DatabaseArgs {
        data_dir: dir.to_path_buf(),
        database_url_file: Some(file),
        database_url_secret: None,
        pg_bin_dir: None,
        dangerous_database_without_verified_tls: dangerous,
        residency: None,
        vault: Default::default(),
    }
}

/// Opens the database named by `url` and runs one query; the error chain as text if
/// anything fails.
async fn try_query(vault: &FileVault, dir: &Path, url: &str) -> Result<bool, String> {
    let db = Database::open(&args(dir, url, false), vault)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let pool = db.owner_pool().await.map_err(|e| format!("{e:#}"))?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(ssl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_ca_connects_and_anything_else_is_refused() {
    let Some(bin) = pg_bin_dir() else { return };
    procuhelp_server::tls::install_crypto_provider();
    let (ca_pem, issuer) = ca("procuhelp test database CA");
    let (other_ca_pem, _) = ca("some other CA");
    // The server's certificate names "localhost" only.
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let cluster = TlsCluster::start(bin, &server_cert.pem(), &server_key.serialize_pem());

    let dir = std::env::temp_dir().join(format!("ph-tlsc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let vault = FileVault::open_or_create(&dir.join("vault")).unwrap();
    let right = dir.join("ca.pem");
    let wrong = dir.join("other-ca.pem");
    std::fs::write(&right, &ca_pem).unwrap();
    std::fs::write(&wrong, &other_ca_pem).unwrap();
    let url = |host: &str, ca: &Path| {
        format!(
            "postgres://tls_admin@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}",
            cluster.port,
            ca.display()
        )
    };

    // The right CA and the name on the certificate: connected, over TLS.
    assert_eq!(
        try_query(&vault, &dir, &url("localhost", &right)).await,
        Ok(true)
    );
    // Another CA: refused during the handshake.
    let err = try_query(&vault, &dir, &url("localhost", &wrong))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The right CA but a name the certificate does not carry: refused (verify-full
    // checks the host name, verify-ca would not).
    let err = try_query(&vault, &dir, &url("127.0.0.1", &right))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Without TLS the server itself refuses (hostnossl reject): not a silent downgrade.
    let plain = format!(
        "postgres://tls_admin@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port
    );
    assert!(try_query(&vault, &dir, &plain).await.is_err());
    drop(cluster);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_remote_database_without_verified_tls_is_refused_before_connecting() {
    let dir = std::env::temp_dir().join(format!("ph-tlsp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let vault = FileVault::open_or_create(&dir.join("vault")).unwrap();
    // A documentation-range address: nothing is ever contacted (the policy refuses first,
    // and with the flag Database::open still connects to nothing).
    for url in [
        "postgres://app:hunter2@192.0.2.10:5432/procuhelp",
        "postgres://app:hunter2@192.0.2.10:5432/procuhelp?sslmode=require",
    ] {
        let err = Database::open(&args(&dir, url, false), &vault)
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("verify-full"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let db = Database::open(&args(&dir, url, true), &vault)
            .await
            .unwrap();
        // Its Debug (e.g. in a panic or a log line) never shows the password.
        let debug = format!("{db:?}");
        assert!(
            debug.contains("192.0.2.10") && !debug.contains("hunter2"),
            "{debug}"
        );
    }
    Database::open(
        &args(
            &dir,
            "postgres://app@192.0.2.10/procuhelp?sslmode=verify-full&sslrootcert=/nonexistent.pem",
            false,
        ),
        &vault,
    )
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
