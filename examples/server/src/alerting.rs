//! `serve --alerts FILE`: the detectors' thresholds and where their alerts go.
//!
//! The file is JSON; every field is optional (the library's defaults, documented in
//! `docs/audit.md`, fill the rest) and an unknown field is an error, so a misspelt
//! threshold stops the start-up instead of silently keeping the default:
//!
//! ```json
//! {
//!   "failed_sign_ins_per_account": { "threshold": 5, "window_secs": 300 },
//!   "failed_sign_ins_per_source": { "threshold": 20, "window_secs": 300 },
//!   "failed_sign_ins_per_org": { "threshold": 50, "window_secs": 300 },
//!   "lockouts": true,
//!   "traffic_spike": { "factor": 5.0, "min_baseline": 60, "smoothing": 0.1, "warmup_minutes": 3 },
//!   "error_spike": { "enabled": false },
//!   "http_traffic_spike": { "factor": 5.0, "min_baseline": 300 },
//!   "http_error_spike": { "factor": 5.0, "min_baseline": 5 },
//!   "max_tracked_keys": 10000,
//!   "webhook": { "url_secret": "alerts/webhook-url", "ca_file": "/etc/procuhelp/alerts-ca.pem" }
//! }
//! ```
//!
//! Alerts always go to the log (the audit pipeline sends them there). With `webhook`, they
//! are also POSTed (retried, at least once) to the URL kept in the vault under
//! `url_secret` — the URL often carries a token, so it is neither in the file nor in the
//! process's arguments or environment. An
//! `https` URL needs `ca_file` (the receiver's CA: no built-in roots). The webhook is held
//! to the outbound policy of every fetch the server makes
//! ([`procuhelp_core::OutboundPolicy`]): a public address only (also after DNS
//! resolution), no redirects; a loopback receiver, over plain `http` too, only with
//! `serve --dangerous-allow-loopback-fetch` (tests).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use procuhelp_audit::{
    AlertConfig, AlertSink, Detectors, FanOutAlertSink, SpikeRule, WebhookAlertSink, WebhookConfig,
    WindowRule,
};
use procuhelp_core::OutboundPolicy;
use procuhelp_core::vault::{SecretName, SecretProvider};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;

/// The largest alerts file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The alerts file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    failed_sign_ins_per_account: Option<Window>,
    failed_sign_ins_per_source: Option<Window>,
    failed_sign_ins_per_org: Option<Window>,
    lockouts: Option<bool>,
    traffic_spike: Option<Spike>,
    error_spike: Option<Spike>,
    http_traffic_spike: Option<Spike>,
    http_error_spike: Option<Spike>,
    max_tracked_keys: Option<usize>,
    webhook: Option<Webhook>,
}

/// `threshold` events within `window_secs`; threshold 0 switches the rule off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    threshold: u32,
    window_secs: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spike {
    enabled: Option<bool>,
    factor: Option<f64>,
    min_baseline: Option<f64>,
    smoothing: Option<f64>,
    warmup_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Webhook {
    url_secret: String,
    ca_file: Option<PathBuf>,
}

/// What `serve` runs alerting with (the pipeline also sends every alert to the log).
#[derive(Debug)]
pub struct Alerting {
    /// The detectors, configured.
    pub detectors: Detectors,
    /// The webhook when configured (else no sink at all).
    pub sink: Arc<dyn AlertSink>,
}

impl AlertsFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read as _;
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            anyhow::bail!("{} is larger than {MAX_FILE_BYTES} bytes", path.display());
        }
        serde_json::from_str(&text).map_err(|e| {
            // serde's messages for unknown or missing fields quote only the field's name;
            // others can quote a value (a pasted URL with its token): those are reported
            // by position only.
            let message = e.to_string();
            let what =
                if message.starts_with("unknown field") || message.starts_with("missing field") {
                    message
                } else {
                    format!(
                        "invalid {} at line {} column {}",
                        match e.classify() {
                            serde_json::error::Category::Data => "value",
                            _ => "JSON",
                        },
                        e.line(),
                        e.column()
                    )
                };
            anyhow::anyhow!("alerts file {}: {what}", path.display())
        })
    }

    /// The vault secret `build` will read (for the webhook URL), so that the caller can
    /// record the access before it happens.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook.as_ref().map(|w| w.url_secret.as_str())
    }

    /// The detector thresholds: the library's defaults, overridden by the file.
    pub fn config(&self) -> AlertConfig {
        let mut config = AlertConfig::default();
        let window = |w: &Window| {
            WindowRule::new(
                w.threshold,
                time::Duration::seconds(i64::from(w.window_secs)),
            )
        };
        if let Some(w) = &self.failed_sign_ins_per_account {
            config.per_account = window(w);
        }
        if let Some(w) = &self.failed_sign_ins_per_source {
            config.per_source = window(w);
        }
        if let Some(w) = &self.failed_sign_ins_per_org {
            config.per_org = window(w);
        }
        if let Some(on) = self.lockouts {
            config.lockouts = on;
        }
        if let Some(s) = &self.traffic_spike {
            s.apply(&mut config.traffic);
        }
        if let Some(s) = &self.error_spike {
            s.apply(&mut config.errors);
        }
        if let Some(s) = &self.http_traffic_spike {
            s.apply(&mut config.http_traffic);
        }
        if let Some(s) = &self.http_error_spike {
            s.apply(&mut config.http_errors);
        }
        if let Some(n) = self.max_tracked_keys {
            config.max_tracked_keys = n;
        }
        config
    }

    /// Detectors (the thresholds checked) and sinks (the webhook's URL read from
    /// `vault`, held to `outbound`). Any problem is an error: alerting never starts
    /// half-configured.
    pub async fn build(
        &self,
        vault: &dyn SecretProvider,
        outbound: OutboundPolicy,
        outbox: &Path,
    ) -> anyhow::Result<Alerting> {
        let config = self.config();
        let detectors = Detectors::new(config).context("alert thresholds")?;
        // The log is added by the pipeline: alerts always go there.
        let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
        if let Some(webhook) = &self.webhook {
            sinks.push(Arc::new(webhook.sink(vault, outbound, outbox).await?));
        }
        // The effective thresholds, so that a rule switched off (threshold 0) is visible.
        tracing::info!(
            ?config,
            webhook = self.webhook.is_some(),
            "alerting configured"
        );
        Ok(Alerting {
            detectors,
            sink: Arc::new(FanOutAlertSink::new(sinks)),
        })
    }
}

impl Spike {
    fn apply(&self, rule: &mut SpikeRule) {
        if let Some(v) = self.enabled {
            rule.enabled = v;
        }
        if let Some(v) = self.factor {
            rule.factor = v;
        }
        if let Some(v) = self.min_baseline {
            rule.min_baseline = v;
        }
        if let Some(v) = self.smoothing {
            rule.smoothing = v;
        }
        if let Some(v) = self.warmup_minutes {
            rule.warmup_minutes = v;
        }
    }
}

impl Webhook {
    async fn sink(
        &self,
        vault: &dyn SecretProvider,
        outbound: OutboundPolicy,
        outbox: &Path,
    ) -> anyhow::Result<WebhookAlertSink> {
        let name = SecretName::new(&self.url_secret).context("webhook url_secret")?;
        let secret = vault
            .get(&name)
            .await
            .with_context(|| format!("reading the webhook URL from the vault ({name})"))?;
        // Never echoed: a URL that does not parse is reported without its text.
        let url = std::str::from_utf8(secret.value.expose())
            .ok()
            .map(str::trim)
            .and_then(|s| url::Url::parse(s).ok())
            .ok_or_else(|| anyhow::anyhow!("the webhook URL in secret {name} is not a URL"))?;
        if outbound.check_url(url.as_str()).is_err() {
            anyhow::bail!(
                "the webhook URL in secret {name} must be https to a public address (http only \
                 to loopback, with --dangerous-allow-loopback-fetch): destination not allowed"
            );
        }
        let mut config = WebhookConfig::new(url.as_str());
        config.outbound = outbound;
        // Undelivered alerts survive a receiver outage across restarts.
        config.outbox = Some(outbox.to_owned());
        // Otherwise plain http, which the policy accepted: loopback, with the operator's flag.
        if url.scheme() == "https" {
            let ca = self.ca_file.as_ref().ok_or_else(|| {
                anyhow::anyhow!("an https webhook needs ca_file (the receiver's CA)")
            })?;
            config.root_certificates = CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("parsing {}", ca.display()))?;
            if config.root_certificates.is_empty() {
                anyhow::bail!("{} holds no certificate", ca.display());
            }
        }
        WebhookAlertSink::new(config).context("webhook alert sink")
    }
}
