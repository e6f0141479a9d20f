//! Appending to a chain: checking a batch, sealing and hashing it against the predicted
//! (or locked and read) head, and inserting it.

use std::collections::HashMap;
use std::sync::Arc;

use procuhelp_core::OrgId;
use sqlx::PgConnection;
use uuid::Uuid;

use super::persons::{PersonKeys, subject_for};
use super::{Inner, storage};
use crate::{AuditError, AuditEvent, ChainedEvent, Result, system_chain_org};

/// Events checked for appending to one chain: each valid and of the chain's
/// organisation (otherwise nothing of the batch is appended), with its context in the
/// canonical form that validation computed and the hash needs. The append functions take
/// this type, so events cannot reach the chain unchecked.
pub(crate) struct Batch<'a> {
    events: &'a [AuditEvent],
    contexts: Vec<String>,
}

impl<'a> Batch<'a> {
    pub(crate) fn check(org: OrgId, events: &'a [AuditEvent]) -> Result<Self> {
        let mut contexts = Vec::with_capacity(events.len());
        for event in events {
            contexts.push(event.validated_context()?);
            if chain_of(event) != org {
                return Err(AuditError::Invalid {
                    field: "org",
                    reason: "an event's organisation is not the batch's",
                });
            }
        }
        Ok(Self { events, contexts })
    }
}

/// The chain an event belongs to.
pub(super) fn chain_of(event: &AuditEvent) -> OrgId {
    event.org.unwrap_or_else(system_chain_org)
}

/// Takes the chain lock of `org`, seals personal data, hashes and inserts `events` as
/// the next links. The caller commits.
///
/// Fast path: when this process knows the chain's head from its last append and holds
/// the keys of every subject, the events are sealed and hashed against that predicted
/// head and inserted by one statement that first takes the chain lock and checks, in the
/// database, that the head and the keys are still what was predicted; if not it inserts
/// nothing and the locked read below runs instead. Either way the link trigger checks
/// every link.
pub(crate) async fn append_locked(
    inner: &Inner,
    conn: &mut PgConnection,
    org: OrgId,
    batch: &Batch<'_>,
) -> Result<Vec<ChainedEvent>> {
    let prepared = predict(inner, org, batch)?;
    append_prepared(inner, conn, org, batch, prepared).await
}

/// Events sealed and hashed against a predicted head, with what the database must
/// confirm before they are inserted.
pub(crate) struct Prepared {
    head: (u64, crate::chain::Hash),
    key_ids: Vec<Uuid>,
    chained: Vec<ChainedEvent>,
}

/// The subjects whose person keys `events` need.
fn subjects_needing_keys(events: &[AuditEvent]) -> Vec<crate::Subject> {
    let mut needing_keys = Vec::new();
    for e in events {
        if !e.personal.is_empty()
            && let Some(s) = subject_for(e)
            && !needing_keys.contains(&s)
        {
            needing_keys.push(s);
        }
    }
    needing_keys
}

/// Seals and hashes `events` against the head this process predicts for `org`, when it
/// has a prediction and every key needed (no database access: it can run while a
/// transaction is being opened).
pub(crate) fn predict(inner: &Inner, org: OrgId, batch: &Batch<'_>) -> Result<Option<Prepared>> {
    let Some((seq, prev)) = inner.heads().get(&org).copied() else {
        return Ok(None);
    };
    let Some(keys) = inner
        .persons
        .cached(org, &subjects_needing_keys(batch.events))
    else {
        return Ok(None);
    };
    Ok(Some(Prepared {
        head: (seq, prev),
        key_ids: keys.values().map(|(id, _)| *id).collect(),
        chained: chain(org, batch, seq, prev, &keys)?,
    }))
}

/// Inserts `prepared` if the database confirms its head and keys, otherwise takes the
/// chain lock, reads the head and keys, and inserts `events` as the next links.
pub(crate) async fn append_prepared(
    inner: &Inner,
    conn: &mut PgConnection,
    org: OrgId,
    batch: &Batch<'_>,
    prepared: Option<Prepared>,
) -> Result<Vec<ChainedEvent>> {
    if let Some(p) = prepared {
        let (seq, prev) = p.head;
        if storage::insert(conn, org, &p.chained, Some((seq, &prev, &p.key_ids))).await? {
            inner.remember_head(org, &p.chained);
            return Ok(p.chained);
        }
    }
    let needing_keys = subjects_needing_keys(batch.events);
    let (seq, prev, key_rows) = storage::lock_chain_with_keys(conn, org, &needing_keys).await?;
    let keys = inner
        .persons
        .live_keys(conn, org, &needing_keys, key_rows)
        .await?;
    let out = chain(org, batch, seq, prev, &keys)?;
    if !storage::insert(conn, org, &out, None).await? {
        return Err(AuditError::Internal("the insert did not store every event"));
    }
    inner.remember_head(org, &out);
    Ok(out)
}

/// Seals and hashes `events` as the links after `(seq, prev)`.
fn chain(
    org: OrgId,
    batch: &Batch<'_>,
    mut seq: u64,
    mut prev: crate::chain::Hash,
    keys: &HashMap<crate::Subject, (Uuid, Arc<procuhelp_core::crypto::EnvelopeKey>)>,
) -> Result<Vec<ChainedEvent>> {
    let mut out = Vec::with_capacity(batch.events.len());
    let mut encoded = Vec::with_capacity(1024);
    for (e, context) in batch.events.iter().zip(&batch.contexts) {
        seq += 1;
        let subject = subject_for(e);
        let (person_key, personal) = match (&subject, e.personal.is_empty()) {
            (Some(s), false) => {
                let (id, key) = keys
                    .get(s)
                    .ok_or(AuditError::Internal("person key missing"))?;
                (
                    Some(*id),
                    Some(PersonKeys::seal(key, org, *id, seq, &e.personal)?),
                )
            }
            _ => (None, None),
        };
        let mut c = ChainedEvent {
            org,
            seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target.clone(),
            outcome: e.outcome,
            context: context.clone(),
            request_id: e.request_id.clone(),
            subject,
            person_key,
            personal,
            prev_hash: prev,
            hash: [0; 32],
        };
        c.hash = c.fields().hash_with(&mut encoded);
        prev = c.hash;
        out.push(c);
    }
    Ok(out)
}

impl Inner {
    pub(super) fn heads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<OrgId, (u64, crate::chain::Hash)>> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the head after `appended` (the caller may still roll back: then the
    /// next prediction is wrong, and the database says so).
    fn remember_head(&self, org: OrgId, appended: &[ChainedEvent]) {
        if let Some(last) = appended.last() {
            let mut heads = self.heads();
            if heads.len() >= 4096 {
                heads.clear();
            }
            heads.insert(org, (last.seq, last.hash));
        }
    }
}

/// Appends `events` (valid, all of `org`) in a transaction of their own, committed
/// (durable) on return.
///
/// The transaction is opened by a task of its own, so that on a multi-threaded runtime
/// the pool checkout, its ping and BEGIN (two round trips) run on another worker while
/// this one seals and hashes against the predicted head (`predict`, ~1 µs per event).
/// Polled together in one task (`join!`) the round trips waited for the hashing:
/// measured 240 µs until BEGIN returned, of which 105 µs hashing. If this future is
/// dropped, the task's transaction is dropped unfinished, which rolls it back.
pub(super) async fn append_in_own_tx(
    inner: &Inner,
    org: OrgId,
    batch: &Batch<'_>,
) -> Result<Vec<ChainedEvent>> {
    use tracing::Instrument as _;
    let db = inner.db.clone();
    let begin = tokio::spawn(async move { db.begin(org).await }.in_current_span());
    let prepared = match predict(inner, org, batch) {
        Ok(p) => p,
        Err(e) => {
            // Dropping the transaction unfinished (aborted task, or dropped result)
            // rolls it back.
            begin.abort();
            return Err(e);
        }
    };
    let mut tx = begin
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the task opening an audit transaction failed");
            AuditError::Unavailable("opening the audit transaction failed".to_owned())
        })?
        .map_err(storage::tenancy_err)?;
    let appended = append_prepared(inner, tx.conn(), org, batch, prepared).await;
    match appended {
        Ok(chained) => {
            tx.commit().await.map_err(storage::tenancy_err)?;
            Ok(chained)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
