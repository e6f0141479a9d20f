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

    /// The mapping an organisation stored (group id → role name), checked: group ids of
    /// 1 to 256 characters, known role names.
    pub fn parse(stored: &BTreeMap<String, String>) -> Result<Self, BadMapping> {
        let mut groups = BTreeMap::new();
        for (group, role) in stored {
            if group.is_empty() || group.len() > 256 {
                return Err(BadMapping::GroupId);
            }
            let role: Role = role.parse().map_err(|_| BadMapping::UnknownRole {
                group: group.clone(),
                role: role.clone(),
            })?;
            groups.insert(group.clone(), role);
        }
        Ok(Self { groups })
    }

    /// The mapped groups and their roles.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Role)> {
        self.groups.iter().map(|(g, r)| (g.as_str(), *r))
    }
}

/// Why a stored group → role mapping is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadMapping {
    /// A group id is empty or longer than 256 characters.
    #[error("group ids must be 1 to 256 characters")]
    GroupId,
    /// A role name is not one of the roles.
    #[error("group {group}: unknown role {role:?}")]
    UnknownRole {
        /// The group id.
        group: String,
        /// The role name as stored.
        role: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_mapping_is_checked() {
        let stored = |g: &str, r: &str| BTreeMap::from([(g.to_owned(), r.to_owned())]);
        let m = RoleMapping::parse(&stored("admins", "admin")).unwrap();
        assert_eq!(m, RoleMapping::new([("admins", Role::Admin)]));
        assert_eq!(
            RoleMapping::parse(&stored("", "admin")),
            Err(BadMapping::GroupId)
        );
        assert_eq!(
            RoleMapping::parse(&stored(&"g".repeat(257), "admin")),
            Err(BadMapping::GroupId)
        );
        assert!(matches!(
            RoleMapping::parse(&stored("g", "root")),
            Err(BadMapping::UnknownRole { .. })
        ));
    }
}
