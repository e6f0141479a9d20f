//! Suppliers: the server's own tenant table (`examples/server/migrations/10000_suppliers.sql`,
//! declared with `app.declare_tenant_table` like any embedder's table), and the pattern its
//! other repositories follow.
//!
//! A repository method takes the [`TenantTx`] and never an `OrgId`: the tenant comes from
//! the handle, so a caller cannot ask for another organisation's rows, and inserts take
//! `org_id` from the handle too.

use async_trait::async_trait;
use procuhelp_core::{OrgId, SupplierId, UserId};
use serde::Serialize;
use time::OffsetDateTime;

use sqlx::Row as _;
use sqlx::postgres::PgRow;

use procuhelp_tenancy::{EncryptedColumn, Error, Result, ScopedRead, TenantDb, TenantTx};

/// The server's encrypted columns: supplier bank details (AAD: org, `suppliers`, `iban`,
/// row). Part of [`crate::database::MIGRATIONS`], so key rotation re-encrypts them.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[EncryptedColumn {
    table: "app.suppliers",
    column: "iban_sealed",
    field_table: "suppliers",
    field_column: "iban",
}];

/// Lifecycle of a supplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplierStatus {
    /// Invited, not yet onboarded.
    Invited,
    /// Onboarded and usable.
    Active,
    /// Temporarily blocked.
    Suspended,
    /// Kept for records only.
    Archived,
}

impl SupplierStatus {
    /// The stable string stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SupplierStatus::Invited => "invited",
            SupplierStatus::Active => "active",
            SupplierStatus::Suspended => "suspended",
            SupplierStatus::Archived => "archived",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "invited" => SupplierStatus::Invited,
            "active" => SupplierStatus::Active,
            "suspended" => SupplierStatus::Suspended,
            "archived" => SupplierStatus::Archived,
            _ => {
                return Err(Error::Invalid {
                    field: "status",
                    problem: "unknown status",
                });
            }
        })
    }
}

impl std::str::FromStr for SupplierStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A validated new supplier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSupplier {
    name: String,
    country: String,
    vat_id: Option<String>,
}

impl NewSupplier {
    /// Validates a name (1–200 characters, no control characters) and an ISO 3166-1
    /// alpha-2 country code.
    pub fn new(name: &str, country: &str) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::Invalid {
                field: "name",
                problem: "must be 1 to 200 characters",
            });
        }
        if name.chars().any(char::is_control) {
            return Err(Error::Invalid {
                field: "name",
                problem: "must not contain control characters",
            });
        }
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::Invalid {
                field: "country",
                problem: "must be an ISO 3166-1 alpha-2 code",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            country: country.to_owned(),
            vat_id: None,
        })
    }

    /// Adds a VAT id: 2–32 uppercase letters and digits, spaces removed.
    pub fn with_vat_id(mut self, vat_id: &str) -> Result<Self> {
        let compact: String = vat_id.chars().filter(|c| !c.is_whitespace()).collect();
        if !(2..=32).contains(&compact.len())
            || !compact
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(Error::Invalid {
                field: "vat_id",
                problem: "must be 2 to 32 uppercase letters and digits",
            });
        }
        self.vat_id = Some(compact);
        Ok(self)
    }
}

/// A supplier as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supplier {
    /// Owning organisation.
    pub org_id: OrgId,
    /// Identifier.
    pub id: SupplierId,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
    /// VAT id, if known.
    pub vat_id: Option<String>,
    /// Lifecycle status.
    pub status: SupplierStatus,
    /// Who created it.
    pub created_by: UserId,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "org_id, id, name, country, vat_id, status, created_by, created_at, updated_at";

impl<'r> sqlx::FromRow<'r, PgRow> for Supplier {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        // Decoding works for binary (bound queries) and text (one-shot reads) results.
        let id = |column: &str| -> sqlx::Result<uuid::Uuid> { row.try_get(column) };
        let corrupt = |column: &str| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: "invalid value in database".into(),
        };
        let status: String = row.try_get("status")?;
        Ok(Supplier {
            org_id: OrgId::from_uuid(id("org_id")?).map_err(|_| corrupt("org_id"))?,
            id: SupplierId::from_uuid(id("id")?).map_err(|_| corrupt("id"))?,
            name: row.try_get("name")?,
            country: row.try_get("country")?,
            vat_id: row.try_get("vat_id")?,
            status: SupplierStatus::parse(&status).map_err(|_| corrupt("status"))?,
            created_by: UserId::from_uuid(id("created_by")?).map_err(|_| corrupt("created_by"))?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Tenant-scoped access to suppliers.
#[async_trait]
pub trait SupplierRepository: Send + Sync {
    /// Creates a supplier in the transaction's organisation, status `invited`.
    async fn create(
        &self,
        tx: &mut TenantTx,
        new: NewSupplier,
        created_by: UserId,
    ) -> Result<Supplier>;
    /// One supplier by id, or [`Error::NotFound`] (also for another org's id).
    async fn get(&self, tx: &mut TenantTx, id: SupplierId) -> Result<Supplier>;
    /// Suppliers ordered by name then id, at most `limit` (capped at 500) after `after`.
    async fn list(
        &self,
        tx: &mut TenantTx,
        after: Option<(&str, SupplierId)>,
        limit: u32,
    ) -> Result<Vec<Supplier>>;
    /// Changes a supplier's status.
    async fn set_status(
        &self,
        tx: &mut TenantTx,
        id: SupplierId,
        status: SupplierStatus,
    ) -> Result<Supplier>;
    /// Deletes a supplier, or [`Error::NotFound`].
    async fn delete(&self, tx: &mut TenantTx, id: SupplierId) -> Result<()>;
    /// Changes name, country and VAT id if the row is still as it was when read (its
    /// `updated_at` is `seen`): `Ok(None)`, and nothing written, when someone changed it
    /// since; [`Error::NotFound`] (also for another org's id).
    async fn update(
        &self,
        tx: &mut TenantTx,
        id: SupplierId,
        details: &NewSupplier,
        seen: OffsetDateTime,
    ) -> Result<Option<Supplier>>;

    /// [`get`](Self::get) in a single round trip, outside any transaction (a scoped-read
    /// function; see [`TenantDb::fetch_all_once`]).
    async fn get_once(&self, db: &TenantDb, org: OrgId, id: SupplierId) -> Result<Supplier>;
    /// The first page of [`list`](Self::list) in a single round trip.
    async fn first_page_once(&self, db: &TenantDb, org: OrgId, limit: u32)
    -> Result<Vec<Supplier>>;
}

/// The PostgreSQL implementation of [`SupplierRepository`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PgSupplierRepository;

/// The most rows one `list` call returns.
pub const MAX_SUPPLIER_PAGE: u32 = 500;

#[async_trait]
impl SupplierRepository for PgSupplierRepository {
    async fn create(
        &self,
        tx: &mut TenantTx,
        new: NewSupplier,
        created_by: UserId,
    ) -> Result<Supplier> {
        // org_id comes from the handle, and WITH CHECK would refuse any other.
        let org = tx.org();
        let supplier = sqlx::query_as(&format!(
            "INSERT INTO app.suppliers (org_id, id, name, country, vat_id, status, created_by)
             VALUES ($1, $2, $3, $4, $5, 'invited', $6) RETURNING {COLUMNS}"
        ))
        .bind(org.as_uuid())
        .bind(SupplierId::new().as_uuid())
        .bind(&new.name)
        .bind(&new.country)
        .bind(&new.vat_id)
        .bind(created_by.as_uuid())
        .fetch_one(tx.conn())
        .await?;
        Ok(supplier)
    }

    async fn get(&self, tx: &mut TenantTx, id: SupplierId) -> Result<Supplier> {
        // No org_id predicate: row-level security supplies it.
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM app.suppliers WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::NotFound)
    }

    async fn list(
        &self,
        tx: &mut TenantTx,
        after: Option<(&str, SupplierId)>,
        limit: u32,
    ) -> Result<Vec<Supplier>> {
        let limit = i64::from(limit.min(MAX_SUPPLIER_PAGE));
        let rows = match after {
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM app.suppliers ORDER BY name, id LIMIT $1"))
                    .bind(limit)
                    .fetch_all(tx.conn())
                    .await?
            }
            Some((name, id)) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM app.suppliers WHERE (name, id) > ($1, $2) ORDER BY name, id LIMIT $3"
                ))
                .bind(name)
                .bind(id.as_uuid())
                .bind(limit)
                .fetch_all(tx.conn())
                .await?
            }
        };
        Ok(rows)
    }

    async fn set_status(
        &self,
        tx: &mut TenantTx,
        id: SupplierId,
        status: SupplierStatus,
    ) -> Result<Supplier> {
        sqlx::query_as(&format!(
            "UPDATE app.suppliers SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id.as_uuid())
        .bind(status.as_str())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::NotFound)
    }

    async fn delete(&self, tx: &mut TenantTx, id: SupplierId) -> Result<()> {
        let done = sqlx::query("DELETE FROM app.suppliers WHERE id = $1")
            .bind(id.as_uuid())
            .execute(tx.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn update(
        &self,
        tx: &mut TenantTx,
        id: SupplierId,
        details: &NewSupplier,
        seen: OffsetDateTime,
    ) -> Result<Option<Supplier>> {
        // Compare-and-set on updated_at: of two edits of the same version, one wins and
        // the other changes nothing (no lost update).
        let updated = sqlx::query_as(&format!(
            "UPDATE app.suppliers SET name = $3, country = $4, vat_id = $5, updated_at = now()
              WHERE id = $1 AND updated_at = $2 RETURNING {COLUMNS}"
        ))
        .bind(id.as_uuid())
        .bind(seen)
        .bind(&details.name)
        .bind(&details.country)
        .bind(&details.vat_id)
        .fetch_optional(tx.conn())
        .await?;
        if updated.is_none() {
            self.get(tx, id).await?;
        }
        Ok(updated)
    }

    async fn get_once(&self, db: &TenantDb, org: OrgId, id: SupplierId) -> Result<Supplier> {
        db.fetch_optional_once(org, GET_ONCE.query_as().bind(id.as_uuid()))
            .await?
            .ok_or(Error::NotFound)
    }

    async fn first_page_once(
        &self,
        db: &TenantDb,
        org: OrgId,
        limit: u32,
    ) -> Result<Vec<Supplier>> {
        db.fetch_all_once(
            org,
            FIRST_PAGE_ONCE
                .query_as()
                .bind_int(i64::from(limit.min(MAX_SUPPLIER_PAGE))),
        )
        .await
    }
}

const GET_ONCE: ScopedRead = ScopedRead::new(
    "SELECT org_id, id, name, country, vat_id, status, created_by, created_at, updated_at
     FROM app.suppliers s WHERE s.org_id = tenant.org AND s.id = $2",
);
const FIRST_PAGE_ONCE: ScopedRead = ScopedRead::new(
    "SELECT org_id, id, name, country, vat_id, status, created_by, created_at, updated_at
     FROM app.suppliers s WHERE s.org_id = tenant.org ORDER BY s.name, s.id LIMIT $2",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_input() {
        assert!(NewSupplier::new("", "DE").is_err());
        assert!(NewSupplier::new("   ", "DE").is_err());
        assert!(NewSupplier::new(&"x".repeat(201), "DE").is_err());
        assert!(NewSupplier::new("a\u{0}b", "DE").is_err());
        assert!(NewSupplier::new("Acme", "de").is_err());
        assert!(NewSupplier::new("Acme", "DEU").is_err());
        let ok = NewSupplier::new("  Acme  ", "DE").unwrap();
        assert_eq!(ok.name, "Acme");
        assert_eq!(
            ok.with_vat_id("DE 123 456 789").unwrap().vat_id.as_deref(),
            Some("DE123456789")
        );
        assert!(
            NewSupplier::new("Acme", "DE")
                .unwrap()
                .with_vat_id("de-1")
                .is_err()
        );
    }

    #[test]
    fn status_strings_round_trip() {
        for s in [
            SupplierStatus::Invited,
            SupplierStatus::Active,
            SupplierStatus::Suspended,
            SupplierStatus::Archived,
        ] {
            assert_eq!(SupplierStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(SupplierStatus::parse("deleted").is_err());
    }
}

/// The names of the suppliers `ids` (those of the transaction's organisation; at most
/// 1,000): a list of contracts names its suppliers without reading them all.
pub async fn names(
    tx: &mut TenantTx,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, String>> {
    let ids = &ids[..ids.len().min(1000)];
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM app.suppliers WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(tx.conn())
            .await?;
    Ok(rows.into_iter().collect())
}

/// What the API and the pages both call: the permission, the change, its audit event
/// (before and after), the commit.
pub(crate) mod handle {
    use procuhelp_audit::{Action, Outcome};
    use procuhelp_auth::{AuthError, Permission};
    use procuhelp_axum::{Authed, Result};
    use procuhelp_core::SupplierId;
    use serde_json::json;
    use time::OffsetDateTime;

    use super::{
        NewSupplier, PgSupplierRepository, Supplier, SupplierRepository as _, SupplierStatus,
    };

    /// Edits a supplier's name, country and VAT id, on the version the editor saw
    /// (`seen`: its `updated_at`). An archived supplier is kept for the record and not
    /// edited.
    pub(crate) async fn edit(
        authed: &mut Authed,
        id: SupplierId,
        details: NewSupplier,
        seen: OffsetDateTime,
    ) -> Result<Supplier> {
        authed.require(Permission::ManageSuppliers).await?;
        let before = PgSupplierRepository.get(authed.tx().await?, id).await?;
        if before.status == SupplierStatus::Archived {
            return Err(AuthError::Conflict("the supplier is archived").into());
        }
        let Some(after) = PgSupplierRepository
            .update(authed.tx().await?, id, &details, seen)
            .await?
        else {
            return Err(AuthError::Conflict(
                "the supplier was changed meanwhile: reload it and try again",
            )
            .into());
        };
        let shown =
            |s: &Supplier| json!({ "name": s.name, "country": s.country, "vat_id": s.vat_id });
        let event = authed
            .event(Action::SupplierUpdated, Outcome::Success)
            .target(format!("supplier:{id}"))
            .context(json!({ "before": shown(&before), "after": shown(&after) }));
        authed.record(event).await?;
        authed.commit().await?;
        Ok(after)
    }

    /// The details as typed: a name, a country code (any case), an optional VAT id.
    pub(crate) fn details(name: &str, country: &str, vat_id: Option<&str>) -> Result<NewSupplier> {
        let new = NewSupplier::new(name, &country.trim().to_ascii_uppercase())?;
        Ok(match vat_id.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => new.with_vat_id(v)?,
            None => new,
        })
    }

    /// A version token (`updated_at`, RFC 3339) as sent back by a client.
    pub(crate) fn seen(text: &str) -> Result<OffsetDateTime> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| procuhelp_axum::Error::Invalid("updated_at"))
    }
}
