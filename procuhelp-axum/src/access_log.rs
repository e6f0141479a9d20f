//! One structured access-log line per request (`target: procuhelp::access`): method,
//! route **template** (`/api/suppliers/{id}`, never the path as sent), status, latency,
//! request id and — once the credential is verified — the organisation. Never a query
//! string, header, cookie, token or body: nothing a client sends reaches the log but the
//! method and which route matched.
//!
//! The request id is the client's `x-request-id` when it is 1–64 characters of
//! `A-Z a-z 0-9 . _ -` (so it can correlate with the caller's logs), otherwise one made
//! here; it is set on the request (the audit trail records it) and echoed on the
//! response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new request id: a random per-process prefix and a counter (unique per process,
/// unguessable across processes, and no system call per request as a random UUID was).
fn new_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness the ids are still unique within the process.
        let _ = getrandom::fill(&mut bytes);
        u64::from_le_bytes(bytes)
    });
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The method as a metric label: the standard ones by name, anything else as `other`
/// (a client cannot add label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Feeds each response to the HTTP-fed alert detectors
/// ([`procuhelp_audit::AlertingSink::observe_http`]): add it to the app as an
/// `axum::Extension` outside [`crate::harden`]; without it nothing is observed (and
/// nothing is paid for).
#[derive(Clone)]
pub struct ResponseObserver(pub Arc<dyn Fn(&procuhelp_audit::HttpResponse) + Send + Sync>);

impl std::fmt::Debug for ResponseObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseObserver")
    }
}

/// The request's organisation, set once its credential is verified ([`record_org`]).
#[derive(Clone, Default)]
struct VerifiedOrg(Arc<OnceLock<procuhelp_core::OrgId>>);

/// The middleware ([`crate::harden`] applies it to every route): the access-log line and
/// the request metrics (`procuhelp_http_requests_total{method,route,status}`,
/// `procuhelp_http_request_duration_seconds{route}`; see [`crate::metrics`]).
pub async fn log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(new_request_id, str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", |p| p.as_str())
        .to_owned();
    let method = method_label(request.method());
    // Where the credential's organisation is put once verified ([`record_org`]).
    let slot = VerifiedOrg::default();
    request.extensions_mut().insert(slot.clone());
    // Only with an observer: the client address.
    let observed = request
        .extensions()
        .get::<ResponseObserver>()
        .cloned()
        .map(|observer| {
            let source = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| {
                    let proxies = request
                        .extensions()
                        .get::<crate::client_addr::TrustedProxies>()
                        .cloned()
                        .unwrap_or_default();
                    crate::client_addr::client_addr(c.0.ip(), request.headers(), &proxies)
                });
            (observer, source)
        });
    // The request's own span is DEBUG: entering and leaving a span at every poll of the
    // request's future was most of the log's price. Operators who want every line of a
    // request tagged with its id enable it (`RUST_LOG=info,procuhelp_axum::access_log=debug`);
    // the access line carries the id either way.
    let span = tracing::debug_span!(
        "request",
        method,
        route = %route,
        request_id = %id,
        org_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = started.elapsed();
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let status = response.status();
    // For a span exporter (OTLP): a disabled span ignores it.
    span.record("status", status.as_u16());
    let org = slot.0.get().copied();
    tracing::info!(
        target: "procuhelp::access",
        method,
        route = %route,
        request_id = %id,
        org_id = %OrgField(org),
        status = status.as_u16(),
        latency_us,
        "request served"
    );
    metrics::histogram!("procuhelp_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!(
        "procuhelp_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status.as_str().to_owned(),
    )
    .increment(1);
    if let Some((observer, source)) = observed {
        (observer.0)(&procuhelp_audit::HttpResponse {
            at: time::OffsetDateTime::now_utc(),
            status: status.as_u16(),
            org,
            source,
        });
    }
    response
}

/// The organisation as the access line shows it: `-` until verified.
struct OrgField(Option<procuhelp_core::OrgId>);

impl std::fmt::Display for OrgField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(org) => org.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Records the organisation on the current request's log line (called once the
/// credential is verified).
pub(crate) fn record_org(extensions: &axum::http::Extensions, org: procuhelp_core::OrgId) {
    tracing::Span::current().record("org_id", tracing::field::display(org));
    if let Some(slot) = extensions.get::<VerifiedOrg>() {
        let _ = slot.0.set(org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        for ok in ["abc", "0191d2a4-6c1e-7a41", "a.b_c-D"] {
            assert!(acceptable(ok), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "x=1;y", &"a".repeat(65), "é"] {
            assert!(!acceptable(bad), "{bad:?}");
        }
    }

    #[test]
    fn new_request_ids_are_unique_and_acceptable() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert!(acceptable(&a) && a.len() == 32, "{a}");
        assert_eq!(a[..16], b[..16]);
    }
}
