//! [`harden`]: the layers every response passes through — security headers (with the
//! CSP nonce), the access log ([`crate::access_log`]), the body limit and whole-body
//! read, the request timeout and a panic answered as a plain 500.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use procuhelp_core::http::SecurityHeadersLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::client_addr::TrustedProxies;
use crate::error::error_response;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time allowed for one request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// 1 MiB bodies, 30 seconds per request.
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Wraps `router` in the layers every response passes through. Security headers are
/// outermost so that 413s, 408s and 500s from the inner layers carry them too. Bodies
/// are read whole (within the limit, within the request timeout) before any route runs,
/// so a slow upload never holds a database connection: see [`crate::body`].
///
/// Apply it last, to the whole app (your routes and the SDK's).
pub fn harden<S>(router: Router<S>, limits: Limits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let max_body_bytes = limits.max_body_bytes;
    router
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::body::read_whole(max_body_bytes, request, next)
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                // The panic payload may hold internal detail: it is not echoed.
                tracing::error!("handler panicked");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            },
        ))
        // Outside the timeout and the panic handler, so 408s and 500s are logged too;
        // per route (Router::layer), so the route template is known.
        .layer(axum::middleware::from_fn(crate::access_log::log))
        .layer(SecurityHeadersLayer::strict())
}

/// Believes `X-Forwarded-For` from `proxies` (see [`crate::client_addr`]); without this
/// layer, the TCP peer is the client.
pub fn behind_proxies<S>(router: Router<S>, proxies: TrustedProxies) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::Extension(proxies))
}
