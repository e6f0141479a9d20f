//! Contracts with a supplier: created with a first version, amended (each amendment a new
//! version; earlier ones are kept and make the history), terminated. An amendment names
//! the version it was made on; one statement moves `current_version` from that version to
//! the next, so of two people amending at once the second is told the contract changed
//! and nothing of theirs is stored.

use procuhelp_core::{SupplierId, UserId};
use procuhelp_tenancy::TenantTx;
use sha2::{Digest as _, Sha256};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// No such contract (or supplier) in this organisation.
    #[error("not found")]
    NotFound,
    /// Someone amended it since it was read.
    #[error("the contract was amended meanwhile: reload it and try again")]
    Stale,
    /// It is terminated.
    #[error("the contract is terminated")]
    Terminated,
    /// A field is out of bounds.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// A date as `YYYY-MM-DD` (what an HTML date field sends).
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// The terms of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The contract's value, in cents.
    pub value_cents: i64,
    /// From.
    pub starts_on: Date,
    /// Until (inclusive).
    pub ends_on: Date,
    /// The text of the terms.
    pub text: String,
}

impl Terms {
    /// Checks the fields: a value from 0, an end not before the start, at most 5,000
    /// characters of text.
    pub fn new(
        value_cents: i64,
        starts_on: Date,
        ends_on: Date,
        text: &str,
    ) -> Result<Self, ContractError> {
        if !(0..=1_000_000_000_000).contains(&value_cents) {
            return Err(ContractError::Invalid("value"));
        }
        if ends_on < starts_on {
            return Err(ContractError::Invalid("ends_on"));
        }
        let text = text.trim();
        if text.chars().count() > 5000
            || text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r')
        {
            return Err(ContractError::Invalid("terms"));
        }
        Ok(Self {
            value_cents,
            starts_on,
            ends_on,
            text: text.to_owned(),
        })
    }

    /// What the audit trail keeps of these terms: the business figures, and the text only
    /// by its SHA-256 (free text may name people; the trail cannot forget it).
    pub fn evidence(&self) -> serde_json::Value {
        serde_json::json!({
            "value_cents": self.value_cents,
            "starts_on": self.starts_on.to_string(),
            "ends_on": self.ends_on.to_string(),
            "terms_sha256": hex::encode(Sha256::digest(self.text.as_bytes())),
        })
    }
}

/// One version.
#[derive(Debug, Clone)]
pub struct Version {
    /// 1, 2, 3, …
    pub version: i32,
    /// Its terms.
    pub terms: Terms,
    /// Who wrote it.
    pub changed_by: Uuid,
    /// When.
    pub changed_at: OffsetDateTime,
}

/// A contract and its current version.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Its id.
    pub id: Uuid,
    /// With whom.
    pub supplier_id: Uuid,
    /// Its title.
    pub title: String,
    /// Whether it was terminated.
    pub terminated: bool,
    /// The version in force.
    pub current_version: i32,
}

type VersionRow = (i32, i64, Date, Date, String, Uuid, OffsetDateTime);

fn version_of(r: VersionRow) -> Version {
    Version {
        version: r.0,
        terms: Terms {
            value_cents: r.1,
            starts_on: r.2,
            ends_on: r.3,
            text: r.4,
        },
        changed_by: r.5,
        changed_at: r.6,
    }
}

async fn add_version(
    tx: &mut TenantTx,
    contract: Uuid,
    version: i32,
    terms: &Terms,
    by: UserId,
) -> Result<(), ContractError> {
    sqlx::query(
        "INSERT INTO app.contract_versions
             (org_id, contract_id, version, value_cents, starts_on, ends_on, terms, changed_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tx.org().as_uuid())
    .bind(contract)
    .bind(version)
    .bind(terms.value_cents)
    .bind(terms.starts_on)
    .bind(terms.ends_on)
    .bind(&terms.text)
    .bind(by.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A new contract with `supplier`, version 1.
pub async fn create(
    tx: &mut TenantTx,
    supplier: SupplierId,
    title: &str,
    terms: &Terms,
    by: UserId,
) -> Result<Contract, ContractError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(ContractError::Invalid("title"));
    }
    let known: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM app.suppliers WHERE org_id = $1 AND id = $2")
            .bind(tx.org().as_uuid())
            .bind(supplier.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    if known.is_none() {
        return Err(ContractError::NotFound);
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.contracts (org_id, id, supplier_id, title, status, current_version,
             created_by)
         VALUES ($1, $2, $3, $4, 'active', 1, $5)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(supplier.as_uuid())
    .bind(title)
    .bind(by.as_uuid())
    .execute(tx.conn())
    .await?;
    add_version(tx, id, 1, terms, by).await?;
    Ok(Contract {
        id,
        supplier_id: supplier.as_uuid(),
        title: title.to_owned(),
        terminated: false,
        current_version: 1,
    })
}

/// One contract.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Contract, ContractError> {
    let row: Option<(Uuid, String, String, i32)> = sqlx::query_as(
        "SELECT supplier_id, title, status, current_version FROM app.contracts
          WHERE org_id = $1 AND id = $2",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let (supplier_id, title, status, current_version) = row.ok_or(ContractError::NotFound)?;
    Ok(Contract {
        id,
        supplier_id,
        title,
        terminated: status == "terminated",
        current_version,
    })
}

/// The organisation's contracts, newest first (at most `limit`).
pub async fn list(tx: &mut TenantTx, limit: u32) -> Result<Vec<Contract>, ContractError> {
    let rows: Vec<(Uuid, Uuid, String, String, i32)> = sqlx::query_as(
        "SELECT id, supplier_id, title, status, current_version FROM app.contracts
          WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(tx.org().as_uuid())
    .bind(i64::from(limit.min(500)))
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, supplier_id, title, status, current_version)| Contract {
                id,
                supplier_id,
                title,
                terminated: status == "terminated",
                current_version,
            },
        )
        .collect())
}

/// Every version of a contract, newest first.
pub async fn history(tx: &mut TenantTx, id: Uuid) -> Result<Vec<Version>, ContractError> {
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, value_cents, starts_on, ends_on, terms, changed_by, changed_at
           FROM app.contract_versions WHERE org_id = $1 AND contract_id = $2
          ORDER BY version DESC",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(version_of).collect())
}

/// Amends the contract made on version `seen`: a new version with `terms`. Returns the
/// terms before and the new version's number.
pub async fn amend(
    tx: &mut TenantTx,
    id: Uuid,
    seen: i32,
    terms: &Terms,
    by: UserId,
) -> Result<(Terms, i32), ContractError> {
    let moved: Option<i32> = sqlx::query_scalar(
        "UPDATE app.contracts SET current_version = current_version + 1
          WHERE org_id = $1 AND id = $2 AND current_version = $3 AND status = 'active'
          RETURNING current_version",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(seen)
    .fetch_optional(tx.conn())
    .await?;
    let Some(next) = moved else {
        let current = get(tx, id).await?;
        return Err(if current.terminated {
            ContractError::Terminated
        } else {
            ContractError::Stale
        });
    };
    let before = history(tx, id)
        .await?
        .into_iter()
        .find(|v| v.version == seen)
        .ok_or(ContractError::NotFound)?
        .terms;
    add_version(tx, id, next, terms, by).await?;
    Ok((before, next))
}

/// Terminates an active contract.
pub async fn terminate(tx: &mut TenantTx, id: Uuid, by: UserId) -> Result<(), ContractError> {
    let done = sqlx::query(
        "UPDATE app.contracts SET status = 'terminated', terminated_by = $3, terminated_at = now()
          WHERE org_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(by.as_uuid())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    get(tx, id).await?;
    Err(ContractError::Terminated)
}

/// What the API and the pages do: the permission, the change, its audit event in the same
/// transaction, the commit.
pub(crate) mod handle {
    use procuhelp_audit::{Action, Outcome};
    use procuhelp_auth::{AuthError, Permission};
    use procuhelp_axum::{Authed, Error, Result};
    use procuhelp_core::SupplierId;
    use serde_json::json;
    use uuid::Uuid;

    use super::{Contract, ContractError, Terms};

    impl From<ContractError> for Error {
        fn from(e: ContractError) -> Self {
            match e {
                ContractError::NotFound => AuthError::NotFound.into(),
                ContractError::Stale => AuthError::Conflict(
                    "the contract was amended meanwhile: reload it and try again",
                )
                .into(),
                ContractError::Terminated => {
                    AuthError::Conflict("the contract is terminated").into()
                }
                ContractError::Invalid(field) => Error::Invalid(field),
                ContractError::Database(e) => e.into(),
            }
        }
    }

    /// A new contract.
    pub(crate) async fn create(
        authed: &mut Authed,
        supplier: SupplierId,
        title: &str,
        terms: &Terms,
    ) -> Result<Contract> {
        authed.require(Permission::ManageSuppliers).await?;
        let by = authed.principal.acting_user();
        let contract = super::create(authed.tx().await?, supplier, title, terms, by).await?;
        let event = authed
            .event(Action::ContractCreated, Outcome::Success)
            .target(format!("contract:{}", contract.id))
            .context(json!({ "supplier": supplier, "version": 1, "after": terms.evidence() }));
        authed.record(event).await?;
        authed.commit().await?;
        Ok(contract)
    }

    /// An amendment on version `seen`; the new version's number.
    pub(crate) async fn amend(
        authed: &mut Authed,
        id: Uuid,
        seen: i32,
        terms: &Terms,
    ) -> Result<i32> {
        authed.require(Permission::ManageSuppliers).await?;
        let by = authed.principal.acting_user();
        let (before, version) = super::amend(authed.tx().await?, id, seen, terms, by).await?;
        let event = authed
            .event(Action::ContractAmended, Outcome::Success)
            .target(format!("contract:{id}"))
            .context(json!({
                "version": version,
                "before": before.evidence(),
                "after": terms.evidence(),
            }));
        authed.record(event).await?;
        authed.commit().await?;
        Ok(version)
    }

    /// Termination.
    pub(crate) async fn terminate(authed: &mut Authed, id: Uuid) -> Result<()> {
        authed.require(Permission::ManageSuppliers).await?;
        let by = authed.principal.acting_user();
        super::terminate(authed.tx().await?, id, by).await?;
        let event = authed
            .event(Action::ContractTerminated, Outcome::Success)
            .target(format!("contract:{id}"));
        authed.record(event).await?;
        authed.commit().await
    }
}
