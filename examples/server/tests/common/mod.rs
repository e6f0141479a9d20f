//! A test world: a scratch database with two organisations, a user of each role in
//! each, the full router on an injected clock, and an in-memory audit sink.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use procuhelp_audit::{Action, MemorySink};
use procuhelp_auth::Role;
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_core::{ManualClock, OrgId, SecretText, UserId};
use procuhelp_server::app::{AppState, Limits};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct World {
    pub scratch: ScratchDb,
    pub app: Router,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub audit: Arc<MemorySink>,
    pub orgs: [OrgId; 2],
    pub users: HashMap<(usize, Role), UserId>,
    pub runtime: sqlx::PgPool,
    pub owner: sqlx::PgPool,
}

/// A signed-in client: the cookie value and the CSRF token to echo.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub fn email(org: usize, role: Role) -> String {
    format!("{}@org{org}.test", role.as_str().replace('_', "-"))
}

pub async fn world(hasher: PasswordHasher) -> World {
    let scratch = ScratchDb::migrated_with(&procuhelp_server::database::schema())
        .await
        .unwrap();
    let owner = scratch.owner_pool(2).await.unwrap();
    let a = procuhelp_tenancy::create_organisation(&owner, "Org A")
        .await
        .unwrap();
    let b = procuhelp_tenancy::create_organisation(&owner, "Org B")
        .await
        .unwrap();
    let runtime = scratch.runtime_pool(8).await.unwrap();
    let vault_dir =
        std::env::temp_dir().join(format!("ph-auth-vault-{}", uuid::Uuid::new_v4().simple()));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    // Key management has a pool of its own, as in the server: a request holding its
    // transaction never waits for a second connection of the same pool.
    let key_pool = scratch.runtime_pool(2).await.unwrap();
    let cipher = Arc::new(procuhelp_server::keys::field_cipher(
        TenantDb::new(key_pool),
        vault.clone(),
    ));
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-25 09:00 UTC),
    ));
    let audit = Arc::new(MemorySink::new());
    let audit_pool = scratch.runtime_pool(2).await.unwrap();
    let audit_log = procuhelp_audit::PgAuditSink::new(TenantDb::new(audit_pool), vault.clone());
    // Events go to the real chain and to memory (for counting); both must succeed.
    let sinks: Vec<Arc<dyn procuhelp_audit::AuditSink>> = vec![
        // As in `serve`: unauthenticated refusals are counted, not all stored.
        Arc::new(procuhelp_audit::RefusalAggregator::new(audit_log.clone())),
        audit.clone(),
    ];
    let fan_out = Arc::new(procuhelp_audit::FanOutSink::new(sinks));
    let phc = hasher.hash(&SecretText::new(PASSWORD.to_owned())).unwrap();
    let state = AppState::assemble(
        runtime.clone(),
        cipher,
        vault,
        fan_out,
        clock.clone(),
        hasher,
    )
    .with_audit_log(audit_log);
    let mut users = HashMap::new();
    for (i, org) in [a, b].into_iter().enumerate() {
        let mut tx = state.sdk.tenants().begin(org).await.unwrap();
        for role in Role::ALL {
            let id = directory::create(
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
            users.insert((i, role), id);
        }
        tx.commit().await.unwrap();
    }
    let app = procuhelp_server::app::app(state.clone(), Limits::default());
    World {
        scratch,
        app,
        state,
        clock,
        audit,
        orgs: [a, b],
        users,
        runtime,
        owner,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error message: the JSON `error`, or a page's `data-error` element's text.
    pub fn error(&self) -> &str {
        if let Some(e) = self.body["error"].as_str() {
            return e;
        }
        let Some(at) = self.text.find("data-error=\"") else {
            return "";
        };
        let rest = &self.text[at..];
        let Some(open) = rest.find('>') else {
            return "";
        };
        let text = &rest[open + 1..];
        &text[..text.find('<').unwrap_or(text.len())]
    }
}

impl World {
    pub async fn close(self) {
        self.runtime.close().await;
        self.owner.close().await;
        self.scratch.drop_all().await.unwrap();
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
    ) -> Reply {
        self.request_from(method, path, session, body, None, &[])
            .await
    }

    pub async fn request_from(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
        source: Option<SocketAddr>,
        extra_headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(s) = session {
            req = req
                .header(
                    header::COOKIE,
                    format!("{}={}", procuhelp_auth::session::COOKIE_NAME, s.cookie),
                )
                .header("x-csrf-token", &s.csrf);
        }
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let mut req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        if let Some(addr) = source {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn try_login(&self, org: usize, email: &str, password: &str) -> Reply {
        self.request(
            Method::POST,
            "/api/login",
            None,
            Some(
                json!({ "org": self.orgs[org].to_string(), "email": email, "password": password }),
            ),
        )
        .await
    }

    pub async fn login(&self, org: usize, role: Role) -> Session {
        let reply = self.try_login(org, &email(org, role), PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        session_from(&reply)
    }

    /// The organisation's audit export (JSON lines), through the API.
    pub async fn export(&self, session: &Session) -> Vec<u8> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri("/api/audit/export")
            .header(
                header::COOKIE,
                format!(
                    "{}={}",
                    procuhelp_auth::session::COOKIE_NAME,
                    session.cookie
                ),
            );
        req = req.header("x-csrf-token", &session.csrf);
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    pub fn count(&self, action: Action) -> usize {
        self.audit
            .events()
            .iter()
            .filter(|e| e.action == action)
            .count()
    }
}

/// The session a reply set (cookie) and its CSRF token.
pub fn session_from(reply: &Reply) -> Session {
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

/// A browser's request to the router: optional cookie header and form body; the status,
/// headers and body text.
impl World {
    /// A second server instance on the same database and vault, as a second process has
    /// it: its own pools, key cache, SSO caches, throttle handle and audit writer (on the
    /// same chains), the same clock.
    pub async fn second_instance(&self) -> Router {
        let runtime = self.scratch.runtime_pool(4).await.unwrap();
        let key_pool = self.scratch.runtime_pool(2).await.unwrap();
        let vault = self.state.sdk.vault().clone();
        let cipher = Arc::new(procuhelp_server::keys::field_cipher(
            TenantDb::new(key_pool),
            vault.clone(),
        ));
        let audit_pool = self.scratch.runtime_pool(2).await.unwrap();
        let audit_log = procuhelp_audit::PgAuditSink::new(TenantDb::new(audit_pool), vault.clone());
        let state = AppState::assemble(
            runtime,
            cipher,
            vault,
            Arc::new(audit_log.clone()),
            self.clock.clone(),
            PasswordHasher::for_tests(),
        )
        .with_audit_log(audit_log);
        procuhelp_server::app::app(state, Limits::default())
    }
}

pub async fn browser_call(
    w: &World,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> (StatusCode, HeaderMap, String) {
    browser_call_on(&w.app, method, uri, cookie, form).await
}

/// [`browser_call`] on another router (a second instance).
pub async fn browser_call_on(
    app: &Router,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The value a response's `Set-Cookie` gives cookie `name` (not a clearing one).
pub fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// `pg_dump` of `database` in plain SQL, as the cluster's superuser.
pub async fn plain_dump(
    cluster: &procuhelp_tenancy::embedded::LocalCluster,
    database: &str,
) -> String {
    use procuhelp_tenancy::embedded::LocalCluster;
    let opts = cluster.connect_options(database, LocalCluster::SUPERUSER);
    let out = tokio::process::Command::new(cluster.bin_dir().join("pg_dump"))
        .arg("--host")
        .arg(
            opts.get_socket()
                .map_or_else(|| opts.get_host().into(), |dir| dir.as_os_str().to_owned()),
        )
        .arg("--port")
        .arg(opts.get_port().to_string())
        .arg("--username")
        .arg(LocalCluster::SUPERUSER)
        .arg("--dbname")
        .arg(database)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `procuhelp-server ARGS…` in this process.
pub async fn run(args: &[&str]) -> anyhow::Result<()> {
    use clap::Parser as _;
    let mut argv = vec!["procuhelp-server"];
    argv.extend_from_slice(args);
    procuhelp_server::run(procuhelp_server::cli::Cli::parse_from(argv)).await
}

/// A one-connection pool on `database` of an embedded cluster, as its superuser (what the
/// tests read behind row-level security with).
pub async fn superuser(
    cluster: &procuhelp_tenancy::embedded::LocalCluster,
    database: &str,
) -> sqlx::PgPool {
    use procuhelp_tenancy::embedded::LocalCluster;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(cluster.connect_options(database, LocalCluster::SUPERUSER))
        .await
        .unwrap()
}
