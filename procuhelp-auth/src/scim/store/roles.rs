//! Roles follow groups: a SCIM-managed user's role is the most privileged one the
//! organisation maps to any of their groups; a change ends every session of theirs.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outcome::RoleChange;
use crate::scim::error::{ScimError, ScimResult};
use crate::session;

/// Recomputes the role of the SCIM-managed users among `users`: the most privileged
/// role mapped to any of their groups, otherwise the least privileged. Does nothing when
/// the organisation has no mapping. Changed users lose every session.
pub async fn sync_roles(
    tx: &mut TenantTx,
    users: &[Uuid],
    now: OffsetDateTime,
) -> ScimResult<Vec<RoleChange>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let changed: Vec<(Uuid, String, String)> = sqlx::query_as(
        "WITH target AS (
             SELECT u.id, u.role AS old, COALESCE((
                 SELECT r.role FROM app.scim_group_members m
                 JOIN app.scim_groups g ON g.org_id = m.org_id AND g.id = m.group_id
                 JOIN app.scim_role_mappings r
                   ON r.group_ref = g.id::text OR lower(r.group_ref) = lower(g.display_name)
                 WHERE m.org_id = u.org_id AND m.user_id = u.id
                 ORDER BY app.role_rank(r.role)
                 LIMIT 1), 'read_only') AS new
             FROM app.users u
             WHERE u.id = ANY($1) AND u.scim_managed
               AND EXISTS (SELECT 1 FROM app.scim_role_mappings))
         UPDATE app.users u SET role = t.new, changed_at = $2
         FROM target t WHERE u.id = t.id AND t.old <> t.new
         RETURNING u.id, t.old, t.new",
    )
    .bind(users)
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(changed.len());
    for (id, from, to) in changed {
        let user = UserId::from_uuid(id).map_err(|_| ScimError::unavailable())?;
        let sessions_revoked = session::revoke_all(tx, user, None, now)
            .await
            .map_err(ScimError::from)?;
        out.push(RoleChange {
            user,
            from: from.parse().map_err(|_| ScimError::unavailable())?,
            to: to.parse().map_err(|_| ScimError::unavailable())?,
            sessions_revoked,
        });
    }
    Ok(out)
}

/// Every SCIM-managed user (for a mapping change).
pub async fn managed_users(tx: &mut TenantTx) -> ScimResult<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM app.users WHERE scim_managed")
            .fetch_all(tx.conn())
            .await?,
    )
}
