//! # procuhelp-audit
//!
//! The audit trail. This first slice defines the event every privileged action produces
//! and the sink trait; the append-only PostgreSQL chain, export, verification and
//! alerting arrive with their own issue.
//!
//! ```
//! use procuhelp_audit::{AuditEvent, AuditSink, MemorySink};
//! use procuhelp_core::OrgId;
//!
//! let sink = MemorySink::default();
//! sink.record(AuditEvent::system(Some(OrgId::new()), "supplier.create", "ok"));
//! assert_eq!(sink.events().len(), 1);
//! ```
#![forbid(unsafe_code)]

use std::sync::Mutex;

use procuhelp_core::OrgId;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The organisation, when the action is tenant-scoped.
    pub org: Option<OrgId>,
    /// Who acted (`system` for the server itself).
    pub actor: String,
    /// What was done, as a stable dotted name.
    pub action: &'static str,
    /// How it ended.
    pub outcome: &'static str,
}

impl AuditEvent {
    /// An event whose actor is the server itself (migrations, start-up checks).
    pub fn system(org: Option<OrgId>, action: &'static str, outcome: &'static str) -> Self {
        Self {
            org,
            actor: "system".to_owned(),
            action,
            outcome,
        }
    }
}

/// Where audit events go.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one event.
    fn record(&self, event: AuditEvent);
}

/// A sink that keeps events in memory, for tests and examples.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// A copy of the recorded events.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}
