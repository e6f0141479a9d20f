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
    let procuhelp_server::cli::OrgCommand::Create { admin_name, .. } = &mut nameless else {
        unreachable!()
    };
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
    let db = common::superuser(&cluster, LocalCluster::DATABASE).await;
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

/// Every row of `org` left in any table that has an `org_id` column (and its own row).
async fn rows_left(db: &sqlx::PgPool, org: uuid::Uuid) -> i64 {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.columns
         WHERE column_name = 'org_id' AND table_schema = 'app'
           AND (table_schema, table_name) IN (SELECT table_schema, table_name
                FROM information_schema.tables WHERE table_type = 'BASE TABLE')",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    let mut left = 0i64;
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE org_id = $1"))
            .bind(org)
            .fetch_one(db)
            .await
            .unwrap();
        left += n;
    }
    left + sqlx::query_scalar::<_, i64>("SELECT count(*) FROM app.organisations WHERE id = $1")
        .bind(org)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The label of the newest complete backup in `repo`.
fn latest_backup(repo: &str) -> String {
    procuhelp_tenancy::backup::Repository::open(
        repo.as_ref(),
        None,
        procuhelp_tenancy::backup::Placement::Apart,
    )
    .unwrap()
    .find(None)
    .unwrap()
    .label
}

/// Organisation `org`'s part of backup `label` cannot be opened with the vault in
/// `data`: its backup key is gone (read afresh from disk, so a key brought back since
/// would be seen).
async fn assert_part_key_destroyed(
    data: &std::path::Path,
    repo: &str,
    label: &str,
    org: uuid::Uuid,
) {
    let vault = procuhelp_core::vault::FileVault::open_or_create(&data.join("vault")).unwrap();
    let part = std::path::Path::new(repo)
        .join(label)
        .join(format!("org-{}.phbk", org.simple()));
    let opened = procuhelp_tenancy::backup::sealed::open_file_under(
        &part,
        procuhelp_tenancy::backup::sealed::FileKind::Organisation,
        &format!("{label}/{}", org.simple()),
        &format!("tenant-{}-backup", org.simple()),
        &vault,
    )
    .await;
    assert!(
        matches!(
            opened,
            Err(procuhelp_tenancy::backup::BackupError::KeyDestroyed { .. })
        ),
        "{opened:?}"
    );
}

/// Offboarding on the embedded default (issue #14, point 4): the customer's export (its
/// rows, credentials withheld, and a verifiable audit trail), then nothing of the
/// organisation in any table or a dump, a tombstone and one `org.offboarded` event kept —
/// and a backup taken *before* restores and drills without it: its part is unreadable,
/// the other organisation's is whole.
#[tokio::test]
async fn offboarding_exports_deletes_and_leaves_earlier_backups_unreadable() {
    use common::{plain_dump, run};
    use procuhelp_tenancy::embedded::LocalCluster;
    procuhelp_server::tls::install_crypto_provider();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("ph-offboard-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let d = data.to_str().unwrap().to_owned();
    let repo = format!("/dev/shm/ph-offboard-repo-{id}");
    run(&["seed-demo", "--data-dir", &d]).await.unwrap();
    run(&["backup", "run", "--data-dir", &d, "--repo", &repo])
        .await
        .unwrap();
    let earlier = latest_backup(&repo);

    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = common::superuser(&cluster, LocalCluster::DATABASE).await;
    let org_of = |name: &'static str| {
        let su = su.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM app.organisations WHERE name = $1")
                .bind(name)
                .fetch_one(&su)
                .await
                .unwrap()
        }
    };
    let (a, b) = (org_of("Demo Org A").await, org_of("Demo Org B").await);
    assert!(rows_left(&su, a).await > 10);
    su.close().await;
    let dump = plain_dump(&cluster, LocalCluster::DATABASE).await;
    assert!(dump.contains("@a.demo.procuhelp.test"));
    cluster.stop().await.unwrap();

    let offboard = |org: String, confirm: String, out: &str| {
        let (d, out) = (d.clone(), out.to_owned());
        async move {
            run(&[
                "org",
                "offboard",
                "--data-dir",
                &d,
                "--org",
                &org,
                "--confirm",
                &confirm,
                "--out",
                &out,
            ])
            .await
        }
    };
    let out = dir.join("export");
    let o = out.to_str().unwrap().to_owned();
    // Refused before anything is touched: a confirmation naming another organisation,
    // the system chain.
    let err = offboard(a.to_string(), b.to_string(), &o)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--confirm"), "{err:#}");
    let system = procuhelp_audit::system_chain_org().to_string();
    let err = offboard(system.clone(), system, &o).await.unwrap_err();
    assert!(format!("{err:#}").contains("system audit chain"), "{err:#}");
    assert!(!out.exists());

    offboard(a.to_string(), a.to_string(), &o).await.unwrap();

    // The export: every row, no credential, and an audit trail that verifies.
    let rows = std::fs::read_to_string(out.join(procuhelp_server::offboard::ROWS_FILE)).unwrap();
    let mut lines = rows.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["organisation"], a.to_string());
    assert!(
        header["withheld"]
            .to_string()
            .contains("app.users.password_hash")
    );
    let rows: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |table: &str| rows.iter().filter(|r| r["table"] == table).count();
    assert_eq!(of("app.organisations"), 1);
    assert!(
        of("app.users") >= 4 && of("app.audit_events") > 0,
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["row"].get("password_hash").is_none()));
    // The suppliers' bank details come opened, not as ciphertext whose keys go.
    assert!(
        header["opened"]
            .to_string()
            .contains("app.suppliers.iban_sealed")
    );
    let ibans: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["opened"]["value"].as_str())
        .collect();
    assert!(ibans.contains(&"DE89370400440532013000"), "{ibans:?}");
    assert!(
        !ibans.contains(&"GB29NWBK60161331926819"),
        "another organisation's"
    );
    assert!(!header["withheld"].to_string().contains("iban"));
    assert!(
        rows.iter()
            .any(|r| r["row"]["email"] == "requester@a.demo.procuhelp.test")
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.to_string().contains("b.demo.procuhelp.test"))
    );
    let audit = std::fs::File::open(out.join(procuhelp_server::offboard::AUDIT_FILE)).unwrap();
    let report = procuhelp_audit::verify_export(
        std::io::BufReader::new(audit),
        &procuhelp_audit::Trust::DangerouslyTrustEmbeddedKeys,
    )
    .unwrap();
    assert!(report.is_intact() && report.events > 0, "{report:?}");

    // Run again: it finishes (nothing left to do), records nothing twice.
    let again = dir.join("again");
    offboard(a.to_string(), a.to_string(), again.to_str().unwrap())
        .await
        .unwrap();
    assert!(!again.exists(), "a finished offboarding exports nothing");

    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let su = common::superuser(&cluster, LocalCluster::DATABASE).await;
    assert_eq!(rows_left(&su, a).await, 0);
    assert!(
        rows_left(&su, b).await > 10,
        "the other organisation is untouched"
    );
    let (deleted, keys_gone): (serde_json::Value, bool) = sqlx::query_as(
        "SELECT deleted_rows, keys_destroyed_at IS NOT NULL FROM app.offboarded_organisations
         WHERE id = $1",
    )
    .bind(a)
    .fetch_one(&su)
    .await
    .unwrap();
    assert!(keys_gone);
    assert!(deleted["app.users"].as_i64().unwrap() >= 4, "{deleted}");
    let events: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT context::jsonb FROM app.audit_events WHERE action = 'org.offboarded' AND target = $1",
    )
    .bind(format!("org:{a}"))
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["deleted_rows"], deleted);
    // Its id is never reused.
    let reused = sqlx::query("INSERT INTO app.organisations (id, name) VALUES ($1, 'again')")
        .bind(a)
        .execute(&su)
        .await;
    assert!(reused.is_err());
    su.close().await;
    let dump = plain_dump(&cluster, LocalCluster::DATABASE).await;
    assert!(!dump.contains("@a.demo.procuhelp.test"));
    assert!(dump.contains("@b.demo.procuhelp.test"));
    cluster.stop().await.unwrap();

    // The backup taken before: the organisation's part cannot be opened any more …
    assert_part_key_destroyed(&data, &repo, &earlier, a).await;
    // … so it restores without it, the other organisation whole, and its drill passes
    // (the live database's tombstone confirms the destroyed key).
    run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &repo,
        "--label",
        &earlier,
        "--into-database",
        "earlier",
    ])
    .await
    .unwrap();
    run(&[
        "backup",
        "drill",
        "--data-dir",
        &d,
        "--repo",
        &repo,
        "--label",
        &earlier,
    ])
    .await
    .unwrap();
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let dump = plain_dump(&cluster, "earlier").await;
    assert!(
        !dump.contains("@a.demo.procuhelp.test"),
        "the earlier backup still reads"
    );
    assert!(dump.contains("@b.demo.procuhelp.test"));
    cluster.stop().await.unwrap();
    // A backup taken now has no part for it (and creates no key for it); its drill passes.
    run(&["backup", "run", "--data-dir", &d, "--repo", &repo])
        .await
        .unwrap();
    run(&["backup", "drill", "--data-dir", &d, "--repo", &repo])
        .await
        .unwrap();
    let newest = latest_backup(&repo);
    assert_ne!(newest, earlier);
    assert!(
        !std::path::Path::new(&repo)
            .join(&newest)
            .join(format!("org-{}.phbk", a.simple()))
            .exists()
    );
    // The earlier backup's part still cannot be opened: no backup brought the key back.
    assert_part_key_destroyed(&data, &repo, &earlier, a).await;
    let _ = std::fs::remove_dir_all(&repo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Nothing is deleted that was not exported: rows changed after the export refuse the
/// deletion, whole; the export's own fingerprint lets it through.
#[tokio::test]
async fn offboarding_refuses_to_delete_what_changed_after_the_export() {
    use procuhelp_tenancy::{TenantDb, offboarding};
    let w = world(PasswordHasher::for_tests()).await;
    let org = w.orgs[1];
    let owner = w.scratch.owner_pool(2).await.unwrap();
    let schema = procuhelp_server::database::schema();
    let mut sink = Vec::new();
    let exported = offboarding::export(&owner, &schema, w.state.sdk.cipher(), org, &mut sink)
        .await
        .unwrap();
    assert!(exported.fingerprint.contains_key("app.users"));
    // Same number of rows, other content: a renamed user.
    let admin = w.scratch.admin_pool(1).await.unwrap();
    sqlx::query(
        "UPDATE app.users SET display_name = 'Renamed' WHERE org_id = $1 AND role = 'admin'",
    )
    .bind(org.as_uuid())
    .execute(&admin)
    .await
    .unwrap();
    let mut tx = TenantDb::new(owner.clone())
        .begin(procuhelp_audit::system_chain_org())
        .await
        .unwrap();
    let err = offboarding::delete(&mut tx, org, Some(&exported.fingerprint))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("app.users"), "{err}");
    drop(tx);
    assert!(offboarding::tombstone(&owner, org).await.unwrap().is_none());
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM app.users WHERE org_id = $1")
        .bind(org.as_uuid())
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(users >= 4);
    // Exported again: the deletion goes through, and new events for it are refused.
    let exported = offboarding::export(&owner, &schema, w.state.sdk.cipher(), org, &mut Vec::new())
        .await
        .unwrap();
    let mut tx = TenantDb::new(owner.clone())
        .begin(procuhelp_audit::system_chain_org())
        .await
        .unwrap();
    let tombstone = offboarding::delete(&mut tx, org, Some(&exported.fingerprint))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(tombstone.deleted_rows["app.users"], users);
    let log = w.state.sdk.audit_log().cloned().unwrap();
    let late = procuhelp_audit::AuditSink::record(
        &log,
        procuhelp_audit::AuditEvent::new(
            Some(org),
            procuhelp_audit::Actor::System,
            Action::SessionRevoked,
            procuhelp_audit::Outcome::Success,
        ),
    )
    .await;
    assert!(
        late.is_err(),
        "an offboarded organisation takes no new events"
    );
    admin.close().await;
    owner.close().await;
    w.close().await;
}

/// The operator API (issue #14 point 4): a named operator's signed request creates an
/// organisation with its first admin invited, recorded with the operator's name; a
/// replay, another key, an unknown name, a stale or altered request are the same 401,
/// and a body over the bound is refused before anything is checked.
#[tokio::test]
async fn the_operator_api_creates_organisations_for_named_operators_only() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use procuhelp_auth::operator::{Operators, sign};
    use procuhelp_server::operator_api::{MAX_BODY, ORGANISATIONS, OperatorApi};
    use tower::ServiceExt as _;

    let w = world(PasswordHasher::for_tests()).await;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let alice =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let mallory =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let config = format!(
        r#"{{"operators": [{{"name": "alice", "public_key": "{}"}}]}}"#,
        hex::encode(alice.public_key().as_ref())
    );
    let log = w.state.sdk.audit_log().cloned().unwrap();
    let api = OperatorApi {
        operators: std::sync::Arc::new(Operators::from_json(config.as_bytes()).unwrap()),
        replay: Default::default(),
        owner: w.scratch.owner_pool(2).await.unwrap(),
        runtime: w.scratch.runtime_pool(2).await.unwrap(),
        log: log.clone(),
        sink: std::sync::Arc::new(log.clone()),
        committed: procuhelp_server::operator_api::Committed(std::sync::Arc::new(
            |_: &procuhelp_audit::AuditEvent| {},
        )),
        residency: std::sync::Arc::new(
            serde_json::from_str(procuhelp_server::residency::DEFAULT).unwrap(),
        ),
    };
    let app = procuhelp_server::app::harden(
        procuhelp_server::operator_api::routes(api),
        procuhelp_server::app::Limits::default(),
    );
    let call = |authorization: Option<String>, body: Vec<u8>| {
        let app = app.clone();
        async move {
            let mut request =
                axum::http::Request::post(ORGANISATIONS).header("content-type", "application/json");
            if let Some(a) = authorization {
                request = request.header("authorization", a);
            }
            let response = app
                .oneshot(request.body(axum::body::Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let body = serde_json::to_vec(&json!({
        "name": "Operated Ltd",
        "admin_email": "first@operated.test",
        "admin_name": "First Admin",
    }))
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = |key: &Ed25519KeyPair, name: &str, ts: i64, body: &[u8]| {
        Some(sign(key, name, "POST", ORGANISATIONS, ts, body))
    };

    // Refused alike, and nothing created.
    let (status, refusal) = call(None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut other_body = body.clone();
    other_body.push(b' ');
    for (authorization, sent) in [
        (signed(&mallory, "alice", now, &body), body.clone()),
        (signed(&mallory, "mallory", now, &body), body.clone()),
        (signed(&alice, "alice", now - 120, &body), body.clone()),
        (signed(&alice, "alice", now, &body), other_body),
        (Some("Bearer abc".to_owned()), body.clone()),
    ] {
        assert_eq!(
            call(authorization, sent).await,
            (StatusCode::UNAUTHORIZED, refusal.clone())
        );
    }
    // Too large: refused before the signature is even looked at.
    let big = vec![b' '; MAX_BODY + 1];
    let (status, _) = call(signed(&alice, "alice", now, &big), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A signed request with bad input: a clear 400.
    let bad = serde_json::to_vec(&json!({ "name": "X", "admin_email": "nope" })).unwrap();
    let (status, text) = call(signed(&alice, "alice", now, &bad), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("admin_email"), "{text}");

    let good = signed(&alice, "alice", now, &body);
    let (status, text) = call(good.clone(), body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["region"], "eu");
    let org: uuid::Uuid = created["organisation"].as_str().unwrap().parse().unwrap();
    let token =
        procuhelp_auth::session::Credential::parse(created["invitation_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(token.org.as_uuid(), org);
    // The same request again is a replay.
    assert_eq!(call(good, body).await, (StatusCode::UNAUTHORIZED, refusal));

    // The invitation works; the creation is in the system chain with the operator's name.
    let r = accept(&w, &token.expose(), NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let admin = w.scratch.admin_pool(1).await.unwrap();
    let contexts: Vec<String> = sqlx::query_scalar(
        "SELECT context FROM app.audit_events WHERE action = 'org.created' AND target = $1",
    )
    .bind(format!("org:{org}"))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(contexts.len(), 1);
    let context: serde_json::Value = serde_json::from_str(&contexts[0]).unwrap();
    assert_eq!(context["operator"], "alice");
    assert_eq!(context["via"], "operator-api");
    let organisations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.organisations WHERE name = 'Operated Ltd'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(organisations, 1, "refused requests created nothing");
    admin.close().await;
    w.close().await;
}

/// The access log names the organisation of a verified credential, and only then.
#[tokio::test]
async fn the_access_log_names_the_organisation_once_the_credential_is_verified() {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let w = world(PasswordHasher::for_tests()).await;
    let session = w.login(0, Role::Admin).await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    {
        // Current-thread runtime: the subscriber sees this test's requests only.
        let _guard = tracing::subscriber::set_default(subscriber);
        let r = w
            .request(Method::GET, "/api/suppliers", Some(&session), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = w.request(Method::GET, "/api/suppliers", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("procuhelp::access"))
        .collect();
    assert_eq!(access.len(), 2, "{logs}");
    assert!(
        access[0].contains(&format!("org_id={}", w.orgs[0])),
        "{}",
        access[0]
    );
    assert!(access[0].contains("status=200"));
    // Unverified: no organisation, whatever the request claimed.
    assert!(access[1].contains("org_id=-"), "{}", access[1]);
    w.close().await;
}
