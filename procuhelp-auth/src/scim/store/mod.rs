//! SCIM Users and Groups in the tenant tables: every function takes the request's
//! [`TenantTx`], validates everything before the first write, and reports what it did
//! ([`Effects`]) so that the caller records it in the audit log in the same transaction.
//!
//! **Ownership.** SCIM sees and changes only the users it owns (`scim_managed`): those it
//! created, and those an admin handed over ([`hand_over`], audited). Every other user is
//! invisible to SCIM — 404 by id, absent from lists and filters, refused as a group
//! member — and a create naming their userName or address is refused
//! ([`ScimError::not_managed`]) instead of adopting them, so the SCIM token can never take
//! over a local or break-glass account (issue #11, finding 7).
//!
//! Deprovisioning (`active: false`, or DELETE) disables the user, marks them
//! `deprovisioned_by_scim` and revokes every session in the same transaction. A SCIM
//! DELETE keeps the row (the audit trail refers to it) with `scim_deleted_at` set: SCIM no
//! longer sees it, and a later POST with the same userName or address revives it.
//! `active: true` never lifts an admin's disable (`disabled_by_admin`):
//! [`ScimError::disabled_by_admin`].

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::{ScimError, ScimResult};
use super::filter::{Filter, FilterAttribute};
use super::model::{EmailEntry, GroupInput, Page, ResourceKind, UserInput, meta, parse_emails};
use crate::directory::Email;
use crate::scim_patch::{GroupChange, UserAttribute, UserChange};
use crate::{AuthError, Role, session_store};

/// A user as SCIM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUser {
    /// The id.
    pub id: UserId,
    /// `userName` (the sign-in address for users SCIM never named).
    pub user_name: String,
    /// The sign-in address derived from userName or emails.
    pub email: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
    /// `emails`.
    pub emails: Vec<EmailEntry>,
    /// `active`.
    pub active: bool,
    /// Groups (id, displayName), read-only.
    pub groups: Vec<(Uuid, String)>,
    /// Created at.
    pub created: OffsetDateTime,
    /// Last changed at.
    pub changed: OffsetDateTime,
}

impl ScimUser {
    /// The RFC 7643 representation; `base` is `https://host/scim/v2/{org}`.
    pub fn to_json(&self, base: &str) -> Value {
        let location = format!("{base}/Users/{}", self.id);
        let mut v = json!({
            "schemas": [ResourceKind::User.schema()],
            "id": self.id.to_string(),
            "userName": self.user_name,
            "active": self.active,
            "meta": meta(ResourceKind::User, &location, self.created, self.changed),
        });
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        if let Some(x) = &self.external_id {
            obj.insert("externalId".into(), json!(x));
        }
        if let Some(x) = &self.display_name {
            obj.insert("displayName".into(), json!(x));
        }
        if self.given_name.is_some() || self.family_name.is_some() {
            let mut name = serde_json::Map::new();
            if let Some(g) = &self.given_name {
                name.insert("givenName".into(), json!(g));
            }
            if let Some(f) = &self.family_name {
                name.insert("familyName".into(), json!(f));
            }
            obj.insert("name".into(), Value::Object(name));
        }
        if !self.emails.is_empty() {
            obj.insert("emails".into(), json!(self.emails));
        }
        if !self.groups.is_empty() {
            let groups: Vec<Value> = self
                .groups
                .iter()
                .map(|(id, name)| {
                    json!({ "value": id.to_string(), "$ref": format!("{base}/Groups/{id}"), "display": name })
                })
                .collect();
            obj.insert("groups".into(), Value::Array(groups));
        }
        v
    }

    fn input(&self) -> UserInput {
        UserInput {
            user_name: self.user_name.clone(),
            external_id: self.external_id.clone(),
            display_name: self.display_name.clone(),
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            emails: self.emails.clone(),
            // Unchanged unless a PATCH operation names it.
            active: None,
        }
    }
}

/// A group as SCIM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    /// The id.
    pub id: Uuid,
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Member user ids.
    pub members: Vec<Uuid>,
    /// Created at.
    pub created: OffsetDateTime,
    /// Last changed at.
    pub changed: OffsetDateTime,
}

impl ScimGroup {
    /// The RFC 7643 representation; `base` is `https://host/scim/v2/{org}`.
    pub fn to_json(&self, base: &str) -> Value {
        let location = format!("{base}/Groups/{}", self.id);
        let mut v = json!({
            "schemas": [ResourceKind::Group.schema()],
            "id": self.id.to_string(),
            "displayName": self.display_name,
            "meta": meta(ResourceKind::Group, &location, self.created, self.changed),
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(x) = &self.external_id {
                obj.insert("externalId".into(), json!(x));
            }
            if !self.members.is_empty() {
                let members: Vec<Value> = self
                    .members
                    .iter()
                    .map(|id| json!({ "value": id.to_string(), "$ref": format!("{base}/Users/{id}") }))
                    .collect();
                obj.insert("members".into(), Value::Array(members));
            }
        }
        v
    }
}

/// A role changed because group membership or the mapping changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// Whose.
    pub user: UserId,
    /// Before.
    pub from: Role,
    /// After.
    pub to: Role,
    /// Sessions revoked (a privilege change ends every session).
    pub sessions_revoked: u64,
}

/// What a SCIM write did, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// The user was deprovisioned now, with this many sessions revoked.
    pub deprovisioned: Option<u64>,
    /// The user was re-activated now.
    pub reactivated: bool,
    /// A deleted user was revived by POST.
    pub revived: bool,
    /// Roles that changed.
    pub role_changes: Vec<RoleChange>,
    /// Members added to a group.
    pub members_added: usize,
    /// Members removed from a group.
    pub members_removed: usize,
}

type UserRow = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Value>,
    String,
    OffsetDateTime,
    OffsetDateTime,
    Vec<Uuid>,
    Vec<String>,
);

const USER_SELECT: &str = "SELECT u.id, COALESCE(u.scim_user_name, u.email), u.email, u.scim_external_id,
    u.scim_display_name, u.given_name, u.family_name, u.scim_emails, u.status, u.created_at, u.changed_at,
    ARRAY(SELECT g.id FROM app.scim_group_members m JOIN app.scim_groups g
          ON g.org_id = m.org_id AND g.id = m.group_id
          WHERE m.org_id = u.org_id AND m.user_id = u.id ORDER BY g.id),
    ARRAY(SELECT g.display_name FROM app.scim_group_members m JOIN app.scim_groups g
          ON g.org_id = m.org_id AND g.id = m.group_id
          WHERE m.org_id = u.org_id AND m.user_id = u.id ORDER BY g.id)
    FROM app.users u WHERE u.scim_managed AND u.scim_deleted_at IS NULL";

fn user_from(row: UserRow) -> ScimResult<ScimUser> {
    let (
        id,
        user_name,
        email,
        external_id,
        display_name,
        given,
        family,
        emails,
        status,
        created,
        changed,
        gids,
        gnames,
    ) = row;
    let emails = match emails {
        Some(v) => serde_json::from_value(v).map_err(|_| ScimError::unavailable())?,
        None => Vec::new(),
    };
    Ok(ScimUser {
        id: UserId::from_uuid(id).map_err(|_| ScimError::unavailable())?,
        user_name,
        email,
        external_id,
        display_name,
        given_name: given,
        family_name: family,
        emails,
        active: status == "active",
        groups: gids.into_iter().zip(gnames).collect(),
        created,
        changed,
    })
}

/// The user `id`, or 404 (also for ids of other organisations, deleted users, users SCIM
/// does not manage and ids that are not UUIDs).
pub async fn user(tx: &mut TenantTx, id: &str) -> ScimResult<ScimUser> {
    let id: UserId = id.parse().map_err(|_| ScimError::not_found())?;
    let row: Option<UserRow> = sqlx::query_as(&format!("{USER_SELECT} AND u.id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(tx.conn())
        .await?;
    row.map(user_from)
        .transpose()?
        .ok_or(ScimError::not_found())
}

/// Whether `id` is a user of this organisation that SCIM does not manage: SCIM got a 404
/// for them, and the caller records the attempt (an id SCIM was never shown).
pub async fn is_unmanaged_user(tx: &mut TenantTx, id: &str) -> ScimResult<bool> {
    let Ok(id) = id.parse::<UserId>() else {
        return Ok(false);
    };
    let found: Option<bool> =
        sqlx::query_scalar("SELECT NOT scim_managed FROM app.users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    Ok(found.unwrap_or(false))
}

/// Locks user `id` for the rest of the transaction, so that concurrent writes to one
/// user apply one after the other (no lost update between read and write).
async fn lock_user(tx: &mut TenantTx, id: &str) -> ScimResult<()> {
    let Ok(id) = id.parse::<UserId>() else {
        return Err(ScimError::not_found());
    };
    sqlx::query("SELECT 1 FROM app.users WHERE id = $1 FOR UPDATE")
        .bind(id.as_uuid())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A page of users matching `filter`, oldest first, with the total.
pub async fn list_users(
    tx: &mut TenantTx,
    filter: Option<&Filter>,
    page: Page,
) -> ScimResult<(i64, Vec<ScimUser>)> {
    let (clause, value) = match filter {
        None => ("", None),
        Some(f) => match f.attribute {
            FilterAttribute::UserName => (
                " AND lower(COALESCE(u.scim_user_name, u.email)) = lower($1)",
                Some(f.value.as_str()),
            ),
            FilterAttribute::ExternalId => (" AND u.scim_external_id = $1", Some(f.value.as_str())),
            FilterAttribute::DisplayName => {
                (" AND u.scim_display_name = $1", Some(f.value.as_str()))
            }
        },
    };
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM app.users u
         WHERE u.scim_managed AND u.scim_deleted_at IS NULL AND ($1::text IS NULL OR true){clause}"
    ))
    .bind(value)
    .fetch_one(tx.conn())
    .await?;
    if page.count == 0 {
        return Ok((total, Vec::new()));
    }
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "{USER_SELECT} AND ($1::text IS NULL OR true){clause} ORDER BY u.created_at, u.id OFFSET $2 LIMIT $3"
    ))
    .bind(value)
    .bind(page.offset())
    .bind(i64::from(page.count))
    .fetch_all(tx.conn())
    .await?;
    let users = rows
        .into_iter()
        .map(user_from)
        .collect::<ScimResult<Vec<_>>>()?;
    Ok((total, users))
}

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

fn conflict(e: AuthError) -> ScimError {
    match e {
        AuthError::Conflict(_) => {
            ScimError::uniqueness("userName, e-mail or externalId already in use")
        }
        other => other.into(),
    }
}

fn storage(e: sqlx::Error) -> ScimError {
    match procuhelp_tenancy::Error::from(e) {
        procuhelp_tenancy::Error::Conflict { .. } => {
            ScimError::uniqueness("userName, e-mail, displayName or externalId already in use")
        }
        other => other.into(),
    }
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

fn apply_user_change(next: &mut UserInput, change: &UserChange) -> ScimResult<()> {
    match change {
        UserChange::Active(a) => next.active = Some(*a),
        UserChange::UserName(v) => next.user_name = v.trim().to_owned(),
        UserChange::DisplayName(v) => next.display_name = Some(v.trim().to_owned()),
        UserChange::ExternalId(v) => next.external_id = Some(v.trim().to_owned()),
        UserChange::GivenName(v) => next.given_name = Some(v.trim().to_owned()),
        UserChange::FamilyName(v) => next.family_name = Some(v.trim().to_owned()),
        UserChange::WorkEmail(v) => {
            Email::parse(v).map_err(|_| ScimError::invalid_value("invalid e-mail address"))?;
            let value = v.trim().to_owned();
            match next.emails.iter_mut().find(|e| {
                e.kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("work"))
            }) {
                Some(e) => e.value = value,
                None => {
                    let primary = !next.emails.iter().any(|e| e.primary == Some(true));
                    next.emails.push(EmailEntry {
                        value,
                        kind: Some("work".to_owned()),
                        primary: Some(primary),
                    });
                }
            }
        }
        UserChange::Emails { replace, value } => {
            let emails = parse_emails(Some(value))?;
            if *replace {
                next.emails = emails;
            } else {
                for e in emails {
                    match next
                        .emails
                        .iter_mut()
                        .find(|x| x.value.eq_ignore_ascii_case(&e.value))
                    {
                        Some(x) => *x = e,
                        None => next.emails.push(e),
                    }
                }
            }
            // Re-check the limits on the merged list.
            parse_emails(Some(&json!(next.emails)))?;
        }
        UserChange::Remove(attr) => match attr {
            UserAttribute::ExternalId => next.external_id = None,
            UserAttribute::DisplayName => next.display_name = None,
            UserAttribute::Name => {
                next.given_name = None;
                next.family_name = None;
            }
            UserAttribute::GivenName => next.given_name = None,
            UserAttribute::FamilyName => next.family_name = None,
            UserAttribute::Emails => next.emails.clear(),
        },
    }
    Ok(())
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
        let revoked = session_store::revoke_all(tx, id, None, now)
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
                 ORDER BY CASE r.role WHEN 'admin' THEN 0 WHEN 'approver' THEN 1
                                      WHEN 'requester' THEN 2 ELSE 3 END
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
        let sessions_revoked = session_store::revoke_all(tx, user, None, now)
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

type GroupRow = (
    Uuid,
    String,
    Option<String>,
    OffsetDateTime,
    OffsetDateTime,
    Vec<Uuid>,
);

const GROUP_SELECT: &str = "SELECT g.id, g.display_name, g.external_id, g.created_at, g.changed_at,
    ARRAY(SELECT m.user_id FROM app.scim_group_members m
          WHERE m.org_id = g.org_id AND m.group_id = g.id ORDER BY m.user_id)
    FROM app.scim_groups g WHERE true";

fn group_from(row: GroupRow) -> ScimGroup {
    let (id, display_name, external_id, created, changed, members) = row;
    ScimGroup {
        id,
        display_name,
        external_id,
        members,
        created,
        changed,
    }
}

/// The group `id`, or 404.
pub async fn group(tx: &mut TenantTx, id: &str) -> ScimResult<ScimGroup> {
    let id: Uuid = id.parse().map_err(|_| ScimError::not_found())?;
    let row: Option<GroupRow> = sqlx::query_as(&format!("{GROUP_SELECT} AND g.id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    row.map(group_from).ok_or(ScimError::not_found())
}

/// Locks group `id` for the rest of the transaction (see [`lock_user`]).
async fn lock_group(tx: &mut TenantTx, id: &str) -> ScimResult<()> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Err(ScimError::not_found());
    };
    sqlx::query("SELECT 1 FROM app.scim_groups WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A page of groups matching `filter`, oldest first, with the total.
pub async fn list_groups(
    tx: &mut TenantTx,
    filter: Option<&Filter>,
    page: Page,
) -> ScimResult<(i64, Vec<ScimGroup>)> {
    let (clause, value) = match filter {
        None => ("", None),
        Some(f) => match f.attribute {
            FilterAttribute::DisplayName => (
                " AND lower(g.display_name) = lower($1)",
                Some(f.value.as_str()),
            ),
            FilterAttribute::ExternalId => (" AND g.external_id = $1", Some(f.value.as_str())),
            FilterAttribute::UserName => {
                return Err(ScimError::invalid_filter("unsupported filter attribute"));
            }
        },
    };
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM app.scim_groups g WHERE ($1::text IS NULL OR true){clause}"
    ))
    .bind(value)
    .fetch_one(tx.conn())
    .await?;
    if page.count == 0 {
        return Ok((total, Vec::new()));
    }
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "{GROUP_SELECT} AND ($1::text IS NULL OR true){clause} ORDER BY g.created_at, g.id OFFSET $2 LIMIT $3"
    ))
    .bind(value)
    .bind(page.offset())
    .bind(i64::from(page.count))
    .fetch_all(tx.conn())
    .await?;
    Ok((total, rows.into_iter().map(group_from).collect()))
}

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
    if members.len() > super::model::MAX_MEMBERS * 10 {
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
