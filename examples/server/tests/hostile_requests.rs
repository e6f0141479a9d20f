//! Hostile clients: refused credentials, slow uploads, slow headers, idle and surplus
//! connections, oversized bodies over HTTP/2, forged forwarded headers. None of them may
//! cost the server a database connection, a PostgreSQL session or an unbounded task.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::{World, world};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::session::Credential;
use procuhelp_axum::client_addr::TrustedProxies;
use procuhelp_server::app::{AppState, Limits};
use procuhelp_server::connections::ConnectionLimits;
use procuhelp_tenancy::TenantDb;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tower::ServiceExt as _;

/// The world's state, with request transactions drawn from a pool of `size` connections
/// that counts every PostgreSQL session it opens.
async fn counted_state(w: &World, size: u32) -> (AppState, Arc<AtomicUsize>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(20))
        .after_connect(move |_, _| {
            let counter = counter.clone();
            Box::pin(async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        })
        .connect_with(w.scratch.options_for(w.scratch.runtime_role().name()))
        .await
        .unwrap();
    // The same audit sink, clock, cipher and vault; every database access of the
    // requests through the counted pool.
    let sdk = &w.state.sdk;
    let counted = procuhelp_axum::Sdk::builder(
        pool,
        sdk.cipher().clone(),
        sdk.vault().clone(),
        sdk.audit().clone(),
    )
    .clock(sdk.clock().clone())
    .password_hasher(PasswordHasher::for_tests())
    .build();
    (AppState::new(counted), opened)
}

/// Sessions PostgreSQL has ever started on the scratch database (`pg_stat_database`),
/// once the statistics of every ended session have been flushed.
async fn sessions_started(w: &World) -> i64 {
    let mut conn = w.owner.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_refused_credentials_open_no_postgresql_session() {
    let w = world(PasswordHasher::for_tests()).await;
    const POOL: u32 = 4;
    let (state, opened) = counted_state(&w, POOL).await;
    let app = procuhelp_server::app::app(state.clone(), Limits::default());
    let org = w.orgs[0];
    let before = sessions_started(&w).await;
    for i in 0..1000 {
        // Well-formed, for a real organisation, and unknown.
        let token = Credential::generate(org).unwrap().expose();
        let req = if i % 2 == 0 {
            Request::get("/api/suppliers")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
        } else {
            Request::get("/api/session")
                .header(
                    header::COOKIE,
                    format!("{}={token}", procuhelp_auth::session::COOKIE_NAME),
                )
                .body(Body::empty())
        };
        let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let opened = opened.load(Ordering::SeqCst);
    assert!(
        opened <= POOL as usize,
        "1,000 refused credentials opened {opened} PostgreSQL sessions (pool of {POOL})"
    );
    // The database's own count agrees (the statistics of ended sessions are flushed when
    // they end, a moment later).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = sessions_started(&w).await - before;
    assert!(
        started <= i64::from(POOL) + 2,
        "PostgreSQL started {started} sessions for 1,000 refused credentials"
    );
    state.sdk.tenants().close().await;
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authenticated_requests_give_their_connection_back() {
    let w = world(PasswordHasher::for_tests()).await;
    const POOL: u32 = 2;
    let (state, opened) = counted_state(&w, POOL).await;
    let app = procuhelp_server::app::app(state.clone(), Limits::default());
    let s = w.login(0, Role::Admin).await;
    let cookie = format!("{}={}", procuhelp_auth::session::COOKIE_NAME, s.cookie);
    let reader = w.login(0, Role::ReadOnly).await;
    let reader = format!("{}={}", procuhelp_auth::session::COOKIE_NAME, reader.cookie);
    let scim_bearer = {
        let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
        let (_, secret) = procuhelp_auth::scim::token::issue(
            &mut tx,
            "entra",
            time::Duration::days(1),
            None,
            w.state.sdk.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        format!("Bearer {}", secret.expose())
    };
    for i in 0..100 {
        let req = match i % 4 {
            // SCIM: a verified token, then a user that is not there.
            3 => Request::get(format!(
                "/scim/v2/{}/Users/{}",
                w.orgs[0],
                uuid::Uuid::new_v4()
            ))
            .header(header::AUTHORIZATION, &scim_bearer)
            .body(Body::empty()),
            // Not found: the handler returns early with its transaction open.
            0 => Request::get(format!("/api/suppliers/{}", uuid::Uuid::new_v4()))
                .header(header::COOKIE, &cookie)
                .body(Body::empty()),
            // A body the handler's extractor refuses, after the credential was verified.
            1 => Request::post("/api/suppliers")
                .header(header::COOKIE, &cookie)
                .header("x-csrf-token", &s.csrf)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json")),
            // A permission the role lacks is refused after verification.
            _ => Request::get("/api/users")
                .header(header::COOKIE, &reader)
                .body(Body::empty()),
        };
        let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        // The background rollback runs between requests.
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = opened.load(Ordering::SeqCst);
    assert!(
        opened <= POOL as usize,
        "100 failed requests opened {opened} PostgreSQL sessions (pool of {POOL})"
    );
    state.sdk.tenants().close().await;
    w.close().await;
}

/// Serves `app` on a real listener (127.0.0.1, any port), with the peer's address.
async fn listen(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_no_database_connection() {
    procuhelp_server::tls::install_crypto_provider();
    let w = world(PasswordHasher::for_tests()).await;
    const POOL: u32 = 2;
    let (state, _) = counted_state(&w, POOL).await;
    let limits = Limits {
        request_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let addr = listen(procuhelp_server::app::app(state.clone(), limits)).await;
    let s = w.login(0, Role::Requester).await;
    let cookie = format!("{}={}", procuhelp_auth::session::COOKIE_NAME, s.cookie);
    // Signed-in clients start uploads they never finish: more than the pool holds.
    let mut stalled = Vec::new();
    for _ in 0..POOL + 1 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/requests HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\nx-csrf-token: {}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"title\":",
            s.csrf
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Everyone else is still served.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        client
            .get(format!("http://{addr}/api/session"))
            .header(header::COOKIE, &cookie)
            .send(),
    )
    .await
    .expect("a signed-in request waited for a connection held by a stalled upload")
    .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);
    state.sdk.tenants().close().await;
    w.close().await;
}

/// A state whose database is never reached (for behaviour decided before any query).
fn offline_state() -> AppState {
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(opts);
    let vault_dir = std::env::temp_dir().join(format!(
        "ph-hostile-vault-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
        Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let cipher = Arc::new(procuhelp_server::keys::field_cipher(
        TenantDb::new(pool.clone()),
        vault.clone(),
    ));
    AppState::assemble(
        pool,
        cipher,
        vault,
        Arc::new(procuhelp_audit::MemorySink::new()),
        Arc::new(procuhelp_core::SystemClock),
        PasswordHasher::for_tests(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_answered_413_over_http2() {
    procuhelp_server::tls::install_crypto_provider();
    let limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let addr = listen(procuhelp_server::app::app(offline_state(), limits)).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{addr}/api/login");
    let big = vec![b'x'; 256 * 1024];
    // Declared: Content-Length says it all.
    let res = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("HTTP/2: the oversized (declared) body was not answered");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().contains_key("content-security-policy"));
    assert!(res.headers().contains_key("strict-transport-security"));
    // Streamed: no length up front; the limit is found while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b'x'; 4096])).collect();
    let res = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("HTTP/2: the oversized (streamed) body was not answered");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().contains_key("content-security-policy"));
    // The connection is still good for the next request.
    let res = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // HTTP/1.1 too.
    let res = reqwest::Client::new()
        .post(&url)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A failed sign-in from `peer` with `forwarded` as `X-Forwarded-For`: the address the
/// audit trail recorded.
async fn recorded_source(
    w: &World,
    proxies: Option<TrustedProxies>,
    peer: &str,
    forwarded: &str,
) -> Option<std::net::IpAddr> {
    let mut app = procuhelp_server::app::app(w.state.clone(), Limits::default());
    if let Some(proxies) = proxies {
        app = procuhelp_server::app::behind_proxies(app, proxies);
    }
    let body = json!({
        "org": w.orgs[0].to_string(),
        "email": common::email(0, Role::Requester),
        "password": "wrong password",
    });
    let mut req = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded)
        .body(Body::from(body.to_string()))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(
        format!("{peer}:4711").parse::<SocketAddr>().unwrap(),
    ));
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let events = w.audit.events();
    let event = events
        .iter()
        .rev()
        .find(|e| e.action == Action::LoginFailed)
        .expect("a failed sign-in is recorded");
    event.personal.context.source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_forwarded_only_by_trusted_proxies() {
    let w = world(PasswordHasher::for_tests()).await;
    let lb: TrustedProxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let ip = |s: &str| Some(s.parse().unwrap());
    // Behind the load balancer: the client it saw, not the one the client claimed.
    assert_eq!(
        recorded_source(&w, Some(lb.clone()), "10.0.0.2", "1.1.1.1, 198.51.100.9").await,
        ip("198.51.100.9")
    );
    // A client talking directly cannot pick its address.
    assert_eq!(
        recorded_source(&w, Some(lb), "203.0.113.5", "198.51.100.9").await,
        ip("203.0.113.5")
    );
    // No trusted proxy configured: the header is ignored.
    assert_eq!(
        recorded_source(&w, None, "10.0.0.2", "198.51.100.9").await,
        ip("10.0.0.2")
    );
    w.close().await;
}

/// Serves a tiny app with `limits` on plain HTTP; the bound address.
async fn limited_server(limits: ConnectionLimits) -> (SocketAddr, axum_server::Handle<SocketAddr>) {
    let handle = axum_server::Handle::new();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = procuhelp_server::connections::bind("127.0.0.1:0".parse().unwrap(), limits)
        .handle(handle.clone());
    tokio::spawn(server.serve(app.into_make_service()));
    let addr = handle.listening().await.unwrap();
    (addr, handle)
}

/// Reads until the server closes the connection (or `within` passes: then `None`).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + within).into(), conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // A 408 or similar before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        tls_handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        max_connections: 4,
        queue_wait: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_silent_connections_are_disconnected() {
    let (addr, handle) = limited_server(short_limits()).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(3)),
        "a client that never finished its headers was not disconnected: {closed:?}"
    );
    // Connected and silent.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a silent connection was kept");
    // A keep-alive connection that finished its request and then idles.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "an idle keep-alive connection was kept");
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_and_slots_come_back() {
    procuhelp_server::tls::install_crypto_provider();
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let (addr, handle) = limited_server(limits).await;
    let mut held = Vec::new();
    for _ in 0..limits.max_connections {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        // A first byte, so the connection is surely accepted and counted.
        conn.write_all(b"G").await.unwrap();
        held.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut surplus = TcpStream::connect(addr).await.unwrap();
    let _ = surplus
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let closed = closed_within(&mut surplus, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "a connection beyond the cap was served");
    // A slot freed is a slot for the next client.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_disconnected() {
    procuhelp_server::tls::install_crypto_provider();
    let dir =
        std::env::temp_dir().join(format!("ph-hostile-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = procuhelp_server::tls::load_or_create(&dir, "127.0.0.1").unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(
        procuhelp_server::tls::server_config(&cert).unwrap(),
    );
    let handle = axum_server::Handle::new();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = procuhelp_server::connections::bind_rustls(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        short_limits(),
    )
    .handle(handle.clone());
    tokio::spawn(server.serve(app.into_make_service()));
    let addr = handle.listening().await.unwrap();
    // The first bytes of a ClientHello, then nothing.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let closed = closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(3)),
        "a stalled TLS handshake was kept: {closed:?}"
    );
    handle.shutdown();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn serve_flags_default_to_the_documented_limits_and_refuse_contradictions() {
    use clap::Parser as _;
    use procuhelp_server::cli::{Cli, Command};
    let parse = |extra: &[&str]| {
        let mut argv = vec!["procuhelp-server", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
            _ => unreachable!(),
        }
    };
    let args = parse(&[]);
    let limits = procuhelp_server::serve::connection_limits(&args).unwrap();
    let defaults = ConnectionLimits::default();
    assert_eq!(limits.header_read_timeout, defaults.header_read_timeout);
    assert_eq!(limits.tls_handshake_timeout, defaults.tls_handshake_timeout);
    assert_eq!(limits.idle_timeout, defaults.idle_timeout);
    assert_eq!(limits.max_connections, defaults.max_connections);
    assert!(args.network.trusted_proxies.is_empty());
    let d = procuhelp_server::cli::NetworkArgs::default();
    assert_eq!(
        d.header_read_timeout_secs,
        args.network.header_read_timeout_secs
    );
    assert_eq!(d.idle_timeout_secs, args.network.idle_timeout_secs);
    assert_eq!(d.max_connections, args.network.max_connections);
    assert_eq!(
        d.tls_handshake_timeout_secs,
        args.network.tls_handshake_timeout_secs
    );

    let args = parse(&[
        "--trusted-proxy",
        "10.0.0.0/8",
        "--trusted-proxy",
        "fd00::/8",
    ]);
    assert_eq!(args.network.trusted_proxies.len(), 2);
    assert!(
        Cli::try_parse_from([
            "procuhelp-server",
            "serve",
            "--trusted-proxy",
            "10.0.0.0/33"
        ])
        .is_err()
    );
    let args = parse(&["--idle-timeout-secs", "30", "--request-timeout-secs", "30"]);
    assert!(procuhelp_server::serve::connection_limits(&args).is_err());
    let args = parse(&["--max-connections", "0"]);
    assert!(procuhelp_server::serve::connection_limits(&args).is_err());
}

/// Sends a `len`-byte body on one HTTP/2 stream as the server lets it (flow control);
/// the response's status, and whether the stream ended without the server resetting it
/// (a reset while the client is still sending is what curl reports as a failure).
async fn h2_upload(addr: SocketAddr, len: usize) -> (StatusCode, Result<(), String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = Request::post(format!("http://{addr}/api/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len.to_string())
        .body(())
        .unwrap();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    let upload = tokio::spawn(async move {
        let mut left = len;
        while left > 0 {
            stream.reserve_capacity(left.min(16 * 1024));
            let granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(format!("reset after {} bytes: {e}", len - left)),
                None => return Err(format!("stream closed after {} bytes", len - left)),
            };
            if granted == 0 {
                continue;
            }
            let n = granted.min(left);
            left -= n;
            if let Err(e) = stream.send_data(axum::body::Bytes::from(vec![b'x'; n]), left == 0) {
                return Err(format!("reset after {} bytes: {e}", len - left - n));
            }
        }
        // Sent; did the server reset the stream anyway (`RST_STREAM`, even NO_ERROR)?
        match tokio::time::timeout(
            Duration::from_millis(300),
            std::future::poll_fn(|cx| stream.poll_reset(cx)),
        )
        .await
        {
            Err(_) => Ok(()),
            Ok(reset) => Err(format!("stream reset by the server: {reset:?}")),
        }
    });
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("HTTP/2: the stream was reset instead of answered");
    let status = response.status();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.expect("the answer's body was cut off");
    }
    let sent = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("upload stuck")
        .unwrap();
    (status, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_http2_upload_ends_cleanly_with_its_413() {
    let limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let addr = listen(procuhelp_server::app::app(offline_state(), limits)).await;
    // Larger than the limit and than HTTP/2's initial window (64 KiB): the client can only
    // finish if the server reads on. Clients such as curl report a stream reset mid-upload
    // as a failure (exit 92) even when the 413 had arrived.
    let (status, sent) = h2_upload(addr, 300 * 1024).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        sent,
        Ok(()),
        "the upload was reset instead of answered cleanly"
    );
    // Beyond what is worth discarding: answered at once, the rest refused by a reset that
    // comes after the answer (the answer still arrives whole).
    let huge = 1024 + procuhelp_axum::body::DISCARD_LIMIT as usize + 1;
    let (status, sent) = h2_upload(addr, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        sent.is_err(),
        "a body beyond the discard limit was read whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_answered_408_within_the_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let addr = listen(procuhelp_server::app::app(offline_state(), limits)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /api/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 1000\r\n\r\n{\"org\":",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "a stalled upload was never answered");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("content-security-policy"), "{answer}");
}
