//! What an organisation stores for SAML (the connection and its group → role mapping),
//! and the posture check of the settings that weaken verification.

use std::collections::BTreeMap;

use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantDb;
use serde::Deserialize;

use super::SamlConnection;
use crate::sso::store::{self, Protocol};
use crate::sso::{BadMapping, RoleMapping};

/// An organisation's stored SAML settings: the document the connection admin API accepts
/// and [`store::save_connection`] keeps (`{"connection": {...}, "group_roles": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// The identity provider and our side of it.
    pub connection: SamlConnection,
    /// Provider group id → role name.
    #[serde(default)]
    pub group_roles: BTreeMap<String, String>,
}

/// A setting of an organisation's SAML connection that weakens verification: allowed,
/// since the organisation chose it, but worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// RSA-SHA1 signatures and SHA-1 digests are accepted.
    Sha1,
    /// Unsolicited (IdP-initiated) responses are accepted.
    IdpInitiated,
}

impl SamlSettings {
    /// The checked group → role mapping.
    pub fn roles(&self) -> Result<RoleMapping, BadMapping> {
        RoleMapping::parse(&self.group_roles)
    }

    /// The settings that weaken verification.
    pub fn weaknesses(&self) -> Vec<Weakness> {
        let mut found = Vec::new();
        if self.connection.allows_sha1() {
            found.push(Weakness::Sha1);
        }
        if self.connection.allows_idp_initiated() {
            found.push(Weakness::IdpInitiated);
        }
        found
    }
}

/// The self-check's SSO warnings, one line each: SAML connections of `orgs` that accept
/// SHA-1 signatures or unsolicited (IdP-initiated) responses, or whose stored settings
/// no longer parse. Settings an organisation chose, so warnings, not failures.
pub async fn weak_settings(db: &TenantDb, orgs: &[OrgId]) -> Vec<String> {
    let mut warnings = Vec::new();
    for &org in orgs {
        let Ok(mut tx) = db.begin(org).await else {
            continue;
        };
        let stored = store::connection(&mut tx, Protocol::Saml).await;
        let _ = tx.rollback().await;
        let Ok(Some(stored)) = stored else { continue };
        let Ok(settings) = serde_json::from_value::<SamlSettings>(stored.settings) else {
            warnings.push(format!("org {org}: stored SAML settings do not parse"));
            continue;
        };
        for weakness in settings.weaknesses() {
            warnings.push(match weakness {
                Weakness::Sha1 => format!(
                    "org {org}: SAML accepts SHA-1 signatures and digests (allow_sha1): ask the IdP for SHA-256"
                ),
                Weakness::IdpInitiated => format!(
                    "org {org}: SAML accepts unsolicited (IdP-initiated) responses (allow_idp_initiated)"
                ),
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_documents_parse_and_report_their_weaknesses() {
        let doc = serde_json::json!({
            "connection": {
                "idp_entity_id": "https://idp.example.test/",
                "idp_sso_url": "https://idp.example.test/saml2",
                "idp_certificates": [],
                "sp_entity_id": "https://sp.example.test/saml",
                "acs_url": "https://sp.example.test/acs",
                "allow_sha1": true,
                "allow_idp_initiated": true,
            },
            "group_roles": { "admins": "admin" },
        });
        let s: SamlSettings = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(s.weaknesses(), [Weakness::Sha1, Weakness::IdpInitiated]);
        assert_eq!(
            s.roles().unwrap(),
            RoleMapping::new([("admins", crate::Role::Admin)])
        );
        let mut typo = doc;
        typo["group_role"] = serde_json::json!({});
        assert!(serde_json::from_value::<SamlSettings>(typo).is_err());
    }
}
