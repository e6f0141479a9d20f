//! The sink trait: where events go, and the fail-closed contract.

use std::sync::Arc;

use async_trait::async_trait;
use procuhelp_core::OrgId;

use crate::{AuditEvent, Result};

/// Proof that an event is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The chain the event joined (`None`: the system chain, or a sink without chains).
    pub org: Option<OrgId>,
    /// Its sequence number in that chain, when the sink numbers events.
    pub seq: Option<u64>,
}

impl Receipt {
    /// A receipt from a sink that does not number events.
    pub fn unnumbered(org: Option<OrgId>) -> Self {
        Self { org, seq: None }
    }
}

/// Where audit events go.
///
/// **Fail closed.** [`record`](Self::record) returns only once the event is durable (for
/// the PostgreSQL sink: committed with `synchronous_commit = on`). An `Err` means the
/// event may not have been recorded, and the caller must not perform — or, if already
/// done inside a transaction, must not commit or acknowledge — the audited operation.
#[async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one event durably.
    async fn record(&self, event: AuditEvent) -> Result<Receipt>;
}

#[async_trait]
impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        (**self).record(event).await
    }
}

#[async_trait]
impl<T: AuditSink + ?Sized> AuditSink for Box<T> {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        (**self).record(event).await
    }
}
