//! A full flow at TRACE level — seed (secrets stored, bank details encrypted), key
//! rotation, decryption, serving HTTP — and no secret value or key byte appears in the
//! logs, in error messages, or in any HTTP response.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use procuhelp_core::SecretBytes;
use procuhelp_core::vault::{FileVault, SecretName, SecretProvider, WrappedKey};
use procuhelp_server::cli::Cli;
use procuhelp_tenancy::embedded::LocalCluster;
use procuhelp_tenancy::{FieldRef, RuntimeRole, TenantDb};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CLIENT_SECRET: &str = "entra-client-secret-Zq9!kP2#vL7";
/// Sent in a query string and as credentials: never logged.
const LOGGED_EMAIL: &str = "person.in.a.query@example.test";
const FAKE_TOKEN: &str = "0191d2a4.NotARealTokenButSecretLooking42";
const IBANS: [&str; 4] = [
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "GB29NWBK60161331926819",
    "NL91ABNA0417164300",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn run(args: &[&str]) {
    let cli = Cli::try_parse_from(std::iter::once("procuhelp-server").chain(args.iter().copied()))
        .unwrap();
    procuhelp_server::run(cli).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_responses() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test binary installs the only subscriber");

    let dir = std::env::temp_dir().join(format!("ph-secrets-{}", uuid::Uuid::new_v4().simple()));
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();

    // Seed: organisations, suppliers with encrypted IBANs; then rotate every key.
    run(&["seed-demo", "--data-dir", &data_arg]).await;
    let vault = FileVault::open_or_create(&data.join("vault")).unwrap();
    let name = SecretName::new("sso/entra/client-secret").unwrap();
    vault
        .put(&name, SecretBytes::new(CLIENT_SECRET.as_bytes().to_vec()))
        .await
        .unwrap();
    assert_eq!(
        vault.get(&name).await.unwrap().value.expose(),
        CLIENT_SECRET.as_bytes()
    );
    run(&["keys", "rotate", "--data-dir", &data_arg, "--batch", "1"]).await;

    // Every IBAN still decrypts after rotation; collect the key material to look for.
    let mut secrets: Vec<Vec<u8>> = vec![CLIENT_SECRET.as_bytes().to_vec()];
    secrets.extend(IBANS.iter().map(|i| i.as_bytes().to_vec()));
    secrets.push(std::fs::read(data.join("vault/vault.key")).unwrap());
    let cluster = LocalCluster::start(&data.join("pg"), None).await.unwrap();
    let runtime = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, RuntimeRole::DEFAULT_NAME))
        .await
        .unwrap();
    let owner = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(cluster.connect_options(LocalCluster::DATABASE, LocalCluster::OWNER_ROLE))
        .await
        .unwrap();
    let orgs: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM app.organisations")
        .fetch_all(&owner)
        .await
        .unwrap();
    let vault: Arc<dyn SecretProvider> = Arc::new(vault);
    let tenants = TenantDb::new(runtime.clone());
    let cipher = procuhelp_server::keys::field_cipher(tenants.clone(), vault.clone());
    let mut decrypted = Vec::new();
    let mut error_texts = Vec::new();
    for org in orgs {
        let org = procuhelp_core::OrgId::from_uuid(org).unwrap();
        let mut tx = tenants.begin(org).await.unwrap();
        let rows: Vec<(uuid::Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT id, iban_sealed FROM app.suppliers")
                .fetch_all(tx.conn())
                .await
                .unwrap();
        let keys: Vec<(i32, Vec<u8>)> = sqlx::query_as(
            "SELECT kek_version, wrapped FROM app.data_keys WHERE wrapped IS NOT NULL",
        )
        .fetch_all(tx.conn())
        .await
        .unwrap();
        // The rotation of this organisation is in its audit trail (tenancy's rotation
        // hands each org to the server's RotationAudit).
        let rotated: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM app.audit_events WHERE action = 'keys.rotated'",
        )
        .fetch_one(tx.conn())
        .await
        .unwrap();
        assert_eq!(rotated, 1, "one KeysRotated event for {org}");
        tx.commit().await.unwrap();
        for (kek_version, ciphertext) in keys {
            let kek = format!("tenant-{}", org.as_uuid().simple());
            let dek = vault
                .unwrap_key(
                    &kek,
                    &WrappedKey {
                        kek_version: kek_version as u32,
                        ciphertext,
                    },
                )
                .await
                .unwrap();
            secrets.push(dek.expose().to_vec());
        }
        for (id, sealed) in rows {
            assert_eq!(
                procuhelp_core::crypto::key_version(&sealed).unwrap(),
                2,
                "rotation re-encrypted every row"
            );
            let row = id.to_string();
            let plain = cipher
                .decrypt(org, FieldRef::new("suppliers", "iban", &row), &sealed)
                .await
                .unwrap();
            decrypted.push(String::from_utf8(plain.expose().to_vec()).unwrap());
            // Errors (wrong row) name the problem, never the value.
            let err = cipher
                .decrypt(
                    org,
                    FieldRef::new("suppliers", "iban", "other-row"),
                    &sealed,
                )
                .await
                .unwrap_err();
            error_texts.push(format!("{err} {err:?}"));
            error_texts.push(format!("{plain:?}"));
        }
    }
    decrypted.sort();
    let mut expected: Vec<String> = IBANS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(decrypted, expected);
    runtime.close().await;
    owner.close().await;
    cluster.stop().await.unwrap();

    // Serve and read every page the server has.
    let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cli = Cli::try_parse_from([
        "procuhelp-server",
        "serve",
        "--data-dir",
        &data_arg,
        "--https-addr",
        &https.to_string(),
    ])
    .unwrap();
    let procuhelp_server::cli::Command::Serve(args) = cli.command else {
        unreachable!()
    };
    let handle = axum_server::Handle::new();
    let server = tokio::spawn(procuhelp_server::serve::serve(args, Some(handle.clone())));
    tokio::time::timeout(Duration::from_secs(60), handle.listening())
        .await
        .unwrap()
        .unwrap();
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let mut responses = String::new();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/api/suppliers"),
        ("POST", "/api/suppliers"),
        ("GET", "/nope"),
    ] {
        let res = client
            .request(
                method.parse().unwrap(),
                format!("https://127.0.0.1:{}{path}", https.port()),
            )
            .send()
            .await
            .unwrap();
        responses.push_str(&format!("{:?}", res.headers()));
        responses.push_str(&res.text().await.unwrap());
    }
    // The access log: what a client sends in a query, a cookie, a token or a forged
    // request id never reaches it; the route template, status and request id do.
    let res = client
        .get(format!(
            "https://127.0.0.1:{}/api/suppliers/{}?email={LOGGED_EMAIL}",
            https.port(),
            uuid::Uuid::nil()
        ))
        .header("authorization", format!("Bearer {FAKE_TOKEN}"))
        .header("cookie", format!("procuhelp_session={FAKE_TOKEN}"))
        .header("x-request-id", "forged id=1; level=error")
        .send()
        .await
        .unwrap();
    let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(echoed.len(), 32, "a forged id is replaced: {echoed}");
    let res = client
        .get(format!("https://127.0.0.1:{}/healthz", https.port()))
        .header("x-request-id", "caller-7.trace_1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "caller-7.trace_1");
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    server.await.unwrap().unwrap();

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 10_000,
        "TRACE logging was not captured ({} bytes)",
        logs.len()
    );
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("procuhelp::access"))
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("route=/api/suppliers/{supplier}")
                && l.contains("status=401")
                && l.contains(&format!("request_id={echoed}"))
                && l.contains("latency_us=")),
        "{access:#?}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("request_id=caller-7.trace_1"))
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("route=(no route)") && l.contains("status=404"))
    );
    for forbidden in [LOGGED_EMAIL, FAKE_TOKEN, "forged", "email="] {
        assert!(!logs.contains(forbidden), "{forbidden} reached the logs");
    }
    let haystacks = [
        ("logs", &logs),
        ("responses", &responses),
        ("errors", &error_texts.join("\n")),
    ];
    for secret in &secrets {
        let forms = [
            String::from_utf8_lossy(secret).into_owned(),
            hex::encode(secret),
            base64::engine::general_purpose::STANDARD.encode(secret),
            format!("{secret:?}"),
        ];
        for (what, text) in &haystacks {
            for form in &forms {
                if form.len() >= 8 {
                    assert!(
                        !text.contains(form.as_str()),
                        "a secret ({} bytes) appears in the {what}",
                        secret.len()
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
