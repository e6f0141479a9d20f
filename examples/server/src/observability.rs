//! What the server tells its operators beyond the access log: Prometheus metrics at an
//! operator-only `/metrics` (scrapers named in `--operators`), and the audit stream to
//! NATS JetStream (`--audit-stream FILE`). See `docs/observability.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use procuhelp_audit::{NatsAuditStream, NatsStreamConfig, PgAuditSink, StreamNudge};
use procuhelp_auth::operator::Operators;
use procuhelp_tenancy::TenantDb;
use serde::Deserialize;

/// The largest stream configuration file read.
const MAX_FILE_BYTES: u64 = 16 * 1024;

/// `/metrics` for the scrapers `operators` names (`None` when it names none: then no
/// `/metrics` is served at all). `pools` are sampled at each scrape.
pub fn metrics_routes(
    operators: Option<&Arc<Operators>>,
    pools: Vec<(&'static str, TenantDb)>,
) -> anyhow::Result<Option<axum::Router>> {
    let Some(operators) = operators.filter(|o| o.has_scrapers()) else {
        tracing::info!("no metrics scrapers in --operators: /metrics is not served");
        return Ok(None);
    };
    let handle = procuhelp_axum::metrics::install().context("installing the metrics recorder")?;
    describe();
    tracing::info!("/metrics served to the scrapers named in --operators");
    Ok(Some(procuhelp_axum::metrics::router(
        operators.clone(),
        handle,
        move || {
            for (name, pool) in &pools {
                pool.record_pool_metrics(name);
            }
        },
    )))
}

/// Help texts for the exposition (Prometheus shows them).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "procuhelp_http_requests_total",
        "Requests by method, route template and status."
    );
    describe_histogram!(
        "procuhelp_http_request_duration_seconds",
        "Time to the response, by route template."
    );
    describe_gauge!(
        "procuhelp_db_pool_connections",
        "Pooled database connections by pool and state."
    );
    describe_histogram!(
        "procuhelp_db_acquire_seconds",
        "Wait for a pooled connection."
    );
    describe_gauge!(
        "procuhelp_audit_writer_queue_depth",
        "Audit events waiting for the group-commit writer."
    );
    describe_histogram!(
        "procuhelp_audit_writer_batch_size",
        "Events per audit group commit."
    );
    describe_counter!(
        "procuhelp_auth_sign_in_failures_total",
        "Failed sign-in attempts by method and reason."
    );
    describe_counter!(
        "procuhelp_auth_throttled_total",
        "Sign-in attempts refused by the throttle."
    );
    describe_counter!(
        "procuhelp_auth_lockouts_total",
        "Accounts locked by failed attempts."
    );
    describe_gauge!(
        "procuhelp_backup_age_seconds",
        "Age of the newest complete backup (scheduled backups only)."
    );
    describe_gauge!(
        "procuhelp_backup_drill_age_seconds",
        "Age of the newest restore drill (scheduled backups only)."
    );
    describe_counter!(
        "procuhelp_audit_stream_published_total",
        "Audit events acknowledged by JetStream."
    );
    describe_counter!(
        "procuhelp_audit_stream_failures_total",
        "Failed audit stream attempts (NATS unreachable or refusing)."
    );
    describe_counter!(
        "procuhelp_metrics_scrapes_refused_total",
        "Refused /metrics requests."
    );
}

/// `--audit-stream FILE`. Every field but `url` is optional; unknown fields are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    url: String,
    ca_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    stream: Option<String>,
    subject_prefix: Option<String>,
    sweep_every_secs: Option<u64>,
}

impl StreamFile {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> anyhow::Result<NatsStreamConfig> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > MAX_FILE_BYTES {
            anyhow::bail!("{} is larger than 16 KiB", path.display());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not an audit stream configuration", path.display()))?;
        file.config()
    }

    fn config(self) -> anyhow::Result<NatsStreamConfig> {
        let url = url::Url::parse(&self.url).context("audit stream: url")?;
        if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none() {
            anyhow::bail!("audit stream: url must be nats://host:port or tls://host:port");
        }
        // Credentials in a URL end up in process listings, logs and backups of the file.
        if !url.username().is_empty() || url.password().is_some() {
            anyhow::bail!("audit stream: the url must not carry credentials");
        }
        // Audit events travel in clear over nats:// : only to this machine.
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            // nats:// is not a scheme the URL standard knows: its host stays text.
            Some(url::Host::Domain(d)) => {
                d == "localhost"
                    || d.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => false,
        };
        if url.scheme() == "nats" && !loopback {
            anyhow::bail!(
                "audit stream: use tls:// (with ca_file) for a NATS server off this machine"
            );
        }
        if url.scheme() == "tls" && self.ca_file.is_none() {
            anyhow::bail!("audit stream: a tls:// url needs ca_file (no built-in roots)");
        }
        let name_ok = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b)
                })
        };
        let defaults = NatsStreamConfig::default();
        let stream = self.stream.unwrap_or(defaults.stream.clone());
        if !name_ok(&stream, b"") {
            anyhow::bail!("audit stream: stream is 1-64 characters of A-Z a-z 0-9 _ -");
        }
        let subject_prefix = self
            .subject_prefix
            .unwrap_or(defaults.subject_prefix.clone());
        if !name_ok(&subject_prefix, b".")
            || subject_prefix.starts_with('.')
            || subject_prefix.ends_with('.')
            || subject_prefix.contains("..")
        {
            anyhow::bail!(
                "audit stream: subject_prefix is dot-separated tokens of A-Z a-z 0-9 _ -"
            );
        }
        // Checked here so a bad token file stops the server at start, not a relay that
        // would retry it for ever (the relay checks again at each connection).
        if let Some(file) = &self.token_file {
            let token = zeroize::Zeroizing::new(crate::database::read_private_file(file)?);
            if token.trim().is_empty() {
                anyhow::bail!("audit stream: the token file {} is empty", file.display());
            }
        }
        let sweep_every = Duration::from_secs(self.sweep_every_secs.unwrap_or(30));
        if sweep_every.is_zero() || sweep_every > Duration::from_secs(3600) {
            anyhow::bail!("audit stream: sweep_every_secs is 1 to 3600");
        }
        Ok(NatsStreamConfig {
            url: self.url,
            ca_file: self.ca_file,
            token_file: self.token_file,
            stream,
            subject_prefix,
            sweep_every,
            ..defaults
        })
    }
}

/// Starts the relay on its own task; returns the nudge for the audit sink and the task.
/// It lists every organisation, so it needs the schema owner's connection.
pub async fn start_stream(
    config: NatsStreamConfig,
    db: &crate::database::Database,
    log: PgAuditSink,
) -> anyhow::Result<(StreamNudge, tokio::task::JoinHandle<()>)> {
    let owner = db.owner_pool().await?;
    if let Err(e) = procuhelp_tenancy::organisation_ids(&owner).await {
        owner.close().await;
        anyhow::bail!(
            "the audit stream reads every organisation's chain, which needs the schema owner's connection: {e}"
        );
    }
    tracing::info!(stream = %config.stream, subjects = %format!("{}.*", config.subject_prefix), "streaming audit events to NATS JetStream");
    let relay = NatsAuditStream::new(config, log, owner);
    let nudge = relay.nudge();
    Ok((nudge, tokio::spawn(relay.run())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> anyhow::Result<NatsStreamConfig> {
        serde_json::from_str::<StreamFile>(json)?.config()
    }

    #[test]
    fn stream_files_are_checked_whole() {
        let ok = parse(r#"{"url": "nats://127.0.0.1:4222", "sweep_every_secs": 2}"#).unwrap();
        assert_eq!(
            (ok.stream.as_str(), ok.sweep_every),
            ("PROCUHELP_AUDIT", Duration::from_secs(2))
        );
        for bad in [
            r#"{"url": "nats://user:pw@127.0.0.1:4222"}"#,
            r#"{"url": "http://127.0.0.1:4222"}"#,
            r#"{"url": "nats://nats.example:4222"}"#,
            r#"{"url": "tls://nats.example:4222"}"#,
            r#"{"url": "nats://127.0.0.1:4222", "stream": "a.b"}"#,
            r#"{"url": "nats://127.0.0.1:4222", "subject_prefix": "a.>"}"#,
            r#"{"url": "nats://127.0.0.1:4222", "subject_prefix": "a..b"}"#,
            r#"{"url": "nats://127.0.0.1:4222", "sweep_every_secs": 0}"#,
            r#"{"url": "nats://127.0.0.1:4222", "password": "x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_files_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ph-stream-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        let config = format!(
            r#"{{"url": "nats://127.0.0.1:4222", "token_file": "{}"}}"#,
            token.display()
        );
        std::fs::write(&token, "s3cret\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = parse(&config).unwrap_err().to_string();
        assert!(err.contains("readable by group or others"), "{err}");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(parse(&config).is_ok());
        std::fs::write(&token, "  \n").unwrap();
        let err = parse(&config).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
