//! The price of the SDK per request (issue 12): one process serves the same list read three
//! ways over loopback HTTP, and `wrk` drives each in turn, same run, same data.
//!
//! * **peer** — a plain axum + sqlx handler: `SELECT … FROM bench.items_plain WHERE
//!   org_id = $1 ORDER BY name, id LIMIT 50`, the organisation from the path; no
//!   session, no row-level security, no audit; logged in as the table owner (not a
//!   superuser).
//! * **sdk** — the SDK's one-round-trip authenticated read (`procuhelp_auth::session_read`):
//!   the session cookie is parsed and the session validated, its tenant entered, the
//!   permission checked, the session touched and the rows read by RLS in **one**
//!   statement, as the runtime role (NOSUPERUSER, NOBYPASSRLS), from `bench.items` (a
//!   table declared with `app.declare_tenant_table`, holding the same rows).
//! * **sdk_full** — the same one-statement read with the verified-session cache off
//!   (`VerifiedSessions::disabled`): every request checks its session in full. On the
//!   **sdk** side the session's answer is remembered (`VerifiedSessions`, the default),
//!   so a request is one plain statement that enters the organisation, compares the
//!   user's session epoch and reads.
//! * **sdk_logged** — the **sdk** side behind the access log and its request metrics
//!   (`procuhelp_axum::access_log`: request id, span, one formatted `INFO` line per
//!   request, written to a sink): the log's price is this side against **sdk**.
//! * **sdk_tx** — the transactional path, `procuhelp_axum::Authed`: the credential
//!   verified by the extractor, then BEGIN with the tenant, the read, COMMIT (four round
//!   trips).
//!
//! Each handler serialises its rows to JSON with the same code. 16 organisations, each
//! with a user, a full session and 50 rows (plus 984 more organisations' rows in the same
//! tables); wrk's Lua script rotates over the 16 per request on every side.
//!
//! Run: `scripts/bench-request.sh` (release build; `--seconds`, `--warmup`, `--rounds`,
//! `--connections`, `--pool`, `--perf DIR`), or `cargo bench -p procuhelp-benches --bench
//! request -- --seconds 10`. Needs `wrk` (scripts/setup.sh) and the machine's PostgreSQL
//! (`PROCUHELP_TEST_ADMIN_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a bench: set-up failures stop it, results go to stdout
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use procuhelp_auth::Permission;
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::session::{
    self, COOKIE_NAME, Credential, NewSession, SessionPolicy, SessionStage,
};
use procuhelp_auth::session_read::{self, AuthenticatedRead, ReadOnce, VerifiedSessions};
use procuhelp_axum::read::ReadAuth;
use procuhelp_axum::{Authed, Sdk};
use procuhelp_benches::http_load::{
    Load, Rotated, Run, lua_script, median, perf_report, perf_start, wrk,
};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::testkit::ScratchDb;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use uuid::Uuid;

const HOT_ORGS: usize = 16;
const COLD_ORGS: usize = 984;
const ROWS_PER_ORG: i32 = 50;

const PEER_SQL: &str = "SELECT id, name, country, vat_id, status, created_at FROM bench.items_plain \
     WHERE org_id = $1 ORDER BY name, id LIMIT 50";
const SDK_TX_SQL: &str = "SELECT id, name, country, vat_id, status, created_at FROM bench.items \
     ORDER BY name, id LIMIT 50";
const SDK_READ: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT i.id, i.name, i.country, i.vat_id, i.status, i.created_at FROM bench.items i \
     WHERE i.org_id = tenant.org ORDER BY i.name, i.id LIMIT 50",
);

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct Item {
    id: Uuid,
    name: String,
    country: String,
    vat_id: Option<String>,
    status: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct Options {
    seconds: u32,
    warmup: u32,
    rounds: u32,
    connections: u32,
    threads: u32,
    pool: u32,
    ping: bool,
    perf: Option<std::path::PathBuf>,
    sides: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        warmup: 3,
        rounds: 1,
        connections: 64,
        threads: 2,
        pool: 8,
        ping: true,
        perf: None,
        sides: vec![
            "peer".into(),
            "sdk".into(),
            "sdk_logged".into(),
            "sdk_full".into(),
            "sdk_tx".into(),
        ],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> u32 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = num("--seconds"),
            "--warmup" => o.warmup = num("--warmup"),
            "--rounds" => o.rounds = num("--rounds"),
            "--connections" => o.connections = num("--connections"),
            "--threads" => o.threads = num("--threads"),
            "--pool" => o.pool = num("--pool"),
            "--no-ping" => o.ping = false,
            "--perf" => o.perf = Some(args.next().expect("--perf needs a directory").into()),
            "--sides" => {
                o.sides = args
                    .next()
                    .expect("--sides needs a list")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            // cargo bench passes --bench; criterion-style filters are ignored.
            _ => {}
        }
    }
    o
}

/// Sums of per-phase wall time (ns) inside the handlers, and a count.
#[derive(Debug, Default)]
struct Phases {
    count: AtomicU64,
    sums: [AtomicU64; 5],
}

impl Phases {
    fn add(&self, phases: [Duration; 5]) {
        self.count.fetch_add(1, Ordering::Relaxed);
        for (sum, d) in self.sums.iter().zip(phases) {
            sum.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn take(&self) -> (u64, [f64; 5]) {
        let n = self.count.swap(0, Ordering::Relaxed);
        let mut means = [0.0; 5];
        for (m, s) in means.iter_mut().zip(&self.sums) {
            let sum = s.swap(0, Ordering::Relaxed);
            *m = if n == 0 {
                0.0
            } else {
                sum as f64 / n as f64 / 1000.0
            };
        }
        (n, means)
    }
}

#[derive(Clone)]
struct AppState {
    peer: PgPool,
    sdk: Sdk,
    phases_peer: Arc<Phases>,
    phases_sdk: Arc<Phases>,
    phases_tx: Arc<Phases>,
    phases_full: Arc<Phases>,
    phases_logged: Arc<Phases>,
}

impl FromRef<AppState> for Sdk {
    fn from_ref(state: &AppState) -> Sdk {
        state.sdk.clone()
    }
}

/// When the request reached the router (before any extractor ran).
#[derive(Debug, Clone, Copy)]
struct Arrived(Instant);

async fn stamp(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Arrived(Instant::now()));
    next.run(request).await
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn fail(e: impl std::fmt::Debug) -> StatusCode {
    eprintln!("request failed: {e:?}");
    StatusCode::INTERNAL_SERVER_ERROR
}

/// The peer: organisation from the path, one statement, no session, no RLS.
async fn peer(
    State(s): State<AppState>,
    axum::Extension(Arrived(t0)): axum::Extension<Arrived>,
    Path(org): Path<Uuid>,
) -> Result<Response, StatusCode> {
    let t1 = Instant::now();
    let rows: Vec<Item> = sqlx::query_as(PEER_SQL)
        .bind(org)
        .fetch_all(&s.peer)
        .await
        .map_err(fail)?;
    let t2 = Instant::now();
    let body = serde_json::to_vec(&rows).map_err(fail)?;
    let t3 = Instant::now();
    s.phases_peer
        .add([t1 - t0, t2 - t1, Duration::ZERO, t3 - t2, Duration::ZERO]);
    Ok(json_response(body))
}

/// The SDK's one-round-trip authenticated read: `procuhelp_axum::read::ReadAuth`.
async fn sdk(
    State(s): State<AppState>,
    axum::Extension(Arrived(t0)): axum::Extension<Arrived>,
    auth: ReadAuth,
) -> procuhelp_axum::Result<Response> {
    let t1 = Instant::now();
    let read = auth
        .fetch_all(Permission::ReadSuppliers, &SDK_READ.query_as::<Item>())
        .await?;
    let t2 = Instant::now();
    let body = serde_json::to_vec(&read.rows).map_err(|_| procuhelp_axum::Error::Unavailable)?;
    let t3 = Instant::now();
    s.phases_sdk
        .add([t1 - t0, t2 - t1, Duration::ZERO, t3 - t2, Duration::ZERO]);
    Ok(json_response(body))
}

/// The transactional path: `procuhelp_axum::Authed` (the credential verified in the
/// extractor), the permission, BEGIN + tenant on `tx()`, the read, COMMIT.
async fn sdk_tx(
    State(s): State<AppState>,
    axum::Extension(Arrived(t0)): axum::Extension<Arrived>,
    mut authed: Authed,
) -> procuhelp_axum::Result<Response> {
    let t1 = Instant::now();
    authed.require(Permission::ReadSuppliers).await?;
    let rows: Vec<Item> = sqlx::query_as(SDK_TX_SQL)
        .fetch_all(authed.tx().await?.conn())
        .await?;
    let t2 = Instant::now();
    authed.commit().await?;
    let t3 = Instant::now();
    let body = serde_json::to_vec(&rows).map_err(|_| procuhelp_axum::Error::Unavailable)?;
    let t4 = Instant::now();
    s.phases_tx
        .add([t1 - t0, t2 - t1, t3 - t2, t4 - t3, Duration::ZERO]);
    Ok(json_response(body))
}

struct Fixture {
    scratch: ScratchDb,
    peer: PgPool,
    runtime: PgPool,
    db: TenantDb,
    orgs: Vec<OrgId>,
    cookies: Vec<String>,
}

async fn pool(scratch: &ScratchDb, role: &str, o: &Options) -> PgPool {
    PgPoolOptions::new()
        .max_connections(o.pool)
        .min_connections(o.pool)
        .test_before_acquire(o.ping)
        .connect_with(scratch.options_for(role))
        .await
        .unwrap()
}

async fn fixture(o: &Options) -> Fixture {
    let scratch = ScratchDb::migrated_with(&Schema::new().with(procuhelp_auth::MIGRATIONS))
        .await
        .unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let runtime = scratch.runtime_role().name().to_owned();
    let mut orgs = Vec::new();
    for i in 0..HOT_ORGS {
        orgs.push(
            procuhelp_tenancy::create_organisation(&owner, &format!("bench {i}"))
                .await
                .unwrap(),
        );
    }
    let mut all: Vec<Uuid> = orgs.iter().map(|o| o.as_uuid()).collect();
    all.extend((0..COLD_ORGS).map(|_| Uuid::new_v4()));
    // Rows first, then the tenant declaration: FORCE ROW LEVEL SECURITY binds the owner.
    for sql in [
        "CREATE SCHEMA bench".to_owned(),
        "CREATE TABLE bench.items (org_id uuid NOT NULL, id uuid NOT NULL, name text NOT NULL, \
         country text NOT NULL, vat_id text, status text NOT NULL, created_at timestamptz NOT NULL, \
         PRIMARY KEY (org_id, id))"
            .to_owned(),
        "CREATE INDEX items_by_name ON bench.items (org_id, name, id)".to_owned(),
    ] {
        sqlx::query(&sql).execute(&owner).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO bench.items SELECT o, gen_random_uuid(), 'Supplier ' || lpad(g::text, 3, '0'), \
         'DE', 'DE' || lpad((g * 7919)::text, 9, '0'), 'active', now() \
         FROM unnest($1::uuid[]) o, generate_series(1, $2) g",
    )
    .bind(&all)
    .bind(ROWS_PER_ORG)
    .execute(&owner)
    .await
    .unwrap();
    for sql in [
        "CREATE TABLE bench.items_plain (LIKE bench.items INCLUDING ALL)".to_owned(),
        "INSERT INTO bench.items_plain SELECT * FROM bench.items".to_owned(),
        "CALL app.declare_tenant_table('bench.items')".to_owned(),
        format!("GRANT USAGE ON SCHEMA bench TO {runtime}"),
        format!("GRANT SELECT ON bench.items TO {runtime}"),
        "ANALYZE bench.items".to_owned(),
        "ANALYZE bench.items_plain".to_owned(),
    ] {
        sqlx::query(&sql).execute(&owner).await.unwrap();
    }
    owner.close().await;
    // Function timings (pg_stat_user_functions) for the breakdown.
    let admin = scratch.admin_pool(1).await.unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {} SET track_functions = 'pl'",
        scratch.name()
    ))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;

    let runtime_pool = pool(&scratch, &runtime, o).await;
    let db = TenantDb::new(runtime_pool.clone());
    let peer = pool(&scratch, scratch.owner_role(), o).await;
    let now = OffsetDateTime::now_utc();
    let mut cookies = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let mut tx = db.begin(*org).await.unwrap();
        let user = directory::create(
            &mut tx,
            NewUser {
                email: Email::parse(&format!("u{i}@bench.test")).unwrap(),
                display_name: "u".into(),
                role: None,
                password_hash: None,
            },
            now,
        )
        .await
        .unwrap();
        let (_, credential) = session::open(
            &mut tx,
            NewSession {
                user,
                stage: SessionStage::Full,
                amr: &["pwd"],
                policy: SessionPolicy::default(),
                source: None,
                user_agent: None,
            },
            now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        cookies.push(format!("{COOKIE_NAME}={}", credential.expose()));
    }
    Fixture {
        scratch,
        peer,
        runtime: runtime_pool,
        db,
        orgs,
        cookies,
    }
}

/// The rotation of one side over the 16 organisations.
fn rotation(side: &str, f: &Fixture) -> Vec<Rotated> {
    f.orgs
        .iter()
        .zip(&f.cookies)
        .map(|(org, cookie)| match side {
            "peer" => Rotated {
                path: format!("/peer/{org}/items"),
                headers: vec![],
            },
            _ => Rotated {
                path: match side {
                    "sdk" => "/sdk/items",
                    "sdk_full" => "/sdk-full/items",
                    "sdk_logged" => "/sdk-logged/items",
                    _ => "/sdk-tx/items",
                }
                .to_owned(),
                headers: vec![("Cookie".to_owned(), cookie.clone())],
            },
        })
        .collect()
}

fn main() {
    let o = options();
    // As a server logs: INFO, formatted; written to a sink so the terminal is not
    // measured. Only the sdk_logged side emits lines at this level.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::io::sink)
        .init();
    // As a server with scrapers configured records metrics: the Prometheus recorder,
    // process-wide. The sdk_logged side emits the request metrics (access_log); every
    // side pays the pool-wait histogram, which is recorded below the SDK's extractors.
    let _metrics = procuhelp_axum::metrics::install().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture(&o));
    let vault_dir =
        std::env::temp_dir().join(format!("procuhelp-bench-vault-{}", std::process::id()));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let cipher = Arc::new(procuhelp_tenancy::FieldCipher::new(
        f.db.clone(),
        vault.clone(),
        &procuhelp_core::crypto::AwsLcAead,
    ));
    let audit = Arc::new(procuhelp_audit::MemorySink::new());
    let state = AppState {
        peer: f.peer.clone(),
        sdk: Sdk::builder(f.runtime.clone(), cipher, vault, audit).build(),
        phases_peer: Arc::default(),
        phases_sdk: Arc::default(),
        phases_tx: Arc::default(),
        phases_full: Arc::default(),
        phases_logged: Arc::default(),
    };
    // The sdk_full side: the same handler on an Sdk that checks every session in full
    // (its phases are counted apart).
    let full_state = AppState {
        sdk: Sdk::builder(
            f.runtime.clone(),
            state.sdk.cipher().clone(),
            state.sdk.vault().clone(),
            state.sdk.audit().clone(),
        )
        .verified_sessions(VerifiedSessions::disabled())
        .build(),
        phases_sdk: state.phases_full.clone(),
        ..state.clone()
    };
    let app = Router::new()
        .route("/peer/{org}/items", get(peer))
        .route("/sdk/items", get(sdk))
        .route("/sdk-tx/items", get(sdk_tx))
        .with_state(state.clone())
        .merge(
            Router::new()
                .route("/sdk-full/items", get(sdk))
                .with_state(full_state),
        )
        .merge(
            Router::new()
                .route("/sdk-logged/items", get(sdk))
                .with_state(AppState {
                    phases_sdk: state.phases_logged.clone(),
                    ..state.clone()
                })
                .layer(middleware::from_fn(procuhelp_axum::access_log::log)),
        )
        .layer(middleware::from_fn(stamp));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("procuhelp-bench-request-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scripts: Vec<(String, std::path::PathBuf)> = o
        .sides
        .iter()
        .map(|side| {
            let path = dir.join(format!("{side}.lua"));
            std::fs::write(&path, lua_script(&rotation(side, &f))).unwrap();
            (side.clone(), path)
        })
        .collect();

    println!(
        "request bench: {} connections, {} wrk threads, pool {} per side, ping on acquire {}, {} s per side per round, {} round(s)",
        o.connections, o.threads, o.pool, o.ping, o.seconds, o.rounds
    );
    let load = |seconds| Load {
        threads: o.threads,
        connections: o.connections,
        seconds,
    };
    for (_, script) in &scripts {
        wrk(load(o.warmup), port, script);
    }
    state.phases_peer.take();
    state.phases_sdk.take();
    state.phases_tx.take();
    state.phases_full.take();
    state.phases_logged.take();
    let mut results: Vec<(String, Vec<Run>)> =
        o.sides.iter().map(|s| (s.clone(), Vec::new())).collect();
    let mut phase_means: Vec<(String, (u64, [f64; 5]))> = Vec::new();
    for round in 0..o.rounds {
        for (i, (side, script)) in scripts.iter().enumerate() {
            let perf = o.perf.as_ref().and_then(|dir| {
                perf_start(
                    dir,
                    &format!("{side}-{round}"),
                    o.seconds.saturating_sub(2).max(1),
                )
            });
            let run = wrk(load(o.seconds), port, script);
            if let Some((mut child, data)) = perf {
                child.wait().ok();
                perf_report(&data);
            }
            println!(
                "round {round} {side:7} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  p99.9 {:>7.0} µs  mean {:>7.0} µs",
                run.rps, run.p50_us, run.p99_us, run.p999_us, run.mean_us
            );
            results[i].1.push(run);
            let phases = match side.as_str() {
                "peer" => &state.phases_peer,
                "sdk" => &state.phases_sdk,
                "sdk_full" => &state.phases_full,
                "sdk_logged" => &state.phases_logged,
                _ => &state.phases_tx,
            };
            if round == 0 {
                phase_means.push((side.clone(), phases.take()));
            } else {
                phases.take();
            }
        }
    }

    println!("\nmedians over rounds:");
    let med: Vec<(String, f64, f64, f64)> = results
        .iter()
        .map(|(side, runs)| {
            (
                side.clone(),
                median(runs.iter().map(|r| r.rps).collect()),
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(runs.iter().map(|r| r.p99_us).collect()),
            )
        })
        .collect();
    let peer = med.iter().find(|m| m.0 == "peer").cloned();
    for (side, rps, p50, p99) in &med {
        match &peer {
            Some((_, prps, pp50, pp99)) if side != "peer" => println!(
                "{side:7} {rps:>9.0} req/s ({:.2}× peer)  p50 {p50:>7.0} µs ({:.2}×)  p99 {p99:>7.0} µs ({:.2}×)",
                rps / prps,
                p50 / pp50,
                p99 / pp99
            ),
            _ => println!("{side:7} {rps:>9.0} req/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs"),
        }
    }
    // Wall time, so under load it includes waiting for a pooled connection and for a
    // core: it says where a request spends its life, not only CPU.
    println!("\nmean wall time per request from routing to response body, round 0 (µs):");
    println!(
        "side      requests  extractor  database  commit  json  (sdk: ReadAuth, then the one statement; sdk_tx: Authed = BEGIN + lookup, then require + read)"
    );
    for (side, (n, m)) in &phase_means {
        println!(
            "{side:7} {n:>10} {:>10.1} {:>9.1} {:>7.1} {:>5.1}",
            m[0], m[1], m[2], m[3]
        );
    }

    // Single-client latency of the database calls alone (no HTTP, no concurrency).
    rt.block_on(async {
        let org = f.orgs[0];
        let credential = Credential::parse(
            f.cookies[0]
                .strip_prefix(&format!("{COOKIE_NAME}="))
                .unwrap(),
        )
        .unwrap();
        // Variants, interleaved in rounds (minimum per variant): where the SDK's extra
        // time per statement goes.
        const SCOPED: procuhelp_tenancy::ScopedRead = procuhelp_tenancy::ScopedRead::new(
            "SELECT i.id, i.name, i.country, i.vat_id, i.status, i.created_at FROM bench.items i \
             WHERE i.org_id = tenant.org ORDER BY i.name, i.id LIMIT 50",
        );
        const SESSION_ONLY: AuthenticatedRead =
            AuthenticatedRead::new("SELECT 1 AS one WHERE tenant.org IS NOT NULL");
        let n = 300;
        let mut best = [f64::MAX; 5];
        let cache = VerifiedSessions::default();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..n {
                let rows: Vec<Item> = sqlx::query_as(PEER_SQL)
                    .bind(org.as_uuid())
                    .fetch_all(&f.peer)
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 50);
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            let t = Instant::now();
            for _ in 0..n {
                let rows: Vec<Item> = f.db.fetch_all_once(org, SCOPED.query_as()).await.unwrap();
                assert_eq!(rows.len(), 50);
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            let t = Instant::now();
            for _ in 0..n {
                let read = session_read::fetch_all(
                    &f.db,
                    &credential,
                    Permission::ReadSuppliers,
                    OffsetDateTime::now_utc(),
                    &SESSION_ONLY.query_as::<(i32,)>(),
                )
                .await
                .unwrap();
                assert!(matches!(read, ReadOnce::Read(ref r) if r.rows.len() == 1));
            }
            best[2] = best[2].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            let t = Instant::now();
            for _ in 0..n {
                let read = session_read::fetch_all(
                    &f.db,
                    &credential,
                    Permission::ReadSuppliers,
                    OffsetDateTime::now_utc(),
                    &SDK_READ.query_as::<Item>(),
                )
                .await
                .unwrap();
                assert!(matches!(read, ReadOnce::Read(ref r) if r.rows.len() == 50));
            }
            best[3] = best[3].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            let t = Instant::now();
            for _ in 0..n {
                let read = session_read::fetch_all_cached(
                    &f.db,
                    &cache,
                    &credential,
                    Permission::ReadSuppliers,
                    OffsetDateTime::now_utc(),
                    &SDK_READ.query_as::<Item>(),
                )
                .await
                .unwrap();
                assert!(matches!(read, ReadOnce::Read(ref r) if r.rows.len() == 50));
            }
            best[4] = best[4].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        }
        println!(
            "\none client, database call only (µs, best of 5 × {n}): peer {:.0}; \
             tenant one-shot read (enter_org + the read, no session) {:.0}; \
             session check alone (enter_session, one row) {:.0}; \
             sdk one-round-trip read {:.0} (+{:.0} over the peer); \
             the same, session remembered {:.0} (+{:.0})",
            best[0],
            best[1],
            best[2],
            best[3],
            best[3] - best[0],
            best[4],
            best[4] - best[0]
        );
        f.peer.close().await;
        f.db.close().await;
        // Backends flush their function statistics when they exit.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let admin = f.scratch.admin_pool(1).await.unwrap();
        let stats: Vec<(String, i64, f64, f64)> = sqlx::query_as(
            "SELECT funcname::text, calls, total_time, self_time FROM pg_stat_user_functions \
             ORDER BY total_time DESC LIMIT 5",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        println!("\nPL/pgSQL functions inside PostgreSQL (whole run):");
        for (name, calls, total, own) in stats {
            println!(
                "{name:24} {calls:>9} calls  {:>6.1} µs per call ({:.1} µs own)",
                total * 1000.0 / calls as f64,
                own * 1000.0 / calls as f64
            );
        }
        admin.close().await;
        f.scratch.drop_all().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&vault_dir).ok();
}
