//! Encrypted backups, restores and restore drills (feature `backup`).
//!
//! The engine is PostgreSQL's own `pg_dump`/`pg_restore` (custom format); what this
//! module adds is what no backup tool does for you:
//! - the dump is sealed as it is written, in authenticated AES-256-GCM chunks under a
//!   data key only the vault's `backup` KEK unwraps ([`sealed`]): the repository never
//!   holds plaintext, and any changed, missing or reordered byte is found and named;
//! - a [`Manifest`] from the *same snapshot* as the dump (per-table rows and a content
//!   digest, migrations, organisations), sealed beside it;
//! - a repository kept apart from the data ([`Repository`], [`Placement`]) with a
//!   completion record written last, and retention ([`Retention`]);
//! - restores that verify the whole backup before touching a database, restore into a
//!   new database and only then rename it into place ([`restore`]);
//! - a drill ([`ScratchCopy`], [`drill`]) that restores into a scratch database that is never the live
//!   one and proves the copy: the manifest matches table by table, migrations are at the
//!   expected version, and the embedder's own [`DrillChecks`] pass (posture, audit chains,
//!   keys).
//!
//! Why logical dumps and not pgBackRest: docs/backups.md.
//!
//! ```no_run
//! # async fn demo(server: procuhelp_tenancy::backup::PgServer,
//! #     vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>)
//! #     -> Result<(), procuhelp_tenancy::backup::BackupError> {
//! use procuhelp_tenancy::backup::{self, Placement, Repository};
//! let repo = Repository::open("/mnt/backups/procuhelp".as_ref(), Some("./data".as_ref()), Placement::Apart)?;
//! let info = backup::take(&server, &repo, vault.as_ref()).await?;
//! println!("backup {} of {} bytes", info.label, info.dump_bytes);
//! # Ok(()) }
//! ```

mod parts;
mod pg;
mod repo;
mod retention;
pub mod sealed;

use std::process::Stdio;
use std::sync::Arc;

use procuhelp_core::vault::{SecretProvider, VaultError};
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub use pg::{Manifest, PgServer, TableDigest};
pub use repo::{
    BackupInfo, COMPLETE_FILE, DRILLS_DIR, DUMP_FILE, Entry, MANIFEST_FILE, Placement, Repository,
    check_label, label_time,
};
pub use retention::Retention;
use sealed::{FileKind, SealedWriter};

/// Why a backup, restore or drill failed. Never carries key material or row data, and
/// never a tool's raw output (a tool reading a wrongly-keyed file can print its bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The repository is where it must not be.
    #[error("backup repository {repo} refused: {problem}")]
    Placement {
        /// The repository.
        repo: String,
        /// Why.
        problem: String,
    },
    /// A backup file is damaged, truncated or not what it claims.
    #[error("backup file {file} is damaged: {part}; nothing was restored from it")]
    Corrupt {
        /// The file.
        file: String,
        /// Which part.
        part: String,
    },
    /// The key that opens backups is not in the vault.
    #[error("the backup cannot be decrypted: {0}")]
    KeyUnavailable(String),
    /// An organisation's key is gone from the vault (offboarded): its
    /// part of every backup is unreadable, as intended.
    #[error("key-encryption key {kek} was destroyed: what it sealed is unreadable")]
    KeyDestroyed {
        /// The KEK.
        kek: String,
    },
    /// The vault failed.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    /// Encryption failed.
    #[error("encryption: {0}")]
    Crypto(procuhelp_core::crypto::CryptoError),
    /// `pg_dump` or `pg_restore` failed.
    #[error("{tool} failed ({status}): {detail}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// The last lines of its message (printable characters only).
        detail: String,
    },
    /// No such backup.
    #[error("no complete backup {0} in the repository")]
    NotFound(String),
    /// Refused before anything was changed.
    #[error("{0}")]
    Refused(String),
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Local I/O (a full disk, an unreachable mount).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

const READ_BUF: usize = 1 << 20;

/// Takes a backup of `server`'s live database into `repo`: `pg_dump` of one exported
/// snapshot, sealed as it streams, then the manifest of that same snapshot, then the
/// completion record. On any failure the partial directory is removed (and were the
/// process killed, what is left has no completion record: never listed as a backup).
pub async fn take(
    server: &PgServer,
    repo: &Repository,
    vault: &dyn SecretProvider,
) -> Result<BackupInfo, BackupError> {
    repo.recheck()?;
    let label = repo::new_label(OffsetDateTime::now_utc())?;
    let dir = repo.dir(&label)?;
    std::fs::create_dir(&dir)
        .map_err(|e| BackupError::io(format!("creating {}", dir.display()), e))?;
    let result = take_into(server, &dir, &label, vault).await;
    if result.is_err() {
        let _ = repo.remove(&label);
    }
    result
}

async fn take_into(
    server: &PgServer,
    dir: &std::path::Path,
    label: &str,
    vault: &dyn SecretProvider,
) -> Result<BackupInfo, BackupError> {
    let database = server.database().to_owned();
    let mut conn = server.connect(&database).await?;
    // A role that RLS binds would dump only what its policies show: a backup that looks
    // whole and silently lacks every organisation's rows. Refused.
    let unbound: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    if !unbound {
        let _ = conn.close().await;
        return Err(BackupError::Refused(
            "the backup role is bound by row-level security, so it would see no tenant's rows: \
             use a superuser, or a role with BYPASSRLS and pg_read_all_data"
                .to_owned(),
        ));
    }
    let snapshot = pg::begin_snapshot(&mut conn).await?;
    // Rows of organisations go into parts sealed under each organisation's own key
    // (`parts`), so the archive leaves their data out.
    let split = parts::split_tables(&mut conn).await?;
    let excluded: Vec<String> = split
        .iter()
        .map(|t| format!("--exclude-table-data={}", t.name))
        .collect();

    let dump_path = dir.join(DUMP_FILE);
    let file = create_private(&dump_path).await?;
    let writer = SealedWriter::create(
        tokio::io::BufWriter::with_capacity(READ_BUF, file),
        FileKind::Dump,
        label,
        vault,
    )
    .await?;
    let snapshot = format!("--snapshot={snapshot}");
    let mut args = vec![
        "--format=custom",
        "--compress=1",
        "--no-password",
        // Never queue behind (and in front of) a lock another session waits for.
        "--lock-wait-timeout=60s",
        snapshot.as_str(),
    ];
    args.extend(excluded.iter().map(String::as_str));
    let mut pg_dump = server.spawn("pg_dump", &database, &args, Stdio::null(), Stdio::piped())?;
    let stdout = pg_dump.child.stdout.take();
    // The manifest and the organisations' parts are read on the snapshot's own
    // connection while pg_dump streams.
    let (sealed, manifest) = tokio::join!(seal_stream(stdout, writer), async {
        let mut manifest = pg::manifest(&mut conn, label, &split).await?;
        parts::write_part(&mut conn, dir, label, None, &part_kek(None)?, &split, vault).await?;
        // Every organisation with a row anywhere, not only those with an
        // `app.organisations` row: a row without one (an audit event has no foreign key)
        // must not fall between the archive and the parts.
        let mut orgs: std::collections::BTreeSet<uuid::Uuid> =
            manifest.organisations.iter().copied().collect();
        for table in manifest.tables.values() {
            orgs.extend(table.by_organisation.keys().copied());
        }
        let mut live = server.connect(&database).await?;
        for org in orgs {
            // Offboarded since the snapshot: its part is not written (its key may already
            // be gone — writing would create it again), and checked again after writing
            // (offboarding may have destroyed the key meanwhile).
            if pg::offboarded(&mut live, org).await? {
                manifest.left_out.push(org);
                continue;
            }
            let kek = part_kek(Some(org))?;
            parts::write_part(&mut conn, dir, label, Some(org), &kek, &split, vault).await?;
            if pg::offboarded(&mut live, org).await? {
                let _ = std::fs::remove_file(dir.join(parts::part_file(org)));
                match vault.destroy_kek(&kek).await {
                    Ok(()) | Err(VaultError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                manifest.left_out.push(org);
                continue;
            }
            manifest.organisation_parts.push(org);
        }
        let _ = live.close().await;
        Ok::<_, BackupError>(manifest)
    });
    let dumped = pg_dump.finish().await;
    let _ = pg::exec("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    dumped?;
    let (mut file, dump_bytes, plain_bytes) = sealed?;
    sync_file(&mut file, &dump_path).await?;
    let manifest = manifest?;

    let manifest_path = dir.join(MANIFEST_FILE);
    let file = create_private(&manifest_path).await?;
    let mut writer = SealedWriter::create(file, FileKind::Manifest, label, vault).await?;
    let json = serde_json::to_vec(&manifest)
        .map_err(|e| BackupError::Refused(format!("encoding the manifest: {e}")))?;
    writer.write(&json).await?;
    let (mut file, _) = writer.finish().await?;
    sync_file(&mut file, &manifest_path).await?;
    repo::sync_dir(dir)?;

    let info = BackupInfo {
        label: label.to_owned(),
        taken_at: manifest.taken_at,
        finished_at: OffsetDateTime::now_utc(),
        database,
        dump_bytes,
        plain_bytes,
    };
    let record = serde_json::to_vec_pretty(&info)
        .map_err(|e| BackupError::Refused(format!("encoding the record: {e}")))?;
    Repository::write_atomically(dir, COMPLETE_FILE, &record)?;
    Ok(info)
}

async fn seal_stream(
    stdout: Option<tokio::process::ChildStdout>,
    mut writer: SealedWriter<tokio::io::BufWriter<tokio::fs::File>>,
) -> Result<(tokio::fs::File, u64, u64), BackupError> {
    let mut stdout =
        stdout.ok_or_else(|| BackupError::Refused("pg_dump has no stdout".to_owned()))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut plain = 0u64;
    loop {
        let n = stdout
            .read(&mut buf)
            .await
            .map_err(|e| BackupError::io("reading pg_dump's output", e))?;
        if n == 0 {
            break;
        }
        plain += n as u64;
        writer.write(&buf[..n]).await?;
    }
    let (out, size) = writer.finish().await?;
    Ok((out.into_inner(), size, plain))
}

/// The KEK that seals the part of `org`: the organisation's `tenant-<id>-backup`,
/// destroyed only by offboarding ([`crate::offboarding::destroy_keys`]); the `backup`
/// KEK for the rows of no organisation.
fn part_kek(org: Option<uuid::Uuid>) -> Result<String, BackupError> {
    let Some(org) = org else {
        return Ok(sealed::BACKUP_KEK.to_owned());
    };
    let org = procuhelp_core::OrgId::from_uuid(org)
        .map_err(|_| BackupError::Refused("an organisation with the nil id".to_owned()))?;
    Ok(crate::field_cipher::backup_kek_name(org))
}

async fn create_private(path: &std::path::Path) -> Result<tokio::fs::File, BackupError> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| BackupError::io(format!("creating {}", path.display()), e))
}

async fn sync_file(file: &mut tokio::fs::File, path: &std::path::Path) -> Result<(), BackupError> {
    file.flush()
        .await
        .map_err(|e| BackupError::io(format!("writing {}", path.display()), e))?;
    file.sync_all()
        .await
        .map_err(|e| BackupError::io(format!("syncing {}", path.display()), e))
}

/// Reads and authenticates backup `info`'s files whole, and returns its manifest.
/// Nothing is restored from a backup that fails this.
pub async fn verify(
    repo: &Repository,
    info: &BackupInfo,
    vault: &dyn SecretProvider,
) -> Result<Manifest, BackupError> {
    verify_files(repo, info, vault, true).await
}

/// [`verify`]; `parts: false` leaves the organisations' parts to the restore, which
/// authenticates every chunk as it loads it into a database that is dropped on any
/// failure (one pass over the data instead of two).
async fn verify_files(
    repo: &Repository,
    info: &BackupInfo,
    vault: &dyn SecretProvider,
    parts: bool,
) -> Result<Manifest, BackupError> {
    let dir = repo.dir(&info.label)?;
    let manifest = read_manifest(&dir, &info.label, vault).await?;
    // The completion record is not sealed: it must say what the sealed manifest says.
    if manifest.taken_at != info.taken_at || manifest.database != info.database {
        return Err(BackupError::Corrupt {
            file: dir.join(COMPLETE_FILE).display().to_string(),
            part: "the completion record does not match the sealed manifest".to_owned(),
        });
    }
    sealed::open_file(&dir.join(DUMP_FILE), FileKind::Dump, &info.label, vault)
        .await?
        .verify_all()
        .await?;
    if parts && manifest.is_split() {
        for org in
            std::iter::once(None).chain(manifest.organisation_parts.iter().copied().map(Some))
        {
            match open_part(&dir, &info.label, org, vault).await {
                Ok(reader) => {
                    reader.verify_all().await?;
                }
                // Destroyed on purpose (checked against the live database by restores
                // and drills): nothing left to authenticate.
                Err(BackupError::KeyDestroyed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(manifest)
}

async fn open_part(
    dir: &std::path::Path,
    label: &str,
    org: Option<uuid::Uuid>,
    vault: &dyn SecretProvider,
) -> Result<sealed::SealedReader<tokio::io::BufReader<tokio::fs::File>>, BackupError> {
    sealed::open_file_under(
        &dir.join(parts::file_name(org)),
        FileKind::Organisation,
        &parts::part_label(label, org),
        &part_kek(org)?,
        vault,
    )
    .await
}

async fn read_manifest(
    dir: &std::path::Path,
    label: &str,
    vault: &dyn SecretProvider,
) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let mut reader = sealed::open_file(&path, FileKind::Manifest, label, vault).await?;
    let mut json = Vec::new();
    while let Some(chunk) = reader.next_chunk().await? {
        json.extend_from_slice(&chunk);
    }
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|_| BackupError::Corrupt {
        file: path.display().to_string(),
        part: "the manifest does not parse".to_owned(),
    })?;
    if manifest.label != label {
        return Err(BackupError::Corrupt {
            file: path.display().to_string(),
            part: "the manifest names another backup".to_owned(),
        });
    }
    Ok(manifest)
}

/// Progress of a restore: plaintext bytes fed to `pg_restore` so far, of the total.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Where a restore goes.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    /// The database to create on the server.
    pub database: String,
    /// Replace it if it exists (the old one is kept, renamed `<name>_replaced_<time>`).
    /// Without it an existing database is refused before anything is done.
    pub replace_existing: bool,
    /// Restore without the organisations whose key was destroyed even when the live
    /// database cannot confirm they were offboarded (it is gone: a disaster
    /// restore). Without it such a restore is refused: a vault restored from a stale
    /// escrow would otherwise silently drop an organisation.
    pub accept_destroyed_keys: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restored {
    /// The backup restored.
    pub label: String,
    /// The database now holding it.
    pub database: String,
    /// The database it replaced, renamed, if any.
    pub replaced: Option<String>,
    /// Plaintext bytes restored.
    pub bytes: u64,
    /// Organisations left out: their key was destroyed (offboarded
    /// after the backup), so their part cannot be read.
    #[serde(default)]
    pub destroyed_organisations: Vec<uuid::Uuid>,
}

/// Restores backup `label` (or the latest complete one) into `target` on `server`.
///
/// The whole backup is authenticated first; then it is restored into a new database
/// under a temporary name, which gets the target's name only when `pg_restore` has
/// succeeded. A failed or interrupted restore leaves no database under the target's name
/// (the temporary one is dropped; one left by a killed process is named `*_restoring_*`).
pub async fn restore(
    server: &PgServer,
    repo: &Repository,
    vault: &dyn SecretProvider,
    label: Option<&str>,
    target: &RestoreTarget,
    progress: Progress<'_>,
) -> Result<Restored, BackupError> {
    check_database_name(&target.database)?;
    let info = repo.find(label)?;
    let mut admin = server.connect("postgres").await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&target.database)
            .fetch_one(&mut admin)
            .await?;
    if exists && !target.replace_existing {
        return Err(BackupError::Refused(format!(
            "database {} exists; restoring over it needs --force (it is kept, renamed)",
            target.database
        )));
    }
    let manifest = verify_files(repo, &info, vault, false).await?;
    let temp = temp_name(&target.database, "restoring")?;
    let destroyed = restore_into(
        server, &mut admin, repo, vault, &info, &manifest, &temp, progress,
    )
    .await?;
    if !destroyed.is_empty() {
        let refusal = match pg::unconfirmed_destructions(server, &destroyed).await {
            Ok(unconfirmed) if unconfirmed.is_empty() => None,
            Ok(unconfirmed) => Some(format!(
                "the vault has no key for organisations {unconfirmed:?}, which the live database still holds: \
                 a vault from another deployment or a stale escrow? Nothing was restored"
            )),
            Err(_) if target.accept_destroyed_keys => None,
            Err(e) => Some(format!(
                "the keys of {} organisations were destroyed and the live database cannot confirm \
                 they were offboarded ({e}); restoring without them needs \
                 --accept-destroyed-keys. Nothing was restored",
                destroyed.len()
            )),
        };
        if let Some(refusal) = refusal {
            let _ = pg::exec(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                pg::ident(&temp)
            ))
            .execute(&mut admin)
            .await;
            return Err(BackupError::Refused(refusal));
        }
    }
    let renamed = rename_into_place(&mut admin, &temp, &target.database, exists).await;
    let replaced = match renamed {
        Ok(replaced) => replaced,
        Err(e) => {
            let _ = pg::exec(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                pg::ident(&temp)
            ))
            .execute(&mut admin)
            .await;
            return Err(e);
        }
    };
    let _ = admin.close().await;
    Ok(Restored {
        label: info.label,
        database: target.database.clone(),
        replaced,
        bytes: info.plain_bytes,
        destroyed_organisations: destroyed,
    })
}

/// Moves the restored `temp` to `target`, the existing `target` (if any) aside first.
async fn rename_into_place(
    admin: &mut sqlx::PgConnection,
    temp: &str,
    target: &str,
    exists: bool,
) -> Result<Option<String>, BackupError> {
    let mut replaced = None;
    if exists {
        let old = temp_name(target, "replaced")?;
        // No new sessions (a pool reconnecting) between the termination and the rename;
        // the replaced database stays closed until an operator opens it.
        pg::exec(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            pg::ident(target)
        ))
        .execute(&mut *admin)
        .await?;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(target)
            .execute(&mut *admin)
            .await?;
        pg::exec(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            pg::ident(target),
            pg::ident(&old)
        ))
        .execute(&mut *admin)
        .await?;
        replaced = Some(old);
    }
    let moved = pg::exec(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        pg::ident(temp),
        pg::ident(target)
    ))
    .execute(&mut *admin)
    .await;
    if let Err(e) = moved {
        // Put the old database back under its name: never leave the name empty.
        if let Some(old) = &replaced {
            let _ = pg::exec(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                pg::ident(old),
                pg::ident(target)
            ))
            .execute(&mut *admin)
            .await;
        }
        return Err(e.into());
    }
    Ok(replaced)
}

fn check_database_name(name: &str) -> Result<(), BackupError> {
    if matches!(name, "postgres" | "template0" | "template1") {
        return Err(BackupError::Refused(format!(
            "{name} is one of PostgreSQL's own databases: never restored into"
        )));
    }
    if name.is_empty()
        || name.len() > 40
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(BackupError::Refused(
            "a database to restore into is 1-40 characters of a-z 0-9 _".to_owned(),
        ));
    }
    Ok(())
}

fn temp_name(base: &str, what: &str) -> Result<String, BackupError> {
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd)
        .map_err(|_| BackupError::Crypto(procuhelp_core::crypto::CryptoError::Rng))?;
    Ok(format!("{base}_{what}_{}", hex::encode(rnd)))
}

/// Creates `database` (owned as the source was) and restores `info` into it; drops it on
/// any failure. Returns the organisations left out because their key was destroyed.
#[allow(clippy::too_many_arguments)]
async fn restore_into(
    server: &PgServer,
    admin: &mut sqlx::PgConnection,
    repo: &Repository,
    vault: &dyn SecretProvider,
    info: &BackupInfo,
    manifest: &Manifest,
    database: &str,
    progress: Progress<'_>,
) -> Result<Vec<uuid::Uuid>, BackupError> {
    pg::exec(&format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0",
        pg::ident(database),
        pg::ident(&manifest.owner)
    ))
    .execute(&mut *admin)
    .await?;
    let result = async {
        for role in &manifest.connect_roles {
            let grant = format!(
                "GRANT CONNECT ON DATABASE {} TO {}",
                pg::ident(database),
                pg::ident(role)
            );
            pg::exec(&grant).execute(&mut *admin).await?;
        }
        if !manifest.is_split() {
            // A backup from before organisations had parts of their own.
            run_pg_restore(server, repo, vault, info, database, None, progress).await?;
            return Ok(Vec::new());
        }
        // Tables, then the archive's rows, then the organisations' rows, then indexes,
        // constraints and triggers: every row is in before a constraint is checked or a
        // trigger can fire, whatever order the parts come in.
        run_pg_restore(
            server,
            repo,
            vault,
            info,
            database,
            Some("pre-data"),
            &|_, _| {},
        )
        .await?;
        run_pg_restore(server, repo, vault, info, database, Some("data"), progress).await?;
        let destroyed = load_parts(server, repo, vault, info, manifest, database).await?;
        run_pg_restore(
            server,
            repo,
            vault,
            info,
            database,
            Some("post-data"),
            &|_, _| {},
        )
        .await?;
        Ok(destroyed)
    }
    .await;
    if result.is_err() {
        let _ = pg::exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            pg::ident(database)
        ))
        .execute(&mut *admin)
        .await;
    }
    result
}

/// Loads every organisation's part (and the shared one) into `database` in one
/// transaction; returns the organisations whose key was destroyed.
async fn load_parts(
    server: &PgServer,
    repo: &Repository,
    vault: &dyn SecretProvider,
    info: &BackupInfo,
    manifest: &Manifest,
    database: &str,
) -> Result<Vec<uuid::Uuid>, BackupError> {
    let dir = repo.dir(&info.label)?;
    let mut conn = server.connect(database).await?;
    let tables = parts::split_tables(&mut conn).await?;
    pg::exec("BEGIN").execute(&mut conn).await?;
    let mut destroyed = Vec::new();
    for org in std::iter::once(None).chain(manifest.organisation_parts.iter().copied().map(Some)) {
        let reader = match open_part(&dir, &info.label, org, vault).await {
            Ok(reader) => reader,
            Err(BackupError::KeyDestroyed { .. }) if org.is_some() => {
                destroyed.extend(org);
                continue;
            }
            Err(e) => return Err(e),
        };
        parts::load_part(&mut conn, reader, &parts::file_name(org), &tables).await?;
    }
    pg::exec("COMMIT").execute(&mut conn).await?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(destroyed)
}

#[allow(clippy::too_many_arguments)]
async fn run_pg_restore(
    server: &PgServer,
    repo: &Repository,
    vault: &dyn SecretProvider,
    info: &BackupInfo,
    database: &str,
    section: Option<&str>,
    progress: Progress<'_>,
) -> Result<(), BackupError> {
    let dir = repo.dir(&info.label)?;
    let mut reader =
        sealed::open_file(&dir.join(DUMP_FILE), FileKind::Dump, &info.label, vault).await?;
    let dbname = format!("--dbname={database}");
    let section = section.map(|s| format!("--section={s}"));
    let mut args = vec![
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
        dbname.as_str(),
    ];
    args.extend(section.as_deref());
    let mut pg_restore =
        server.spawn("pg_restore", database, &args, Stdio::piped(), Stdio::null())?;
    let mut stdin = pg_restore
        .child
        .stdin
        .take()
        .ok_or_else(|| BackupError::Refused("pg_restore has no stdin".to_owned()))?;
    let mut done = 0u64;
    let fed: Result<(), BackupError> = async {
        let mut open = true;
        while let Some(chunk) = reader.next_chunk().await? {
            // A write error means pg_restore stopped: its status says why. Reading one
            // section, it may stop early; the rest is still read, so a damaged or cut
            // file fails here too.
            if open && stdin.write_all(&chunk).await.is_err() {
                open = false;
            }
            if open {
                done += chunk.len() as u64;
                progress(done, info.plain_bytes);
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = fed {
        // Killed before its input ends: it must never see a clean end of a partial dump.
        let _ = pg_restore.child.kill().await;
        return Err(e);
    }
    drop(stdin);
    pg_restore.finish().await?;
    if section.is_none() && done != info.plain_bytes {
        return Err(BackupError::Tool {
            tool: "pg_restore",
            status: "stopped reading early".to_owned(),
            detail: format!("it took {done} of {} bytes", info.plain_bytes),
        });
    }
    Ok(())
}

/// The checks of a drill that the embedding application owns (posture, audit chains,
/// keys): run against the restored copy.
#[async_trait::async_trait]
pub trait DrillChecks: Send + Sync {
    /// Checks `copy` (restored from a backup whose manifest is `manifest`).
    async fn check(&self, copy: &ScratchCopy, manifest: &Manifest) -> Findings;
}

/// What [`DrillChecks`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Each check run.
    pub outcomes: Vec<CheckOutcome>,
    /// Organisations found crypto-shredded (reported, not failed).
    pub shredded: Vec<uuid::Uuid>,
}

/// One check of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// What was checked.
    pub check: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

impl CheckOutcome {
    /// A passed check.
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            passed: true,
            detail: detail.into(),
        }
    }
    /// A failed check.
    pub fn fail(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            passed: false,
            detail: detail.into(),
        }
    }
}

/// The result of a drill (signed and recorded by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    /// The backup drilled.
    pub label: String,
    /// When that backup's snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub backup_taken_at: OffsetDateTime,
    /// When the drill started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Milliseconds it took (verify, restore, checks).
    pub duration_ms: u64,
    /// Whether every check passed.
    pub passed: bool,
    /// Every check, in order.
    pub checks: Vec<CheckOutcome>,
    /// Organisations whose keys are gone from the vault (crypto-shredded after the
    /// backup): their rows are restored, unreadable as intended; not a failure.
    pub shredded_organisations: Vec<uuid::Uuid>,
    /// Tables compared.
    pub tables: usize,
    /// Rows compared.
    pub rows: i64,
}

/// A restored copy in a scratch database that is never the live one; dropped by
/// [`ScratchCopy::discard`].
#[derive(Debug)]
pub struct ScratchCopy {
    server: Arc<PgServer>,
    database: String,
    manifest: Manifest,
    info: BackupInfo,
    destroyed: Vec<uuid::Uuid>,
}

impl ScratchCopy {
    /// Authenticates backup `label` (or the latest) whole, then restores it into a new
    /// scratch database `procuhelp_drill_<random>` on `server`.
    pub async fn restore(
        server: Arc<PgServer>,
        repo: &Repository,
        vault: &dyn SecretProvider,
        label: Option<&str>,
    ) -> Result<Self, BackupError> {
        let info = repo.find(label)?;
        let manifest = verify_files(repo, &info, vault, false).await?;
        let database = temp_name("procuhelp_drill", "copy")?;
        if database == server.database() {
            return Err(BackupError::Refused(
                "a drill never restores into the live database".to_owned(),
            ));
        }
        let mut admin = server.connect("postgres").await?;
        let destroyed = restore_into(
            &server,
            &mut admin,
            repo,
            vault,
            &info,
            &manifest,
            &database,
            &|_, _| {},
        )
        .await?;
        let _ = admin.close().await;
        Ok(Self {
            server,
            database,
            manifest,
            info,
            destroyed,
        })
    }

    /// Organisations left out of the copy because their key was destroyed (their part of
    /// the backup cannot be read): [`DrillChecks`] skip them; [`check`](Self::check)
    /// proves the live database agrees they were offboarded.
    pub fn destroyed_organisations(&self) -> &[uuid::Uuid] {
        &self.destroyed
    }

    /// The scratch database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Connection options for the copy (as the backup role).
    pub fn connect_options(&self) -> sqlx::postgres::PgConnectOptions {
        self.server.connect_options(&self.database)
    }

    /// Connection options for the live database the backup was taken from (as the backup
    /// role): what a check compares the copy with, never what it changes.
    pub fn live_connect_options(&self) -> sqlx::postgres::PgConnectOptions {
        self.server.connect_options(self.server.database())
    }

    /// The backup's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Proves the copy: the manifest (every table's rows and digest, migrations,
    /// organisations), migrations at `expected_migrations`, then `checks`.
    pub async fn check(
        &self,
        expected_migrations: &[i64],
        checks: &dyn DrillChecks,
        started_at: OffsetDateTime,
    ) -> DrillReport {
        let clock = std::time::Instant::now();
        let mut outcomes = Vec::new();
        let restored = pg::manifest_of(&self.server, &self.database, &self.manifest.label).await;
        match restored {
            Ok(copy) => {
                let absent: Vec<uuid::Uuid> = self
                    .destroyed
                    .iter()
                    .chain(&self.manifest.left_out)
                    .copied()
                    .collect();
                outcomes.push(compare_tables(&self.manifest, &copy, &absent));
                outcomes.push(
                    if copy.migrations == self.manifest.migrations
                        && expected_migrations.starts_with(&copy.migrations)
                    {
                        CheckOutcome::pass(
                            "migrations",
                            if copy.migrations == expected_migrations {
                                format!(
                                    "{} applied, the version this server expects",
                                    copy.migrations.len()
                                )
                            } else {
                                format!(
                                    "{} applied; this server has {} newer (`migrate` after a restore applies them)",
                                    copy.migrations.len(),
                                    expected_migrations.len() - copy.migrations.len()
                                )
                            },
                        )
                    } else {
                        CheckOutcome::fail(
                            "migrations",
                            format!(
                                "copy has {:?}, the backup recorded {:?}, this server expects {:?}",
                                copy.migrations.last(),
                                self.manifest.migrations.last(),
                                expected_migrations.last()
                            ),
                        )
                    },
                );
                let expected: Vec<uuid::Uuid> = self
                    .manifest
                    .organisations
                    .iter()
                    .filter(|o| !absent.contains(o))
                    .copied()
                    .collect();
                outcomes.push(if copy.organisations == expected {
                    CheckOutcome::pass(
                        "organisations",
                        format!("{} present", copy.organisations.len()),
                    )
                } else {
                    CheckOutcome::fail(
                        "organisations",
                        "the copy's organisations differ from the backup's",
                    )
                });
            }
            Err(e) => outcomes.push(CheckOutcome::fail(
                "manifest",
                format!("reading the copy: {e}"),
            )),
        }
        if !self.destroyed.is_empty() {
            outcomes.push(
                match pg::unconfirmed_destructions(&self.server, &self.destroyed).await {
                    Ok(unconfirmed) if unconfirmed.is_empty() => CheckOutcome::pass(
                        "destroyed keys",
                        format!(
                            "{} organisations left out: their keys were destroyed, and the live database agrees (offboarded)",
                            self.destroyed.len()
                        ),
                    ),
                    Ok(unconfirmed) => CheckOutcome::fail(
                        "destroyed keys",
                        format!(
                            "the vault has no key for {unconfirmed:?}, which the live database still holds (a stale vault escrow?)"
                        ),
                    ),
                    Err(e) => CheckOutcome::fail(
                        "destroyed keys",
                        format!("the live database cannot confirm the destroyed keys: {e}"),
                    ),
                },
            );
        }
        let findings = checks.check(self, &self.manifest).await;
        outcomes.extend(findings.outcomes);
        let mut shredded = findings.shredded;
        for org in &self.destroyed {
            if !shredded.contains(org) {
                shredded.push(*org);
            }
        }
        shredded.sort_unstable();
        DrillReport {
            label: self.info.label.clone(),
            backup_taken_at: self.info.taken_at,
            started_at,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            passed: outcomes.iter().all(|o| o.passed),
            tables: self.manifest.tables.len(),
            rows: self.manifest.tables.values().map(|t| t.rows).sum(),
            checks: outcomes,
            shredded_organisations: shredded,
        }
    }

    /// Drops the scratch database.
    pub async fn discard(self) -> Result<(), BackupError> {
        let mut admin = self.server.connect("postgres").await?;
        pg::exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            pg::ident(&self.database)
        ))
        .execute(&mut admin)
        .await?;
        let _ = admin.close().await;
        Ok(())
    }
}

/// Drops scratch databases of drills that were interrupted (a killed process, an aborted
/// task): `procuhelp_drill_copy_*` with no session attached. Returns their names.
pub async fn sweep_scratch(server: &PgServer) -> Result<Vec<String>, BackupError> {
    let mut admin = server.connect("postgres").await?;
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT d.datname::text FROM pg_database d
         WHERE d.datname LIKE 'procuhelp\\_drill\\_copy\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
    )
    .fetch_all(&mut admin)
    .await?;
    for name in &stale {
        pg::exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            pg::ident(name)
        ))
        .execute(&mut admin)
        .await?;
    }
    let _ = admin.close().await;
    Ok(stale)
}

fn compare_tables(backup: &Manifest, copy: &Manifest, destroyed: &[uuid::Uuid]) -> CheckOutcome {
    for (name, expected) in &backup.tables {
        let expected = &expected.without(destroyed);
        match copy.tables.get(name) {
            None => {
                return CheckOutcome::fail(
                    "tables",
                    format!("table {name} is missing from the copy"),
                );
            }
            Some(got) if got.rows != expected.rows => {
                return CheckOutcome::fail(
                    "tables",
                    format!(
                        "table {name}: {} rows in the copy, {} in the backup",
                        got.rows, expected.rows
                    ),
                );
            }
            Some(got) if got.digest != expected.digest => {
                return CheckOutcome::fail(
                    "tables",
                    format!("table {name}: content differs from the backup (same row count)"),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = copy.tables.keys().find(|k| !backup.tables.contains_key(*k)) {
        return CheckOutcome::fail(
            "tables",
            format!("table {extra} is in the copy but not the backup"),
        );
    }
    CheckOutcome::pass(
        "tables",
        format!(
            "{} tables, {} rows: counts and content digests equal the manifest",
            backup.tables.len(),
            backup.tables.values().map(|t| t.rows).sum::<i64>()
        ),
    )
}

/// Restores backup `label` (or the latest) into a scratch database, proves it (see
/// [`ScratchCopy::check`]) and drops it. A backup that cannot even be verified or
/// restored gives a failed report naming why, not an error: a drill's job is to say.
pub async fn drill(
    server: Arc<PgServer>,
    repo: &Repository,
    vault: &dyn SecretProvider,
    label: Option<&str>,
    expected_migrations: &[i64],
    checks: &dyn DrillChecks,
) -> Result<DrillReport, BackupError> {
    let started_at = OffsetDateTime::now_utc();
    let clock = std::time::Instant::now();
    let info = repo.find(label)?;
    match ScratchCopy::restore(server, repo, vault, Some(&info.label)).await {
        Ok(copy) => {
            let mut report = copy.check(expected_migrations, checks, started_at).await;
            let name = copy.database().to_owned();
            if let Err(e) = copy.discard().await {
                // A copy of every tenant's data left on the cluster: the report says so.
                report.passed = false;
                report.checks.push(CheckOutcome::fail(
                    "cleanup",
                    format!("the scratch database {name} could not be dropped: {e}"),
                ));
            }
            report.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
            Ok(report)
        }
        Err(e) => Ok(DrillReport {
            label: info.label.clone(),
            backup_taken_at: info.taken_at,
            started_at,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            passed: false,
            checks: vec![CheckOutcome::fail("restore", e.to_string())],
            shredded_organisations: Vec::new(),
            tables: 0,
            rows: 0,
        }),
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    /// Every future is `Send`, so it can run on a spawned task.
    #[allow(dead_code)]
    fn futures_are_send(
        server: Arc<PgServer>,
        repo: &Repository,
        vault: &dyn SecretProvider,
        conn: &mut sqlx::PgConnection,
        checks: &dyn DrillChecks,
    ) {
        fn send<T: Send>(_: T) {}
        send(pg::begin_snapshot(conn));
        send(pg::manifest(conn, "l", &[]));
        send(pg::manifest_of(&server, "d", "l"));
        send(take(&server, repo, vault));
        send(verify(repo, &repo.find(None).unwrap(), vault));
        send(restore(
            &server,
            repo,
            vault,
            None,
            &RestoreTarget {
                database: String::new(),
                replace_existing: false,
                accept_destroyed_keys: false,
            },
            &|_, _| {},
        ));
        send(ScratchCopy::restore(server.clone(), repo, vault, None));
        send(drill(server, repo, vault, None, &[], checks));
    }
}
