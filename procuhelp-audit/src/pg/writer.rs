//! The group-commit writer behind `PgAuditSink::record`: one batch per chain in flight,
//! each written in a transaction of its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use procuhelp_core::OrgId;
use tokio::sync::{mpsc, oneshot};

use super::append::{Batch, append_in_own_tx, chain_of};
use super::{Inner, PgAuditConfig};
use crate::{AuditError, AuditEvent, Receipt, Result};

/// One event waiting to be written, and who waits for its receipt.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) event: AuditEvent,
    pub(super) done: oneshot::Sender<Result<Receipt>>,
}

pub(super) async fn run_writer(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Job>,
    config: PgAuditConfig,
) {
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
            #[allow(clippy::cast_precision_loss)] // a batch is at most max_batch events
            metrics::histogram!("procuhelp_audit_writer_batch_size").record(jobs.len() as f64);
            let (inner, done) = (inner.clone(), BatchDone(done_tx.clone(), org));
            tokio::spawn(async move {
                write_batch(inner, org, jobs).await;
                drop(done);
            });
        }
        #[allow(clippy::cast_precision_loss)] // bounded by the queue settings
        metrics::gauge!("procuhelp_audit_writer_queue_depth")
            .set(waiting.values().map(Vec::len).sum::<usize>() as f64);
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

/// A copy of a batch error for each waiter.
fn share(e: &AuditError) -> AuditError {
    match e {
        AuditError::UnknownOrg(org) => AuditError::UnknownOrg(*org),
        AuditError::Storage(m) => AuditError::Storage(m.clone()),
        other => AuditError::Unavailable(other.to_string()),
    }
}
