//! Retention jobs (`docs/retention.md`, `docs/gdpr.md`): purge what the personal-data
//! register says has expired, in bounded batches, and record the counts in the system
//! chain (`personal_data.purged`) — never what was purged. `serve` runs it on a schedule;
//! `procuhelp-server retention run` runs it once.

use std::sync::Arc;
use std::time::Duration;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome, PgAuditSink};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::personal_data::retention::{Limits, Purge, purge_expired};
use serde_json::json;
use sqlx::PgPool;

use crate::database;

/// Days the audit trail keeps unattributed personal data (addresses, browsers and typed
/// addresses of sign-ins that named no account) before its keys are destroyed.
pub const UNATTRIBUTED_DAYS: i64 = 30;

/// One run: every organisation (listed through `owner`, the only role that sees them
/// all), purged through `runtime`, and its unattributed audit personal data older than
/// [`UNATTRIBUTED_DAYS`] shredded through `log`; the counts recorded through `audit` (a
/// failed run is recorded too, as a failure, and returned).
pub async fn run_once(
    owner: &PgPool,
    runtime: &PgPool,
    log: &PgAuditSink,
    audit: &dyn AuditSink,
) -> anyhow::Result<Purge> {
    let register: Vec<_> = database::schema().personal_data().copied().collect();
    let now = time::OffsetDateTime::now_utc();
    let purged = async {
        let orgs = procuhelp_tenancy::organisation_ids(owner).await?;
        let db = TenantDb::new(runtime.clone());
        let mut purge =
            purge_expired(&db, runtime, &register, &orgs, now, Limits::default()).await?;
        let before = (now - time::Duration::days(UNATTRIBUTED_DAYS)).date();
        let mut shredded = 0;
        for org in &orgs {
            shredded += log.expire_unattributed(*org, before).await?;
        }
        purge
            .rows
            .insert("app.audit_person_keys (unattributed)", shredded);
        anyhow::Ok(purge)
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
pub async fn schedule(
    owner: PgPool,
    runtime: PgPool,
    log: PgAuditSink,
    audit: Arc<dyn AuditSink>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run_once(&owner, &runtime, &log, audit.as_ref()).await {
            Ok(p) => tracing::info!(rows = p.total(), more_left = p.more_left, "retention purge"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "retention purge failed"),
        }
    }
}
