//! A repository over the testkit's tenant table `app.test_records`, written the way an
//! embedder writes one for their own table: methods take the [`TenantTx`] (the tenant
//! comes from the handle, never from an argument), and the one-round-trip reads are
//! [`ScopedRead`]s.

use procuhelp_core::{OrgId, UserId};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::{Error, Result, ScopedRead, TenantDb, TenantTx};

/// A row of `app.test_records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Owning organisation.
    pub org_id: OrgId,
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `invited`, `active`, `suspended` or `archived`.
    pub status: String,
}

impl<'r> sqlx::FromRow<'r, PgRow> for TestRecord {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let org: Uuid = row.try_get("org_id")?;
        Ok(Self {
            org_id: OrgId::from_uuid(org).map_err(|_| sqlx::Error::ColumnDecode {
                index: "org_id".to_owned(),
                source: "invalid organisation id".into(),
            })?,
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
        })
    }
}

const COLUMNS: &str = "org_id, id, name, status";
const GET_ONCE: ScopedRead = ScopedRead::new(
    "SELECT org_id, id, name, status FROM app.test_records r
     WHERE r.org_id = tenant.org AND r.id = $2",
);
const FIRST_PAGE_ONCE: ScopedRead = ScopedRead::new(
    "SELECT org_id, id, name, status FROM app.test_records r
     WHERE r.org_id = tenant.org ORDER BY r.name, r.id LIMIT $2",
);

/// Tenant-scoped access to `app.test_records`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestRecords;

impl TestRecords {
    /// Inserts a record (status `invited`) in the transaction's organisation.
    pub async fn create(
        &self,
        tx: &mut TenantTx,
        name: &str,
        created_by: UserId,
    ) -> Result<TestRecord> {
        // org_id comes from the handle, and WITH CHECK would refuse any other.
        let org = tx.org();
        Ok(sqlx::query_as(&format!(
            "INSERT INTO app.test_records (org_id, id, name, status, created_by)
             VALUES ($1, $2, $3, 'invited', $4) RETURNING {COLUMNS}"
        ))
        .bind(org.as_uuid())
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(created_by.as_uuid())
        .fetch_one(tx.conn())
        .await?)
    }

    /// One record by id, or [`Error::NotFound`] (also for another organisation's id).
    pub async fn get(&self, tx: &mut TenantTx, id: Uuid) -> Result<TestRecord> {
        // No org_id predicate: row-level security supplies it.
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM app.test_records WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::NotFound)
    }

    /// Records by name then id, at most `limit`.
    pub async fn list(&self, tx: &mut TenantTx, limit: u32) -> Result<Vec<TestRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM app.test_records ORDER BY name, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(tx.conn())
        .await?)
    }

    /// Changes a record's status (`invited`, `active`, `suspended` or `archived`).
    pub async fn set_status(
        &self,
        tx: &mut TenantTx,
        id: Uuid,
        status: &str,
    ) -> Result<TestRecord> {
        sqlx::query_as(&format!(
            "UPDATE app.test_records SET status = $2 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(status)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::NotFound)
    }

    /// Deletes a record, or [`Error::NotFound`].
    pub async fn delete(&self, tx: &mut TenantTx, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM app.test_records WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// [`get`](Self::get) in one round trip, outside any transaction.
    pub async fn get_once(&self, db: &TenantDb, org: OrgId, id: Uuid) -> Result<TestRecord> {
        db.fetch_optional_once(org, GET_ONCE.query_as().bind(id))
            .await?
            .ok_or(Error::NotFound)
    }

    /// The first page of [`list`](Self::list) in one round trip.
    pub async fn first_page_once(
        &self,
        db: &TenantDb,
        org: OrgId,
        limit: u32,
    ) -> Result<Vec<TestRecord>> {
        db.fetch_all_once(org, FIRST_PAGE_ONCE.query_as().bind_int(i64::from(limit)))
            .await
    }
}
