//! Property tests for the parsers of untrusted input: presented credentials, emails,
//! recovery codes and TOTP codes never panic, accept only their exact shape, and
//! round-trip what we issue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use procuhelp_auth::directory::Email;
use procuhelp_auth::session::{Credential, SessionToken};
use procuhelp_auth::totp::{Totp, TotpSecret};
use procuhelp_core::OrgId;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn credential_parse_never_panics_and_accepts_only_our_shape(input in "\\PC{0,120}") {
        if let Ok(c) = Credential::parse(&input) {
            // Anything accepted is exactly `<canonical org>.<43 base64url chars>`.
            prop_assert_eq!(c.expose(), input);
        }
    }

    #[test]
    fn issued_credentials_round_trip(_seed in any::<u64>()) {
        let c = Credential::generate(OrgId::new()).unwrap();
        let parsed = Credential::parse(&c.expose()).unwrap();
        prop_assert_eq!(parsed.org, c.org);
        prop_assert_eq!(parsed.token.hash(), c.token.hash());
        prop_assert!(parsed.csrf_matches(&c.csrf_token()));
    }

    #[test]
    fn mutated_credentials_never_match(pos in 0usize..80, byte in any::<u8>()) {
        let c = Credential::generate(OrgId::new()).unwrap();
        let mut bytes = c.expose().into_bytes();
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok(other) = Credential::parse(&text)
        {
            // Either it names another org or token, or it is the same org id spelled with
            // upper-case hex (UUIDs are case-insensitive): the secret part is untouched.
            let same = other.org == c.org && other.token.hash() == c.token.hash();
            prop_assert!(!same || pos < 36 && text.to_lowercase() == c.expose().to_lowercase());
        }
    }

    #[test]
    fn token_parse_never_panics(input in "\\PC{0,100}") {
        if let Ok(t) = SessionToken::parse(&input) {
            prop_assert_eq!(t.expose(), input.as_str());
        }
    }

    #[test]
    fn email_parse_never_panics_and_normalises(input in "\\PC{0,300}") {
        if let Ok(e) = Email::parse(&input) {
            let s = e.as_str();
            prop_assert!(s.len() >= 3 && s.len() <= 254);
            prop_assert_eq!(s.matches('@').count(), 1);
            prop_assert_eq!(s.to_lowercase(), s);
            prop_assert_eq!(Email::parse(s).unwrap(), e.clone());
        }
    }

    #[test]
    fn recovery_and_totp_inputs_never_panic(input in "\\PC{0,200}") {
        let _ = procuhelp_auth::recovery::find_code(&input, &[[0u8; 32]]);
        let totp = Totp::new("ProcuHelp");
        let secret = TotpSecret::generate().unwrap();
        let now = time::OffsetDateTime::now_utc();
        if totp.verify(&secret, &input, now, None).is_ok() {
            prop_assert_eq!(input.len(), 6);
        }
    }

    #[test]
    fn scim_patch_parsers_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = procuhelp_auth::scim::patch::parse_user_patch(&input);
        let _ = procuhelp_auth::scim::patch::parse_group_patch(&input);
    }

    #[test]
    fn scim_patch_parsers_never_panic_on_patch_shaped_json(
        op in "(?i)(add|replace|remove|x)",
        path in proptest::option::of(prop_oneof![
            Just("members".to_owned()),
            Just("members[value eq \"u1\"]".to_owned()),
            Just("active".to_owned()),
            "\\PC{0,40}",
        ]),
        value in prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            "\\PC{0,20}".prop_map(serde_json::Value::String),
            proptest::collection::vec("\\PC{0,8}", 0..4).prop_map(|v| serde_json::json!(v.iter().map(|s| serde_json::json!({"value": s})).collect::<Vec<_>>())),
        ],
    ) {
        let body = serde_json::json!({
            "schemas": [procuhelp_auth::scim::patch::PATCH_OP_SCHEMA],
            "Operations": [{ "op": op, "path": path, "value": value }],
        })
        .to_string();
        let _ = procuhelp_auth::scim::patch::parse_user_patch(body.as_bytes());
        if let Ok(changes) = procuhelp_auth::scim::patch::parse_group_patch(body.as_bytes()) {
            // Nothing parses into "remove every member".
            for c in changes {
                if let procuhelp_auth::scim::patch::GroupChange::RemoveMembers(ids) = c {
                    prop_assert!(!ids.is_empty());
                }
            }
        }
    }
}
