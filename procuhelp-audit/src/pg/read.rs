//! Reading a page of a chain back, with personal data opened where its key still exists.

use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PgAuditSink, storage};
use crate::{
    Action, AuditError, AuditEvent, AuditSink as _, ChainedEvent, PersonalData, Result, Subject,
};

/// Filters for [`PgAuditSink::read_events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only events before this time.
    pub to: Option<OffsetDateTime>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only events by this actor id.
    pub actor_id: Option<Uuid>,
    /// Only events after this sequence number (paging).
    pub after_seq: u64,
    /// At most this many (capped at [`MAX_READ`]).
    pub limit: u32,
}

/// The largest page [`PgAuditSink::read_events`] returns.
pub const MAX_READ: u32 = 1000;

/// An event read back, with its personal data opened where the person's key still exists.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The chained event (personal data still sealed inside).
    pub event: ChainedEvent,
    /// The personal data.
    pub personal: PersonalView,
}

/// Personal data of a stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersonalView {
    /// The event has none.
    None,
    /// Opened.
    Readable(PersonalData),
    /// The person was erased: the ciphertext remains, its key does not.
    Erased,
}

impl PgAuditSink {
    /// Reads a page of `org`'s events, newest last, after durably recording `access`
    /// (an [`Action::AuditRead`] event of that organisation: who reads, from where).
    /// Reading the trail is itself audited, and refused when that cannot be recorded.
    pub async fn read_events(
        &self,
        access: AuditEvent,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        let org = access.org.ok_or(AuditError::Invalid {
            field: "org",
            reason: "reads are per organisation",
        })?;
        if access.action != Action::AuditRead {
            return Err(AuditError::Invalid {
                field: "action",
                reason: "a read is recorded as audit.read",
            });
        }
        self.record(access).await?;
        let mut tx = self
            .inner
            .db
            .begin(org)
            .await
            .map_err(storage::tenancy_err)?;
        let limit = i64::from(query.limit.clamp(1, MAX_READ));
        // Only the filters given are in the statement: `($n IS NULL OR col = $n)` keeps a
        // generic plan from using the action, actor and time indexes, and a rare action
        // would walk the whole chain.
        let mut sql = format!("{} WHERE org_id = $1 AND seq > $2", storage::SELECT_ROWS);
        let mut n = 2;
        let mut next = |condition: &str| {
            n += 1;
            sql.push_str(&condition.replace('?', &format!("${n}")));
        };
        if query.from.is_some() {
            next(" AND at >= ?");
        }
        if query.to.is_some() {
            next(" AND at < ?");
        }
        if query.action.is_some() {
            next(" AND action = ?");
        }
        if query.actor_id.is_some() {
            next(" AND actor_id = ?");
        }
        next(" ORDER BY seq LIMIT ?");
        let mut statement = sqlx::query(&sql)
            .bind(org.as_uuid())
            .bind(i64::try_from(query.after_seq).unwrap_or(i64::MAX));
        if let Some(from) = query.from {
            statement = statement.bind(from);
        }
        if let Some(to) = query.to {
            statement = statement.bind(to);
        }
        if let Some(action) = &query.action {
            statement = statement.bind(action.as_str());
        }
        if let Some(actor) = query.actor_id {
            statement = statement.bind(actor);
        }
        let rows = statement
            .bind(limit)
            .fetch_all(tx.conn())
            .await
            .map_err(storage::db_err)?;
        let out = self.open_rows(&mut tx, org, &rows).await?;
        tx.commit().await.map_err(storage::tenancy_err)?;
        Ok(out)
    }

    /// A page of the events by, about or targeting the user `person` — as actor, as the
    /// subject of their personal data, or as `user:<id>` target — after `after_seq`,
    /// oldest first, at most `limit` (capped at [`MAX_READ`]), with personal data opened:
    /// a data subject's access request. In the caller's transaction of the organisation,
    /// which records the request before reading.
    pub async fn person_events_in_tx(
        &self,
        tx: &mut TenantTx,
        person: UserId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let org = tx.org();
        // Three indexed conditions (migration 0018), joined rather than OR-ed so each
        // uses its own index; the union removes events that match more than one.
        let sql = format!(
            "{select} WHERE org_id = $1 AND seq > $2 AND seq IN (
                 (SELECT seq FROM app.audit_events WHERE org_id = $1 AND actor_id = $3
                    AND seq > $2 ORDER BY seq LIMIT $6)
                 UNION (SELECT seq FROM app.audit_events WHERE org_id = $1 AND subject = $4
                    AND seq > $2 ORDER BY seq LIMIT $6)
                 UNION (SELECT seq FROM app.audit_events WHERE org_id = $1 AND target = $5
                    AND target LIKE 'user:%' AND seq > $2 ORDER BY seq LIMIT $6))
             ORDER BY seq LIMIT $6",
            select = storage::SELECT_ROWS
        );
        let rows = sqlx::query(&sql)
            .bind(org.as_uuid())
            .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
            .bind(person.as_uuid())
            .bind(Subject::from(person).as_str().to_owned())
            .bind(format!("user:{person}"))
            .bind(i64::from(limit.clamp(1, MAX_READ)))
            .fetch_all(tx.conn())
            .await
            .map_err(storage::db_err)?;
        self.open_rows(tx, org, &rows).await
    }

    async fn open_rows(
        &self,
        tx: &mut TenantTx,
        org: OrgId,
        rows: &[sqlx::postgres::PgRow],
    ) -> Result<Vec<StoredEvent>> {
        let events = rows
            .iter()
            .map(|row| storage::RawRow::from_row(row)?.into_event(org))
            .collect::<Result<Vec<_>>>()?;
        // The people's keys in one query (a page names a few people, many times).
        let mut key_ids: Vec<Uuid> = events.iter().filter_map(|e| e.person_key).collect();
        key_ids.sort_unstable();
        key_ids.dedup();
        let keys = if key_ids.is_empty() {
            std::collections::HashMap::new()
        } else {
            self.inner
                .persons
                .wrapped_keys(tx.conn(), org, &key_ids)
                .await?
        };
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let personal = match (&event.person_key, &event.personal) {
                (Some(key), Some(sealed)) => match self
                    .inner
                    .persons
                    .open_with(
                        org,
                        *key,
                        keys.get(key),
                        event.seq,
                        event.subject.clone(),
                        sealed,
                    )
                    .await?
                {
                    Some(p) => PersonalView::Readable(p),
                    None => PersonalView::Erased,
                },
                _ => PersonalView::None,
            };
            out.push(StoredEvent { event, personal });
        }
        Ok(out)
    }

    /// `org`'s events after `after_seq`, oldest first, at most `limit` (capped at
    /// [`MAX_READ`]), as the audit stream carries them (personal data stays sealed).
    /// Not recorded as a read: the stream is the deployment's own log shipping, and
    /// recording its reads would feed it forever (docs/observability.md).
    #[cfg(feature = "nats")]
    pub(crate) async fn stream_page(
        &self,
        org: OrgId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<crate::StreamEvent>> {
        let mut tx = self
            .inner
            .db
            .begin(org)
            .await
            .map_err(storage::tenancy_err)?;
        let sql = format!(
            "{} WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            storage::SELECT_ROWS
        );
        let rows = sqlx::query(&sql)
            .bind(org.as_uuid())
            .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
            .bind(i64::from(limit.clamp(1, MAX_READ)))
            .fetch_all(tx.conn())
            .await
            .map_err(storage::db_err)?;
        tx.commit().await.map_err(storage::tenancy_err)?;
        rows.iter()
            .map(|row| {
                let raw = storage::RawRow::from_row(row)?;
                let seq = u64::try_from(raw.seq).map_err(|_| AuditError::Invalid {
                    field: "seq",
                    reason: "negative sequence number",
                })?;
                let context =
                    serde_json::from_str(&raw.context).map_err(|_| AuditError::Invalid {
                        field: "context",
                        reason: "stored context is not JSON",
                    })?;
                Ok(crate::StreamEvent {
                    schema: crate::STREAM_SCHEMA.to_owned(),
                    org_id: org.as_uuid(),
                    seq,
                    time: raw.at,
                    ocsf: crate::Ocsf::classify(&raw.action, &raw.outcome, raw.at),
                    action: raw.action,
                    outcome: raw.outcome,
                    actor: crate::StreamActor {
                        kind: raw.actor_kind,
                        id: raw.actor_id,
                    },
                    target: raw.target,
                    request_id: raw.request_id,
                    subject: raw.subject,
                    personal: raw.personal.is_some(),
                    context,
                    prev_hash: hex::encode(&raw.prev_hash),
                    hash: hex::encode(&raw.hash),
                })
            })
            .collect()
    }
}
