//! Retention jobs (`docs/retention.md`, `docs/gdpr.md`): purge what the personal-data
//! register says has expired, in bounded batches, and record the counts in the system
//! chain (`personal_data.purged`) — never what was purged. `serve` runs it on a schedule;
//! `procuhelp-server retention run` runs it once.

use std::sync::Arc;
use std::time::Duration;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::personal_data::retention::{Limits, Purge, purge_expired};
use serde_json::json;
use sqlx::PgPool;

use crate::database;

/// One run: every organisation (listed through `owner`, the only role that sees them
/// all), purged through `runtime`; the counts recorded through `audit` (a failed run is
/// recorded too, as a failure, and returned).
pub async fn run_once(owner: &PgPool, runtime: &PgPool, audit: &dyn AuditSink) -> anyhow::Result<Purge> {
    let register: Vec<_> = database::schema().personal_data().copied().collect();
    let now = time::OffsetDateTime::now_utc();
    let purged = async {
        let orgs = procuhelp_tenancy::organisation_ids(owner).await?;
        let db = TenantDb::new(runtime.clone());
        anyhow::Ok(purge_expired(&db, runtime, &register, &orgs, now, Limits::default()).await?)
    }
    .await;
    let (outcome, context) = match &purged {
        Ok(p) => (
            Outcome::Success,
            json!({ "rows": p.rows, "more_left": p.more_left }),
        ),
        Err(e) => (Outcome::Failure, json!({ "error": format!("{e:#}") })),
    };
    audit
        .record(
            AuditEvent::new(None, Actor::System, Action::PersonalDataPurged, outcome)
                .at(now)
                .context(context),
        )
        .await?;
    purged
}

/// Runs [`run_once`] every `every`, starting at once; a failed run is logged (and
/// recorded) and retried at the next tick.
pub async fn schedule(owner: PgPool, runtime: PgPool, audit: Arc<dyn AuditSink>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run_once(&owner, &runtime, audit.as_ref()).await {
            Ok(p) => tracing::info!(rows = p.total(), more_left = p.more_left, "retention purge"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "retention purge failed"),
        }
    }
}
