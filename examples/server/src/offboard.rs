//! `procuhelp-server org offboard`: the customer's export, then every row of the
//! organisation deleted with a tombstone and an `org.offboarded` event in the system
//! chain (one transaction), then its keys destroyed (docs/gdpr.md).
//!
//! Nothing is deleted that was not exported: the deletion checks every table's rows and
//! content against the export's fingerprint in its own transaction and refuses (rolls
//! back) when any differs — the organisation was still in use; stop its traffic and run
//! again. A run interrupted
//! after the deletion (the vault is not transactional) is finished by running it again:
//! the tombstone says what is left to do.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use procuhelp_audit::{Action, Actor, AuditEvent, ExportFormat, ExportRange, Outcome};
use procuhelp_core::OrgId;
use procuhelp_tenancy::{TenantDb, offboarding};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::cli::DatabaseArgs;
use crate::database;

/// The file with the organisation's rows.
pub const ROWS_FILE: &str = "organisation.jsonl";
/// The file with its audit trail (verifiable with `audit verify`).
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Runs `org offboard`; returns the lines to print.
pub async fn command(
    org: &str,
    confirm: &str,
    out: &Path,
    db: &DatabaseArgs,
) -> anyhow::Result<Vec<String>> {
    let id = uuid::Uuid::parse_str(org.trim()).context("--org: an organisation id")?;
    let org = OrgId::from_uuid(id).context("--org")?;
    if uuid::Uuid::parse_str(confirm.trim()).ok() != Some(id) {
        anyhow::bail!("--confirm must repeat the organisation's id: offboarding cannot be undone");
    }
    if org == procuhelp_audit::system_chain_org() {
        anyhow::bail!("the system audit chain is not an organisation: never offboarded");
    }
    let (vault, database) = crate::open(db).await?;
    let (log, runtime, database) = crate::open_audit_log_on(db, vault.clone(), database).await?;
    let owner = database.owner_pool().await;
    let cipher = crate::keys::field_cipher(TenantDb::new(runtime.clone()), vault.clone());
    let outcome = match owner {
        Ok(owner) => {
            let outcome = run(org, out, &owner, &log, vault.as_ref(), &cipher).await;
            owner.close().await;
            outcome
        }
        Err(e) => Err(e),
    };
    runtime.close().await;
    database.close().await?;
    outcome
}

async fn run(
    org: OrgId,
    out: &Path,
    owner: &sqlx::PgPool,
    log: &procuhelp_audit::PgAuditSink,
    vault: &dyn procuhelp_core::vault::SecretProvider,
    cipher: &procuhelp_tenancy::FieldCipher,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut tx = TenantDb::new(owner.clone())
        .begin(procuhelp_audit::system_chain_org())
        .await?;
    match offboarding::tombstone(owner, org).await? {
        Some(t) => {
            // Finishing: whatever an in-flight append left is deleted too.
            let before: i64 = t.deleted_rows.values().sum();
            let swept = offboarding::delete(&mut tx, org, None).await?;
            tx.commit().await?;
            lines.push(format!(
                "organisation {org} was offboarded at {}: finishing ({} rows left behind deleted)",
                t.offboarded_at,
                swept.deleted_rows.values().sum::<i64>() - before
            ));
        }
        None => {
            let exported = export(org, out, owner, log, cipher).await?;
            lines.push(format!(
                "exported {} rows and {} audit events of {org} to {}",
                exported.rows.values().sum::<u64>(),
                exported.audit_events,
                out.display()
            ));
            // Nothing is deleted that was not exported: the rows must be the export's.
            let tombstone = offboarding::delete(&mut tx, org, Some(&exported.fingerprint))
                .await
                .context("nothing was deleted; the export stays in --out")?;
            log.append_in_tx(
                &mut tx,
                &AuditEvent::new(None, Actor::System, Action::OrgOffboarded, Outcome::Success)
                    .target(format!("org:{org}"))
                    .context(json!({
                        "deleted_rows": tombstone.deleted_rows,
                        "audit_last_seq": exported.audit_last_seq,
                        "export_sha256": exported.digests,
                        "via": "cli",
                    })),
            )
            .await?;
            tx.commit().await?;
            lines.push(format!(
                "deleted {} rows of {org}; tombstone and org.offboarded recorded",
                tombstone.deleted_rows.values().sum::<i64>()
            ));
        }
    }
    let tombstone =
        offboarding::destroy_keys(owner, vault, org, &[procuhelp_audit::organisation_kek(org)])
            .await?;
    lines.push(format!(
        "keys of {org} destroyed at {}: its rows in every earlier backup are unreadable",
        tombstone
            .keys_destroyed_at
            .map(|t| t.to_string())
            .unwrap_or_default()
    ));
    Ok(lines)
}

struct Exported {
    rows: std::collections::BTreeMap<String, u64>,
    fingerprint: offboarding::Fingerprint,
    audit_events: u64,
    audit_last_seq: u64,
    digests: std::collections::BTreeMap<&'static str, String>,
}

/// Writes the export into the new directory `out`; on failure removes what it wrote.
async fn export(
    org: OrgId,
    out: &Path,
    owner: &sqlx::PgPool,
    log: &procuhelp_audit::PgAuditSink,
    cipher: &procuhelp_tenancy::FieldCipher,
) -> anyhow::Result<Exported> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .with_context(|| format!("creating {} (it must not exist)", out.display()))?;
    let written = async {
        // The audit trail first: its `audit.exported` event is then among the rows.
        let file = create(&out.join(AUDIT_FILE))?;
        let access = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::AuditExported,
            Outcome::Success,
        )
        .context(json!({ "via": "cli", "reason": "offboarding" }));
        let audit = log
            .export(
                access,
                ExportRange::default(),
                ExportFormat::JsonLines,
                std::io::BufWriter::new(file.try_clone()?),
            )
            .await?;
        file.sync_all()?;
        let mut rows_file = std::io::BufWriter::new(create(&out.join(ROWS_FILE))?);
        let rows =
            offboarding::export(owner, &database::schema(), cipher, org, &mut rows_file).await?;
        rows_file.flush()?;
        rows_file.get_ref().sync_all()?;
        std::fs::File::open(out)?.sync_all()?;
        let mut digests = std::collections::BTreeMap::new();
        for name in [AUDIT_FILE, ROWS_FILE] {
            let bytes = std::fs::read(out.join(name))?;
            digests.insert(name, hex::encode(Sha256::digest(&bytes)));
        }
        anyhow::Ok(Exported {
            rows: rows.rows,
            fingerprint: rows.fingerprint,
            audit_events: audit.events,
            audit_last_seq: audit.last_seq,
            digests,
        })
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    written
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}
