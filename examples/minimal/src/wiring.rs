//! All of the SDK wiring: the state, one schema, the SDK with its audit pipeline, the
//! routers and `harden()`. README.md ("Embed it") shows the block between the markers
//! verbatim; `tests/readme.rs` fails when the two differ.

// embed-it:start
use std::{path::Path, sync::Arc};

use procuhelp::axum::{account, admin, audit, scim, sso};
use procuhelp::prelude::*;
use sqlx::{PgPool, postgres::PgConnectOptions};

/// The app's state: the SDK's, and the SSO clients' caches.
#[derive(Clone, Debug, axum::extract::FromRef)]
pub struct AppState {
    sdk: Sdk,
    sso: SsoClients,
}

/// One schema: tenancy's tables first, then auth's, audit's and the app's own.
pub fn schema() -> Schema {
    Schema::new()
        .with(procuhelp::auth::MIGRATIONS)
        .with(procuhelp::audit::MIGRATIONS)
        .with(crate::claims::MIGRATIONS)
}

/// The app as the runtime role (`db`): requests, key management and the audit log each
/// get a pool, so none waits for another's connection; one audit path, signed checkpoints;
/// the SDK's routers and the app's, every response through `harden()`.
pub fn app(db: &PgConnectOptions, data: &Path) -> anyhow::Result<(axum::Router, AuditPipeline)> {
    let pool = || PgPool::connect_lazy_with(db.clone());
    let vault = Arc::new(FileVault::open_or_create(&data.join("vault"))?);
    let key = Arc::new(Ed25519Signer::open_or_create_file(&data.join("audit.key"))?);
    let cipher = FieldCipher::new(TenantDb::new(pool()), vault.clone(), &AwsLcAead);
    let pipeline = AuditPipeline::builder(PgAuditSink::new(TenantDb::new(pool()), vault.clone()))
        .checkpoints(key, CheckpointSchedule::default())
        .build()?;
    let sdk = Sdk::builder(pool(), Arc::new(cipher), vault, pipeline.sink());
    let sdk = sdk.audit_log(pipeline.log().clone()).build();
    let routes = account::table()
        .merge(admin::table())
        .merge(audit::table())
        .merge(sso::table())
        .merge(scim::admin_table())
        .merge(crate::claims::table());
    let routes = routes.into_router().merge(scim::scim_routes());
    let sso = SsoClients::default();
    let app = harden(routes.with_state(AppState { sdk, sso }), Limits::default());
    Ok((app, pipeline))
}
// embed-it:end
