//! The real server, started in-process as `serve` does: embedded database, migrations,
//! posture check, self-signed HTTPS, HTTP redirect; and a refusal to serve from a
//! database whose posture is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_server::Handle;
use clap::Parser as _;
use procuhelp_server::cli::{DatabaseArgs, ServeArgs};
use procuhelp_tenancy::testkit::ScratchDb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn args(data_dir: PathBuf, database_url_file: Option<PathBuf>) -> ServeArgs {
    ServeArgs {
        db: DatabaseArgs {
            data_dir,
            database_url_file,
            database_url_secret: None,
            pg_bin_dir: None,
            dangerous_database_without_verified_tls: false,
            residency: None,
            vault: Default::default(),
        },
        https_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
        dangerous_allow_loopback_fetch: false,
        http_redirect_addr: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
        public_host: None,
        max_body_bytes: 1024 * 1024,
        request_timeout_secs: 10,
        alerts: None,
        network: Default::default(),
        backups: Default::default(),
        retention_every_hours: 24,
        operators: None,
        security_txt: None,
        audit_stream: None,
        smtp: None,
        otlp: Default::default(),
    }
}

fn temp_dir() -> PathBuf {
    // Under /tmp: when tests run as root, the embedded cluster's OS user must reach it.
    std::env::temp_dir().join(format!("ph-serve-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_on_embedded_defaults_and_redirects_http() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = temp_dir();
    let mut args = args(dir.clone(), None);
    // The operator API, named operators only (docs/operators.md).
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let alice =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let operators = std::env::temp_dir().join(format!("ph-ops-{}.json", uuid::Uuid::new_v4()));
    // A metrics scraper, by the digest of its token (docs/observability.md).
    let (scrape_token, scrape_digest) = procuhelp_auth::operator::new_scrape_token().unwrap();
    std::fs::write(
        &operators,
        format!(
            r#"{{"operators": [{{"name": "alice", "public_key": "{}"}}],
                "metrics_scrapers": [{{"name": "prometheus", "token_sha256": "{scrape_digest}"}}]}}"#,
            hex::encode(alice.public_key().as_ref())
        ),
    )
    .unwrap();
    args.operators = Some(operators.clone());
    // The audit stream, to the machine's NATS JetStream (127.0.0.1:4222), on a stream of
    // this test's own.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (stream_name, prefix) = (format!("PH_TEST_{tag}"), format!("phtest.{tag}"));
    let stream_file = std::env::temp_dir().join(format!("ph-stream-{tag}.json"));
    std::fs::write(
        &stream_file,
        format!(
            r#"{{"url": "nats://127.0.0.1:4222", "stream": "{stream_name}", "subject_prefix": "{prefix}", "sweep_every_secs": 1}}"#
        ),
    )
    .unwrap();
    args.audit_stream = Some(stream_file.clone());
    // The security.txt (RFC 9116), valid for 90 days.
    let security_txt =
        std::env::temp_dir().join(format!("ph-sectxt-{}.json", uuid::Uuid::new_v4()));
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(90))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::write(
        &security_txt,
        format!(
            r#"{{"contact": ["mailto:security@procuhelp.example"], "expires": "{expires}",
                "policy": "https://procuhelp.example/security", "preferred_languages": ["en"]}}"#
        ),
    )
    .unwrap();
    args.security_txt = Some(security_txt.clone());
    let (https, http) = (args.https_addr, args.http_redirect_addr.unwrap());
    let handle: Handle<SocketAddr> = Handle::new();
    let server = tokio::spawn(procuhelp_server::serve::serve(args, Some(handle.clone())));
    let listening = tokio::time::timeout(Duration::from_secs(60), handle.listening())
        .await
        .unwrap();
    assert_eq!(listening, Some(https));

    // Trust exactly the certificate the server generated.
    let cert = std::fs::read(dir.join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("https://127.0.0.1:{}/healthz", https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("strict-transport-security"));
    assert_eq!(res.text().await.unwrap(), r#"{"status":"ok"}"#);

    // The operator API is served, behind the same layers: unsigned is refused, signed
    // creates an organisation.
    let url = format!("https://127.0.0.1:{}/operator/organisations", https.port());
    let body = br#"{"name":"Served Ltd","admin_email":"first@served.test"}"#;
    let res = client.post(&url).body(&body[..]).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("strict-transport-security"));
    assert_eq!(res.headers()["www-authenticate"], "Procuhelp-Operator");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = procuhelp_auth::operator::sign(
        &alice,
        "alice",
        "POST",
        "/operator/organisations",
        now,
        body,
    );
    let res = client
        .post(&url)
        .header("authorization", signed)
        .header("content-type", "application/json")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: serde_json::Value = res.json().await.unwrap();
    let org = created["organisation"].as_str().unwrap().to_owned();
    std::fs::remove_file(&operators).ok();

    // Break-glass (docs/operators.md): signed, with a reason, time-bound, and recorded in
    // the organisation's own trail.
    let base = format!("https://127.0.0.1:{}", https.port());
    let signed_call = |method: &'static str, path: String, body: Vec<u8>| {
        let (client, alice, base) = (&client, &alice, base.clone());
        async move {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let auth = procuhelp_auth::operator::sign(alice, "alice", method, &path, now, &body);
            client
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let access = format!("/operator/organisations/{org}/access");
    let audit = |n: u32| format!("/operator/organisations/{org}/audit?limit={n}");
    // No grant yet: refused, and the refusal is recorded.
    assert_eq!(signed_call("GET", audit(1), vec![]).await.status(), 403);
    // A grant needs a reason and a bounded time.
    for bad in [
        r#"{"reason": "short", "duration_secs": 60}"#,
        r#"{"reason": "INC-1: investigating a stuck import", "duration_secs": 0}"#,
        r#"{"reason": "INC-1: investigating a stuck import", "duration_secs": 28801}"#,
        r#"{"duration_secs": 60}"#,
    ] {
        let res = signed_call("POST", access.clone(), bad.as_bytes().to_vec()).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = signed_call(
        "POST",
        access.clone(),
        br#"{"reason": "INC-1: investigating a stuck import", "duration_secs": 3}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status(), 201);
    let grant: serde_json::Value = res.json().await.unwrap();
    let res = signed_call("GET", audit(2), vec![]).await;
    assert_eq!(res.status(), 200);
    // It ends on time: after its end, the same operator is refused again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(signed_call("GET", audit(3), vec![]).await.status(), 403);
    // The organisation's own trail holds all of it (read under a new grant, revoked after).
    let res = signed_call(
        "POST",
        access.clone(),
        br#"{"reason": "INC-1: reading the trail of the first grant", "duration_secs": 60}"#
            .to_vec(),
    )
    .await;
    let second: serde_json::Value = res.json().await.unwrap();
    let trail: serde_json::Value = signed_call("GET", audit(100), vec![])
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let count = |a: &str| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count("operator.access_granted"), 2, "{actions:?}");
    // Two reads without a grant in force, three grants without a reason or a bounded
    // time, one body that is not a grant request.
    assert_eq!(count("operator.access_refused"), 6, "{actions:?}");
    assert!(count("audit.read") >= 1, "{actions:?}");
    assert!(
        trail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == format!("operator_grant:{}", grant["grant"].as_str().unwrap()))
    );
    let grant_path = format!("{access}/{}", second["grant"].as_str().unwrap());
    assert_eq!(
        signed_call("DELETE", grant_path, vec![]).await.status(),
        204
    );
    assert_eq!(signed_call("GET", audit(4), vec![]).await.status(), 403);
    // Where the organisation's policy requires its admin's approval (set here behind the
    // server's back, as no admin has signed in), a request waits: 202, not in force.
    {
        use procuhelp_tenancy::embedded::LocalCluster;
        let cluster = LocalCluster::start(&dir.join("pg"), None).await.unwrap();
        let su = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(cluster.connect_options(LocalCluster::DATABASE, LocalCluster::SUPERUSER))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE app.organisations SET operator_access_needs_approval = true WHERE id = $1",
        )
        .bind(org.parse::<uuid::Uuid>().unwrap())
        .execute(&su)
        .await
        .unwrap();
        su.close().await;
        // The server started the cluster: this handle leaves it running.
        cluster.stop().await.unwrap();
    }
    let res = signed_call(
        "POST",
        access.clone(),
        br#"{"reason": "INC-2: waiting for the customer's admin", "duration_secs": 60}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status(), 202);
    let pending: serde_json::Value = res.json().await.unwrap();
    assert_eq!(pending["state"], "pending");
    assert_eq!(signed_call("GET", audit(5), vec![]).await.status(), 403);

    // /metrics: only the named scraper's token passes; the same 401 otherwise.
    let metrics = format!("https://127.0.0.1:{}/metrics", https.port());
    for bad in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Bearer {scrape_digest}")),
    ] {
        let mut req = client.get(&metrics);
        if let Some(h) = bad {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert!(res.headers().contains_key("strict-transport-security"));
    }
    let res = client
        .get(&metrics)
        .header("authorization", format!("Bearer {}", scrape_token.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for expected in [
        r#"procuhelp_http_requests_total{method="POST",route="/operator/organisations",status="201"} 1"#,
        r#"procuhelp_http_requests_total{method="GET",route="/metrics",status="401"} 3"#,
        r#"procuhelp_http_request_duration_seconds_bucket{route="/healthz",le="#,
        r#"procuhelp_db_pool_connections{pool="requests",state="idle"}"#,
        r#"procuhelp_db_pool_max{pool="audit"} 4"#,
        "procuhelp_audit_writer_batch_size_count",
        "procuhelp_db_acquire_seconds_count",
        "procuhelp_metrics_scrapes_refused_total 3",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    // No credential, address, path as sent or personal data among them.
    for secret in [
        scrape_token.expose(),
        "first@served.test",
        "Served Ltd",
        "127.0.0.1",
    ] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // The audit stream carries the organisation's creation, recorded by the operator API.
    let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let created = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "org.created never reached the stream"
        );
        if let Ok(stream) = js.get_stream(&stream_name).await {
            let mut found = None;
            for seq in 1..=stream.cached_info().state.last_sequence {
                let Ok(m) = stream.get_raw_message(seq).await else {
                    continue;
                };
                let e: procuhelp_audit::StreamEvent = serde_json::from_slice(&m.payload).unwrap();
                if e.action == "org.created" {
                    found = Some(e);
                }
            }
            if let Some(e) = found {
                break e;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(created.context["operator"], "alice");
    js.delete_stream(&stream_name).await.unwrap();
    std::fs::remove_file(&stream_file).ok();

    let res = client
        .get(format!(
            "https://127.0.0.1:{}/.well-known/security.txt",
            https.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(res.headers().contains_key("strict-transport-security"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains("Contact: mailto:security@procuhelp.example\n"),
        "{text}"
    );
    assert!(text.contains(&format!("Expires: {expires}\n")), "{text}");
    std::fs::remove_file(&security_txt).ok();

    let res = client
        .get(format!("http://127.0.0.1:{}/a?b=c", http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://127.0.0.1:{}/a?b=c", https.port())
    );

    // Private material stays private.
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(dir.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert!(
        dir_mode & 0o007 == 0,
        "data dir is open to others: {dir_mode:o}"
    );

    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_serve_when_the_runtime_role_is_a_superuser() {
    procuhelp_server::tls::install_crypto_provider();
    let scratch = ScratchDb::migrated_with(&procuhelp_server::database::schema())
        .await
        .unwrap();
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // The configured URL logs in as the superuser: RLS would not bind it.
    let admin_url = std::env::var("PROCUHELP_TEST_ADMIN_URL")
        .unwrap_or_else(|_| procuhelp_tenancy::testkit::DEFAULT_ADMIN_URL.to_owned());
    let url = format!(
        "{}/{}",
        admin_url.rsplit_once('/').unwrap().0,
        scratch.name()
    );
    let url_file = dir.join("db-url");
    std::fs::write(&url_file, &url).unwrap();
    use std::os::unix::fs::PermissionsExt;

    // `secrets put` refuses a value file others can read, then stores it from a 0600 one.
    let data = dir.join("data");
    let put = |file: &std::path::Path| {
        let cli = procuhelp_server::cli::Cli::try_parse_from([
            "procuhelp-server",
            "secrets",
            "put",
            "db/runtime-url",
            "--from-file",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .unwrap();
        procuhelp_server::run(cli)
    };
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = put(&url_file).await.unwrap_err();
    assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    put(&url_file).await.unwrap();

    let mut args = args(data.clone(), None);
    args.db.database_url_secret = Some("db/runtime-url".to_owned());
    let https = args.https_addr;
    let err = procuhelp_server::serve::serve(args, None)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("posture") && msg.contains("superuser"),
        "{msg}"
    );
    assert!(!msg.contains(&url), "the URL must not be echoed");
    // Nothing was bound.
    assert!(std::net::TcpListener::bind(https).is_ok());

    // serve does not read credentials from files: only from the vault.
    let err = procuhelp_server::serve::serve(self::args(data.clone(), Some(url_file)), None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("only from the vault"),
        "{err:#}"
    );

    // A misspelt alerts setting: refuse to start (before anything is bound).
    let alerts = dir.join("alerts.json");
    std::fs::write(
        &alerts,
        r#"{ "failed_sign_ins_per_adress": { "threshold": 3, "window_secs": 60 } }"#,
    )
    .unwrap();
    let mut with_alerts = self::args(data.clone(), None);
    with_alerts.alerts = Some(alerts);
    let https = with_alerts.https_addr;
    let err = procuhelp_server::serve::serve(with_alerts, None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("failed_sign_ins_per_adress"),
        "{err:#}"
    );
    assert!(std::net::TcpListener::bind(https).is_ok());

    // A vault whose master key file is too open: refuse to start.
    std::fs::set_permissions(
        data.join("vault/vault.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = procuhelp_server::serve::serve(self::args(data, None), None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");

    std::fs::remove_dir_all(&dir).ok();
    scratch.drop_all().await.unwrap();
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    procuhelp_server::cli::Cli::command().debug_assert();
}

/// Issue #11: a newcomer following "Using your own PostgreSQL" first tries a superuser
/// URL. Admin commands that do tenant work refuse it up front, name the fix, and change
/// nothing; the same commands work with the (non-superuser) schema owner's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_refuse_a_role_that_bypasses_rls() {
    procuhelp_server::tls::install_crypto_provider();
    let scratch = ScratchDb::migrated_with(&procuhelp_server::database::schema())
        .await
        .unwrap();
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let admin_url = std::env::var("PROCUHELP_TEST_ADMIN_URL")
        .unwrap_or_else(|_| procuhelp_tenancy::testkit::DEFAULT_ADMIN_URL.to_owned());
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let write_url = |name: &str, url: String| {
        let file = dir.join(name);
        std::fs::write(&file, url).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        file
    };
    let superuser = write_url("superuser-url", format!("{base}/{}", scratch.name()));
    let owner_base = base.replacen("postgres@", &format!("{}@", scratch.owner_role()), 1);
    let owner = write_url("owner-url", format!("{owner_base}/{}", scratch.name()));
    let data = dir.join("data");
    let run = |args: Vec<String>| {
        let mut argv = vec!["procuhelp-server".to_owned()];
        argv.extend(args);
        argv.extend(["--data-dir".to_owned(), data.display().to_string()]);
        procuhelp_server::run(procuhelp_server::cli::Cli::try_parse_from(argv).unwrap())
    };
    let seed = |url: &std::path::Path| {
        vec![
            "seed-demo".to_owned(),
            "--runtime-role".to_owned(),
            scratch.runtime_role().name().to_owned(),
            "--database-url-file".to_owned(),
            url.display().to_string(),
        ]
    };
    let rotate = |url: &std::path::Path| {
        vec![
            "keys".to_owned(),
            "rotate".to_owned(),
            "--database-url-file".to_owned(),
            url.display().to_string(),
        ]
    };
    let admin = scratch.admin_pool(1).await.unwrap();
    let counts = || async {
        let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM app.organisations")
            .fetch_one(&admin)
            .await
            .unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM app.key_events")
            .fetch_one(&admin)
            .await
            .unwrap();
        (orgs, keys)
    };
    let before = counts().await;
    let verify = vec![
        "audit".to_owned(),
        "export".to_owned(),
        "--org".to_owned(),
        uuid::Uuid::now_v7().to_string(),
        "--out".to_owned(),
        dir.join("export.jsonl").display().to_string(),
        "--database-url-file".to_owned(),
        superuser.display().to_string(),
    ];
    for (command, args) in [
        ("seed-demo", seed(&superuser)),
        ("keys rotate", rotate(&superuser)),
        ("audit", verify),
    ] {
        let err = run(args).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(command) && msg.contains("superuser") && msg.contains("migrate"),
            "{msg}"
        );
        assert!(!msg.contains(base), "the URL must not be echoed: {msg}");
        assert_eq!(counts().await, before, "{command} changed something");
    }
    assert!(!dir.join("export.jsonl").exists(), "nothing exported");
    // With the schema owner's URL (RLS binds it: FORCEd) both work, tenants apart.
    run(seed(&owner)).await.unwrap();
    let (orgs, _) = counts().await;
    assert_eq!(orgs, before.0 + 2);
    run(rotate(&owner)).await.unwrap();
    let rotated: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT org_id) FROM app.key_events WHERE event = 'rewrapped'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(rotated, orgs, "every organisation rotated");
    admin.close().await;
    std::fs::remove_dir_all(&dir).ok();
    scratch.drop_all().await.unwrap();
}

/// `serve --otlp-traces`: each request's span reaches an OTLP/HTTP collector on loopback
/// with the access line's fields (route template, status, request id) and nothing the
/// client sent besides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_request_spans_over_otlp() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    procuhelp_server::tls::install_crypto_provider();

    // The collector: records each export's path and body.
    type Exports = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;
    let received = Exports::default();
    let collector = {
        let received = received.clone();
        axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                received
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), body.to_vec()));
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    // Outside the runtime, as main() does: the exporter's client blocks.
    let otlp = procuhelp_server::cli::OtlpArgs {
        otlp_traces: Some(endpoint),
        otlp_ca_file: None,
    };
    let telemetry = std::thread::spawn(move || {
        procuhelp_server::logging::init(Some("info"), Some(&otlp)).unwrap()
    })
    .join()
    .unwrap();

    let dir = temp_dir();
    let args = args(dir.clone(), None);
    let https = args.https_addr;
    let handle: Handle<SocketAddr> = Handle::new();
    let server = tokio::spawn(procuhelp_server::serve::serve(args, Some(handle.clone())));
    let listening = tokio::time::timeout(Duration::from_secs(60), handle.listening())
        .await
        .unwrap();
    assert_eq!(listening, Some(https));
    let cert = std::fs::read(dir.join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let secret = "otlp-bearer-secret-0123456789";
    let res = client
        .get(format!(
            "https://127.0.0.1:{}/healthz?email=alice%40example.com",
            https.port()
        ))
        .header("authorization", format!("Bearer {secret}"))
        .header("cookie", format!("procuhelp_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    server.await.unwrap().unwrap();

    // Flush: the batch is exported on shutdown.
    std::thread::spawn(move || drop(telemetry)).join().unwrap();
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "nothing reached the collector");
    let mut found = false;
    for (path, body) in &received {
        assert_eq!(path, "/v1/traces");
        let text = String::from_utf8_lossy(body);
        for leaked in [secret, "alice", "example.com"] {
            assert!(!text.contains(leaked), "{leaked} reached the collector");
        }
        let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for span in export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let attr = |key: &str| {
                span.attributes
                    .iter()
                    .find(|a| a.key == key)
                    .and_then(|a| a.value.as_ref())
                    .map(|v| format!("{:?}", v.value))
            };
            if span.name == "request" && attr("request_id").is_some_and(|v| v.contains(&request_id))
            {
                assert!(
                    attr("route").is_some_and(|v| v.contains("/healthz")),
                    "{span:?}"
                );
                assert!(
                    attr("status").is_some_and(|v| v.contains("200")),
                    "{span:?}"
                );
                assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
                found = true;
            }
        }
    }
    assert!(found, "no span of request {request_id}: {received:?}");
    std::fs::remove_dir_all(&dir).ok();
}
