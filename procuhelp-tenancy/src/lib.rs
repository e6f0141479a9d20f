//! # procuhelp-tenancy
//!
//! Tenant isolation enforced by PostgreSQL, not by application code: every tenant table
//! has row-level security ENABLED and FORCED with a policy on `org_id`, the server runs as
//! a role that cannot bypass it, and the only way to reach tenant tables is a
//! [`TenantTx`] opened for one [`OrgId`](procuhelp_core::OrgId). The tenant is set for that
//! transaction only, so a pooled connection never carries it into the next borrower's work.
//!
//! ```no_run
//! use procuhelp_core::{OrgId, UserId};
//! use procuhelp_tenancy::TenantDb;
//!
//! # async fn demo(pool: sqlx::PgPool, org: OrgId, me: UserId) -> procuhelp_tenancy::Result<()> {
//! let db = TenantDb::new(pool);
//! let mut tx = db.begin(org).await?; // BEGIN + tenant in one round trip
//! // The application's own tenant table (declared with app.declare_tenant_table):
//! // org_id comes from the transaction, and WITH CHECK refuses any other.
//! sqlx::query("INSERT INTO app.claims (org_id, id, title, created_by) VALUES ($1, gen_random_uuid(), $2, $3)")
//!     .bind(tx.org().as_uuid())
//!     .bind("Train to Lyon")
//!     .bind(me.as_uuid())
//!     .execute(tx.conn())
//!     .await?;
//! // Hand-written SQL with no WHERE clause still sees only this org's rows.
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.claims")
//!     .fetch_one(tx.conn())
//!     .await?;
//! tx.commit().await?;
//! # let _ = n; Ok(()) }
//! ```
//!
//! * [`migrate`] composes every crate's and the application's migrations into one
//!   [`Schema`], runs it as the owner role and creates or updates the runtime role with
//!   only the grants the composed tables need.
//! * [`FieldCipher`] seals fields under per-tenant data keys; [`rotation`] rotates every
//!   organisation's keys and re-encrypts the columns every composed crate declared.
//! * [`posture::check`] refuses a database where isolation could be bypassed.
//! * [`embedded::LocalCluster`] (feature `embedded`) runs a private PostgreSQL from the
//!   system's server binaries, for the no-set-up default.
#![forbid(unsafe_code)]

mod admin;
mod catalog;
mod db;
mod error;
mod field_cipher;
pub mod migrate;
pub mod offboarding;
mod one_shot;
pub mod personal_data;
pub mod posture;
pub mod residency;
pub mod rotation;

#[cfg(feature = "backup")]
pub mod backup;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use admin::{create_organisation, create_organisation_in, organisation_ids};
pub use db::{TenantDb, TenantTx};
pub use error::{Error, Result};
pub use field_cipher::{
    DEFAULT_KEY_CACHE_TTL, DEFAULT_MESSAGE_LIMIT, EncryptedColumn, FieldCipher, FieldRef, KeyState,
    ReencryptProgress,
};
pub use migrate::{RuntimeRole, Schema};
pub use one_shot::{ScopedQuery, ScopedRead};
pub use posture::{PostureError, PostureFinding};
