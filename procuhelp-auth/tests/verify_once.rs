//! Credentials verified in one autocommit statement (`session::verify_once`,
//! `api_token::authenticate_once`), on a real PostgreSQL through the runtime role: they
//! decide what the transactional lookups decide, and send a session whose lookup must
//! write (the once-a-minute touch) to the transactional path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod fx;

use fx::{Fx, unauthenticated};
use procuhelp_auth::Role;
use procuhelp_auth::api_token;
use procuhelp_auth::session::{self, Credential, SessionPolicy, SessionStage, Verified};
use procuhelp_core::{OrgId, UserId};
use time::Duration;

async fn open(fx: &Fx, org: OrgId, user: UserId) -> Credential {
    let policy = SessionPolicy::default();
    fx::open_session(&fx.db, org, user, SessionStage::Full, policy, fx.now())
        .await
        .1
}

/// `credential` with its organisation replaced by `org`.
fn presented_as(credential: &Credential, org: OrgId) -> Credential {
    let token = credential.expose();
    let (_, secret) = token.split_once('.').unwrap();
    Credential::parse(&format!("{org}.{secret}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_verified_in_one_statement_as_the_transactional_lookup_decides() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let user = fx.user(a, "approver@a.test", Role::Approver).await;
    let credential = open(&fx, a, user).await;

    let Verified::Session(found) = session::verify_once(&fx.db, &credential, fx.now())
        .await
        .unwrap()
    else {
        panic!("a fresh session needs no transaction")
    };
    assert_eq!(found.user, user);
    assert_eq!(found.stage, SessionStage::Full);
    assert_eq!(found.base_role, Role::Approver);
    assert!(found.elevation.is_none());

    // Another organisation, an unknown organisation, an unknown token: refused.
    unauthenticated(session::verify_once(&fx.db, &presented_as(&credential, b), fx.now()).await);
    unauthenticated(
        session::verify_once(&fx.db, &presented_as(&credential, OrgId::new()), fx.now()).await,
    );
    let unknown = Credential::generate(a).unwrap();
    unauthenticated(session::verify_once(&fx.db, &unknown, fx.now()).await);

    // Last used more than a minute ago: the touch is a write, so the transactional path.
    fx.clock.advance(Duration::minutes(2));
    assert!(matches!(
        session::verify_once(&fx.db, &credential, fx.now()).await,
        Ok(Verified::NeedsTransaction)
    ));
    let mut tx = fx.tx(a).await;
    session::authenticate(&mut tx, &credential, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(
        session::verify_once(&fx.db, &credential, fx.now()).await,
        Ok(Verified::Session(_))
    ));

    // Idle past the policy: refused.
    fx.clock.advance(Duration::minutes(31));
    unauthenticated(session::verify_once(&fx.db, &credential, fx.now()).await);

    // Revoked: refused.
    let again = open(&fx, a, user).await;
    let Ok(Verified::Session(p)) = session::verify_once(&fx.db, &again, fx.now()).await else {
        panic!("a fresh session")
    };
    let mut tx = fx.tx(a).await;
    assert!(
        session::revoke(&mut tx, p.session, None, fx.now())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    unauthenticated(session::verify_once(&fx.db, &again, fx.now()).await);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_is_verified_in_one_statement_as_the_transactional_lookup_decides() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let creator = fx.user(a, "admin@a.test", Role::Approver).await;
    let mut tx = fx.tx(a).await;
    let (id, credential) = api_token::issue(
        &mut tx,
        "ci",
        Role::Admin,
        Duration::days(1),
        creator,
        None,
        fx.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let once = api_token::authenticate_once(&fx.db, &credential, fx.now())
        .await
        .unwrap();
    let mut tx = fx.tx(a).await;
    let in_tx = api_token::authenticate(&mut tx, &credential, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (once.id, once.role, once.created_by),
        (in_tx.id, in_tx.role, in_tx.created_by)
    );
    // The lower of the token's and its creator's roles.
    assert_eq!(once.role, Role::Approver);

    unauthenticated(
        api_token::authenticate_once(&fx.db, &presented_as(&credential, b), fx.now()).await,
    );
    unauthenticated(
        api_token::authenticate_once(&fx.db, &presented_as(&credential, OrgId::new()), fx.now())
            .await,
    );
    let mut tx = fx.tx(a).await;
    assert!(api_token::revoke(&mut tx, id, fx.now()).await.unwrap());
    tx.commit().await.unwrap();
    unauthenticated(api_token::authenticate_once(&fx.db, &credential, fx.now()).await);
    fx.close().await;
}
