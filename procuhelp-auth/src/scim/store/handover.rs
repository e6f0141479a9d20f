//! Ownership: an admin hands a local user over to SCIM (the only way SCIM comes to manage
//! a user it did not create; it never adopts one).

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outcome::RoleChange;
use super::roles::sync_roles;
use super::users::{ScimUser, user};
use crate::scim::error::{ScimError, ScimResult};

/// What handing a user over to SCIM did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    /// The user as SCIM now sees them (userName = their sign-in address).
    pub user: ScimUser,
    /// Their role, if the group mapping changed it (they are in no SCIM group yet).
    pub role_change: Option<RoleChange>,
}

/// Hands local user `id` over to SCIM: from now on SCIM sees and manages them (attributes,
/// status, and — with a mapping — their role), and a federated sign-in may be linked to
/// them by their SCIM externalId/userName. An admin's explicit decision: the caller checks
/// the permission and records it before the commit. `by` is the acting admin (or API
/// token). Already SCIM's: 409 `uniqueness`; unknown (or another organisation's): 404.
pub async fn hand_over(
    tx: &mut TenantTx,
    id: UserId,
    by: Uuid,
    now: OffsetDateTime,
) -> ScimResult<HandOver> {
    let managed: Option<bool> =
        sqlx::query_scalar("SELECT scim_managed FROM app.users WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    match managed {
        None => return Err(ScimError::not_found()),
        Some(true) => return Err(ScimError::uniqueness("the user is already managed by SCIM")),
        Some(false) => {}
    }
    sqlx::query(
        "UPDATE app.users SET scim_managed = true, scim_handed_over_at = $2, scim_handed_over_by = $3,
             changed_at = $2
         WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(now)
    .bind(by)
    .execute(tx.conn())
    .await?;
    let role_change = sync_roles(tx, &[id.as_uuid()], now)
        .await?
        .into_iter()
        .next();
    Ok(HandOver {
        user: user(tx, &id.to_string()).await?,
        role_change,
    })
}
