//! Users as SCIM sees them: only those it owns (`scim_managed`) and has not deleted. A
//! user SCIM does not manage is a 404, like an unknown id.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{Filter, FilterAttribute};
use crate::scim::model::{EmailEntry, Page, ResourceKind, UserInput, meta};

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

    /// The user as a PATCH starts from: every attribute, `active` unchanged.
    pub(super) fn input(&self) -> UserInput {
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
pub(super) async fn lock_user(tx: &mut TenantTx, id: &str) -> ScimResult<()> {
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
