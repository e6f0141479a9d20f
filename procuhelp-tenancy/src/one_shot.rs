//! Single-round-trip tenant-scoped reads.
//!
//! A [`TenantTx`](crate::TenantTx) costs three round trips for one read (BEGIN + tenant,
//! the query, COMMIT). The hottest reads instead send one statement that enters the
//! organisation and runs the query:
//!
//! ```sql
//! SELECT q.* FROM app.enter_org($1) AS tenant(org)
//! CROSS JOIN LATERAL (
//!     SELECT i.* FROM (<your query, referencing tenant.org>
//!     ) AS i WHERE tenant.org IS NOT NULL OFFSET 0
//! ) AS q
//! ```
//!
//! In autocommit, that statement is its own transaction, so the transaction-local tenant
//! lives exactly as long as the statement; every value is a bind parameter and the plan is
//! cached like any prepared statement. Row-level security still filters the query; were
//! any tenant table ever read before the tenant was set, it would see no tenant and return
//! nothing (fail closed), never another tenant's rows.
//!
//! # Why the wrapper: the tenant is entered before any tenant row is read
//!
//! A bare `CROSS JOIN LATERAL (<query>) AS q` is *not* enough. PostgreSQL pulls a simple
//! lateral subquery (no ORDER BY, LIMIT, aggregate, …) up into the outer join, and the
//! lateral reference then is an ordinary join clause: the join order is free. Worse, with
//! two tenant tables joined on `org_id`, `tenant.org`, both `org_id` columns and both
//! row-level-security sub-selects `(SELECT app.current_org())` form one equivalence
//! class, and the planner gates the whole statement on a one-time filter comparing the
//! two sub-selects — evaluated before `enter_org` runs, when there is no tenant, so the
//! read returned **no rows** on every plan (tests/one_shot_planner.rs reproduces it).
//!
//! The wrapper closes this by construction:
//!
//! * `OFFSET 0` is PostgreSQL's optimisation fence: a subquery with a LIMIT/OFFSET clause
//!   is never pulled up, so `q` stays one subquery scan and nothing of your query is
//!   planned at the outer level.
//! * `WHERE tenant.org IS NOT NULL` (always true: `enter_org` returns its argument or
//!   raises) makes `q` depend on `tenant` even if your query's reference is only textual.
//!   A lateral subquery that depends on another relation can only be the inner side of a
//!   nested loop with that relation outer; a nested loop reads its outer row — running
//!   `enter_org`, which sets the tenant — before it starts the inner side, and every
//!   one-time filter and row-level-security sub-select of your query is evaluated inside
//!   the inner side, at first use.
//! * Your query stays intact inside `( … ) AS i`, so its ORDER BY, LIMIT and OFFSET keep
//!   their meaning (appending `OFFSET 0` to your query instead fails on one with its own
//!   OFFSET and binds to the whole of a UNION). The rows come
//!   out in your query's order: the wrapper neither joins, sorts nor aggregates, and the
//!   nested loop emits its single outer row's inner rows in the inner order. (SQL promises
//!   order only for an outermost ORDER BY; PostgreSQL's executor keeps a subquery's order
//!   through a scan, a filter and a nested loop, which the tests check under forced and
//!   generic plans.)
//! * The closing parenthesis is on its own line, so a trailing `--` comment in your query
//!   cannot swallow the wrapper.
//!
//! The query must reference `tenant.org` (checked): it is how it names its organisation.
//! Parallel query cannot reorder this either: `enter_org` is `PARALLEL UNSAFE`, which
//! keeps the whole statement in one process.
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

    /// The full statement: the query inside an optimisation fence that runs it after
    /// `app.enter_org`, whatever plan PostgreSQL picks (see
    /// the notes at the top of `src/one_shot.rs` for why this shape is correct).
    pub fn statement(&self) -> String {
        format!(
            "SELECT q.* FROM app.enter_org($1) AS tenant(org) CROSS JOIN LATERAL \
             (SELECT i.* FROM ({}\n) AS i WHERE tenant.org IS NOT NULL OFFSET 0) AS q",
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
    /// it) before it reads any tenant table: put the read in a LATERAL subquery **fenced
    /// with `OFFSET 0`** that references the entry function's output, as
    /// [`ScopedRead::statement`] does (the the notes at the top of `src/one_shot.rs` explains why; a
    /// bare lateral subquery can be pulled up and read first). If it does not, row-level
    /// security sees no tenant and returns nothing: fail closed, never another tenant's
    /// rows. The raw [`sqlx::Error`] is returned so the
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
