//! The PostgreSQL side: running `pg_dump`/`pg_restore` without secrets in argv or the
//! environment, and the manifest of a snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use procuhelp_core::SecretText;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use super::BackupError;

/// A PostgreSQL server that backups are taken from and restored into, reached as a role
/// that row-level security does not bind (a superuser, or `BYPASSRLS` with
/// `pg_read_all_data` for backups and `CREATEDB` for restores): a backup must hold every
/// organisation's rows, which no tenant-bound role can read. On the embedded cluster this
/// is its bootstrap superuser over the private socket.
pub struct PgServer {
    bin_dir: PathBuf,
    opts: PgConnectOptions,
    password: Option<SecretText>,
    ssl_root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("bin_dir", &self.bin_dir)
            .field("host", &self.opts.get_host())
            .field("database", &self.database())
            .finish_non_exhaustive()
    }
}

/// Session settings that fix the text form of every type, so a digest computed here and
/// one computed on a restored copy agree.
const STABLE_TEXT: &str = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; \
     SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'; \
     SET LOCAL IntervalStyle = 'iso_8601'";

impl PgServer {
    /// The server at `opts` (whose database is the live one), with `pg_dump` and
    /// `pg_restore` of the server's major version in `bin_dir`. `password` and
    /// `ssl_root_cert` are what `opts` cannot give back to a child process.
    pub fn new(
        bin_dir: &Path,
        opts: PgConnectOptions,
        password: Option<SecretText>,
        ssl_root_cert: Option<PathBuf>,
    ) -> Self {
        Self {
            bin_dir: bin_dir.to_path_buf(),
            opts,
            password,
            ssl_root_cert,
        }
    }

    /// The live database.
    pub fn database(&self) -> &str {
        self.opts.get_database().unwrap_or("postgres")
    }

    /// Connection options for `database` on this server, as this role.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        let opts = self.opts.clone().database(database);
        match &self.password {
            Some(p) => opts.password(p.expose()),
            None => opts,
        }
    }

    pub(crate) async fn connect(&self, database: &str) -> Result<PgConnection, BackupError> {
        Ok(PgConnection::connect_with(&self.connect_options(database)).await?)
    }

    /// Starts `pg_dump`/`pg_restore` with `args` on `database`: a clean environment with
    /// only where to connect; a password goes through an inherited in-memory file
    /// (`PGPASSFILE=/proc/self/fd/N`), never argv, the environment or the disk. Its stderr
    /// is collected ([`collect_stderr`]) for [`Running::finish`].
    pub(crate) fn spawn(
        &self,
        tool: &'static str,
        database: &str,
        args: &[&str],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Running, BackupError> {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("PGDATABASE", database)
            .env("PGUSER", self.opts.get_username())
            .env("PGPORT", self.opts.get_port().to_string())
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGAPPNAME", "procuhelp-backup");
        match self.opts.get_socket() {
            Some(dir) => cmd.env("PGHOST", dir),
            None => cmd.env("PGHOST", self.opts.get_host()),
        };
        let mode = match self.opts.get_ssl_mode() {
            sqlx::postgres::PgSslMode::Disable => "disable",
            sqlx::postgres::PgSslMode::Allow => "allow",
            sqlx::postgres::PgSslMode::Prefer => "prefer",
            sqlx::postgres::PgSslMode::Require => "require",
            sqlx::postgres::PgSslMode::VerifyCa => "verify-ca",
            sqlx::postgres::PgSslMode::VerifyFull => "verify-full",
        };
        cmd.env("PGSSLMODE", mode);
        if let Some(ca) = &self.ssl_root_cert {
            cmd.env("PGSSLROOTCERT", ca);
        }
        let passfile = match &self.password {
            Some(p) => {
                let fd = passfile(p)?;
                use std::os::fd::AsRawFd as _;
                cmd.env("PGPASSFILE", format!("/proc/self/fd/{}", fd.as_raw_fd()));
                Some(fd)
            }
            None => None,
        };
        cmd.args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| BackupError::io(format!("starting {tool}"), e))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| BackupError::Refused(format!("{tool} has no stderr")))?;
        Ok(Running {
            tool,
            child,
            stderr: tokio::spawn(collect_stderr(stderr)),
            _passfile: passfile,
        })
    }
}

/// A running `pg_dump` or `pg_restore` ([`PgServer::spawn`]).
pub(crate) struct Running {
    tool: &'static str,
    /// The process (its stdin or stdout, when piped, are taken from here).
    pub(crate) child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
    // The password file stays open until the tool has ended.
    _passfile: Option<std::os::fd::OwnedFd>,
}

impl Running {
    /// Waits for the tool; a failure is [`BackupError::Tool`] with the last lines of its
    /// message.
    pub(crate) async fn finish(mut self) -> Result<(), BackupError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| BackupError::io(format!("waiting for {}", self.tool), e))?;
        let detail = self.stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(BackupError::Tool {
                tool: self.tool,
                status: status.to_string(),
                detail,
            })
        }
    }
}

/// An in-memory `.pgpass` (mode 0600) that child processes inherit.
fn passfile(password: &SecretText) -> Result<std::os::fd::OwnedFd, BackupError> {
    use rustix::fs::{MemfdFlags, Mode, fchmod, memfd_create};
    let io = |e: rustix::io::Errno| BackupError::io("creating the password file", e.into());
    // No CLOEXEC: the child must inherit it.
    let fd = memfd_create("procuhelp-pgpass", MemfdFlags::empty()).map_err(io)?;
    fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io)?;
    let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
    let line = zeroize::Zeroizing::new(format!("*:*:*:*:{escaped}\n"));
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, line.as_bytes())
        .map_err(|e| BackupError::io("writing the password file", e))?;
    Ok(file.into())
}

/// Collects a child's stderr, bounded, keeping only printable text: a tool's message can
/// hold bytes of whatever it failed to read.
async fn collect_stderr(mut stderr: tokio::process::ChildStderr) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if kept.len() < 16 * 1024 {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    let text: String = String::from_utf8_lossy(&kept)
        .chars()
        .map(|c| {
            if c == '\n' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    // DETAIL, CONTEXT and COPY lines can quote row values (a duplicate key's e-mail
    // address): never carried into an error or a log.
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !["DETAIL", "CONTEXT", "COPY ", "LINE "]
                .iter()
                .any(|k| l.contains(k))
        })
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ")
}

/// What a backup held when it was taken, from the same snapshot as its dump: the proof
/// a restored copy is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup's label.
    pub label: String,
    /// The snapshot's time.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// The database it is of.
    pub database: String,
    /// The database's owner role.
    pub owner: String,
    /// Roles granted CONNECT on the database (restored onto the copy).
    pub connect_roles: Vec<String>,
    /// `server_version` of the source.
    pub server_version: String,
    /// Applied migration versions (`_sqlx_migrations`), ascending.
    pub migrations: Vec<i64>,
    /// The organisations (`app.organisations`).
    pub organisations: Vec<uuid::Uuid>,
    /// Per table (`schema.table`): rows and an order-independent digest of their text.
    pub tables: BTreeMap<String, TableDigest>,
    /// Tables whose rows are in the organisations' own parts, not in the archive (empty
    /// in a backup from before parts existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organisation_tables: Vec<String>,
    /// Organisations whose part was written (`org-<id>.phbk`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organisation_parts: Vec<uuid::Uuid>,
    /// Organisations in the snapshot that were offboarded while the backup was taken:
    /// no part was written (their rows are not in this backup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<uuid::Uuid>,
}

impl Manifest {
    /// Whether organisations' rows are in parts of their own (sealed under each
    /// organisation's KEK).
    pub fn is_split(&self) -> bool {
        !self.organisation_tables.is_empty()
    }
}

/// A table's row count and content digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// Rows.
    pub rows: i64,
    /// `record:` or `text:` and the sum of a 64-bit hash of each row (order-independent).
    pub digest: String,
    /// For a table split by organisation, each organisation's share of `rows` and
    /// `digest` (the digest is a sum, so a copy without some organisations is compared
    /// with the total less their shares).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_organisation: BTreeMap<uuid::Uuid, TableDigest>,
}

impl TableDigest {
    /// The digest of the table without the rows of `organisations`. A digest that does
    /// not parse is returned unchanged (and so compares unequal).
    pub fn without(&self, organisations: &[uuid::Uuid]) -> TableDigest {
        let Some((method, total)) = split_digest(&self.digest) else {
            return self.clone();
        };
        let mut rows = self.rows;
        let mut sum = total;
        for org in organisations {
            if let Some(share) = self.by_organisation.get(org) {
                match split_digest(&share.digest) {
                    Some((m, part)) if m == method => {
                        rows -= share.rows;
                        sum -= part;
                    }
                    _ => return self.clone(),
                }
            }
        }
        TableDigest {
            rows,
            digest: format!("{method}:{sum}"),
            by_organisation: BTreeMap::new(),
        }
    }
}

fn split_digest(digest: &str) -> Option<(&str, i128)> {
    let (method, sum) = digest.split_once(':')?;
    Some((method, sum.parse().ok()?))
}

/// Begins the snapshot a backup is taken from; returns its id for `pg_dump --snapshot`.
pub(crate) async fn begin_snapshot(conn: &mut PgConnection) -> Result<String, BackupError> {
    exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await?;
    for statement in STABLE_TEXT.split(';') {
        exec(statement).execute(&mut *conn).await?;
    }
    // The manifest reads beside pg_dump: it must not queue behind a waiting DDL either.
    exec("SET LOCAL lock_timeout = '60s'")
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *conn)
        .await?)
}

/// The manifest of what `conn`'s transaction sees (call inside a snapshot).
pub(crate) async fn manifest(
    conn: &mut PgConnection,
    label: &str,
    split: &[super::parts::SplitTable],
) -> Result<Manifest, BackupError> {
    let (taken_at, database, owner, server_version): (OffsetDateTime, String, String, String) =
        sqlx::query_as(
            "SELECT transaction_timestamp(), current_database()::text,
                    pg_get_userbyid(d.datdba)::text, current_setting('server_version')
             FROM pg_database d WHERE d.datname = current_database()",
        )
        .fetch_one(&mut *conn)
        .await?;
    let connect_roles: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
         JOIN pg_roles r ON r.oid = a.grantee
         WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'
           AND a.grantee <> d.datdba ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let migrations: Vec<i64> = if table_exists(conn, "public._sqlx_migrations").await? {
        sqlx::query_scalar(
            "SELECT version FROM public._sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    let organisations: Vec<uuid::Uuid> = if table_exists(conn, "app.organisations").await? {
        sqlx::query_scalar("SELECT id FROM app.organisations ORDER BY id")
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = BTreeMap::new();
    for name in names {
        let key = split.iter().find(|t| t.name == name).map(|t| t.key());
        let digest = table_digest(conn, &name, key).await?;
        tables.insert(name, digest);
    }
    Ok(Manifest {
        label: label.to_owned(),
        taken_at,
        database,
        owner,
        connect_roles,
        server_version,
        migrations,
        organisations,
        tables,
        organisation_tables: split.iter().map(|t| t.name.clone()).collect(),
        organisation_parts: Vec::new(),
        left_out: Vec::new(),
    })
}

/// Whether `org` has been offboarded, as the live database says now (outside any
/// snapshot). False on a schema without tombstones.
pub(crate) async fn offboarded(
    conn: &mut PgConnection,
    org: uuid::Uuid,
) -> Result<bool, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT to_regclass('app.offboarded_organisations') IS NOT NULL
            AND EXISTS (SELECT 1 FROM app.offboarded_organisations WHERE id = $1)",
    )
    .bind(org)
    .fetch_one(&mut *conn)
    .await?)
}

/// Rows and digest of table `name` (a `format('%I.%I')` result: quoted identifiers).
///
/// The digest sums `hash_record_extended` over the rows: each column's own hash
/// function, no text conversion (3× faster than hashing `row::text`, measured). A table
/// with a column type that has no hash function falls back to hashing the pinned text
/// form; the method is part of the digest, so both sides always compare like with like.
/// `key` (a quoted column naming the organisation) splits the digest by organisation.
async fn table_digest(
    conn: &mut PgConnection,
    name: &str,
    key: Option<&str>,
) -> Result<TableDigest, BackupError> {
    // A table with no organisation column is one group, keyed by NULL.
    let group = key.unwrap_or("NULL::uuid");
    exec("SAVEPOINT procuhelp_digest")
        .execute(&mut *conn)
        .await?;
    let by_record: Result<Vec<(Option<uuid::Uuid>, i64, String)>, sqlx::Error> =
        sqlx::query_as(&format!(
            "SELECT {group}, count(*), coalesce(sum(hash_record_extended(t, 0)::numeric), 0)::text FROM {name} t GROUP BY 1"
        ))
        .fetch_all(&mut *conn)
        .await;
    let (method, groups) = match by_record {
        Ok(groups) => {
            exec("RELEASE SAVEPOINT procuhelp_digest")
                .execute(&mut *conn)
                .await?;
            ("record", groups)
        }
        Err(_) => {
            exec("ROLLBACK TO SAVEPOINT procuhelp_digest")
                .execute(&mut *conn)
                .await?;
            let groups = sqlx::query_as(&format!(
                "SELECT {group}, count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {name} t GROUP BY 1"
            ))
            .fetch_all(&mut *conn)
            .await?;
            ("text", groups)
        }
    };
    let mut rows = 0i64;
    let mut sum = 0i128;
    let mut by_organisation = BTreeMap::new();
    for (org, count, part) in groups {
        let part: i128 = part
            .parse()
            .map_err(|_| BackupError::Refused(format!("the digest of {name} is not a number")))?;
        rows += count;
        sum += part;
        if let (Some(org), Some(_)) = (org, key) {
            by_organisation.insert(
                org,
                TableDigest {
                    rows: count,
                    digest: format!("{method}:{part}"),
                    by_organisation: BTreeMap::new(),
                },
            );
        }
    }
    Ok(TableDigest {
        rows,
        digest: format!("{method}:{sum}"),
        by_organisation,
    })
}

/// Of `organisations` (whose backup keys the vault no longer has), those the live
/// database does not confirm were offboarded (a tombstone in
/// `app.offboarded_organisations`; only offboarding destroys a backup key). An error when
/// the live database cannot answer (gone, or without the schema).
pub(crate) async fn unconfirmed_destructions(
    server: &PgServer,
    organisations: &[uuid::Uuid],
) -> Result<Vec<uuid::Uuid>, BackupError> {
    let mut conn = server.connect(server.database()).await?;
    let unconfirmed = sqlx::query_scalar(
        "SELECT o FROM unnest($1::uuid[]) AS o
         WHERE NOT EXISTS (SELECT 1 FROM app.offboarded_organisations t WHERE t.id = o)
         ORDER BY 1",
    )
    .bind(organisations)
    .fetch_all(&mut conn)
    .await;
    let _ = conn.close().await;
    Ok(unconfirmed?)
}

async fn table_exists(conn: &mut PgConnection, name: &str) -> Result<bool, BackupError> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?)
}

/// The manifest of database `database` now (a snapshot of its own).
pub(crate) async fn manifest_of(
    server: &PgServer,
    database: &str,
    label: &str,
) -> Result<Manifest, BackupError> {
    let mut conn = server.connect(database).await?;
    begin_snapshot(&mut conn).await?;
    let m = async {
        let split = super::parts::split_tables(&mut conn).await?;
        manifest(&mut conn, label, &split).await
    }
    .await;
    let _ = exec("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    m
}

/// One statement, unprepared (DDL and session settings; `raw_sql`'s future is not `Send`
/// across a spawned task with a borrowed connection).
pub(crate) fn exec(
    sql: &str,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// Quotes an identifier for SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
