//! Tenant lifecycle, creation (issue #14, point 4): an operator creates an organisation
//! with its first admin invited; an invitation sets a first password once, before it
//! expires, and is refused alike in every other case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::world;
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::invitation;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_core::OrgId;
use serde_json::json;

const NEW_PASSWORD: &str = "a long and new passphrase";

async fn accept(w: &common::World, token: &str, password: &str) -> common::Reply {
    w.request(
        Method::POST,
        "/api/invitations/accept",
        None,
        Some(json!({ "token": token, "password": password })),
    )
    .await
}

async fn invite(
    tx: &mut procuhelp_tenancy::TenantTx,
    address: &str,
    now: time::OffsetDateTime,
    minutes: i64,
) -> procuhelp_auth::session::Credential {
    let user = directory::create(
        tx,
        NewUser {
            email: Email::parse(address).unwrap(),
            display_name: "Invited".to_owned(),
            role: Some(Role::Requester),
            password_hash: None,
        },
        now,
    )
    .await
    .unwrap();
    invitation::invite(tx, user, None, now, time::Duration::minutes(minutes))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invitation_sets_a_first_password_once_and_only_while_valid() {
    let w = world(PasswordHasher::for_tests()).await;
    let org = w.orgs[0];
    let now = w.state.sdk.now();
    let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
    let token = invite(&mut tx, "invited@org0.test", now, 60).await;
    let short_lived = invite(&mut tx, "late@org0.test", now, 1).await;
    tx.commit().await.unwrap();
    let token = token.expose();

    // Nothing but the live token works, and every refusal is the same.
    let malformed = accept(&w, "not-a-token", NEW_PASSWORD).await;
    let (_, secret) = token.split_once('.').unwrap();
    let other_org = accept(&w, &format!("{}.{secret}", w.orgs[1]), NEW_PASSWORD).await;
    let unknown_org = accept(&w, &format!("{}.{secret}", OrgId::new()), NEW_PASSWORD).await;
    let wrong = accept(
        &w,
        &format!("{org}.{}", "A".repeat(secret.len())),
        NEW_PASSWORD,
    )
    .await;
    for r in [&other_org, &unknown_org, &wrong] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.text, malformed.text);
    }
    // A password the policy refuses uses nothing up.
    let weak = accept(&w, &token, "short").await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.text
    );

    let ok = accept(&w, &token, NEW_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let login = w.try_login(0, "invited@org0.test", NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    // Once only.
    let again = accept(&w, &token, "another long passphrase").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.count(Action::UserInvitationAccepted), 1);

    // Not a password reset: an invitation of a user who has a password does nothing, and
    // a user's other invitations were withdrawn when one was accepted.
    let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
    let invited: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.users WHERE email = 'invited@org0.test'")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.invitations WHERE user_id = $1 AND accepted_at IS NULL",
    )
    .bind(invited)
    .fetch_one(tx.conn())
    .await
    .unwrap();
    assert_eq!(pending, 0);
    let reset = invitation::invite(
        &mut tx,
        procuhelp_core::UserId::from_uuid(invited).unwrap(),
        None,
        w.state.sdk.now(),
        time::Duration::minutes(60),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = accept(&w, &reset.expose(), "an attacker's passphrase").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let login = w.try_login(0, "invited@org0.test", NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);

    // Expired.
    w.clock.advance(time::Duration::minutes(2));
    let late = accept(&w, &short_lived.expose(), NEW_PASSWORD).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.text);

    // Only the token's hash is stored.
    let superuser = w.scratch.admin_pool(1).await.unwrap();
    let everything = procuhelp_tenancy::testkit::rows_by_table(&superuser)
        .await
        .unwrap();
    superuser.close().await;
    assert!(!format!("{everything:?}").contains(secret));
    w.close().await;
}

/// `org create` on the embedded default: the organisation, in the deployment's region,
/// its first admin with no password and one live invitation, both recorded.
#[tokio::test]
async fn org_create_invites_the_first_admin() {
    use procuhelp_tenancy::embedded::LocalCluster;
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-orgs-{}", uuid::Uuid::new_v4().simple()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let args = |email: &str| {
        use clap::Parser as _;
        let cli = procuhelp_server::cli::Cli::parse_from([
            "procuhelp-server",
            "org",
            "create",
            "--data-dir",
            data.to_str().unwrap(),
            "--name",
            "Acme Procurement",
            "--admin-email",
            email,
        ]);
        match cli.command {
            procuhelp_server::cli::Command::Org(o) => o.command,
            _ => unreachable!(),
        }
    };
    let err = procuhelp_server::orgs::command(args("not an address"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--admin-email"), "{err:#}");
    let mut nameless = args("boss@acme.test");
    let procuhelp_server::cli::OrgCommand::Create { admin_name, .. } = &mut nameless;
    *admin_name = "  ".to_owned();
    let err = procuhelp_server::orgs::command(nameless).await.unwrap_err();
    assert!(format!("{err:#}").contains("--admin-name"), "{err:#}");
    assert!(!data.exists(), "nothing is created for refused input");
    let err = procuhelp_server::orgs::command(args("also not an address"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--admin-email"), "{err:#}");
    let lines = procuhelp_server::orgs::command(args("Boss@Acme.test"))
        .await
        .unwrap();
    assert!(lines[0].contains("created in region eu"), "{lines:?}");
    let token = procuhelp_auth::session::Credential::parse(lines.last().unwrap()).unwrap();

    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, LocalCluster::SUPERUSER))
        .await
        .unwrap();
    let (region, role, password): (String, String, Option<String>) = sqlx::query_as(
        "SELECT o.data_region, u.role, u.password_hash FROM app.organisations o
         JOIN app.users u ON u.org_id = o.id WHERE o.id = $1 AND u.email = 'boss@acme.test'",
    )
    .bind(token.org.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (region.as_str(), role.as_str(), password),
        ("eu", "admin", None)
    );
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.invitations WHERE org_id = $1 AND token_hash = $2
           AND accepted_at IS NULL AND expires_at > now() + interval '6 days'",
    )
    .bind(token.org.as_uuid())
    .bind(token.token.hash().to_vec())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(live, 1);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM app.audit_events
         WHERE action IN ('org.created', 'user.invited') ORDER BY action",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(actions, ["org.created", "user.invited"]);
    db.close().await;
    cluster.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
