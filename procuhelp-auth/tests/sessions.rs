//! Every credential a request presents, on a real PostgreSQL through the runtime role:
//! sessions (open, look up, idle and absolute expiry with a manual clock, revoke, revoke
//! the others, list), time-bound elevations as the session lookup sees them, and API
//! tokens (bound to their creator, the lower of two roles, stopped with the creator). The
//! isolation cases ask the database itself: another organisation's transaction finds,
//! changes and inserts nothing of the first one's rows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod fx;

use fx::{Fx, client, unauthenticated};
use procuhelp_audit::Action;
use procuhelp_auth::api_token::{self, MintedUnder};
use procuhelp_auth::directory::{self, UserStatus};
use procuhelp_auth::elevation::{self, ElevationRequest, ElevationState};
use procuhelp_auth::session::{
    self, Credential, NewSession, SessionPolicy, SessionStage, SessionToken,
};
use procuhelp_auth::{AuthError, Role};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::TenantTx;
use sha2::{Digest, Sha256};
use time::Duration;
use uuid::Uuid;

async fn open(fx: &Fx, org: OrgId, user: UserId) -> (Uuid, Credential) {
    let mut tx = fx.tx(org).await;
    let opened = session::open(
        &mut tx,
        NewSession {
            user,
            stage: SessionStage::Full,
            amr: &["pwd"],
            policy: SessionPolicy::default(),
            source: Some("192.0.2.1".parse().unwrap()),
            user_agent: Some("tests"),
        },
        fx.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    opened
}

/// Looks `credential` up in a transaction of `org` at the fixture's clock (committed).
async fn lookup(
    fx: &Fx,
    org: OrgId,
    credential: &Credential,
) -> Result<session::SessionPrincipal, AuthError> {
    let mut tx = fx.tx(org).await;
    let found = session::authenticate(&mut tx, credential, fx.now()).await;
    tx.commit().await.unwrap();
    found
}

/// The database's own answer: how many rows of `table` with `id` the transaction sees.
async fn visible(tx: &mut TenantTx, table: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_one(tx.conn())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_stored_as_a_hash_and_looked_up_by_its_token() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Approver).await;
    let (id, credential) = open(&fx, org, user).await;
    let p = lookup(&fx, org, &credential).await.unwrap();
    assert_eq!((p.session, p.user, p.stage), (id, user, SessionStage::Full));
    assert_eq!(
        (p.base_role, p.effective_role()),
        (Role::Approver, Role::Approver)
    );
    assert_eq!(p.amr, vec!["pwd".to_owned()]);
    // Only SHA-256 of the token is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM app.sessions WHERE id = $1")
        .bind(id)
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    let hash: [u8; 32] = Sha256::digest(credential.token.expose().as_bytes()).into();
    assert_eq!(stored, hash.to_vec());
    // A well-formed token we never issued finds nothing.
    let forged = Credential {
        org,
        token: SessionToken::generate().unwrap(),
    };
    unauthenticated(lookup(&fx, org, &forged).await);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_expiry_follow_the_injected_clock() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let (_, credential) = open(&fx, org, user).await;
    // Used every 25 minutes, it lives until the absolute limit (12 h)...
    let mut used = Duration::ZERO;
    while used + Duration::minutes(25) < Duration::hours(12) {
        fx.clock.advance(Duration::minutes(25));
        used += Duration::minutes(25);
        lookup(&fx, org, &credential).await.unwrap();
    }
    fx.clock.advance(Duration::hours(12) - used);
    unauthenticated(lookup(&fx, org, &credential).await);
    // ...and unused for the idle timeout (30 min), it ends.
    let (_, idle) = open(&fx, org, user).await;
    fx.clock.advance(Duration::minutes(29));
    lookup(&fx, org, &idle).await.unwrap();
    fx.clock.advance(Duration::minutes(31));
    unauthenticated(lookup(&fx, org, &idle).await);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_one_revoke_the_others_and_list() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let other = fx.user(org, "v@a.test", Role::Requester).await;
    let (here, here_c) = open(&fx, org, user).await;
    fx.clock.advance(Duration::seconds(1));
    let (there, there_c) = open(&fx, org, user).await;
    let (theirs, theirs_c) = open(&fx, org, other).await;
    let mut tx = fx.tx(org).await;
    let listed: Vec<Uuid> = session::list(&mut tx, user, fx.now())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![there, here], "newest first, only the user's");
    // A user cannot revoke someone else's session by id.
    assert!(
        !session::revoke(&mut tx, theirs, Some(user), fx.now())
            .await
            .unwrap()
    );
    // Sign out the others, keeping this one.
    assert_eq!(
        session::revoke_all(&mut tx, user, Some(here), fx.now())
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    lookup(&fx, org, &here_c).await.unwrap();
    unauthenticated(lookup(&fx, org, &there_c).await);
    lookup(&fx, org, &theirs_c).await.unwrap();
    let mut tx = fx.tx(org).await;
    assert!(
        session::revoke(&mut tx, here, Some(user), fx.now())
            .await
            .unwrap()
    );
    assert!(
        !session::revoke(&mut tx, here, Some(user), fx.now())
            .await
            .unwrap(),
        "already revoked"
    );
    assert!(
        session::list(&mut tx, user, fx.now())
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    unauthenticated(lookup(&fx, org, &here_c).await);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_users_sessions_stop_working() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let (_, credential) = open(&fx, org, user).await;
    let mut tx = fx.tx(org).await;
    directory::set_status(&mut tx, user, UserStatus::Disabled, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Even before anyone revokes the session, the lookup refuses it.
    unauthenticated(lookup(&fx, org, &credential).await);
    fx.close().await;
}

/// Another organisation's credential is refused, and not only by the Rust check: with the
/// organisation forged to match, the database (row-level security) finds no row, and
/// another organisation's transaction can neither read, revoke nor plant a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisations_session_is_invisible_to_the_database() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let user = fx.user(a, "u@a.test", Role::Admin).await;
    let (id, credential) = open(&fx, a, user).await;
    unauthenticated(lookup(&fx, b, &credential).await);
    let forged = Credential {
        org: b,
        token: SessionToken::parse(credential.token.expose()).unwrap(),
    };
    unauthenticated(lookup(&fx, b, &forged).await);
    let mut tx = fx.tx(b).await;
    assert_eq!(visible(&mut tx, "app.sessions", id).await, 0);
    assert!(!session::revoke(&mut tx, id, None, fx.now()).await.unwrap());
    assert_eq!(
        session::revoke_all(&mut tx, user, None, fx.now())
            .await
            .unwrap(),
        0
    );
    assert!(
        session::list(&mut tx, user, fx.now())
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    // A row claiming organisation A, written from B's transaction, is refused.
    let mut tx = fx.tx(b).await;
    let planted = sqlx::query(
        "INSERT INTO app.sessions (org_id, id, token_hash, user_id, stage, created_at,
                                   last_seen_at, idle_secs, expires_at)
         VALUES ($1, $2, $3, $4, 'full', now(), now(), 60, now() + interval '1 hour')",
    )
    .bind(a.as_uuid())
    .bind(Uuid::now_v7())
    .bind(vec![7u8; 32])
    .bind(user.as_uuid())
    .execute(tx.conn())
    .await;
    assert!(
        planted.is_err(),
        "row-level security let B write A's session"
    );
    tx.rollback().await.unwrap();
    // Behind RLS, the session is still there and live.
    let revoked: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM app.sessions WHERE id = $1")
            .bind(id)
            .fetch_one(&fx.admin)
            .await
            .unwrap();
    assert_eq!(revoked, None);
    lookup(&fx, a, &credential).await.unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevation_raises_the_role_until_it_runs_out_and_its_expiry_is_recorded() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let admin = fx.user(org, "admin@a.test", Role::Admin).await;
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let (_, credential) = open(&fx, org, user).await;
    let mut tx = fx.tx(org).await;
    let request = |duration| ElevationRequest {
        user,
        role: Role::Approver,
        reason: "quarter-end approvals".into(),
        duration,
    };
    // Nobody elevates themselves; the role must outrank the user's.
    let own = elevation::request(
        &mut tx,
        user,
        ElevationRequest {
            user,
            ..request(Duration::hours(1))
        },
        false,
        fx.now(),
    )
    .await;
    assert!(matches!(own, Err(AuthError::SelfApproval)), "{own:?}");
    let lower = elevation::request(
        &mut tx,
        admin,
        ElevationRequest {
            role: Role::ReadOnly,
            ..request(Duration::hours(1))
        },
        false,
        fx.now(),
    )
    .await;
    assert!(
        matches!(lower, Err(AuthError::Invalid { field: "role", .. })),
        "{lower:?}"
    );
    let e = elevation::request(
        &mut tx,
        admin,
        request(Duration::minutes(20)),
        false,
        fx.now(),
    )
    .await
    .unwrap();
    assert_eq!(e.state, ElevationState::Active);
    tx.commit().await.unwrap();
    let p = lookup(&fx, org, &credential).await.unwrap();
    assert_eq!(
        (p.base_role, p.effective_role()),
        (Role::Requester, Role::Approver)
    );
    assert_eq!(p.elevation.map(|x| x.id), Some(e.id));
    // It ends by itself (the session, used within its idle timeout, lives on); the
    // authenticator records the expiry.
    fx.clock.advance(Duration::minutes(20));
    let mut tx = fx.tx(org).await;
    let p = fx
        .auth
        .session(&mut tx, &credential, &client())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((p.effective_role(), p.elevation), (Role::Requester, None));
    assert_eq!(p.expired_elevations, vec![e.id]);
    let expired = fx.events(Action::ElevationExpired);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].target.as_deref(),
        Some(format!("elevation:{}", e.id).as_str())
    );
    let mut tx = fx.tx(org).await;
    assert_eq!(
        elevation::get(&mut tx, e.id).await.unwrap().state,
        ElevationState::Expired
    );
    tx.commit().await.unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_admin_approves_and_a_revoked_elevation_ends_at_once() {
    let fx = Fx::new().await;
    let [org, other] = fx.orgs;
    let admin = fx.user(org, "admin@a.test", Role::Admin).await;
    let second = fx.user(org, "second@a.test", Role::Admin).await;
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let (_, credential) = open(&fx, org, user).await;
    let mut tx = fx.tx(org).await;
    let req = ElevationRequest {
        user,
        role: Role::Admin,
        reason: "incident 42".into(),
        duration: Duration::hours(1),
    };
    let e = elevation::request(&mut tx, admin, req, true, fx.now())
        .await
        .unwrap();
    assert_eq!(e.state, ElevationState::Pending);
    tx.commit().await.unwrap();
    assert_eq!(
        lookup(&fx, org, &credential)
            .await
            .unwrap()
            .effective_role(),
        Role::Requester
    );
    let mut tx = fx.tx(org).await;
    for who in [admin, user] {
        let r = elevation::approve(&mut tx, e.id, who, fx.now()).await;
        assert!(matches!(r, Err(AuthError::SelfApproval)), "{r:?}");
    }
    tx.commit().await.unwrap();
    // Another organisation cannot see, approve or revoke it.
    let mut tx = fx.tx(other).await;
    assert_eq!(visible(&mut tx, "app.elevations", e.id).await, 0);
    assert!(matches!(
        elevation::approve(&mut tx, e.id, second, fx.now()).await,
        Err(AuthError::NotFound)
    ));
    assert!(matches!(
        elevation::revoke(&mut tx, e.id, fx.now()).await,
        Err(AuthError::NotFound)
    ));
    tx.commit().await.unwrap();
    let mut tx = fx.tx(org).await;
    let approved = elevation::approve(&mut tx, e.id, second, fx.now())
        .await
        .unwrap();
    assert_eq!(
        (approved.state, approved.approved_by),
        (ElevationState::Active, Some(second))
    );
    tx.commit().await.unwrap();
    assert_eq!(
        lookup(&fx, org, &credential)
            .await
            .unwrap()
            .effective_role(),
        Role::Admin
    );
    let mut tx = fx.tx(org).await;
    assert_eq!(
        elevation::revoke(&mut tx, e.id, fx.now())
            .await
            .unwrap()
            .state,
        ElevationState::Revoked
    );
    tx.commit().await.unwrap();
    assert_eq!(
        lookup(&fx, org, &credential)
            .await
            .unwrap()
            .effective_role(),
        Role::Requester
    );
    fx.close().await;
}

/// A role change ends the person's elevations, pending and in force, by any path (the
/// database's trigger); a pending one can be declined; an approval checks the role the
/// person has now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_ends_the_elevations_granted_over_the_old_role() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let admin = fx.user(org, "admin@a.test", Role::Admin).await;
    let second = fx.user(org, "second@a.test", Role::Admin).await;
    let eve = fx.user(org, "eve@a.test", Role::Approver).await;
    let dana = fx.user(org, "dana@a.test", Role::ReadOnly).await;
    let (_, eve_session) = open(&fx, org, eve).await;
    let ask = |user, role| ElevationRequest {
        user,
        role,
        reason: "quarter end".into(),
        duration: Duration::hours(4),
    };
    let mut tx = fx.tx(org).await;
    let active = elevation::request(&mut tx, admin, ask(eve, Role::Admin), false, fx.now())
        .await
        .unwrap();
    let pending = elevation::request(&mut tx, admin, ask(dana, Role::Requester), true, fx.now())
        .await
        .unwrap();
    let declined = elevation::request(&mut tx, admin, ask(dana, Role::Approver), true, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A pending elevation is declined (it never started).
    let mut tx = fx.tx(org).await;
    let d = elevation::revoke(&mut tx, declined.id, fx.now())
        .await
        .unwrap();
    assert_eq!((d.state, d.expires_at), (ElevationState::Revoked, None));
    // Eve is demoted and Dana made an auditor, as any statement would do it.
    for (who, role) in [(eve, Role::ReadOnly), (dana, Role::Auditor)] {
        directory::set_role(&mut tx, who, role, fx.now())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = fx.tx(org).await;
    for id in [active.id, pending.id] {
        let e = elevation::get(&mut tx, id).await.unwrap();
        assert_eq!(e.state, ElevationState::Revoked, "{id}");
    }
    // The pending one, ended, cannot be approved; nor a new one not above the role now.
    let r = elevation::approve(&mut tx, pending.id, second, fx.now()).await;
    assert!(matches!(r, Err(AuthError::Conflict(_))), "{r:?}");
    let r = elevation::request(&mut tx, admin, ask(dana, Role::Approver), true, fx.now()).await;
    assert!(
        matches!(r, Err(AuthError::Invalid { field: "role", .. })),
        "an approver does not hold everything an auditor does: {r:?}"
    );
    tx.commit().await.unwrap();
    // Eve's session is gone with the role change (role changes revoke sessions in the
    // admin path; here the epoch moved, and the elevation is over either way).
    if let Ok(p) = lookup(&fx, org, &eve_session).await {
        assert_eq!(p.effective_role(), Role::ReadOnly);
    }
    fx.close().await;
}

async fn token_lookup(
    fx: &Fx,
    org: OrgId,
    c: &Credential,
) -> Result<api_token::TokenPrincipal, AuthError> {
    let mut tx = fx.tx(org).await;
    let found = api_token::authenticate(&mut tx, c, fx.now()).await;
    tx.commit().await.unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_acts_for_its_creator_with_the_lower_role_and_stops_with_them() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let creator = fx.user(a, "admin@a.test", Role::Admin).await;
    let mut tx = fx.tx(a).await;
    let (id, credential) = api_token::issue(
        &mut tx,
        "ci",
        Role::Admin,
        Duration::days(30),
        creator,
        None,
        fx.now(),
    )
    .await
    .unwrap();
    let bad = api_token::issue(
        &mut tx,
        "",
        Role::Admin,
        Duration::days(1),
        creator,
        None,
        fx.now(),
    )
    .await;
    assert!(
        matches!(bad, Err(AuthError::Invalid { field: "name", .. })),
        "{bad:?}"
    );
    let bad = api_token::issue(
        &mut tx,
        "x",
        Role::Admin,
        Duration::days(400),
        creator,
        None,
        fx.now(),
    )
    .await;
    assert!(
        matches!(
            bad,
            Err(AuthError::Invalid {
                field: "lifetime",
                ..
            })
        ),
        "{bad:?}"
    );
    tx.commit().await.unwrap();
    let t = token_lookup(&fx, a, &credential).await.unwrap();
    assert_eq!((t.id, t.role, t.created_by), (id, Role::Admin, creator));
    // Demoting the creator lowers the token: the lower of the two roles, at each request.
    let mut tx = fx.tx(a).await;
    directory::set_role(&mut tx, creator, Role::Requester, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        token_lookup(&fx, a, &credential).await.unwrap().role,
        Role::Requester
    );
    // Other organisations: refused by the org check and, forged, by the database.
    unauthenticated(token_lookup(&fx, b, &credential).await);
    let forged = Credential {
        org: b,
        token: SessionToken::parse(credential.token.expose()).unwrap(),
    };
    unauthenticated(token_lookup(&fx, b, &forged).await);
    let mut tx = fx.tx(b).await;
    assert_eq!(visible(&mut tx, "app.api_tokens", id).await, 0);
    assert!(!api_token::revoke(&mut tx, id, fx.now()).await.unwrap());
    tx.commit().await.unwrap();
    // Disabling the creator stops the token.
    let mut tx = fx.tx(a).await;
    directory::set_status(&mut tx, creator, UserStatus::Disabled, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    unauthenticated(token_lookup(&fx, a, &credential).await);
    let mut tx = fx.tx(a).await;
    directory::set_status(&mut tx, creator, UserStatus::Active, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    token_lookup(&fx, a, &credential).await.unwrap();
    // It expires, and a revoked one stops at once.
    fx.clock.advance(Duration::days(30));
    unauthenticated(token_lookup(&fx, a, &credential).await);
    let mut tx = fx.tx(a).await;
    let (id2, second) = api_token::issue(
        &mut tx,
        "ci2",
        Role::ReadOnly,
        Duration::days(1),
        creator,
        None,
        fx.now(),
    )
    .await
    .unwrap();
    assert!(api_token::revoke(&mut tx, id2, fx.now()).await.unwrap());
    tx.commit().await.unwrap();
    unauthenticated(token_lookup(&fx, a, &second).await);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_under_an_elevation_ends_with_it() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let admin = fx.user(org, "admin@a.test", Role::Admin).await;
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let mut tx = fx.tx(org).await;
    let e = elevation::request(
        &mut tx,
        admin,
        ElevationRequest {
            user,
            role: Role::Approver,
            reason: "audit week".into(),
            duration: Duration::hours(1),
        },
        false,
        fx.now(),
    )
    .await
    .unwrap();
    let under = MintedUnder {
        elevation: e.id,
        expires_at: e.expires_at.unwrap(),
    };
    let (_, revoked_with) = api_token::issue(
        &mut tx,
        "t1",
        Role::Requester,
        Duration::days(30),
        user,
        Some(under),
        fx.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token_lookup(&fx, org, &revoked_with).await.unwrap();
    let mut tx = fx.tx(org).await;
    elevation::revoke(&mut tx, e.id, fx.now()).await.unwrap();
    tx.commit().await.unwrap();
    unauthenticated(token_lookup(&fx, org, &revoked_with).await);
    // An elevation that already ended mints nothing.
    let ended = MintedUnder {
        elevation: e.id,
        expires_at: fx.now(),
    };
    let mut tx = fx.tx(org).await;
    let r = api_token::issue(
        &mut tx,
        "t2",
        Role::Requester,
        Duration::days(1),
        user,
        Some(ended),
        fx.now(),
    )
    .await;
    assert!(matches!(r, Err(AuthError::Forbidden)), "{r:?}");
    tx.rollback().await.unwrap();
    fx.close().await;
}
