//! The tenant-scoped handle: the only way application code reaches tenant tables.

use std::fmt;

use procuhelp_core::OrgId;
use sqlx::pool::PoolConnection;
use sqlx::{Executor as _, PgConnection, PgPool, Postgres};

use crate::{Error, Result};

/// A pool of connections as the runtime role, from which tenant transactions are opened.
///
/// There is deliberately no method that hands out a bare pooled connection: every
/// statement runs inside a [`TenantTx`] bound to one organisation.
#[derive(Clone)]
pub struct TenantDb {
    pool: PgPool,
}

impl fmt::Debug for TenantDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDb")
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl TenantDb {
    /// Wraps a pool whose connections log in as the runtime role.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Opens a transaction bound to `org`.
    ///
    /// `BEGIN` and entering the organisation travel in one round trip (a two-statement
    /// simple query); the setting is transaction-local (`set_config(…, true)`), so it ends
    /// with the transaction. A handle dropped without [`TenantTx::commit`] or
    /// [`TenantTx::rollback`] (an early `?`, a panic, a cancelled task) closes its
    /// connection instead of returning it to the pool, so no half-finished transaction —
    /// and no tenant setting — can ever reach the next borrower. The same holds while
    /// this call itself is in flight: a caller cancelled after `BEGIN` was sent (a request
    /// timeout) drops a connection that is closed, not one still inside the transaction.
    ///
    /// Fails with [`Error::UnknownOrg`] when the organisation does not exist.
    pub async fn begin(&self, org: OrgId) -> Result<TenantTx> {
        // The handle exists, unfinished, before `BEGIN` is sent: if this future is dropped
        // from here on, its `Drop` closes the connection.
        let waiting = std::time::Instant::now();
        let conn = self.pool.acquire().await?;
        metrics::histogram!("procuhelp_db_acquire_seconds").record(waiting.elapsed().as_secs_f64());
        let mut tx = TenantTx {
            org,
            conn,
            finished: false,
        };
        // The literal is a UUID we formatted ourselves (hex digits and hyphens only), so
        // inlining it cannot inject SQL; it lets BEGIN and the setting share a round trip.
        let statement = format!(
            "BEGIN; SELECT app.enter_org('{}'::uuid)",
            org.as_uuid().hyphenated()
        );
        // `Executor::execute` on a plain string with no arguments uses the simple-query
        // protocol, which runs both statements.
        match tx.conn.execute(statement.as_str()).await {
            Ok(_) => Ok(tx),
            Err(e) => {
                end_failed_transaction(&mut tx.conn).await;
                // Rolled back (or marked to close): the connection may go back.
                tx.finished = true;
                match &e {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("PH404") => {
                        Err(Error::UnknownOrg(org))
                    }
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// Sets the pool gauges, labelled `pool = name` —
    /// `procuhelp_db_pool_connections{state="idle"|"busy"}` and `procuhelp_db_pool_max` —
    /// from the pool's state now; call it before each metrics scrape. The wait for a
    /// connection is recorded by [`Self::begin`] as the histogram
    /// `procuhelp_db_acquire_seconds`.
    pub fn record_pool_metrics(&self, name: &'static str) {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(size);
        metrics::gauge!("procuhelp_db_pool_connections", "pool" => name, "state" => "idle")
            .set(f64::from(idle));
        metrics::gauge!("procuhelp_db_pool_connections", "pool" => name, "state" => "busy")
            .set(f64::from(size - idle));
        metrics::gauge!("procuhelp_db_pool_max", "pool" => name)
            .set(f64::from(self.pool.options().get_max_connections()));
    }

    /// Checks that a connection can be had and answers (for health checks). Runs no
    /// statement on any tenant table.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.execute("SELECT 1").await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database transaction bound to one organisation.
///
/// Every statement executed through [`TenantTx::conn`] is filtered by row-level security
/// to [`TenantTx::org`]'s rows — including hand-written SQL with no `WHERE` clause.
/// Dropping it without [`commit`](TenantTx::commit) or [`rollback`](TenantTx::rollback)
/// rolls back by closing the connection.
pub struct TenantTx {
    org: OrgId,
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

impl TenantTx {
    /// The organisation this transaction is bound to.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// The connection, for executing statements inside this transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Commits the transaction.
    ///
    /// PostgreSQL answers `COMMIT` in a failed transaction with a silent rollback; the
    /// `SELECT 1` in front of it fails instead, so a commit that did not happen is always
    /// an error here, never a success.
    pub async fn commit(mut self) -> Result<()> {
        self.finish("SELECT 1; COMMIT").await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    /// Runs the ending `statement`. The handle counts as finished only once the
    /// transaction has ended: cancelled half-way (a `COMMIT` waiting behind a lock when
    /// the request times out), it is dropped unfinished and its connection is closed.
    async fn finish(&mut self, statement: &'static str) -> Result<()> {
        let result = match self.conn.execute(statement).await {
            Ok(_) => Ok(()),
            Err(e) => {
                end_failed_transaction(&mut self.conn).await;
                Err(e.into())
            }
        };
        self.finished = true;
        result
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if !self.finished {
            // We cannot await a ROLLBACK here; closing the session rolls back on the
            // server and guarantees nothing of this transaction is reused.
            self.conn.close_on_drop();
        }
    }
}

/// After an error inside (or while opening) a transaction: roll back, or if even that
/// fails, make sure the connection is closed rather than reused.
async fn end_failed_transaction(conn: &mut PoolConnection<Postgres>) {
    if conn.execute("ROLLBACK").await.is_err() {
        conn.close_on_drop();
    }
}
