//! Checkpoint signing by OpenBao Transit against a real `bao server -dev` (started by
//! `scripts/openbao.sh start`; `scripts/test.sh` does it). Missing server = failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::Arc;

use common::{Fixture, event};
use procuhelp_audit::{
    Action, Actor, AuditEvent, AuditSink as _, CheckpointSigner, ExportFormat, ExportRange,
    Outcome, TransitConfig, TransitSigner, Trust, sign_checkpoint, verify_export,
};
use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start OpenBao with `eval \"$(scripts/openbao.sh start >&2; scripts/openbao.sh env)\"` (scripts/test.sh does this)")
    })
}

/// A raw call with the root token, for what the administrator does.
async fn root(method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let token = std::fs::read_to_string(env("PROCUHELP_OPENBAO_TOKEN_FILE")).unwrap();
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!("{}/v1/{path}", env("PROCUHELP_OPENBAO_ADDR")),
        )
        .header("X-Vault-Token", token.trim());
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The administrator's set-up: an ed25519 key and a token that may only sign with it
/// and read its public keys, written to a 0600 file.
async fn key_and_token(name: &str, exportable: bool) -> std::path::PathBuf {
    let (status, _) = root(
        reqwest::Method::POST,
        &format!("transit/keys/{name}"),
        Some(json!({ "type": "ed25519", "exportable": exportable })),
    )
    .await;
    assert!(status < 300, "creating the key: {status}");
    let policy = format!(
        "path \"transit/sign/{name}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}\n"
    );
    let (status, _) = root(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": policy })),
    )
    .await;
    assert!(status < 300, "writing the policy: {status}");
    let (status, token) = root(
        reqwest::Method::POST,
        "auth/token/create",
        Some(json!({ "policies": [name], "no_default_policy": true, "ttl": "10m" })),
    )
    .await;
    assert!(status < 300, "creating the token: {status}");
    let path = std::env::temp_dir().join(format!("{name}.token"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        token["auth"]["client_token"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    path
}

fn config(name: &str, token_file: &std::path::Path) -> TransitConfig {
    let mut c = TransitConfig::new(env("PROCUHELP_OPENBAO_ADDR"), token_file);
    c.key = name.to_owned();
    c
}

#[tokio::test]
async fn transit_signs_checkpoints_with_a_key_nobody_can_export() {
    let name = format!("procuhelp-audit-signing-{}", uuid::Uuid::new_v4().simple());
    let token_file = key_and_token(&name, false).await;
    let signer = Arc::new(
        TransitSigner::connect(config(&name, &token_file))
            .await
            .unwrap(),
    );
    // The public key is the one OpenBao publishes for the key's version 1.
    let (_, key) = root(reqwest::Method::GET, &format!("transit/keys/{name}"), None).await;
    let published = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(key["data"]["keys"]["1"]["public_key"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(&signer.public_key()[..], &published[..]);
    assert!(!format!("{signer:?}").contains("hvs."), "no token in Debug");

    // Checkpoints of a real chain, signed remotely, verify against the pinned key.
    let f = Fixture::new().await;
    let sink = f.sink().with_signer(signer.clone()).unwrap();
    for n in 0..5 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let cp = sink.checkpoint(f.a).await.unwrap().unwrap();
    assert!(cp.signature_is_valid());
    assert_eq!(cp.public_key, signer.public_key());
    let cp2 = sign_checkpoint(
        signer.as_ref(),
        f.a,
        3,
        [7; 32],
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(cp2.signature_is_valid());
    let mut out = Vec::new();
    sink.export(
        AuditEvent::new(
            Some(f.a),
            Actor::System,
            Action::AuditExported,
            Outcome::Success,
        ),
        ExportRange::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .await
    .unwrap();
    let trust = Trust::pinned(sink.signing_keys().await.unwrap()).unwrap();
    let report = verify_export(&out[..], &trust).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.signing_keys, vec![signer.public_key()]);

    // Neither the signing token nor the root token can take the key out.
    let token = std::fs::read_to_string(&token_file).unwrap();
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/transit/export/signing-key/{name}",
            env("PROCUHELP_OPENBAO_ADDR")
        ))
        .header("X-Vault-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        403,
        "the signing token may not export"
    );
    let (status, _) = root(
        reqwest::Method::GET,
        &format!("transit/export/signing-key/{name}"),
        None,
    )
    .await;
    assert!(
        status >= 400,
        "a non-exportable key is not exported even to root"
    );
    std::fs::remove_file(&token_file).ok();
    f.teardown().await;
}

#[tokio::test]
async fn an_exportable_or_missing_transit_key_is_refused() {
    let name = format!("procuhelp-audit-signing-{}", uuid::Uuid::new_v4().simple());
    let token_file = key_and_token(&name, true).await;
    let err = TransitSigner::connect(config(&name, &token_file))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exportable"), "{err}");
    let err = TransitSigner::connect(config("procuhelp-no-such-key", &token_file))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP"), "{err}");
    // Plain http off loopback is refused before any request.
    let mut off = config(&name, &token_file);
    off.addr = "http://bao.example.com:8200".to_owned();
    assert!(TransitSigner::connect(off).await.is_err());
    std::fs::remove_file(&token_file).ok();
}
