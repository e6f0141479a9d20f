//! The directory on a real PostgreSQL through the runtime role: users created, found,
//! listed, changed (role, status, password), the stored second factor (replay step,
//! single-use recovery codes) and the organisation's sign-in policy — each scoped to one
//! organisation by the database itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod fx;

use fx::Fx;
use procuhelp_auth::directory::{self, Email, NewUser, OrgPolicy, UserStatus};
use procuhelp_auth::recovery::RecoveryCodes;
use procuhelp_auth::{AuthError, Role};
use procuhelp_core::UserId;

fn new_user(email: &str, role: Option<Role>) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        display_name: "Someone".into(),
        role,
        password_hash: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_found_and_listed_in_their_organisation() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let mut tx = fx.tx(a).await;
    let u = directory::create(&mut tx, new_user("U@A.test", None), fx.now())
        .await
        .unwrap();
    directory::create(&mut tx, new_user("v@a.test", Some(Role::Admin)), fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = fx.tx(a).await;
    let dup = directory::create(&mut tx, new_user(" u@a.TEST", None), fx.now()).await;
    assert!(matches!(dup, Err(AuthError::Conflict(_))), "{dup:?}");
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(a).await;
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(201)] {
        let r = directory::create(
            &mut tx,
            NewUser {
                display_name: bad.to_owned(),
                ..new_user("w@a.test", None)
            },
            fx.now(),
        )
        .await;
        assert!(
            matches!(
                r,
                Err(AuthError::Invalid {
                    field: "display_name",
                    ..
                })
            ),
            "{bad:?}: {r:?}"
        );
    }
    tx.commit().await.unwrap();
    let mut tx = fx.tx(a).await;
    let found = directory::get(&mut tx, u).await.unwrap();
    assert_eq!(
        (found.email.as_str(), found.role, found.status),
        ("u@a.test", Role::ReadOnly, UserStatus::Active)
    );
    assert!(!found.has_mfa());
    let by_email = directory::find_by_email(&mut tx, &Email::parse("U@a.test").unwrap())
        .await
        .unwrap();
    assert_eq!(by_email.map(|r| r.id), Some(u));
    let emails: Vec<String> = directory::list(&mut tx)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.email)
        .collect();
    assert_eq!(emails, ["u@a.test", "v@a.test"]);
    tx.commit().await.unwrap();
    // The same address in another organisation is another user.
    let mut tx = fx.tx(b).await;
    let other = directory::create(&mut tx, new_user("u@a.test", None), fx.now())
        .await
        .unwrap();
    assert_ne!(other, u);
    let emails: Vec<String> = directory::list(&mut tx)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.email)
        .collect();
    assert_eq!(emails, ["u@a.test"]);
    tx.commit().await.unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_status_and_password_changes_are_stored() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let u = fx.user(org, "u@a.test", Role::Requester).await;
    let mut tx = fx.tx(org).await;
    directory::set_role(&mut tx, u, Role::Approver, fx.now())
        .await
        .unwrap();
    directory::set_status(&mut tx, u, UserStatus::Disabled, fx.now())
        .await
        .unwrap();
    directory::set_password_hash(
        &mut tx,
        u,
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        fx.now(),
    )
    .await
    .unwrap();
    let r = directory::get(&mut tx, u).await.unwrap();
    assert_eq!((r.role, r.status), (Role::Approver, UserStatus::Disabled));
    assert_eq!(
        r.password_hash.as_deref(),
        Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
    );
    tx.commit().await.unwrap();
    // An admin's disabling is recorded as such (SCIM may not undo it).
    let by_admin: bool =
        sqlx::query_scalar("SELECT disabled_by_admin FROM app.users WHERE id = $1")
            .bind(u.as_uuid())
            .fetch_one(&fx.admin)
            .await
            .unwrap();
    assert!(by_admin);
    let mut tx = fx.tx(org).await;
    directory::set_status(&mut tx, u, UserStatus::Active, fx.now())
        .await
        .unwrap();
    assert_eq!(
        directory::get(&mut tx, u).await.unwrap().status,
        UserStatus::Active
    );
    // Unknown users are NotFound for every change.
    let ghost = UserId::new();
    assert!(matches!(
        directory::get(&mut tx, ghost).await,
        Err(AuthError::NotFound)
    ));
    assert!(matches!(
        directory::set_role(&mut tx, ghost, Role::Admin, fx.now()).await,
        Err(AuthError::NotFound)
    ));
    tx.commit().await.unwrap();
    fx.close().await;
}

/// Another organisation's transaction finds none of the first one's users and changes
/// nothing of them: the database refuses, whatever id the caller names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_can_neither_see_nor_change_a_user() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let u = fx.user(a, "u@a.test", Role::Requester).await;
    let mut tx = fx.tx(b).await;
    assert!(matches!(
        directory::get(&mut tx, u).await,
        Err(AuthError::NotFound)
    ));
    assert!(
        directory::find_by_email(&mut tx, &Email::parse("u@a.test").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(directory::list(&mut tx).await.unwrap().is_empty());
    for r in [
        directory::set_role(&mut tx, u, Role::Admin, fx.now()).await,
        directory::set_status(&mut tx, u, UserStatus::Disabled, fx.now()).await,
        directory::set_password_hash(&mut tx, u, "$argon2id$x", fx.now()).await,
        directory::clear_mfa(&mut tx, u, fx.now()).await,
    ] {
        assert!(matches!(r, Err(AuthError::NotFound)), "{r:?}");
    }
    assert!(!directory::advance_totp_step(&mut tx, u, 99).await.unwrap());
    tx.commit().await.unwrap();
    // Writing a row that claims organisation A from B's transaction is refused.
    let mut tx = fx.tx(b).await;
    let planted = sqlx::query(
        "INSERT INTO app.users (org_id, id, email, display_name) VALUES ($1, $2, 'x@a.test', 'X')",
    )
    .bind(a.as_uuid())
    .bind(UserId::new().as_uuid())
    .execute(tx.conn())
    .await;
    assert!(
        planted.is_err(),
        "row-level security let B create a user in A"
    );
    tx.rollback().await.unwrap();
    // Behind RLS the user is untouched.
    let (role, status): (String, String) =
        sqlx::query_as("SELECT role, status FROM app.users WHERE id = $1")
            .bind(u.as_uuid())
            .fetch_one(&fx.admin)
            .await
            .unwrap();
    assert_eq!((role.as_str(), status.as_str()), ("requester", "active"));
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_steps_only_advance_and_recovery_codes_are_single_use() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let u = fx.user(a, "u@a.test", Role::Requester).await;
    let mut tx = fx.tx(a).await;
    directory::set_totp_pending(&mut tx, u, b"pending", fx.now())
        .await
        .unwrap();
    assert_eq!(
        directory::totp_pending(&mut tx, u)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"pending"[..])
    );
    directory::confirm_totp(&mut tx, u, b"sealed", 100, fx.now())
        .await
        .unwrap();
    let r = directory::get(&mut tx, u).await.unwrap();
    assert!(r.has_mfa());
    assert_eq!(r.totp_last_step, Some(100));
    assert_eq!(directory::totp_pending(&mut tx, u).await.unwrap(), None);
    assert!(
        !directory::advance_totp_step(&mut tx, u, 100).await.unwrap(),
        "same step twice"
    );
    assert!(
        !directory::advance_totp_step(&mut tx, u, 99).await.unwrap(),
        "an earlier step"
    );
    assert!(directory::advance_totp_step(&mut tx, u, 101).await.unwrap());
    let codes = RecoveryCodes::generate().unwrap();
    directory::replace_recovery_codes(&mut tx, u, &codes.hashes)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Another organisation cannot use them.
    let mut tx = fx.tx(b).await;
    assert!(
        !directory::use_recovery_code(&mut tx, u, codes.codes[0].expose())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut tx = fx.tx(a).await;
    assert!(
        directory::use_recovery_code(&mut tx, u, codes.codes[0].expose())
            .await
            .unwrap()
    );
    assert!(
        !directory::use_recovery_code(&mut tx, u, codes.codes[0].expose())
            .await
            .unwrap(),
        "used twice"
    );
    assert!(
        !directory::use_recovery_code(&mut tx, u, "0000-0000-0000-0000")
            .await
            .unwrap()
    );
    // New codes replace the old ones.
    let fresh = RecoveryCodes::generate().unwrap();
    directory::replace_recovery_codes(&mut tx, u, &fresh.hashes)
        .await
        .unwrap();
    assert!(
        !directory::use_recovery_code(&mut tx, u, codes.codes[1].expose())
            .await
            .unwrap()
    );
    assert!(
        directory::use_recovery_code(&mut tx, u, fresh.codes[1].expose())
            .await
            .unwrap()
    );
    // Turning MFA off removes the secret, the step and the codes.
    directory::clear_mfa(&mut tx, u, fx.now()).await.unwrap();
    let r = directory::get(&mut tx, u).await.unwrap();
    assert!(!r.has_mfa() && r.totp_last_step.is_none());
    assert!(
        !directory::use_recovery_code(&mut tx, u, fresh.codes[2].expose())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_policy_is_per_organisation() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let strict = OrgPolicy {
        mfa_required: true,
        elevation_needs_second_admin: true,
        operator_access_needs_approval: true,
    };
    let mut tx = fx.tx(a).await;
    assert_eq!(
        directory::org_policy(&mut tx).await.unwrap(),
        OrgPolicy::default()
    );
    directory::set_org_policy(&mut tx, strict).await.unwrap();
    assert_eq!(directory::org_policy(&mut tx).await.unwrap(), strict);
    tx.commit().await.unwrap();
    let mut tx = fx.tx(b).await;
    assert_eq!(
        directory::org_policy(&mut tx).await.unwrap(),
        OrgPolicy::default()
    );
    tx.commit().await.unwrap();
    fx.close().await;
}
