//! Tracing set-up: the log on stderr and, with `serve --otlp-traces`, the request spans
//! exported over OTLP/HTTP.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::cli::OtlpArgs;

/// The spans exported: the request span only (`procuhelp_axum::access_log`). Its fields
/// are the access line's, so nothing reaches the collector that the log would not hold.
const EXPORTED_TARGET: &str = "procuhelp_axum::access_log";

/// Flushes and stops the trace export when dropped (at exit, outside the async runtime:
/// the exporter's client blocks).
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "OTLP: the last spans could not be exported");
        }
    }
}

/// Logs to stderr at `level` (a tracing filter such as `info` or
/// `procuhelp=debug,info`), default `info`; with `otlp`, also exports the request spans.
/// Call outside the async runtime.
pub fn init(level: Option<&str>, otlp: Option<&OtlpArgs>) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_new(level.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = otlp.map(tracer_provider).transpose()?;
    let export = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("procuhelp-server"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(EXPORTED_TARGET, tracing::Level::DEBUG),
            )
    });
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(export)
        .try_init();
    Ok(Telemetry { provider })
}

/// The OTLP/HTTP (protobuf) exporter behind a batch processor on its own thread.
fn tracer_provider(args: &OtlpArgs) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = args.otlp_traces.as_deref().unwrap_or_default();
    check_endpoint(endpoint, args.otlp_ca_file.is_some())?;
    crate::tls::install_crypto_provider();
    let mut client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false);
    if let Some(ca) = &args.otlp_ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("--otlp-ca-file {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("--otlp-ca-file {}: not a PEM certificate", ca.display()))?;
        client = client.add_root_certificate(cert).https_only(true);
    }
    let client = client.build().context("OTLP: the HTTP client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .context("OTLP: the span exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("procuhelp-server")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Refuses a collector at one of the server's own addresses: each exported batch would
/// be a request, whose span is exported in turn (a loop that never ends).
pub fn refuse_own_address(endpoint: &str, own: &[std::net::SocketAddr]) -> anyhow::Result<()> {
    let url = url::Url::parse(endpoint).context("--otlp-traces: not a URL")?;
    let port = url.port_or_known_default();
    let host_ip: Option<std::net::IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        Some(url::Host::Domain("localhost")) => Some(std::net::Ipv4Addr::LOCALHOST.into()),
        _ => None,
    };
    let ours = own.iter().any(|addr| {
        Some(addr.port()) == port
            && host_ip.is_some_and(|ip| {
                ip == addr.ip()
                    || (ip.is_loopback() && (addr.ip().is_unspecified() || addr.ip().is_loopback()))
            })
    });
    if ours {
        anyhow::bail!("--otlp-traces points at this server itself: give the collector's address");
    }
    Ok(())
}

/// Spans name routes and organisations: in clear only to this machine.
fn check_endpoint(endpoint: &str, has_ca: bool) -> anyhow::Result<()> {
    let url = url::Url::parse(endpoint).context("--otlp-traces: not a URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!("--otlp-traces: the URL must not carry credentials");
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "http" if loopback => Ok(()),
        "http" => anyhow::bail!("--otlp-traces: use https:// for a collector off this machine"),
        "https" if has_ca => Ok(()),
        "https" => {
            anyhow::bail!("--otlp-traces: https:// needs --otlp-ca-file (no built-in roots)")
        }
        _ => anyhow::bail!("--otlp-traces: an http:// or https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_at_the_servers_own_address_is_refused() {
        let own: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:8443".parse().unwrap(),
            "0.0.0.0:8080".parse().unwrap(),
        ];
        for bad in [
            "https://127.0.0.1:8443/v1/traces",
            "http://localhost:8080/v1/traces",
            "http://127.0.0.2:8080/v1/traces",
        ] {
            assert!(refuse_own_address(bad, &own).is_err(), "{bad}");
        }
        for ok in [
            "http://127.0.0.1:4318/v1/traces",
            "https://collector.example:8443/v1/traces",
        ] {
            assert!(refuse_own_address(ok, &own).is_ok(), "{ok}");
        }
    }

    #[test]
    fn endpoints_in_clear_stay_on_this_machine() {
        for ok in [
            ("http://127.0.0.1:4318/v1/traces", false),
            ("http://[::1]:4318/v1/traces", false),
            ("http://localhost:4318/v1/traces", false),
            ("https://otel.example:4318/v1/traces", true),
        ] {
            assert!(check_endpoint(ok.0, ok.1).is_ok(), "{ok:?}");
        }
        for bad in [
            ("http://otel.example:4318/v1/traces", false),
            ("https://otel.example:4318/v1/traces", false),
            ("http://user:pw@127.0.0.1:4318/v1/traces", false),
            ("grpc://127.0.0.1:4317", false),
            ("not a url", false),
        ] {
            assert!(check_endpoint(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }
}
