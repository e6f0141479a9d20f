//! Single-round-trip tenant-scoped reads.
//!
//! A [`TenantTx`](crate::TenantTx) costs three round trips for one read (BEGIN + tenant,
//! the query, COMMIT). The hottest reads instead send one statement that enters the
//! organisation and runs the query:
//!
//! ```sql
//! SELECT q.* FROM app.enter_org($1) AS tenant(org)
//! CROSS JOIN LATERAL (<your query, referencing tenant.org>) AS q
//! ```
//!
//! In autocommit, that statement is its own transaction, so the transaction-local tenant
//! lives exactly as long as the statement; every value is a bind parameter and the plan is
//! cached like any prepared statement. The query must reference `tenant.org` (checked):
//! the lateral reference orders it after `enter_org`. Row-level security still filters
//! it — and were it ever evaluated before the tenant was set, it would see no tenant and
//! return nothing (fail closed), never another tenant's rows.
//!
//! `enter_org` refuses to switch a transaction that already belongs to another
//! organisation, so a one-shot query cannot hop tenants inside a `TenantTx`.
//!
//! ```no_run
//! # async fn demo(db: procuhelp_tenancy::TenantDb, org: procuhelp_core::OrgId, id: uuid::Uuid) -> procuhelp_tenancy::Result<()> {
//! use procuhelp_tenancy::ScopedRead;
//! const BY_ID: ScopedRead = ScopedRead::new("SELECT name FROM app.suppliers s WHERE s.org_id = tenant.org AND s.id = $2");
//! let name: Option<(String,)> = db.fetch_optional_once(org, BY_ID.query_as().bind(id)).await?;
//! # let _ = name; Ok(()) }
//! ```

use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;

use crate::{Error, Result, TenantDb};
use procuhelp_core::OrgId;

/// A read query to run in one round trip, with the tenant as `$1` (bound by the SDK).
///
/// The text is `'static`: queries are code, never input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopedRead {
    inner: &'static str,
}

impl ScopedRead {
    /// Wraps `inner`, a single SELECT that references `tenant.org` and numbers its own
    /// parameters from `$2`.
    pub const fn new(inner: &'static str) -> Self {
        Self { inner }
    }

    /// The full statement.
    pub fn statement(&self) -> String {
        format!(
            "SELECT q.* FROM app.enter_org($1) AS tenant(org) CROSS JOIN LATERAL ({}) AS q",
            self.inner
        )
    }

    /// A query for this statement; bind `$2…` on it and pass it to
    /// [`TenantDb::fetch_all_once`] or [`TenantDb::fetch_optional_once`], which bind `$1`.
    pub fn query_as<O>(&self) -> ScopedQuery<O>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        ScopedQuery {
            read: *self,
            args: Vec::new(),
            _row: std::marker::PhantomData,
        }
    }

    fn check(&self) -> Result<()> {
        if !self.inner.contains("tenant.org") {
            return Err(Error::Invalid {
                field: "scoped read",
                problem: "must reference tenant.org",
            });
        }
        if self.inner.contains(';') {
            return Err(Error::Invalid {
                field: "scoped read",
                problem: "must be a single statement",
            });
        }
        Ok(())
    }
}

/// A [`ScopedRead`] with its `$2…` arguments.
#[derive(Debug)]
pub struct ScopedQuery<O> {
    read: ScopedRead,
    args: Vec<ScopedArg>,
    _row: std::marker::PhantomData<fn() -> O>,
}

#[derive(Debug, Clone)]
enum ScopedArg {
    Uuid(uuid::Uuid),
    Int(i64),
    Text(String),
}

impl<O> ScopedQuery<O> {
    /// Binds the next UUID argument.
    pub fn bind(mut self, value: uuid::Uuid) -> Self {
        self.args.push(ScopedArg::Uuid(value));
        self
    }

    /// Binds the next integer argument.
    pub fn bind_int(mut self, value: i64) -> Self {
        self.args.push(ScopedArg::Int(value));
        self
    }

    /// Binds the next text argument.
    pub fn bind_text(mut self, value: impl Into<String>) -> Self {
        self.args.push(ScopedArg::Text(value.into()));
        self
    }

    fn build<'q>(&self, statement: &'q str, org: OrgId) -> QueryAs<'q, Postgres, O, PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        let mut query = sqlx::query_as(statement).bind(org.as_uuid());
        for arg in &self.args {
            query = match arg {
                ScopedArg::Uuid(v) => query.bind(*v),
                ScopedArg::Int(v) => query.bind(*v),
                ScopedArg::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

impl TenantDb {
    /// Runs `query` for `org` in one round trip and returns every row.
    /// [`Error::UnknownOrg`] when the organisation does not exist.
    pub async fn fetch_all_once<O>(&self, org: OrgId, query: ScopedQuery<O>) -> Result<Vec<O>>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        query.read.check()?;
        let statement = query.read.statement();
        query
            .build(&statement, org)
            .fetch_all(self.pool())
            .await
            .map_err(|e| map_scoped_error(org, e))
    }

    /// Like [`fetch_all_once`](Self::fetch_all_once), for at most one row (point reads).
    pub async fn fetch_optional_once<O>(
        &self,
        org: OrgId,
        query: ScopedQuery<O>,
    ) -> Result<Option<O>>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(self.fetch_all_once(org, query).await?.into_iter().next())
    }
}

impl TenantDb {
    /// Runs one statement that enters its organisation **itself**, in one round trip
    /// (autocommit), and returns its raw rows and errors: for crates that put their own
    /// entry function in front of `app.enter_org` — `procuhelp-auth`'s
    /// `app.enter_session` validates a session, enters its organisation and checks a
    /// permission in the statement that reads. Application code uses
    /// [`fetch_all_once`](Self::fetch_all_once) instead.
    ///
    /// The statement must set the tenant (through `app.enter_org` or a function calling
    /// it) before it reads any tenant table, from a LATERAL reference as [`ScopedRead`]
    /// does. If it does not, row-level security sees no tenant and returns nothing: fail
    /// closed, never another tenant's rows. The raw [`sqlx::Error`] is returned so the
    /// caller can branch on the SQLSTATEs its entry function raises.
    pub async fn fetch_all_self_entering<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        query.fetch_all(self.pool()).await
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
