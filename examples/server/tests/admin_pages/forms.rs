//! A browser's requests: pages opened with the session cookie, forms posted as
//! `application/x-www-form-urlencoded` with the hidden anti-CSRF field.
#![allow(dead_code)] // each test module uses what it needs

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::common::{Session, World, browser_call};

/// A browser's reply: status, headers, the page.
pub(crate) type Page = (StatusCode, HeaderMap, String);

pub(crate) fn cookie(s: &Session) -> String {
    format!("{}={}", procuhelp_auth::session::COOKIE_NAME, s.cookie)
}

pub(crate) async fn open(w: &World, s: &Session, path: &str) -> Page {
    browser_call(w, Method::GET, path, Some(&cookie(s)), None).await
}

/// Posts `fields` as a form, with the session's cookie and — unless `token` is false —
/// its anti-CSRF token as the hidden `csrf_token` field, as the pages' forms carry it.
pub(crate) async fn post(
    w: &World,
    s: &Session,
    path: &str,
    fields: &[(&str, &str)],
    token: bool,
) -> Page {
    let mut form = form_urlencoded::Serializer::new(String::new());
    if token {
        form.append_pair("csrf_token", &s.csrf);
    }
    form.extend_pairs(fields);
    browser_call(w, Method::POST, path, Some(&cookie(s)), Some(form.finish())).await
}

pub(crate) fn location(page: &Page) -> &str {
    page.1
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A 303 back to `to`.
#[track_caller]
pub(crate) fn redirected(page: &Page, to: &str) {
    assert_eq!(
        (page.0, location(page)),
        (StatusCode::SEE_OTHER, to),
        "{}",
        page.2
    );
}

/// The `data-error` code of an error page.
pub(crate) fn error_code(page: &Page) -> &str {
    page.2
        .split("data-error=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

/// The value of the first `<input name="{name}" … value="…">` of a page.
pub(crate) fn input_value(page: &Page, name: &str) -> String {
    let at = page.2.find(&format!("name=\"{name}\"")).expect(name);
    let tag_start = page.2[..at].rfind('<').unwrap();
    let tag = &page.2[tag_start..tag_start + page.2[tag_start..].find('>').unwrap()];
    let value = tag
        .split("value=\"")
        .nth(1)
        .expect("value")
        .split('"')
        .next()
        .unwrap();
    value
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
