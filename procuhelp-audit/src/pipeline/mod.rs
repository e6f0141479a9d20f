//! The one audit path an application holds: PostgreSQL chain → periodic signed
//! checkpoints → refusal aggregation → alerting, as a single `Arc<dyn AuditSink>`, with
//! the background task that signs checkpoints and flushes refusal counts, and its
//! graceful shutdown.
//!
//! The stages, innermost first (each wraps the one before):
//! 1. the [`PgAuditSink`]: an event is durable in its organisation's hash chain before
//!    `record` returns (fail closed);
//! 2. checkpointing: remembers, per chain, the events no checkpoint covers; the task
//!    signs a checkpoint of a chain's head by the [`CheckpointSchedule`] (after N events
//!    and/or once the oldest unsigned event is T old, by the injected [`Clock`]). A
//!    signer that fails is logged and counted ([`PipelineStats::checkpoint_failures`])
//!    and retried; events are never held back or lost for it;
//! 3. the [`RefusalAggregator`]: repeated unauthenticated refusals from one source are
//!    recorded once in full, then as counts per window (its summaries go through stage
//!    2, so they are signed too);
//! 4. [`AlertingSink`]: every event — also each refusal the aggregator only counts — is
//!    shown to the [`Detectors`] after it was recorded; alerts go to the log and to the
//!    application's [`AlertSink`] (a webhook, say), never delaying or failing a record.
//!
//! Events appended inside a caller's transaction (`PgAuditSink::append_in_tx`) bypass
//! the pipeline: no stage sees them until the chain's next event through it.

mod checkpointing;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use procuhelp_core::{Clock, SystemClock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use schedule::CheckpointSchedule;

use crate::{
    AggregationConfig, AlertConfig, AlertSink, AlertingSink, AuditError, AuditSink,
    CheckpointSigner, Detectors, FanOutAlertSink, LogAlertSink, PgAuditSink, RefusalAggregator,
    Result,
};
use checkpointing::CheckpointingSink;

/// How often expired refusal windows are summarised.
const REFUSAL_FLUSH_EVERY: time::Duration = time::Duration::MINUTE;
/// Alerts waiting for delivery before new ones are dropped (and counted).
const ALERT_QUEUE: usize = 1024;

type Refusals = RefusalAggregator<Arc<CheckpointingSink>>;

/// The audit pipeline and its background task: PostgreSQL chain → checkpoints signed by
/// a [`CheckpointSchedule`] → [`RefusalAggregator`] → [`AlertingSink`] (alerts to the log
/// and the application's [`AlertSink`]), held by the application as one
/// `Arc<dyn AuditSink>` ([`sink`](Self::sink)). A signer that fails is logged, counted
/// ([`PipelineStats::checkpoint_failures`]) and retried; events are never held back or
/// lost for it. Events appended inside a caller's transaction
/// (`PgAuditSink::append_in_tx`) bypass it.
///
/// ```no_run
/// # async fn demo(log: procuhelp_audit::PgAuditSink) -> procuhelp_audit::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use procuhelp_audit::{AuditPipeline, AuditSink, CheckpointSchedule, Ed25519Signer};
///
/// let signer = Arc::new(Ed25519Signer::open_or_create_file("/var/lib/app/checkpoint.key".as_ref())?);
/// let pipeline = AuditPipeline::builder(log)
///     .checkpoints(signer, CheckpointSchedule::every(Duration::from_secs(600)).and_every_events(10_000))
///     .build()?;
/// let audit: Arc<dyn AuditSink> = pipeline.sink(); // what the application holds
/// # let _ = audit;
/// // … serve …
/// let stats = pipeline.shutdown().await; // flushes refusal counts, signs every chain
/// assert_eq!(stats.unsigned_chains, 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuditPipeline {
    sink: Arc<dyn AuditSink>,
    log: PgAuditSink,
    checkpointing: Arc<CheckpointingSink>,
    alerting: Arc<AlertingSink<Arc<Refusals>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Counters of an [`AuditPipeline`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Checkpoints signed by the pipeline since it started.
    pub checkpoints_signed: u64,
    /// Checkpoints that could not be signed or stored (each logged; the chain is retried).
    pub checkpoint_failures: u64,
    /// Chains with events that no checkpoint covers yet.
    pub unsigned_chains: usize,
    /// Alerts dropped because the delivery queue was full.
    pub alerts_dropped: u64,
}

/// Builds an [`AuditPipeline`]; see [`AuditPipeline::builder`].
#[derive(Debug)]
pub struct AuditPipelineBuilder {
    log: PgAuditSink,
    checkpoints: Option<(Arc<dyn CheckpointSigner>, CheckpointSchedule)>,
    clock: Arc<dyn Clock>,
    aggregation: AggregationConfig,
    alerts: Option<(Detectors, Arc<dyn AlertSink>)>,
}

impl AuditPipeline {
    /// A pipeline recording into `log`. Configure at least
    /// [`checkpoints`](AuditPipelineBuilder::checkpoints).
    pub fn builder(log: PgAuditSink) -> AuditPipelineBuilder {
        AuditPipelineBuilder {
            log,
            checkpoints: None,
            clock: Arc::new(SystemClock),
            aggregation: AggregationConfig::default(),
            alerts: None,
        }
    }

    /// The sink the application records every event through. Checkpoints are signed by
    /// the background task, which runs as long as this `AuditPipeline` lives: keep it for
    /// as long as the sink is used, and [`shutdown`](Self::shutdown) it at the end
    /// (dropping it stops the task after a last flush).
    pub fn sink(&self) -> Arc<dyn AuditSink> {
        self.sink.clone()
    }

    /// What feeds HTTP responses to the same detectors and alert delivery
    /// ([`AlertingSink::observe_http`]); `procuhelp_axum::access_log::ResponseObserver`
    /// wraps it.
    pub fn http_observer(&self) -> Arc<dyn Fn(&crate::HttpResponse) + Send + Sync> {
        let alerting = self.alerting.clone();
        Arc::new(move |response| alerting.observe_http(response))
    }

    /// What shows the detectors an event appended inside a caller's transaction (which
    /// bypasses the pipeline), once that transaction committed.
    pub fn committed_observer(&self) -> Arc<dyn Fn(&crate::AuditEvent) + Send + Sync> {
        let alerting = self.alerting.clone();
        Arc::new(move |event| alerting.observe_committed(event))
    }

    /// The chain underneath, for reads, exports and verification (which record their own
    /// access events through it).
    pub fn log(&self) -> &PgAuditSink {
        &self.log
    }

    /// The counters so far.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            checkpoints_signed: self.checkpointing.signed(),
            checkpoint_failures: self.checkpointing.failures(),
            unsigned_chains: self.checkpointing.unsigned_chains(),
            alerts_dropped: self.alerting.dropped_alerts(),
        }
    }

    /// Signs a checkpoint of every chain with unsigned events now, whatever the schedule
    /// says (say, before a backup).
    pub async fn checkpoint_now(&self) -> PipelineStats {
        self.checkpointing.checkpoint_due(true).await;
        self.stats()
    }

    /// Stops the background task, then records the counts of every open refusal window
    /// and signs a checkpoint of every chain with unsigned events. Call it after the
    /// server stopped taking requests; events recorded afterwards are still durable, but
    /// wait for the next pipeline to be signed.
    pub async fn shutdown(mut self) -> PipelineStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the audit pipeline task failed");
        }
        self.stats()
    }
}

impl Drop for AuditPipeline {
    fn drop(&mut self) {
        // Dropped without `shutdown`: the task still flushes (the stop channel closes),
        // but nobody waits for it.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl AuditPipelineBuilder {
    /// Signs checkpoints with `signer` (a key the runtime's vault does not hold:
    /// [`Ed25519Signer::open_or_create_file`](crate::Ed25519Signer::open_or_create_file)
    /// or OpenBao Transit) by `schedule`. It becomes the sink's signer for exports too;
    /// a sink already signing with another signer is refused by [`build`](Self::build).
    #[must_use]
    pub fn checkpoints(
        mut self,
        signer: Arc<dyn CheckpointSigner>,
        schedule: CheckpointSchedule,
    ) -> Self {
        self.checkpoints = Some((signer, schedule));
        self
    }

    /// The clock the schedule, the checkpoints' times and the refusal windows follow
    /// (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How unauthenticated refusals are aggregated (default: [`AggregationConfig`]'s).
    #[must_use]
    pub fn aggregate_refusals(mut self, config: AggregationConfig) -> Self {
        self.aggregation = config;
        self
    }

    /// The detectors, and where their alerts go besides the log (default:
    /// [`AlertConfig`]'s thresholds, alerts to the log only). Alerts always go to the log
    /// ([`LogAlertSink`]); `sink` (say, a `WebhookAlertSink`, or a [`FanOutAlertSink`] of
    /// several) receives them too.
    #[must_use]
    pub fn alerts(mut self, detectors: Detectors, sink: Arc<dyn AlertSink>) -> Self {
        self.alerts = Some((detectors, sink));
        self
    }

    /// The pipeline, its background task started (call inside a Tokio runtime).
    ///
    /// Refused: no [`checkpoints`](Self::checkpoints) (a trail nobody signs proves
    /// nothing to a verifier), a zero count or interval, a sink already signing with
    /// another signer.
    pub fn build(self) -> Result<AuditPipeline> {
        let (signer, schedule) = self.checkpoints.ok_or(AuditError::Invalid {
            field: "checkpoints",
            reason: "an audit pipeline signs checkpoints: give a signer and a schedule",
        })?;
        schedule.validate()?;
        self.log.use_signer(signer)?;
        // Alerts always go to the log, whatever else receives them.
        let log_alerts: Arc<dyn AlertSink> = Arc::new(LogAlertSink);
        let (detectors, alert_sink) = match self.alerts {
            Some((detectors, sink)) => (
                detectors,
                Arc::new(FanOutAlertSink::new(vec![log_alerts, sink])) as Arc<dyn AlertSink>,
            ),
            None => (Detectors::new(AlertConfig::default())?, log_alerts),
        };
        let checkpointing = Arc::new(CheckpointingSink::new(
            self.log.clone(),
            schedule,
            self.clock,
        ));
        let refusals = Arc::new(RefusalAggregator::with_config(
            checkpointing.clone(),
            self.aggregation,
        ));
        let alerting = Arc::new(AlertingSink::new(
            refusals.clone(),
            detectors,
            alert_sink,
            ALERT_QUEUE,
        ));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            checkpointing.clone(),
            refusals,
            schedule.tick(),
            stopped,
        ));
        Ok(AuditPipeline {
            sink: alerting.clone(),
            log: self.log,
            checkpointing,
            alerting,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The background task: signs due checkpoints (on every tick, and at once when a chain
/// reached the event count), summarises expired refusal windows once a minute; on stop,
/// summarises every open window and signs every chain.
async fn run(
    checkpointing: Arc<CheckpointingSink>,
    refusals: Arc<Refusals>,
    tick: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut last_flush = checkpointing.clock().now();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            () = checkpointing.nudge.notified() => {}
            () = tokio::time::sleep(tick) => {}
        }
        checkpointing.checkpoint_due(false).await;
        let now = checkpointing.clock().now();
        if now - last_flush >= REFUSAL_FLUSH_EVERY {
            last_flush = now;
            if let Err(e) = refusals.flush_expired(now).await {
                tracing::error!(error = %e, "refusal counts not recorded; retrying");
            }
        }
    }
    if let Err(e) = refusals.flush_all().await {
        tracing::error!(error = %e, "refusal counts not recorded at shutdown");
    }
    let round = checkpointing.checkpoint_due(true).await;
    if round.failed > 0 {
        tracing::error!(
            chains = round.failed,
            "audit checkpoints not signed at shutdown"
        );
    }
}
