//! Scratch databases on a real PostgreSQL server, for tests.
//!
//! Each [`ScratchDb`] gets a random database, an owner role that runs migrations, and a
//! runtime role (not superuser, NOBYPASSRLS, owns nothing) — the same split as production.
//! The server is the one named by `PROCUHELP_TEST_ADMIN_URL` (a superuser URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable server is an error,
//! never a skipped test.
//!
//! [`ScratchDb::migrated`] applies procuhelp-tenancy's migrations and the testkit's own
//! tenant table `app.test_records` ([`MIGRATIONS`], reached through [`TestRecords`]);
//! [`ScratchDb::migrated_with`] applies any composed [`Schema`], e.g. an application's.

use std::str::FromStr;

use rand::Rng;
use sqlx::Executor as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

mod contents;
mod records;

pub use contents::rows_by_table;
pub use records::{TestRecord, TestRecords};

use crate::migrate::{Grant, Migrations, Schema};
use crate::{Error, Result, RuntimeRole};

/// The testkit's tenant table `app.test_records` (`org_id`, `id`, `name`, `country`,
/// `status`, `created_by`, `created_at`, `secret_sealed`), declared with
/// `app.declare_tenant_table` like any embedder's table, for tests of the SDK itself.
/// Version 9001 (9000-9999 are the testkit's).
pub const MIGRATIONS: Migrations = Migrations::testkit(
    "procuhelp-tenancy testkit",
    sqlx::migrate!("./testkit/migrations"),
)
.grants(&[Grant::new(
    "app.test_records",
    "SELECT, INSERT, UPDATE, DELETE",
)])
.encrypted_columns(&[crate::EncryptedColumn {
    table: "app.test_records",
    column: "secret_sealed",
    field_table: "test_records",
    field_column: "secret",
}]);

/// The default admin URL for tests.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A scratch database with an owner role and a runtime role.
#[derive(Debug)]
pub struct ScratchDb {
    admin: PgConnectOptions,
    name: String,
    owner: String,
    runtime: RuntimeRole,
}

fn admin_options() -> Result<PgConnectOptions> {
    let url =
        std::env::var("PROCUHELP_TEST_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    PgConnectOptions::from_str(&url)
        .map_err(|e| Error::Config(format!("PROCUHELP_TEST_ADMIN_URL: {e}")))
}

impl ScratchDb {
    /// Creates the database and roles and runs procuhelp-tenancy's migrations with the
    /// testkit's tenant table ([`MIGRATIONS`]).
    pub async fn migrated() -> Result<Self> {
        Self::migrated_with(&Schema::new().with(MIGRATIONS)).await
    }

    /// Creates the database and roles and runs `schema` (e.g. the application's composed
    /// schema), as the owner, with the scratch runtime role.
    pub async fn migrated_with(schema: &Schema) -> Result<Self> {
        let db = Self::empty().await?;
        let owner = db.owner_pool(2).await?;
        schema.migrate(&owner, &db.runtime).await?;
        owner.close().await;
        Ok(db)
    }

    /// Creates the database and roles without running migrations.
    pub async fn empty() -> Result<Self> {
        let admin = admin_options()?;
        let suffix: u64 = rand::rng().random();
        let name = format!("procuhelp_test_{suffix:016x}");
        let owner = format!("{name}_owner");
        let runtime = RuntimeRole::new(format!("{name}_app"))?;
        let mut conn = PgConnection::connect_with(&admin).await.map_err(|e| {
            Error::Config(format!(
                "cannot reach the test PostgreSQL server (PROCUHELP_TEST_ADMIN_URL, default {DEFAULT_ADMIN_URL}): {e}"
            ))
        })?;
        // Names are generated from hex digits above: safe to inline.
        conn.execute(
            format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE").as_str(),
        )
        .await?;
        conn.execute(format!("CREATE DATABASE {name} OWNER {owner}").as_str())
            .await?;
        conn.close().await?;
        Ok(Self {
            admin,
            name,
            owner,
            runtime,
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime role.
    pub fn runtime_role(&self) -> &RuntimeRole {
        &self.runtime
    }

    /// The owner role's name.
    pub fn owner_role(&self) -> &str {
        &self.owner
    }

    /// Connection options for `role` on this database.
    pub fn options_for(&self, role: &str) -> PgConnectOptions {
        self.admin.clone().database(&self.name).username(role)
    }

    /// A pool logged in as the owner role.
    pub async fn owner_pool(&self, size: u32) -> Result<PgPool> {
        self.pool_for(&self.owner.clone(), size).await
    }

    /// A pool logged in as the runtime role.
    pub async fn runtime_pool(&self, size: u32) -> Result<PgPool> {
        self.pool_for(self.runtime.name(), size).await
    }

    /// A pool logged in as the superuser, on this database.
    pub async fn admin_pool(&self, size: u32) -> Result<PgPool> {
        let opts = self.admin.clone().database(&self.name);
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .connect_with(opts)
            .await?)
    }

    async fn pool_for(&self, role: &str, size: u32) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.options_for(role))
            .await?)
    }

    /// Drops the database and both roles.
    pub async fn drop_all(self) -> Result<()> {
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.runtime.name()),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ] {
            conn.execute(sql.as_str()).await?;
        }
        Ok(())
    }
}
