//! # procuhelp
//!
//! The ProcuHelp security SDK in one dependency, the way `sqlx` fronts `sqlx-core`: add
//! `procuhelp` to your axum application and mount tenant isolation on PostgreSQL
//! row-level security, sign-in with a second factor, SSO, SCIM 2.0 and a tamper-evident
//! audit trail. This crate holds no code of its own; it re-exports the member crates
//! under short names and maps its features onto theirs.
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`core`] | `procuhelp-core` | ids, `Clock`, secrets, AES-256-GCM envelope and providers, vaults, the header layer |
//! | [`tenancy`] | `procuhelp-tenancy` | `TenantDb`/`TenantTx`, the migration composer `Schema`, `FieldCipher` and key rotation, posture checks |
//! | [`auth`] | `procuhelp-auth` | passwords, TOTP, sessions, roles and permissions, elevation, API tokens, federated sign-in, SCIM store |
//! | [`audit`] | `procuhelp-audit` | events, sinks, the PostgreSQL hash chain, signed checkpoints, export and verification, alerting |
//! | [`axum`] | `procuhelp-axum` | the `Authed` extractor, one error type, the routers, `harden()` |
//!
//! # Features
//!
//! | feature | default | turns on |
//! |---|---|---|
//! | `axum` | yes | [`axum`] (the adapter); implies `postgres` |
//! | `postgres` | yes | the PostgreSQL audit chain, the audit pipeline and the audit crate's migrations |
//! | `aws-lc` | yes | `core::crypto::AwsLcAead`, the fast AES-256-GCM provider |
//! | `oidc` | | OpenID Connect sign-in, and the SSO router's OIDC routes |
//! | `saml` | | SAML 2.0 sign-in, and the SSO router's SAML routes (builds against libxmlsec1) |
//! | `openbao` | | the OpenBao secret provider and checkpoint signing by OpenBao Transit |
//! | `webhook` | | alerts to a webhook |
//! | `embedded` | | a private PostgreSQL cluster from the system's server binaries |
//! | `testkit` | | scratch databases and roles for your tests |
//!
//! # Embedding
//!
//! Compose the schema (the SDK's tables and yours, one migrator), build the [`Sdk`](crate::axum::Sdk)
//! with the one audit path, mount the routers next to your own and wrap the whole app in
//! [`harden`](crate::axum::harden). Your handlers take [`Authed`](crate::axum::Authed): the
//! tenant comes from the verified credential and nowhere else.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::Router;
//! use axum::routing::post;
//! use procuhelp::audit::{AuditPipeline, CheckpointSchedule, Ed25519Signer, PgAuditSink};
//! use procuhelp::axum::{Result, account, audit};
//! use procuhelp::core::crypto::AwsLcAead;
//! use procuhelp::core::vault::FileVault;
//! use procuhelp::prelude::*;
//!
//! /// Your own audit vocabulary, checked at compile time (stored as `app.claim.created`).
//! const CLAIM_CREATED: Action = procuhelp::audit::app_action!("claim.created");
//!
//! async fn create_claim(mut authed: Authed) -> Result<()> {
//!     authed.require(Permission::CreateRequest).await?;
//!     sqlx::query("INSERT INTO app.expense_claims (org_id, id, title) VALUES ($1, gen_random_uuid(), 'Taxi')")
//!         .bind(authed.org().as_uuid())
//!         .execute(authed.tx().await?.conn())
//!         .await?;
//!     let event = authed.event(CLAIM_CREATED, Outcome::Success);
//!     authed.record(event).await?; // durable before the claim commits
//!     authed.commit().await
//! }
//!
//! # async fn run(owner: sqlx::PgPool, runtime: sqlx::PgPool, my_app: Migrations) -> Result<(), Box<dyn std::error::Error>> {
//! // 1. One schema: tenancy's part first, then auth, audit and your own tables.
//! let schema = Schema::new()
//!     .with(procuhelp::auth::MIGRATIONS)
//!     .with(procuhelp::audit::MIGRATIONS)
//!     .with(my_app);
//! schema.migrate(&owner, &RuntimeRole::default()).await?;
//!
//! // 2. The SDK's state, recording through one audit pipeline (chain + checkpoints).
//! let vault: Arc<dyn procuhelp::core::vault::SecretProvider> =
//!     Arc::new(FileVault::open_or_create("data/vault".as_ref())?);
//! let tenants = TenantDb::new(runtime.clone());
//! let cipher = Arc::new(FieldCipher::new(tenants.clone(), vault.clone(), &AwsLcAead));
//! let log = PgAuditSink::new(tenants, vault.clone());
//! let signer = Arc::new(Ed25519Signer::open_or_create_file("data/checkpoint.key".as_ref())?);
//! let pipeline = AuditPipeline::builder(log.clone())
//!     .checkpoints(signer, CheckpointSchedule::default())
//!     .build()?;
//! let sdk = Sdk::builder(runtime, cipher, vault, pipeline.sink()).audit_log(log).build();
//!
//! // 3. The SDK's routers next to yours, everything behind harden().
//! let routes: Router<Sdk> = account::routes()
//!     .merge(audit::routes())
//!     .route("/api/claims", post(create_claim));
//! let app: Router = harden(routes.with_state(sdk), Limits::default());
//! # let _ = app; Ok(()) }
//! ```
//!
//! `examples/minimal` in the repository is a complete application built this way (SSO
//! and SCIM included), in 40 lines of wiring; `docs/embedding.md` explains each
//! piece, the order to mount them and what an embedder must never do.
#![forbid(unsafe_code)]

/// `procuhelp-core`: ids, [`Clock`](procuhelp_core::Clock), secrets, the AES-256-GCM
/// envelope and its providers, vaults and (with `axum`) the security-headers layer.
pub use procuhelp_core as core;

/// `procuhelp-tenancy`: [`TenantDb`](procuhelp_tenancy::TenantDb) and
/// [`TenantTx`](procuhelp_tenancy::TenantTx) (the only door to tenant tables), the
/// migration composer, field encryption and key rotation, posture checks.
pub use procuhelp_tenancy as tenancy;

/// `procuhelp-auth`: who gets in — passwords, TOTP, sessions, roles and permissions,
/// elevation, API tokens, federated sign-in and the SCIM store.
pub use procuhelp_auth as auth;

/// `procuhelp-audit`: the audit trail — events, fail-closed sinks, the PostgreSQL hash
/// chain (feature `postgres`), signed checkpoints, export, verification and alerting.
pub use procuhelp_audit as audit;

/// `procuhelp-axum` (feature `axum`): the authenticated, tenant-scoped extractor, one
/// error type, the account, admin, audit, SSO and SCIM routers, and `harden()`.
#[cfg(feature = "axum")]
pub use procuhelp_axum as axum;

/// What an embedding application touches to build the SDK and to use it in handlers:
/// `use procuhelp::prelude::*;`.
///
/// The error and result types are left out on purpose (they would shadow `std`'s):
/// name them as `procuhelp::axum::{Error, Result}`.
pub mod prelude {
    pub use procuhelp_audit::{Action, AuditEvent, AuditSink, Ed25519Signer, Outcome};
    #[cfg(feature = "postgres")]
    pub use procuhelp_audit::{AuditPipeline, CheckpointSchedule, PgAuditSink};
    pub use procuhelp_auth::{Permission, Role};
    #[cfg(feature = "aws-lc")]
    pub use procuhelp_core::crypto::AwsLcAead;
    pub use procuhelp_core::vault::{FileVault, SecretProvider};
    pub use procuhelp_core::{Clock, OrgId, UserId};
    pub use procuhelp_tenancy::migrate::{Grant, Migrations};
    pub use procuhelp_tenancy::{FieldCipher, RuntimeRole, Schema, TenantDb, TenantTx};

    #[cfg(all(feature = "axum", any(feature = "oidc", feature = "saml")))]
    pub use procuhelp_axum::sso::SsoClients;
    #[cfg(feature = "axum")]
    pub use procuhelp_axum::{Access, Authed, Limits, RouteTable, Sdk, harden};
}
