//! In-memory sinks for tests: one that keeps events, one that always fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use procuhelp_core::OrgId;

use crate::{AuditError, AuditEvent, AuditSink, Receipt, Result};

/// Keeps events in memory, numbering them per organisation from 1. Can be switched to
/// fail, to test that callers fail closed.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<State>,
    failing: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    events: Vec<AuditEvent>,
    seqs: HashMap<Option<OrgId>, u64>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink that refuses every event with [`AuditError::Unavailable`] until
    /// [`set_failing(false)`](Self::set_failing).
    pub fn failing() -> Self {
        let sink = Self::default();
        sink.set_failing(true);
        sink
    }

    /// Makes every later [`record`](AuditSink::record) fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// A copy of the recorded events, in order.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuditError::Unavailable(
                "memory sink set to fail".to_owned(),
            ));
        }
        event.validate()?;
        let mut state = self.lock();
        let org = event.org;
        let seq = state.seqs.entry(org).or_insert(0);
        *seq += 1;
        let seq = *seq;
        state.events.push(event);
        Ok(Receipt {
            org,
            seq: Some(seq),
        })
    }
}

/// A sink that refuses every event with [`AuditError::Unavailable`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FailingSink;

#[async_trait]
impl AuditSink for FailingSink {
    async fn record(&self, _event: AuditEvent) -> Result<Receipt> {
        Err(AuditError::Unavailable("failing sink".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Actor, Outcome};

    fn ev(org: Option<OrgId>) -> AuditEvent {
        AuditEvent::new(org, Actor::System, Action::KeysRotated, Outcome::Success)
    }

    #[tokio::test]
    async fn numbers_per_org_and_fails_on_demand() {
        let sink = MemorySink::new();
        let (a, b) = (OrgId::new(), OrgId::new());
        assert_eq!(
            sink.record(ev(Some(a))).await.ok().and_then(|r| r.seq),
            Some(1)
        );
        assert_eq!(
            sink.record(ev(Some(b))).await.ok().and_then(|r| r.seq),
            Some(1)
        );
        assert_eq!(
            sink.record(ev(Some(a))).await.ok().and_then(|r| r.seq),
            Some(2)
        );
        sink.set_failing(true);
        assert!(matches!(
            sink.record(ev(Some(a))).await,
            Err(AuditError::Unavailable(_))
        ));
        assert_eq!(sink.events().len(), 3);
        assert!(FailingSink.record(ev(None)).await.is_err());
        assert!(MemorySink::failing().record(ev(None)).await.is_err());
    }

    #[tokio::test]
    async fn invalid_events_are_not_kept() {
        let sink = MemorySink::new();
        let bad = ev(None).target("x".repeat(10_000));
        assert!(matches!(
            sink.record(bad).await,
            Err(AuditError::TooLarge { .. })
        ));
        assert!(sink.events().is_empty());
    }
}
