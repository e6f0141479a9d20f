//! A test world for the adapter: a scratch database with the SDK's schema, two
//! organisations with a user of each role, and an embedder's own state holding an `Sdk`
//! (the routers are mounted the way an embedder mounts them, and driven with `oneshot`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use procuhelp_audit::MemorySink;
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::session::{self, Credential, NewSession, SessionPolicy, SessionStage};
use procuhelp_auth::{Permission, Role};
use procuhelp_axum::{Authed, Limits, Result, Sdk, harden};
use procuhelp_core::{ManualClock, OrgId, SecretText, UserId};
use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{FieldCipher, TenantDb};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const PASSWORD: &str = "correct horse battery staple";

/// The embedder's state: the SDK's, and something of its own.
#[derive(Debug, Clone)]
pub struct EmbedderState {
    pub sdk: Sdk,
    pub greeting: &'static str,
}

impl FromRef<EmbedderState> for Sdk {
    fn from_ref(state: &EmbedderState) -> Sdk {
        state.sdk.clone()
    }
}

pub struct World {
    pub scratch: ScratchDb,
    pub sdk: Sdk,
    pub app: Router,
    pub clock: Arc<ManualClock>,
    pub audit: Arc<MemorySink>,
    pub orgs: [OrgId; 2],
    pub runtime: sqlx::PgPool,
}

pub fn email(org: usize, role: Role) -> String {
    format!("{}@org{org}.test", role.as_str().replace('_', "-"))
}

/// The embedder's own route: needs `read_suppliers`, answers with its greeting.
async fn things(
    axum::extract::State(greeting): axum::extract::State<&'static str>,
    mut authed: Authed,
) -> Result<axum::Json<Value>> {
    authed.require(Permission::ReadSuppliers).await?;
    let (org,): (uuid::Uuid,) = sqlx::query_as("SELECT app.current_org()")
        .fetch_one(authed.tx().await?.conn())
        .await?;
    authed.commit().await?;
    Ok(axum::Json(json!({ "greeting": greeting, "org": org })))
}

/// A change of the embedder's: any signed-in principal.
async fn touch(mut authed: Authed) -> Result<axum::Json<Value>> {
    authed.require_signed_in().await?;
    authed.commit().await?;
    Ok(axum::Json(json!({ "ok": true })))
}

impl FromRef<EmbedderState> for &'static str {
    fn from_ref(state: &EmbedderState) -> &'static str {
        state.greeting
    }
}

/// The embedder's app: its own routes and the SDK's account and admin routers, hardened.
pub fn app(sdk: Sdk) -> Router {
    let routes = Router::new()
        .route("/api/things", get(things))
        .route("/api/touch", post(touch))
        .merge(procuhelp_axum::account::routes())
        .merge(procuhelp_axum::admin::routes())
        .merge(procuhelp_axum::audit::routes());
    harden(
        routes.with_state(EmbedderState {
            sdk,
            greeting: "hello",
        }),
        Limits::default(),
    )
}

/// An `Sdk` on `pool` with the world's parts.
pub fn sdk_on(pool: sqlx::PgPool, sdk: &Sdk) -> Sdk {
    Sdk::builder(
        pool,
        sdk.cipher().clone(),
        sdk.vault().clone(),
        sdk.audit().clone(),
    )
    .clock(sdk.clock().clone())
    .password_hasher(PasswordHasher::for_tests())
    .build()
}

/// A scratch database migrated with `schema` and two organisations named `names`.
pub async fn scratch_with_orgs(schema: &Schema, names: [&str; 2]) -> (ScratchDb, [OrgId; 2]) {
    let scratch = ScratchDb::migrated_with(schema).await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let mut orgs = Vec::new();
    for name in names {
        let org = procuhelp_tenancy::create_organisation(&owner, name)
            .await
            .unwrap();
        orgs.push(org);
    }
    owner.close().await;
    (scratch, [orgs[0], orgs[1]])
}

/// Creates a user without a password in `org` at `at` (committed).
pub async fn create_user(
    db: &TenantDb,
    org: OrgId,
    email: &str,
    role: Role,
    at: time::OffsetDateTime,
) -> UserId {
    let mut tx = db.begin(org).await.unwrap();
    let user = directory::create(
        &mut tx,
        NewUser {
            email: Email::parse(email).unwrap(),
            display_name: "u".into(),
            role: Some(role),
            password_hash: None,
        },
        at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    user
}

/// Opens a full password session of `user` in `org` at `at` (committed).
pub async fn open_session(
    db: &TenantDb,
    org: OrgId,
    user: UserId,
    at: time::OffsetDateTime,
) -> (uuid::Uuid, Credential) {
    let mut tx = db.begin(org).await.unwrap();
    let opened = session::open(
        &mut tx,
        NewSession {
            user,
            stage: SessionStage::Full,
            amr: &["pwd"],
            policy: SessionPolicy::default(),
            source: None,
            user_agent: None,
        },
        at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    opened
}

pub async fn world() -> World {
    let schema = Schema::new()
        .with(procuhelp_auth::MIGRATIONS)
        .with(procuhelp_audit::MIGRATIONS);
    let (scratch, [a, b]) = scratch_with_orgs(&schema, ["Org A", "Org B"]).await;
    let runtime = scratch.runtime_pool(4).await.unwrap();
    let vault_dir =
        std::env::temp_dir().join(format!("ph-axum-vault-{}", uuid::Uuid::new_v4().simple()));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let key_pool = scratch.runtime_pool(2).await.unwrap();
    let cipher = Arc::new(FieldCipher::new(
        TenantDb::new(key_pool),
        vault.clone(),
        &procuhelp_core::crypto::AwsLcAead,
    ));
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-25 09:00 UTC),
    ));
    let audit = Arc::new(MemorySink::new());
    let sdk = Sdk::builder(runtime.clone(), cipher, vault, audit.clone())
        .clock(clock.clone())
        .password_hasher(PasswordHasher::for_tests())
        .build();
    let phc = PasswordHasher::for_tests()
        .hash(&SecretText::new(PASSWORD.to_owned()))
        .unwrap();
    for (i, org) in [a, b].into_iter().enumerate() {
        let mut tx = sdk.tenants().begin(org).await.unwrap();
        for role in Role::ALL {
            directory::create(
                &mut tx,
                NewUser {
                    email: Email::parse(&email(i, role)).unwrap(),
                    display_name: format!("{role} {i}"),
                    role: Some(role),
                    password_hash: Some(phc.clone()),
                },
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    World {
        scratch,
        app: app(sdk.clone()),
        sdk,
        clock,
        audit,
        orgs: [a, b],
        runtime,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A signed-in client: the cookie value and the CSRF token to echo.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub fn cookie(value: &str) -> String {
    format!("{}={value}", procuhelp_auth::session::COOKIE_NAME)
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub fn request(
    method: Method,
    path: &str,
    session: Option<&Session>,
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(s) = session {
        req = req
            .header(header::COOKIE, cookie(&s.cookie))
            .header(procuhelp_axum::CSRF_HEADER, &s.csrf);
    }
    match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

impl World {
    pub async fn login(&self, org: usize, role: Role) -> Session {
        self.login_on(&self.app, org, role).await
    }

    /// Signs the user of `org` with `role` in through `app` (whose routes include the
    /// account routes): the session cookie's value and its CSRF token.
    pub async fn login_on(&self, app: &Router, org: usize, role: Role) -> Session {
        let reply = send(
            app,
            request(
                Method::POST,
                "/api/login",
                None,
                Some(json!({
                    "org": self.orgs[org].to_string(),
                    "email": email(org, role),
                    "password": PASSWORD,
                })),
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let set = reply
            .headers
            .get(header::SET_COOKIE)
            .expect("a Set-Cookie header")
            .to_str()
            .unwrap();
        let value = set
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        Session {
            cookie: value,
            csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A runtime-role pool of `size` connections that counts the PostgreSQL sessions it
    /// opens.
    pub async fn counting_pool(&self, size: u32) -> (sqlx::PgPool, Arc<AtomicUsize>) {
        let opened = Arc::new(AtomicUsize::new(0));
        let counter = opened.clone();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(size)
            .after_connect(move |_, _| {
                let counter = counter.clone();
                Box::pin(async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            })
            .connect_with(self.scratch.options_for(self.scratch.runtime_role().name()))
            .await
            .unwrap();
        (pool, opened)
    }

    pub async fn close(self) {
        self.runtime.close().await;
        self.scratch.drop_all().await.unwrap();
    }
}

/// An `Sdk` whose database is never reached (port 1): whatever it answers was decided
/// before any connection was asked for.
pub fn offline_sdk() -> Sdk {
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect_lazy_with(opts);
    let vault_dir =
        std::env::temp_dir().join(format!("ph-axum-offline-{}", uuid::Uuid::new_v4().simple()));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let cipher = Arc::new(FieldCipher::new(
        TenantDb::new(pool.clone()),
        vault.clone(),
        &procuhelp_core::crypto::AwsLcAead,
    ));
    Sdk::builder(pool, cipher, vault, Arc::new(MemorySink::new()))
        .password_hasher(PasswordHasher::for_tests())
        .build()
}
