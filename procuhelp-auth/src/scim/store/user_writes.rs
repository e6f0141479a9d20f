//! Provisioning users: create (or revive), replace, patch, deprovision and delete. Every
//! write validates before it stores, and never touches a user SCIM does not own.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outcome::{Effects, conflict, storage};
use super::roles::sync_roles;
use super::user_changes::apply_user_change;
use super::users::{ScimUser, lock_user, user};
use crate::directory::Email;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::model::{EmailEntry, UserInput};
use crate::scim::patch::UserChange;
use crate::session;

/// The sign-in address: userName if it is an address (Entra's default: the UPN), else
/// the primary, work or first e-mail, else a placeholder in the reserved `.invalid`
/// domain that no mail system or identity provider can ever assert.
fn login_email(user_name: &str, emails: &[EmailEntry], id: UserId) -> String {
    if let Ok(e) = Email::parse(user_name) {
        return e.as_str().to_owned();
    }
    let pick = emails
        .iter()
        .find(|e| e.primary == Some(true))
        .or_else(|| {
            emails.iter().find(|e| {
                e.kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| emails.first());
    if let Some(e) = pick.and_then(|e| Email::parse(&e.value).ok()) {
        return e.as_str().to_owned();
    }
    format!("{}@scim.invalid", id.as_uuid().simple())
}

/// The product's display name (1 to 200 characters): displayName, else the name parts;
/// `None` when SCIM names neither (an adopted user keeps the name an admin gave them, a
/// new user gets their userName).
fn product_name(input: &UserInput) -> Option<String> {
    let parts = [input.given_name.as_deref(), input.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = match input.display_name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None if !parts.is_empty() => parts,
        None => return None,
    };
    Some(name.chars().take(200).collect())
}

/// Creates a user (or revives one SCIM deleted with the same userName or address).
pub async fn create_user(
    tx: &mut TenantTx,
    input: UserInput,
    now: OffsetDateTime,
) -> ScimResult<(ScimUser, Effects)> {
    // A new (or revived) user is active unless the body says otherwise.
    let input = UserInput {
        active: Some(input.active.unwrap_or(true)),
        ..input
    };
    let new_id = UserId::new();
    let email = login_email(&input.user_name, &input.emails, new_id);
    let clash = clashes(tx, &input, &email).await?;
    // Never adopt: a user SCIM does not own keeps their account, whatever SCIM sends.
    if clash.iter().any(|c| !c.managed) {
        return Err(ScimError::not_managed());
    }
    let mut effects = Effects::default();
    let id = match clash.as_slice() {
        [] => {
            sqlx::query(
                "INSERT INTO app.users (org_id, id, email, display_name, role, status, created_at, changed_at,
                     scim_managed)
                 VALUES ($1, $2, $3, $4, 'read_only', 'active', $5, $5, true)",
            )
            .bind(tx.org().as_uuid())
            .bind(new_id.as_uuid())
            .bind(&email)
            .bind(
                product_name(&input)
                    .unwrap_or_else(|| input.user_name.chars().take(200).collect()),
            )
            .bind(now)
            .execute(tx.conn())
            .await
            .map_err(storage)?;
            new_id
        }
        [revivable] if revivable.deleted => {
            effects.revived = true;
            revivable.id
        }
        _ => {
            return Err(ScimError::uniqueness(
                "userName, e-mail or externalId already in use",
            ));
        }
    };
    write_user(tx, id, &input, now, true, &mut effects).await?;
    let created = user(tx, &id.to_string()).await?;
    Ok((created, effects))
}

/// A user whose userName, sign-in address or externalId a new user would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clash {
    id: UserId,
    deleted: bool,
    managed: bool,
}

/// The users (at most two) a create of `input` with sign-in address `email` collides
/// with.
async fn clashes(tx: &mut TenantTx, input: &UserInput, email: &str) -> ScimResult<Vec<Clash>> {
    let rows: Vec<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT id, scim_deleted_at IS NOT NULL, scim_managed FROM app.users
         WHERE lower(COALESCE(scim_user_name, email)) = lower($1) OR email = $2
            OR lower(scim_user_name) = lower($1)
            OR ($3::text IS NOT NULL AND scim_external_id = $3)
         ORDER BY scim_managed, id
         LIMIT 2",
    )
    .bind(&input.user_name)
    .bind(email)
    .bind(input.external_id.as_deref())
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter()
        .map(|(id, deleted, managed)| {
            Ok(Clash {
                id: UserId::from_uuid(id).map_err(|_| ScimError::unavailable())?,
                deleted,
                managed,
            })
        })
        .collect()
}

/// The user a refused create of `input` concerned (for the audit record of the
/// refusal): a user SCIM does not manage, else the deleted user it would have revived.
pub async fn create_target(tx: &mut TenantTx, input: &UserInput) -> ScimResult<Option<UserId>> {
    let email = login_email(&input.user_name, &input.emails, UserId::new());
    Ok(clashes(tx, input, &email).await?.first().map(|c| c.id))
}

/// Replaces every attribute of a user (PUT).
pub async fn replace_user(
    tx: &mut TenantTx,
    id: &str,
    input: UserInput,
    now: OffsetDateTime,
) -> ScimResult<(ScimUser, Effects)> {
    lock_user(tx, id).await?;
    let current = user(tx, id).await?;
    let mut effects = Effects::default();
    write_user(tx, current.id, &input, now, false, &mut effects).await?;
    Ok((user(tx, id).await?, effects))
}

/// Applies a parsed PATCH body to a user, whole or not at all.
pub async fn patch_user(
    tx: &mut TenantTx,
    id: &str,
    changes: &[UserChange],
    now: OffsetDateTime,
) -> ScimResult<(ScimUser, Effects)> {
    lock_user(tx, id).await?;
    let current = user(tx, id).await?;
    let mut next = current.input();
    for change in changes {
        apply_user_change(&mut next, change)?;
    }
    let mut effects = Effects::default();
    write_user(tx, current.id, &next, now, false, &mut effects).await?;
    Ok((user(tx, id).await?, effects))
}

/// Writes `input` over user `id` (all SCIM attributes, the derived sign-in address and
/// product name), then applies `active` if given.
async fn write_user(
    tx: &mut TenantTx,
    id: UserId,
    input: &UserInput,
    now: OffsetDateTime,
    revive: bool,
    effects: &mut Effects,
) -> ScimResult<()> {
    let email = login_email(&input.user_name, &input.emails, id);
    let emails = if input.emails.is_empty() {
        None
    } else {
        Some(json!(input.emails))
    };
    // `scim_managed` in the WHERE clause: SCIM writes only to users it owns (the caller
    // found the user through SCIM's view; this holds even if a caller did not).
    let written: Option<bool> = sqlx::query_scalar(
        "UPDATE app.users u SET email = $2, display_name = COALESCE($3, u.display_name), scim_user_name = $4,
             scim_external_id = $5, scim_display_name = $6, given_name = $7, family_name = $8,
             scim_emails = $9, scim_deleted_at = NULL, changed_at = $10
         WHERE u.id = $1 AND u.scim_managed AND (u.scim_deleted_at IS NULL OR $11)
         RETURNING true",
    )
    .bind(id.as_uuid())
    .bind(&email)
    .bind(product_name(input))
    .bind(&input.user_name)
    .bind(input.external_id.as_deref())
    .bind(input.display_name.as_deref())
    .bind(input.given_name.as_deref())
    .bind(input.family_name.as_deref())
    .bind(emails)
    .bind(now)
    .bind(revive)
    .fetch_optional(tx.conn())
    .await
    .map_err(storage)?;
    if written.is_none() {
        return Err(ScimError::not_found());
    }
    if let Some(active) = input.active {
        set_active(tx, id, active, now, effects).await?;
    }
    if effects.revived {
        effects.role_changes = sync_roles(tx, &[id.as_uuid()], now).await?;
    }
    Ok(())
}

/// Sets `active`: false deprovisions (disabled, `deprovisioned_by_scim`, every session
/// revoked, all in this transaction); true re-activates — unless an admin disabled the
/// user: their decision wins ([`ScimError::disabled_by_admin`]; the whole request is
/// refused, nothing of it applies).
async fn set_active(
    tx: &mut TenantTx,
    id: UserId,
    active: bool,
    now: OffsetDateTime,
    effects: &mut Effects,
) -> ScimResult<()> {
    let (status, deprovisioned, disabled_by_admin): (String, bool, bool) = sqlx::query_as(
        "SELECT status, deprovisioned_by_scim, disabled_by_admin FROM app.users WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(tx.conn())
    .await?;
    if active && disabled_by_admin {
        return Err(ScimError::disabled_by_admin());
    }
    if active && status != "active" {
        sqlx::query(
            "UPDATE app.users SET status = 'active', deprovisioned_by_scim = false, changed_at = $2
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
        effects.reactivated = true;
    } else if !active && (status == "active" || !deprovisioned) {
        sqlx::query(
            "UPDATE app.users SET status = 'disabled', deprovisioned_by_scim = true, changed_at = $2
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
        let revoked = session::revoke_all(tx, id, None, now)
            .await
            .map_err(conflict)?;
        effects.deprovisioned = Some(revoked);
    }
    Ok(())
}

/// DELETE: deprovisions the user, leaves every group, and hides them from SCIM.
pub async fn delete_user(tx: &mut TenantTx, id: &str, now: OffsetDateTime) -> ScimResult<Effects> {
    lock_user(tx, id).await?;
    let current = user(tx, id).await?;
    let mut effects = Effects::default();
    set_active(tx, current.id, false, now, &mut effects).await?;
    if effects.deprovisioned.is_none() {
        effects.deprovisioned = Some(0);
    }
    sqlx::query("DELETE FROM app.scim_group_members WHERE user_id = $1")
        .bind(current.id.as_uuid())
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "UPDATE app.users SET scim_deleted_at = $2, scim_user_name = NULL, scim_external_id = NULL,
             changed_at = $2 WHERE id = $1",
    )
    .bind(current.id.as_uuid())
    .bind(now)
    .execute(tx.conn())
    .await?;
    effects.role_changes = sync_roles(tx, &[current.id.as_uuid()], now).await?;
    Ok(effects)
}
