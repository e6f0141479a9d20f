//! Fuzz target `oidc_id_token`: parsing and verification of an OpenID Connect ID token
//! (a compact JWS from the browser's redirect or the token endpoint) by the module's own
//! code: `procuhelp_auth::sso::oidc::verify_id_token_with_keys`, the network-free entry
//! to the checks `OidcClient::verify_id_token` runs (size limit, `tid` peek, signature
//! with the algorithm allow-list, issuer, tenant, audience, times, nonce, claim reads).
//!
//! The JWKS is the committed test OP key (`scripts/oidc-provider/keys/
//! test-signing-key.public.jwk.json`), so the seeds made with `forge.mjs --mode=real`
//! (`fuzz/corpus/oidc_id_token/`) verify completely at the fixed `NOW`.
//!
//! The only failure is a panic, abort, timeout or out-of-memory; every `Err` is fine.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use procuhelp_auth::sso::oidc::{OidcConnection, verify_id_token_with_keys};

const NOW: i64 = 1_795_600_800;
const NONCE: &str = "fuzz-nonce-0123456789";

/// The connection the seeds were made for (Entra-shaped test provider, multi-tenant
/// issuer template, an MFA `acr`).
fn connection() -> &'static OidcConnection {
    static CONN: OnceLock<OidcConnection> = OnceLock::new();
    CONN.get_or_init(|| {
        let json = serde_json::json!({
            "discovery_url": "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/v2.0/.well-known/openid-configuration",
            "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
            "client_id": "13f0eaea-7284-4cae-8822-bcd14389d2fc",
            "tenant_ids": ["f7393f3e-c33d-4dfe-b4a8-f473310e7bf5"],
            "redirect_uri": "https://procuhelp.example/sso/oidc/callback",
            "mfa_acr_values": ["http://schemas.microsoft.com/claims/multipleauthn"],
        });
        match serde_json::from_value(json) {
            Ok(conn) => conn,
            Err(e) => panic!("fuzz harness: the test connection does not parse: {e}"),
        }
    })
}

/// The committed test provider's public key as a JWKS document.
fn jwks() -> &'static [u8] {
    static JWKS: OnceLock<Vec<u8>> = OnceLock::new();
    JWKS.get_or_init(|| {
        let key = include_str!("../../scripts/oidc-provider/keys/test-signing-key.public.jwk.json");
        format!(r#"{{"keys":[{key}]}}"#).into_bytes()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        let now = match time::OffsetDateTime::from_unix_timestamp(NOW) {
            Ok(now) => now,
            Err(e) => panic!("fuzz harness: bad NOW: {e}"),
        };
        let _ = verify_id_token_with_keys(connection(), jwks(), raw, NONCE, now);
    }
});
