//! The server's audit log: the PostgreSQL chain, with a signed checkpoint per active
//! organisation at a fixed interval (what an auditor checks an export against).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procuhelp_audit::{AuditEvent, AuditSink, PgAuditSink, Receipt};
use procuhelp_core::OrgId;

/// Records into the chain and remembers which organisations wrote since the last
/// checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointingSink {
    log: PgAuditSink,
    active: Arc<Mutex<HashSet<OrgId>>>,
}

impl CheckpointingSink {
    /// Wraps `log`.
    pub fn new(log: PgAuditSink) -> Self {
        Self {
            log,
            active: Arc::default(),
        }
    }

    /// Signs a checkpoint for every organisation that wrote since the last call.
    pub async fn checkpoint_active(&self) -> usize {
        let orgs: Vec<OrgId> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut signed = 0;
        for org in orgs {
            match self.log.checkpoint(org).await {
                Ok(_) => signed += 1,
                Err(e) => {
                    tracing::error!(%org, error = %e, "audit checkpoint failed");
                    // Try again next time.
                    self.active
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(org);
                }
            }
        }
        signed
    }

    /// Checkpoints every `every` until the task is aborted.
    pub fn spawn_checkpoints(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.tick().await;
            loop {
                timer.tick().await;
                sink.checkpoint_active().await;
            }
        })
    }
}

#[async_trait::async_trait]
impl AuditSink for CheckpointingSink {
    async fn record(&self, event: AuditEvent) -> procuhelp_audit::Result<Receipt> {
        let org = event.org;
        let receipt = self.log.record(event).await?;
        if let Some(org) = org {
            self.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(org);
        }
        Ok(receipt)
    }
}
