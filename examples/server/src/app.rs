//! The router and its layers: the server's pages, the API ([`crate::api`]) and the SDK's
//! hardening ([`harden`]).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use procuhelp_axum::{CspNonce, SecurityHeadersLayer, error_response};
use serde_json::json;

pub use crate::state::AppState;
pub use procuhelp_axum::{Limits, behind_proxies, harden};

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
    match tokio::time::timeout(Duration::from_secs(2), state.sdk.tenants().ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ok" })).into_response(),
        _ => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "database unavailable",
        ),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "not found")
}
