//! Alerting: detectors over the event stream and where their alerts go.
//!
//! * [`Detectors`] — pure and clock-injected: [`Detectors::observe`] looks at one event
//!   (using the event's own time, `event.at`) and returns the alerts it causes. Failed
//!   sign-ins are counted in sliding windows per account, per source address and per
//!   organisation; a lockout alerts at once; traffic and error counts per minute are
//!   compared with a moving baseline. Memory is bounded: each detector tracks at most
//!   [`AlertConfig::max_tracked_keys`] keys and forgets the least recently seen.
//! * [`AlertSink`] — where alerts go: [`LogAlertSink`] (`tracing::warn!`) and, with the
//!   `webhook` feature, `WebhookAlertSink` (JSON `POST`, retries with exponential
//!   back-off, at-least-once, bounded queue).
//! * [`AlertingSink`] — an [`AuditSink`](crate::AuditSink) wrapper: records the event in
//!   the inner sink first (durably, failing closed as usual), then feeds the detectors and
//!   hands alerts to a delivery task, so alerting never delays or fails a record.

mod detect;
mod sink;
#[cfg(feature = "webhook")]
mod webhook;

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use procuhelp_core::OrgId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

pub use detect::{AlertConfig, Detectors, HttpResponse, SpikeRule, WindowRule};
pub use sink::{AlertingSink, FanOutAlertSink};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookAlertSink, WebhookConfig, WebhookStats};

/// What a detector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AlertKind {
    /// Failed sign-ins for one account reached the per-account threshold (brute force).
    #[serde(rename = "auth.failures_per_account")]
    FailedLoginsPerAccount,
    /// Failed sign-ins from one source address reached the per-address threshold
    /// (password spraying, credential stuffing).
    #[serde(rename = "auth.failures_per_source")]
    FailedLoginsPerSource,
    /// Failed sign-ins in one organisation reached the per-organisation threshold
    /// (a distributed attack).
    #[serde(rename = "auth.failures_per_org")]
    FailedLoginsPerOrg,
    /// An account was locked.
    #[serde(rename = "auth.account_locked")]
    AccountLocked,
    /// An organisation's events in one minute far exceed its moving baseline.
    #[serde(rename = "traffic.spike")]
    TrafficSpike,
    /// An organisation's failed or denied events in one minute far exceed their baseline.
    #[serde(rename = "errors.spike")]
    ErrorSpike,
    /// A backup or a restore drill failed, or one is overdue: the promise "tested
    /// backups" is at risk. Always on.
    #[serde(rename = "backup.problem")]
    BackupProblem,
    /// HTTP requests in one minute, from one organisation or one client address, far
    /// exceed their moving baseline (scraping, a runaway integration, a flood).
    #[serde(rename = "http.traffic_spike")]
    HttpTrafficSpike,
    /// HTTP 5xx responses in one minute far exceed their moving baseline.
    #[serde(rename = "http.error_spike")]
    HttpErrorSpike,
    /// An operator was granted access to an organisation's data (break-glass). Always on.
    #[serde(rename = "operator.access")]
    OperatorAccess,
}

impl AlertKind {
    /// The stable string form (as serialized).
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::FailedLoginsPerAccount => "auth.failures_per_account",
            AlertKind::FailedLoginsPerSource => "auth.failures_per_source",
            AlertKind::FailedLoginsPerOrg => "auth.failures_per_org",
            AlertKind::AccountLocked => "auth.account_locked",
            AlertKind::TrafficSpike => "traffic.spike",
            AlertKind::ErrorSpike => "errors.spike",
            AlertKind::BackupProblem => "backup.problem",
            AlertKind::HttpTrafficSpike => "http.traffic_spike",
            AlertKind::HttpErrorSpike => "http.error_spike",
            AlertKind::OperatorAccess => "operator.access",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert is about. Deliberately minimal: a pseudonymous subject (usually the user
/// id) or a source address, never an e-mail address or a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKey {
    /// One account: the event's person subject, else `user:<id>` of the acting user.
    Account {
        /// The pseudonymous subject.
        subject: String,
    },
    /// One client address.
    Source {
        /// The address.
        address: IpAddr,
    },
    /// The whole organisation (see [`Alert::org`]).
    Org,
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertKey::Account { subject } => write!(f, "account {subject}"),
            AlertKey::Source { address } => write!(f, "source {address}"),
            AlertKey::Org => f.write_str("organisation"),
        }
    }
}

/// An alert raised by [`Detectors`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// A unique id (UUID v7). Webhook deliveries carry it as `Idempotency-Key`, so a
    /// receiver can drop the duplicates at-least-once delivery may cause.
    pub id: Uuid,
    /// What was detected.
    pub kind: AlertKind,
    /// The organisation (`None`: events without one, e.g. sign-ins to an unknown tenant).
    pub org: Option<OrgId>,
    /// What it is about.
    pub key: AlertKey,
    /// The window the count was taken over, in seconds (0 for an immediate alert).
    pub window_secs: u64,
    /// How many events were counted.
    pub count: u64,
    /// The threshold the count reached (for spikes: baseline × factor, rounded up).
    pub threshold: u64,
    /// The moving baseline in events per minute (spikes only).
    pub baseline: Option<f64>,
    /// The first counted event's time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    /// The last counted event's time (the event that raised the alert).
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} for {}: {} events (threshold {}) in {} s",
            self.kind, self.key, self.count, self.threshold, self.window_secs
        )?;
        if let Some(org) = self.org {
            write!(f, " in organisation {org}")?;
        }
        Ok(())
    }
}

/// Where alerts go.
///
/// [`send`](Self::send) returns once the sink has taken responsibility for the alert
/// (logged it, or queued it for delivery); it should not wait for a slow receiver.
#[async_trait]
pub trait AlertSink: Send + Sync + fmt::Debug {
    /// Hands over one alert.
    async fn send(&self, alert: Alert) -> Result<()>;
}

#[async_trait]
impl<T: AlertSink + ?Sized> AlertSink for std::sync::Arc<T> {
    async fn send(&self, alert: Alert) -> Result<()> {
        (**self).send(alert).await
    }
}

/// Writes every alert as a `tracing::warn!` event (target `procuhelp_audit::alert`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlertSink;

#[async_trait]
impl AlertSink for LogAlertSink {
    async fn send(&self, alert: Alert) -> Result<()> {
        tracing::warn!(
            target: "procuhelp_audit::alert",
            id = %alert.id,
            kind = alert.kind.as_str(),
            org = ?alert.org,
            key = %alert.key,
            count = alert.count,
            threshold = alert.threshold,
            window_secs = alert.window_secs,
            baseline = ?alert.baseline,
            first_at = %alert.first_at,
            last_at = %alert.last_at,
            "security alert: {alert}"
        );
        Ok(())
    }
}
