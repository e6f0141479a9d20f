//! The PostgreSQL sink: append-only, hash-chained per organisation, with group commit.

mod erasure;
mod export;
mod import;
mod persons;
pub(crate) mod storage;

pub use erasure::Erasure;
pub use export::{ExportFormat, ExportRange, ExportSummary, verify_live};
pub use import::{ImportSummary, MAX_IMPORT_BYTES};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use procuhelp_core::OrgId;
use procuhelp_core::vault::SecretProvider;
use procuhelp_tenancy::{TenantDb, TenantTx};
use sqlx::PgConnection;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub(crate) use persons::PersonKeys;
pub use persons::unattributed_subject;

use crate::{
    Action, AuditError, AuditEvent, AuditSink, ChainedEvent, PersonalData, Receipt, Result,
    system_chain_org,
};
use persons::subject_for;

/// Tuning of the group-commit writer.
#[derive(Debug, Clone, Copy)]
pub struct PgAuditConfig {
    /// Most events written by one transaction.
    pub max_batch: usize,
    /// Events waiting to be taken by the writer before `record` waits for room; also the
    /// most events one organisation may have waiting while its batch is written (beyond
    /// it, its `record` calls fail with [`AuditError::Unavailable`]: its writes are
    /// stalled, and other organisations must not wait behind it).
    pub queue: usize,
    /// Batch transactions in flight at once, for different organisations (one
    /// organisation's batches take turns on its chain lock, so it has at most one in
    /// flight and its next events gather meanwhile).
    pub max_in_flight: usize,
}

impl Default for PgAuditConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            queue: 16 * 1024,
            max_in_flight: 2,
        }
    }
}

/// The append-only, hash-chained PostgreSQL audit sink.
///
/// [`record`](AuditSink::record) enqueues the event; a background task takes everything
/// queued (up to [`PgAuditConfig::max_batch`]), groups it by organisation and writes each
/// group in one transaction — `TenantDb::begin(org)`, the chain lock, one multi-row
/// `INSERT`, `COMMIT` with `synchronous_commit = on` — then acknowledges every waiter.
/// One flush covers the whole batch, which is how many concurrent callers each get a
/// durable receipt at far more than one-flush-per-event rates.
///
/// Create it inside a Tokio runtime (it spawns its writer). Cloning shares the writer;
/// the writer stops once every clone is dropped, after writing what was queued.
#[derive(Debug, Clone)]
pub struct PgAuditSink {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Job>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: TenantDb,
    pub(crate) persons: PersonKeys,
    pub(crate) vault: Arc<dyn SecretProvider>,
    /// Signs checkpoints: the one given to [`PgAuditSink::with_signer`], else (legacy) the
    /// vault's key, loaded on first use.
    pub(crate) signer: tokio::sync::OnceCell<Arc<dyn crate::checkpoint::CheckpointSigner>>,
    /// The head each chain had after this process last appended to it: a prediction,
    /// confirmed by the database under the chain lock before anything is inserted.
    pub(crate) heads: std::sync::Mutex<HashMap<OrgId, (u64, crate::chain::Hash)>>,
}

#[derive(Debug)]
struct Job {
    event: AuditEvent,
    done: oneshot::Sender<Result<Receipt>>,
}

impl PgAuditSink {
    /// A sink writing through `db` (a pool of the runtime role) with per-person keys
    /// wrapped by `vault`.
    pub fn new(db: TenantDb, vault: Arc<dyn SecretProvider>) -> Self {
        Self::with_config(db, vault, PgAuditConfig::default())
    }

    /// Like [`new`](Self::new), tuned.
    pub fn with_config(
        db: TenantDb,
        vault: Arc<dyn SecretProvider>,
        config: PgAuditConfig,
    ) -> Self {
        let inner = Arc::new(Inner {
            db,
            persons: PersonKeys::new(vault.clone()),
            vault,
            signer: tokio::sync::OnceCell::new(),
            heads: std::sync::Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(run_writer(inner.clone(), rx, config));
        Self { inner, queue: tx }
    }

    /// Signs this sink's checkpoints with `signer` (a key the runtime's vault does not
    /// hold: [`Ed25519Signer::open_or_create_file`](crate::Ed25519Signer::open_or_create_file)
    /// or OpenBao Transit) instead of the legacy vault secret
    /// [`SIGNING_KEY_NAME`](crate::SIGNING_KEY_NAME). Call before the first checkpoint;
    /// afterwards the choice is fixed and this is an error.
    pub fn with_signer(self, signer: Arc<dyn crate::checkpoint::CheckpointSigner>) -> Result<Self> {
        self.inner
            .signer
            .set(signer)
            .map_err(|_| AuditError::Invalid {
                field: "signer",
                reason: "the checkpoint signer is already chosen",
            })?;
        Ok(self)
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Appends `event` inside the caller's transaction, so the audited change and its
    /// event commit (or roll back) together. The receipt's sequence number is final once
    /// the caller commits; until then the chain lock of the organisation is held, so
    /// commit promptly. The event's organisation must be the transaction's.
    pub async fn append_in_tx(&self, tx: &mut TenantTx, event: &AuditEvent) -> Result<Receipt> {
        let org = tx.org();
        let batch = Batch::check(org, std::slice::from_ref(event))?;
        let chained = append_locked(&self.inner, tx.conn(), org, &batch).await?;
        Ok(Receipt {
            org: event.org,
            seq: chained.first().map(|c| c.seq),
        })
    }

    /// Appends `events` of organisation `org`, in order, as consecutive links in a
    /// transaction of their own: one chain lock, one multi-row `INSERT`, durable (and the
    /// receipts final) on return. All events must be of `org` and valid; otherwise
    /// nothing is appended.
    ///
    /// While the transaction is being opened, the events are already sealed and hashed
    /// against the head this writer predicts from its own last append; the database
    /// confirms that head under the chain lock before inserting (or the writer reads the
    /// head and redoes the work).
    ///
    /// ```no_run
    /// # async fn demo(sink: &procuhelp_audit::PgAuditSink, org: procuhelp_core::OrgId,
    /// #               events: Vec<procuhelp_audit::AuditEvent>) -> procuhelp_audit::Result<()> {
    /// let receipts = sink.append_batch(org, &events).await?;
    /// assert_eq!(receipts.len(), events.len());
    /// # Ok(()) }
    /// ```
    pub async fn append_batch(&self, org: OrgId, events: &[AuditEvent]) -> Result<Vec<Receipt>> {
        let batch = Batch::check(org, events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let chained = append_in_own_tx(&self.inner, org, &batch).await?;
        Ok(chained
            .iter()
            .map(|c| Receipt {
                org: Some(org),
                seq: Some(c.seq),
            })
            .collect())
    }

    /// Appends `events`, in order, as consecutive links inside the caller's transaction:
    /// one chain lock, one multi-row `INSERT` (imports, batch jobs). All events must be of
    /// the transaction's organisation and valid; otherwise nothing is appended. As with
    /// [`append_in_tx`](Self::append_in_tx), the receipts are final once the caller
    /// commits.
    pub async fn append_all_in_tx(
        &self,
        tx: &mut TenantTx,
        events: &[AuditEvent],
    ) -> Result<Vec<Receipt>> {
        let org = tx.org();
        let batch = Batch::check(org, events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let chained = append_locked(&self.inner, tx.conn(), org, &batch).await?;
        Ok(chained
            .iter()
            .map(|c| Receipt {
                org: Some(org),
                seq: Some(c.seq),
            })
            .collect())
    }
}

#[async_trait]
impl AuditSink for PgAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        event.validate()?;
        let (done, wait) = oneshot::channel();
        self.queue
            .send(Job { event, done })
            .await
            .map_err(|_| AuditError::Unavailable("audit writer stopped".to_owned()))?;
        wait.await
            .map_err(|_| AuditError::Unavailable("audit writer stopped".to_owned()))?
    }
}

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
fn chain_of(event: &AuditEvent) -> OrgId {
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
    fn heads(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, (u64, crate::chain::Hash)>> {
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

async fn run_writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>, config: PgAuditConfig) {
    let max_in_flight = config.max_in_flight.max(1);
    let max_batch = config.max_batch.max(1);
    let max_waiting = config.queue.max(1);
    // At most one batch per chain in flight. A second one would only wait for the first's
    // chain lock while holding a slot: with a chain blocked (an import holding its lock,
    // say), two of its batches used to hold both slots and stall every organisation.
    // Now a blocked chain holds one slot and queues its own events; the others proceed.
    let mut in_flight: HashSet<OrgId> = HashSet::new();
    let mut waiting: HashMap<OrgId, Vec<Job>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<OrgId>();
    let mut receiving = true;
    loop {
        let ready: Vec<OrgId> = waiting
            .keys()
            .filter(|org| !in_flight.contains(*org))
            .copied()
            .collect();
        for org in ready {
            if in_flight.len() >= max_in_flight {
                break;
            }
            let Some(queued) = waiting.get_mut(&org) else {
                continue;
            };
            let jobs: Vec<Job> = queued.drain(..queued.len().min(max_batch)).collect();
            if queued.is_empty() {
                waiting.remove(&org);
            }
            in_flight.insert(org);
            let (inner, done) = (inner.clone(), BatchDone(done_tx.clone(), org));
            tokio::spawn(async move {
                write_batch(inner, org, jobs).await;
                drop(done);
            });
        }
        if !receiving && in_flight.is_empty() && waiting.is_empty() {
            break;
        }
        tokio::select! {
            job = rx.recv(), if receiving => match job {
                Some(job) => {
                    wait_for_writing(&mut waiting, job, max_waiting);
                    for _ in 1..max_batch {
                        match rx.try_recv() {
                            Ok(job) => wait_for_writing(&mut waiting, job, max_waiting),
                            Err(_) => break,
                        }
                    }
                }
                None => receiving = false,
            },
            Some(org) = done_rx.recv() => {
                in_flight.remove(&org);
            }
        }
    }
}

/// Tells the writer that a chain's batch is over when dropped — also if the task writing
/// it panicked or was cancelled, so that the chain's next events are never stranded.
struct BatchDone(mpsc::UnboundedSender<OrgId>, OrgId);

impl Drop for BatchDone {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

/// Queues `job` behind its chain's other waiting events; refuses it when that chain
/// already has `max_waiting` events waiting (its writes are stalled: its callers get an
/// error, other organisations are not held up).
fn wait_for_writing(waiting: &mut HashMap<OrgId, Vec<Job>>, job: Job, max_waiting: usize) {
    let queued = waiting.entry(chain_of(&job.event)).or_default();
    if queued.len() >= max_waiting {
        let _ = job.done.send(Err(AuditError::Unavailable(
            "the audit log of this organisation is backed up".to_owned(),
        )));
    } else {
        queued.push(job);
    }
}

async fn write_batch(inner: Arc<Inner>, org: OrgId, jobs: Vec<Job>) {
    let (events, waiters): (Vec<AuditEvent>, Vec<oneshot::Sender<Result<Receipt>>>) =
        jobs.into_iter().map(|j| (j.event, j.done)).unzip();
    match commit_batch(inner, org, &events).await {
        Ok(seqs) => {
            for ((event, done), seq) in events.iter().zip(waiters).zip(seqs) {
                let receipt = Receipt {
                    org: event.org,
                    seq: Some(seq),
                };
                // A caller that stopped waiting still has its event recorded.
                let _ = done.send(Ok(receipt));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, %org, events = events.len(), "audit batch not written");
            for done in waiters {
                let _ = done.send(Err(share(&e)));
            }
        }
    }
}

async fn commit_batch(inner: Arc<Inner>, org: OrgId, events: &[AuditEvent]) -> Result<Vec<u64>> {
    let batch = Batch::check(org, events)?;
    let chained = append_in_own_tx(&inner, org, &batch).await?;
    Ok(chained.iter().map(|c| c.seq).collect())
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
async fn append_in_own_tx(
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

/// A copy of a batch error for each waiter.
fn share(e: &AuditError) -> AuditError {
    match e {
        AuditError::UnknownOrg(org) => AuditError::UnknownOrg(*org),
        AuditError::Storage(m) => AuditError::Storage(m.clone()),
        other => AuditError::Unavailable(other.to_string()),
    }
}

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
        let sql = format!(
            "{} WHERE org_id = $1 AND seq > $2 AND ($3::timestamptz IS NULL OR at >= $3)
               AND ($4::timestamptz IS NULL OR at < $4) AND ($5::text IS NULL OR action = $5)
               AND ($6::uuid IS NULL OR actor_id = $6)
             ORDER BY seq LIMIT $7",
            storage::SELECT_ROWS
        );
        let rows = sqlx::query(&sql)
            .bind(org.as_uuid())
            .bind(i64::try_from(query.after_seq).unwrap_or(i64::MAX))
            .bind(query.from)
            .bind(query.to)
            .bind(query.action.map(Action::as_str))
            .bind(query.actor_id)
            .bind(limit)
            .fetch_all(tx.conn())
            .await
            .map_err(storage::db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = storage::RawRow::from_row(row)?.into_event(org)?;
            let personal = match (&event.person_key, &event.personal) {
                (Some(key), Some(sealed)) => match self
                    .inner
                    .persons
                    .open(
                        tx.conn(),
                        org,
                        *key,
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
        tx.commit().await.map_err(storage::tenancy_err)?;
        Ok(out)
    }
}
