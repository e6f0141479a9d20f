//! Opening the database: the embedded cluster by default, a configured server otherwise.

use procuhelp_tenancy::personal_data::Class::{NotPersonal, Personal, Sealed, Secret, UserRef};
use procuhelp_tenancy::personal_data::{PersonalTable, Retention};
use std::path::Path;
use std::str::FromStr;

use anyhow::Context as _;
use procuhelp_tenancy::RuntimeRole;
use procuhelp_tenancy::embedded::LocalCluster;
use procuhelp_tenancy::migrate::{Grant, Migrations, Schema};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use crate::cli::DatabaseArgs;
use procuhelp_core::vault::{SecretName, SecretProvider};

/// The server's own tables (suppliers and purchase requests, `examples/server/migrations`),
/// declared with `app.declare_tenant_table` as any embedder's are: versions 10000 and up
/// (docs/tenancy.md).
pub const MIGRATIONS: Migrations =
    Migrations::app("procuhelp-server", sqlx::migrate!("./migrations"))
        .grants(&[
            Grant::new("app.suppliers", "SELECT, INSERT, UPDATE, DELETE"),
            Grant::new("app.purchase_requests", "SELECT, INSERT, UPDATE"),
            // Used once (used_at), never deleted by the server.
            Grant::new("app.supplier_invitations", "SELECT, INSERT, UPDATE"),
            // Contracts move on (version, termination); their versions are only added.
            Grant::new("app.contracts", "SELECT, INSERT, UPDATE"),
            Grant::new("app.contract_versions", "SELECT, INSERT"),
        ])
        .encrypted_columns(crate::suppliers::ENCRYPTED_COLUMNS)
        .personal_data(PERSONAL_DATA);

/// The register of the server's own tables (`procuhelp_tenancy::personal_data`).
const PERSONAL_DATA: &[PersonalTable] = &[
    PersonalTable {
        table: "app.suppliers",
        subject: None,
        purpose: "suppliers and their bank details",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("name", NotPersonal),
            ("country", NotPersonal),
            ("vat_id", NotPersonal),
            ("status", NotPersonal),
            ("created_by", UserRef),
            ("created_at", NotPersonal),
            ("updated_at", NotPersonal),
            // A sole trader's IBAN is personal data: sealed by the field cipher.
            ("iban_sealed", Sealed),
            // Its country and last four characters, for lists.
            ("iban_hint", Personal),
        ],
    },
    PersonalTable {
        table: "app.contracts",
        subject: None,
        purpose: "contracts with suppliers",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("supplier_id", NotPersonal),
            ("title", NotPersonal),
            ("status", NotPersonal),
            ("current_version", NotPersonal),
            ("created_by", UserRef),
            ("created_at", NotPersonal),
            ("terminated_by", UserRef),
            ("terminated_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.contract_versions",
        subject: None,
        purpose: "every version of a contract's terms (the amendment history)",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("contract_id", NotPersonal),
            ("version", NotPersonal),
            ("value_cents", NotPersonal),
            ("starts_on", NotPersonal),
            ("ends_on", NotPersonal),
            // Free text: it may name people (a sole trader, a contact).
            ("terms", Personal),
            ("changed_by", UserRef),
            ("changed_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.supplier_invitations",
        subject: None,
        purpose: "links sent to a supplier's contact to fill in company and bank details",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("supplier_id", NotPersonal),
            ("token_hash", Secret),
            ("contact_email", Personal),
            ("created_by", UserRef),
            ("created_at", NotPersonal),
            ("expires_at", NotPersonal),
            ("used_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.purchase_requests",
        subject: Some("requested_by"),
        purpose: "purchase requests and their approval",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("title", Personal),
            ("amount_cents", NotPersonal),
            ("requested_by", UserRef),
            ("status", NotPersonal),
            ("approved_by", UserRef),
            ("created_at", Personal),
            ("rejected_by", UserRef),
            // The approver's words on the decision.
            ("decision_comment", Personal),
            ("decided_at", Personal),
            ("version", NotPersonal),
            ("updated_at", Personal),
        ],
    },
];

/// The whole schema the server runs on: tenancy, auth and audit, then its own tables.
pub fn schema() -> Schema {
    Schema::new()
        .with(procuhelp_auth::MIGRATIONS)
        .with(procuhelp_audit::MIGRATIONS)
        .with(MIGRATIONS)
}

/// Where the database is: the embedded cluster (started by [`Database::open`]) or the
/// server named by `--database-url-file`.
#[derive(Debug)]
pub struct Database {
    target: Target,
}

enum Target {
    Embedded(LocalCluster),
    // Connection options may hold a password, and PgConnectOptions' Debug prints it:
    // Target's Debug below shows only where the server is.
    External(Box<PgConnectOptions>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Embedded(cluster) => f.debug_tuple("Embedded").field(cluster).finish(),
            Target::External(opts) => f
                .debug_struct("External")
                .field("host", &opts.get_host())
                .field("port", &opts.get_port())
                .field("ssl_mode", &opts.get_ssl_mode())
                .finish_non_exhaustive(),
        }
    }
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
        if let Target::External(opts) = &target {
            check_transport(opts, args.dangerous_database_without_verified_tls)?;
        }
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

    /// The server backups are taken from and restored into, and the local data directory
    /// the repository must stay apart from: the embedded cluster's superuser over its
    /// private socket, or — for a configured database — the role in `url_file` (one that
    /// row-level security does not bind; `--backup-database-url-file`).
    pub fn backup_server(
        &self,
        args: &DatabaseArgs,
        url_file: Option<&Path>,
    ) -> anyhow::Result<(
        procuhelp_tenancy::backup::PgServer,
        Option<std::path::PathBuf>,
    )> {
        use procuhelp_tenancy::backup::PgServer;
        match &self.target {
            Target::Embedded(c) => Ok((
                PgServer::new(
                    c.bin_dir(),
                    c.connect_options(LocalCluster::DATABASE, LocalCluster::SUPERUSER),
                    None,
                    None,
                ),
                Some(args.data_dir.clone()),
            )),
            Target::External(_) => {
                let file = url_file.context(
                    "backups of a configured database need --backup-database-url-file: the URL \
                     of a role that row-level security does not bind (docs/backups.md)",
                )?;
                let text = zeroize::Zeroizing::new(read_private_file(file)?);
                let parsed = url::Url::parse(text.trim())
                    .map_err(|_| anyhow::anyhow!("{}: not a valid URL", file.display()))?;
                let password = parsed.password().map(|p| {
                    procuhelp_core::SecretText::new(
                        percent_encoding::percent_decode_str(p)
                            .decode_utf8_lossy()
                            .into_owned(),
                    )
                });
                let root_cert = parsed
                    .query_pairs()
                    .find(|(k, _)| k == "sslrootcert")
                    .map(|(_, v)| std::path::PathBuf::from(v.into_owned()));
                let opts = PgConnectOptions::from_str(text.trim()).map_err(|_| {
                    anyhow::anyhow!("{}: not a valid PostgreSQL URL", file.display())
                })?;
                check_transport(&opts, args.dangerous_database_without_verified_tls)?;
                let bin_dir = match &args.pg_bin_dir {
                    Some(dir) => dir.clone(),
                    None => pg_tools_dir()?,
                };
                Ok((PgServer::new(&bin_dir, opts, password, root_cert), None))
            }
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

/// The newest `/usr/lib/postgresql/*/bin` holding `pg_dump` and `pg_restore`.
fn pg_tools_dir() -> anyhow::Result<std::path::PathBuf> {
    let mut dirs: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, std::path::PathBuf)| {
            d.join("pg_dump").is_file() && d.join("pg_restore").is_file()
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|(_, d)| d)
        .context("pg_dump and pg_restore not found under /usr/lib/postgresql/*/bin: install the PostgreSQL client (Debian: postgresql-client) or pass --pg-bin-dir")
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

/// Refuses `pool` for `command`'s tenant work when its role is not bound by row-level
/// security: a superuser, a role with BYPASSRLS, or one that can become either. On such
/// a connection every organisation's rows are visible and writable, so tenant work must
/// never run there; this says so up front, before anything is changed, and names the fix.
pub async fn refuse_rls_bypass(pool: &PgPool, command: &str) -> anyhow::Result<()> {
    let (role, bypass): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, EXISTS (
             SELECT 1 FROM pg_roles
             WHERE pg_has_role(current_user, oid, 'MEMBER') AND (rolsuper OR rolbypassrls))",
    )
    .fetch_one(pool)
    .await
    .context("checking the database role")?;
    if bypass {
        anyhow::bail!(
            "{command} does tenant work, and database role {role} is a superuser or has \
             BYPASSRLS (or can become one), so row-level security would not bind it. Use a \
             role it binds: create a schema owner without SUPERUSER/BYPASSRLS (CREATE ROLE \
             procuhelp_owner LOGIN CREATEROLE; CREATE DATABASE procuhelp OWNER procuhelp_owner), \
             run `procuhelp-server migrate` with that owner's URL, give {command} the owner's \
             URL, and `serve` the runtime role's (docs/tenancy.md)"
        );
    }
    Ok(())
}

/// The transport policy for a configured database: a Unix socket or a loopback address
/// may be used without TLS (nothing crosses a network); any other host needs
/// `sslmode=verify-full` (TLS, the certificate checked against the trusted CAs, e.g.
/// `sslrootcert=/path/ca.pem`, and against the host name), unless `allow_unverified`
/// (`--dangerous-database-without-verified-tls`) says the operator knows better.
///
/// The error never quotes the URL (it may hold a password).
pub fn check_transport(opts: &PgConnectOptions, allow_unverified: bool) -> anyhow::Result<()> {
    let host = opts.get_host();
    if opts.get_socket().is_some() || host.starts_with('/') {
        return Ok(());
    }
    if procuhelp_core::is_loopback_host(host) {
        return Ok(());
    }
    if matches!(opts.get_ssl_mode(), PgSslMode::VerifyFull) {
        return Ok(());
    }
    if allow_unverified {
        tracing::warn!(
            host,
            "database connection over TCP without verified TLS (--dangerous-database-without-verified-tls)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to reach the database at {host} over TCP without verified TLS: add \
         sslmode=verify-full&sslrootcert=/path/to/ca.pem to the database URL (or, knowingly, \
         pass --dangerous-database-without-verified-tls)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(url).expect("test URL")
    }

    #[test]
    fn loopback_and_sockets_may_go_without_tls() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5433/db?sslmode=disable",
            "postgres://u@127.8.9.10/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            check_transport(&opts(url), false).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn other_hosts_need_verify_full() {
        for url in [
            "postgres://u:hunter2@db.example.com/db",
            "postgres://u:hunter2@db.example.com/db?sslmode=require",
            "postgres://u:hunter2@db.example.com/db?sslmode=verify-ca&sslrootcert=/ca.pem",
            "postgres://u:hunter2@10.0.0.5:5432/db?sslmode=prefer",
            "postgres://u:hunter2@localhost.example.com/db",
        ] {
            let err = check_transport(&opts(url), false).unwrap_err().to_string();
            assert!(err.contains("verify-full"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            // The explicit flag lets it through.
            check_transport(&opts(url), true).unwrap();
        }
        check_transport(
            &opts("postgres://u@db.example.com/db?sslmode=verify-full&sslrootcert=/ca.pem"),
            false,
        )
        .unwrap();
    }
}
