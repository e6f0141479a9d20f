//! Fuzz target `residency_config`: the deployment's residency configuration
//! (`procuhelp_tenancy::residency::Residency`, read from `--residency FILE`), and the
//! invitation tokens presented to `POST /api/invitations/accept`
//! (`procuhelp_auth::session::Credential::parse`), the operators configuration
//! (`procuhelp_auth::operator::Operators`, `serve --operators FILE`) and the
//! `Authorization` header of the operator API.
//!
//! Whatever the bytes, parsing returns a value or an error; a configuration that parses
//! yields findings for every combination of organisation regions and renders its
//! subprocessor list, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use procuhelp_auth::operator::{Operators, ReplayGuard};
use procuhelp_tenancy::residency::{Region, Residency};

/// One operator (the key of RFC 8032's test 1): what a header is checked against.
const OPERATORS: &str = r#"{"operators": [{"name": "alice",
    "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}]}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = procuhelp_auth::session::Credential::parse(text);
        if let Ok(operators) = Operators::from_json(OPERATORS.as_bytes()) {
            let replay = ReplayGuard::default();
            // Arbitrary headers are refused (no key here signs them), never a panic.
            let verified = operators.verify(&replay, text, "POST", "/operator/organisations", data, 0);
            assert!(verified.is_err());
        }
    }
    let _ = Operators::from_json(data);
    let Ok(residency) = serde_json::from_slice::<Residency>(data) else {
        return;
    };
    for database in Region::ALL {
        let _ = residency.findings(database, &Region::ALL);
        let _ = residency.findings(database, &[]);
    }
    let markdown = residency.subprocessors_markdown();
    // Every subprocessor is one table row: a name cannot add rows or break out of its cell.
    let rows = markdown.lines().filter(|l| l.starts_with("| ")).count();
    assert!(rows <= 2 + 3 + 2 + residency.subprocessors.len());
});
