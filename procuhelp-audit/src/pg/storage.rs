//! SQL for the chain: the per-organisation lock, the head, the multi-row insert and the
//! ordered read.

use procuhelp_core::OrgId;
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain::{Fields, GENESIS, Hash, hash_from_slice};
use crate::{AuditError, ChainedEvent, Result, Subject};

pub(crate) fn db_err(e: sqlx::Error) -> AuditError {
    match &e {
        sqlx::Error::Database(db) => AuditError::Storage(db.message().to_owned()),
        other => AuditError::Unavailable(other.to_string()),
    }
}

pub(crate) fn tenancy_err(e: procuhelp_tenancy::Error) -> AuditError {
    match e {
        procuhelp_tenancy::Error::UnknownOrg(org) => AuditError::UnknownOrg(org),
        other => AuditError::Unavailable(other.to_string()),
    }
}

/// The advisory-lock key of an organisation's chain. Two organisations sharing a key only
/// wait for each other; correctness never depends on the lock being unique.
fn lock_key(org: OrgId) -> i32 {
    let b = org.as_uuid().into_bytes();
    let mut k = [0u8; 4];
    for (i, byte) in b.iter().enumerate() {
        k[i % 4] ^= byte;
    }
    i32::from_be_bytes(k)
}

/// The chain head after taking the organisation's chain lock for the rest of the
/// transaction: `(last seq, last hash)`, or `(0, GENESIS)` for an empty chain.
///
/// Why an advisory lock and not a heads table or `SELECT … FOR UPDATE`: the runtime role
/// has INSERT and SELECT only on the events (FOR UPDATE needs UPDATE), and a heads table
/// the runtime role may update is one more thing to tamper with. The lock serialises all
/// writers of one chain; the primary key (org, seq) and the link trigger make the
/// database refuse a fork or a gap even from a writer that skipped it. Under READ
/// COMMITTED the head query runs after the lock is granted, with a snapshot that sees
/// the previous holder's commit.
pub(crate) async fn lock_chain(conn: &mut PgConnection, org: OrgId) -> Result<(u64, Hash)> {
    let (seq, head, _) = lock_chain_with_keys(conn, org, &[]).await?;
    Ok((seq, head))
}

/// A live person key row: subject, key id, KEK version, wrapped key.
pub(crate) type KeyRow = (String, Uuid, Option<i32>, Option<Vec<u8>>);

/// [`lock_chain`], and in the same round trip the live person keys of `subjects`
/// (read after the lock, so key creation never races with another writer or erasure).
///
/// One prepared call of `app.audit_chain_head` (migration 0007): it takes the lock, then
/// reads the head and the keys, each with a snapshot taken after the lock was granted.
pub(crate) async fn lock_chain_with_keys(
    conn: &mut PgConnection,
    org: OrgId,
    subjects: &[Subject],
) -> Result<(u64, Hash, Vec<KeyRow>)> {
    let subjects: Vec<&str> = subjects.iter().map(Subject::as_str).collect();
    let rows = sqlx::query(
        "SELECT seq, hash, subject, key_id, kek_version, wrapped \
         FROM app.audit_chain_head($1, $2, $3)",
    )
    .bind(org.as_uuid())
    .bind(lock_key(org))
    .bind(&subjects)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut head = (0, GENESIS);
    let mut keys = Vec::new();
    for row in &rows {
        let seq: Option<i64> = row.try_get(0).map_err(db_err)?;
        if let Some(seq) = seq {
            let hash: Vec<u8> = row.try_get(1).map_err(db_err)?;
            let seq = u64::try_from(seq).map_err(|_| AuditError::Internal("negative seq"))?;
            head = (seq, hash_from_slice("hash", &hash)?);
        } else {
            let subject: Option<String> = row.try_get(2).map_err(db_err)?;
            let id: Option<Uuid> = row.try_get(3).map_err(db_err)?;
            let (Some(subject), Some(id)) = (subject, id) else {
                return Err(AuditError::Internal("chain head row without seq or key"));
            };
            keys.push((
                subject,
                id,
                row.try_get(4).map_err(db_err)?,
                row.try_get(5).map_err(db_err)?,
            ));
        }
    }
    Ok((head.0, head.1, keys))
}

const INSERT_EVENTS: &str =
    "INSERT INTO app.audit_events (org_id, seq, at, actor_kind, actor_id, action, target, outcome,
                               context, request_id, subject, person_key, personal, prev_hash, hash)
 SELECT $1, * FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::uuid[], $6::text[],
                          $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                          $12::uuid[], $13::bytea[], $14::bytea[], $15::bytea[])";

/// The predicted head `(seq, hash)` and the person key ids the events were sealed with.
pub(crate) type Expected<'a> = (u64, &'a Hash, &'a [Uuid]);

/// Inserts `events` (all of `org`, consecutive, already hashed) in one statement.
///
/// With `expected`, the statement first takes the chain lock and inserts nothing unless
/// the chain's head and the live person keys are the expected ones
/// (`app.audit_head_is`, evaluated once, as an uncorrelated sub-select); returns whether
/// the events were inserted. Without, it always inserts (the caller holds the lock and
/// read the head) and returns `true`.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    org: OrgId,
    events: &[ChainedEvent],
    expected: Option<Expected<'_>>,
) -> Result<bool> {
    if events.is_empty() {
        return Ok(true);
    }
    let n = events.len();
    let mut seq = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut actor_kind = Vec::with_capacity(n);
    let mut actor_id = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut target = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut context = Vec::with_capacity(n);
    let mut request_id = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut person_key = Vec::with_capacity(n);
    let mut personal = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    for e in events {
        seq.push(i64::try_from(e.seq).map_err(|_| AuditError::Internal("seq out of range"))?);
        at.push(e.at);
        actor_kind.push(e.actor.kind());
        actor_id.push(e.actor.id());
        action.push(e.action.as_str());
        target.push(e.target.as_deref());
        outcome.push(e.outcome.as_str());
        context.push(e.context.as_str());
        request_id.push(e.request_id.as_deref());
        subject.push(e.subject.as_ref().map(Subject::as_str));
        person_key.push(e.person_key);
        personal.push(e.personal.as_deref());
        prev_hash.push(&e.prev_hash[..]);
        hash.push(&e.hash[..]);
    }
    let conditional;
    let sql = match expected {
        None => INSERT_EVENTS,
        Some(_) => {
            conditional =
                format!("{INSERT_EVENTS} WHERE (SELECT app.audit_head_is($1, $16, $17, $18, $19))");
            conditional.as_str()
        }
    };
    let mut query = sqlx::query(sql)
        .bind(org.as_uuid())
        .bind(seq)
        .bind(at)
        .bind(actor_kind)
        .bind(actor_id)
        .bind(action)
        .bind(target)
        .bind(outcome)
        .bind(context)
        .bind(request_id)
        .bind(subject)
        .bind(person_key)
        .bind(personal)
        .bind(prev_hash)
        .bind(hash);
    if let Some((seq, head, key_ids)) = expected {
        let seq = i64::try_from(seq).map_err(|_| AuditError::Internal("seq out of range"))?;
        query = query
            .bind(lock_key(org))
            .bind(seq)
            .bind(&head[..])
            .bind(key_ids);
    }
    let done = query.execute(&mut *conn).await.map_err(db_err)?;
    Ok(done.rows_affected() == n as u64)
}

/// One stored row, as text and bytes: verification hashes what is stored, without first
/// parsing it (a tampered action string is a hash mismatch at its seq, not an error).
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    pub(crate) seq: i64,
    pub(crate) at: OffsetDateTime,
    pub(crate) actor_kind: String,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) action: String,
    pub(crate) target: Option<String>,
    pub(crate) outcome: String,
    pub(crate) context: String,
    pub(crate) request_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) person_key: Option<Uuid>,
    pub(crate) personal: Option<Vec<u8>>,
    pub(crate) prev_hash: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

pub(crate) const SELECT_ROWS: &str =
    "SELECT seq, at, actor_kind, actor_id, action, target, outcome, context,
        request_id, subject, person_key, personal, prev_hash, hash FROM app.audit_events";

impl RawRow {
    pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self> {
        Ok(Self {
            seq: row.try_get(0).map_err(db_err)?,
            at: row.try_get(1).map_err(db_err)?,
            actor_kind: row.try_get(2).map_err(db_err)?,
            actor_id: row.try_get(3).map_err(db_err)?,
            action: row.try_get(4).map_err(db_err)?,
            target: row.try_get(5).map_err(db_err)?,
            outcome: row.try_get(6).map_err(db_err)?,
            context: row.try_get(7).map_err(db_err)?,
            request_id: row.try_get(8).map_err(db_err)?,
            subject: row.try_get(9).map_err(db_err)?,
            person_key: row.try_get(10).map_err(db_err)?,
            personal: row.try_get(11).map_err(db_err)?,
            prev_hash: row.try_get(12).map_err(db_err)?,
            hash: row.try_get(13).map_err(db_err)?,
        })
    }

    /// The hashed fields; `None` when a stored value cannot even be encoded (negative seq,
    /// hash of the wrong length) — reported as a problem at this row.
    pub(crate) fn fields<'a>(&'a self, org: OrgId, prev: &'a Hash) -> Option<Fields<'a>> {
        Some(Fields {
            org: org.as_uuid(),
            seq: u64::try_from(self.seq).ok()?,
            prev_hash: prev,
            at_micros: crate::chain::unix_micros(self.at),
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id,
            action: &self.action,
            target: self.target.as_deref(),
            outcome: &self.outcome,
            context: &self.context,
            request_id: self.request_id.as_deref(),
            subject: self.subject.as_deref(),
            person_key: self.person_key,
            personal: self.personal.as_deref(),
        })
    }

    /// The typed event.
    pub(crate) fn into_event(self, org: OrgId) -> Result<ChainedEvent> {
        Ok(ChainedEvent {
            org,
            seq: u64::try_from(self.seq).map_err(|_| AuditError::Internal("negative seq"))?,
            at: self.at,
            actor: crate::Actor::from_parts(&self.actor_kind, self.actor_id)?,
            action: self.action.parse()?,
            target: self.target,
            outcome: self.outcome.parse()?,
            context: self.context,
            request_id: self.request_id,
            subject: self
                .subject
                .as_deref()
                .map(crate::Subject::new)
                .transpose()?,
            person_key: self.person_key,
            personal: self.personal,
            prev_hash: hash_from_slice("prev_hash", &self.prev_hash)?,
            hash: hash_from_slice("hash", &self.hash)?,
        })
    }
}
