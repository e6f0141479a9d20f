//! `GET /sso/{org}`: the organisation's sign-in page — a button for each configured
//! connection (nothing else of the organisation is shown; unknown organisation → 404).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use procuhelp_auth::sso::store::{self, Protocol};
use procuhelp_core::OrgId;
use procuhelp_core::http::CspNonce;

use crate::Sdk;

pub(super) async fn login_page(
    State(sdk): State<Sdk>,
    Path(org): Path<String>,
    nonce: Option<Extension<CspNonce>>,
) -> Response {
    let Ok(org) = org.parse::<OrgId>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(mut tx) = sdk.tenants().begin(org).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let oidc = store::connection(&mut tx, Protocol::Oidc).await;
    let saml = store::connection(&mut tx, Protocol::Saml).await;
    let _ = tx.rollback().await;
    let (Ok(oidc), Ok(saml)) = (oidc, saml) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // The org id is a UUID we parsed: hex digits and hyphens only, safe in HTML.
    let mut buttons = String::new();
    if oidc.is_some() {
        buttons.push_str(&format!(
            r#"<p><a class="button" href="/sso/{org}/oidc/start">Sign in with Microsoft Entra ID</a></p>"#
        ));
    }
    if saml.is_some() {
        buttons.push_str(&format!(
            r#"<p><a class="button" href="/sso/{org}/saml/start">Sign in with your organisation (SAML)</a></p>"#
        ));
    }
    if buttons.is_empty() {
        buttons.push_str("<p>Single sign-on is not configured for this organisation.</p>");
    }
    // Without `harden()` there is no CSP nonce: the page goes unstyled.
    let style = match nonce {
        Some(Extension(nonce)) => format!(
            r#"<style nonce="{}">body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}.button{{display:inline-block;padding:.6rem 1rem;border:1px solid #0b5cad;border-radius:4px;color:#0b5cad;text-decoration:none}}</style>"#,
            nonce.as_str()
        ),
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — ProcuHelp</title>
{style}
</head><body><h1>Sign in</h1>
{buttons}
</body></html>"#
    ))
    .into_response()
}
