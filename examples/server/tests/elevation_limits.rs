//! Issue #11, findings 5 and 6 and the unlock ordering: an elevation mints nothing that
//! holds more than the holder's base role or outlives the elevation; a token acts for the person
//! who created it (segregation of duties, and never more than that person holds now);
//! one admin alone cannot switch off the second-admin rule; an admin unlock is recorded
//! before it takes effect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use common::{PASSWORD, Reply, Session, World, email, session_from, world};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::{Value, json};
use time::Duration;

async fn bearer(w: &World, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    w.request_from(method, path, None, body, None, &[("authorization", &auth)])
        .await
}

async fn mint(w: &World, s: &Session, role: &str, days: i64) -> Reply {
    w.request(
        Method::POST,
        "/api/tokens",
        Some(s),
        Some(json!({ "name": format!("{role}-token"), "role": role, "days": days })),
    )
    .await
}

/// The approver of org 0, elevated to admin for 30 minutes by the admin (no second admin
/// required), signed in again after the elevation revoked their session.
async fn elevated_approver(w: &World) -> (Session, String) {
    let admin = w.login(0, Role::Admin).await;
    let approver = w.users[&(0, Role::Approver)];
    let r = w
        .request(
            Method::POST,
            "/api/elevations",
            Some(&admin),
            Some(json!({ "user": approver, "role": "admin", "reason": "quarter close", "minutes": 30 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "active");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let s = w.login(0, Role::Approver).await;
    let me = w.request(Method::GET, "/api/session", Some(&s), None).await;
    assert_eq!(me.body["role"], "admin");
    (s, id)
}

enum End {
    Expiry,
    Revocation,
}

async fn an_elevation_leaves_nothing_behind(end: End) {
    let w = world(PasswordHasher::for_tests()).await;
    let (elevated, elevation) = elevated_approver(&w).await;

    // What the elevated approver tries to make last.
    let admin_token = mint(&w, &elevated, "admin", 365).await;
    let own_role_token = mint(&w, &elevated, "approver", 365).await;
    assert_eq!(
        own_role_token.status,
        StatusCode::OK,
        "{:?}",
        own_role_token.body
    );
    let accomplice = w
        .request(
            Method::POST,
            "/api/users",
            Some(&elevated),
            Some(
                json!({ "email": "accomplice@org0.test", "display_name": "Accomplice",
                         "password": PASSWORD, "role": "admin" }),
            ),
        )
        .await;
    let requester = w.users[&(0, Role::Requester)];
    let promotion = w
        .request(
            Method::PUT,
            &format!("/api/users/{requester}/role"),
            Some(&elevated),
            Some(json!({ "role": "admin" })),
        )
        .await;
    // Within the base role, but lasting: an account or a role grant would outlive the
    // elevation that allowed it (an approver's base role cannot manage users at all).
    let lasting_user = w
        .request(
            Method::POST,
            "/api/users",
            Some(&elevated),
            Some(
                json!({ "email": "sleeper@org0.test", "display_name": "Sleeper",
                         "password": PASSWORD }),
            ),
        )
        .await;
    let read_only = w.users[&(0, Role::ReadOnly)];
    let lasting_grant = w
        .request(
            Method::PUT,
            &format!("/api/users/{read_only}/role"),
            Some(&elevated),
            Some(json!({ "role": "approver" })),
        )
        .await;
    // Re-enabling an account an admin disabled lasts as a new account would.
    let admin_now = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{read_only}/disable"),
            Some(&admin_now),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let revived = w
        .request(
            Method::POST,
            &format!("/api/users/{read_only}/enable"),
            Some(&elevated),
            None,
        )
        .await;
    // The sign-in policy outlives the elevation too.
    let policy = w
        .request(Method::GET, "/api/org/policy", Some(&admin_now), None)
        .await;
    let mut weakened = policy.body.clone();
    weakened["mfa_required"] = json!(!policy.body["mfa_required"].as_bool().unwrap());
    let policy_change = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&elevated),
            Some(weakened),
        )
        .await;
    let chained = w
        .request(
            Method::POST,
            "/api/elevations",
            Some(&elevated),
            Some(json!({ "user": requester, "role": "admin", "reason": "keep it going", "minutes": 480 })),
        )
        .await;
    // Within the elevation, the token of the base role works.
    let token = own_role_token.body["token"].as_str().unwrap().to_owned();
    let r = bearer(&w, &token, Method::GET, "/api/requests", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    match end {
        End::Expiry => w.clock.advance(Duration::minutes(31)),
        End::Revocation => {
            let admin = w.login(0, Role::Admin).await;
            let r = w
                .request(
                    Method::POST,
                    &format!("/api/elevations/{elevation}/revoke"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(r.body["state"], "revoked");
        }
    }

    // Every token minted during the elevation: no admin power, and no life after it.
    for minted in [&admin_token, &own_role_token] {
        let Some(token) = minted.body["token"].as_str() else {
            continue;
        };
        for path in ["/api/users", "/api/audit"] {
            let r = bearer(&w, token, Method::GET, path, None).await;
            assert!(
                matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                "a token minted under an ended elevation still reads {path}: {} {:?}",
                r.status,
                r.body
            );
        }
        let r = bearer(
            &w,
            token,
            Method::POST,
            "/api/users",
            Some(
                json!({ "email": format!("late-{}@org0.test", uuid::Uuid::new_v4().simple()),
                         "display_name": "Late", "role": "admin" }),
            ),
        )
        .await;
        assert!(
            matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "a token minted under an ended elevation still creates admins: {} {:?}",
            r.status,
            r.body
        );
        let r = bearer(&w, token, Method::GET, "/api/requests", None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "a token minted under an elevation ends with it"
        );
    }
    // Above the base role: refused outright, and nothing was changed.
    assert_eq!(
        (admin_token.status, admin_token.error()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "an admin token minted by an approver: {:?}",
        admin_token.body
    );
    assert_eq!(
        accomplice.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        accomplice.body
    );
    assert_eq!(
        promotion.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        promotion.body
    );
    assert_eq!(chained.status, StatusCode::FORBIDDEN, "{:?}", chained.body);
    assert_eq!(
        lasting_user.status,
        StatusCode::FORBIDDEN,
        "an elevation created a lasting account: {:?}",
        lasting_user.body
    );
    assert_eq!(
        lasting_grant.status,
        StatusCode::FORBIDDEN,
        "an elevation granted a lasting role: {:?}",
        lasting_grant.body
    );
    let admin = w.login(0, Role::Admin).await;
    let users = w
        .request(Method::GET, "/api/users", Some(&admin), None)
        .await;
    let users = users.body["users"].as_array().unwrap();
    assert!(!users.iter().any(|u| u["email"] == "accomplice@org0.test"));
    assert!(!users.iter().any(|u| u["email"] == "sleeper@org0.test"));
    let v = users
        .iter()
        .find(|u| u["id"] == read_only.to_string())
        .unwrap();
    assert_eq!(v["role"], "read_only");
    // Both refusals are in the trail, naming the elevation.
    let denied: Vec<Action> = w
        .audit
        .events()
        .into_iter()
        .filter(|e| e.outcome == procuhelp_audit::Outcome::Denied)
        .map(|e| e.action)
        .collect();
    assert!(denied.contains(&Action::UserCreated), "{denied:?}");
    assert!(denied.contains(&Action::UserRoleChanged), "{denied:?}");
    assert_eq!(
        revived.status,
        StatusCode::FORBIDDEN,
        "an elevation re-enabled a disabled account: {:?}",
        revived.body
    );
    assert!(denied.contains(&Action::UserEnabled), "{denied:?}");
    assert_eq!(
        policy_change.status,
        StatusCode::FORBIDDEN,
        "an elevation changed the sign-in policy: {:?}",
        policy_change.body
    );
    assert!(denied.contains(&Action::OrgPolicyChanged), "{denied:?}");
    let after = w
        .request(Method::GET, "/api/org/policy", Some(&admin), None)
        .await;
    assert_eq!(after.body, policy.body);
    let r = users
        .iter()
        .find(|u| u["id"] == requester.to_string())
        .unwrap();
    assert_eq!(r["role"], "requester");
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_elevation_leaves_no_lasting_power() {
    an_elevation_leaves_nothing_behind(End::Expiry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_elevation_leaves_no_lasting_power() {
    an_elevation_leaves_nothing_behind(End::Revocation).await;
}

/// A second admin of org 0, signed in.
async fn second_admin(w: &World, admin: &Session) -> (Session, String) {
    let r = w
        .request(
            Method::POST,
            "/api/users",
            Some(admin),
            Some(
                json!({ "email": "admin2@org0.test", "display_name": "Admin Two",
                         "password": PASSWORD, "role": "admin" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let s = session_from(&w.try_login(0, "admin2@org0.test", PASSWORD).await);
    (s, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_approves_their_own_request_through_a_token() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let admin_id = w.users[&(0, Role::Admin)];
    let token = mint(&w, &admin, "approver", 30).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let token = token.body["token"].as_str().unwrap().to_owned();

    // Raised in the session, approved with the same person's token: refused.
    let r = w
        .request(
            Method::POST,
            "/api/requests",
            Some(&admin),
            Some(json!({ "title": "Own laptop", "amount_cents": 250000 })),
        )
        .await;
    let own = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/requests/{own}/approve");
    let r = bearer(&w, &token, Method::POST, &path, None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "approved own request through a token: {:?}",
        r.body
    );
    assert!(r.error().contains("segregation"), "{:?}", r.body);
    assert_eq!(w.count(Action::RequestApprovalRefused), 1);

    // Raised with the token, approved in the session: the same person, refused.
    let r = bearer(
        &w,
        &token,
        Method::POST,
        "/api/requests",
        Some(json!({ "title": "Token's chairs", "amount_cents": 9000 })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["requested_by"],
        admin_id.to_string(),
        "a token's request is its creator's"
    );
    let theirs = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/requests/{theirs}/approve");
    let r = w.request(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(w.count(Action::RequestApprovalRefused), 2);

    // Another person may.
    let approver = w.login(0, Role::Approver).await;
    let r = w.request(Method::POST, &path, Some(&approver), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "approved");
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_holds_more_than_its_creator_does_now() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let (admin2, admin2_id) = second_admin(&w, &admin).await;
    let token = mint(&w, &admin2, "admin", 30).await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let r = bearer(&w, &token, Method::GET, "/api/users", None).await;
    assert_eq!(r.status, StatusCode::OK);

    // The creator is demoted: the token reads requests, no longer users.
    let r = w
        .request(
            Method::PUT,
            &format!("/api/users/{admin2_id}/role"),
            Some(&admin),
            Some(json!({ "role": "read_only" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = bearer(&w, &token, Method::GET, "/api/users", None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a demoted creator's token keeps admin power: {:?}",
        r.body
    );
    let r = bearer(&w, &token, Method::GET, "/api/requests", None).await;
    assert_eq!(r.status, StatusCode::OK);

    // The creator is disabled: the token stops.
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{admin2_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = bearer(&w, &token, Method::GET, "/api/requests", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    w.close().await;
}

async fn policy(w: &World, s: &Session) -> Value {
    let r = w
        .request(Method::GET, "/api/org/policy", Some(s), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_admin_alone_cannot_switch_off_the_second_admin_rule() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let (admin2, _) = second_admin(&w, &admin).await;
    let on = json!({ "mfa_required": false, "elevation_needs_second_admin": true, "operator_access_needs_approval": false });
    let off = json!({ "mfa_required": false, "elevation_needs_second_admin": false, "operator_access_needs_approval": false });
    // Switching it on (stricter) needs one admin.
    let r = w
        .request(Method::PUT, "/api/org/policy", Some(&admin), Some(on))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        policy(&w, &admin).await["elevation_needs_second_admin"],
        true
    );

    // Switching it off: only proposed.
    let r = w
        .request(Method::PUT, "/api/org/policy", Some(&admin), Some(off))
        .await;
    assert_eq!(
        policy(&w, &admin).await["elevation_needs_second_admin"],
        true,
        "one admin switched the second-admin rule off: {} {:?}",
        r.status,
        r.body
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let change = r.body["pending_change"]["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/org/policy/changes/{change}/approve");

    // Not by the admin who proposed it, in a session or with a token of theirs.
    let r = w.request(Method::POST, &approve, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let token = mint(&w, &admin, "admin", 1).await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let r = bearer(&w, &token, Method::POST, &approve, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(
        policy(&w, &admin).await["elevation_needs_second_admin"],
        true
    );
    assert!(w.count(Action::OrgPolicyChangeRefused) >= 1);

    // The pending change is listed; a second admin approves it.
    let r = w
        .request(Method::GET, "/api/org/policy/changes", Some(&admin2), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.text.contains(&change));
    let r = w.request(Method::POST, &approve, Some(&admin2), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        policy(&w, &admin).await["elevation_needs_second_admin"],
        false
    );
    // Once only.
    let r = w.request(Method::POST, &approve, Some(&admin2), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(w.count(Action::OrgPolicyChangeRequested), 1);
    assert_eq!(w.count(Action::OrgPolicyChanged), 2); // switched on, then approved off
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_unlock_is_recorded_before_it_takes_effect() {
    let w = world(PasswordHasher::for_tests()).await;
    let victim = email(0, Role::ReadOnly);
    for _ in 0..10 {
        w.try_login(0, &victim, "not the password").await;
        w.clock.advance(Duration::minutes(10));
    }
    let r = w.try_login(0, &victim, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let admin = w.login(0, Role::Admin).await;
    let id = w.users[&(0, Role::ReadOnly)];
    let unlocked_before = w.count(Action::AccountUnlocked);
    w.audit.set_failing(true);
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{id}/unlock"),
            Some(&admin),
            None,
        )
        .await;
    w.audit.set_failing(false);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    let r = w.try_login(0, &victim, PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "an unaudited unlock took effect"
    );
    assert_eq!(w.count(Action::AccountUnlocked), unlocked_before);
    // With the audit log back, the unlock works and is recorded.
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{id}/unlock"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["unlocked"], true, "{:?}", r.body);
    assert_eq!(w.count(Action::AccountUnlocked), unlocked_before + 1);
    assert_eq!(
        w.try_login(0, &victim, PASSWORD).await.status,
        StatusCode::OK
    );
    w.close().await;
}

/// SCIM tokens, SCIM role mappings and SSO connections hand out roles the base-role cap
/// cannot bound (an identity provider's group can map to admin) and live on after the
/// elevation: an elevation never grants their management.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevation_does_not_configure_lasting_sign_in_paths() {
    let w = world(PasswordHasher::for_tests()).await;
    let (elevated, _) = elevated_approver(&w).await;
    let r = w
        .request(
            Method::POST,
            "/api/scim/tokens",
            Some(&elevated),
            Some(json!({ "name": "entra", "days": 365 })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an elevated approver minted a SCIM token: {:?}",
        r.body
    );
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&elevated),
            Some(json!({ "role_mappings": [], "sso_jit_provisioning": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // What the elevation is for still works.
    let r = w
        .request(Method::GET, "/api/users", Some(&elevated), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    w.close().await;
}

/// Where the organisation requires it, an operator's access waits for one of its admins:
/// the admin sees the request, approves it in person by base role (not under an
/// elevation, not with a token), or declines it; each step is in the organisation's trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_access_waits_for_an_admin_where_the_policy_says_so() {
    use procuhelp_auth::operator::OperatorName;
    use procuhelp_auth::operator_access;
    use procuhelp_core::Clock as _;
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&admin),
            Some(
                json!({ "mfa_required": false, "elevation_needs_second_admin": false,
                         "operator_access_needs_approval": true }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A client that leaves the setting out is refused, not read as "off".
    let r = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&admin),
            Some(json!({ "mfa_required": false, "elevation_needs_second_admin": false })),
        )
        .await;
    assert!(r.status.is_client_error(), "{} {:?}", r.status, r.body);
    assert_eq!(
        policy(&w, &admin).await["operator_access_needs_approval"],
        true
    );

    // What the operator API does for a signed request (tests/serve.rs drives that path).
    let alice = OperatorName::parse("alice").unwrap();
    let ask = || async {
        let mut tx = procuhelp_tenancy::TenantDb::new(w.runtime.clone())
            .begin(w.orgs[0])
            .await
            .unwrap();
        let g = operator_access::grant(
            &mut tx,
            &alice,
            "INC-9: a stuck import",
            Duration::hours(1),
            w.clock.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        g.id
    };
    let first = ask().await;
    let r = w
        .request(Method::GET, "/api/org/operator-access", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["grants"][0]["id"], first.to_string());
    assert_eq!(r.body["grants"][0]["state"], "pending");

    // Not under an elevation, not with a token.
    let approve = format!("/api/org/operator-access/{first}/approve");
    let (elevated, _) = elevated_approver(&w).await;
    let r = w
        .request(Method::POST, &approve, Some(&elevated), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let token = mint(&w, &admin, "admin", 1).await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let r = bearer(&w, &token, Method::POST, &approve, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // Nor by another organisation's admin: to them it does not exist.
    let stranger = w.login(1, Role::Admin).await;
    let r = w
        .request(Method::POST, &approve, Some(&stranger), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    // The try under the elevation is on the trail, denied.
    assert_eq!(w.count(Action::OperatorAccessApproved), 1);

    // The admin approves: in force for the hour asked, from now.
    let r = w.request(Method::POST, &approve, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "active");
    assert_eq!(
        r.body["approved_by"],
        w.users[&(0, Role::Admin)].to_string()
    );
    let r = w.request(Method::POST, &approve, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(w.count(Action::OperatorAccessApproved), 2);

    // A second request is declined.
    let second = ask().await;
    let revoke = format!("/api/org/operator-access/{second}/revoke");
    let r = w.request(Method::POST, &revoke, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = w.request(Method::POST, &revoke, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = w
        .request(
            Method::POST,
            &format!("/api/org/operator-access/{second}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(w.count(Action::OperatorAccessRevoked), 1);
    w.close().await;
}
