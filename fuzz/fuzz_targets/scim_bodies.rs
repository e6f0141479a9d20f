//! Fuzz target `scim_bodies`: the parsers of SCIM 2.0 requests (`procuhelp_auth::scim`,
//! including `procuhelp_auth::scim::patch`), which take the bodies and query parameters an
//! identity provider (or anyone holding a SCIM token) sends.
//!
//! The first byte chooses the parser, the rest is its input:
//!
//! | byte % 9 | parser |
//! |---|---|
//! | 0 | `scim::patch::parse_user_patch` (PATCH /Users/{id} body) |
//! | 1 | `scim::patch::parse_group_patch` (PATCH /Groups/{id} body) |
//! | 2 | `scim::model::parse_user` (POST/PUT /Users body) |
//! | 3 | `scim::model::parse_group` (POST/PUT /Groups body) |
//! | 4 | `scim::model::parse_search` (POST /.search body) |
//! | 5 | `scim::filter::parse_filter` for Users (`filter=` query parameter) |
//! | 6 | `scim::filter::parse_filter` for Groups |
//! | 7 | `scim::model::Page::parse` (`startIndex`, `count`; split at the first NUL) |
//! | 8 | `scim::model::Projection::parse` + `apply` (`attributes`, `excludedAttributes`) |
//!
//! The seeds in `fuzz/corpus/scim_bodies/` carry the selector byte. The only failure is a
//! panic, abort, timeout or out-of-memory; every `Err` is fine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{
    Page, Projection, ResourceKind, parse_group, parse_search, parse_user,
};
use procuhelp_auth::scim::patch::{parse_group_patch, parse_user_patch};

/// The string input split in two at the first NUL (the second part `None` if there is none).
fn two_params(s: &str) -> (Option<&str>, Option<&str>) {
    match s.split_once('\0') {
        Some((a, b)) => (Some(a), Some(b)),
        None => (Some(s), None),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 9 {
        0 => {
            let _ = parse_user_patch(body);
        }
        1 => {
            let _ = parse_group_patch(body);
        }
        2 => {
            let _ = parse_user(body);
        }
        3 => {
            let _ = parse_group(body);
        }
        4 => {
            let _ = parse_search(body);
        }
        5 | 6 => {
            let kind = if selector % 9 == 5 {
                ResourceKind::User
            } else {
                ResourceKind::Group
            };
            if let Ok(raw) = std::str::from_utf8(body) {
                let _ = parse_filter(raw, kind);
            }
        }
        7 => {
            if let Ok(raw) = std::str::from_utf8(body) {
                let (start, count) = two_params(raw);
                if let Ok(page) = Page::parse(start, count) {
                    let _ = page.offset();
                }
            }
        }
        _ => {
            if let Ok(raw) = std::str::from_utf8(body) {
                let (attributes, excluded) = two_params(raw);
                for kind in [ResourceKind::User, ResourceKind::Group] {
                    if let Ok(p) = Projection::parse(kind, attributes, excluded) {
                        let resource = serde_json::json!({
                            "schemas": [kind.schema()],
                            "id": "2819c223-7f76-453a-919d-413861904646",
                            "userName": "a@b.c",
                            "displayName": "A",
                            "emails": [{"value": "a@b.c", "primary": true}],
                            "members": [],
                            "meta": {"resourceType": kind.name()},
                        });
                        let _ = p.apply(resource);
                        let _ = p.returns("username");
                    }
                }
            }
        }
    }
});
