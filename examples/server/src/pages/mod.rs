//! The pages people use (issue #15): server-rendered HTML ([`maud`], checked at compile
//! time, every value escaped), forms that work without JavaScript, the anti-CSRF token in
//! every form that changes something ([`procuhelp_axum::form`] lifts it to the header the
//! extractor checks), one stylesheet, no inline script or style (the strict CSP stays as
//! it is). Each page is in the same route table as the API, with who may open it, and
//! calls the same SDK functions as its API twin: one rule for both.

mod account;
mod admin;
mod audit;
mod contracts;
mod elevations;
mod layout;
mod policy;
mod requests;
mod scim;
mod sso;
mod suppliers;
mod tokens;
mod users;

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
        .merge(contracts::table())
        .merge(users::table())
        .merge(admin::table())
        .merge(audit::table())
        .merge(policy::table())
        .merge(elevations::table())
        .merge(tokens::table())
        .merge(sso::table())
        .merge(scim::table())
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
        p.notice.error role="alert" data-error=(code) {
            (message)
            @if let Some((field, problem)) = error.field() {
                ": " span data-field=(field) { (field.replace('_', " ")) }
                @if let Some(problem) = problem { " " (problem) }
            }
        }
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
        links.push(("/contracts", "Contracts"));
    }
    if can(authed, P::ReadRequests) {
        links.push(("/requests", "Purchase requests"));
    }
    if can(authed, P::ManageUsers) {
        links.push(("/users", "Users"));
    }
    if !admin::sections(authed).is_empty() {
        links.push(("/admin", "Administration"));
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

/// A euro amount as typed ("1234", "1234.5", "1234.50") in cents; at most two decimals and
/// twelve digits before them.
pub(crate) fn cents(amount: &str, field: &'static str) -> Result<i64, procuhelp_axum::Error> {
    let invalid = || procuhelp_axum::Error::Invalid(field);
    let amount = amount.trim();
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if units.is_empty()
        || units.len() > 12
        || fraction.len() > 2
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let units: i64 = units.parse().map_err(|_| invalid())?;
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    Ok(units * 100 + fraction)
}

/// A time as pages show it (`2026-12-04 14:45 UTC`).
pub(crate) fn when(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

/// Cents as euros (`€7200.50`).
pub(crate) fn money(cents: i64) -> String {
    format!("€{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_euros_with_at_most_two_decimals() {
        for (text, want) in [("12", 1200), ("12.5", 1250), ("0.07", 7), (" 3.10 ", 310)] {
            assert_eq!(cents(text, "x").unwrap(), want, "{text}");
        }
        for bad in [
            "",
            ".5",
            "1.234",
            "-1",
            "1e3",
            "12,50",
            "9999999999999",
            "１２",
        ] {
            assert!(cents(bad, "x").is_err(), "{bad}");
        }
        assert_eq!(money(720050), "€7200.50");
    }
}
