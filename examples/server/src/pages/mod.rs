//! The pages people use (issue #15): server-rendered HTML ([`maud`], checked at compile
//! time, every value escaped), forms that work without JavaScript, the anti-CSRF token in
//! every form that changes something ([`procuhelp_axum::form`] lifts it to the header the
//! extractor checks), one stylesheet, no inline script or style (the strict CSP stays as
//! it is). Each page is in the same route table as the API, with who may open it, and
//! calls the same SDK functions as its API twin: one rule for both.

mod account;
mod layout;
mod requests;
mod suppliers;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use procuhelp_axum::{Access, RouteTable};

use crate::state::AppState;

pub(crate) use layout::{Nav, page};

/// The page routes, each with who may open it.
pub(crate) fn table() -> RouteTable<AppState> {
    RouteTable::new()
        .get("/static/app.css", Access::Public, stylesheet)
        .merge(account::table())
        .merge(requests::table())
        .merge(suppliers::table())
}

/// The one stylesheet (the CSP allows styles from this origin and nothing inline).
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// After a change: back to a page with a GET (post/redirect/get).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A page answering an error: its status, a fixed message (never the input), and the
/// stable code as `data-error` for tests and tools, with a way back. No credential: to
/// sign-in.
pub(crate) fn error_page(error: &procuhelp_axum::Error, nav: Option<&Nav>) -> Response {
    error_page_back(error, nav, "/account")
}

/// [`error_page`] with the link back to `back`.
pub(crate) fn error_page_back(
    error: &procuhelp_axum::Error,
    nav: Option<&Nav>,
    back: &str,
) -> Response {
    let (status, code, message) = error.parts();
    if status == StatusCode::UNAUTHORIZED && code == "unauthenticated" {
        return see_other("/login");
    }
    let body = maud::html! {
        h1 { "That did not work" }
        p.notice.error role="alert" data-error=(code) { (message) }
        p { a href=(back) { "Back" } }
    };
    (status, page("Not done", nav, body)).into_response()
}

/// A form-encoded body, parsed once the caller's permission is checked (an extractor
/// would refuse a malformed body before the permission, and answer a stranger 415 where
/// the matrix says 403). Unknown fields are ignored; a missing or malformed one is 422.
pub(crate) fn parse_form<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, procuhelp_axum::Error> {
    serde_urlencoded::from_bytes(body).map_err(|_| procuhelp_axum::Error::Invalid("form"))
}

/// The header's links for what the person may open.
pub(crate) fn nav_links(authed: &procuhelp_axum::Authed) -> Vec<(&'static str, &'static str)> {
    use procuhelp_auth::Permission as P;
    let mut links = Vec::new();
    if can(authed, P::ReadSuppliers) {
        links.push(("/suppliers", "Suppliers"));
    }
    if can(authed, P::ReadRequests) {
        links.push(("/requests", "Purchase requests"));
    }
    if can(authed, P::ReadAuditLog) {
        links.push(("/audit", "Audit log"));
    }
    links
}

/// Whether the signed-in person's role in force holds `permission` (what a page offers;
/// the handler behind it checks again).
pub(crate) fn can(authed: &procuhelp_axum::Authed, permission: procuhelp_auth::Permission) -> bool {
    authed
        .principal
        .session()
        .is_ok_and(|s| s.effective_role().allows(permission))
}
