//! The organisation's SCIM settings: the group → role mapping and whether SSO may create
//! unknown users at their first sign-in. Changing the mapping recomputes every
//! SCIM-managed user's role.

use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;

use super::outcome::RoleChange;
use super::roles::{managed_users, sync_roles};
use crate::Role;
use crate::scim::error::{ScimError, ScimResult};

/// One group -> role mapping entry: a group id or displayName, and the role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// A SCIM group id, or a group displayName (case-insensitive).
    pub group: String,
    /// The role its members get.
    pub role: Role,
}

/// The organisation's SCIM settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScimSettings {
    /// Group -> role mapping.
    pub role_mappings: Vec<RoleMapping>,
    /// Whether SSO may create unknown users at sign-in.
    pub sso_jit_provisioning: bool,
}

/// Most mapping entries.
pub const MAX_ROLE_MAPPINGS: usize = 100;

/// The organisation's SCIM settings.
pub async fn settings(tx: &mut TenantTx) -> ScimResult<ScimSettings> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT group_ref, role FROM app.scim_role_mappings ORDER BY group_ref")
            .fetch_all(tx.conn())
            .await?;
    let jit: bool = sqlx::query_scalar(
        "SELECT sso_jit_provisioning FROM app.organisations WHERE id = app.current_org()",
    )
    .fetch_one(tx.conn())
    .await?;
    let role_mappings = rows
        .into_iter()
        .map(|(group, role)| {
            Ok(RoleMapping {
                group,
                role: role.parse().map_err(|_| ScimError::unavailable())?,
            })
        })
        .collect::<ScimResult<Vec<_>>>()?;
    Ok(ScimSettings {
        role_mappings,
        sso_jit_provisioning: jit,
    })
}

/// Replaces the mapping and the JIT flag, then recomputes every SCIM-managed user's role.
pub async fn set_settings(
    tx: &mut TenantTx,
    mappings: &[RoleMapping],
    sso_jit_provisioning: bool,
    now: OffsetDateTime,
) -> ScimResult<Vec<RoleChange>> {
    if mappings.len() > MAX_ROLE_MAPPINGS {
        return Err(ScimError::bad_request("tooMany", "too many role mappings"));
    }
    let mut refs = Vec::with_capacity(mappings.len());
    for m in mappings {
        let g = m.group.trim();
        if g.is_empty() || g.chars().count() > 512 || g.chars().any(char::is_control) {
            return Err(ScimError::invalid_value(
                "group must be 1 to 512 printable characters",
            ));
        }
        refs.push((g.to_owned(), m.role));
    }
    sqlx::query("DELETE FROM app.scim_role_mappings")
        .execute(tx.conn())
        .await?;
    for (g, role) in &refs {
        sqlx::query(
            "INSERT INTO app.scim_role_mappings (org_id, group_ref, role) VALUES ($1, $2, $3)",
        )
        .bind(tx.org().as_uuid())
        .bind(g)
        .bind(role.as_str())
        .execute(tx.conn())
        .await
        .map_err(|_| ScimError::uniqueness("a group is mapped twice"))?;
    }
    sqlx::query(
        "UPDATE app.organisations SET sso_jit_provisioning = $1 WHERE id = app.current_org()",
    )
    .bind(sso_jit_provisioning)
    .execute(tx.conn())
    .await?;
    let users = managed_users(tx).await?;
    sync_roles(tx, &users, now).await
}
