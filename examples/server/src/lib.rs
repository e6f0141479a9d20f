//! The ProcuHelp product assembled from the SDK crates: an axum server over HTTPS with
//! strict browser protections, tenant-scoped data access on PostgreSQL row-level
//! security, and administrative commands.
//!
//! Run it with `cargo run -p procuhelp-server -- serve` (embedded database, self-signed
//! certificate, <https://127.0.0.1:8443/>). The router is built by [`app::app`] and tested
//! in-process with `tower::ServiceExt::oneshot`.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod database;
pub mod logging;
pub mod serve;
pub mod tls;

use anyhow::Context as _;
use cli::{Cli, Command};

/// Runs one CLI command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => serve::serve(args, None).await,
        Command::Migrate(args) => {
            serve::create_private_dir(&args.db.data_dir)?;
            let runtime_role = procuhelp_tenancy::RuntimeRole::new(args.runtime_role)?;
            let db = database::Database::open(&args.db).await?;
            let owner = db.owner_pool().await?;
            let result = procuhelp_tenancy::migrate(&owner, &runtime_role).await;
            owner.close().await;
            db.close().await?;
            result.context("migrate")?;
            tracing::info!(role = runtime_role.name(), "migrations applied");
            Ok(())
        }
        Command::Posture(args) => {
            serve::create_private_dir(&args.data_dir)?;
            let db = database::Database::open(&args).await?;
            let runtime = db
                .runtime_pool(&procuhelp_tenancy::RuntimeRole::default(), 1)
                .await?;
            let result = procuhelp_tenancy::posture::check(&runtime).await;
            runtime.close().await;
            db.close().await?;
            result.context("posture check")?;
            tracing::info!("posture check passed");
            Ok(())
        }
        Command::SeedDemo(args) => {
            serve::create_private_dir(&args.db.data_dir)?;
            let runtime_role = procuhelp_tenancy::RuntimeRole::new(args.runtime_role)?;
            let db = database::Database::open(&args.db).await?;
            let result = seed_demo(&db, &runtime_role).await;
            db.close().await?;
            report_seed(&result?);
            Ok(())
        }
    }
}

async fn seed_demo(
    db: &database::Database,
    runtime_role: &procuhelp_tenancy::RuntimeRole,
) -> anyhow::Result<Vec<procuhelp_core::OrgId>> {
    use procuhelp_tenancy::{NewSupplier, PgSupplierRepository, SupplierRepository as _, TenantDb};
    let owner = db.owner_pool().await?;
    procuhelp_tenancy::migrate(&owner, runtime_role)
        .await
        .context("migrate")?;
    let mut orgs = Vec::new();
    for name in ["Demo Org A", "Demo Org B"] {
        orgs.push(procuhelp_tenancy::create_organisation(&owner, name).await?);
    }
    owner.close().await;
    let runtime = db.runtime_pool(runtime_role, 1).await?;
    let tenants = TenantDb::new(runtime.clone());
    let seeder = procuhelp_core::UserId::new();
    for (org, names) in orgs
        .iter()
        .zip([["Acme GmbH", "Bolt SARL"], ["Cobalt Ltd", "Delta BV"]])
    {
        let mut tx = tenants.begin(*org).await?;
        for (name, country) in names.into_iter().zip(["DE", "FR"]) {
            PgSupplierRepository
                .create(&mut tx, NewSupplier::new(name, country)?, seeder)
                .await?;
        }
        tx.commit().await?;
    }
    runtime.close().await;
    Ok(orgs)
}

#[expect(
    clippy::print_stdout,
    reason = "seed-demo's output is for the operator"
)]
fn report_seed(orgs: &[procuhelp_core::OrgId]) {
    for org in orgs {
        println!("demo organisation {org}");
    }
}
