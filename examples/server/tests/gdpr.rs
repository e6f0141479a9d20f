//! A data subject's requests through the API (issue #14, points 2 and 3): the export holds
//! every row the register points to and nothing of anyone else; erasure leaves a former
//! user, ends the sessions, shreds the trail's personal data, and is idempotent, atomic and
//! confined to the admin's organisation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{PASSWORD, Session, World, email, plain_dump, run, world};
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_axum::subject_rights::{self, Person};
use procuhelp_core::UserId;
use procuhelp_tenancy::personal_data::Retention;
use serde_json::{Value, json};

/// What the test writes about the person besides their account, so that it can be
/// searched for afterwards: SCIM's attributes and an identity provider's subject.
const SCIM_USER_NAME: &str = "petra.quist@idp.example";
const EXTERNAL_ID: &str = "ext-petra-4711";
const GIVEN: &str = "Petronella";
const FAMILY: &str = "Quistorp";
const IDP_SUBJECT: &str = "oidc:tenant-x:petra-oid-0815";

fn hasher() -> PasswordHasher {
    PasswordHasher::for_tests()
}

/// The person (org 0's requester) with a row in every table the register says can name
/// a user, through the API where there is one, else as the runtime role.
async fn seed_person(w: &World) -> (UserId, Session) {
    let org = w.orgs[0];
    let person = w.users[&(0, Role::Requester)];
    let admin = w.users[&(0, Role::Admin)];
    let session = w.login(0, Role::Requester).await;
    let raised = w
        .request(
            Method::POST,
            "/api/requests",
            Some(&session),
            Some(json!({ "title": "Standing desk", "amount_cents": 45000 })),
        )
        .await;
    assert_eq!(raised.status, StatusCode::OK, "{:?}", raised.body);
    let approver = w.login(0, Role::Approver).await;
    let id = raised.body["id"].as_str().unwrap();
    let approved = w
        .request(
            Method::POST,
            &format!("/api/requests/{id}/approve"),
            Some(&approver),
            None,
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
    let p = person.as_uuid();
    let statements: Vec<(&str, Vec<Value>)> = vec![
        (
            "UPDATE app.users SET scim_user_name = $2, scim_external_id = $3, given_name = $4,
                 family_name = $5, scim_display_name = $4 || ' ' || $5,
                 scim_emails = jsonb_build_array(jsonb_build_object('value', $2::text)),
                 display_name = $4 || ' ' || $5
             WHERE id = $1",
            vec![
                json!(SCIM_USER_NAME),
                json!(EXTERNAL_ID),
                json!(GIVEN),
                json!(FAMILY),
            ],
        ),
        (
            "INSERT INTO app.sso_identities (org_id, subject_key, user_id)
             VALUES (app.current_org(), $2, $1)",
            vec![json!(IDP_SUBJECT)],
        ),
        (
            "INSERT INTO app.recovery_codes (org_id, user_id, code_hash)
             SELECT app.current_org(), $1, sha256(i::text::bytea) FROM generate_series(1, 3) i",
            vec![],
        ),
        (
            "INSERT INTO app.scim_groups (org_id, id, display_name, created_at, changed_at)
             VALUES (app.current_org(), gen_random_uuid(), 'Buyers', now(), now())",
            vec![],
        ),
        (
            "INSERT INTO app.scim_group_members (org_id, group_id, user_id)
             SELECT app.current_org(), id, $1 FROM app.scim_groups",
            vec![],
        ),
        (
            "INSERT INTO app.elevations (org_id, id, user_id, role, reason, state,
                 requested_by, duration_secs, created_at)
             VALUES (app.current_org(), gen_random_uuid(), $1, 'approver', 'quarter end',
                 'pending', $1, 3600, now())",
            vec![],
        ),
        (
            "INSERT INTO app.api_tokens (org_id, id, token_hash, name, role, created_by,
                 created_at, expires_at)
             VALUES (app.current_org(), gen_random_uuid(), sha256('t'::bytea), 'ci', 'read_only',
                 $1, now(), now() + interval '1 day')",
            vec![],
        ),
        (
            "INSERT INTO app.scim_tokens (org_id, id, token_hash, name, created_by, created_at,
                 expires_at)
             VALUES (app.current_org(), gen_random_uuid(), sha256('s'::bytea), 'entra', $1, now(),
                 now() + interval '1 day')",
            vec![],
        ),
        (
            "INSERT INTO app.policy_changes (org_id, id, setting, value, state, requested_by,
                 created_at, expires_at)
             VALUES (app.current_org(), gen_random_uuid(), 'elevation_needs_second_admin', false,
                 'pending', $1, now(), now() + interval '1 day')",
            vec![],
        ),
        (
            "INSERT INTO app.invitations (org_id, id, user_id, token_hash, created_at,
                 expires_at)
             VALUES (app.current_org(), gen_random_uuid(), $1, sha256('i'::bytea), now(),
                 now() + interval '1 day')",
            vec![],
        ),
        (
            "INSERT INTO app.suppliers (org_id, id, name, country, status, created_by)
             VALUES (app.current_org(), gen_random_uuid(), 'Desks & Co', 'DE', 'active', $1)",
            vec![],
        ),
        (
            "INSERT INTO app.operator_grants (org_id, id, operator, reason, starts_at, ends_at,
                 approval_needed, approved_by, approved_at)
             VALUES (app.current_org(), gen_random_uuid(), 'alice', 'INC-7: a stuck import',
                 now(), now() + interval '1 hour', true, $1, now())",
            vec![],
        ),
        (
            "INSERT INTO app.supplier_invitations (org_id, id, supplier_id, token_hash,
                 contact_email, created_by, created_at, expires_at)
             SELECT app.current_org(), gen_random_uuid(), id, sha256('l'::bytea),
                 'billing@desks.test', $1, now(), now() + interval '1 day'
             FROM app.suppliers WHERE name = 'Desks & Co'",
            vec![],
        ),
        (
            "INSERT INTO app.contracts (org_id, id, supplier_id, title, status, current_version,
                 created_by, terminated_by, terminated_at)
             SELECT app.current_org(), gen_random_uuid(), id, 'Desks 2027', 'terminated', 1,
                 $1, $1, now()
             FROM app.suppliers WHERE name = 'Desks & Co'",
            vec![],
        ),
        (
            "INSERT INTO app.contract_versions (org_id, contract_id, version, value_cents,
                 starts_on, ends_on, terms, changed_by)
             SELECT app.current_org(), id, 1, 100, '2027-01-01', '2027-12-31', 'Net 30', $1
             FROM app.contracts WHERE title = 'Desks 2027'",
            vec![],
        ),
    ];
    for (sql, extra) in statements {
        let mut q = sqlx::query(sql).bind(p);
        for v in extra {
            q = q.bind(v.as_str().unwrap().to_owned());
        }
        q.execute(tx.conn()).await.unwrap();
    }
    tx.commit().await.unwrap();
    // The admin is not the person: their ids differ (the test relies on it below).
    assert_ne!(person, admin);
    (person, session)
}

fn as_text(v: &Value) -> String {
    v.to_string()
}

#[tokio::test]
async fn export_holds_every_row_about_the_person_and_nothing_of_anyone_else() {
    let w = world(hasher()).await;
    let (person, _) = seed_person(&w).await;
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::GET,
            &format!("/api/users/{person}/personal-data"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    let export = r.body;
    assert_eq!(export["format"], subject_rights::EXPORT_FORMAT);

    // Every table of the register that can name a user (the audit trail aside) has a row
    // about the person, and every one of them is in the export: a new table that can
    // name a user and is left out of the export, or of this seeding, fails here.
    let register: Vec<_> = procuhelp_server::database::schema()
        .personal_data()
        .copied()
        .collect();
    let tables = export["tables"].as_object().unwrap();
    for entry in &register {
        if entry.user_refs().next().is_none() || entry.retention == Retention::AuditTrail {
            continue;
        }
        let rows = tables
            .get(entry.table)
            .unwrap_or_else(|| panic!("{} is not in the export", entry.table));
        assert!(!rows.as_array().unwrap().is_empty(), "{}", entry.table);
    }
    let user = &tables["app.users"][0];
    assert_eq!(user["email"], email(0, Role::Requester));
    assert_eq!(user["given_name"], GIVEN);
    assert_eq!(tables["app.sso_identities"][0]["subject_key"], IDP_SUBJECT);
    assert_eq!(tables["app.recovery_codes"].as_array().unwrap().len(), 3);
    assert_eq!(export["mfa"]["recovery_codes_left"], 3);
    let requests = tables["app.purchase_requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["title"], "Standing desk");
    // The manifest lists each section with its count; the summary is for a person.
    let sections = export["manifest"]["sections"].as_array().unwrap();
    assert_eq!(sections.len(), tables.len() + 1);
    assert!(
        export["summary"]
            .as_str()
            .unwrap()
            .contains("app.purchase_requests: 1 record(s)")
    );

    // Credentials are never exported: no hash of a password, code or token.
    let text = as_text(&export);
    for secret in [
        "password_hash",
        "code_hash",
        "token_hash",
        "totp_sealed",
        "$argon2id$",
    ] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    // The person's own audit events, personal data opened: their sign-in.
    let events = export["audit_events"].as_array().unwrap();
    let login = events
        .iter()
        .find(|e| e["action"] == "auth.login_succeeded")
        .expect("the person's sign-in");
    assert_eq!(login["actor"]["id"], person.to_string());
    assert_eq!(login["personal"]["email"], email(0, Role::Requester));

    // Nothing of anyone else: not the approver's or the admin's address, not their
    // browser data (the admin's export request is an event about the person), not the
    // other organisation.
    for other in [
        email(0, Role::Approver),
        email(0, Role::Admin),
        email(1, Role::Requester),
        w.orgs[1].to_string(),
        w.users[&(1, Role::Requester)].to_string(),
    ] {
        assert!(!text.contains(&other), "{other} in the export");
    }

    // The export is itself audited, with counts only.
    let r = w
        .request(
            Method::GET,
            "/api/audit?action=personal_data.exported",
            Some(&admin),
            None,
        )
        .await;
    let recorded = r.body["events"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{}", r.text);
    assert_eq!(recorded[0]["target"], format!("user:{person}"));
    assert!(!recorded[0]["context"].to_string().contains(GIVEN));

    // The approver's export: the request they approved shows what they did, not the
    // requester's title or id.
    let approver_id = w.users[&(0, Role::Approver)];
    let r = w
        .request(
            Method::GET,
            &format!("/api/users/{approver_id}/personal-data"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let approved = &r.body["tables"]["app.purchase_requests"][0];
    assert_eq!(approved["approved_by"], approver_id.to_string());
    assert_eq!(approved["requested_by"], "another user");
    assert!(approved["title"].is_null(), "{approved}");
    assert!(!r.text.contains("Standing desk"));
    assert!(!r.text.contains(&email(0, Role::Requester)));

    // A user an admin created from some address: the creation event is about them, but
    // the admin's address and browser are not theirs to receive.
    let created = w
        .request_from(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({ "email": "new.person@org0.test", "display_name": "New Person" })),
            Some("203.0.113.9:4000".parse().unwrap()),
            &[("user-agent", "AdminBrowser/1.0")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let new_id = created.body["id"].as_str().unwrap().to_owned();
    let r = w
        .request(
            Method::GET,
            &format!("/api/users/{new_id}/personal-data"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("new.person@org0.test"));
    for admins in ["203.0.113.9", "AdminBrowser"] {
        assert!(!r.text.contains(admins), "{admins} in {}", r.text);
    }

    // Another organisation's user, an unknown id: the same 404. Other roles: 403.
    let other_org = w.users[&(1, Role::Requester)];
    let a = w
        .request(
            Method::GET,
            &format!("/api/users/{other_org}/personal-data"),
            Some(&admin),
            None,
        )
        .await;
    let b = w
        .request(
            Method::GET,
            &format!("/api/users/{}/personal-data", UserId::new()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!((a.status, a.text), (b.status, b.text));
    let approver = w.login(0, Role::Approver).await;
    let r = w
        .request(
            Method::GET,
            &format!("/api/users/{person}/personal-data"),
            Some(&approver),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    w.close().await;
}

fn needles() -> Vec<String> {
    [
        email(0, Role::Requester).as_str(),
        SCIM_USER_NAME,
        EXTERNAL_ID,
        GIVEN,
        FAMILY,
        IDP_SUBJECT,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Every row of every table, as a superuser sees them.
async fn stored_text(w: &World) -> String {
    let admin = w.scratch.admin_pool(1).await.unwrap();
    let everything = procuhelp_tenancy::testkit::rows_by_table(&admin)
        .await
        .unwrap();
    admin.close().await;
    format!("{everything:?}")
}

async fn erase(w: &World, admin: &Session, user: UserId) -> common::Reply {
    w.request(
        Method::POST,
        &format!("/api/users/{user}/erase"),
        Some(admin),
        None,
    )
    .await
}

#[tokio::test]
async fn erasure_leaves_a_former_user_and_is_idempotent_atomic_and_confined() {
    let w = world(hasher()).await;
    let (person, person_session) = seed_person(&w).await;
    let org = w.orgs[0];
    let admin = w.login(0, Role::Admin).await;
    let log = w.state.sdk.audit_log().cloned().unwrap();
    let register = w.state.sdk.personal_data().to_vec();
    // Every identifier is stored before (so that the search below means something).
    let before = stored_text(&w).await;
    for needle in needles() {
        assert!(before.contains(&needle), "{needle} was never stored");
    }

    // Interrupted half-way (its transaction never commits): the person is whole.
    {
        let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
        let event = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::PersonalDataErased,
            Outcome::Success,
        );
        subject_rights::erase(
            &mut tx,
            &log,
            &register,
            &Person::Id(person),
            event,
            w.state.sdk.now(),
        )
        .await
        .unwrap();
        drop(tx);
    }
    let r = w
        .request(Method::GET, "/api/session", Some(&person_session), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Another organisation's admin: the same 404 as an unknown id; nothing changes.
    let admin_b = w.login(1, Role::Admin).await;
    let a = erase(&w, &admin_b, person).await;
    let b = erase(&w, &admin_b, UserId::new()).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!((a.status, a.text), (b.status, b.text));
    // Not oneself, and not the last admin (through the library: the API refuses oneself
    // first).
    let me = w.users[&(0, Role::Admin)];
    let r = erase(&w, &admin, me).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    {
        let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
        let event = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::PersonalDataErased,
            Outcome::Success,
        );
        let err = subject_rights::erase(
            &mut tx,
            &log,
            &register,
            &Person::Id(me),
            event,
            w.state.sdk.now(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("last admin"), "{err}");
    }

    // An export and an erasure at once: the export is whole or refused, never half.
    let export_path = format!("/api/users/{person}/personal-data");
    let export = w.request(Method::GET, &export_path, Some(&admin), None);
    let erased = erase(&w, &admin, person);
    let (export, erased) = tokio::join!(export, erased);
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    match export.status {
        StatusCode::OK => {
            let user = &export.body["tables"]["app.users"][0];
            assert_eq!(user["email"], email(0, Role::Requester));
            assert_eq!(user["given_name"], GIVEN);
        }
        other => assert_eq!(other, StatusCode::NOT_FOUND, "{}", export.text),
    }
    let report = erased.body;
    assert_eq!(report["already_erased"], false);
    assert!(report["sessions_ended"].as_u64().unwrap() >= 1);
    assert!(report["audit_keys_erased"].as_u64().unwrap() >= 1);
    for table in [
        "app.sessions",
        "app.recovery_codes",
        "app.sso_identities",
        "app.scim_group_members",
    ] {
        assert!(
            report["rows_deleted"][table].as_u64().unwrap() >= 1,
            "{table}: {report}"
        );
    }

    // Their session is over; the former user cannot be re-enabled or exported.
    let r = w
        .request(Method::GET, "/api/session", Some(&person_session), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = w.try_login(0, &email(0, Role::Requester), PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{person}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = w
        .request(
            Method::GET,
            &format!("/api/users/{person}/personal-data"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Idempotent: again, nothing changes and nothing more is recorded.
    let again = erase(&w, &admin, person).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["already_erased"], true);

    // Records kept for the organisation still name the id, now "a former user"; nothing
    // in the live tables names the person any more.
    let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
    let (name, mail): (String, String) =
        sqlx::query_as("SELECT display_name, email FROM app.users WHERE id = $1")
            .bind(person.as_uuid())
            .fetch_one(tx.conn())
            .await
            .unwrap();
    assert_eq!(name, procuhelp_auth::directory::FORMER_USER);
    assert_eq!(mail, procuhelp_auth::directory::former_user_email(person));
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.purchase_requests WHERE requested_by = $1")
            .bind(person.as_uuid())
            .fetch_one(tx.conn())
            .await
            .unwrap();
    assert_eq!(kept, 1);
    tx.commit().await.unwrap();
    let after = stored_text(&w).await;
    for needle in needles() {
        assert!(!after.contains(&needle), "{needle} is still stored");
    }

    // The trail: the person's events stay, their personal data cannot be opened, the
    // erasure is recorded with counts, and every chain verifies.
    let r = w
        .request(
            Method::GET,
            &format!("/api/audit?actor={person}"),
            Some(&admin),
            None,
        )
        .await;
    let theirs = r.body["events"].as_array().unwrap();
    assert!(!theirs.is_empty(), "{}", r.text);
    assert!(
        theirs
            .iter()
            .filter(|e| !e["personal"].is_null())
            .all(|e| e["personal"] == "erased"),
        "{}",
        r.text
    );
    let r = w
        .request(
            Method::GET,
            "/api/audit?action=personal_data.erased",
            Some(&admin),
            None,
        )
        .await;
    let recorded = r.body["events"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{}", r.text);
    assert!(!recorded[0].to_string().contains(GIVEN));
    let keys = log.signing_keys().await.unwrap();
    let trust = if keys.is_empty() {
        procuhelp_audit::Trust::DangerouslyTrustEmbeddedKeys
    } else {
        procuhelp_audit::Trust::pinned(keys).unwrap()
    };
    for org in w.orgs {
        let report = log.verify_live(org, &trust).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
    }
    w.close().await;
}

/// `procuhelp-server gdpr VERB --data-dir D --org ORG --email EMAIL [--out OUT]`.
async fn gdpr(
    d: &str,
    org: &str,
    verb: &str,
    email: &str,
    out: Option<&str>,
) -> anyhow::Result<()> {
    let mut args = vec![
        "gdpr",
        verb,
        "--data-dir",
        d,
        "--org",
        org,
        "--email",
        email,
    ];
    if let Some(out) = out {
        args.extend(["--out", out]);
    }
    run(&args).await
}

/// The command line on the embedded default: export and erase by address, then neither a
/// `pg_dump` of the database nor a backup taken afterwards holds the person, and the
/// restore drill (which verifies every audit chain against the pinned keys) passes.
#[tokio::test]
async fn command_line_export_and_erasure_leave_nothing_in_a_dump_or_a_later_backup() {
    use procuhelp_tenancy::embedded::LocalCluster;
    procuhelp_server::tls::install_crypto_provider();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("ph-gdpr-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let repo = format!("/dev/shm/ph-gdpr-repo-{id}");
    let d = data.to_str().unwrap().to_owned();
    run(&["seed-demo", "--data-dir", &d]).await.unwrap();
    let person = "requester@a.demo.procuhelp.test";

    // The person gets SCIM attributes and an identity provider's subject.
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let live = common::superuser(&cluster, LocalCluster::DATABASE).await;
    let org: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.organisations WHERE name = 'Demo Org A'")
            .fetch_one(&live)
            .await
            .unwrap();
    sqlx::query(
        "UPDATE app.users SET scim_user_name = $2, scim_external_id = $3, given_name = $4,
             family_name = $5
         WHERE email = $1",
    )
    .bind(person)
    .bind(SCIM_USER_NAME)
    .bind(EXTERNAL_ID)
    .bind(GIVEN)
    .bind(FAMILY)
    .execute(&live)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO app.sso_identities (org_id, subject_key, user_id)
         SELECT org_id, $2, id FROM app.users WHERE email = $1",
    )
    .bind(person)
    .bind(IDP_SUBJECT)
    .execute(&live)
    .await
    .unwrap();
    live.close().await;
    let dump = plain_dump(&cluster, LocalCluster::DATABASE).await;
    let identifiers = [
        person,
        SCIM_USER_NAME,
        EXTERNAL_ID,
        GIVEN,
        FAMILY,
        IDP_SUBJECT,
    ];
    for needle in identifiers {
        assert!(dump.contains(needle), "{needle} is not in the dump before");
    }
    cluster.stop().await.unwrap();

    // Export by address: one file, 0600, never over an existing one.
    let org = org.to_string();
    let out = dir.join("export.json");
    let o = out.to_str().unwrap().to_owned();
    gdpr(&d, &org, "export", person, Some(&o)).await.unwrap();
    let export: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(export["tables"]["app.users"][0]["email"], person);
    assert_eq!(
        export["tables"]["app.sso_identities"][0]["subject_key"],
        IDP_SUBJECT
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = gdpr(&d, &org, "export", person, Some(&o))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("creating"), "{err:#}");
    // An unknown address: a clear error, and no file left behind.
    let missing = dir.join("missing.json");
    let err = gdpr(
        &d,
        &org,
        "export",
        "nobody@a.demo.procuhelp.test",
        missing.to_str(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("no person"), "{err:#}");
    assert!(!missing.exists());

    // Erase by address; a second time there is no such person any more.
    gdpr(&d, &org, "erase", person, None).await.unwrap();
    let err = gdpr(&d, &org, "erase", person, None).await.unwrap_err();
    assert!(format!("{err:#}").contains("already erased"), "{err:#}");

    // Neither the database nor a backup taken now holds any of it.
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let dump = plain_dump(&cluster, LocalCluster::DATABASE).await;
    for needle in identifiers {
        assert!(!dump.contains(needle), "{needle} is still in the dump");
    }
    cluster.stop().await.unwrap();
    run(&["backup", "run", "--data-dir", &d, "--repo", &repo])
        .await
        .unwrap();
    run(&[
        "backup",
        "restore",
        "--data-dir",
        &d,
        "--repo",
        &repo,
        "--into-database",
        "restored",
    ])
    .await
    .unwrap();
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let dump = plain_dump(&cluster, "restored").await;
    assert!(dump.contains("app.users"), "the restored dump is empty");
    for needle in identifiers {
        assert!(
            !dump.contains(needle),
            "{needle} is in the backup taken after"
        );
    }
    cluster.stop().await.unwrap();
    // The drill restores the backup and verifies every audit chain against the pinned
    // checkpoint keys: the erasure broke none.
    run(&["backup", "drill", "--data-dir", &d, "--repo", &repo])
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&repo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The retention purge deletes exactly what the register says has expired, in every
/// organisation, and records the counts (issue #14, point 5).
#[tokio::test]
async fn retention_purges_exactly_the_expired_rows() {
    let w = world(hasher()).await;
    let now = time::OffsetDateTime::now_utc();
    let days = |d: i64| now - time::Duration::days(d);
    // In each organisation: sessions that ended 31 days ago (gone: 30 days' grace) and 29
    // days ago (kept); SSO requests that expired 2 days ago (gone: 1 day) and just now
    // (kept).
    for (i, org) in w.orgs.into_iter().enumerate() {
        let user = w.users[&(i, Role::ReadOnly)].as_uuid();
        let mut tx = w.state.sdk.tenants().begin(org).await.unwrap();
        for (ended, n) in [(days(31), 1u8), (days(29), 2)] {
            sqlx::query(
                "INSERT INTO app.sessions (org_id, id, token_hash, user_id, stage, created_at,
                     last_seen_at, idle_secs, expires_at)
                 VALUES (app.current_org(), gen_random_uuid(), sha256($3), $1, 'full', $2, $2,
                     600, $2)",
            )
            .bind(user)
            .bind(ended)
            .bind(vec![n, i as u8])
            .execute(tx.conn())
            .await
            .unwrap();
        }
        for (expired, n) in [(days(2), 1u8), (now, 2)] {
            sqlx::query(
                "INSERT INTO app.sso_login_requests (org_id, lookup_hash, browser_hash, protocol,
                     expires_at)
                 VALUES (app.current_org(), sha256($2), sha256($2), 'oidc', $1)",
            )
            .bind(expired)
            .bind(vec![n, i as u8])
            .execute(tx.conn())
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // The sign-in throttle (no organisation): failures 3 days ago (gone: 2 days) and 1.
    for (last, n) in [(days(3), 1u8), (days(1), 2)] {
        sqlx::query(
            "INSERT INTO app.login_throttle (key_hash, failures, last_failure)
             VALUES (sha256($2), 1, $1)",
        )
        .bind(last)
        .bind(vec![n, 9])
        .execute(&w.runtime)
        .await
        .unwrap();
    }
    let superuser = w.scratch.admin_pool(1).await.unwrap();
    let count = |sql: &'static str| {
        let superuser = superuser.clone();
        async move {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&superuser).await.unwrap();
            n
        }
    };
    let sessions_before = count("SELECT count(*) FROM app.sessions").await;

    let log = w.state.sdk.audit_log().cloned().unwrap();
    // Unattributed personal data (a sign-in naming no account) of 40 days ago and today.
    let org = w.orgs[0];
    for age in [40, 0] {
        let event = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::LoginFailed,
            Outcome::Failure,
        )
        .at(days(age))
        .source(Some("198.51.100.7".parse().unwrap()), Some("probe"));
        log.append_batch(org, &[event]).await.unwrap();
    }
    let purged = procuhelp_server::retention::run_once(
        &w.owner,
        &w.runtime,
        &log,
        w.state.sdk.audit().as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(purged.rows["app.sessions"], 2, "{purged:?}");
    assert_eq!(purged.rows["app.sso_login_requests"], 2, "{purged:?}");
    assert_eq!(purged.rows["app.login_throttle"], 1, "{purged:?}");
    assert_eq!(
        purged.rows["app.audit_person_keys (unattributed)"], 1,
        "{purged:?}"
    );
    assert!(!purged.more_left);
    assert_eq!(
        count("SELECT count(*) FROM app.sessions").await,
        sessions_before - 2
    );
    assert_eq!(
        count("SELECT count(*) FROM app.sessions WHERE expires_at < now() - interval '30 days'")
            .await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM app.sso_login_requests").await,
        2
    );
    assert_eq!(count("SELECT count(*) FROM app.login_throttle").await, 1);
    // A second run finds nothing; each run is recorded with its counts.
    let again = procuhelp_server::retention::run_once(
        &w.owner,
        &w.runtime,
        &log,
        w.state.sdk.audit().as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(again.total(), 0);
    let recorded: Vec<_> = w
        .audit
        .events()
        .into_iter()
        .filter(|e| e.action == Action::PersonalDataPurged)
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[0].context["rows"]["app.sessions"], 2,
        "{}",
        recorded[0].context
    );
    // The old event's address can no longer be read; today's can.
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::GET,
            "/api/audit?action=auth.login_failed",
            Some(&admin),
            None,
        )
        .await;
    let failed = r.body["events"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{}", r.text);
    assert_eq!(failed[0]["personal"], "erased", "{}", r.text);
    assert_eq!(
        failed[1]["personal"]["source"], "198.51.100.7",
        "{}",
        r.text
    );
    superuser.close().await;
    w.close().await;
}
