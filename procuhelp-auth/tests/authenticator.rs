//! The `Authenticator` on a real PostgreSQL, through the runtime role (row-level security
//! in force): password sign-in, throttle and locks, TOTP enrolment and the second factor,
//! single-use recovery codes, password change, the organisation's MFA rule — and every
//! refusal after an attempt was reserved is recorded with its method and reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod fx;

use fx::{Fx, PASSWORD, client, quick_locks, totp_for, wrong_code};
use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_auth::directory::{self, OrgPolicy, UserStatus};
use procuhelp_auth::session::SessionStage;
use procuhelp_auth::{AuthError, Permission, Principal, Role};
use procuhelp_core::SecretText;
use time::Duration;

fn secret(s: &str) -> SecretText {
    SecretText::new(s.to_owned())
}

/// The `(method, reason)` of every `auth.login_failed` recorded so far.
fn refusals(fx: &Fx) -> Vec<(String, String)> {
    fx.events(Action::LoginFailed)
        .iter()
        .map(|e| {
            (
                e.context["method"].as_str().unwrap_or("").to_owned(),
                e.context["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_sign_in_opens_a_full_session_and_is_recorded() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let issued = fx.login(org, "  U@A.test ", PASSWORD).await.unwrap();
    assert_eq!((issued.stage, issued.user), (SessionStage::Full, user));
    assert_eq!(issued.credential.org, org);
    let p = fx.principal(&issued.credential).await;
    assert_eq!(
        (p.user, p.stage, p.amr.clone()),
        (user, SessionStage::Full, vec!["pwd".to_owned()])
    );
    assert_eq!(p.effective_role(), Role::Requester);
    let ok = fx.events(Action::LoginSucceeded);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].actor, Actor::User { id: user });
    assert_eq!(ok[0].org, Some(org));
    assert!(fx.events(Action::LoginFailed).is_empty());
    fx.close().await;
}

/// Wrong password, unknown email, another organisation's user and a disabled user get the
/// same answer, each recorded as a failed password sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_unknown_user_other_org_and_disabled_user_are_one_answer() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    let user = fx.user(a, "u@a.test", Role::Requester).await;
    let off = fx.user(a, "off@a.test", Role::Requester).await;
    let mut tx = fx.tx(a).await;
    directory::set_status(&mut tx, off, UserStatus::Disabled, fx.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (org, email, password) in [
        (a, "u@a.test", "not the password"),
        (a, "nobody@a.test", PASSWORD),
        (b, "u@a.test", PASSWORD),
        (a, "off@a.test", PASSWORD),
        (procuhelp_core::OrgId::new(), "u@a.test", PASSWORD),
    ] {
        let r = fx.login(org, email, password).await;
        assert!(
            matches!(r, Err(AuthError::InvalidCredentials)),
            "{email} in {org}: {r:?}"
        );
    }
    let failed = fx.events(Action::LoginFailed);
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0].actor, Actor::User { id: user });
    assert_eq!(failed[3].actor, Actor::User { id: off });
    assert_eq!(
        failed[4].org, None,
        "an unknown organisation's refusal goes to the system chain"
    );
    assert!(
        refusals(&fx)
            .iter()
            .all(|(m, r)| m == "password" && r == "invalid credentials")
    );
    assert!(fx.events(Action::LoginSucceeded).is_empty());
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_account_until_the_lock_runs_out() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    for _ in 0..2 {
        let r = fx.login(org, "u@a.test", "wrong").await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    assert_eq!(fx.events(Action::AccountLocked).len(), 1);
    // Locked: even the right password is not looked at.
    let r = fx.login(org, "u@a.test", PASSWORD).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    let denied = fx.events(Action::LoginFailed);
    assert_eq!(denied.last().unwrap().outcome, Outcome::Denied);
    fx.clock.advance(Duration::seconds(61));
    fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    assert_eq!(fx.events(Action::AccountUnlocked).len(), 1);
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_then_sign_in_needs_the_code_once() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Approver).await;
    let first = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let (uri, full, _codes) = fx.enrol(&first).await;
    assert!(uri.starts_with("otpauth://totp/"));
    // Confirmation replaced the session (no fixation across the privilege change).
    assert_ne!(full.credential.expose(), first.credential.expose());
    let mut tx = fx.tx(org).await;
    let old = fx.auth.session(&mut tx, &first.credential, &client()).await;
    assert!(matches!(old, Err(AuthError::Unauthenticated)), "{old:?}");
    tx.rollback().await.unwrap();
    assert_eq!(fx.events(Action::MfaEnabled).len(), 1);

    // Password alone now gives a half session that may do nothing else.
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    assert_eq!(half.stage, SessionStage::SecondFactor);
    let expected = fx.principal(&half.credential).await;
    let r = Principal::User(expected.clone()).require(Permission::ReadSuppliers);
    assert!(matches!(r, Err(AuthError::SecondFactorRequired)), "{r:?}");
    fx.clock.advance(Duration::seconds(60));
    let bad = wrong_code(&uri, fx.now());
    let r = fx
        .auth
        .complete_second_factor(&half.credential, &expected, &bad, &client())
        .await;
    assert!(matches!(r, Err(AuthError::InvalidCode)), "{r:?}");
    let code = totp_for(&uri, fx.now());
    let done = fx
        .auth
        .complete_second_factor(&half.credential, &expected, &code, &client())
        .await
        .unwrap();
    assert_eq!((done.stage, done.user), (SessionStage::Full, user));
    let p = fx.principal(&done.credential).await;
    assert!(p.amr.iter().any(|m| m == "otp") && p.amr.iter().any(|m| m == "mfa"));
    assert!(
        Principal::User(p)
            .require(Permission::ReadSuppliers)
            .is_ok()
    );
    // The half session is gone, and the same code does not work twice.
    let mut tx = fx.tx(org).await;
    assert!(
        fx.auth
            .session(&mut tx, &half.credential, &client())
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    let again = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&again.credential).await;
    let r = fx
        .auth
        .complete_second_factor(&again.credential, &expected, &code, &client())
        .await;
    assert!(
        matches!(r, Err(AuthError::InvalidCode)),
        "replayed code: {r:?}"
    );
    assert_eq!(
        fx.events(Action::MfaStepUp).len(),
        2,
        "enrolment and one sign-in"
    );
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_works_once() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    let first = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let (_, _, codes) = fx.enrol(&first).await;
    assert_eq!(codes.len(), 10);
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&half.credential).await;
    let typed = codes[4].to_lowercase();
    fx.auth
        .complete_second_factor(&half.credential, &expected, &typed, &client())
        .await
        .unwrap();
    assert_eq!(fx.events(Action::RecoveryCodeUsed).len(), 1);
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&half.credential).await;
    let r = fx
        .auth
        .complete_second_factor(&half.credential, &expected, &codes[4], &client())
        .await;
    assert!(matches!(r, Err(AuthError::InvalidCode)), "{r:?}");
    // Another code still works.
    fx.auth
        .complete_second_factor(&half.credential, &expected, &codes[5], &client())
        .await
        .unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_revokes_every_other_session() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    let here = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let elsewhere = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&here.credential).await;
    let wrong = fx
        .auth
        .change_password(
            &here.credential,
            &expected,
            secret("not it"),
            secret("a brand new passphrase"),
            &client(),
        )
        .await;
    assert!(
        matches!(wrong, Err(AuthError::InvalidCredentials)),
        "{wrong:?}"
    );
    let issued = fx
        .auth
        .change_password(
            &here.credential,
            &expected,
            secret(PASSWORD),
            secret("a brand new passphrase"),
            &client(),
        )
        .await
        .unwrap();
    let mut tx = fx.tx(org).await;
    for old in [&here.credential, &elsewhere.credential] {
        let r = fx.auth.session(&mut tx, old, &client()).await;
        assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    }
    assert!(
        fx.auth
            .session(&mut tx, &issued.credential, &client())
            .await
            .is_ok()
    );
    tx.commit().await.unwrap();
    let changed = fx.events(Action::PasswordChanged);
    assert_eq!(changed[0].context["sessions_revoked"], 2);
    assert!(fx.login(org, "u@a.test", PASSWORD).await.is_err());
    fx.login(org, "u@a.test", "a brand new passphrase")
        .await
        .unwrap();
    fx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_that_requires_mfa_sends_users_without_it_to_enrolment() {
    let fx = Fx::new().await;
    let [a, b] = fx.orgs;
    fx.user(a, "u@a.test", Role::Requester).await;
    fx.user(b, "u@b.test", Role::Requester).await;
    let mut tx = fx.tx(a).await;
    directory::set_org_policy(
        &mut tx,
        OrgPolicy {
            mfa_required: true,
            elevation_needs_second_admin: false,
            operator_access_needs_approval: false,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let issued = fx.login(a, "u@a.test", PASSWORD).await.unwrap();
    assert_eq!(issued.stage, SessionStage::Enrolment);
    let p = fx.principal(&issued.credential).await;
    let r = Principal::User(p).require(Permission::ReadSuppliers);
    assert!(matches!(r, Err(AuthError::SecondFactorRequired)), "{r:?}");
    // The other organisation's policy is its own.
    assert_eq!(
        fx.login(b, "u@b.test", PASSWORD).await.unwrap().stage,
        SessionStage::Full
    );
    fx.close().await;
}

/// Wrong codes lock the second factor (its own key: a correct password does not reset
/// it); while locked even the right code is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_lock_the_second_factor() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    let first = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let (uri, _, _) = fx.enrol(&first).await;
    for _ in 0..2 {
        // A fresh password sign-in each time: it does not buy more guesses.
        let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
        let expected = fx.principal(&half.credential).await;
        let bad = wrong_code(&uri, fx.now());
        let r = fx
            .auth
            .complete_second_factor(&half.credential, &expected, &bad, &client())
            .await;
        assert!(matches!(r, Err(AuthError::InvalidCode)), "{r:?}");
    }
    let locked = fx.events(Action::AccountLocked);
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].context["method"], "second_factor");
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&half.credential).await;
    let r = fx
        .auth
        .complete_second_factor(
            &half.credential,
            &expected,
            &totp_for(&uri, fx.now()),
            &client(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    let last = fx.events(Action::LoginFailed).pop().unwrap();
    assert_eq!(
        (
            last.context["method"].as_str(),
            last.context["locked"].as_bool()
        ),
        (Some("second_factor"), Some(true))
    );
    fx.close().await;
}

/// New recovery codes and turning MFA off need the password and a code again; the old
/// codes stop working, and MFA cannot be turned off while the organisation requires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_recovery_codes_and_mfa_off_need_password_and_code() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    let first = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let (uri, full, old_codes) = fx.enrol(&first).await;
    let expected = fx.principal(&full.credential).await;
    fx.clock.advance(Duration::seconds(30));
    let fresh = fx
        .auth
        .regenerate_recovery_codes(
            &full.credential,
            &expected,
            secret(PASSWORD),
            &totp_for(&uri, fx.now()),
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(fx.events(Action::RecoveryCodesRegenerated).len(), 1);
    // The old codes are gone: one of them is not a second factor any more.
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let p = fx.principal(&half.credential).await;
    let r = fx
        .auth
        .complete_second_factor(&half.credential, &p, &old_codes[0], &client())
        .await;
    assert!(matches!(r, Err(AuthError::InvalidCode)), "{r:?}");
    // While the organisation requires MFA, it stays on.
    let mut tx = fx.tx(org).await;
    let strict = OrgPolicy {
        mfa_required: true,
        elevation_needs_second_admin: false,
        operator_access_needs_approval: false,
    };
    directory::set_org_policy(&mut tx, strict).await.unwrap();
    tx.commit().await.unwrap();
    let code = fresh.codes[0].expose().to_owned();
    let r = fx
        .auth
        .disable_mfa(
            &full.credential,
            &expected,
            secret(PASSWORD),
            &code,
            &client(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Conflict(_))), "{r:?}");
    let mut tx = fx.tx(org).await;
    directory::set_org_policy(&mut tx, OrgPolicy::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = fx
        .auth
        .disable_mfa(
            &full.credential,
            &expected,
            secret("wrong"),
            &code,
            &client(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    fx.auth
        .disable_mfa(
            &full.credential,
            &expected,
            secret(PASSWORD),
            &code,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(fx.events(Action::MfaDisabled).len(), 1);
    assert_eq!(
        fx.login(org, "u@a.test", PASSWORD).await.unwrap().stage,
        SessionStage::Full
    );
    fx.close().await;
}

// ---- Every refusal after the attempt was reserved is recorded (method and reason) ----

/// A stored hash that cannot be parsed fails the sign-in like a wrong password: recorded,
/// and counted towards the lock (the old code returned before recording anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_stored_hash_is_a_recorded_failure_that_can_lock() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    sqlx::query("UPDATE app.users SET password_hash = '$argon2id$v=19$m=4096,t=3,p=1$not base64!$!' WHERE id = $1")
        .bind(user.as_uuid())
        .execute(&fx.admin)
        .await
        .unwrap();
    for _ in 0..2 {
        let r = fx.login(org, "u@a.test", PASSWORD).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    let failed = fx.events(Action::LoginFailed);
    assert_eq!(failed.len(), 2, "{:?}", refusals(&fx));
    assert!(failed.iter().all(|e| e.actor == Actor::User { id: user }));
    assert!(
        refusals(&fx)
            .iter()
            .all(|(m, r)| m == "password" && r == "unusable password hash"),
        "{:?}",
        refusals(&fx)
    );
    assert_eq!(fx.events(Action::AccountLocked).len(), 1);
    fx.close().await;
}

/// The user is disabled between the password check and the session: refused and recorded
/// (the old code refused silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_changed_during_sign_in_is_a_recorded_failure() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    for _ in 0..2 {
        assert!(fx.login(org, "u@a.test", "wrong").await.is_err());
    }
    // The next reservation lifts the lock and records it: that is the moment between
    // reading the account and checking the password. Disable the user then.
    fx.clock.advance(Duration::seconds(61));
    let admin = fx.admin.clone();
    fx.audit.on(Action::AccountUnlocked, move || async move {
        sqlx::query("UPDATE app.users SET status = 'disabled' WHERE id = $1")
            .bind(user.as_uuid())
            .execute(&admin)
            .await
            .unwrap();
    });
    let r = fx.login(org, "u@a.test", PASSWORD).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    assert!(fx.events(Action::LoginSucceeded).is_empty());
    assert_eq!(
        refusals(&fx).last(),
        Some(&(
            "password".to_owned(),
            "account changed during sign-in".to_owned()
        )),
        "{:?}",
        refusals(&fx)
    );
    fx.close().await;
}

/// The half session ran out while the code was on its way: the attempt was counted on
/// the second factor, so it is recorded (the old code returned without a trace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_for_an_ended_session_is_a_recorded_failure() {
    let fx = Fx::new().await;
    let org = fx.orgs[0];
    let user = fx.user(org, "u@a.test", Role::Requester).await;
    let first = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let (uri, _, _) = fx.enrol(&first).await;
    let half = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&half.credential).await;
    fx.clock.advance(Duration::minutes(11)); // a half session lives ten minutes
    let r = fx
        .auth
        .complete_second_factor(
            &half.credential,
            &expected,
            &totp_for(&uri, fx.now()),
            &client(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let failed = fx.events(Action::LoginFailed);
    let last = failed.last().expect("no auth.login_failed recorded");
    assert_eq!(last.actor, Actor::User { id: user });
    assert_eq!(last.context["method"], "second_factor");
    assert_eq!(last.context["reason"], "session ended");
    assert_eq!(last.context["during"], "sign-in");
    fx.close().await;
}

/// The session is revoked between the reservation and the password re-check of a
/// password change: refused and recorded (the old code refused silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_recheck_for_a_revoked_session_is_a_recorded_failure() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    let issued = fx.login(org, "u@a.test", PASSWORD).await.unwrap();
    let expected = fx.principal(&issued.credential).await;
    for _ in 0..2 {
        assert!(fx.login(org, "u@a.test", "wrong").await.is_err());
    }
    fx.clock.advance(Duration::seconds(61));
    let admin = fx.admin.clone();
    let session = expected.session;
    fx.audit.on(Action::AccountUnlocked, move || async move {
        sqlx::query("UPDATE app.sessions SET revoked_at = now() WHERE id = $1")
            .bind(session)
            .execute(&admin)
            .await
            .unwrap();
    });
    let r = fx
        .auth
        .change_password(
            &issued.credential,
            &expected,
            secret(PASSWORD),
            secret("a brand new passphrase"),
            &client(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let failed = fx.events(Action::LoginFailed);
    let last = failed.last().unwrap();
    assert_eq!(last.context["method"], "password", "{:?}", last.context);
    assert_eq!(last.context["reason"], "session ended");
    assert_eq!(last.context["during"], "password change");
    assert!(fx.events(Action::PasswordChanged).is_empty());
    fx.close().await;
}

/// A refusal by the throttle says whether a lock or a back-off refused it, and for which
/// method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_refusal_names_its_method_and_whether_a_lock_refused_it() {
    let fx = Fx::with_throttle(quick_locks()).await;
    let org = fx.orgs[0];
    fx.user(org, "u@a.test", Role::Requester).await;
    for _ in 0..2 {
        assert!(fx.login(org, "u@a.test", "wrong").await.is_err());
    }
    let r = fx.login(org, "u@a.test", PASSWORD).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    let failed = fx.events(Action::LoginFailed);
    let last = failed.last().unwrap();
    assert_eq!(last.outcome, Outcome::Denied);
    assert_eq!(last.context["reason"], "throttled");
    assert_eq!(last.context["method"], "password", "{:?}", last.context);
    assert_eq!(last.context["locked"], true, "{:?}", last.context);
    fx.close().await;
}
