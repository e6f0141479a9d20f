//! Opening the database: the embedded cluster by default, a configured server otherwise.

use std::path::Path;
use std::str::FromStr;

use anyhow::Context as _;
use procuhelp_tenancy::RuntimeRole;
use procuhelp_tenancy::embedded::LocalCluster;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::cli::DatabaseArgs;
use procuhelp_core::vault::{SecretName, SecretProvider};

/// Where the database is: the embedded cluster (started by [`Database::open`]) or the
/// server named by `--database-url-file`.
#[derive(Debug)]
pub struct Database {
    target: Target,
}

#[derive(Debug)]
enum Target {
    Embedded(LocalCluster),
    // Connection options may hold a password: never logged (PgConnectOptions' Debug
    // prints it, so this variant is only ever used, not formatted).
    External(Box<PgConnectOptions>),
}

impl Database {
    /// Starts the embedded cluster, or reads the URL from the vault secret or the file.
    pub async fn open(args: &DatabaseArgs, vault: &dyn SecretProvider) -> anyhow::Result<Self> {
        let target = match (&args.database_url_secret, &args.database_url_file) {
            (Some(name), _) => {
                let name = SecretName::new(name)?;
                let secret = vault.get(&name).await.with_context(|| {
                    format!("reading the database URL from vault secret {name}")
                })?;
                let url = std::str::from_utf8(secret.value.expose())
                    .map_err(|_| anyhow::anyhow!("vault secret {name}: not UTF-8"))?;
                Target::External(Box::new(PgConnectOptions::from_str(url.trim()).map_err(
                    |_| anyhow::anyhow!("vault secret {name}: not a valid PostgreSQL URL"),
                )?))
            }
            (None, Some(file)) => Target::External(Box::new(read_url_file(file)?)),
            (None, None) => Target::Embedded(
                LocalCluster::start(&args.data_dir.join("pg"), args.pg_bin_dir.as_deref())
                    .await
                    .context("starting the embedded database")?,
            ),
        };
        Ok(Self { target })
    }

    /// Whether this is the embedded cluster (which this process owns and migrates).
    pub fn is_embedded(&self) -> bool {
        matches!(self.target, Target::Embedded(_))
    }

    /// A pool as the schema owner: the embedded owner role, or the configured URL.
    pub async fn owner_pool(&self) -> anyhow::Result<PgPool> {
        match &self.target {
            Target::Embedded(c) => {
                connect(
                    c.connect_options(LocalCluster::DATABASE, LocalCluster::OWNER_ROLE),
                    2,
                )
                .await
            }
            Target::External(opts) => connect((**opts).clone(), 2).await,
        }
    }

    /// A pool as the runtime role: the embedded cluster's `role`, or the configured URL
    /// (which must then name the runtime role; the posture check verifies it).
    pub async fn runtime_pool(&self, role: &RuntimeRole, size: u32) -> anyhow::Result<PgPool> {
        match &self.target {
            Target::Embedded(c) => {
                connect(c.connect_options(LocalCluster::DATABASE, role.name()), size).await
            }
            Target::External(opts) => connect((**opts).clone(), size).await,
        }
    }

    /// Stops the embedded cluster, if any (after the pools are closed).
    pub async fn close(self) -> anyhow::Result<()> {
        if let Target::Embedded(cluster) = self.target {
            cluster
                .stop()
                .await
                .context("stopping the embedded database")?;
        }
        Ok(())
    }
}

async fn connect(opts: PgConnectOptions, size: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(opts)
        .await
        .context("connecting to PostgreSQL")
}

/// Reads a PostgreSQL URL from a file that only its owner may read.
pub fn read_private_file(file: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).with_context(|| format!("{}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by group or others (mode {mode:o}); chmod 600 it",
            file.display()
        );
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

fn read_url_file(file: &Path) -> anyhow::Result<PgConnectOptions> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(file).with_context(|| format!("database URL file {}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "database URL file {} is readable by group or others (mode {mode:o}); chmod 600 it",
            file.display()
        );
    }
    let url =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // The parse error could quote the URL (and its password): replace it.
    PgConnectOptions::from_str(url.trim())
        .map_err(|_| anyhow::anyhow!("{}: not a valid PostgreSQL URL", file.display()))
}
