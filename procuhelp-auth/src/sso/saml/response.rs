//! Checking a SAML Response (HTTP-POST binding) and reading the identity it asserts.
//!
//! Order: size and base64; XML hygiene (no DTD, UTF-8 only, depth, no comments) before
//! libxml2 sees anything; structure (one Response, exactly one Assertion, a direct child;
//! every signature enveloped over one of them); algorithm allow-list; signature
//! verification and reduction to the signed content (samael over xmlsec); then SAML
//! semantics read **only** from the reduced, signed XML. See `docs/saml.md`. The
//! signature layer (placement, algorithms, verification) is in `signature.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use roxmltree::Node;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::SamlError;
use super::service_provider::ServiceProvider;
use super::signature::check_structure;
use super::xml::{self, NS_ASSERTION, NS_PROTOCOL};
use crate::sso::GroupClaim;

/// How long after its IssueInstant an unsolicited (IdP-initiated) assertion is accepted,
/// clock skew included: at IssueInstant + 5 minutes (by our clock) it is refused
/// ([`SamlError::StaleAssertion`](super::SamlError::StaleAssertion)), whatever the
/// connection's `max_clock_skew_secs`.
pub const UNSOLICITED_LIFETIME: time::Duration = time::Duration::minutes(5);

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

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
