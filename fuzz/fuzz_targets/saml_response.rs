//! Fuzz target `saml_response`: `ServiceProvider::validate_response` (procuhelp-auth
//! feature `saml`), the parser of the `SAMLResponse` form field an IdP — or anyone —
//! posts to the ACS URL.
//!
//! Each input is tried twice, with both `Expected::Unsolicited` and
//! `Expected::InResponseTo`:
//! - as the form field itself, when it is UTF-8 (exercises the base64/size layer);
//! - base64-encoded first, so the bytes reach the XML parser, the structure checks, the
//!   algorithm allow-list, xmlsec signature verification and the assertion checks.
//!
//! The ServiceProvider trusts `unit-test-idp.crt` (committed, private key thrown away)
//! and `fuzz/data/saml-idp.crt` (the certificate of the test IdP key that signed the
//! seed responses in `fuzz/corpus/saml_response/`; the key itself was not kept), so
//! the signed seeds verify completely at the fixed `NOW` below and mutations of them
//! explore every check after the signature too.
//!
//! The only failure is a panic, abort, timeout or out-of-memory; every `Err` is fine.

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use procuhelp_auth::sso::saml::{Expected, SamlConnection, ServiceProvider};
use time::OffsetDateTime;

/// The seeds were issued at 2026-11-25 09:36:2x UTC with NotBefore 09:00 and
/// NotOnOrAfter 2036: this instant is inside that window and within
/// `UNSOLICITED_LIFETIME` (5 min) of their IssueInstant, so they verify.
const NOW: OffsetDateTime = time::macros::datetime!(2026-11-25 09:38:00 UTC);
/// The `--in-response-to` of the SP-initiated seeds.
const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";

fn service_provider() -> &'static ServiceProvider {
    static SP: OnceLock<ServiceProvider> = OnceLock::new();
    SP.get_or_init(|| {
        let mut conn = SamlConnection::new(
            "https://sts.windows.net/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/",
            "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/saml2",
            vec![
                include_str!("../../procuhelp-auth/tests/data/saml/unit-test-idp.crt").to_owned(),
                include_str!("../data/saml-idp.crt").to_owned(),
            ],
            "https://sp.procuhelp.test/saml",
            "https://sp.procuhelp.test/sso/saml/acs",
        );
        // So that `Expected::Unsolicited` gets past the first check.
        conn.dangerous().set_allow_idp_initiated(true);
        conn.mfa_authn_contexts = vec!["http://schemas.microsoft.com/claims/multipleauthn".into()];
        match ServiceProvider::new(conn) {
            Ok(sp) => sp,
            Err(e) => panic!("fuzz harness: the test SamlConnection is refused: {e}"),
        }
    })
}

fn check(sp: &ServiceProvider, field: &str) {
    let _ = sp.validate_response(field, Expected::Unsolicited, NOW);
    let _ = sp.validate_response(field, Expected::InResponseTo(REQUEST_ID), NOW);
}

fuzz_target!(|data: &[u8]| {
    let sp = service_provider();
    if let Ok(field) = std::str::from_utf8(data) {
        check(sp, field);
    }
    check(sp, &STANDARD.encode(data));
});
