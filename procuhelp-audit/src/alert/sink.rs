//! An audit sink that also feeds the detectors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::detect::Signal;
use super::{Alert, AlertSink, Detectors};
use crate::{AuditEvent, AuditSink, Receipt, Result};

/// Wraps an [`AuditSink`]: each event is recorded in the inner sink first — durably, with
/// the usual fail-closed error — and only then shown to the [`Detectors`]; their alerts go
/// through a bounded queue to a delivery task that calls the [`AlertSink`]. Alerting
/// never delays, fails or reorders a record: when the queue is full the alert is dropped
/// and counted ([`dropped_alerts`](Self::dropped_alerts)), with an error in the log.
///
/// Only events recorded through this sink are seen: events appended inside a caller's
/// transaction (`PgAuditSink::append_in_tx`) bypass it.
///
/// Create it inside a Tokio runtime (it spawns the delivery task, which ends when the
/// sink is dropped, after handing over what was queued).
#[derive(Debug)]
pub struct AlertingSink<S> {
    inner: S,
    detectors: Mutex<Detectors>,
    queue: mpsc::Sender<Alert>,
    dropped: AtomicU64,
}

impl<S: AuditSink> AlertingSink<S> {
    /// Records to `inner`, detects with `detectors`, delivers to `alerts` through a queue
    /// of `queue` alerts (at least 1).
    pub fn new(inner: S, detectors: Detectors, alerts: Arc<dyn AlertSink>, queue: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<Alert>(queue.max(1));
        tokio::spawn(async move {
            while let Some(alert) = rx.recv().await {
                let id = alert.id;
                if let Err(e) = alerts.send(alert).await {
                    tracing::error!(error = %e, alert = %id, "alert not delivered");
                }
            }
        });
        Self {
            inner,
            detectors: Mutex::new(detectors),
            queue: tx,
            dropped: AtomicU64::new(0),
        }
    }

    /// The inner sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Alerts dropped because the delivery queue was full.
    pub fn dropped_alerts(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Shows the detectors an event already committed by other means (appended inside a
    /// caller's transaction, which bypasses the pipeline), after its commit.
    pub fn observe_committed(&self, event: &AuditEvent) {
        for alert in self.detect(&Signal::of(event)) {
            self.enqueue(alert);
        }
    }

    /// Feeds one HTTP response to the detectors and queues the alerts it raises (never
    /// blocking: a full queue drops and counts, as for events).
    pub fn observe_http(&self, response: &super::HttpResponse) {
        let alerts = {
            let mut d = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
            d.observe_http(response)
        };
        for alert in alerts {
            self.enqueue(alert);
        }
    }

    fn enqueue(&self, alert: Alert) {
        if let Err(e) = self.queue.try_send(alert) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let alert = match e {
                mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
            };
            tracing::error!(alert = %alert, "alert queue full: alert dropped");
        }
    }

    fn detect(&self, signal: &Signal) -> Vec<Alert> {
        // The detectors never panic while holding the lock; recover the state if a
        // caller's panic elsewhere poisoned it anyway.
        let mut d = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        d.observe_signal(signal)
    }
}

#[async_trait]
impl<S: AuditSink> AuditSink for AlertingSink<S> {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        let signal = Signal::of(&event);
        let receipt = self.inner.record(event).await?;
        for alert in self.detect(&signal) {
            self.enqueue(alert);
        }
        Ok(receipt)
    }
}

/// Hands every alert to each of its sinks, in order (say the log and a webhook). Every
/// sink is tried; each failure is logged and the first is returned.
///
/// ```
/// use std::sync::Arc;
/// use procuhelp_audit::{AlertSink, FanOutAlertSink, LogAlertSink};
///
/// let alerts: Arc<dyn AlertSink> = Arc::new(FanOutAlertSink::new(vec![
///     Arc::new(LogAlertSink),
///     Arc::new(LogAlertSink),
/// ]));
/// # let _ = alerts;
/// ```
#[derive(Debug, Clone)]
pub struct FanOutAlertSink {
    sinks: Vec<Arc<dyn AlertSink>>,
}

impl FanOutAlertSink {
    /// Delivers to every one of `sinks`.
    pub fn new(sinks: Vec<Arc<dyn AlertSink>>) -> Self {
        Self { sinks }
    }
}

#[async_trait]
impl AlertSink for FanOutAlertSink {
    async fn send(&self, alert: Alert) -> Result<()> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.send(alert.clone()).await {
                tracing::warn!(alert = %alert.id, sink = ?sink, error = %e, "an alert sink failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
