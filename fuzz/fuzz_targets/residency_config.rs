//! Fuzz target `residency_config`: the deployment's residency configuration
//! (`procuhelp_tenancy::residency::Residency`, read from `--residency FILE`), and the
//! invitation tokens presented to `POST /api/invitations/accept`
//! (`procuhelp_auth::session::Credential::parse`).
//!
//! Whatever the bytes, parsing returns a value or an error; a configuration that parses
//! yields findings for every combination of organisation regions and renders its
//! subprocessor list, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use procuhelp_tenancy::residency::{Region, Residency};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = procuhelp_auth::session::Credential::parse(text);
    }
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
