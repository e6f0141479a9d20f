//! Prometheus metrics at an operator-only `/metrics`.
//!
//! The SDK's crates emit through the [`metrics`] facade (as they log through `tracing`):
//! requests by route, method and status and their latency ([`crate::access_log`]), the
//! pool's use and the wait for a connection (`procuhelp-tenancy`), the audit writer's
//! queue and batches (`procuhelp-audit`), sign-in failures, lockouts and throttles
//! (`procuhelp-auth`). An application that installs no recorder pays next to nothing.
//! [`install`] installs the Prometheus recorder (once per process) and [`router`] serves
//! its text exposition to a scraper named in the operators' configuration
//! (`metrics_scrapers`, [`Operators::verify_scraper`]): any other request gets the same
//! fixed 401, and a deployment without scrapers serves no `/metrics` at all.
//!
//! Labels are bounded by construction: route **templates**, the standard methods, status
//! codes, fixed reasons. No organisation, user, address or path as sent is a label, so
//! a client cannot grow the metric set, and nothing personal reaches the scraper.
//!
//! ```no_run
//! # fn demo(operators: std::sync::Arc<procuhelp_auth::operator::Operators>) {
//! let handle = procuhelp_axum::metrics::install().expect("metrics recorder");
//! let app: axum::Router = axum::Router::new()
//!     .merge(procuhelp_axum::metrics::router(operators, handle, || {
//!         // Refresh gauges sampled at scrape time (pool use, backup age) here.
//!     }));
//! # }
//! ```

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use procuhelp_auth::operator::Operators;

/// Buckets of every `*_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the audit writer's batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's metrics recorder, once; later calls
/// return the same handle. Fails if another recorder was installed first.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("procuhelp_audit_writer_batch_size".to_owned()),
            BATCH_BUCKETS,
        )?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// `GET /metrics` for the scrapers `operators` names; `refresh` runs before each
/// rendering (set the gauges sampled at scrape time).
pub fn router<S>(
    operators: Arc<Operators>,
    handle: PrometheusHandle,
    refresh: impl Fn() + Send + Sync + 'static,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let refresh = Arc::new(refresh);
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let (operators, handle, refresh) = (operators.clone(), handle.clone(), refresh.clone());
            async move { scrape(&operators, &handle, &*refresh, &headers) }
        }),
    )
}

fn scrape(
    operators: &Operators,
    handle: &PrometheusHandle,
    refresh: &(dyn Fn() + Send + Sync),
    headers: &HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match operators.verify_scraper(authorization) {
        Ok(scraper) => {
            tracing::debug!(scraper = scraper.as_str(), "metrics scraped");
            refresh();
            handle.run_upkeep();
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
                .into_response()
        }
        Err(refusal) => {
            metrics::counter!("procuhelp_metrics_scrapes_refused_total").increment(1);
            // Counted; logged at debug only: strangers must not be able to flood the log.
            tracing::debug!(reason = refusal.reason.as_str(), "metrics scrape refused");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized\n",
            )
                .into_response()
        }
    }
}
