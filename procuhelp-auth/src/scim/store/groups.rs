//! Groups as SCIM sees them (all of the organisation's SCIM groups), with their members.

use procuhelp_tenancy::TenantTx;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{Filter, FilterAttribute};
use crate::scim::model::{Page, ResourceKind, meta};

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

/// Locks group `id` for the rest of the transaction (see `users::lock_user`).
pub(super) async fn lock_group(tx: &mut TenantTx, id: &str) -> ScimResult<()> {
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
