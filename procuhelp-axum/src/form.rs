//! HTML forms without JavaScript carry the anti-CSRF token as a field, not a header: a
//! form-encoded change's `csrf_token` field becomes the [`CSRF_HEADER`] the extractor
//! checks, so a form and a `fetch` are held to the one rule ([`crate::Authed`]).
//!
//! It runs on the body [`crate::harden`] has already read whole (within its limit), so it
//! keeps nothing more before the credential is checked. A request that sends the header
//! keeps it; a form without the field gets none and is refused as before (403 `csrf`).
//!
//! ```
//! use axum::http::{Request, header};
//! use procuhelp_axum::{CSRF_HEADER, form::lift_csrf_field};
//!
//! let (mut parts, ()) = Request::post("/account/password")
//!     .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! lift_csrf_field(&mut parts, b"csrf_token=abc&new=x");
//! assert_eq!(parts.headers[CSRF_HEADER], "abc");
//! ```

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};

use crate::CSRF_HEADER;

/// The form field holding the anti-CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// Sets [`CSRF_HEADER`] from the `csrf_token` field of a form-encoded change that sends
/// no such header (the first field of that name; a value that is not a header value is
/// ignored, and the extractor refuses the request).
pub fn lift_csrf_field(parts: &mut Parts, body: &[u8]) {
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || parts.headers.contains_key(CSRF_HEADER) || !is_form(parts) {
        return;
    }
    let token = form_urlencoded::parse(body)
        .find(|(name, _)| name == CSRF_FIELD)
        .and_then(|(_, value)| HeaderValue::from_str(&value).ok());
    if let Some(token) = token {
        parts.headers.insert(CSRF_HEADER, token);
    }
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(method: Method, content_type: Option<&str>) -> Parts {
        let mut b = Request::builder().method(method).uri("/x");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_form_changes_without_the_header_take_the_field() {
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        let mut p = parts(Method::POST, Some(form));
        lift_csrf_field(&mut p, b"a=1&csrf_token=t%2Bk&csrf_token=second");
        assert_eq!(p.headers[CSRF_HEADER], "t+k");

        // A header sent is kept.
        let mut p = parts(Method::POST, Some(form));
        p.headers
            .insert(CSRF_HEADER, HeaderValue::from_static("hdr"));
        lift_csrf_field(&mut p, b"csrf_token=field");
        assert_eq!(p.headers[CSRF_HEADER], "hdr");

        // JSON, reads, a missing field and a value that is no header value: nothing set.
        for (method, ct, body) in [
            (
                Method::POST,
                Some("application/json"),
                &b"{\"csrf_token\":\"t\"}"[..],
            ),
            (Method::GET, Some(form), b"csrf_token=t"),
            (Method::POST, Some(form), b"other=t"),
            (Method::POST, None, b"csrf_token=t"),
            (Method::POST, Some(form), b"csrf_token=a%0Ab"),
        ] {
            let mut p = parts(method.clone(), ct);
            lift_csrf_field(&mut p, body);
            assert!(!p.headers.contains_key(CSRF_HEADER), "{method} {ct:?}");
        }
    }
}
