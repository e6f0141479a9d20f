//! Webhook delivery: JSON `POST`, exponential back-off, at-least-once, bounded queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use procuhelp_core::{OutboundClient, OutboundError, OutboundPolicy};
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;

use super::{Alert, AlertSink};
use crate::{AuditError, Result};

/// Settings of a [`WebhookAlertSink`].
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where to `POST` alerts: `https://` to a destination [`outbound`](Self::outbound)
    /// allows (`http://` only to loopback, with loopback allowed). May carry a secret
    /// token: it is never printed by `Debug`.
    pub url: String,
    /// Trust anchors for the receiver's certificate (no built-in roots: name exactly the
    /// CA the receiver uses).
    pub root_certificates: Vec<CertificateDer<'static>>,
    /// Where deliveries may go: the one outbound policy of every configured fetch (no
    /// loopback, private, link-local or metadata address, also after DNS resolution; no
    /// redirect). Default: [`OutboundPolicy::public_only`]; a receiver on loopback
    /// (tests) needs [`OutboundPolicy::dangerous_allow_loopback_for_tests`].
    pub outbound: OutboundPolicy,
    /// Timeout of one request. Default: 10 s.
    pub timeout: Duration,
    /// Wait after the first failure; doubled after each further failure. Default: 500 ms.
    pub initial_backoff: Duration,
    /// Longest wait between attempts. Default: 5 minutes.
    pub max_backoff: Duration,
    /// Alerts waiting for delivery; when full, the oldest waiting alert is dropped (and
    /// counted). Default: 1,024.
    pub queue: usize,
    /// A directory holding every alert until the receiver acknowledged it (one file per
    /// alert, written and synced before [`send`](AlertSink::send) returns), so that a
    /// webhook outage across a restart loses nothing: a new sink on the same directory
    /// delivers what is left, oldest first. Default: none (memory only).
    pub outbox: Option<std::path::PathBuf>,
}

impl WebhookConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            root_certificates: Vec::new(),
            outbound: OutboundPolicy::public_only(),
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            queue: 1024,
            outbox: None,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redacted(&self.url))
            .field("root_certificates", &self.root_certificates.len())
            .field("outbound", &self.outbound)
            .field("timeout", &self.timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("queue", &self.queue)
            .field("outbox", &self.outbox)
            .finish()
    }
}

/// Scheme and authority only: paths and queries often hold tokens.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// Delivery counters of a [`WebhookAlertSink`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Alerts the receiver acknowledged (2xx).
    pub delivered: u64,
    /// Requests made, successful or not.
    pub attempts: u64,
    /// Requests that failed (network error, timeout, non-2xx) and were retried.
    pub failed_attempts: u64,
    /// Alerts dropped because the queue was full.
    pub dropped: u64,
    /// Alerts waiting (including the one being delivered).
    pub queued: u64,
}

/// `POST`s each alert as JSON to a webhook, with `Idempotency-Key: <alert id>`.
///
/// **At-least-once.** [`send`](AlertSink::send) queues the alert and returns; a delivery
/// task sends the oldest queued alert until the receiver answers 2xx, waiting
/// `initial_backoff`, then twice as long after each failure (up to `max_backoff`), and
/// only then removes it from the queue. A receiver may therefore see an alert more than
/// once (a lost response); it deduplicates by the idempotency key. Alerts are lost only
/// when the queue overflows (oldest first, counted in [`WebhookStats::dropped`]) or —
/// without an [`outbox`](WebhookConfig::outbox) — when the process stops; with one, a
/// new sink on the same directory delivers what is left.
///
/// Redirects are not followed. Create it inside a Tokio runtime; the delivery task ends
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct WebhookAlertSink {
    shared: Arc<Shared>,
    _guard: Arc<CloseOnDrop>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Alert>>,
    outbox: Option<Outbox>,
    capacity: usize,
    wake: Notify,
    idle: Notify,
    closed: AtomicBool,
    delivered: AtomicU64,
    attempts: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The largest alert file read back (an alert is well under 1 KiB).
const MAX_ALERT_FILE: u64 = 64 * 1024;

/// The persisted queue: `<dir>/<alert id>.json`, 0600; ids are UUID v7, so names sort
/// oldest first.
#[derive(Debug)]
struct Outbox {
    dir: std::path::PathBuf,
}

impl Outbox {
    /// Opens `dir` and reads what an earlier run left: at most `capacity` alerts (the
    /// newest; older ones are dropped and counted in `dropped`).
    fn open(
        dir: &std::path::Path,
        capacity: usize,
        dropped: &AtomicU64,
    ) -> Result<(Self, Vec<Alert>)> {
        use std::os::unix::fs::DirBuilderExt as _;
        let fail = |_| AuditError::Unavailable("the alert outbox directory".to_owned());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(fail)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let outbox = Self {
            dir: dir.to_owned(),
        };
        let mut pending = Vec::new();
        for path in names {
            // A file cut short by a crash mid-write, an oversized one or one whose name is
            // not its alert's id is removed, never delivered (or re-delivered forever).
            let alert = std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file() && m.len() <= MAX_ALERT_FILE)
                .and_then(|_| std::fs::read(&path).ok())
                .and_then(|b| serde_json::from_slice::<Alert>(&b).ok())
                .filter(|a| outbox.path(a) == path);
            match alert {
                Some(alert) => pending.push(alert),
                None => {
                    tracing::error!(file = %path.display(), "unreadable alert in the outbox removed");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let excess = pending.len().saturating_sub(capacity);
        for old in pending.drain(..excess) {
            outbox.remove(&old);
            dropped.fetch_add(1, Ordering::SeqCst);
            tracing::error!(alert = %old, "alert outbox over capacity: oldest alert dropped");
        }
        Ok((outbox, pending))
    }

    fn path(&self, alert: &Alert) -> std::path::PathBuf {
        self.dir.join(format!("{}.json", alert.id))
    }

    fn put(&self, alert: &Alert) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let fail = |_| AuditError::Unavailable("writing the alert outbox".to_owned());
        let bytes = serde_json::to_vec(alert).map_err(|_| AuditError::Internal("alert json"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.path(alert))
            .map_err(fail)?;
        file.write_all(&bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        // The directory entry too, so the file survives a crash.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }

    fn remove(&self, alert: &Alert) {
        if let Err(e) = std::fs::remove_file(self.path(alert))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(alert = %alert.id, error = %e, "removing a delivered alert from the outbox");
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Alert>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

impl WebhookAlertSink {
    /// A sink for `config`; refuses a malformed URL, one the outbound policy refuses
    /// (plain `http://` off loopback, an internal address literal), and an unusable
    /// certificate. A name resolving to an internal address fails each delivery.
    pub fn new(config: WebhookConfig) -> Result<Self> {
        let url = match config.outbound.check_url(&config.url) {
            Ok(url) => url,
            Err(OutboundError::InvalidUrl) => {
                return Err(AuditError::Invalid {
                    field: "webhook url",
                    reason: "not a URL",
                });
            }
            Err(_) => {
                return Err(AuditError::Invalid {
                    field: "webhook url",
                    reason: "destination not allowed: https to a public address (http only to loopback, with loopback allowed)",
                });
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in &config.root_certificates {
            roots.add(cert.clone()).map_err(|_| AuditError::Invalid {
                field: "root_certificates",
                reason: "not a usable CA certificate",
            })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| AuditError::Internal("TLS protocol versions"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let timeout = config.timeout;
        let client = config
            .outbound
            .client(|b| b.use_preconfigured_tls(tls).timeout(timeout))
            .map_err(|e| AuditError::Unavailable(format!("webhook client: {e}")))?;
        let dropped = AtomicU64::new(0);
        let (outbox, pending) = match &config.outbox {
            Some(dir) => {
                let (outbox, pending) = Outbox::open(dir, config.queue.max(1), &dropped)?;
                if !pending.is_empty() {
                    tracing::warn!(
                        alerts = pending.len(),
                        "delivering alerts left undelivered by an earlier run"
                    );
                }
                (Some(outbox), pending)
            }
            None => (None, Vec::new()),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(pending.into_iter().collect()),
            outbox,
            capacity: config.queue.max(1),
            wake: Notify::new(),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped,
        });
        tokio::spawn(deliver(shared.clone(), client, url, config));
        Ok(Self {
            _guard: Arc::new(CloseOnDrop(shared.clone())),
            shared,
        })
    }

    /// The delivery counters.
    pub fn stats(&self) -> WebhookStats {
        let s = &self.shared;
        WebhookStats {
            delivered: s.delivered.load(Ordering::SeqCst),
            attempts: s.attempts.load(Ordering::SeqCst),
            failed_attempts: s.failed.load(Ordering::SeqCst),
            dropped: s.dropped.load(Ordering::SeqCst),
            queued: s.lock().len() as u64,
        }
    }

    /// Waits until every queued alert is delivered, or `timeout` passes; returns whether
    /// the queue is empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.shared.idle.notified();
                if self.shared.lock().is_empty() {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

#[async_trait]
impl AlertSink for WebhookAlertSink {
    async fn send(&self, alert: Alert) -> Result<()> {
        if let Some(outbox) = &self.shared.outbox
            && let Err(e) = outbox.put(&alert)
        {
            // Delivered from memory still; only a restart before then would lose it.
            tracing::error!(alert = %alert.id, error = %e, "alert not persisted in the outbox");
        }
        {
            let mut q = self.shared.lock();
            if q.len() >= self.shared.capacity {
                // Drop the oldest *waiting* alert; the front one may be in flight and the
                // task removes it by id when it is acknowledged.
                let victim = if q.len() > 1 {
                    q.remove(1)
                } else {
                    q.pop_front()
                };
                if let Some(v) = victim {
                    if let Some(outbox) = &self.shared.outbox {
                        outbox.remove(&v);
                    }
                    self.shared.dropped.fetch_add(1, Ordering::SeqCst);
                    tracing::error!(alert = %v, "webhook alert queue full: oldest alert dropped");
                }
            }
            q.push_back(alert);
        }
        self.shared.wake.notify_one();
        Ok(())
    }
}

async fn deliver(shared: Arc<Shared>, client: OutboundClient, url: reqwest::Url, c: WebhookConfig) {
    let mut backoff = c.initial_backoff;
    loop {
        let next = shared.lock().front().cloned();
        let Some(alert) = next else {
            shared.idle.notify_waiters();
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            // notify_one stores a permit: a send between the check and here still wakes us.
            shared.wake.notified().await;
            continue;
        };
        if shared.closed.load(Ordering::SeqCst) {
            let left = shared.lock().len();
            tracing::error!(
                alerts = left,
                "webhook alert sink dropped with alerts undelivered"
            );
            return;
        }
        shared.attempts.fetch_add(1, Ordering::SeqCst);
        let sent = match client.request(reqwest::Method::POST, url.as_str()) {
            Ok(request) => request
                .header("Idempotency-Key", alert.id.to_string())
                .json(&alert)
                .send()
                .await
                .map_err(|e| classify(&e)),
            Err(e) => Err(refused(e)),
        };
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("status {}", r.status().as_u16())),
            Err(why) => Some(why.to_owned()),
        };
        match failure {
            None => {
                let mut q = shared.lock();
                if q.front().is_some_and(|a| a.id == alert.id) {
                    q.pop_front();
                }
                drop(q);
                if let Some(outbox) = &shared.outbox {
                    outbox.remove(&alert);
                }
                shared.delivered.fetch_add(1, Ordering::SeqCst);
                backoff = c.initial_backoff;
            }
            Some(why) => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(alert = %alert.id, error = %why, retry_in = ?backoff, "webhook alert delivery failed");
                tokio::time::sleep(backoff).await;
                backoff = backoff
                    .saturating_mul(2)
                    .min(c.max_backoff.max(c.initial_backoff));
            }
        }
    }
}

/// The kind of a request error, without the URL (it may hold a token).
fn classify(e: &reqwest::Error) -> &'static str {
    if OutboundError::of(e) == OutboundError::NotAllowed {
        refused(OutboundError::NotAllowed)
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "error"
    }
}

/// The outbound policy's reason (the receiver's name resolved to an internal address).
fn refused(e: OutboundError) -> &'static str {
    match e {
        OutboundError::NotAllowed => "destination not allowed",
        _ => "request failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The webhook is held to the outbound policy: no internal destination unless the
    /// operator allowed loopback (and then loopback only).
    #[tokio::test]
    async fn internal_destinations_are_refused_by_the_policy() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        for url in [
            "http://127.0.0.1:9/hook",
            "https://127.0.0.1:9/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/hook",
            "http://alerts.example/hook",
        ] {
            let refused = WebhookAlertSink::new(WebhookConfig::new(url)).unwrap_err();
            assert!(
                refused.to_string().contains("destination not allowed"),
                "{url}: {refused}"
            );
        }
        let mut loopback = WebhookConfig::new("http://127.0.0.1:9/hook");
        loopback.outbound = OutboundPolicy::dangerous_allow_loopback_for_tests();
        WebhookAlertSink::new(loopback).unwrap();
        let mut mapped = WebhookConfig::new("http://[::ffff:127.0.0.1]:9/hook");
        mapped.outbound = OutboundPolicy::dangerous_allow_loopback_for_tests();
        assert!(WebhookAlertSink::new(mapped).is_err());
    }
}
