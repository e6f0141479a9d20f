//! A browser's requests: pages opened with the session cookie, forms posted as
//! `application/x-www-form-urlencoded` with the hidden anti-CSRF field.

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::common::{Session, World, browser_call};

/// A browser's reply: status, headers, the page.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) html: String,
}

impl Page {
    /// Where a redirect goes; `None` on an answer page.
    pub(crate) fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The `data-error` code of an error page (or of a form's alert).
    pub(crate) fn error_code(&self) -> &str {
        self.html
            .split("data-error=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
    }

    /// The text of the element with `id`.
    pub(crate) fn text_of(&self, id: &str) -> &str {
        let at = self.html.find(&format!("id=\"{id}\"")).expect(id);
        let rest = &self.html[at..];
        let rest = &rest[rest.find('>').unwrap() + 1..];
        &rest[..rest.find('<').unwrap()]
    }

    /// The value of the first `<input name="{name}" … value="…">` of the page.
    pub(crate) fn input_value(&self, name: &str) -> String {
        let html = &self.html;
        let at = html.find(&format!("name=\"{name}\"")).expect(name);
        let tag_start = html[..at].rfind('<').unwrap();
        let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
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
}

/// A form with no field but the token (a button).
pub(crate) const BUTTON: &[(&str, &str)] = &[];

fn cookie(s: &Session) -> String {
    format!("{}={}", procuhelp_auth::session::COOKIE_NAME, s.cookie)
}

async fn call(w: &World, s: &Session, method: Method, path: &str, form: Option<String>) -> Page {
    let (status, headers, html) = browser_call(w, method, path, Some(&cookie(s)), form).await;
    Page {
        status,
        headers,
        html,
    }
}

/// Opens `path` with the session's cookie.
pub(crate) async fn open(w: &World, s: &Session, path: &str) -> Page {
    call(w, s, Method::GET, path, None).await
}

/// Posts `form` (pairs or a struct) with the session's cookie and its anti-CSRF token as
/// the hidden `csrf_token` field, as the pages' forms carry it.
pub(crate) async fn post<F: serde::Serialize + ?Sized>(
    w: &World,
    s: &Session,
    path: &str,
    form: &F,
) -> Page {
    let token = serde_urlencoded::to_string([("csrf_token", s.csrf.as_str())]).unwrap();
    let fields = serde_urlencoded::to_string(form).unwrap();
    let body = if fields.is_empty() {
        token
    } else {
        format!("{token}&{fields}")
    };
    call(w, s, Method::POST, path, Some(body)).await
}

/// Posts `form` with the session's cookie but without its anti-CSRF token (a forged
/// request).
pub(crate) async fn post_without_token<F: serde::Serialize + ?Sized>(
    w: &World,
    s: &Session,
    path: &str,
    form: &F,
) -> Page {
    let body = serde_urlencoded::to_string(form).unwrap();
    call(w, s, Method::POST, path, Some(body)).await
}

/// A 303 to `to`.
#[track_caller]
pub(crate) fn redirected(page: &Page, to: &str) {
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, Some(to)),
        "{}",
        page.html
    );
}
