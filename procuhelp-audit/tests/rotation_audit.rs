#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `RotationAuditor`: tenancy's key rotation, recorded through the application's one sink
//! and clock — one `keys.rotated` event per organisation, in that organisation's chain,
//! dated by the injected clock; a refusing sink stops the run.

mod common;

use std::sync::Arc;

use common::Fixture;
use procuhelp_audit::{Action, Actor, AuditSink, MemorySink, Outcome, RotationAuditor};
use procuhelp_core::ManualClock;
use procuhelp_core::crypto::RustCryptoAead;
use procuhelp_tenancy::rotation::rotate_all;
use procuhelp_tenancy::{Error, FieldCipher, TenantDb};
use time::macros::datetime;

#[tokio::test]
async fn each_rotation_is_one_keys_rotated_event_of_its_org_and_a_refusal_stops_the_run() {
    let f = Fixture::new().await;
    let cipher = FieldCipher::new(
        TenantDb::new(f.owner.clone()),
        f.vault.clone(),
        &RustCryptoAead,
    );
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 12:00 UTC)));

    // Through the PostgreSQL chain: every organisation's chain holds its own event.
    let chain: Arc<dyn AuditSink> = Arc::new(f.sink());
    let done = rotate_all(
        &f.owner,
        &cipher,
        &[],
        10,
        &RotationAuditor::new(chain, clock.clone()),
    )
    .await
    .unwrap();
    assert!(done.iter().any(|r| r.org == f.a) && done.iter().any(|r| r.org == f.b));
    for org in [f.a, f.b] {
        let mut tx = f.db.begin(org).await.unwrap();
        let rows: Vec<(String, String, String, time::OffsetDateTime)> = sqlx::query_as(
            "SELECT action, actor_kind, outcome, at FROM app.audit_events ORDER BY seq",
        )
        .fetch_all(tx.conn())
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(rows.len(), 1, "{org}: {rows:?}");
        let (action, _, outcome, at) = &rows[0];
        assert_eq!(
            (action.as_str(), outcome.as_str()),
            ("keys.rotated", "success")
        );
        assert_eq!(*at, datetime!(2026-03-01 12:00 UTC));
    }

    // The event itself: system actor, the figures as context, no key material.
    let memory = Arc::new(MemorySink::new());
    let auditor = RotationAuditor::new(memory.clone(), clock.clone());
    let second = rotate_all(&f.owner, &cipher, &[], 10, &auditor)
        .await
        .unwrap();
    let events = memory.events();
    assert_eq!(events.len(), second.len());
    for (e, rotation) in events.iter().zip(&second) {
        assert_eq!(e.org, Some(rotation.org));
        assert_eq!(
            (e.action, e.outcome, &e.actor),
            (Action::KeysRotated, Outcome::Success, &Actor::System)
        );
        assert_eq!(e.context, rotation.to_json());
        assert_eq!(e.at, datetime!(2026-03-01 12:00 UTC));
    }

    // A sink that refuses stops the run at the first organisation.
    memory.set_failing(true);
    let err = rotate_all(&f.owner, &cipher, &[], 10, &auditor)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuditRefused(_)), "{err:?}");
    assert_eq!(memory.events().len(), done.len());

    f.teardown().await;
}
