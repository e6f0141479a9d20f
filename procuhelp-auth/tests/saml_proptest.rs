//! Property tests: `validate_response` never panics and never accepts on arbitrary
//! input. Bounded case counts keep this fast; no IdP needed (the committed test-only
//! certificate signs nothing).
#![cfg(feature = "saml")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use procuhelp_auth::sso::saml::{Expected, SamlConnection, ServiceProvider};
use proptest::prelude::*;
use time::OffsetDateTime;

fn sp(allow_idp_initiated: bool) -> ServiceProvider {
    let mut conn = SamlConnection::new(
        "https://idp.example.test/",
        "https://idp.example.test/saml2",
        vec![include_str!("data/saml/unit-test-idp.crt").into()],
        "https://sp.example.test/saml",
        "https://sp.example.test/acs",
    );
    conn.dangerous()
        .set_allow_idp_initiated(allow_idp_initiated);
    ServiceProvider::new(conn).unwrap()
}

/// A response with the right shape (so the signature layer is reached) around
/// arbitrary values.
fn shaped(name_id: &str, digest: &str, signature: &str) -> String {
    format!(
        r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp.example.test/</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#a1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>{signature}</ds:SignatureValue></ds:Signature><saml:Subject><saml:NameID>{name_id}</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"##
    )
}

fn xmlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "<[a-zA-Z:]{1,12}( [a-zA-Z:]{1,6}=\"[^\"<&]{0,8}\"){0,2}/?>",
            "</[a-zA-Z:]{1,12}>",
            "[a-z@. ]{0,8}",
            Just("<!--".to_owned()),
            Just("-->".to_owned()),
            Just("<!DOCTYPE x [<!ENTITY e \"e\">]>".to_owned()),
            Just("&e;".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just(
                "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">".to_owned()
            ),
            Just(
                "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\">"
                    .to_owned()
            ),
            Just("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">".to_owned()),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), raw in any::<String>()) {
        let sp = sp(true);
        let now = OffsetDateTime::now_utc();
        prop_assert!(sp.validate_response(&STANDARD.encode(&bytes), Expected::Unsolicited, now).is_err());
        prop_assert!(sp.validate_response(&raw, Expected::InResponseTo("_x"), now).is_err());
    }

    #[test]
    fn xmlish_strings_are_refused_without_panic(xml in xmlish()) {
        let sp = sp(true);
        let now = OffsetDateTime::now_utc();
        prop_assert!(sp.validate_response(&STANDARD.encode(&xml), Expected::Unsolicited, now).is_err());
        prop_assert!(sp.validate_response(&STANDARD.encode(&xml), Expected::InResponseTo("_x"), now).is_err());
    }

    #[test]
    fn well_shaped_forgeries_reach_the_signature_check_and_fail(
        name_id in "[a-zA-Z0-9@.+-]{1,40}",
        digest in "[A-Za-z0-9+/=]{0,60}",
        signature in "[A-Za-z0-9+/=\n]{0,400}",
    ) {
        let sp = sp(false);
        let xml = shaped(&name_id, &digest, &signature);
        let result = sp.validate_response(&STANDARD.encode(&xml), Expected::InResponseTo("_x"), OffsetDateTime::now_utc());
        prop_assert_eq!(result.unwrap_err(), procuhelp_auth::sso::saml::SamlError::InvalidSignature);
    }
}
