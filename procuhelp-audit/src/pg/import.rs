//! Importing a JSON-lines file of events into an organisation's chain.

use std::collections::HashMap;

use procuhelp_core::OrgId;
use time::OffsetDateTime;

use super::erasure::erasure_target;
use super::persons::subject_for;
use super::storage::{db_err, lock_chain, tenancy_err};
use super::{Batch, PgAuditSink, append_locked};
use crate::{Action, Actor, AuditError, AuditEvent, Outcome, PersonalData, Result, read_events};

/// The largest file [`PgAuditSink::import_file`] takes.
pub const MAX_IMPORT_BYTES: usize = 256 << 20;

/// Rows per INSERT during an import (all in one transaction).
const CHUNK: usize = 1000;

/// What an import appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Events imported (the `audit.imported` event not counted).
    pub events: usize,
    /// Their sequence numbers: `first_seq..=last_seq` (0 and 0 for an empty file).
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// Events whose personal data was left out because the person was erased after them.
    pub personal_data_withheld: usize,
    /// SHA-256 of the file, hex (recorded in the `audit.imported` event).
    pub file_sha256: String,
    /// The sequence number of the `audit.imported` event.
    pub import_seq: u64,
}

impl PgAuditSink {
    /// Imports `file` — one [`AuditEvent`] JSON object per line, as the
    /// [`JsonLinesFileSink`](crate::JsonLinesFileSink) writes them, all of `org` — into
    /// `org`'s chain, then appends an [`Action::AuditImported`] event by `actor` naming
    /// the file's SHA-256, the sequence range and `via`. All in one transaction, under the
    /// chain lock: either everything is appended or nothing is.
    ///
    /// Refused, with nothing appended:
    /// * any bad line ([`read_events`]: [`AuditError::BadInput`] naming the line), an event
    ///   dated in the future, a file over [`MAX_IMPORT_BYTES`];
    /// * a file with the same SHA-256 as an earlier import of this organisation
    ///   ([`AuditError::Invalid`], field `file`): importing twice would duplicate events.
    ///
    /// Erasure wins: an event carrying personal data of a person whose key was erased at
    /// or after the event's time is imported without it (the subject stays), so an old
    /// copy cannot bring erased data back. Imported events keep their own `at`; they get
    /// the chain's next sequence numbers.
    ///
    /// The chain lock is held until the commit: other writers of this organisation wait
    /// (run large imports in quiet periods).
    pub async fn import_file(
        &self,
        org: OrgId,
        file: &[u8],
        actor: Actor,
        via: &str,
    ) -> Result<ImportSummary> {
        if file.len() > MAX_IMPORT_BYTES {
            return Err(AuditError::TooLarge {
                field: "file",
                limit: MAX_IMPORT_BYTES,
                actual: file.len(),
            });
        }
        let mut events = read_events(file, org)?;
        let latest = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        if let Some(line) = events.iter().position(|e| e.at > latest) {
            return Err(AuditError::BadInput {
                line: line as u64 + 1,
                reason: "at is in the future".to_owned(),
            });
        }
        let file_sha256 = hex::encode(crate::chain::sha256(file));

        let inner = self.inner();
        let mut tx = inner.db.begin(org).await.map_err(tenancy_err)?;
        // Under the lock, nobody erases or appends until the commit.
        lock_chain(tx.conn(), org).await?;
        let imported_before: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM app.audit_events
                            WHERE org_id = $1 AND action = 'audit.imported'
                              AND context::jsonb ->> 'file_sha256' = $2)",
        )
        .bind(org.as_uuid())
        .bind(&file_sha256)
        .fetch_one(tx.conn())
        .await
        .map_err(db_err)?;
        if imported_before {
            return Err(AuditError::Invalid {
                field: "file",
                reason: "a file with this SHA-256 was already imported into this organisation",
            });
        }
        let personal_data_withheld = withhold_erased(&mut tx, org, &mut events).await?;

        let mut appended = Vec::with_capacity(events.len());
        for chunk in events.chunks(CHUNK) {
            let batch = Batch::check(org, chunk)?;
            appended.extend(
                append_locked(inner, tx.conn(), org, &batch)
                    .await?
                    .into_iter()
                    .map(|c| c.seq),
            );
        }
        let (first_seq, last_seq) = (
            appended.first().copied().unwrap_or(0),
            appended.last().copied().unwrap_or(0),
        );
        let record = AuditEvent::new(Some(org), actor, Action::AuditImported, Outcome::Success)
            .context(serde_json::json!({
                "via": via,
                "file_sha256": file_sha256,
                "events": events.len(),
                "first_seq": first_seq,
                "last_seq": last_seq,
                "personal_data_withheld": personal_data_withheld,
            }));
        let batch = Batch::check(org, std::slice::from_ref(&record))?;
        let import_seq = append_locked(inner, tx.conn(), org, &batch)
            .await?
            .first()
            .map(|c| c.seq)
            .ok_or(AuditError::Internal("the import record was not appended"))?;
        tx.commit().await.map_err(tenancy_err)?;
        Ok(ImportSummary {
            events: events.len(),
            first_seq,
            last_seq,
            personal_data_withheld,
            file_sha256,
            import_seq,
        })
    }
}

/// Leaves out the personal data of every event whose person was erased (an
/// `audit.person_erased` event) at or after the event's time, keeping the subject; returns
/// how many events lost it. The erasure events, not the keys, are the record: a person
/// can be erased before any of their data reached the database.
async fn withhold_erased(
    tx: &mut procuhelp_tenancy::TenantTx,
    org: OrgId,
    events: &mut [AuditEvent],
) -> Result<usize> {
    let mut targets: Vec<String> = events
        .iter()
        .filter(|e| !e.personal.is_empty())
        .filter_map(subject_for)
        .map(|s| erasure_target(&s))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return Ok(0);
    }
    let erased: HashMap<String, OffsetDateTime> = sqlx::query_as::<_, (String, OffsetDateTime)>(
        "SELECT target, max(at) FROM app.audit_events
         WHERE org_id = $1 AND action = 'audit.person_erased' AND target = ANY ($2)
         GROUP BY target",
    )
    .bind(org.as_uuid())
    .bind(&targets)
    .fetch_all(tx.conn())
    .await
    .map_err(db_err)?
    .into_iter()
    .collect();
    let mut withheld = 0;
    for event in events.iter_mut().filter(|e| !e.personal.is_empty()) {
        let erased_at = subject_for(event).and_then(|s| erased.get(&erasure_target(&s)).copied());
        if erased_at.is_some_and(|erased_at| event.at <= erased_at) {
            event.personal = PersonalData {
                subject: event.personal.subject.take(),
                ..PersonalData::default()
            };
            withheld += 1;
        }
    }
    Ok(withheld)
}
