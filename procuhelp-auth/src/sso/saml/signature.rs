//! The signature layer of a SAML Response: where signatures may be (enveloped over the
//! Response or its one Assertion, nothing wrapped), which algorithms they may use (an
//! allow-list checked before xmlsec runs; SHA-1 only through
//! [`SamlConnection::dangerous`](super::SamlConnection::dangerous)), and the verification
//! that reduces the document to what the signatures cover (samael over xmlsec).

use std::panic::{AssertUnwindSafe, catch_unwind};

use roxmltree::Node;
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider as _, ReduceMode};

use super::error::SamlError;
use super::service_provider::ServiceProvider;
use super::xml::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};

const SHA1_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SIGNATURE_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const DIGEST_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// Canonicalisation without comments only (with comments is not needed: we refuse
/// comments), and the enveloped-signature transform.
const C14N_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// What samael enforces again at the xmlsec level when SHA-1 is off.
const SAMAEL_ALLOWED: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

impl ServiceProvider {
    pub(super) fn check_algorithms(&self, signature: Node<'_, '_>) -> Result<(), SamlError> {
        let signed_info =
            xml::child(signature, NS_DSIG, "SignedInfo").ok_or(SamlError::Missing("SignedInfo"))?;
        // Exactly one of each element we read: the algorithm we check must be the one
        // xmlsec uses, so no "first of two" ambiguity is left to either side.
        let only =
            |parent: Node<'_, '_>, name: &'static str| -> Result<Option<String>, SamlError> {
                let mut found = xml::children(parent, NS_DSIG, name);
                match (found.next(), found.next()) {
                    (None, _) => Ok(None),
                    (Some(n), None) => n
                        .attribute("Algorithm")
                        .map(|a| Some(a.to_owned()))
                        .ok_or(SamlError::Missing("Algorithm")),
                    (Some(_), Some(_)) => Err(SamlError::Invalid("SignedInfo")),
                }
            };
        let c14n = only(signed_info, "CanonicalizationMethod")?
            .ok_or(SamlError::Missing("CanonicalizationMethod"))?;
        if !C14N_ALGORITHMS.contains(&c14n.as_str()) {
            return Err(SamlError::DisallowedAlgorithm);
        }
        let method =
            only(signed_info, "SignatureMethod")?.ok_or(SamlError::Missing("SignatureMethod"))?;
        self.allowed(&method, SIGNATURE_ALGORITHMS, SHA1_SIGNATURE)?;
        // check_structure made sure there is exactly one Reference.
        for reference in xml::children(signed_info, NS_DSIG, "Reference") {
            let digest =
                only(reference, "DigestMethod")?.ok_or(SamlError::Missing("DigestMethod"))?;
            self.allowed(&digest, DIGEST_ALGORITHMS, SHA1_DIGEST)?;
            let mut transforms = xml::children(reference, NS_DSIG, "Transforms");
            if let (Some(transforms), None) = (transforms.next(), transforms.next()) {
                for transform in xml::children(transforms, NS_DSIG, "Transform") {
                    let t = transform
                        .attribute("Algorithm")
                        .ok_or(SamlError::Missing("Algorithm"))?;
                    if t != ENVELOPED && !C14N_ALGORITHMS.contains(&t) {
                        return Err(SamlError::DisallowedAlgorithm);
                    }
                }
            } else if xml::child(reference, NS_DSIG, "Transforms").is_some() {
                return Err(SamlError::Invalid("SignedInfo"));
            }
        }
        Ok(())
    }

    fn allowed(&self, uri: &str, list: &[&str], sha1: &str) -> Result<(), SamlError> {
        if list.contains(&uri) {
            Ok(())
        } else if uri == sha1 {
            if self.conn.allows_sha1() {
                Ok(())
            } else {
                Err(SamlError::Sha1NotAllowed)
            }
        } else {
            Err(SamlError::DisallowedAlgorithm)
        }
    }

    /// Verifies every signature against the configured certificates (any one may have
    /// signed) and returns the document reduced to what the signatures cover.
    pub(super) fn reduce_to_signed(&self, xml: &str) -> Result<String, SamlError> {
        let allowed = if self.conn.allows_sha1() {
            None
        } else {
            Some(SAMAEL_ALLOWED)
        };
        // The XML security layer is C behind a wrapper that may panic on states we do not
        // expect; a panic must not take the worker down with attacker-chosen input.
        let result = catch_unwind(AssertUnwindSafe(|| {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                &self.certificates,
                ReduceMode::ValidateAndMarkNoAncestors,
                allowed,
            )
            .map_err(|e| {
                // The cause stays in tracing; the caller gets one answer (no oracle).
                tracing::debug!(error = %e, "SAML signature verification failed");
            })
        }));
        match result {
            Ok(Ok(reduced)) => Ok(reduced),
            Ok(Err(())) => Err(SamlError::InvalidSignature),
            Err(_) => Err(SamlError::Internal),
        }
    }
}

/// The pieces of the unverified document the later steps rely on.
pub(super) struct Shape<'a, 'i> {
    pub(super) assertion_id: &'a str,
    pub(super) signatures: Vec<Node<'a, 'i>>,
}

/// One Response, exactly one Assertion anywhere (a second one, wherever hidden, is how
/// signature wrapping works), that Assertion a direct child, and every Signature an
/// enveloped signature (direct child, one Reference to its parent's ID) of the Response or
/// of the Assertion.
pub(super) fn check_structure<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
) -> Result<Shape<'a, 'i>, SamlError> {
    let root = doc.root_element();
    if !xml::is(root, NS_PROTOCOL, "Response") {
        return Err(SamlError::NotAResponse);
    }
    if xml::descendants(root, NS_ASSERTION, "EncryptedAssertion")
        .next()
        .is_some()
    {
        return Err(SamlError::EncryptedAssertionUnsupported);
    }
    let mut assertions = xml::descendants(root, NS_ASSERTION, "Assertion");
    let assertion = match (assertions.next(), assertions.next()) {
        (None, _) => return Err(SamlError::NoAssertion),
        (Some(a), None) => a,
        (Some(_), Some(_)) => return Err(SamlError::MultipleAssertions),
    };
    if assertion.parent() != Some(root) {
        return Err(SamlError::MisplacedAssertion);
    }
    let assertion_id = assertion
        .attribute("ID")
        .ok_or(SamlError::Missing("Assertion ID"))?;
    let signatures: Vec<_> = xml::descendants(root, NS_DSIG, "Signature").collect();
    if signatures.is_empty() {
        return Err(SamlError::Unsigned);
    }
    let mut signed_response = false;
    let mut signed_assertion = false;
    for signature in &signatures {
        let parent = signature.parent().ok_or(SamlError::SignatureLocation)?;
        let seen = if parent == root {
            &mut signed_response
        } else if parent == assertion {
            &mut signed_assertion
        } else {
            return Err(SamlError::SignatureLocation);
        };
        if std::mem::replace(seen, true) {
            return Err(SamlError::SignatureLocation);
        }
        let signed_info = xml::child(*signature, NS_DSIG, "SignedInfo")
            .ok_or(SamlError::Missing("SignedInfo"))?;
        let mut references = xml::children(signed_info, NS_DSIG, "Reference");
        let (Some(reference), None) = (references.next(), references.next()) else {
            return Err(SamlError::SignatureLocation);
        };
        let target = reference.attribute("URI").and_then(|u| u.strip_prefix('#'));
        let parent_id = parent.attribute("ID");
        if target.is_none() || target != parent_id {
            return Err(SamlError::SignatureLocation);
        }
    }
    Ok(Shape {
        assertion_id,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use time::OffsetDateTime;

    use super::*;
    use crate::sso::saml::{Expected, SamlConnection};

    fn sp() -> ServiceProvider {
        ServiceProvider::new(SamlConnection::new(
            "https://idp.example.test/",
            "https://idp.example.test/saml2",
            vec![include_str!("../../../tests/data/saml/unit-test-idp.crt").into()],
            "https://sp.example.test/saml",
            "https://sp.example.test/acs",
        ))
        .unwrap()
    }

    /// A response whose assertion carries a signature with the given pieces.
    fn doc(signature_method: &str, transform: &str, digest: &str, uri: &str) -> String {
        format!(
            r##"<samlp:Response xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="r1" Version="2.0"><saml:Assertion ID="a1" Version="2.0"><ds:Signature xmlns:ds="{NS_DSIG}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{signature_method}"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="{transform}"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature></saml:Assertion></samlp:Response>"##
        )
    }

    fn validate(xml: &str) -> SamlError {
        sp().validate_response(
            &STANDARD.encode(xml),
            Expected::InResponseTo("_x"),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err()
    }

    const RSA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

    #[test]
    fn algorithms_outside_the_list_are_refused_before_verification() {
        for (method, transform, digest, want) in [
            (
                "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
                ENVELOPED,
                SHA256,
                SamlError::DisallowedAlgorithm,
            ),
            (
                "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
                ENVELOPED,
                SHA256,
                SamlError::DisallowedAlgorithm,
            ),
            (
                RSA256,
                "http://www.w3.org/TR/1999/REC-xslt-19991116",
                SHA256,
                SamlError::DisallowedAlgorithm,
            ),
            (
                RSA256,
                "http://www.w3.org/TR/1999/REC-xpath-19991116",
                SHA256,
                SamlError::DisallowedAlgorithm,
            ),
            (
                RSA256,
                "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
                SHA256,
                SamlError::DisallowedAlgorithm,
            ),
            (
                RSA256,
                ENVELOPED,
                "http://www.w3.org/2001/04/xmldsig-more#md5",
                SamlError::DisallowedAlgorithm,
            ),
            (SHA1_SIGNATURE, ENVELOPED, SHA256, SamlError::Sha1NotAllowed),
            (RSA256, ENVELOPED, SHA1_DIGEST, SamlError::Sha1NotAllowed),
            // Allowed algorithms reach the signature check, which fails.
            (RSA256, ENVELOPED, SHA256, SamlError::InvalidSignature),
        ] {
            assert_eq!(
                validate(&doc(method, transform, digest, "#a1")),
                want,
                "{method} {transform} {digest}"
            );
        }
    }

    #[test]
    fn a_second_algorithm_element_is_refused() {
        let two_methods = doc(RSA256, ENVELOPED, SHA256, "#a1").replace(
            "<ds:Reference ",
            r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/><ds:Reference "#,
        );
        assert_eq!(validate(&two_methods), SamlError::Invalid("SignedInfo"));
        let two_digests = doc(RSA256, ENVELOPED, SHA256, "#a1").replace(
            "<ds:DigestValue>",
            r#"<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><ds:DigestValue>"#,
        );
        assert_eq!(validate(&two_digests), SamlError::Invalid("SignedInfo"));
    }

    #[test]
    fn references_must_point_at_the_signature_parent() {
        for uri in ["", "#r1", "#other", "a1"] {
            assert_eq!(
                validate(&doc(RSA256, ENVELOPED, SHA256, uri)),
                SamlError::SignatureLocation,
                "{uri:?}"
            );
        }
    }

    #[test]
    fn structure_errors() {
        let not_response = format!(r#"<saml:Assertion xmlns:saml="{NS_ASSERTION}" ID="a1"/>"#);
        assert_eq!(validate(&not_response), SamlError::NotAResponse);
        let no_assertion = format!(r#"<samlp:Response xmlns:samlp="{NS_PROTOCOL}" ID="r1"/>"#);
        assert_eq!(validate(&no_assertion), SamlError::NoAssertion);
        let unsigned = format!(
            r#"<samlp:Response xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="r1"><saml:Assertion ID="a1"/></samlp:Response>"#
        );
        assert_eq!(validate(&unsigned), SamlError::Unsigned);
        let no_id = unsigned.replace(" ID=\"a1\"", "");
        assert_eq!(validate(&no_id), SamlError::Missing("Assertion ID"));
    }
}
