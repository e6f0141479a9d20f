//! The pipeline's innermost stage: records into the chain and remembers, per chain, what
//! no checkpoint covers yet; signs the checkpoints that are due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use procuhelp_core::{Clock, OrgId};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::CheckpointSchedule;
use crate::{AuditEvent, AuditSink, PgAuditSink, Receipt, Result, system_chain_org};

/// After a failed signature, a chain is tried again no sooner than this (a signer that
/// is down is not asked on every tick; each failure is logged).
const RETRY_AFTER: time::Duration = time::Duration::seconds(5);

/// What no checkpoint of one chain covers yet.
#[derive(Debug, Clone, Copy)]
struct Unsigned {
    /// When the oldest of these events was recorded (by the pipeline's clock).
    since: OffsetDateTime,
    /// How many.
    events: u64,
    /// After a failure: not before this.
    retry_at: Option<OffsetDateTime>,
}

/// Records into the chain and tracks unsigned events per chain.
#[derive(Debug)]
pub(crate) struct CheckpointingSink {
    log: PgAuditSink,
    schedule: CheckpointSchedule,
    clock: Arc<dyn Clock>,
    unsigned: Mutex<HashMap<OrgId, Unsigned>>,
    /// Wakes the background task when a chain reached the event count.
    pub(crate) nudge: Notify,
    signed: AtomicU64,
    failures: AtomicU64,
}

/// What one round of checkpointing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Round {
    pub(crate) signed: u64,
    pub(crate) failed: u64,
}

impl CheckpointingSink {
    pub(crate) fn new(
        log: PgAuditSink,
        schedule: CheckpointSchedule,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            log,
            schedule,
            clock,
            unsigned: Mutex::new(HashMap::new()),
            nudge: Notify::new(),
            signed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(crate) fn signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Chains with events no checkpoint covers yet.
    pub(crate) fn unsigned_chains(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, Unsigned>> {
        // Nothing panics while holding it; recover the map if a panic poisoned it anyway.
        self.unsigned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the chains due at `now` (every chain with unsigned events when `all`).
    fn take_due(&self, now: OffsetDateTime, all: bool) -> Vec<(OrgId, Unsigned)> {
        let interval = self
            .schedule
            .interval()
            .and_then(|i| time::Duration::try_from(i).ok());
        let mut unsigned = self.lock();
        let due: Vec<OrgId> = unsigned
            .iter()
            .filter(|(_, u)| {
                all || (u.retry_at.is_none_or(|at| now >= at)
                    && (self.schedule.events().is_some_and(|n| u.events >= n)
                        || interval.is_some_and(|i| now - u.since >= i)))
            })
            .map(|(org, _)| *org)
            .collect();
        due.into_iter()
            .filter_map(|org| unsigned.remove(&org).map(|u| (org, u)))
            .collect()
    }

    /// Signs a checkpoint of every chain that is due (every chain with unsigned events
    /// when `all`). A failure is counted and the chain stays due: its events are durable,
    /// only their signature waits. One error per round is logged (with the first cause),
    /// not one per chain: a signer that is down must not flood the log.
    pub(crate) async fn checkpoint_due(&self, all: bool) -> Round {
        let now = self.clock.now();
        let mut round = Round::default();
        let mut first_error = None;
        for (org, taken) in self.take_due(now, all) {
            match self.log.checkpoint_at(org, None, self.clock.now()).await {
                Ok(_) => {
                    round.signed += 1;
                    self.signed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    round.failed += 1;
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%org, error = %e, unsigned_events = taken.events, "audit checkpoint not signed");
                    first_error.get_or_insert(e);
                    let retry_at = Some(self.clock.now() + RETRY_AFTER);
                    self.lock()
                        .entry(org)
                        .and_modify(|u| {
                            u.since = u.since.min(taken.since);
                            u.events += taken.events;
                            u.retry_at = retry_at;
                        })
                        .or_insert(Unsigned { retry_at, ..taken });
                }
            }
        }
        if let Some(e) = first_error {
            tracing::error!(
                chains = round.failed, signed = round.signed, error = %e,
                "audit checkpoints not signed; the events are recorded, their checkpoints \
                 are retried"
            );
        }
        round
    }

    fn mark(&self, org: OrgId) {
        let now = self.clock.now();
        let mut unsigned = self.lock();
        let u = unsigned.entry(org).or_insert(Unsigned {
            since: now,
            events: 0,
            retry_at: None,
        });
        u.events += 1;
        let reached = self.schedule.events().is_some_and(|n| u.events >= n);
        drop(unsigned);
        if reached {
            self.nudge.notify_one();
        }
    }
}

#[async_trait]
impl AuditSink for CheckpointingSink {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        let chain = event.org.unwrap_or_else(system_chain_org);
        let receipt = self.log.record(event).await?;
        self.mark(chain);
        Ok(receipt)
    }
}
