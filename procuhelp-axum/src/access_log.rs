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

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
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

/// The middleware ([`crate::harden`] applies it to every route).
pub async fn log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        %method,
        route = %route,
        request_id = %id,
        org_id = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        tracing::info!(
            target: "procuhelp::access",
            status = response.status().as_u16(),
            latency_us,
            "request served"
        );
    });
    response
}

/// Records the organisation on the current request's log line (called once the
/// credential is verified).
pub(crate) fn record_org(org: procuhelp_core::OrgId) {
    tracing::Span::current().record("org_id", tracing::field::display(org));
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
}
