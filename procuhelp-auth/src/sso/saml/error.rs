//! Why a SAML step did not happen.

/// Why a [`SamlConnection`](super::SamlConnection) is refused.
///
/// These are configuration mistakes of an organisation administrator, kept apart from
/// [`SamlError`]'s response failures, which an attacker can cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No IdP certificate is configured. This never means "skip verification".
    #[error("no IdP signing certificate configured")]
    NoCertificate,
    /// A configured certificate is not a PEM X.509 certificate with an acceptable key
    /// (RSA of at least 2048 bits, or EC).
    #[error("IdP certificate #{index} is not a usable PEM X.509 certificate")]
    BadCertificate {
        /// Position in `idp_certificates`, from 0.
        index: usize,
    },
    /// A URL does not parse or is not absolute.
    #[error("{field} is not an absolute URL")]
    BadUrl {
        /// The offending field.
        field: &'static str,
    },
    /// A URL is not https (http is accepted only for 127.0.0.1, ::1 and localhost).
    #[error("{field} must use https")]
    InsecureUrl {
        /// The offending field.
        field: &'static str,
    },
    /// An entity ID or attribute name is empty or longer than 1024 bytes.
    #[error("{field} must be between 1 and 1024 bytes")]
    BadIdentifier {
        /// The offending field.
        field: &'static str,
    },
    /// `max_clock_skew_secs` is above the bound.
    #[error("max_clock_skew_secs must be at most {max}")]
    ClockSkewTooLarge {
        /// The bound, in seconds.
        max: u32,
    },
}

/// Why a SAML request could not be made or a SAML response was refused.
///
/// Every variant is a fixed message without any value taken from the response (no
/// NameID, no certificate, no XML), so it can be logged as it is. Callers show users one
/// opaque "sign-in failed" and send the variant to tracing and the audit log. The error is
/// `Send + Sync` (nothing of libxml2 or xmlsec crosses this boundary).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// The connection configuration is refused.
    #[error("invalid SAML connection: {0}")]
    Connection(#[from] ConnectionError),
    /// RelayState longer than the 80 bytes SAML bindings allow.
    #[error("RelayState longer than 80 bytes")]
    RelayStateTooLong,

    // ---- decoding and XML hygiene -----------------------------------------------------
    /// The base64 input or the decoded XML exceeds the size limit.
    #[error("SAML response too large")]
    TooLarge,
    /// The SAMLResponse value is not base64.
    #[error("SAML response is not valid base64")]
    InvalidBase64,
    /// The XML has a document type declaration or entity declaration (XXE, billion laughs).
    #[error("SAML response contains a DTD or entity declaration")]
    DtdForbidden,
    /// The XML is not well-formed UTF-8 XML (or declares another encoding).
    #[error("SAML response is not well-formed XML")]
    MalformedXml,
    /// Elements nest deeper than the limit.
    #[error("SAML response nests too deeply")]
    TooDeep,
    /// The XML contains a comment or processing instruction. Signatures use
    /// canonicalisation without comments, so a comment could be inserted into a signed
    /// value (`alice@example.com<!---->.evil.com`) without breaking the signature; we
    /// refuse such documents outright.
    #[error("SAML response contains a comment or processing instruction")]
    CommentOrInstruction,

    // ---- structure and signature ------------------------------------------------------
    /// The document element is not a SAML protocol `Response`.
    #[error("not a SAML Response")]
    NotAResponse,
    /// The response carries an `EncryptedAssertion` (not supported).
    #[error("encrypted assertions are not supported")]
    EncryptedAssertionUnsupported,
    /// The response has no assertion.
    #[error("SAML response has no assertion")]
    NoAssertion,
    /// The response has more than one assertion anywhere in the document (signature
    /// wrapping).
    #[error("SAML response has more than one assertion")]
    MultipleAssertions,
    /// The assertion is not a direct child of the response.
    #[error("assertion is not a direct child of the response")]
    MisplacedAssertion,
    /// No signature at all.
    #[error("SAML response is not signed")]
    Unsigned,
    /// A signature is not an enveloped signature over the Response or its Assertion (wrong
    /// place, several references, reference to another element).
    #[error("signature is not an enveloped signature over the response or its assertion")]
    SignatureLocation,
    /// A signature, digest, canonicalisation or transform algorithm is not allowed.
    #[error("signature algorithm not allowed")]
    DisallowedAlgorithm,
    /// SHA-1 used while the connection does not allow it.
    #[error("SHA-1 signature or digest not allowed for this connection")]
    Sha1NotAllowed,
    /// A signature does not verify against any configured IdP certificate.
    #[error("invalid signature")]
    InvalidSignature,
    /// What the verified signatures cover is not exactly the response's one assertion.
    #[error("signed content is not the response's assertion")]
    SignedContentMismatch,

    // ---- SAML semantics ---------------------------------------------------------------
    /// The response status is not Success.
    #[error("SAML status is not Success")]
    StatusNotSuccess,
    /// Response or assertion Issuer is not the configured IdP entity ID.
    #[error("issuer mismatch")]
    IssuerMismatch,
    /// Our SP entity ID is not in every AudienceRestriction.
    #[error("audience mismatch")]
    AudienceMismatch,
    /// SubjectConfirmationData Recipient is not our ACS URL.
    #[error("recipient mismatch")]
    RecipientMismatch,
    /// Response Destination is present and not our ACS URL.
    #[error("destination mismatch")]
    DestinationMismatch,
    /// InResponseTo differs from the request we sent (or is present on an unsolicited
    /// response).
    #[error("InResponseTo mismatch")]
    InResponseToMismatch,
    /// An IdP-initiated (unsolicited) response while the connection does not allow them.
    #[error("IdP-initiated sign-in not allowed for this connection")]
    UnsolicitedNotAllowed,
    /// A validity window has ended (beyond the allowed clock skew).
    #[error("assertion expired")]
    Expired,
    /// A validity window has not started yet (beyond the allowed clock skew).
    #[error("assertion not yet valid")]
    NotYetValid,
    /// An unsolicited assertion was issued too long ago.
    #[error("unsolicited assertion too old")]
    StaleAssertion,
    /// A required element or attribute is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An element or attribute has an unusable value.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The assertion ID was already used ([`ReplayCache`](super::ReplayCache)).
    #[error("assertion replayed")]
    Replayed,

    /// A system resource (RNG) failed, or the XML security library failed internally.
    #[error("internal error")]
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads() {
        // The server calls the validator in spawn_blocking and moves the error back.
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<SamlError>();
        send_sync::<ConnectionError>();
    }
}
