//! A private PostgreSQL cluster from the system's server binaries: the no-set-up default.
//!
//! Why not PGlite-in-WASM: it serves one connection at a time and simulates the runtime
//! role with `SET ROLE` on a superuser session (which the role can `RESET`), so it cannot
//! show the isolation guarantees this SDK makes. A private cluster is real PostgreSQL with
//! real roles and pools; its one prerequisite is the PostgreSQL server package. See
//! docs/architecture.md.
//!
//! The cluster listens on a Unix socket inside its 0700 data directory and on no TCP
//! port, so only this OS user (and root) can reach it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), procuhelp_tenancy::embedded::EmbeddedError> {
//! use procuhelp_tenancy::embedded::LocalCluster;
//! let cluster = LocalCluster::start("./data/pg".as_ref(), None).await?;
//! let owner = cluster.connect_options("procuhelp", LocalCluster::OWNER_ROLE);
//! # let _ = owner; cluster.stop().await?; Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::Executor as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

/// Why the embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "the embedded database needs the PostgreSQL server binaries (initdb, pg_ctl, postgres), \
         looked in {searched}; install them (Debian: `apt-get install postgresql`) or pass \
         --pg-bin-dir, or use your own server with --database-url"
    )]
    BinariesMissing {
        /// Where we looked.
        searched: String,
    },
    /// A command failed; its output is in the cluster's log.
    #[error("{command} failed ({status}); see {log}")]
    Command {
        /// What was run.
        command: String,
        /// Its exit status.
        status: String,
        /// The log file to read.
        log: String,
    },
    /// The data directory cannot be used.
    #[error("data directory {path}: {problem}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster started but the bootstrap SQL failed.
    #[error("bootstrap of the embedded cluster failed: {0}")]
    Bootstrap(#[from] sqlx::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// A running private cluster.
pub struct LocalCluster {
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    /// Whether this handle started the server and has not stopped it yet (else another
    /// process did, and it stays up for that process when this handle stops). A handle
    /// dropped while this holds — an admin command that failed half-way — stops the server
    /// in `Drop`, so no later handle inherits a cluster nobody owns.
    started_here: bool,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.started_here {
            return;
        }
        // Blocking, once, on an exit path: an async stop cannot run in Drop.
        let pgdata = self.pgdata.display().to_string();
        let stopped = self
            .command("pg_ctl", &["-D", &pgdata, "stop", "-m", "fast", "-w"])
            .output()
            .map(|out| out.status.success());
        match stopped {
            Ok(true) => tracing::info!(pgdata, "embedded PostgreSQL stopped on drop"),
            _ => tracing::warn!(pgdata, "embedded PostgreSQL could not be stopped on drop"),
        }
    }
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCluster")
            .field("pgdata", &self.pgdata)
            .field("bin_dir", &self.bin_dir)
            .finish_non_exhaustive()
    }
}

const PORT: u16 = 5432;

impl LocalCluster {
    /// The role that owns the application database and runs migrations.
    pub const OWNER_ROLE: &'static str = "procuhelp_owner";
    /// The bootstrap superuser, used only to create the owner role and database.
    pub const SUPERUSER: &'static str = "procuhelp_bootstrap";
    /// The application database.
    pub const DATABASE: &'static str = "procuhelp";

    /// Starts (initialising on first use) the cluster in `dir`, and makes sure the
    /// owner role and application database exist.
    ///
    /// `bin_dir` overrides where `initdb`/`pg_ctl`/`postgres` are looked for. When run as
    /// root, the cluster runs as the `postgres` OS user (or `nobody`): PostgreSQL refuses
    /// to run as root.
    pub async fn start(dir: &Path, bin_dir: Option<&Path>) -> Result<Self, EmbeddedError> {
        let bin_dir = find_binaries(bin_dir)?;
        let dir = std::path::absolute(dir).map_err(io("resolving the data directory"))?;
        let pgdata = dir.join("cluster");
        let socket_dir = dir.join("run");
        if dir.to_string_lossy().contains(['\'', '\\', '\n']) {
            return Err(EmbeddedError::DataDir {
                path: dir.display().to_string(),
                problem: "must not contain quotes, backslashes or newlines".to_owned(),
            });
        }
        // Unix socket paths are limited to 107 bytes.
        if socket_dir.as_os_str().len() + ".s.PGSQL.5432".len() + 1 > 107 {
            return Err(EmbeddedError::DataDir {
                path: dir.display().to_string(),
                problem: "path too long for a Unix socket (use a shorter --data-dir)".to_owned(),
            });
        }
        let run_as = cluster_os_user()?;
        if let Some(user) = run_as {
            check_searchable(&dir, user)?;
        }
        let cluster = Self {
            pgdata,
            socket_dir,
            bin_dir,
            run_as,
            started_here: false,
        };
        cluster.prepare_dirs().await?;
        let fresh = !cluster.pgdata.join("PG_VERSION").exists();
        if fresh {
            cluster.initdb().await?;
        }
        let mut cluster = cluster;
        if !cluster.is_running().await {
            cluster
                .pg_ctl(&["start", "-w", "-t", "60", "-l", &cluster.log_path()])
                .await?;
            cluster.started_here = true;
        }
        cluster.bootstrap().await?;
        tracing::info!(pgdata = %cluster.pgdata.display(), fresh, "embedded PostgreSQL running");
        Ok(cluster)
    }

    /// Connection options for `role` on `database`, over the private socket.
    pub fn connect_options(&self, database: &str, role: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(role)
            .database(database)
    }

    /// Where `initdb`, `pg_ctl`, `pg_dump` and `pg_restore` of this cluster's version are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Stops the cluster if this handle started it (fast shutdown: open transactions roll
    /// back, nothing committed is lost). A cluster another process started — a running
    /// server while an admin command runs — is left running for it.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        if !self.started_here {
            return Ok(());
        }
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).await?;
        self.started_here = false;
        Ok(())
    }

    fn log_path(&self) -> String {
        self.pgdata
            .with_file_name("postgres.log")
            .display()
            .to_string()
    }

    async fn prepare_dirs(&self) -> Result<(), EmbeddedError> {
        use std::os::unix::fs::PermissionsExt;
        let parent = self.pgdata.parent().unwrap_or(Path::new("."));
        for dir in [parent, &self.socket_dir] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io(format!("creating {}", dir.display())))?;
            tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .await
                .map_err(io(format!("chmod 0700 {}", dir.display())))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .map_err(io(format!("chown {}", dir.display())))?;
            }
        }
        Ok(())
    }

    async fn initdb(&self) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata.display().to_string();
        self.run(
            "initdb",
            &[
                "-D",
                &pgdata,
                "-U",
                Self::SUPERUSER,
                "--auth-local=trust",
                "--auth-host=reject",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )
        .await?;
        // No TCP at all; the socket lives in our own 0700 directory.
        let conf = format!(
            "\n# procuhelp embedded defaults\nlisten_addresses = ''\nunix_socket_directories = '{}'\nport = {PORT}\nunix_socket_permissions = 0700\n",
            self.socket_dir.display()
        );
        let path = self.pgdata.join("postgresql.conf");
        let mut existing = tokio::fs::read_to_string(&path)
            .await
            .map_err(io("reading postgresql.conf"))?;
        existing.push_str(&conf);
        tokio::fs::write(&path, existing)
            .await
            .map_err(io("writing postgresql.conf"))?;
        Ok(())
    }

    async fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).await.is_ok()
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata.display().to_string();
        let mut full = vec!["-D", pgdata.as_str()];
        full.extend_from_slice(args);
        self.run("pg_ctl", &full).await
    }

    /// `program` of this cluster's binaries with `args`, run as the cluster's OS user.
    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin_dir.join(program));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The server must not inherit anything of ours it does not need.
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        // The postmaster outlives this command by design (pg_ctl daemonises it).
        let out = Command::from(self.command(program, args))
            .output()
            .await
            .map_err(io(format!("running {program}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        tracing::debug!(program, %stderr, "embedded PostgreSQL command failed");
        Err(EmbeddedError::Command {
            command: format!("{program} {}", args.first().copied().unwrap_or_default()),
            status: format!(
                "{}: {}",
                out.status,
                stderr.lines().last().unwrap_or_default()
            ),
            log: self.log_path(),
        })
    }

    async fn bootstrap(&self) -> Result<(), EmbeddedError> {
        let mut conn =
            PgConnection::connect_with(&self.connect_options("postgres", Self::SUPERUSER)).await?;
        let has_owner: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(Self::OWNER_ROLE)
                .fetch_one(&mut conn)
                .await?;
        if !has_owner {
            conn.execute(
                format!(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE",
                    Self::OWNER_ROLE
                )
                .as_str(),
            )
            .await?;
        }
        let has_db: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(Self::DATABASE)
                .fetch_one(&mut conn)
                .await?;
        if !has_db {
            conn.execute(
                format!(
                    "CREATE DATABASE {} OWNER {}",
                    Self::DATABASE,
                    Self::OWNER_ROLE
                )
                .as_str(),
            )
            .await?;
        }
        conn.close().await?;
        Ok(())
    }
}

/// `bin_dir` if given, else the newest `/usr/lib/postgresql/<major>/bin`, else the
/// directory of `initdb` on PATH.
fn find_binaries(bin_dir: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut searched = Vec::new();
    if let Some(dir) = bin_dir {
        if has_all(dir) {
            return Ok(dir.to_path_buf());
        }
        searched.push(dir.display().to_string());
        return Err(EmbeddedError::BinariesMissing {
            searched: searched.join(", "),
        });
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    majors.sort();
    searched.push("/usr/lib/postgresql/*/bin".to_owned());
    if let Some((_, dir)) = majors.into_iter().rev().find(|(_, d)| has_all(d)) {
        return Ok(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_all(&dir) {
                return Ok(dir);
            }
        }
    }
    searched.push("PATH".to_owned());
    Err(EmbeddedError::BinariesMissing {
        searched: searched.join(", "),
    })
}

/// The OS user (uid, gid) the cluster runs as: `None` when we are not root (it runs as
/// us), else the `postgres` user, or `nobody`. A data directory created by a root process
/// must let this user search it (e.g. group-owned by the gid, mode 0710).
pub fn cluster_os_user() -> Result<Option<(u32, u32)>, EmbeddedError> {
    if rustix::process::geteuid().is_root() {
        unprivileged_user().map(Some)
    } else {
        Ok(None)
    }
}

/// Every existing ancestor of `dir` must be searchable by `user`, or PostgreSQL cannot
/// reach its own data directory; say which one is not.
fn check_searchable(dir: &Path, (uid, gid): (u32, u32)) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors() {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode();
        let searchable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(EmbeddedError::DataDir {
                path: ancestor.display().to_string(),
                problem: format!(
                    "the embedded PostgreSQL runs as uid {uid} (PostgreSQL refuses to run as root) and cannot \
                     search this directory; choose a --data-dir it can reach, or grant it search permission \
                     (e.g. chgrp {gid} and chmod g+x)"
                ),
            });
        }
    }
    Ok(())
}

/// The uid/gid the cluster runs as when we are root: `postgres` if it exists, else
/// `nobody`. Read from /etc/passwd (no libc calls needed).
fn unprivileged_user() -> Result<(u32, u32), EmbeddedError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("reading /etc/passwd"))?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != name {
                return None;
            }
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
    };
    lookup("postgres").or_else(|| lookup("nobody")).ok_or_else(|| EmbeddedError::DataDir {
        path: "/etc/passwd".to_owned(),
        problem: "running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as".to_owned(),
    })
}
