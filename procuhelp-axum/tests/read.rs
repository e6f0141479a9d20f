//! `ReadAuth`: read-only routes in one round trip, driven with `oneshot` on a real
//! PostgreSQL as the runtime role. Same answers as `Authed`: the session's own
//! organisation's rows; the same 401 for a missing, malformed, unknown, other-organisation
//! or revoked credential (the shape checks without touching the database); 403 for a
//! change without the anti-CSRF header and for a missing permission; an elevation's use
//! recorded in the audit trail (the transactional path); API tokens through that path too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt as _;
use procuhelp_audit::{Action, MemorySink};
use procuhelp_auth::session::{self, COOKIE_NAME, Credential};
use procuhelp_auth::session_read::AuthenticatedRead;
use procuhelp_auth::{Permission, Role, api_token};
use procuhelp_axum::read::ReadAuth;
use procuhelp_axum::{CSRF_HEADER, Result, Sdk};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{FieldCipher, TenantDb};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;
use uuid::Uuid;

const EMAILS: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT u.email FROM app.users u WHERE u.org_id = tenant.org ORDER BY u.email",
);

async fn emails(auth: ReadAuth, permission: Permission) -> Result<axum::Json<Vec<String>>> {
    let read = auth
        .fetch_all(permission, &EMAILS.query_as::<(String,)>())
        .await?;
    Ok(axum::Json(read.rows.into_iter().map(|(e,)| e).collect()))
}

fn app(sdk: Sdk) -> Router {
    Router::new()
        .route(
            "/users",
            get(|a: ReadAuth| emails(a, Permission::ReadSuppliers))
                .post(|a: ReadAuth| emails(a, Permission::ReadSuppliers)),
        )
        .route(
            "/admin/users",
            get(|a: ReadAuth| emails(a, Permission::ManageUsers)),
        )
        .with_state(sdk)
}

fn sdk(pool: sqlx::PgPool, audit: Arc<MemorySink>, vault_dir: &std::path::Path) -> Sdk {
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(vault_dir).unwrap());
    let cipher = Arc::new(FieldCipher::new(
        TenantDb::new(pool.clone()),
        vault.clone(),
        &procuhelp_core::crypto::AwsLcAead,
    ));
    Sdk::builder(pool, cipher, vault, audit).build()
}

async fn call(app: &Router, method: &str, headers: &[(&str, String)]) -> (StatusCode, String) {
    call_path(app, method, "/users", headers).await
}

async fn call_path(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn cookie(c: &Credential) -> (&'static str, String) {
    ("cookie", format!("{COOKIE_NAME}={}", c.expose()))
}

struct World {
    scratch: ScratchDb,
    db: TenantDb,
    a: OrgId,
    b: OrgId,
    now: OffsetDateTime,
}

impl World {
    async fn user(&self, org: OrgId, email: &str, role: Role) -> UserId {
        common::create_user(&self.db, org, email, role, self.now).await
    }

    async fn session(&self, org: OrgId, user: UserId) -> (Uuid, Credential) {
        common::open_session(&self.db, org, user, self.now).await
    }
}

#[tokio::test]
async fn read_auth_answers_as_authed_does_in_one_statement() {
    let schema = Schema::new().with(procuhelp_auth::MIGRATIONS);
    let (scratch, [a, b]) = common::scratch_with_orgs(&schema, ["A", "B"]).await;
    let pool = scratch.runtime_pool(4).await.unwrap();
    let w = World {
        db: TenantDb::new(pool.clone()),
        scratch,
        a,
        b,
        now: OffsetDateTime::now_utc(),
    };
    let me = w.user(w.a, "a1@a.test", Role::ReadOnly).await;
    w.user(w.a, "a2@a.test", Role::Admin).await;
    let them = w.user(w.b, "b1@b.test", Role::Admin).await;
    let (_, mine) = w.session(w.a, me).await;
    let (_, theirs) = w.session(w.b, them).await;

    let vault_dir = std::env::temp_dir().join(format!("ph-axum-read-{}", Uuid::new_v4()));
    let audit = Arc::new(MemorySink::new());
    let app = app(sdk(pool.clone(), audit.clone(), &vault_dir));

    // The session's organisation's rows, and only those.
    let (status, body) = call(&app, "GET", &[cookie(&mine)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"["a1@a.test","a2@a.test"]"#);

    // One 401 for every refused credential.
    let (_, unauthenticated) = call(&app, "GET", &[]).await;
    let b_as_a = Credential::parse(&theirs.expose().replacen(
        &w.b.to_string(),
        &w.a.to_string(),
        1,
    ))
    .unwrap();
    let (revoked_id, revoked) = w.session(w.a, me).await;
    let mut tx = w.db.begin(w.a).await.unwrap();
    session::revoke(&mut tx, revoked_id, None, w.now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for headers in [
        vec![],
        vec![("cookie", format!("{COOKIE_NAME}=not-a-credential"))],
        vec![cookie(&b_as_a)],
        vec![cookie(&revoked)],
        vec![cookie(&mine), cookie(&theirs)], // two session cookies
    ] {
        let (status, body) = call(&app, "GET", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, unauthenticated);
    }
    assert!(unauthenticated.contains("\"unauthenticated\""));

    // The shape checks run before the database is asked: a closed pool answers them too.
    let closed = w.scratch.runtime_pool(1).await.unwrap();
    closed.close().await;
    let offline = app_with_closed(closed, audit.clone(), &vault_dir);
    for headers in [vec![], vec![("cookie", format!("{COOKIE_NAME}=x.y"))]] {
        let (status, body) = call(&offline, "GET", &headers).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, unauthenticated.clone())
        );
    }

    // A cookie-authenticated change needs the anti-CSRF header (403 before the database).
    let (status, body) = call(&offline, "POST", &[cookie(&mine)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("\"csrf\""));
    let (status, _) = call(
        &app,
        "POST",
        &[cookie(&mine), (CSRF_HEADER, mine.csrf_token())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A read-only user may not read what needs manage_users.
    let (status, body) = call_path(&app, "GET", "/admin/users", &[cookie(&mine)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Under an elevation to admin they may, through the transactional path that records
    // the elevation's use before the rows are read.
    let elevation = Uuid::now_v7();
    let mut tx = w.db.begin(w.a).await.unwrap();
    sqlx::query(
        "INSERT INTO app.elevations (org_id, id, user_id, role, reason, state, requested_by,
                                     duration_secs, created_at, starts_at, expires_at)
         VALUES ($1, $2, $3, 'admin', 'incident 42', 'active', $3, 3600, $4, $4, $5)",
    )
    .bind(w.a.as_uuid())
    .bind(elevation)
    .bind(me.as_uuid())
    .bind(w.now - Duration::minutes(1))
    .bind(w.now + Duration::minutes(30))
    .execute(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, body) = call_path(&app, "GET", "/admin/users", &[cookie(&mine)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"["a1@a.test","a2@a.test"]"#);
    let used: Vec<_> = audit
        .events()
        .into_iter()
        .filter(|e| e.action == Action::ElevationUsed)
        .collect();
    assert_eq!(used.len(), 1);
    assert_eq!(
        used[0].target.as_deref(),
        Some(format!("elevation:{elevation}").as_str())
    );

    // An API token reads through the transactional path, with its role.
    let mut tx = w.db.begin(w.a).await.unwrap();
    let (_, token) = api_token::issue(
        &mut tx,
        "reporting",
        Role::ReadOnly,
        Duration::days(1),
        me,
        None,
        w.now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let bearer = ("authorization", format!("Bearer {}", token.expose()));
    let (status, body) = call(&app, "GET", std::slice::from_ref(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"["a1@a.test","a2@a.test"]"#);
    let (status, _) = call_path(&app, "GET", "/admin/users", &[bearer]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    w.db.close().await;
    w.scratch.drop_all().await.unwrap();
    std::fs::remove_dir_all(&vault_dir).ok();
}

fn app_with_closed(
    pool: sqlx::PgPool,
    audit: Arc<MemorySink>,
    vault_dir: &std::path::Path,
) -> Router {
    app(sdk(pool, audit, vault_dir))
}
