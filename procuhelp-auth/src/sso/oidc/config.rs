//! An organisation's OpenID Connect connection settings.

use std::collections::BTreeMap;

use procuhelp_core::OutboundPolicy;
use serde::{Deserialize, Serialize};

use super::OidcError;
use crate::sso::RoleMapping;

/// Entra's multi-tenant issuer placeholder, resolved with the token's `tid`.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";
/// Upper bound of the configurable clock skew.
const MAX_SKEW_SECS: u32 = 300;

/// One organisation's OpenID Connect connection (no secrets: the client secret is kept
/// apart, sealed, and handed to [`super::OidcClient::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConnection {
    /// Where the discovery document is fetched: https, to a destination the server's
    /// [`OutboundPolicy`] allows (public addresses only, unless the operator allowed
    /// loopback for tests; then http to loopback too).
    pub discovery_url: String,
    /// The issuer, compared exactly with discovery's `issuer` and the token's `iss`. May
    /// contain `{tenantid}` (Entra's multi-tenant template), resolved with the token's `tid`.
    pub issuer: String,
    /// The application (client) id registered at the provider.
    pub client_id: String,
    /// The provider tenants (Entra `tid`) whose users may sign in: the organisation's own
    /// tenant, plus others only for a deliberately multi-tenant set-up.
    pub tenant_ids: Vec<String>,
    /// Where the provider sends the browser back (must be registered at the provider).
    pub redirect_uri: String,
    /// Provider group id → role. The most privileged mapped role wins; no mapped group
    /// means the least privileged role.
    #[serde(default)]
    pub group_roles: BTreeMap<String, String>,
    /// `acr` values that count as multi-factor (besides `amr` containing `mfa`).
    #[serde(default)]
    pub mfa_acr_values: Vec<String>,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`, in seconds (≤ 300).
    #[serde(default = "default_skew")]
    pub max_clock_skew_secs: u32,
}

fn default_skew() -> u32 {
    120
}

impl OidcConnection {
    /// Checks the settings and returns the parsed role mapping. A connection that fails
    /// here is never used: nothing about it means "skip a check".
    pub fn validate(&self) -> Result<RoleMapping, OidcError> {
        let bad = |m: String| Err(OidcError::Config(m));
        // The outbound policy's static rule in its most permissive form (loopback
        // allowed): what no policy would ever fetch — plain http off loopback, private,
        // link-local or metadata address literals, IPv4-mapped spellings — is refused
        // here already. The deployment's own policy is applied on top
        // (`check_destinations`, and again after DNS resolution when fetching).
        OutboundPolicy::dangerous_allow_loopback_for_tests()
            .check_url(&self.discovery_url)
            .map_err(|e| OidcError::Config(format!("discovery_url: {e}")))?;
        check_redirect_uri(&self.redirect_uri).map_err(OidcError::Config)?;
        let resolved = self
            .issuer
            .replace(TENANT_PLACEHOLDER, "00000000-0000-0000-0000-000000000000");
        if resolved.contains('{') || resolved.contains('}') {
            return bad("issuer: only the {tenantid} placeholder is allowed".to_owned());
        }
        if !resolved.starts_with("https://") || resolved.len() > 512 {
            return bad("issuer must be an https URL".to_owned());
        }
        if self.client_id.is_empty() || self.client_id.len() > 256 {
            return bad("client_id must be 1 to 256 characters".to_owned());
        }
        if self.tenant_ids.is_empty() {
            return bad(
                "tenant_ids: at least the organisation's own tenant is required".to_owned(),
            );
        }
        for tid in &self.tenant_ids {
            if uuid::Uuid::try_parse(tid).map(|u| u.hyphenated().to_string()) != Ok(tid.clone()) {
                return bad(format!(
                    "tenant id {tid:?} is not a lowercase hyphenated GUID"
                ));
            }
            if !self.issuer.contains(TENANT_PLACEHOLDER) && !self.issuer.contains(tid.as_str()) {
                return bad(format!(
                    "tenant id {tid} is not the issuer's tenant (use the {{tenantid}} issuer for several tenants)"
                ));
            }
        }
        if self.max_clock_skew_secs > MAX_SKEW_SECS {
            return bad(format!(
                "max_clock_skew_secs must be at most {MAX_SKEW_SECS}"
            ));
        }
        RoleMapping::parse(&self.group_roles).map_err(|e| OidcError::Config(e.to_string()))
    }

    /// Whether `policy` lets the server fetch this connection's discovery document
    /// (scheme and address literal; names are checked again after DNS resolution). The
    /// error carries only the policy's fixed reason.
    pub fn check_destinations(&self, policy: OutboundPolicy) -> Result<(), OidcError> {
        policy
            .check_url(&self.discovery_url)
            .map(drop)
            .map_err(OidcError::Fetch)
    }
}

/// The redirect URI is never fetched by us (the provider sends the browser there): https,
/// or http on a loopback host (test set-ups).
fn check_redirect_uri(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("redirect_uri: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http"
            if parsed
                .host_str()
                .is_some_and(procuhelp_core::is_loopback_host) =>
        {
            Ok(())
        }
        _ => Err("redirect_uri must be https (http only on loopback)".to_owned()),
    }
}
