//! `/.well-known/security.txt` (RFC 9116): where to report a vulnerability.
//!
//! The deployment describes it in JSON ([`SecurityTxt`], unknown fields refused):
//!
//! ```
//! use procuhelp_axum::security_txt::SecurityTxt;
//! let txt: SecurityTxt = serde_json::from_str(r#"{
//!     "contact": ["mailto:security@example.com"],
//!     "expires": "2099-01-01T00:00:00Z",
//!     "policy": "https://example.com/security",
//!     "preferred_languages": ["en", "de"]
//! }"#).unwrap();
//! let now = time::macros::datetime!(2098-06-01 0:00 UTC);
//! txt.check(now).unwrap();
//! assert!(txt.render().contains("Expires: 2099-01-01T00:00:00Z\n"));
//! ```
//!
//! [`router`] serves it as `text/plain; charset=utf-8` — and refuses (404) once it has
//! expired: an expired file tells researchers the contact may be dead, so none is
//! better than a stale one (the server's log says so at every refusal, and
//! [`SecurityTxt::expires_within`] lets `posture` warn 30 days ahead).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where it is served.
pub const PATH: &str = "/.well-known/security.txt";
/// RFC 9116 §2.5.5: an Expires more than a year ahead is not recommended; refused here.
pub const MAX_LIFETIME: time::Duration = time::Duration::days(366);

/// A deployment's security.txt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityTxt {
    /// Where to report: `mailto:`, `https://` or `tel:` URIs, most preferred first.
    pub contact: Vec<String>,
    /// When this file stops being valid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// The disclosure policy (an `https://` URL).
    #[serde(default)]
    pub policy: Option<String>,
    /// Languages reports may be written in (RFC 5646 tags, e.g. `en`).
    #[serde(default)]
    pub preferred_languages: Vec<String>,
    /// Where this file is canonically served (an `https://` URL ending in
    /// `/.well-known/security.txt`).
    #[serde(default)]
    pub canonical: Option<String>,
    /// Where researchers are thanked (an `https://` URL).
    #[serde(default)]
    pub acknowledgments: Option<String>,
}

/// Why a security.txt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityTxtError {
    /// No contact.
    #[error("security.txt: at least one contact is required")]
    NoContact,
    /// A field's value is not what RFC 9116 allows.
    #[error("security.txt: {field} {value:?} is not {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Expired.
    #[error("security.txt expired at {0}: renew it (its contacts may be stale)")]
    Expired(String),
    /// Expires too far ahead.
    #[error("security.txt: expires {0}, more than a year ahead (RFC 9116 §2.5.5)")]
    TooFarAhead(String),
}

fn uri_ok(value: &str, schemes: &[&str]) -> bool {
    value.len() <= 512
        && !value.chars().any(|c| c.is_control() || c.is_whitespace())
        && schemes
            .iter()
            .any(|s| value.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
}

impl SecurityTxt {
    /// Checks every field, and that it is valid at `now` and expires within a year.
    pub fn check(&self, now: OffsetDateTime) -> Result<(), SecurityTxtError> {
        let invalid = |field, value: &str, expected| SecurityTxtError::Invalid {
            field,
            value: value.to_owned(),
            expected,
        };
        if self.contact.is_empty() {
            return Err(SecurityTxtError::NoContact);
        }
        for c in &self.contact {
            if !uri_ok(c, &["mailto:", "https://", "tel:"]) {
                return Err(invalid("Contact", c, "a mailto:, https:// or tel: URI"));
            }
        }
        for (field, value) in [
            ("Policy", &self.policy),
            ("Acknowledgments", &self.acknowledgments),
            ("Canonical", &self.canonical),
        ] {
            if let Some(v) = value
                && !uri_ok(v, &["https://"])
            {
                return Err(invalid(field, v, "an https:// URL"));
            }
        }
        if let Some(c) = &self.canonical
            && !c.ends_with(PATH)
        {
            return Err(invalid(
                "Canonical",
                c,
                "a URL ending in /.well-known/security.txt",
            ));
        }
        for l in &self.preferred_languages {
            let ok = !l.is_empty()
                && l.len() <= 35
                && l.split('-').all(|p| {
                    !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !ok {
                return Err(invalid(
                    "Preferred-Languages",
                    l,
                    "an RFC 5646 language tag",
                ));
            }
        }
        if self.expires <= now {
            return Err(SecurityTxtError::Expired(self.expires_text()));
        }
        if self.expires - now > MAX_LIFETIME {
            return Err(SecurityTxtError::TooFarAhead(self.expires_text()));
        }
        Ok(())
    }

    /// Whether it expires within `window` of `now` (time to renew it).
    pub fn expires_within(&self, now: OffsetDateTime, window: time::Duration) -> bool {
        self.expires - now <= window
    }

    fn expires_text(&self) -> String {
        self.expires
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    /// The file, in RFC 9116's field syntax (one `Field: value` per line).
    pub fn render(&self) -> String {
        let mut out =
            String::from("# Reporting a security vulnerability in this service: see the Policy.\n");
        for c in &self.contact {
            out.push_str(&format!("Contact: {c}\n"));
        }
        out.push_str(&format!("Expires: {}\n", self.expires_text()));
        if let Some(a) = &self.acknowledgments {
            out.push_str(&format!("Acknowledgments: {a}\n"));
        }
        if let Some(c) = &self.canonical {
            out.push_str(&format!("Canonical: {c}\n"));
        }
        if let Some(p) = &self.policy {
            out.push_str(&format!("Policy: {p}\n"));
        }
        if !self.preferred_languages.is_empty() {
            out.push_str(&format!(
                "Preferred-Languages: {}\n",
                self.preferred_languages.join(", ")
            ));
        }
        out
    }
}

/// Serves `txt` at [`PATH`] while it is valid; 404 once it has expired.
pub fn router(txt: SecurityTxt) -> Router {
    let txt = std::sync::Arc::new(txt);
    Router::new().route(
        PATH,
        get(move || {
            let txt = txt.clone();
            async move { serve(&txt, OffsetDateTime::now_utc()) }
        }),
    )
}

fn serve(txt: &SecurityTxt, now: OffsetDateTime) -> Response {
    match txt.check(now) {
        Ok(()) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "max-age=86400"),
            ],
            txt.render(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "security.txt not served");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn txt() -> SecurityTxt {
        serde_json::from_str(
            r#"{"contact": ["mailto:security@example.com", "https://example.com/report"],
                "expires": "2027-03-01T00:00:00Z",
                "policy": "https://example.com/security-policy",
                "preferred_languages": ["en", "de-CH"],
                "canonical": "https://example.com/.well-known/security.txt"}"#,
        )
        .unwrap()
    }

    /// The fields RFC 9116 requires, once, in its syntax; nothing else but comments.
    #[test]
    fn renders_the_rfc_9116_fields() {
        let text = txt().render();
        let fields: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once(": ").unwrap())
            .collect();
        let count = |f: &str| fields.iter().filter(|(k, _)| *k == f).count();
        assert_eq!(count("Expires"), 1);
        assert_eq!(count("Contact"), 2);
        assert_eq!(count("Preferred-Languages"), 1);
        let expires = fields.iter().find(|(k, _)| *k == "Expires").unwrap().1;
        assert!(OffsetDateTime::parse(expires, &Rfc3339).is_ok());
        for (k, v) in fields {
            assert!(
                [
                    "Contact",
                    "Expires",
                    "Policy",
                    "Preferred-Languages",
                    "Canonical",
                    "Acknowledgments"
                ]
                .contains(&k),
                "{k}"
            );
            assert!(!v.is_empty() && !v.contains('\n'));
        }
    }

    #[test]
    fn bad_fields_expiry_and_lifetime_are_refused() {
        let now = datetime!(2026-12-01 0:00 UTC);
        assert_eq!(txt().check(now), Ok(()));
        let mut t = txt();
        t.contact.clear();
        assert_eq!(t.check(now), Err(SecurityTxtError::NoContact));
        for bad in [
            "http://example.com",
            "mailto:",
            "javascript:alert(1)",
            "mailto:a b",
        ] {
            let mut t = txt();
            t.contact = vec![bad.to_owned()];
            assert!(
                matches!(
                    t.check(now),
                    Err(SecurityTxtError::Invalid {
                        field: "Contact",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let mut t = txt();
        t.policy = Some("http://example.com".to_owned());
        assert!(matches!(
            t.check(now),
            Err(SecurityTxtError::Invalid {
                field: "Policy",
                ..
            })
        ));
        let mut t = txt();
        t.canonical = Some("https://example.com/other.txt".to_owned());
        assert!(matches!(
            t.check(now),
            Err(SecurityTxtError::Invalid {
                field: "Canonical",
                ..
            })
        ));
        let mut t = txt();
        t.preferred_languages = vec!["en\nContact: mailto:evil@example.com".to_owned()];
        assert!(matches!(
            t.check(now),
            Err(SecurityTxtError::Invalid { .. })
        ));
        assert!(matches!(
            txt().check(datetime!(2027-03-01 0:00 UTC)),
            Err(SecurityTxtError::Expired(_))
        ));
        assert!(matches!(
            txt().check(datetime!(2026-02-01 0:00 UTC)),
            Err(SecurityTxtError::TooFarAhead(_))
        ));
        assert!(txt().expires_within(datetime!(2027-02-01 0:00 UTC), time::Duration::days(30)));
        assert!(!txt().expires_within(now, time::Duration::days(30)));
        let unknown =
            r#"{"contact": ["mailto:a@b.c"], "expires": "2027-01-01T00:00:00Z", "hiring": "x"}"#;
        assert!(serde_json::from_str::<SecurityTxt>(unknown).is_err());
    }

    #[test]
    fn an_expired_file_is_not_served() {
        let ok = serve(&txt(), datetime!(2026-12-01 0:00 UTC));
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let expired = serve(&txt(), datetime!(2027-03-02 0:00 UTC));
        assert_eq!(expired.status(), StatusCode::NOT_FOUND);
    }
}
