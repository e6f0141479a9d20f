//! Checkpoints, export and live verification against the database.

use std::io::Write;

use futures_util::TryStreamExt as _;
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use serde_json::value::RawValue;
use sqlx::Row as _;
use time::OffsetDateTime;

use super::PgAuditSink;
use super::storage::{RawRow, SELECT_ROWS, db_err, tenancy_err};
use crate::chain::{CHAIN_VERSION, GENESIS, hash_from_slice};
use crate::checkpoint::{
    Checkpoint, CheckpointSigner, Ed25519Signer, PublicKey, Trust, VaultSigner, sign_checkpoint,
};
use crate::export::{
    CSV_COLUMNS, CheckpointLine, EXPORT_FORMAT, Header, LineOut, b64, format_time, write_csv_row,
    write_json_line,
};
use crate::verify::{ChainVerifier, VerifyReport};
use crate::{Action, AuditError, AuditEvent, AuditSink as _, Result};

/// Which events to export: those of the contiguous sequence range from the first event at
/// or after `from` to the last event before `to` (events between them are included even
/// if their own times fall outside, so the range always verifies as a chain).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportRange {
    /// Start (inclusive); `None` from the first event.
    pub from: Option<OffsetDateTime>,
    /// End (exclusive); `None` up to the latest event.
    pub to: Option<OffsetDateTime>,
}

/// Export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON lines with header and checkpoints: verifiable with [`crate::verify_export`].
    JsonLines,
    /// CSV for people (not verifiable by this crate).
    Csv,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// First sequence number exported (1 with nothing exported).
    pub first_seq: u64,
    /// Last sequence number exported (0 with nothing exported).
    pub last_seq: u64,
    /// Events written.
    pub events: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

async fn load_checkpoints(
    tx: &mut TenantTx,
    org: OrgId,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT seq, head_hash, at, public_key, signature FROM app.audit_checkpoints
         WHERE org_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
    )
    .bind(org.as_uuid())
    .bind(i64::try_from(from).unwrap_or(i64::MAX))
    .bind(i64::try_from(to).unwrap_or(i64::MAX))
    .fetch_all(tx.conn())
    .await
    .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get(0).map_err(db_err)?;
        let head: Vec<u8> = row.try_get(1).map_err(db_err)?;
        let public_key: Vec<u8> = row.try_get(3).map_err(db_err)?;
        let signature: Vec<u8> = row.try_get(4).map_err(db_err)?;
        out.push(Checkpoint {
            org,
            seq: u64::try_from(seq).map_err(|_| AuditError::Internal("negative seq"))?,
            head: hash_from_slice("head_hash", &head)?,
            at: row.try_get(2).map_err(db_err)?,
            public_key: hash_from_slice("public_key", &public_key)?,
            signature: <[u8; 64]>::try_from(&signature[..]).map_err(|_| AuditError::Invalid {
                field: "signature",
                reason: "must be 64 bytes",
            })?,
        });
    }
    Ok(out)
}

/// Verifies `tx`'s organisation's whole chain in the database: every link and hash, and
/// every checkpoint (signed by a key `trust` accepts, with a valid signature and the
/// right head); a checkpoint beyond the last event reports truncation. Events after the
/// last checkpoint are normal here (the next periodic checkpoint covers them).
pub async fn verify_live(tx: &mut TenantTx, trust: &Trust) -> Result<VerifyReport> {
    let org = tx.org();
    let checkpoints = load_checkpoints(tx, org, 1, u64::MAX >> 1).await?;
    let mut verifier = ChainVerifier::new(org, 1, GENESIS, checkpoints, trust);
    let sql = format!("{SELECT_ROWS} WHERE org_id = $1 ORDER BY seq");
    let mut rows = sqlx::query(&sql).bind(org.as_uuid()).fetch(tx.conn());
    while let Some(row) = rows.try_next().await.map_err(db_err)? {
        let raw = RawRow::from_row(&row)?;
        // A malformed stored hash is a broken link (or mismatch) at this row.
        let prev = hash_from_slice("prev_hash", &raw.prev_hash).unwrap_or([0xff; 32]);
        let stored = hash_from_slice("hash", &raw.hash).unwrap_or([0xff; 32]);
        match raw.fields(org, &prev) {
            Some(fields) => verifier.push(&fields, &stored),
            None => break,
        }
        if verifier.done_before(u64::try_from(raw.seq).unwrap_or(0)) {
            break;
        }
    }
    drop(rows);
    Ok(verifier.finish())
}

impl PgAuditSink {
    async fn signer(&self) -> Result<&dyn CheckpointSigner> {
        let inner = self.inner();
        let signer = inner
            .signer
            .get_or_try_init(|| async {
                let key = Ed25519Signer::from_vault(inner.vault.as_ref()).await?;
                let legacy: std::sync::Arc<dyn CheckpointSigner> =
                    std::sync::Arc::new(VaultSigner {
                        key,
                        vault: inner.vault.clone(),
                    });
                Ok::<_, AuditError>(legacy)
            })
            .await?;
        Ok(signer.as_ref())
    }

    /// The public keys that sign this deployment's checkpoints (every version the signer
    /// knows), for publishing: verifiers pin them ([`Trust::Pinned`]).
    pub async fn signing_keys(&self) -> Result<Vec<PublicKey>> {
        self.signer().await?.public_keys().await
    }

    /// Signs and stores a checkpoint of `org`'s current head; `None` for an empty chain.
    /// Call it periodically per active organisation (and [`export`](Self::export) signs
    /// one of its last event, so every export ends at a checkpoint).
    pub async fn checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>> {
        self.checkpoint_at(org, None).await
    }

    /// Signs and stores a checkpoint of `org`'s chain at `seq` (`None`: the head) — a
    /// true statement about the past too, since the chain never changes. A checkpoint
    /// already stored at that sequence number is kept (and returned as signed now).
    async fn checkpoint_at(&self, org: OrgId, seq: Option<u64>) -> Result<Option<Checkpoint>> {
        let signer = self.signer().await?;
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM app.audit_events
             WHERE org_id = $1 AND ($2::bigint IS NULL OR seq = $2) ORDER BY seq DESC LIMIT 1",
        )
        .bind(org.as_uuid())
        .bind(seq.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
        .fetch_optional(tx.conn())
        .await
        .map_err(db_err)?;
        let Some((seq, hash)) = head else {
            tx.rollback().await.map_err(tenancy_err)?;
            return Ok(None);
        };
        let seq = u64::try_from(seq).map_err(|_| AuditError::Internal("negative seq"))?;
        let cp = sign_checkpoint(
            signer,
            org,
            seq,
            hash_from_slice("hash", &hash)?,
            OffsetDateTime::now_utc(),
        )
        .await?;
        sqlx::query(
            "INSERT INTO app.audit_checkpoints (org_id, seq, head_hash, at, public_key, signature)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, seq) DO NOTHING",
        )
        .bind(org.as_uuid())
        .bind(i64::try_from(cp.seq).unwrap_or(i64::MAX))
        .bind(cp.head.to_vec())
        .bind(cp.at)
        .bind(cp.public_key.to_vec())
        .bind(cp.signature.to_vec())
        .execute(tx.conn())
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(tenancy_err)?;
        Ok(Some(cp))
    }

    /// Verifies `org`'s chain in the database against `trust` — the published keys,
    /// pinned by the verifier: keys this process (or its vault) offers prove nothing to
    /// someone checking whether this process rewrote history.
    pub async fn verify_live(&self, org: OrgId, trust: &Trust) -> Result<VerifyReport> {
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let report = verify_live(&mut tx, trust).await?;
        tx.rollback().await.map_err(tenancy_err)?;
        Ok(report)
    }

    /// Exports an organisation's events, after durably recording `access` (an
    /// [`Action::AuditExported`] event of that organisation) and signing a checkpoint of
    /// the head. Rows stream from the database to `out` (blocking writes: give it a
    /// buffer, or a file from a blocking-friendly context).
    pub async fn export<W: Write + Send>(
        &self,
        access: AuditEvent,
        range: ExportRange,
        format: ExportFormat,
        mut out: W,
    ) -> Result<ExportSummary> {
        let org = access.org.ok_or(AuditError::Invalid {
            field: "org",
            reason: "exports are per organisation",
        })?;
        if access.action != Action::AuditExported {
            return Err(AuditError::Invalid {
                field: "action",
                reason: "an export is recorded as audit.exported",
            });
        }
        self.record(access).await?;
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT min(seq) FROM app.audit_events WHERE org_id = $1 AND ($2::timestamptz IS NULL OR at >= $2)),
                    (SELECT max(seq) FROM app.audit_events WHERE org_id = $1 AND ($3::timestamptz IS NULL OR at < $3))",
        )
        .bind(org.as_uuid())
        .bind(range.from)
        .bind(range.to)
        .fetch_one(tx.conn())
        .await
        .map_err(db_err)?;
        let (first, last) = match (first, last) {
            (Some(f), Some(l)) if f <= l => {
                (u64::try_from(f).unwrap_or(1), u64::try_from(l).unwrap_or(0))
            }
            _ => (1, 0),
        };
        let prev = if first > 1 {
            let h: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT hash FROM app.audit_events WHERE org_id = $1 AND seq = $2",
            )
            .bind(org.as_uuid())
            .bind(i64::try_from(first - 1).unwrap_or(0))
            .fetch_optional(tx.conn())
            .await
            .map_err(db_err)?;
            h.map(|h| hash_from_slice("hash", &h))
                .transpose()?
                .unwrap_or(GENESIS)
        } else {
            GENESIS
        };
        let checkpoints = if last >= first {
            let mut cps = load_checkpoints(&mut tx, org, first, last).await?;
            // Every export ends at a checkpoint, so a verifier pinning the key can tell
            // that no event in it was changed or added after signing.
            if cps.last().is_none_or(|cp| cp.seq != last) {
                // Signed on a connection of its own after handing this one back: holding
                // both could wait on itself with a small pool. The range is immutable,
                // so a new transaction reads the same events.
                tx.rollback().await.map_err(tenancy_err)?;
                self.checkpoint_at(org, Some(last)).await?;
                tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
                cps = load_checkpoints(&mut tx, org, first, last).await?;
            }
            cps
        } else {
            Vec::new()
        };
        let n_checkpoints = checkpoints.len() as u64;
        match format {
            ExportFormat::JsonLines => {
                write_json_line(
                    &mut out,
                    &Header {
                        format: EXPORT_FORMAT.to_owned(),
                        version: 1,
                        chain_version: CHAIN_VERSION,
                        org,
                        first_seq: first,
                        last_seq: last,
                        prev_hash: hex::encode(prev),
                        exported_at: OffsetDateTime::now_utc(),
                        checkpoints: n_checkpoints,
                    },
                )?;
                for checkpoint in checkpoints {
                    write_json_line(&mut out, &CheckpointLine { checkpoint })?;
                }
            }
            ExportFormat::Csv => {
                write_csv_row(&mut out, CSV_COLUMNS)?;
                for cp in &checkpoints {
                    let (seq, at, head, pk, sig) = (
                        cp.seq.to_string(),
                        format_time(cp.at)?,
                        hex::encode(cp.head),
                        hex::encode(cp.public_key),
                        hex::encode(cp.signature),
                    );
                    write_csv_row(
                        &mut out,
                        &[
                            "checkpoint",
                            &seq,
                            &at,
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            &head,
                            &pk,
                            &sig,
                        ],
                    )?;
                }
            }
        }
        let mut events = 0u64;
        if last >= first {
            let sql =
                format!("{SELECT_ROWS} WHERE org_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq");
            let mut rows = sqlx::query(&sql)
                .bind(org.as_uuid())
                .bind(i64::try_from(first).unwrap_or(i64::MAX))
                .bind(i64::try_from(last).unwrap_or(i64::MAX))
                .fetch(tx.conn());
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                let raw = RawRow::from_row(&row)?;
                write_row(&mut out, format, &raw)?;
                events += 1;
            }
        }
        tx.commit().await.map_err(tenancy_err)?;
        out.flush().map_err(|source| AuditError::Io {
            context: "writing the export",
            source,
        })?;
        Ok(ExportSummary {
            first_seq: first,
            last_seq: last,
            events,
            checkpoints: n_checkpoints,
        })
    }
}

fn write_row<W: Write>(out: &mut W, format: ExportFormat, raw: &RawRow) -> Result<()> {
    let seq = u64::try_from(raw.seq).map_err(|_| AuditError::Internal("negative seq"))?;
    let at = format_time(raw.at)?;
    match format {
        ExportFormat::JsonLines => {
            let context: &RawValue =
                serde_json::from_str(&raw.context).map_err(|_| AuditError::Invalid {
                    field: "context",
                    reason: "stored context is not JSON",
                })?;
            write_json_line(
                out,
                &LineOut {
                    seq,
                    at,
                    actor_kind: &raw.actor_kind,
                    actor_id: raw.actor_id,
                    action: &raw.action,
                    target: raw.target.as_deref(),
                    outcome: &raw.outcome,
                    context,
                    request_id: raw.request_id.as_deref(),
                    subject: raw.subject.as_deref(),
                    person_key: raw.person_key,
                    personal: raw.personal.as_deref().map(b64),
                    prev_hash: hex::encode(&raw.prev_hash),
                    hash: hex::encode(&raw.hash),
                },
            )
        }
        ExportFormat::Csv => {
            let seq = seq.to_string();
            let actor_id = raw.actor_id.map(|u| u.to_string()).unwrap_or_default();
            let person_key = raw.person_key.map(|u| u.to_string()).unwrap_or_default();
            let personal = raw.personal.as_deref().map(b64).unwrap_or_default();
            let (prev, hash) = (hex::encode(&raw.prev_hash), hex::encode(&raw.hash));
            write_csv_row(
                out,
                &[
                    "event",
                    &seq,
                    &at,
                    &raw.actor_kind,
                    &actor_id,
                    &raw.action,
                    raw.target.as_deref().unwrap_or(""),
                    &raw.outcome,
                    &raw.context,
                    raw.request_id.as_deref().unwrap_or(""),
                    raw.subject.as_deref().unwrap_or(""),
                    &person_key,
                    &personal,
                    &prev,
                    &hash,
                    "",
                    "",
                ],
            )
        }
    }
}
