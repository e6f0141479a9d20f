//! The pages people use (issue #15): server-rendered HTML ([`maud`], checked at compile
//! time, every value escaped), forms that work without JavaScript, the anti-CSRF token in
//! every form that changes something ([`procuhelp_axum::form`] lifts it to the header the
//! extractor checks), one stylesheet, no inline script or style (the strict CSP stays as
//! it is). Each page is in the same route table as the API, with who may open it, and
//! calls the same SDK functions as its API twin: one rule for both.

mod account;
mod layout;

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
/// stable code as `data-error` for tests and tools. No credential: to sign-in.
pub(crate) fn error_page(error: &procuhelp_axum::Error, nav: Option<&Nav>) -> Response {
    let (status, code, message) = error.parts();
    if status == StatusCode::UNAUTHORIZED && code == "unauthenticated" {
        return see_other("/login");
    }
    let body = maud::html! {
        h1 { "Something went wrong" }
        p.notice.error role="alert" data-error=(code) { (message) }
        p { a href="/account" { "Back to your account" } }
    };
    (status, page("Error", nav, body)).into_response()
}
