//! The minimal app end to end, in-process (`tower::ServiceExt::oneshot`) on a real
//! PostgreSQL scratch database migrated with the app's own `schema()` and served by the
//! app's own `app()` — the wiring the README shows, nothing added for the tests.
//!
//! It proves what the app gets by mounting the SDK: sign-in with a password and TOTP,
//! claims isolated per organisation by the database, its own action in the audit trail,
//! SSO and SCIM mounted and guarded, hardened responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use procuhelp::audit::AuditPipeline;
use procuhelp::auth::directory::{self, Email, NewUser};
use procuhelp::auth::password::PasswordHasher;
use procuhelp::core::SecretText;
use procuhelp::prelude::*;
use procuhelp::tenancy::testkit::ScratchDb;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PASSWORD: &str = "correct horse battery staple";
const IDP_CERT: &str = include_str!("../../../procuhelp-auth/tests/data/saml/unit-test-idp.crt");

/// Two organisations with an admin, a requester and a read-only user each, and the app.
struct World {
    scratch: ScratchDb,
    app: Router,
    pipeline: AuditPipeline,
    orgs: [OrgId; 2],
    data: PathBuf,
}

/// A signed-in browser: the session cookie and the CSRF token it echoes.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

fn email(org: usize, role: Role) -> String {
    format!("{}@org{org}.example", role.as_str().replace('_', "-"))
}

async fn world() -> World {
    let scratch = ScratchDb::migrated_with(&procuhelp_minimal::schema())
        .await
        .unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let mut orgs = Vec::new();
    for name in ["Org A", "Org B"] {
        orgs.push(
            procuhelp::tenancy::create_organisation(&owner, name)
                .await
                .unwrap(),
        );
    }
    owner.close().await;
    let seed = TenantDb::new(scratch.runtime_pool(1).await.unwrap());
    let phc = PasswordHasher::default()
        .hash(&SecretText::new(PASSWORD.to_owned()))
        .unwrap();
    for (i, org) in orgs.iter().enumerate() {
        let mut tx = seed.begin(*org).await.unwrap();
        for role in [Role::Admin, Role::Requester, Role::ReadOnly] {
            let user = NewUser {
                email: Email::parse(&email(i, role)).unwrap(),
                display_name: format!("{role} {i}"),
                role: Some(role),
                password_hash: Some(phc.clone()),
            };
            directory::create(&mut tx, user, time::OffsetDateTime::now_utc())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    seed.close().await;
    let data = std::env::temp_dir().join(format!("ph-minimal-{}", uuid::Uuid::new_v4().simple()));
    let runtime = scratch.options_for(scratch.runtime_role().name());
    let (app, pipeline) = procuhelp_minimal::app(&runtime, &data).unwrap();
    World {
        scratch,
        app,
        pipeline,
        orgs: [orgs[0], orgs[1]],
        data,
    }
}

impl World {
    async fn close(self) {
        let stats = self.pipeline.shutdown().await;
        assert_eq!(stats.unsigned_chains, 0, "every chain signed at shutdown");
        drop(self.app);
        self.scratch.drop_all().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.data);
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(s) = session {
            req = req
                .header(
                    header::COOKIE,
                    format!("{}={}", procuhelp::auth::session::COOKIE_NAME, s.cookie),
                )
                .header(procuhelp::axum::CSRF_HEADER, &s.csrf);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    async fn password(&self, org: usize, role: Role) -> Reply {
        let body = json!({ "org": self.orgs[org].to_string(), "email": email(org, role), "password": PASSWORD });
        self.call(Method::POST, "/api/login", None, Some(body))
            .await
    }

    /// Signs in with the password only (no second factor enrolled).
    async fn login(&self, org: usize, role: Role) -> Session {
        let reply = self.password(org, role).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["stage"], "full", "{:?}", reply.body);
        session_from(&reply)
    }
}

fn session_from(reply: &Reply) -> Session {
    let set = reply.headers[header::SET_COOKIE].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().split_once('=').unwrap().1;
    Session {
        cookie: cookie.to_owned(),
        csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// The authenticator app's code for `uri` at `at`.
fn totp(uri: &str, at: time::OffsetDateTime) -> String {
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    totp.generate(u64::try_from(at.unix_timestamp()).unwrap())
}

/// Enrols TOTP for the org's admin and signs in again with password + code: the session
/// the rest of the test works with.
async fn sign_in_with_totp(w: &World, org: usize) -> Session {
    let first = w.login(org, Role::Admin).await;
    let enrol = w
        .call(Method::POST, "/api/mfa/enrol", Some(&first), None)
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{:?}", enrol.body);
    let uri = enrol.body["otpauth_uri"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc();
    let code = json!({ "code": totp(&uri, now) });
    let confirm = w
        .call(Method::POST, "/api/mfa/confirm", Some(&first), Some(code))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.body);
    assert_eq!(confirm.body["recovery_codes"].as_array().unwrap().len(), 10);

    // The password alone now stops at the second factor: claims are refused.
    let half = w.password(org, Role::Admin).await;
    assert_eq!(half.body["stage"], "second_factor", "{:?}", half.body);
    let half = session_from(&half);
    let refused = w.call(Method::GET, "/api/claims", Some(&half), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["code"], "second_factor_required");
    let wrong = w
        .call(
            Method::POST,
            "/api/login/mfa",
            Some(&half),
            Some(json!({ "code": "000000" })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // The next time step (within the ±1 step the verifier allows; the confirmation's
    // step is spent and never accepted twice).
    let next = json!({ "code": totp(&uri, now + time::Duration::seconds(30)) });
    let full = w
        .call(Method::POST, "/api/login/mfa", Some(&half), Some(next))
        .await;
    assert_eq!(full.status, StatusCode::OK, "{:?}", full.body);
    let full = session_from(&full);
    let me = w.call(Method::GET, "/api/session", Some(&full), None).await;
    assert!(
        me.body["amr"].as_array().unwrap().contains(&json!("mfa")),
        "{:?}",
        me.body
    );
    full
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_signed_in_with_totp_isolated_per_org_and_audited() {
    let w = world().await;
    let alice = sign_in_with_totp(&w, 0).await;

    let created = w
        .call(
            Method::POST,
            "/api/claims",
            Some(&alice),
            Some(json!({ "title": "Train to Lyon", "amount_cents": 8450 })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let mine = w
        .call(
            Method::GET,
            &format!("/api/claims/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (mine.status, &mine.body["title"]),
        (StatusCode::OK, &json!("Train to Lyon"))
    );

    // Another organisation's admin: the claim does not exist for them.
    let bob = w.login(1, Role::Admin).await;
    let theirs = w
        .call(Method::GET, &format!("/api/claims/{id}"), Some(&bob), None)
        .await;
    assert_eq!(
        (theirs.status, &theirs.body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let list = w.call(Method::GET, "/api/claims", Some(&bob), None).await;
    assert_eq!(
        (list.status, list.body.clone()),
        (StatusCode::OK, json!([]))
    );
    // Naming org A in the request changes nothing: the tenant is the credential's.
    let body = json!({ "title": "Sneaky", "amount_cents": 1, "org_id": w.orgs[0].to_string() });
    let sneaky = w
        .call(Method::POST, "/api/claims", Some(&bob), Some(body))
        .await;
    assert_eq!(
        sneaky.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields refused"
    );
    let list = w.call(Method::GET, "/api/claims", Some(&alice), None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{:?}", list.body);

    // The trail has the claim, under the app's own action, by its claimant, in org A's
    // chain only.
    let trail = w
        .call(
            Method::GET,
            "/api/audit?action=app.claim.created",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{:?}", trail.body);
    let events = trail.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["action"], "app.claim.created");
    assert_eq!(events[0]["target"], format!("expense_claim:{id}"));
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[0]["actor"]["id"], created.body["claimed_by"]);
    let other = w
        .call(
            Method::GET,
            "/api/audit?action=app.claim.created",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(other.body["events"], json!([]));
    // Sign-in and MFA went to the same trail.
    let mfa = w
        .call(
            Method::GET,
            "/api/audit?action=auth.mfa_enabled",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(mfa.body["events"].as_array().unwrap().len(), 1);
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_credentials_and_csrf_are_the_sdks() {
    let w = world().await;
    let reader = w.login(0, Role::ReadOnly).await;
    let new = || Some(json!({ "title": "Taxi", "amount_cents": 2300 }));
    let r = w
        .call(Method::POST, "/api/claims", Some(&reader), new())
        .await;
    assert_eq!(
        (r.status, &r.body["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let requester = w.login(0, Role::Requester).await;
    let r = w
        .call(Method::GET, "/api/audit", Some(&requester), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the trail is the admins'");
    // A cookie without the anti-CSRF header: 403 before anything runs.
    let no_csrf = Session {
        csrf: String::new(),
        ..requester.clone()
    };
    let r = w
        .call(Method::POST, "/api/claims", Some(&no_csrf), new())
        .await;
    assert_eq!(
        (r.status, &r.body["code"]),
        (StatusCode::FORBIDDEN, &json!("csrf"))
    );
    // No credential, or a forged one: the same 401.
    for session in [
        None,
        Some(&Session {
            cookie: "forged".into(),
            csrf: "x".into(),
        }),
    ] {
        let r = w.call(Method::GET, "/api/claims", session, None).await;
        assert_eq!(
            (r.status, &r.body["code"]),
            (StatusCode::UNAUTHORIZED, &json!("unauthenticated"))
        );
    }
    let r = w
        .call(Method::POST, "/api/claims", Some(&requester), new())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let bad = Some(json!({ "title": "Taxi", "amount_cents": -5 }));
    let r = w
        .call(Method::POST, "/api/claims", Some(&requester), bad)
        .await;
    assert_eq!(
        (r.status, &r.body["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("amount_cents"))
    );
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_routes_answer_as_their_table_says() {
    let w = world().await;
    let table = procuhelp_minimal::claims::table::<procuhelp_minimal::AppState>();
    let missing = uuid::Uuid::new_v4();
    for role in [Role::Admin, Role::Requester, Role::ReadOnly] {
        let session = w.login(1, role).await;
        for e in table.endpoints() {
            let path = e.path.replace("{id}", &missing.to_string());
            let method: Method = e.method.parse().unwrap();
            let body =
                (method == Method::POST).then(|| json!({ "title": "Taxi", "amount_cents": 900 }));
            let r = w.call(method, &path, Some(&session), body).await;
            let Access::Needs(permission) = e.access else {
                panic!("every claim route needs a permission: {e:?}");
            };
            if role.allows(permission) {
                assert!(
                    r.status.is_success() || r.status == StatusCode::NOT_FOUND,
                    "{role} {e:?}: {}",
                    r.status
                );
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} {e:?}");
            }
        }
    }
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_and_scim_are_mounted_and_every_response_is_hardened() {
    let w = world().await;
    let admin = w.login(0, Role::Admin).await;

    // SSO: an admin configures SAML; org A's sign-in page offers it, org B's does not.
    let base = format!("https://claims.example.test/sso/{}", w.orgs[0]);
    let saml = json!({
        "connection": {
            "idp_entity_id": "https://idp.example.test/",
            "idp_sso_url": "https://idp.example.test/saml2",
            "idp_certificates": [IDP_CERT],
            "sp_entity_id": format!("{base}/saml"),
            "acs_url": format!("{base}/saml/acs"),
        },
        "group_roles": { "finance": "requester" },
    });
    let r = w
        .call(Method::PUT, "/api/sso/saml", Some(&admin), Some(saml))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = w
        .call(Method::GET, &format!("/sso/{}", w.orgs[0]), None, None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains(&format!("/sso/{}/saml/start", w.orgs[0])),
        "{}",
        page.text
    );
    let other = w
        .call(Method::GET, &format!("/sso/{}", w.orgs[1]), None, None)
        .await;
    assert!(!other.text.contains("/saml/start"));
    let metadata = format!("/sso/{}/saml/metadata", w.orgs[0]);
    let r = w.call(Method::GET, &metadata, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(&format!("{base}/saml")));

    // SCIM: refused without the org's token; with it, the IdP provisions a user.
    let scim_users = format!("/scim/v2/{}/Users", w.orgs[0]);
    let r = w.call(Method::GET, &scim_users, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let issued = w
        .call(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "entra", "days": 30 })),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let token = issued.body["token"].as_str().unwrap();
    let scim = |method: Method, path: &str, body: Option<Value>| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/scim+json");
        req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap()
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "carol@orga.example",
        "externalId": "carol-1",
        "active": true,
        "emails": [{ "value": "carol@orga.example", "primary": true }],
    });
    let r = w.send(scim(Method::POST, &scim_users, Some(user))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = w.send(scim(Method::GET, &scim_users, None)).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    // The token is org A's: org B's SCIM endpoint does not take it.
    let r = w
        .send(scim(
            Method::GET,
            &format!("/scim/v2/{}/Users", w.orgs[1]),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Every response carries the hardened headers, errors and HTML pages included.
    for r in [
        w.call(Method::GET, "/api/claims", None, None).await,
        w.call(Method::GET, &format!("/sso/{}", w.orgs[0]), None, None)
            .await,
        w.call(Method::GET, "/no/such/route", None, None).await,
    ] {
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(r.headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // The body limit: 1 MiB by default.
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = w
        .call(
            Method::POST,
            "/api/login",
            None,
            Some(json!({ "org": huge })),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    w.close().await;
}
