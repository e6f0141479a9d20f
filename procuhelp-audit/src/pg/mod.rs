//! The PostgreSQL sink: append-only, hash-chained per organisation, with group commit.

mod append;
mod checkpoint;
mod erasure;
mod export;
mod import;
mod persons;
mod read;
pub(crate) mod storage;
mod verify;
mod writer;

pub use erasure::Erasure;
pub use export::{ExportFormat, ExportRange, ExportSummary};
pub use import::{ImportSummary, MAX_IMPORT_BYTES};
pub(crate) use persons::PersonKeys;
pub use persons::{kek_name as organisation_kek, unattributed_subject};
pub use read::{EventQuery, MAX_READ, PersonalView, StoredEvent};
pub use verify::verify_live;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use procuhelp_core::OrgId;
use procuhelp_core::vault::SecretProvider;
use procuhelp_tenancy::{TenantDb, TenantTx};
use tokio::sync::{mpsc, oneshot};

use append::append_in_own_tx;
pub(crate) use append::{Batch, append_locked};
use writer::{Job, run_writer};

use crate::{AuditError, AuditEvent, AuditSink, Receipt, Result};

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

    /// Chooses `signer` for this sink (and its clones) unless one is chosen already, in
    /// which case it must be this very signer: two signers for one trail would publish
    /// checkpoints under keys nobody pinned.
    pub(crate) fn use_signer(
        &self,
        signer: Arc<dyn crate::checkpoint::CheckpointSigner>,
    ) -> Result<()> {
        if self.inner.signer.set(signer.clone()).is_ok() {
            return Ok(());
        }
        match self.inner.signer.get() {
            Some(current) if Arc::ptr_eq(current, &signer) => Ok(()),
            _ => Err(AuditError::Invalid {
                field: "signer",
                reason: "the sink already signs checkpoints with another signer",
            }),
        }
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
