//! Checking a SAML Response (HTTP-POST binding) and reading the identity it asserts.
//!
//! Order: size and base64; XML hygiene (no DTD, UTF-8 only, depth, no comments) before
//! libxml2 sees anything; structure (one Response, exactly one Assertion, a direct child;
//! every signature enveloped over one of them); algorithm allow-list; signature
//! verification and reduction to the signed content (samael over xmlsec); then SAML
//! semantics read **only** from the reduced, signed XML. See `docs/saml.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use roxmltree::Node;
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider as _, ReduceMode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::SamlError;
use super::service_provider::ServiceProvider;
use super::xml::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use crate::sso::GroupClaim;

/// How long after its IssueInstant an unsolicited (IdP-initiated) assertion is accepted,
/// clock skew included: at IssueInstant + 5 minutes (by our clock) it is refused
/// ([`SamlError::StaleAssertion`](super::SamlError::StaleAssertion)), whatever the
/// connection's `max_clock_skew_secs`.
pub const UNSOLICITED_LIFETIME: time::Duration = time::Duration::minutes(5);

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

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

/// What the response must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// SP-initiated: our [`AuthnRequest::id`](super::AuthnRequest::id), which the caller
    /// has looked up and consumed (single use) before calling.
    InResponseTo(&'a str),
    /// IdP-initiated: no request of ours. Accepted only with `allow_idp_initiated`, for
    /// [`UNSOLICITED_LIFETIME`] after the assertion's IssueInstant, and without any
    /// InResponseTo.
    Unsolicited,
}

/// The identity of a verified assertion. Every field comes from XML covered by a
/// verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedAssertion {
    /// The assertion's ID. Keep it in the replay cache until `not_on_or_after`.
    pub assertion_id: String,
    /// When the assertion stops being accepted: the earliest of Conditions NotOnOrAfter
    /// and SubjectConfirmationData NotOnOrAfter, each plus the clock skew, and, when
    /// unsolicited, IssueInstant + [`UNSOLICITED_LIFETIME`] (no skew added).
    pub not_on_or_after: OffsetDateTime,
    /// The IdP entity ID (equal to the connection's).
    pub issuer: String,
    /// The Subject's NameID (full text).
    pub name_id: String,
    /// The NameID Format attribute, if any.
    pub name_id_format: Option<String>,
    /// The email attribute (first value), if sent.
    pub email: Option<String>,
    /// The display-name attribute (first value), if sent.
    pub display_name: Option<String>,
    /// The group attribute's values. Empty does not mean "no groups" when
    /// `groups_overage` is set: use [`VerifiedAssertion::group_claim`].
    pub groups: Vec<String>,
    /// The IdP sent its groups-overage attribute instead of the groups (too many to list).
    pub groups_overage: bool,
    /// Every AuthnContextClassRef of the AuthnStatements.
    pub authn_context_class_refs: Vec<String>,
    /// The SessionIndex of the first AuthnStatement, if any (for single logout).
    pub session_index: Option<String>,
    /// Whether an AuthnContextClassRef is one of the connection's `mfa_authn_contexts`.
    pub mfa: bool,
}

impl VerifiedAssertion {
    /// The groups for [`RoleMapping`](crate::sso::RoleMapping): listed, or unknown on
    /// overage (never "no groups" then).
    pub fn group_claim(&self) -> GroupClaim {
        if self.groups_overage {
            GroupClaim::Overage
        } else {
            GroupClaim::Listed(self.groups.clone())
        }
    }
}

impl ServiceProvider {
    /// Checks a `SAMLResponse` form value (base64, HTTP-POST binding) and returns the
    /// identity of its one signed assertion. Every refusal has its own [`SamlError`].
    ///
    /// The caller still has to refuse a replayed assertion: keep
    /// [`VerifiedAssertion::assertion_id`] until [`VerifiedAssertion::not_on_or_after`]
    /// (a database table keyed by it; [`ReplayCache`](super::ReplayCache) in tests).
    pub fn validate_response(
        &self,
        saml_response_b64: &str,
        expected: Expected<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedAssertion, SamlError> {
        match expected {
            Expected::Unsolicited if !self.conn.allows_idp_initiated() => {
                return Err(SamlError::UnsolicitedNotAllowed);
            }
            // An empty expected ID would match an empty InResponseTo: a caller bug, refused.
            Expected::InResponseTo("") => {
                return Err(SamlError::InResponseToMismatch);
            }
            _ => {}
        }
        let xml = decode(saml_response_b64)?;
        let raw = xml::parse(&xml)?;
        let shape = check_structure(&raw)?;
        for signature in &shape.signatures {
            self.check_algorithms(*signature)?;
        }
        let reduced_xml = self.reduce_to_signed(&xml)?;
        let reduced = xml::parse(&reduced_xml).map_err(|_| SamlError::SignedContentMismatch)?;
        let signed_root = reduced.root_element();
        let assertion = if xml::is(signed_root, NS_ASSERTION, "Assertion") {
            signed_root
        } else if xml::is(signed_root, NS_PROTOCOL, "Response") {
            let mut assertions = xml::children(signed_root, NS_ASSERTION, "Assertion");
            match (assertions.next(), assertions.next()) {
                (Some(a), None) => a,
                _ => return Err(SamlError::SignedContentMismatch),
            }
        } else {
            return Err(SamlError::SignedContentMismatch);
        };
        if xml::descendants(signed_root, NS_ASSERTION, "Assertion").count() != 1
            || assertion.attribute("ID") != Some(shape.assertion_id)
        {
            return Err(SamlError::SignedContentMismatch);
        }
        // Response-level fields: from the signed Response when it is signed; otherwise
        // from the unsigned envelope, where they can only make us refuse (the identity
        // and its bindings to us are checked on the signed assertion below).
        let response = if xml::is(signed_root, NS_PROTOCOL, "Response") {
            signed_root
        } else {
            raw.root_element()
        };
        self.check_response(response, expected)?;
        self.read_assertion(assertion, expected, now)
    }

    fn check_algorithms(&self, signature: Node<'_, '_>) -> Result<(), SamlError> {
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
    fn reduce_to_signed(&self, xml: &str) -> Result<String, SamlError> {
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

    fn check_response(
        &self,
        response: Node<'_, '_>,
        expected: Expected<'_>,
    ) -> Result<(), SamlError> {
        if response.attribute("Version") != Some("2.0") {
            return Err(SamlError::Invalid("Response Version"));
        }
        let status = xml::child(response, NS_PROTOCOL, "Status")
            .and_then(|s| xml::child(s, NS_PROTOCOL, "StatusCode"))
            .ok_or(SamlError::Missing("StatusCode"))?;
        if status.attribute("Value") != Some(STATUS_SUCCESS) {
            return Err(SamlError::StatusNotSuccess);
        }
        if let Some(destination) = response.attribute("Destination")
            && destination != self.conn.acs_url
        {
            return Err(SamlError::DestinationMismatch);
        }
        check_in_response_to(response.attribute("InResponseTo"), expected, false)?;
        if let Some(issuer) = xml::child(response, NS_ASSERTION, "Issuer") {
            self.check_issuer(issuer)?;
        }
        Ok(())
    }

    fn check_issuer(&self, issuer: Node<'_, '_>) -> Result<(), SamlError> {
        if issuer
            .attribute("Format")
            .is_some_and(|f| f != ENTITY_FORMAT)
        {
            return Err(SamlError::IssuerMismatch);
        }
        if xml::text(issuer, "Issuer")?.trim() != self.conn.idp_entity_id {
            return Err(SamlError::IssuerMismatch);
        }
        Ok(())
    }

    fn read_assertion(
        &self,
        assertion: Node<'_, '_>,
        expected: Expected<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedAssertion, SamlError> {
        let skew = self.skew;
        if assertion.attribute("Version") != Some("2.0") {
            return Err(SamlError::Invalid("Assertion Version"));
        }
        let assertion_id = assertion
            .attribute("ID")
            .ok_or(SamlError::Missing("Assertion ID"))?
            .to_owned();
        let issue_instant = instant(assertion.attribute("IssueInstant"), "IssueInstant")?;
        if issue_instant > now + skew {
            return Err(SamlError::NotYetValid);
        }
        let mut not_on_or_after: Option<OffsetDateTime> = None;
        let mut earliest_end = |t: OffsetDateTime| {
            not_on_or_after = Some(not_on_or_after.map_or(t, |n| n.min(t)));
        };
        if expected == Expected::Unsolicited {
            // Exactly UNSOLICITED_LIFETIME by our clock, the skew *not* added on top (it
            // was: 5 minutes became up to 10). The skew still lets an IssueInstant
            // slightly in our future pass above; its age counts from that instant.
            let end = issue_instant + UNSOLICITED_LIFETIME;
            if now >= end {
                return Err(SamlError::StaleAssertion);
            }
            // `not_on_or_after` below adds the skew to the earliest end: take it off here
            // so that the replay deadline reported is this end exactly.
            earliest_end(end - skew);
        }

        let issuer =
            xml::child(assertion, NS_ASSERTION, "Issuer").ok_or(SamlError::Missing("Issuer"))?;
        self.check_issuer(issuer)?;

        // Conditions: validity window and audience.
        let conditions = xml::child(assertion, NS_ASSERTION, "Conditions")
            .ok_or(SamlError::Missing("Conditions"))?;
        if let Some(nb) = conditions.attribute("NotBefore")
            && instant(Some(nb), "NotBefore")? > now + skew
        {
            return Err(SamlError::NotYetValid);
        }
        if let Some(noa) = conditions.attribute("NotOnOrAfter") {
            let end = instant(Some(noa), "NotOnOrAfter")?;
            if now - skew >= end {
                return Err(SamlError::Expired);
            }
            earliest_end(end);
        }
        let mut restrictions =
            xml::children(conditions, NS_ASSERTION, "AudienceRestriction").peekable();
        if restrictions.peek().is_none() {
            return Err(SamlError::Missing("AudienceRestriction"));
        }
        for restriction in restrictions {
            // Each restriction must be satisfied on its own (core spec, 2.5.1.4).
            let mut ours = false;
            for audience in xml::children(restriction, NS_ASSERTION, "Audience") {
                ours |= xml::text(audience, "Audience")?.trim() == self.conn.sp_entity_id;
            }
            if !ours {
                return Err(SamlError::AudienceMismatch);
            }
        }

        // Subject: NameID and bearer confirmation bound to our ACS and request.
        let subject =
            xml::child(assertion, NS_ASSERTION, "Subject").ok_or(SamlError::Missing("Subject"))?;
        let name_id_node =
            xml::child(subject, NS_ASSERTION, "NameID").ok_or(SamlError::Missing("NameID"))?;
        let name_id = xml::text(name_id_node, "NameID")?;
        if name_id.trim().is_empty() || name_id.len() > 1024 {
            return Err(SamlError::Invalid("NameID"));
        }
        let name_id_format = name_id_node.attribute("Format").map(str::to_owned);
        let mut bearer = 0;
        for confirmation in xml::children(subject, NS_ASSERTION, "SubjectConfirmation") {
            if confirmation.attribute("Method") != Some(BEARER) {
                continue;
            }
            bearer += 1;
            let data = xml::child(confirmation, NS_ASSERTION, "SubjectConfirmationData")
                .ok_or(SamlError::Missing("SubjectConfirmationData"))?;
            if data.attribute("Recipient") != Some(self.conn.acs_url.as_str()) {
                return Err(SamlError::RecipientMismatch);
            }
            check_in_response_to(data.attribute("InResponseTo"), expected, true)?;
            if let Some(nb) = data.attribute("NotBefore")
                && instant(Some(nb), "NotBefore")? > now + skew
            {
                return Err(SamlError::NotYetValid);
            }
            let end = instant(
                data.attribute("NotOnOrAfter"),
                "SubjectConfirmationData NotOnOrAfter",
            )?;
            if now - skew >= end {
                return Err(SamlError::Expired);
            }
            earliest_end(end);
        }
        if bearer == 0 {
            return Err(SamlError::Missing("bearer SubjectConfirmation"));
        }

        // Authentication statement: context classes (MFA) and session index.
        let mut statements = xml::children(assertion, NS_ASSERTION, "AuthnStatement").peekable();
        if statements.peek().is_none() {
            return Err(SamlError::Missing("AuthnStatement"));
        }
        let mut session_index = None;
        let mut authn_context_class_refs = Vec::new();
        for statement in statements {
            if session_index.is_none() {
                session_index = statement.attribute("SessionIndex").map(str::to_owned);
            }
            if let Some(end) = statement.attribute("SessionNotOnOrAfter")
                && now - skew >= instant(Some(end), "SessionNotOnOrAfter")?
            {
                return Err(SamlError::Expired);
            }
            if let Some(context) = xml::child(statement, NS_ASSERTION, "AuthnContext") {
                for class_ref in xml::children(context, NS_ASSERTION, "AuthnContextClassRef") {
                    authn_context_class_refs.push(
                        xml::text(class_ref, "AuthnContextClassRef")?
                            .trim()
                            .to_owned(),
                    );
                }
            }
        }
        let mfa = authn_context_class_refs
            .iter()
            .any(|c| self.conn.mfa_authn_contexts.iter().any(|m| m == c));

        // Attributes we map.
        let names = &self.conn.attributes;
        let mut email = None;
        let mut display_name = None;
        let mut groups = Vec::new();
        let mut groups_overage = false;
        for statement in xml::children(assertion, NS_ASSERTION, "AttributeStatement") {
            for attribute in xml::children(statement, NS_ASSERTION, "Attribute") {
                let Some(name) = attribute.attribute("Name") else {
                    continue;
                };
                if name == names.groups_overage {
                    groups_overage = true;
                    continue;
                }
                let slot = if name == names.email {
                    Slot::Email
                } else if name == names.display_name {
                    Slot::DisplayName
                } else if name == names.groups {
                    Slot::Groups
                } else {
                    continue;
                };
                for value in xml::children(attribute, NS_ASSERTION, "AttributeValue") {
                    let v = xml::text(value, "AttributeValue")?.trim().to_owned();
                    match slot {
                        Slot::Email => {
                            email.get_or_insert(v);
                        }
                        Slot::DisplayName => {
                            display_name.get_or_insert(v);
                        }
                        Slot::Groups => groups.push(v),
                    }
                }
            }
        }

        let not_on_or_after = not_on_or_after.ok_or(SamlError::Missing("NotOnOrAfter"))? + skew;
        Ok(VerifiedAssertion {
            assertion_id,
            not_on_or_after,
            issuer: self.conn.idp_entity_id.clone(),
            name_id,
            name_id_format,
            email,
            display_name,
            groups,
            groups_overage,
            authn_context_class_refs,
            session_index,
            mfa,
        })
    }
}

enum Slot {
    Email,
    DisplayName,
    Groups,
}

/// The pieces of the unverified document the later steps rely on.
struct Shape<'a, 'i> {
    assertion_id: &'a str,
    signatures: Vec<Node<'a, 'i>>,
}

/// One Response, exactly one Assertion anywhere (a second one, wherever hidden, is how
/// signature wrapping works), that Assertion a direct child, and every Signature an
/// enveloped signature (direct child, one Reference to its parent's ID) of the Response or
/// of the Assertion.
fn check_structure<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Result<Shape<'a, 'i>, SamlError> {
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

/// InResponseTo against what we expect. `required`: on SubjectConfirmationData of an
/// SP-initiated response it must be present; on the Response it may be absent.
fn check_in_response_to(
    value: Option<&str>,
    expected: Expected<'_>,
    required: bool,
) -> Result<(), SamlError> {
    match (expected, value) {
        (Expected::InResponseTo(id), Some(v)) if v == id => Ok(()),
        (Expected::InResponseTo(_), None) if !required => Ok(()),
        (Expected::Unsolicited, None) => Ok(()),
        _ => Err(SamlError::InResponseToMismatch),
    }
}

fn instant(value: Option<&str>, what: &'static str) -> Result<OffsetDateTime, SamlError> {
    let value = value.ok_or(SamlError::Missing(what))?;
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| SamlError::Invalid(what))
}

/// The form value to XML text, with the size limits on both sides. Line breaks and
/// spaces (some IdPs wrap base64 at 76 columns) are dropped before decoding.
fn decode(b64: &str) -> Result<String, SamlError> {
    if b64.len() > xml::MAX_BASE64_BYTES {
        return Err(SamlError::TooLarge);
    }
    let compact: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| SamlError::InvalidBase64)?;
    if bytes.len() > xml::MAX_XML_BYTES {
        return Err(SamlError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| SamlError::MalformedXml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::saml::SamlConnection;

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
