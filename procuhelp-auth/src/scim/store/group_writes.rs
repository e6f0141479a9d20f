//! Provisioning groups: create, replace, patch, delete. Members must be users SCIM owns;
//! every membership change recomputes the roles of the users it touched.

use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::groups::{ScimGroup, group, lock_group};
use super::outcome::{Effects, storage};
use super::roles::sync_roles;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::model::{GroupInput, MAX_MEMBERS};
use crate::scim::patch::GroupChange;

/// Member ids as users of this organisation that SCIM sees (owned, not deleted); anything
/// else refuses the whole request (`invalidValue`), so nothing is half-applied.
async fn member_ids(tx: &mut TenantTx, ids: &[String]) -> ScimResult<Vec<Uuid>> {
    let mut parsed = Vec::with_capacity(ids.len());
    for id in ids {
        parsed.push(
            id.parse::<Uuid>()
                .map_err(|_| ScimError::invalid_value("unknown member"))?,
        );
    }
    parsed.sort_unstable();
    parsed.dedup();
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.users WHERE id = ANY($1) AND scim_managed AND scim_deleted_at IS NULL",
    )
    .bind(&parsed)
    .fetch_one(tx.conn())
    .await?;
    if usize::try_from(found).ok() != Some(parsed.len()) {
        return Err(ScimError::invalid_value("unknown member"));
    }
    Ok(parsed)
}

async fn add_members(tx: &mut TenantTx, group: Uuid, users: &[Uuid]) -> ScimResult<usize> {
    let done = sqlx::query(
        "INSERT INTO app.scim_group_members (org_id, group_id, user_id)
         SELECT $1, $2, u FROM unnest($3::uuid[]) AS u ON CONFLICT DO NOTHING",
    )
    .bind(tx.org().as_uuid())
    .bind(group)
    .bind(users)
    .execute(tx.conn())
    .await?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

async fn remove_members(tx: &mut TenantTx, group: Uuid, users: &[Uuid]) -> ScimResult<usize> {
    let done =
        sqlx::query("DELETE FROM app.scim_group_members WHERE group_id = $1 AND user_id = ANY($2)")
            .bind(group)
            .bind(users)
            .execute(tx.conn())
            .await?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

/// Creates a group with its members.
pub async fn create_group(
    tx: &mut TenantTx,
    input: GroupInput,
    now: OffsetDateTime,
) -> ScimResult<(ScimGroup, Effects)> {
    let members = member_ids(tx, &input.members).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.scim_groups (org_id, id, display_name, external_id, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(&input.display_name)
    .bind(input.external_id.as_deref())
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(storage)?;
    let mut effects = Effects {
        members_added: add_members(tx, id, &members).await?,
        ..Effects::default()
    };
    effects.role_changes = sync_roles(tx, &members, now).await?;
    Ok((group(tx, &id.to_string()).await?, effects))
}

/// Replaces a group (PUT): name, externalId and the whole member list.
pub async fn replace_group(
    tx: &mut TenantTx,
    id: &str,
    input: GroupInput,
    now: OffsetDateTime,
) -> ScimResult<(ScimGroup, Effects)> {
    lock_group(tx, id).await?;
    let current = group(tx, id).await?;
    let members = member_ids(tx, &input.members).await?;
    let next = ScimGroup {
        display_name: input.display_name,
        external_id: input.external_id,
        ..current.clone()
    };
    write_group(tx, &current, &next, Some(members), now).await
}

/// Applies a parsed PATCH body to a group, whole or not at all.
pub async fn patch_group(
    tx: &mut TenantTx,
    id: &str,
    changes: &[GroupChange],
    now: OffsetDateTime,
) -> ScimResult<(ScimGroup, Effects)> {
    lock_group(tx, id).await?;
    let current = group(tx, id).await?;
    let mut next = current.clone();
    let mut members: Vec<Uuid> = current.members.clone();
    let mut touched_members = false;
    for change in changes {
        match change {
            GroupChange::DisplayName(n) => next.display_name = n.trim().to_owned(),
            GroupChange::ExternalId(x) => next.external_id = Some(x.trim().to_owned()),
            GroupChange::RemoveExternalId => next.external_id = None,
            GroupChange::AddMembers(ids) => {
                touched_members = true;
                for m in member_ids(tx, ids).await? {
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
            }
            GroupChange::RemoveMembers(ids) => {
                touched_members = true;
                // Ids that are not members (or not users) are ignored: removal is
                // idempotent, as Entra expects.
                let gone: Vec<Uuid> = ids.iter().filter_map(|i| i.parse().ok()).collect();
                members.retain(|m| !gone.contains(m));
            }
            GroupChange::ReplaceMembers(ids) => {
                touched_members = true;
                members = member_ids(tx, ids).await?;
            }
        }
    }
    if members.len() > MAX_MEMBERS * 10 {
        return Err(ScimError::bad_request("tooMany", "too many members"));
    }
    write_group(tx, &current, &next, touched_members.then_some(members), now).await
}

async fn write_group(
    tx: &mut TenantTx,
    current: &ScimGroup,
    next: &ScimGroup,
    members: Option<Vec<Uuid>>,
    now: OffsetDateTime,
) -> ScimResult<(ScimGroup, Effects)> {
    sqlx::query(
        "UPDATE app.scim_groups SET display_name = $2, external_id = $3, changed_at = $4 WHERE id = $1",
    )
    .bind(current.id)
    .bind(&next.display_name)
    .bind(next.external_id.as_deref())
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(storage)?;
    let mut effects = Effects::default();
    let mut affected: Vec<Uuid> = Vec::new();
    if let Some(members) = members {
        let added: Vec<Uuid> = members
            .iter()
            .copied()
            .filter(|m| !current.members.contains(m))
            .collect();
        let removed: Vec<Uuid> = current
            .members
            .iter()
            .copied()
            .filter(|m| !members.contains(m))
            .collect();
        effects.members_added = add_members(tx, current.id, &added).await?;
        effects.members_removed = remove_members(tx, current.id, &removed).await?;
        affected.extend(added);
        affected.extend(removed);
    }
    if !next
        .display_name
        .eq_ignore_ascii_case(&current.display_name)
    {
        // A rename can change which mapping applies to every member.
        affected.extend(current.members.iter().copied());
    }
    affected.sort_unstable();
    affected.dedup();
    effects.role_changes = sync_roles(tx, &affected, now).await?;
    Ok((group(tx, &current.id.to_string()).await?, effects))
}

/// Deletes a group; its members' roles are recomputed.
pub async fn delete_group(tx: &mut TenantTx, id: &str, now: OffsetDateTime) -> ScimResult<Effects> {
    lock_group(tx, id).await?;
    let current = group(tx, id).await?;
    sqlx::query("DELETE FROM app.scim_groups WHERE id = $1")
        .bind(current.id)
        .execute(tx.conn())
        .await?;
    Ok(Effects {
        members_removed: current.members.len(),
        role_changes: sync_roles(tx, &current.members, now).await?,
        ..Effects::default()
    })
}
