//! Our side of one SAML connection: metadata and AuthnRequests (HTTP-Redirect binding).

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::CertificateDer;
use time::OffsetDateTime;

use super::config::SamlConnection;
use super::error::SamlError;

/// The longest RelayState the SAML bindings allow (bindings spec, 3.4.3).
const MAX_RELAY_STATE_BYTES: usize = 80;

/// A validated [`SamlConnection`], ready to start sign-ins and check responses.
///
/// Synchronous on purpose: signature checks call into libxml2/xmlsec, so servers run
/// [`ServiceProvider::validate_response`] in `spawn_blocking`.
pub struct ServiceProvider {
    pub(crate) conn: SamlConnection,
    pub(crate) certificates: Vec<CertificateDer>,
    pub(crate) skew: time::Duration,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("idp_entity_id", &self.conn.idp_entity_id)
            .field("sp_entity_id", &self.conn.sp_entity_id)
            .field("certificates", &self.certificates.len())
            .finish_non_exhaustive()
    }
}

/// A sign-in request to send the browser to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequest {
    /// Our request ID (`_` + 32 hex digits, 128 random bits). Store it single-use with an
    /// expiry, bound to the browser session; the response must name it in InResponseTo.
    pub id: String,
    /// The IdP's SSO URL with `SAMLRequest` (and `RelayState`) query parameters.
    pub redirect_url: String,
    /// The request's IssueInstant.
    pub issued_at: OffsetDateTime,
}

impl ServiceProvider {
    /// Validates the connection (see [`SamlConnection::validate`]) and keeps its
    /// certificates in the form the signature check needs.
    pub fn new(conn: SamlConnection) -> Result<Self, SamlError> {
        let certificates = conn
            .certificates_der()?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let skew = time::Duration::seconds(i64::from(conn.max_clock_skew_secs));
        Ok(Self {
            conn,
            certificates,
            skew,
        })
    }

    /// The connection this provider was built from.
    pub fn connection(&self) -> &SamlConnection {
        &self.conn
    }

    /// Our SP metadata for the IdP administrator: entity ID, the ACS URL (HTTP-POST),
    /// `AuthnRequestsSigned="false"`, `WantAssertionsSigned="true"`.
    pub fn metadata_xml(&self) -> String {
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">"#,
                r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" "#,
                r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
                r#"<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"#,
                r#"<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" "#,
                r#"Location="{acs}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#,
                "\n"
            ),
            entity = escape(&self.conn.sp_entity_id),
            acs = escape(&self.conn.acs_url),
        )
    }

    /// A new AuthnRequest for the HTTP-Redirect binding: raw DEFLATE, base64, then URL
    /// encoding, as `SAMLRequest` (and `RelayState` when given) on the IdP's SSO URL.
    /// The request is not signed (our metadata says so).
    pub fn authn_request(
        &self,
        now: OffsetDateTime,
        relay_state: Option<&str>,
    ) -> Result<AuthnRequest, SamlError> {
        if relay_state.is_some_and(|r| r.len() > MAX_RELAY_STATE_BYTES) {
            return Err(SamlError::RelayStateTooLong);
        }
        let id = new_request_id()?;
        let issued_at = now
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .map_err(|_| SamlError::Internal)?;
        let instant = saml_instant(issued_at)?;
        let xml = format!(
            concat!(
                r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" "#,
                r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" "#,
                r#"IssueInstant="{instant}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" "#,
                r#"ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">"#,
                r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
                r#"<samlp:NameIDPolicy AllowCreate="true"/>"#,
                r#"</samlp:AuthnRequest>"#
            ),
            id = id,
            instant = instant,
            dest = escape(&self.conn.idp_sso_url),
            acs = escape(&self.conn.acs_url),
            issuer = escape(&self.conn.sp_entity_id),
        );
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflater
            .write_all(xml.as_bytes())
            .map_err(|_| SamlError::Internal)?;
        let deflated = deflater.finish().map_err(|_| SamlError::Internal)?;
        let mut url = url::Url::parse(&self.conn.idp_sso_url).map_err(|_| {
            SamlError::Connection(super::ConnectionError::BadUrl {
                field: "idp_sso_url",
            })
        })?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("SAMLRequest", &STANDARD.encode(deflated));
            if let Some(relay_state) = relay_state {
                query.append_pair("RelayState", relay_state);
            }
        }
        Ok(AuthnRequest {
            id,
            redirect_url: url.into(),
            issued_at,
        })
    }
}

/// `_` + 32 lowercase hex digits from the OS RNG: 128 bits, and an NCName as SAML IDs
/// must be (they may not start with a digit).
fn new_request_id() -> Result<String, SamlError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| SamlError::Internal)?;
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ok(id)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// xs:dateTime in UTC with a `Z`, as SAML wants it.
pub(crate) fn saml_instant(t: OffsetDateTime) -> Result<String, SamlError> {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|_| SamlError::Internal)
}

/// Escapes text for an XML attribute value or element content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;
    use std::io::Read as _;

    use super::*;

    /// A valid connection for unit tests (the IdP URL carries a query on purpose).
    pub(crate) fn connection() -> SamlConnection {
        SamlConnection::new(
            "https://idp.example.test/",
            "https://idp.example.test/saml2?tenant=a",
            vec![include_str!("../../../tests/data/saml/unit-test-idp.crt").into()],
            "https://sp.example.test/saml",
            "https://sp.example.test/sso/saml/acs",
        )
    }

    fn query(url: &url::Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn request_ids_are_128_bit_unique_ncnames() {
        let sp = ServiceProvider::new(connection()).unwrap();
        let now = OffsetDateTime::now_utc();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let r = sp.authn_request(now, None).unwrap();
            assert_eq!(r.id.len(), 33);
            assert!(r.id.starts_with('_'));
            assert!(r.id[1..].bytes().all(|b| HEX.contains(&b)));
            assert!(seen.insert(r.id));
        }
    }

    #[test]
    fn redirect_url_inflates_back_to_our_request() {
        let sp = ServiceProvider::new(connection()).unwrap();
        let now = time::macros::datetime!(2026-11-25 08:00:00.123 UTC);
        let r = sp.authn_request(now, Some("state/with?odd&chars")).unwrap();
        assert_eq!(
            r.issued_at,
            time::macros::datetime!(2026-11-25 08:00:00 UTC)
        );
        let url = url::Url::parse(&r.redirect_url).unwrap();
        assert_eq!(url.host_str(), Some("idp.example.test"));
        assert_eq!(url.path(), "/saml2");
        assert_eq!(query(&url, "tenant").as_deref(), Some("a"));
        assert_eq!(
            query(&url, "RelayState").as_deref(),
            Some("state/with?odd&chars")
        );
        let deflated = STANDARD
            .decode(query(&url, "SAMLRequest").unwrap())
            .unwrap();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&deflated[..])
            .read_to_string(&mut xml)
            .unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert!(super::super::xml::is(
            root,
            super::super::xml::NS_PROTOCOL,
            "AuthnRequest"
        ));
        assert_eq!(root.attribute("ID"), Some(r.id.as_str()));
        assert_eq!(root.attribute("IssueInstant"), Some("2026-11-25T08:00:00Z"));
        assert_eq!(
            root.attribute("AssertionConsumerServiceURL"),
            Some("https://sp.example.test/sso/saml/acs")
        );
        assert_eq!(
            root.attribute("Destination"),
            Some("https://idp.example.test/saml2?tenant=a")
        );
        let issuer =
            super::super::xml::child(root, super::super::xml::NS_ASSERTION, "Issuer").unwrap();
        assert_eq!(issuer.text(), Some("https://sp.example.test/saml"));
    }

    #[test]
    fn relay_state_is_bounded() {
        let sp = ServiceProvider::new(connection()).unwrap();
        let long = "x".repeat(81);
        assert_eq!(
            sp.authn_request(OffsetDateTime::now_utc(), Some(&long))
                .unwrap_err(),
            SamlError::RelayStateTooLong
        );
    }

    #[test]
    fn metadata_names_entity_acs_and_signing_wishes() {
        let mut conn = connection();
        conn.sp_entity_id = "https://sp.example.test/saml?a=1&b=\"2\"".into();
        let sp = ServiceProvider::new(conn).unwrap();
        let xml = sp.metadata_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(
            root.attribute("entityID"),
            Some("https://sp.example.test/saml?a=1&b=\"2\"")
        );
        let sp_sso = root.first_element_child().unwrap();
        assert_eq!(sp_sso.attribute("AuthnRequestsSigned"), Some("false"));
        assert_eq!(sp_sso.attribute("WantAssertionsSigned"), Some("true"));
        let acs = sp_sso
            .children()
            .find(|n| n.has_tag_name("AssertionConsumerService"))
            .unwrap();
        assert_eq!(
            acs.attribute("Binding"),
            Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
        );
        assert_eq!(
            acs.attribute("Location"),
            Some("https://sp.example.test/sso/saml/acs")
        );
    }
}
