//! The deployment's data residency (`procuhelp_tenancy::residency`): read from
//! `--residency FILE` or the built-in EU configuration, written to the database by the
//! schema owner (the region it serves), and checked before serving and by `posture`.

use anyhow::Context as _;
use procuhelp_tenancy::residency::{self, Region, Residency};
use sqlx::PgPool;

use crate::cli::DatabaseArgs;

/// The built-in configuration (`examples/server/residency.json`): an EU deployment with
/// everything in the EU. `docs/subprocessors.md` is generated from it.
pub const DEFAULT: &str = include_str!("../residency.json");

/// The residency `args` name, or the built-in one. A malformed file (unknown field,
/// region or country) is an error naming the file.
pub fn load(args: &DatabaseArgs) -> anyhow::Result<Residency> {
    match &args.residency {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a residency configuration", path.display()))
        }
        None => Ok(serde_json::from_str(DEFAULT)?),
    }
}

/// Makes the database serve `residency`'s region (owner pool) — only when `--residency`
/// was given: a command run without it must not move a deployment to the built-in
/// region (a fresh database serves `eu`, the built-in one; any other mismatch is a
/// finding that stops `serve`).
pub async fn apply(
    owner: &PgPool,
    args: &DatabaseArgs,
    residency: &Residency,
) -> anyhow::Result<()> {
    if args.residency.is_none() {
        return Ok(());
    }
    residency::set_deployment_region(owner, residency.region)
        .await
        .context("setting the deployment's region")
}

/// What is wrong before serving, as the runtime role sees it: the database must serve the
/// configured region, and for an EU deployment every store and subprocessor must be in
/// the EU/EEA.
pub async fn findings_for_serving(
    runtime: &PgPool,
    residency: &Residency,
) -> anyhow::Result<Vec<String>> {
    let database = residency::deployment_region(runtime).await?;
    Ok(residency
        .findings(database, &[residency.region])
        .into_iter()
        .map(|f| f.0)
        .collect())
}

/// The posture check's findings, with every organisation's region where `owner` can list
/// them (else as for serving).
pub async fn posture_findings(
    owner: &PgPool,
    runtime: &PgPool,
    residency: &Residency,
) -> anyhow::Result<Vec<String>> {
    let database = residency::deployment_region(runtime).await?;
    let regions: Vec<Region> = match residency::organisation_regions(owner).await {
        Ok(orgs) => orgs.into_iter().map(|(_, r)| r).collect(),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "organisations of other regions not checked: listing them needs the schema owner"
            );
            vec![residency.region]
        }
    };
    Ok(residency
        .findings(database, &regions)
        .into_iter()
        .map(|f| f.0)
        .collect())
}
