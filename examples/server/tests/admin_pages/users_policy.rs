//! A user's page (role, disable and enable, unlock, sign out everywhere) and the sign-in
//! policy page: forms as a browser sends them, each doing what its API twin does.

use axum::http::{Method, StatusCode};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;
use time::Duration;

use crate::common::{PASSWORD, Session, World, email, session_from, world};
use crate::forms::{BUTTON, open, post, post_without_token, redirected};

/// Whether `session` still works.
async fn signed_in(w: &World, session: &Session) -> bool {
    let reply = w
        .request(Method::GET, "/api/session", Some(session), None)
        .await;
    reply.status == StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_a_user_from_their_page_and_no_one_else_can() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let id = w.users[&(0, Role::Requester)];
    let page_of = format!("/users/{id}");
    let at = |what: &str| format!("/users/{id}/{what}");

    // The list links to the person's page; the page shows who they are and the forms.
    let list = open(&w, &admin, "/users").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.html.contains(&format!("href=\"/users/{id}\"")),
        "{}",
        list.html
    );
    let page = open(&w, &admin, &page_of).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for needle in [
        email(0, Role::Requester).as_str(),
        "data-role=\"requester\"",
        "data-status=\"active\"",
        "data-mfa=\"off\"",
        "name=\"role\"",
        "name=\"csrf_token\"",
    ] {
        assert!(page.html.contains(needle), "{needle} in {}", page.html);
    }
    assert_eq!(page.html.matches("<h1").count(), 1);

    // A new role: their sessions end, the change is audited, the page says so (by key).
    let theirs = w.login(0, Role::Requester).await;
    let done = post(&w, &admin, &at("role"), &[("role", "approver")]).await;
    redirected(&done, &format!("{page_of}?done=role"));
    assert!(!signed_in(&w, &theirs).await, "their sessions ended");
    let events = w.audit.events();
    let changed = events
        .iter()
        .find(|e| e.action == Action::UserRoleChanged)
        .expect("user.role_changed");
    assert_eq!(
        changed.target.as_deref(),
        Some(format!("user:{id}").as_str())
    );
    assert_eq!(changed.context["to"], "approver");
    let page = open(&w, &admin, done.location().unwrap()).await;
    assert!(page.html.contains("data-notice=\"role\""), "{}", page.html);
    assert!(page.html.contains("data-role=\"approver\""));
    // A notice is chosen by key, never reflected.
    let page = open(&w, &admin, &format!("{page_of}?done=%3Cscript%3E")).await;
    assert!(!page.html.contains("data-notice") && !page.html.contains("<script>"));

    // The same form without its anti-CSRF token changes nothing.
    let refused = post_without_token(&w, &admin, &at("role"), &[("role", "admin")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert_eq!(w.count(Action::UserRoleChanged), 1);
    let refused = post_without_token(&w, &admin, &at("disable"), BUTTON).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(w.count(Action::UserDisabled), 0);
    let page = open(&w, &admin, &page_of).await;
    assert!(
        page.html.contains("data-role=\"approver\"")
            && page.html.contains("data-status=\"active\"")
    );

    // Disable: they cannot sign in; enable: they can again.
    let theirs = w.login(0, Role::Requester).await;
    redirected(
        &post(&w, &admin, &at("disable"), BUTTON).await,
        &format!("{page_of}?done=disabled"),
    );
    assert!(!signed_in(&w, &theirs).await);
    let who = email(0, Role::Requester);
    assert_ne!(w.try_login(0, &who, PASSWORD).await.status, StatusCode::OK);
    let page = open(&w, &admin, &page_of).await;
    assert!(page.html.contains("data-status=\"disabled\"") && page.html.contains(&at("enable")));
    redirected(
        &post(&w, &admin, &at("enable"), BUTTON).await,
        &format!("{page_of}?done=enabled"),
    );
    assert_eq!(w.try_login(0, &who, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        (w.count(Action::UserDisabled), w.count(Action::UserEnabled)),
        (1, 1)
    );

    // Sign out everywhere.
    let theirs = w.login(0, Role::Requester).await;
    redirected(
        &post(&w, &admin, &at("sessions/revoke"), BUTTON).await,
        &format!("{page_of}?done=signed_out"),
    );
    assert!(!signed_in(&w, &theirs).await);

    // Unlock lifts a lock (ten failures, each after the back-off).
    let locked = email(0, Role::ReadOnly);
    for _ in 0..10 {
        w.try_login(0, &locked, "not the password").await;
        w.clock.advance(Duration::seconds(600));
    }
    assert_eq!(
        w.try_login(0, &locked, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let admin = w.login(0, Role::Admin).await; // the clock moved on
    let locked_id = w.users[&(0, Role::ReadOnly)];
    let shown = open(&w, &admin, &format!("/users/{locked_id}")).await;
    assert!(shown.html.contains("data-locked=\"yes\""), "{}", shown.html);
    assert!(shown.html.contains(&format!("/users/{locked_id}/unlock")));
    redirected(
        &post(&w, &admin, &format!("/users/{locked_id}/unlock"), BUTTON).await,
        &format!("/users/{locked_id}?done=unlocked"),
    );
    assert_eq!(
        w.try_login(0, &locked, PASSWORD).await.status,
        StatusCode::OK
    );
    let shown = open(&w, &admin, &format!("/users/{locked_id}")).await;
    assert!(shown.html.contains("data-locked=\"no\""));
    assert_eq!(w.count(Action::AccountUnlocked), 1);

    // An approver may not open or use these pages.
    let approver = w.login(0, Role::Approver).await;
    let page = open(&w, &approver, &page_of).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.html.contains("data-error=\"forbidden\""),
        "{}",
        page.html
    );
    for (what, fields) in [
        ("role", &[("role", "admin")][..]),
        ("disable", &[]),
        ("enable", &[]),
        ("unlock", &[]),
        ("sessions/revoke", &[]),
    ] {
        let refused = post(&w, &approver, &at(what), fields).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            refused.html
        );
        assert!(refused.html.contains("data-error=\"forbidden\""), "{what}");
    }

    // Another organisation's user is not found, and nothing happens to them.
    let stranger = w.users[&(1, Role::Requester)];
    let page = open(&w, &admin, &format!("/users/{stranger}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.html.contains("@org1.test"));
    for (what, fields) in [
        ("role", &[("role", "read_only")][..]),
        ("disable", &[]),
        ("sessions/revoke", &[]),
        ("unlock", &[]),
    ] {
        let refused = post(&w, &admin, &format!("/users/{stranger}/{what}"), fields).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{what}: {}",
            refused.html
        );
    }
    let theirs = w.login(1, Role::Requester).await;
    assert!(signed_in(&w, &theirs).await);
    assert_eq!(w.count(Action::UserRoleChanged), 1);
    w.close().await;
}

/// The policy in force in the first organisation (read from the database: turning MFA
/// on sends sessions without a second factor to enrolment).
async fn policy(w: &World) -> serde_json::Value {
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    let policy = procuhelp_auth::directory::org_policy(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    serde_json::to_value(policy).unwrap()
}

const RULES: [&str; 3] = [
    "mfa_required",
    "elevation_needs_second_admin",
    "operator_access_needs_approval",
];

/// The form's fields for `policy` (a ticked box is sent, an unticked one is not), filled
/// in on the policy as it is now (the page's `shown`).
async fn ticked(w: &World, policy: &serde_json::Value) -> Vec<(&'static str, String)> {
    let now = self::policy(w).await;
    let shown: String = RULES
        .iter()
        .map(|r| if now[*r] == true { '1' } else { '0' })
        .collect();
    let mut fields = vec![("settings", "all".to_owned()), ("shown", shown)];
    for name in RULES {
        if policy[name] == true {
            fields.push((name, "on".to_owned()));
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_form_applies_rules_and_a_second_admin_approves_switching_one_off() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let page = open(&w, &admin, "/admin/policy").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for name in [
        "mfa_required",
        "elevation_needs_second_admin",
        "operator_access_needs_approval",
    ] {
        assert!(page.html.contains(&format!("name=\"{name}\"")), "{name}");
    }

    // An approver may not open or post it.
    let approver = w.login(0, Role::Approver).await;
    let refused = open(&w, &approver, "/admin/policy").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = post(&w, &approver, "/admin/policy", &[("settings", "all")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("data-error=\"forbidden\""));

    // A form filled in before another admin's change does not undo it: told, nothing
    // changed.
    let stale = ticked(&w, &policy(&w).await).await;
    let mut changed = policy(&w).await;
    changed["operator_access_needs_approval"] = json!(true);
    let put = w
        .request(
            Method::PUT,
            "/api/org/policy",
            Some(&admin),
            Some(changed.clone()),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let late = post(&w, &admin, "/admin/policy", &stale).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.html);
    assert_eq!(late.error_code(), "conflict");
    assert_eq!(policy(&w).await, changed);

    // The second-admin rule on (at once: strengthening never waits).
    let mut wanted = policy(&w).await;
    wanted["elevation_needs_second_admin"] = json!(true);
    let done = post(&w, &admin, "/admin/policy", &ticked(&w, &wanted).await).await;
    redirected(&done, "/admin/policy?done=saved");
    assert_eq!(policy(&w).await, wanted);

    // Switching it off is only proposed; the proposer has no approve button, and a
    // forged approval is refused.
    let mut off = wanted.clone();
    off["elevation_needs_second_admin"] = json!(false);
    let done = post(&w, &admin, "/admin/policy", &ticked(&w, &off).await).await;
    redirected(&done, "/admin/policy?done=proposed");
    assert_eq!(policy(&w).await, wanted, "still on until approved");
    let changes = w
        .request(Method::GET, "/api/org/policy/changes", Some(&admin), None)
        .await;
    let change = changes.body["changes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approve = format!("/admin/policy/changes/{change}/approve");
    let page = open(&w, &admin, "/admin/policy?done=proposed").await;
    assert!(page.html.contains("data-notice=\"proposed\""));
    assert!(page.html.contains(&format!("data-change=\"{change}\"")));
    assert!(
        !page.html.contains(&approve),
        "no approve button for the proposer"
    );
    let refused = post(&w, &admin, &approve, BUTTON).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);

    // A second admin approves it from the page.
    let created = w
        .request(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(
                json!({ "email": "second-admin@org0.test", "display_name": "Second admin",
                         "password": PASSWORD, "role": "admin" }),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let second = session_from(&w.try_login(0, "second-admin@org0.test", PASSWORD).await);
    let page = open(&w, &second, "/admin/policy").await;
    assert!(page.html.contains(&approve), "{}", page.html);
    // Without the token: refused, still pending.
    let refused = post_without_token(&w, &second, &approve, BUTTON).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(policy(&w).await, wanted);
    redirected(
        &post(&w, &second, &approve, BUTTON).await,
        "/admin/policy?done=approved",
    );
    assert_eq!(policy(&w).await, off);

    // MFA required: without the token (or with a form that names no setting) nothing
    // changes; with it, the rule is on.
    let mut mfa = off.clone();
    mfa["mfa_required"] = json!(true);
    let refused = post_without_token(&w, &admin, "/admin/policy", &ticked(&w, &mfa).await).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = post(&w, &admin, "/admin/policy", BUTTON).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(policy(&w).await, off);
    let done = post(&w, &admin, "/admin/policy", &ticked(&w, &mfa).await).await;
    redirected(&done, "/admin/policy?done=saved");
    assert_eq!(policy(&w).await["mfa_required"], true);
    assert!(w.count(Action::OrgPolicyChanged) >= 3);
    w.close().await;
}
