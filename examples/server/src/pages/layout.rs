//! The frame of every page: language, title, the stylesheet, the header with the
//! navigation, one `main` landmark.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// What the header shows to a signed-in person, and the token their forms carry.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    /// Shown in the header.
    pub(crate) name: String,
    /// The session's anti-CSRF token (for the sign-out form).
    pub(crate) csrf: String,
    /// Links to show besides the account's: (path, label).
    pub(crate) links: Vec<(&'static str, &'static str)>,
}

/// A whole page: `body` inside the frame. Pages are never cached (they hold personal
/// data and one-time secrets).
pub(crate) fn page(title: &str, nav: Option<&Nav>, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ProcuHelp" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "ProcuHelp" }
                        @if let Some(nav) = nav {
                            @for (href, label) in &nav.links { a href=(href) { (label) } }
                            a href="/account" { "Account" }
                            span.muted { (nav.name) }
                            form.inline method="post" action="/logout" {
                                (csrf_field(&nav.csrf))
                                button.secondary type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/login" { "Sign in" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    };
    ([(header::CACHE_CONTROL, "no-store")], html).into_response()
}

/// The hidden anti-CSRF field every changing form carries.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(procuhelp_axum::form::CSRF_FIELD) value=(token); }
}
