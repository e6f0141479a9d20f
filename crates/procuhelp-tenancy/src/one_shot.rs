//! Single-round-trip tenant-scoped reads.
//!
//! A [`TenantTx`](crate::TenantTx) costs three round trips for one read (BEGIN + tenant,
//! the query, COMMIT). The hottest reads instead call a **scoped-read function**: a
//! PL/pgSQL function (SECURITY INVOKER) that takes the organisation as its first argument,
//! calls `app.enter_org` and then runs its query — see `migrations/0003_scoped_reads.sql`.
//! Called as one autocommit statement, the transaction-local tenant lives exactly as long
//! as that statement; row-level security filters the query inside as any other; every
//! value is a bind parameter; and the plan is cached like any prepared statement.
//!
//! `enter_org` refuses to switch a transaction that already belongs to another
//! organisation, so such a function cannot be used to hop tenants inside a `TenantTx`.
//!
//! ```no_run
//! # async fn demo(db: procuhelp_tenancy::TenantDb, org: procuhelp_core::OrgId, id: uuid::Uuid) -> procuhelp_tenancy::Result<()> {
//! let name: Option<(String,)> = db
//!     .fetch_optional_once(org, sqlx::query_as("SELECT name FROM app.supplier_get($1, $2)").bind(org.as_uuid()).bind(id))
//!     .await?;
//! # let _ = name; Ok(()) }
//! ```

use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;

use crate::{Error, Result, TenantDb};
use procuhelp_core::OrgId;

/// A query over a scoped-read function whose rows decode to `O`.
pub type ScopedQuery<'q, O> = QueryAs<'q, Postgres, O, PgArguments>;

impl TenantDb {
    /// Runs `query` — a call of a scoped-read function for `org` — in one round trip and
    /// returns every row. [`Error::UnknownOrg`] when the organisation does not exist.
    pub async fn fetch_all_once<'q, O>(
        &self,
        org: OrgId,
        query: ScopedQuery<'q, O>,
    ) -> Result<Vec<O>>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        query
            .fetch_all(self.pool())
            .await
            .map_err(|e| map_scoped_error(org, e))
    }

    /// Like [`fetch_all_once`](Self::fetch_all_once), for at most one row.
    pub async fn fetch_optional_once<'q, O>(
        &self,
        org: OrgId,
        query: ScopedQuery<'q, O>,
    ) -> Result<Option<O>>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        query
            .fetch_optional(self.pool())
            .await
            .map_err(|e| map_scoped_error(org, e))
    }
}

fn map_scoped_error(org: OrgId, e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("PH404") => {
            Error::UnknownOrg(org)
        }
        _ => e.into(),
    }
}
