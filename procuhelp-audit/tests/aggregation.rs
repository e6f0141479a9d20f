#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue #11 finding 10: anyone can grow the append-only trail without bound. Repeated
//! unauthenticated refusals from one source are recorded once in full and then counted,
//! while the alert detectors still see each one.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::Fixture;
use procuhelp_audit::{
    Action, Actor, AggregationConfig, Alert, AlertConfig, AlertKind, AlertSink, AlertingSink,
    AuditEvent, AuditSink, Detectors, FailingSink, MemorySink, Outcome, RefusalAggregator,
    WindowRule,
};
use procuhelp_core::{OrgId, UserId};
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-11-25 09:00 UTC)
}

/// A refused sign-in as the authenticator records it when the address is throttled.
fn throttled(org: Option<OrgId>, from: IpAddr, at: OffsetDateTime) -> AuditEvent {
    AuditEvent::new(org, Actor::System, Action::LoginFailed, Outcome::Denied)
        .source(Some(from), Some("curl/8"))
        .context(serde_json::json!({ "reason": "throttled" }))
        .at(at)
}

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<Alert>>);

#[async_trait]
impl AlertSink for Collect {
    async fn send(&self, alert: Alert) -> procuhelp_audit::Result<()> {
        self.0.lock().unwrap().push(alert);
        Ok(())
    }
}

async fn rows(f: &Fixture, org: OrgId, action: &str) -> i64 {
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM app.audit_events WHERE org_id = $1 AND action = $2",
    )
    .bind(org.as_uuid())
    .bind(action)
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    n
}

#[tokio::test]
async fn a_thousand_throttled_sign_ins_append_two_rows_and_the_detectors_see_all() {
    let f = Fixture::new().await;
    let aggregator = Arc::new(RefusalAggregator::new(f.sink()));
    let config = AlertConfig {
        per_source: WindowRule::new(1000, Duration::hours(1)),
        ..AlertConfig::default()
    };
    let alerts = Arc::new(Collect::default());
    let sink = AlertingSink::new(
        aggregator.clone(),
        Detectors::new(config).unwrap(),
        alerts.clone(),
        64,
    );
    let from: IpAddr = "203.0.113.9".parse().unwrap();
    for i in 0..1000 {
        sink.record(throttled(Some(f.a), from, t0() + Duration::milliseconds(i)))
            .await
            .unwrap();
    }
    assert_eq!(rows(&f, f.a, "auth.login_failed").await, 1);
    assert_eq!(aggregator.pending(), 999);
    // The per-address detector (threshold 1,000) fired: it saw every refusal.
    let mut seen = None;
    for _ in 0..100 {
        seen = alerts
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.kind == AlertKind::FailedLoginsPerSource)
            .map(|a| a.count);
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(1000));
    // After the window the counts go into one summary.
    assert_eq!(
        aggregator
            .flush_expired(t0() + Duration::hours(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(rows(&f, f.a, "audit.refusals_aggregated").await, 1);
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let context: String = sqlx::query_scalar(
        "SELECT context FROM app.audit_events WHERE org_id = $1 AND action = 'audit.refusals_aggregated'",
    )
    .bind(f.a.as_uuid())
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    let context: serde_json::Value = serde_json::from_str(&context).unwrap();
    assert_eq!(context["suppressed"], 999);
    assert_eq!(context["reason"], "throttled");
    assert_eq!(context["action"], "auth.login_failed");
    assert!(
        !context.to_string().contains("203.0.113.9"),
        "the address stays sealed"
    );
    assert_eq!(aggregator.pending(), 0);
    f.teardown().await;
}

#[tokio::test]
async fn keys_are_per_source_prefix_reason_and_window_and_memory_is_bounded() {
    let memory = Arc::new(MemorySink::new());
    let agg = RefusalAggregator::with_config(
        memory.clone(),
        AggregationConfig {
            max_keys: 3,
            ..AggregationConfig::default()
        },
    );
    let org = Some(OrgId::new());
    let at = t0();
    // One IPv6 /64 is one source.
    for host in 1..=50u16 {
        let ip: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
        agg.record(throttled(org, ip, at)).await.unwrap();
    }
    assert_eq!(memory.events().len(), 1);
    // Another /64, another reason, another organisation: each a key of its own.
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    agg.record(throttled(org, other, at)).await.unwrap();
    let mut unknown = throttled(org, other, at);
    unknown.context = serde_json::json!({ "method": "oidc", "reason": "state_mismatch" });
    agg.record(unknown).await.unwrap();
    assert_eq!(memory.events().len(), 3);
    // The map is full (3 keys): new sources of this organisation share one overflow key.
    for n in 0..100u8 {
        let ip = IpAddr::from([198, 51, 100, n]);
        agg.record(throttled(org, ip, at)).await.unwrap();
    }
    assert_eq!(
        memory.events().len(),
        4,
        "one full event for the overflow key"
    );
    // Flushing on shutdown writes the counts: 49 + 99.
    assert_eq!(agg.flush_all().await.unwrap(), 2);
    let suppressed: u64 = memory
        .events()
        .iter()
        .filter(|e| e.action == Action::RefusalsAggregated)
        .map(|e| e.context["suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!(suppressed, 49 + 99);
    // A new window records in full again.
    let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    agg.record(throttled(org, first, at + Duration::hours(1)))
        .await
        .unwrap();
    let full = memory
        .events()
        .iter()
        .filter(|e| e.action == Action::LoginFailed)
        .count();
    assert_eq!(full, 5);
}

#[tokio::test]
async fn known_accounts_successes_and_other_actions_are_never_aggregated() {
    let memory = Arc::new(MemorySink::new());
    let agg = RefusalAggregator::new(memory.clone());
    let org = Some(OrgId::new());
    let user = UserId::new();
    let from: IpAddr = "192.0.2.1".parse().unwrap();
    for i in 0..5 {
        let at = t0() + Duration::seconds(i);
        // A wrong password for a known account names the user: bounded by the lock.
        agg.record(
            AuditEvent::new(
                org,
                Actor::User { id: user },
                Action::LoginFailed,
                Outcome::Failure,
            )
            .source(Some(from), None)
            .at(at),
        )
        .await
        .unwrap();
        agg.record(
            AuditEvent::new(org, Actor::System, Action::LoginSucceeded, Outcome::Success)
                .source(Some(from), None)
                .at(at),
        )
        .await
        .unwrap();
        agg.record(
            AuditEvent::new(org, Actor::System, Action::KeysRotated, Outcome::Failure)
                .source(Some(from), None)
                .at(at),
        )
        .await
        .unwrap();
    }
    // A wrong password for an account that does not exist is recorded in full too, so
    // known and unknown accounts take the same path (no timing oracle for existence).
    for i in 0..5 {
        agg.record(
            AuditEvent::new(org, Actor::System, Action::LoginFailed, Outcome::Failure)
                .source(Some(from), None)
                .context(serde_json::json!({ "reason": "invalid credentials" }))
                .at(t0() + Duration::seconds(i)),
        )
        .await
        .unwrap();
    }
    assert_eq!(memory.events().len(), 20);
    assert_eq!(agg.pending(), 0);
}

#[tokio::test]
async fn a_first_refusal_that_cannot_be_recorded_fails_closed_and_is_not_counted() {
    let agg = RefusalAggregator::new(FailingSink);
    let from: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..3 {
        assert!(agg.record(throttled(None, from, t0())).await.is_err());
    }
    assert_eq!(agg.pending(), 0);
}
