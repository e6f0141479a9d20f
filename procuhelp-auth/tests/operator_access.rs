//! Operators' break-glass grants on a real PostgreSQL through the runtime role: in force
//! at once by default; with `operator_access_needs_approval`, pending until one of the
//! organisation's admins approves it, then for the duration asked from the approval;
//! declined, lapsed and tampered grants never come into force; and another organisation
//! never sees or approves them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod fx;

use fx::Fx;
use procuhelp_auth::Role;
use procuhelp_auth::directory::{self, OrgPolicy};
use procuhelp_auth::operator::OperatorName;
use procuhelp_auth::operator_access::{self, APPROVAL_WINDOW, AccessError, GrantState};
use time::Duration;

const REASON: &str = "INC-4711: supplier import stuck";

async fn require_approval(fx: &Fx, org: procuhelp_core::OrgId, on: bool) {
    let mut tx = fx.tx(org).await;
    directory::set_org_policy(
        &mut tx,
        OrgPolicy {
            operator_access_needs_approval: on,
            ..OrgPolicy::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_wait_for_the_admin_when_the_policy_says_so() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let alice = OperatorName::parse("alice").unwrap();
    let admin = fx.user(a, "admin@a.test", Role::Admin).await;
    let other_admin = fx.user(b, "admin@b.test", Role::Admin).await;
    let t0 = fx.now();

    // By default a grant is in force at once.
    let mut tx = fx.tx(a).await;
    let g = operator_access::grant(&mut tx, &alice, REASON, Duration::hours(1), t0)
        .await
        .unwrap();
    assert_eq!(g.state, GrantState::Active);
    assert!(
        operator_access::in_force(&mut tx, &alice, t0)
            .await
            .unwrap()
            .is_some()
    );
    // It needed no approval, so it cannot be approved.
    let again = operator_access::approve(&mut tx, g.id, admin, t0).await;
    assert!(matches!(again, Err(AccessError::NotPending)), "{again:?}");
    operator_access::revoke(&mut tx, g.id, t0).await.unwrap();
    tx.commit().await.unwrap();

    // With the policy on, the next one waits.
    require_approval(&fx, a, true).await;
    let mut tx = fx.tx(a).await;
    let pending = operator_access::grant(&mut tx, &alice, REASON, Duration::hours(2), t0)
        .await
        .unwrap();
    assert_eq!(pending.state, GrantState::Pending);
    assert!(
        operator_access::in_force(&mut tx, &alice, t0 + Duration::minutes(1))
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();

    // Another organisation's admin cannot see or approve it: to them it does not exist.
    let mut tx = fx.tx(b).await;
    let foreign = operator_access::approve(&mut tx, pending.id, other_admin, t0).await;
    assert!(matches!(foreign, Err(AccessError::NotFound)), "{foreign:?}");
    assert!(
        operator_access::list(&mut tx, t0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    tx.rollback().await.unwrap();

    // Approved 30 minutes later, it runs two hours from the approval.
    let approved_at = t0 + Duration::minutes(30);
    let mut tx = fx.tx(a).await;
    let approved = operator_access::approve(&mut tx, pending.id, admin, approved_at)
        .await
        .unwrap();
    assert_eq!(
        (
            approved.state,
            approved.approved_by,
            approved.starts_at,
            approved.ends_at
        ),
        (
            GrantState::Active,
            Some(admin),
            approved_at,
            approved_at + Duration::hours(2)
        )
    );
    let in_force = operator_access::in_force(&mut tx, &alice, approved_at + Duration::minutes(100))
        .await
        .unwrap();
    assert_eq!(in_force.map(|g| g.id), Some(pending.id));
    // Approved once.
    let twice = operator_access::approve(&mut tx, pending.id, admin, approved_at).await;
    assert!(matches!(twice, Err(AccessError::NotPending)), "{twice:?}");
    tx.commit().await.unwrap();

    // A declined request never comes into force, and cannot be approved afterwards.
    let mut tx = fx.tx(a).await;
    let declined = operator_access::grant(&mut tx, &alice, REASON, Duration::hours(1), t0)
        .await
        .unwrap();
    assert!(
        operator_access::revoke(&mut tx, declined.id, t0)
            .await
            .unwrap()
            .is_some()
    );
    let late = operator_access::approve(&mut tx, declined.id, admin, t0).await;
    assert!(matches!(late, Err(AccessError::NotPending)), "{late:?}");
    // One not approved within the window lapses.
    let lapsing = operator_access::grant(&mut tx, &alice, REASON, Duration::hours(1), t0)
        .await
        .unwrap();
    let after = t0 + APPROVAL_WINDOW + Duration::SECOND;
    let late = operator_access::approve(&mut tx, lapsing.id, admin, after).await;
    assert!(matches!(late, Err(AccessError::NotPending)), "{late:?}");
    let states: Vec<(uuid::Uuid, GrantState)> = operator_access::list(&mut tx, after, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.id, g.state))
        .collect();
    for (id, state) in [
        (g.id, GrantState::Revoked),
        (pending.id, GrantState::Ended),
        (declined.id, GrantState::Revoked),
        (lapsing.id, GrantState::Lapsed),
    ] {
        assert!(states.contains(&(id, state)), "{id}: {states:?}");
    }
    tx.commit().await.unwrap();

    // The database holds the rules even against the runtime role's own statements: a
    // pending grant cannot be pushed into force without an approver, and a revoked one
    // cannot be restored.
    let mut tx = fx.tx(a).await;
    let forced = sqlx::query(
        "UPDATE app.operator_grants SET approved_at = now(), starts_at = now(),
                ends_at = now() + interval '1 hour' WHERE id = $1",
    )
    .bind(lapsing.id)
    .execute(tx.conn())
    .await;
    assert!(
        forced.is_err(),
        "an approval without an approver was stored"
    );
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(a).await;
    let restored = sqlx::query("UPDATE app.operator_grants SET revoked_at = NULL WHERE id = $1")
        .bind(declined.id)
        .execute(tx.conn())
        .await;
    assert!(restored.is_err(), "a revoked grant was restored");
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(a).await;
    let stretched = sqlx::query(
        "UPDATE app.operator_grants SET approved_by = $2, approved_at = starts_at,
                ends_at = starts_at + interval '8 hours' WHERE id = $1",
    )
    .bind(lapsing.id)
    .bind(admin.as_uuid())
    .execute(tx.conn())
    .await;
    assert!(stretched.is_err(), "an approval changed the grant's length");
    tx.rollback().await.unwrap();
    fx.close().await;
}
