//! Per-organisation SAML connection settings and their validation.

use serde::Deserialize;

use super::error::ConnectionError;

/// Upper bound for [`SamlConnection::max_clock_skew_secs`]: beyond this a stolen
/// assertion lives noticeably longer than the IdP intended.
pub const MAX_CLOCK_SKEW_SECS: u32 = 300;

/// Entra ID's claim names, used unless the connection names others.
const DEFAULT_EMAIL_ATTRIBUTE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const DEFAULT_NAME_ATTRIBUTE: &str = "http://schemas.microsoft.com/identity/claims/displayname";
const DEFAULT_GROUPS_ATTRIBUTE: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
const DEFAULT_GROUPS_OVERAGE_ATTRIBUTE: &str = "http://schemas.microsoft.com/claims/groups.link";

/// One organisation's SAML 2.0 identity provider, as an administrator configures it.
///
/// Deserialised with unknown fields refused, so a typo (`allow_sha_1`) is an error rather
/// than a silently ignored setting. Call [`SamlConnection::validate`] when saving it;
/// [`ServiceProvider::new`](super::ServiceProvider::new) validates again.
///
/// The two settings that weaken verification (SHA-1, unsolicited responses) are not
/// public fields: they are set through [`SamlConnection::dangerous`] (or the stored
/// document's `allow_sha1` / `allow_idp_initiated`) and read with
/// [`SamlConnection::allows_sha1`] and [`SamlConnection::allows_idp_initiated`].
///
/// ```
/// use procuhelp_auth::sso::saml::SamlConnection;
/// let mut c = SamlConnection::new(
///     "https://idp.example.test/",
///     "https://idp.example.test/saml2",
///     vec![/* the IdP's PEM certificates */],
///     "https://sp.example.test/saml",
///     "https://sp.example.test/acs",
/// );
/// assert!(!c.allows_sha1() && !c.allows_idp_initiated());
/// c.dangerous().set_allow_idp_initiated(true);
/// assert!(c.allows_idp_initiated());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlConnection {
    /// The IdP's entity ID; the Issuer of its responses and assertions must equal it.
    pub idp_entity_id: String,
    /// The IdP's single sign-on URL for the HTTP-Redirect binding.
    pub idp_sso_url: String,
    /// The IdP's signing certificates (PEM). Several at once during a rollover; a
    /// signature made by any one of them is accepted. Must not be empty.
    pub idp_certificates: Vec<String>,
    /// Our entity ID, as registered at the IdP (the assertion's Audience).
    pub sp_entity_id: String,
    /// Our AssertionConsumerService URL (HTTP-POST binding).
    pub acs_url: String,
    /// Accept RSA-SHA1 signatures and SHA-1 digests (legacy IdPs only). Default false.
    /// Set through [`DangerousSamlConnection::set_allow_sha1`].
    #[serde(default)]
    allow_sha1: bool,
    /// Accept IdP-initiated (unsolicited) responses. Default false: they cannot be tied to
    /// a request of ours, so only a short lifetime and the replay cache stand against
    /// replays and login CSRF. Set through
    /// [`DangerousSamlConnection::set_allow_idp_initiated`].
    #[serde(default)]
    allow_idp_initiated: bool,
    /// AuthnContextClassRef values that mean the user passed multi-factor
    /// authentication (for Entra: `http://schemas.microsoft.com/claims/multipleauthn`).
    #[serde(default)]
    pub mfa_authn_contexts: Vec<String>,
    /// Tolerated clock difference with the IdP, in seconds (default 120, at most
    /// [`MAX_CLOCK_SKEW_SECS`]).
    #[serde(default = "default_skew")]
    pub max_clock_skew_secs: u32,
    /// Which attributes carry the email, display name and groups.
    #[serde(default)]
    pub attributes: AttributeNames,
}

fn default_skew() -> u32 {
    120
}

/// Attribute names (`<saml:Attribute Name="...">`) read from the assertion. The defaults
/// are Entra ID's claim URIs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeNames {
    /// Email address (single value).
    pub email: String,
    /// Display name (single value).
    pub display_name: String,
    /// Group identifiers (any number of values).
    pub groups: String,
    /// Sent instead of the groups when the user has too many (Entra's "groups
    /// overage": a Graph link); its presence makes the groups unknown.
    pub groups_overage: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        Self {
            email: DEFAULT_EMAIL_ATTRIBUTE.to_owned(),
            display_name: DEFAULT_NAME_ATTRIBUTE.to_owned(),
            groups: DEFAULT_GROUPS_ATTRIBUTE.to_owned(),
            groups_overage: DEFAULT_GROUPS_OVERAGE_ATTRIBUTE.to_owned(),
        }
    }
}

/// The settings of a [`SamlConnection`] that weaken verification, behind a name that
/// shows in review ([`SamlConnection::dangerous`], the `rustls` habit).
#[derive(Debug)]
pub struct DangerousSamlConnection<'a> {
    connection: &'a mut SamlConnection,
}

impl DangerousSamlConnection<'_> {
    /// Accept RSA-SHA1 signatures and SHA-1 digests (for a legacy IdP that cannot sign
    /// with SHA-256). SHA-1 collisions are practical; ask the IdP for SHA-256 instead.
    pub fn set_allow_sha1(&mut self, allow: bool) -> &mut Self {
        self.connection.allow_sha1 = allow;
        self
    }

    /// Accept IdP-initiated (unsolicited) responses: nothing ties them to a sign-in this
    /// browser started (login CSRF), only their short lifetime and the replay cache stand
    /// against replays.
    pub fn set_allow_idp_initiated(&mut self, allow: bool) -> &mut Self {
        self.connection.allow_idp_initiated = allow;
        self
    }
}

impl SamlConnection {
    /// A connection with the safe defaults: SHA-256 or better only, SP-initiated only,
    /// no MFA context, 120 s of clock skew, Entra's attribute names.
    pub fn new(
        idp_entity_id: impl Into<String>,
        idp_sso_url: impl Into<String>,
        idp_certificates: Vec<String>,
        sp_entity_id: impl Into<String>,
        acs_url: impl Into<String>,
    ) -> Self {
        Self {
            idp_entity_id: idp_entity_id.into(),
            idp_sso_url: idp_sso_url.into(),
            idp_certificates,
            sp_entity_id: sp_entity_id.into(),
            acs_url: acs_url.into(),
            allow_sha1: false,
            allow_idp_initiated: false,
            mfa_authn_contexts: Vec::new(),
            max_clock_skew_secs: default_skew(),
            attributes: AttributeNames::default(),
        }
    }

    /// The settings that weaken verification.
    pub fn dangerous(&mut self) -> DangerousSamlConnection<'_> {
        DangerousSamlConnection { connection: self }
    }

    /// Whether RSA-SHA1 signatures and SHA-1 digests are accepted.
    pub fn allows_sha1(&self) -> bool {
        self.allow_sha1
    }

    /// Whether IdP-initiated (unsolicited) responses are accepted.
    pub fn allows_idp_initiated(&self) -> bool {
        self.allow_idp_initiated
    }

    /// Refuses a connection that cannot be used safely: no certificate (never "skip
    /// verification"), a certificate that does not parse or has a weak key, a URL that
    /// is not https (http only for loopback hosts, for tests), an empty entity ID, or an
    /// unbounded clock skew.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        self.certificates_der().map(drop)
    }

    /// Validates and returns the certificates in DER form.
    pub(crate) fn certificates_der(&self) -> Result<Vec<Vec<u8>>, ConnectionError> {
        identifier("idp_entity_id", &self.idp_entity_id)?;
        identifier("sp_entity_id", &self.sp_entity_id)?;
        identifier("attributes.email", &self.attributes.email)?;
        identifier("attributes.display_name", &self.attributes.display_name)?;
        identifier("attributes.groups", &self.attributes.groups)?;
        identifier("attributes.groups_overage", &self.attributes.groups_overage)?;
        secure_url("idp_sso_url", &self.idp_sso_url)?;
        secure_url("acs_url", &self.acs_url)?;
        if self.max_clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            return Err(ConnectionError::ClockSkewTooLarge {
                max: MAX_CLOCK_SKEW_SECS,
            });
        }
        if self.idp_certificates.is_empty() {
            return Err(ConnectionError::NoCertificate);
        }
        self.idp_certificates
            .iter()
            .enumerate()
            .map(|(index, pem)| {
                certificate_der(pem).ok_or(ConnectionError::BadCertificate { index })
            })
            .collect()
    }
}

fn identifier(field: &'static str, value: &str) -> Result<(), ConnectionError> {
    if value.trim().is_empty() || value.len() > 1024 {
        return Err(ConnectionError::BadIdentifier { field });
    }
    Ok(())
}

fn secure_url(field: &'static str, value: &str) -> Result<(), ConnectionError> {
    let url = url::Url::parse(value).map_err(|_| ConnectionError::BadUrl { field })?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(ConnectionError::BadUrl { field });
    }
    match url.scheme() {
        "https" => Ok(()),
        // Plain http only where nothing leaves the machine: the tests' loopback peers.
        "http" if url.host_str().is_some_and(procuhelp_core::is_loopback_host) => Ok(()),
        _ => Err(ConnectionError::InsecureUrl { field }),
    }
}

/// One PEM certificate to DER, refusing anything else (several certificates in one
/// string, a private key, an RSA key under 2048 bits, a key type we do not verify).
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    if pem.matches("-----BEGIN").count() != 1 {
        return None;
    }
    let cert = openssl::x509::X509::from_pem(pem.as_bytes()).ok()?;
    let key = cert.public_key().ok()?;
    let acceptable = match key.id() {
        openssl::pkey::Id::RSA => key.bits() >= 2048,
        openssl::pkey::Id::EC => key.bits() >= 256,
        _ => false,
    };
    if !acceptable {
        return None;
    }
    cert.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sso::saml::service_provider::tests::connection;

    #[test]
    fn a_good_connection_validates() {
        assert_eq!(connection().validate(), Ok(()));
        let mut c = connection();
        c.acs_url = "http://127.0.0.1:8080/acs".into();
        c.idp_sso_url = "http://localhost:9000/sso".into();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn no_certificate_is_refused_not_skipped() {
        let mut c = connection();
        c.idp_certificates.clear();
        assert_eq!(c.validate(), Err(ConnectionError::NoCertificate));
    }

    #[test]
    fn bad_certificates_are_refused() {
        for (pem, index) in [
            ("not a pem".to_owned(), 1),
            (
                include_str!("../../../tests/data/saml/weak-rsa1024.crt").to_owned(),
                1,
            ),
            // Two certificates in one entry: each must be its own entry.
            (
                include_str!("../../../tests/data/saml/unit-test-idp.crt").repeat(2),
                1,
            ),
        ] {
            let mut c = connection();
            c.idp_certificates.push(pem);
            assert_eq!(c.validate(), Err(ConnectionError::BadCertificate { index }));
        }
    }

    #[test]
    fn urls_must_be_https_except_loopback() {
        for (url, err) in [
            (
                "http://sp.example.test/acs",
                ConnectionError::InsecureUrl { field: "acs_url" },
            ),
            (
                "http://10.0.0.1/acs",
                ConnectionError::InsecureUrl { field: "acs_url" },
            ),
            (
                "ftp://sp.example.test/acs",
                ConnectionError::InsecureUrl { field: "acs_url" },
            ),
            ("/acs", ConnectionError::BadUrl { field: "acs_url" }),
            ("mailto:a@b", ConnectionError::BadUrl { field: "acs_url" }),
        ] {
            let mut c = connection();
            c.acs_url = url.into();
            assert_eq!(c.validate(), Err(err), "{url}");
        }
    }

    #[test]
    fn skew_and_identifiers_are_bounded() {
        let mut c = connection();
        c.max_clock_skew_secs = MAX_CLOCK_SKEW_SECS + 1;
        assert_eq!(
            c.validate(),
            Err(ConnectionError::ClockSkewTooLarge {
                max: MAX_CLOCK_SKEW_SECS
            })
        );
        let mut c = connection();
        c.sp_entity_id = " ".into();
        assert_eq!(
            c.validate(),
            Err(ConnectionError::BadIdentifier {
                field: "sp_entity_id"
            })
        );
    }

    #[test]
    fn deserialisation_refuses_unknown_fields_and_defaults_the_rest() {
        let json = serde_json::json!({
            "idp_entity_id": "https://idp.example.test/",
            "idp_sso_url": "https://idp.example.test/saml2",
            "idp_certificates": [],
            "sp_entity_id": "https://sp.example.test/saml",
            "acs_url": "https://sp.example.test/acs",
        });
        let c: SamlConnection = serde_json::from_value(json.clone()).unwrap();
        assert!(!c.allows_sha1() && !c.allows_idp_initiated());
        let mut weak = json.clone();
        weak["allow_sha1"] = true.into();
        weak["allow_idp_initiated"] = true.into();
        let c: SamlConnection = serde_json::from_value(weak).unwrap();
        assert!(
            c.allows_sha1() && c.allows_idp_initiated(),
            "stored documents keep their names"
        );
        assert_eq!(c.max_clock_skew_secs, 120);
        assert_eq!(c.attributes, AttributeNames::default());
        let mut typo = json;
        typo["allow_sha_1"] = true.into();
        assert!(serde_json::from_value::<SamlConnection>(typo).is_err());
    }
}
