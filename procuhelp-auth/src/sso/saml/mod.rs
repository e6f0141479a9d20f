//! SAML 2.0 service provider (feature `saml`): SP metadata, AuthnRequests over the
//! HTTP-Redirect binding, and verification of responses over the HTTP-POST binding.
//!
//! One [`ServiceProvider`] per organisation's [`SamlConnection`]. A sign-in:
//!
//! 1. [`ServiceProvider::authn_request`] gives a request ID and the IdP URL to redirect
//!    to; the caller stores the ID single-use, with an expiry, bound to the browser.
//! 2. The IdP posts `SAMLResponse` to our ACS URL; the caller consumes the stored ID and
//!    calls [`ServiceProvider::validate_response`] with [`Expected::InResponseTo`] (in
//!    `spawn_blocking`: it calls into libxml2 and xmlsec).
//! 3. The caller refuses a replayed [`VerifiedAssertion::assertion_id`] (stored until
//!    [`VerifiedAssertion::not_on_or_after`]) and maps the identity to a user.
//!
//! Signatures are verified with samael over libxmlsec1; the identity is read only from
//! the XML the verified signatures cover. The design notes are in `docs/saml.md`.
//!
//! ```
//! use procuhelp_auth::sso::saml::SamlConnection;
//!
//! let conn: SamlConnection = serde_json::from_str(r#"{
//!     "idp_entity_id": "https://sts.windows.net/tenant/",
//!     "idp_sso_url": "https://login.microsoftonline.com/tenant/saml2",
//!     "idp_certificates": [],
//!     "sp_entity_id": "https://procuhelp.example/saml",
//!     "acs_url": "https://procuhelp.example/sso/saml/acs"
//! }"#).unwrap();
//! // No certificate never means "skip verification".
//! assert!(conn.validate().is_err());
//! ```

mod config;
mod error;
mod replay;
mod response;
mod service_provider;
mod settings;
mod signature;
mod xml;

pub use config::{AttributeNames, DangerousSamlConnection, MAX_CLOCK_SKEW_SECS, SamlConnection};
pub use error::{ConnectionError, SamlError};
pub use replay::ReplayCache;
pub use response::{Expected, UNSOLICITED_LIFETIME, VerifiedAssertion};
pub use service_provider::{AuthnRequest, ServiceProvider};
pub use settings::{SamlSettings, Weakness, weak_settings};
