//! An organisation's OpenID Connect connection settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OidcError;
use crate::Role;
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
    /// Where the discovery document is fetched (https; http only on loopback).
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
        check_endpoint_url("discovery_url", &self.discovery_url).map_err(OidcError::Config)?;
        check_endpoint_url("redirect_uri", &self.redirect_uri).map_err(OidcError::Config)?;
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
        let mut pairs = Vec::with_capacity(self.group_roles.len());
        for (group, role) in &self.group_roles {
            if group.is_empty() || group.len() > 256 {
                return bad("group ids must be 1 to 256 characters".to_owned());
            }
            let role: Role = role
                .parse()
                .map_err(|_| OidcError::Config(format!("group {group}: unknown role {role:?}")))?;
            pairs.push((group.clone(), role));
        }
        Ok(RoleMapping::new(pairs))
    }
}

/// An endpoint URL must be https, or http on a loopback host (test providers).
pub(crate) fn check_endpoint_url(what: &str, url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what}: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("{what} must be https (http only on loopback)")),
    }
}
