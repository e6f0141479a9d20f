//! The router and its layers.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use procuhelp_core::http::{CspNonce, SecurityHeadersLayer};
use procuhelp_tenancy::TenantDb;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::client_addr::TrustedProxies;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Tenant-scoped data access.
    pub tenants: TenantDb,
    /// Field encryption (supplier bank details, stored credentials).
    pub cipher: std::sync::Arc<procuhelp_tenancy::FieldCipher>,
    /// Where the server's secrets live.
    pub vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
    /// Sign-in, sessions and account security (records to the audit log).
    pub auth: procuhelp_auth::Authenticator,
    /// The append-only audit log in PostgreSQL, for reading and export.
    pub audit_log: Option<procuhelp_audit::PgAuditSink>,
    /// SSO clients per organisation (discovery and key caches).
    pub sso: std::sync::Arc<crate::api::sso::SsoClients>,
}

impl AppState {
    /// The same state, with `log` for the audit API (reads and exports).
    pub fn with_audit_log(mut self, log: procuhelp_audit::PgAuditSink) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// The same state, with the SSO clients' fetches held to `policy` (the default is
    /// [`procuhelp_core::OutboundPolicy::public_only`]).
    pub fn with_outbound_policy(mut self, policy: procuhelp_core::OutboundPolicy) -> Self {
        self.sso = std::sync::Arc::new(crate::api::sso::SsoClients::new(policy));
        self
    }

    /// Assembles the state from the runtime role's pool and the server's parts.
    pub fn assemble(
        runtime: sqlx::PgPool,
        cipher: std::sync::Arc<procuhelp_tenancy::FieldCipher>,
        vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
        audit: std::sync::Arc<dyn procuhelp_audit::AuditSink>,
        clock: std::sync::Arc<dyn procuhelp_core::Clock>,
        hasher: procuhelp_auth::password::PasswordHasher,
    ) -> Self {
        let tenants = TenantDb::new(runtime.clone());
        let auth = procuhelp_auth::Authenticator::new(
            tenants.clone(),
            std::sync::Arc::new(hasher),
            procuhelp_auth::throttle::LoginThrottle::new(runtime, Default::default()),
            procuhelp_auth::totp::Totp::new("ProcuHelp"),
            cipher.clone(),
            audit,
            clock,
            Default::default(),
        );
        Self {
            tenants,
            cipher,
            vault,
            auth,
            audit_log: None,
            sso: Default::default(),
        }
    }
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time allowed for one request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The complete application: [`routes`] wrapped by [`harden`].
pub fn app(state: AppState, limits: Limits) -> Router {
    harden(routes(state), limits)
}

/// The routes, without the protective layers.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .merge(crate::api::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Believes `X-Forwarded-For` from `proxies` (see [`crate::client_addr`]); without this
/// layer, the TCP peer is the client.
pub fn behind_proxies(router: Router, proxies: TrustedProxies) -> Router {
    router.layer(Extension(proxies))
}

/// Wraps `router` in the layers every response passes through. Security headers are
/// outermost so that 413s, 408s and 500s from the inner layers carry them too. Bodies
/// are read whole (within the limit, within the request timeout) before any route runs:
/// see [`crate::request_body`].
pub fn harden(router: Router, limits: Limits) -> Router {
    let max_body_bytes = limits.max_body_bytes;
    router
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::request_body::read_whole(max_body_bytes, request, next)
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                // The panic payload may hold internal detail: it is not echoed.
                tracing::error!("handler panicked");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            },
        ))
        .layer(SecurityHeadersLayer::strict())
}

/// The plain-HTTP app: every request is permanently redirected to the same path on
/// `https://{host}:{port}`. The host is configuration, never the request's Host header,
/// so this cannot be turned into an open redirect.
pub fn redirect_app(host: String, https_port: u16) -> Router {
    let authority = if https_port == 443 {
        host
    } else {
        format!("{host}:{https_port}")
    };
    Router::new()
        .fallback(move |uri: Uri| {
            let authority = authority.clone();
            async move {
                let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let location = format!("https://{authority}{path}");
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, location)],
                )
            }
        })
        .layer(SecurityHeadersLayer::strict())
}

/// A JSON error body with a fixed, non-revealing message.
pub fn error_response(status: StatusCode, message: &'static str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn home(Extension(nonce): Extension<CspNonce>) -> Html<String> {
    let nonce = nonce.as_str();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ProcuHelp</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#222}}</style>
</head><body><h1>ProcuHelp</h1>
<p>Procurement with tenant isolation enforced by the database.</p>
<p>Service status: <a href="/healthz">/healthz</a></p></body></html>"#
    ))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.tenants.ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ok" })).into_response(),
        _ => error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not found")
}
