//! Administrative operations that run as the owner role, outside any tenant's handle.

use procuhelp_core::OrgId;
use sqlx::PgPool;

use crate::{Error, Result};

/// Creates an organisation. Runs on the **owner** pool: the runtime role may only read
/// its own organisation row.
///
/// The owner is bound by row-level security too (it is FORCED), so this enters the new
/// organisation for its own transaction before inserting it.
pub async fn create_organisation(owner: &PgPool, name: &str) -> Result<OrgId> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::Invalid {
            field: "name",
            problem: "must be 1 to 200 characters",
        });
    }
    let org = OrgId::new();
    let mut tx = owner.begin().await?;
    sqlx::query("SELECT set_config('procuhelp.org_id', $1, true)")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO app.organisations (id, name) VALUES ($1, $2)")
        .bind(org.as_uuid())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%org, "organisation created");
    Ok(org)
}
