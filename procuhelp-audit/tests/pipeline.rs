#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit pipeline on a real database: checkpoints are signed after N events and after
//! T (by an injected clock), a failing signer loses no event and is reported, shutdown
//! records refusal counts and signs every chain, and alerts see what was recorded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, event};
use procuhelp_audit::{
    Action, Actor, Alert, AlertConfig, AlertKind, AlertSink, AuditEvent, AuditPipeline,
    CheckpointSchedule, CheckpointSigner, Detectors, Ed25519Signer, Outcome, PublicKey, Trust,
    WindowRule,
};
use procuhelp_core::{ManualClock, OrgId};
use time::OffsetDateTime;

/// A key-file signer that can be told to fail (an OpenBao outage, say).
#[derive(Debug)]
struct FlakySigner {
    key: Ed25519Signer,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl CheckpointSigner for FlakySigner {
    async fn sign(&self, message: &[u8]) -> procuhelp_audit::Result<[u8; 64]> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(procuhelp_audit::AuditError::Unavailable(
                "signer unreachable".to_owned(),
            ));
        }
        self.key.sign(message).await
    }

    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

fn signer() -> Arc<FlakySigner> {
    Arc::new(FlakySigner {
        key: Ed25519Signer::from_pkcs8(&Ed25519Signer::generate_pkcs8().unwrap()).unwrap(),
        failing: AtomicBool::new(false),
    })
}

fn start() -> OffsetDateTime {
    time::macros::datetime!(2026-12-01 09:00:00 UTC)
}

/// The checkpoints of `org`'s chain: (seq, signing time).
async fn checkpoints(f: &Fixture, org: OrgId) -> Vec<(i64, OffsetDateTime)> {
    let mut tx = f.db.begin(org).await.unwrap();
    let rows: Vec<(i64, OffsetDateTime)> =
        sqlx::query_as("SELECT seq, at FROM app.audit_checkpoints WHERE org_id = $1 ORDER BY seq")
            .bind(org.as_uuid())
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    rows
}

/// Waits (up to 10 s) until `org` has `n` checkpoints.
async fn wait_for_checkpoints(f: &Fixture, org: OrgId, n: usize) -> Vec<(i64, OffsetDateTime)> {
    for _ in 0..200 {
        let cps = checkpoints(f, org).await;
        if cps.len() >= n {
            return cps;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no checkpoint of {org} appeared: {:?}",
        checkpoints(f, org).await
    );
}

#[tokio::test]
async fn a_checkpoint_is_signed_after_n_events() {
    let f = Fixture::new().await;
    let log = f.sink();
    let clock = Arc::new(ManualClock::new(start()));
    let signer = signer();
    let pipeline = AuditPipeline::builder(log.clone())
        .checkpoints(signer.clone(), CheckpointSchedule::every_events(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = pipeline.sink();
    for n in 0..4 {
        audit.record(event(f.a, n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(checkpoints(&f, f.a).await.is_empty(), "4 events < 5");
    audit.record(event(f.a, 4)).await.unwrap();
    let cps = wait_for_checkpoints(&f, f.a, 1).await;
    assert_eq!(
        cps,
        vec![(5, start())],
        "the head at the 5th event, at the clock's time"
    );
    // The next five events get the next one; the other organisation has none.
    for n in 5..10 {
        audit.record(event(f.a, n)).await.unwrap();
    }
    let cps = wait_for_checkpoints(&f, f.a, 2).await;
    assert_eq!(cps.iter().map(|c| c.0).collect::<Vec<_>>(), [5, 10]);
    assert!(checkpoints(&f, f.b).await.is_empty());
    // Signed by the pipeline's signer: a verifier pinning its key accepts the chain.
    let trust = Trust::pinned([signer.public_key()]).unwrap();
    let report = log.verify_live(f.a, &trust).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checkpoints_verified, 2);
    assert_eq!(pipeline.stats().checkpoints_signed, 2);
    pipeline.shutdown().await;
    f.teardown().await;
}

#[tokio::test]
async fn a_checkpoint_is_signed_once_the_oldest_unsigned_event_is_t_old() {
    let f = Fixture::new().await;
    let clock = Arc::new(ManualClock::new(start()));
    let pipeline = AuditPipeline::builder(f.sink())
        .checkpoints(signer(), CheckpointSchedule::every(Duration::from_secs(60)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = pipeline.sink();
    for n in 0..3 {
        audit.record(event(f.a, n)).await.unwrap();
    }
    clock.advance(time::Duration::seconds(59));
    // Real time passes (many ticks of the task); the clock says 59 s: not yet.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(checkpoints(&f, f.a).await.is_empty());
    assert_eq!(pipeline.stats().unsigned_chains, 1);
    clock.advance(time::Duration::seconds(1));
    let cps = wait_for_checkpoints(&f, f.a, 1).await;
    assert_eq!(cps, vec![(3, start() + time::Duration::seconds(60))]);
    assert_eq!(pipeline.stats().unsigned_chains, 0);
    // Nothing new: nothing more is signed, however late it gets.
    clock.advance(time::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(checkpoints(&f, f.a).await.len(), 1);
    pipeline.shutdown().await;
    f.teardown().await;
}

#[tokio::test]
async fn a_failing_signer_is_reported_and_loses_no_event() {
    let f = Fixture::new().await;
    let log = f.sink();
    let clock = Arc::new(ManualClock::new(start()));
    let signer = signer();
    signer.failing.store(true, Ordering::SeqCst);
    let pipeline = AuditPipeline::builder(log.clone())
        .checkpoints(signer.clone(), CheckpointSchedule::every_events(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = pipeline.sink();
    for n in 0..4 {
        // Recording does not wait for, or fail with, the signer.
        let receipt = audit.record(event(f.a, n)).await.unwrap();
        assert_eq!(receipt.seq, Some(n + 1));
    }
    for _ in 0..200 {
        if pipeline.stats().checkpoint_failures > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = pipeline.stats();
    assert!(stats.checkpoint_failures >= 1, "{stats:?}");
    assert_eq!(stats.unsigned_chains, 1, "the chain stays due");
    assert!(checkpoints(&f, f.a).await.is_empty());
    // Every event is in the chain.
    let trust = Trust::pinned([signer.public_key()]).unwrap();
    let report = log.verify_live(f.a, &trust).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events, 4);
    // The signer is back: after the retry delay the chain is signed at its head.
    signer.failing.store(false, Ordering::SeqCst);
    clock.advance(time::Duration::seconds(5));
    let cps = wait_for_checkpoints(&f, f.a, 1).await;
    assert_eq!(cps[0].0, 4);
    assert_eq!(pipeline.shutdown().await.unsigned_chains, 0);
    f.teardown().await;
}

#[tokio::test]
async fn shutdown_records_refusal_counts_and_signs_every_chain() {
    let f = Fixture::new().await;
    let log = f.sink();
    let clock = Arc::new(ManualClock::new(start()));
    let pipeline = AuditPipeline::builder(log.clone())
        .checkpoints(
            signer(),
            CheckpointSchedule::every(Duration::from_secs(3600)),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = pipeline.sink();
    audit.record(event(f.a, 1)).await.unwrap();
    audit.record(event(f.b, 1)).await.unwrap();
    // A system-wide event: the system chain is signed too.
    audit
        .record(
            AuditEvent::new(
                None,
                Actor::System,
                Action::SecretAccessed,
                Outcome::Success,
            )
            .at(start())
            .target("secret:db/runtime-url"),
        )
        .await
        .unwrap();
    // Throttled sign-ins from one address: one row in full, the rest counted.
    let refusal = || {
        AuditEvent::new(
            Some(f.b),
            Actor::System,
            Action::LoginFailed,
            Outcome::Denied,
        )
        .at(start())
        .source(Some("198.51.100.7".parse().unwrap()), None)
        .context(serde_json::json!({ "reason": "throttled" }))
    };
    for _ in 0..10 {
        audit.record(refusal()).await.unwrap();
    }
    assert!(checkpoints(&f, f.a).await.is_empty());
    let stats = pipeline.shutdown().await;
    assert_eq!(stats.unsigned_chains, 0, "{stats:?}");
    assert_eq!(stats.checkpoints_signed, 3);
    assert_eq!(checkpoints(&f, f.a).await.len(), 1);
    assert!(
        !checkpoints(&f, procuhelp_audit::system_chain_org())
            .await
            .is_empty()
    );
    // Org B: its event, the first refusal and the summary of the other nine — signed.
    let cps = checkpoints(&f, f.b).await;
    assert_eq!(cps.iter().map(|c| c.0).collect::<Vec<_>>(), [3]);
    f.teardown().await;
}

#[derive(Debug, Default)]
struct Collected(Mutex<Vec<Alert>>);

#[async_trait::async_trait]
impl AlertSink for Collected {
    async fn send(&self, alert: Alert) -> procuhelp_audit::Result<()> {
        self.0.lock().unwrap().push(alert);
        Ok(())
    }
}

#[tokio::test]
async fn alerts_see_every_refusal_including_those_only_counted() {
    let f = Fixture::new().await;
    let config = AlertConfig {
        per_source: WindowRule::new(5, time::Duration::minutes(5)),
        ..AlertConfig::default()
    };
    let alerts = Arc::new(Collected::default());
    let pipeline = AuditPipeline::builder(f.sink())
        .checkpoints(signer(), CheckpointSchedule::default())
        .clock(Arc::new(ManualClock::new(start())))
        .alerts(Detectors::new(config).unwrap(), alerts.clone())
        .build()
        .unwrap();
    let audit = pipeline.sink();
    for i in 0..5 {
        audit
            .record(
                AuditEvent::new(
                    Some(f.a),
                    Actor::System,
                    Action::LoginFailed,
                    Outcome::Denied,
                )
                .at(start() + time::Duration::seconds(i))
                .source(Some("198.51.100.9".parse().unwrap()), None)
                .context(serde_json::json!({ "reason": "throttled" })),
            )
            .await
            .unwrap();
    }
    for _ in 0..100 {
        if !alerts.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<AlertKind> = alerts.0.lock().unwrap().iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::FailedLoginsPerSource]);
    pipeline.shutdown().await;
    f.teardown().await;
}

#[tokio::test]
async fn a_pipeline_without_checkpoints_or_with_a_second_signer_is_refused() {
    let f = Fixture::new().await;
    assert!(AuditPipeline::builder(f.sink()).build().is_err());
    assert!(
        AuditPipeline::builder(f.sink())
            .checkpoints(signer(), CheckpointSchedule::every_events(0))
            .build()
            .is_err()
    );
    let first = signer();
    let log = f.sink().with_signer(first.clone()).unwrap();
    assert!(
        AuditPipeline::builder(log.clone())
            .checkpoints(signer(), CheckpointSchedule::default())
            .build()
            .is_err(),
        "the sink already signs with another key"
    );
    let same = AuditPipeline::builder(log)
        .checkpoints(first, CheckpointSchedule::default())
        .build();
    assert!(same.is_ok());
    same.unwrap().shutdown().await;
    f.teardown().await;
}
