//! Export of a chain's events (JSON lines with its checkpoints, or CSV).

use std::io::Write;

use futures_util::TryStreamExt as _;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::PgAuditSink;
use super::checkpoint::load_checkpoints;
use super::storage::{RawRow, SELECT_ROWS, db_err, tenancy_err};
use crate::chain::{CHAIN_VERSION, GENESIS, hash_from_slice};
use crate::export::{
    CSV_COLUMNS, CheckpointLine, EXPORT_FORMAT, EXPORT_VERSION, Header, LineOut, b64, format_time,
    write_csv_row, write_json_line,
};
use crate::{Action, AuditError, AuditEvent, AuditSink as _, Result, seal};

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

impl PgAuditSink {
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
                self.checkpoint_at(org, Some(last), OffsetDateTime::now_utc())
                    .await?;
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
                // The seal signs the range and its head: a file cut at either end (say,
                // at a periodic checkpoint, the header adjusted) no longer verifies.
                let head = match checkpoints.last() {
                    Some(cp) if cp.seq == last => cp.head,
                    Some(_) => {
                        return Err(AuditError::Internal("the export's end is not checkpointed"));
                    }
                    None => prev,
                };
                let exported_at = OffsetDateTime::now_utc();
                let range = seal::Range {
                    org,
                    first_seq: first,
                    last_seq: last,
                    prev_hash: prev,
                    head,
                };
                let seal = seal::seal(self.signer().await?, range, exported_at).await?;
                write_json_line(
                    &mut out,
                    &Header {
                        format: EXPORT_FORMAT.to_owned(),
                        version: EXPORT_VERSION,
                        chain_version: CHAIN_VERSION,
                        org,
                        first_seq: first,
                        last_seq: last,
                        prev_hash: hex::encode(prev),
                        exported_at: seal.at,
                        checkpoints: n_checkpoints,
                        seal: Some(seal),
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
