//! Administrative operations that run as the owner role, outside any tenant's handle.

use procuhelp_core::OrgId;
use sqlx::PgPool;

use crate::{Error, Result};

/// Refuses (naming `what` was asked) unless `conn`'s role is the schema owner: every other
/// role is bound by row-level security on `app.organisations`, so work meant to see or
/// change every organisation would silently see none.
pub(crate) async fn require_owner(conn: &mut sqlx::PgConnection, what: &str) -> Result<()> {
    let is_owner: bool = sqlx::query_scalar(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class
         WHERE oid = 'app.organisations'::regclass",
    )
    .fetch_one(&mut *conn)
    .await?;
    if is_owner {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} needs the schema owner's connection (app.organisations is bound by \
             row-level security for every other role)"
        )))
    }
}

/// Creates an organisation. Runs on the **owner** pool: the runtime role may only read
/// its own organisation row.
///
/// The owner is bound by row-level security too (it is FORCED), so this enters the new
/// organisation for its own transaction before inserting it.
pub async fn create_organisation(owner: &PgPool, name: &str) -> Result<OrgId> {
    create_organisation_in(
        owner,
        name,
        crate::residency::deployment_region(owner).await?,
    )
    .await
}

/// Creates an organisation whose data lives in `region` (see
/// [`residency`](crate::residency)); a deployment serves only the organisations of its
/// own region. Runs on the **owner** pool.
pub async fn create_organisation_in(
    owner: &PgPool,
    name: &str,
    region: crate::residency::Region,
) -> Result<OrgId> {
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
    sqlx::query("INSERT INTO app.organisations (id, name, data_region) VALUES ($1, $2, $3)")
        .bind(org.as_uuid())
        .bind(name)
        .bind(region.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%org, %region, "organisation created");
    Ok(org)
}

/// The id of every organisation this deployment serves (its region's:
/// [`residency`](crate::residency)), for jobs that visit each one (key rotation, the
/// retention purge, the SSO self-check): another region's could not be entered. Runs on
/// the **owner** pool; [`residency::organisation_regions`](crate::residency::organisation_regions)
/// lists them all.
///
/// `app.organisations` FORCEs row-level security, and only its owner has a policy that
/// lists every row (migration 0014). Any other role would silently see none (or only the
/// organisation it entered), so such a pool is refused rather than visiting nothing.
pub async fn organisation_ids(owner: &PgPool) -> Result<Vec<OrgId>> {
    let mut tx = owner.begin().await?;
    require_owner(&mut tx, "listing every organisation").await?;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT o.id FROM app.organisations o JOIN app.deployment d ON d.region = o.data_region
         ORDER BY o.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    ids.into_iter()
        .map(|id| OrgId::from_uuid(id).map_err(|_| Error::Config("bad organisation id".to_owned())))
        .collect()
}
