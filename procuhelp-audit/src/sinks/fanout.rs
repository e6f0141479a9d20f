//! Records every event in several sinks.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{AuditEvent, AuditSink, Receipt, Result};

/// Records every event in each of its sinks, in order; succeeds only if all succeed.
///
/// A failure part-way leaves the event in the earlier sinks while the operation is
/// refused: an over-recorded attempt, never an unrecorded action. The receipt is the
/// first one that carries a sequence number (put the chained sink first).
#[derive(Debug, Clone)]
pub struct FanOutSink {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl FanOutSink {
    /// Fans out to `sinks`.
    pub fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        Self { sinks }
    }
}

#[async_trait]
impl AuditSink for FanOutSink {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        event.validate()?;
        let mut receipt = Receipt::unnumbered(event.org);
        for sink in &self.sinks {
            let r = sink.record(event.clone()).await?;
            if receipt.seq.is_none() {
                receipt = r;
            }
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Actor, AuditError, MemorySink, Outcome};

    #[tokio::test]
    async fn all_must_succeed() {
        let a = Arc::new(MemorySink::new());
        let b = Arc::new(MemorySink::new());
        let fan = FanOutSink::new(vec![a.clone(), b.clone()]);
        let ev = AuditEvent::new(None, Actor::System, Action::AdminCommand, Outcome::Success);
        let r = fan.record(ev.clone()).await;
        assert_eq!(r.ok().and_then(|r| r.seq), Some(1));
        assert_eq!((a.events().len(), b.events().len()), (1, 1));
        b.set_failing(true);
        assert!(matches!(
            fan.record(ev).await,
            Err(AuditError::Unavailable(_))
        ));
    }
}
