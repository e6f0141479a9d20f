//! Group → role mapping for SSO sign-ins and SCIM provisioning.

use std::collections::BTreeMap;

use crate::Role;

/// The groups a provider asserted for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClaim {
    /// The provider listed the user's groups (possibly none).
    Listed(Vec<String>),
    /// The provider said the user has too many groups to list them in the token (Entra's
    /// "groups overage": `_claim_names.groups`). The role cannot be derived from the
    /// token; what happens then is the caller's documented decision, never "no groups".
    Overage,
}

/// An organisation's mapping from provider group ids to roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMapping {
    groups: BTreeMap<String, Role>,
}

impl RoleMapping {
    /// A mapping from `(group id, role)` pairs. Group ids compare exactly.
    pub fn new<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, Role)>,
        S: Into<String>,
    {
        Self {
            groups: pairs.into_iter().map(|(g, r)| (g.into(), r)).collect(),
        }
    }

    /// The most privileged role among the user's mapped groups; `None` when no listed
    /// group is mapped, or when the groups are unknown ([`GroupClaim::Overage`]).
    pub fn role_for(&self, groups: &GroupClaim) -> Option<Role> {
        match groups {
            GroupClaim::Overage => None,
            GroupClaim::Listed(list) => list
                .iter()
                .filter_map(|g| self.groups.get(g).copied())
                .min(), // Role's order is most to least privileged.
        }
    }

    /// The mapped groups and their roles.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Role)> {
        self.groups.iter().map(|(g, r)| (g.as_str(), *r))
    }
}
