#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue #11 finding 9: whoever holds the runtime's vault can rewrite the trail and
//! re-sign it. A forged export — an event changed, the chain re-hashed, the checkpoints
//! re-signed with a fresh key embedded in the file — must be refused by a verifier that
//! pins the deployment's public key.

mod common;

use common::{Fixture, event};
use std::sync::Arc;

use procuhelp_audit::{
    Action, Actor, AuditEvent, AuditSink, ChainedEvent, CheckpointSigner, Ed25519Signer,
    ExportFormat, ExportRange, Outcome, ProblemKind, Subject, Trust, verify_export,
};
use procuhelp_core::UserId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    at: String,
    actor_kind: String,
    actor_id: Option<uuid::Uuid>,
    action: String,
    target: Option<String>,
    outcome: String,
    context: Box<RawValue>,
    request_id: Option<String>,
    subject: Option<String>,
    person_key: Option<uuid::Uuid>,
    personal: Option<String>,
    prev_hash: String,
    hash: String,
}

async fn export(f: &Fixture, sink: &procuhelp_audit::PgAuditSink) -> Vec<u8> {
    let mut out = Vec::new();
    let access = AuditEvent::new(
        Some(f.a),
        Actor::User { id: UserId::new() },
        Action::AuditExported,
        Outcome::Success,
    );
    sink.export(
        access,
        ExportRange::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .await
    .unwrap();
    out
}

/// What an attacker with write access to the file does: change `supplier:4` in one
/// event, re-hash every event from there, and replace each checkpoint — and the export's
/// seal — with one signed by `attacker` over the new heads (its public key embedded, as
/// the format allows).
async fn forge(file: &[u8], attacker: &Ed25519Signer) -> Vec<u8> {
    use base64::Engine as _;
    let text = String::from_utf8(file.to_vec()).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let n = header["checkpoints"].as_u64().unwrap();
    let org: procuhelp_core::OrgId = serde_json::from_value(header["org"].clone()).unwrap();
    let mut cps: Vec<serde_json::Value> = (0..n)
        .map(|_| serde_json::from_str(lines.next().unwrap()).unwrap())
        .collect();
    let mut prev = [0u8; 32];
    let mut heads = std::collections::HashMap::new();
    let mut events = Vec::new();
    for l in lines {
        let mut line: Line = serde_json::from_str(l).unwrap();
        if line.target.as_deref() == Some("supplier:4") {
            line.target = Some("supplier:X".to_owned());
        }
        let chained = ChainedEvent {
            org,
            seq: line.seq,
            at: time::OffsetDateTime::parse(
                &line.at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap(),
            actor: Actor::from_parts(&line.actor_kind, line.actor_id).unwrap(),
            action: line.action.parse().unwrap(),
            target: line.target.clone(),
            outcome: line.outcome.parse().unwrap(),
            context: line.context.get().to_owned(),
            request_id: line.request_id.clone(),
            subject: line.subject.as_deref().map(|s| Subject::new(s).unwrap()),
            person_key: line.person_key,
            personal: line
                .personal
                .as_deref()
                .map(|p| base64::engine::general_purpose::STANDARD.decode(p).unwrap()),
            prev_hash: prev,
            hash: [0; 32],
        };
        let hash = chained.compute_hash();
        line.prev_hash = hex::encode(prev);
        line.hash = hex::encode(hash);
        heads.insert(line.seq, hash);
        prev = hash;
        events.push(serde_json::to_string(&line).unwrap());
    }
    for cp in &mut cps {
        let seq = cp["checkpoint"]["seq"].as_u64().unwrap();
        let forged = attacker.sign_head(org, seq, heads[&seq], time::OffsetDateTime::now_utc());
        *cp = serde_json::json!({ "checkpoint": forged });
    }
    let mut header = header;
    if header.get("seal").is_some() {
        let mut seal: procuhelp_audit::ExportSeal =
            serde_json::from_value(header["seal"].clone()).unwrap();
        seal.head = prev;
        seal.public_key = attacker.public_key();
        seal.signature = attacker.sign(&seal.signed_bytes()).await.unwrap();
        header["seal"] = serde_json::to_value(&seal).unwrap();
    }
    let mut out = vec![header.to_string()];
    out.extend(cps.iter().map(|c| c.to_string()));
    out.extend(events);
    let mut s = out.join("\n");
    s.push('\n');
    s.into_bytes()
}

fn attacker() -> Ed25519Signer {
    Ed25519Signer::from_pkcs8(&Ed25519Signer::generate_pkcs8().unwrap()).unwrap()
}

#[tokio::test]
async fn a_rehashed_resigned_forged_export_is_refused() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..10 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let file = export(&f, &sink).await;
    let pinned = common::pinned(&sink).await;
    assert!(verify_export(&file[..], &pinned).unwrap().is_intact());
    let attacker = attacker();
    let forged = forge(&file, &attacker).await;
    assert_ne!(forged, file);
    let report = verify_export(&forged[..], &pinned).unwrap();
    let problem = report.problem.expect("a forged export must not verify");
    assert_eq!(problem.kind, ProblemKind::UntrustedKey, "{report:?}");
    assert_eq!(problem.seq, 11, "the checkpoint at the export's end");
    assert_eq!(report.untrusted_key, Some(attacker.public_key()));
    // Trusting the keys the file brings is exactly what the forger counts on: it passes.
    let blind = verify_export(&forged[..], &Trust::DangerouslyTrustEmbeddedKeys).unwrap();
    assert!(blind.is_intact(), "{blind:?}");
    f.teardown().await;
}

/// Stripping every checkpoint (header says none) after re-hashing must not pass either:
/// a pinned verification wants the end of the export signed.
#[tokio::test]
async fn a_forged_export_without_checkpoints_is_unsigned() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..6 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    let file = export(&f, &sink).await;
    let forged = forge(&file, &attacker()).await;
    let text = String::from_utf8(forged).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines[0].replace("\"checkpoints\":1", "\"checkpoints\":0");
    lines[0] = &header;
    lines.remove(1);
    let stripped = format!("{}\n", lines.join("\n"));
    let report = verify_export(stripped.as_bytes(), &common::pinned(&sink).await).unwrap();
    let problem = report.problem.expect("an unsigned export must not verify");
    assert_eq!((problem.seq, problem.kind), (1, ProblemKind::Unsigned));
    f.teardown().await;
}

#[test]
fn pinning_nothing_is_refused() {
    assert!(matches!(
        Trust::pinned(Vec::new()),
        Err(procuhelp_audit::AuditError::Invalid {
            field: "trusted_keys",
            ..
        })
    ));
}

/// The live chain too: a checkpoint stored by someone with a key the verifier did not pin
/// (the table owner, or whoever holds the runtime's vault) is reported.
#[tokio::test]
async fn live_verification_refuses_checkpoints_of_an_unpinned_key() {
    let f = Fixture::new().await;
    let sink = f.sink();
    for n in 0..3 {
        sink.record(event(f.a, n)).await.unwrap();
    }
    sink.checkpoint(f.a).await.unwrap();
    let ours = common::pinned(&sink).await;
    assert!(sink.verify_live(f.a, &ours).await.unwrap().is_intact());
    let other = Trust::pinned([attacker().public_key()]).unwrap();
    let report = sink.verify_live(f.a, &other).await.unwrap();
    assert_eq!(
        report.problem.map(|p| (p.seq, p.kind)),
        Some((3, ProblemKind::UntrustedKey))
    );
    f.teardown().await;
}

/// The file signer keeps its key in a file of its own (0600), apart from the vault: the
/// vault holds no signing key, and a loose file is refused.
#[tokio::test]
async fn a_file_signer_keeps_the_key_out_of_the_vault() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new().await;
    let dir = std::env::temp_dir().join(format!("audit-signing-{}", uuid::Uuid::now_v7()));
    let path = dir.join("checkpoint.key");
    let signer = Arc::new(Ed25519Signer::open_or_create_file(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = Ed25519Signer::open_or_create_file(&path).unwrap();
    assert_eq!(again.public_key(), signer.public_key(), "the key persists");
    let sink = f.sink().with_signer(signer.clone()).unwrap();
    sink.record(event(f.a, 1)).await.unwrap();
    let cp = sink.checkpoint(f.a).await.unwrap().unwrap();
    assert_eq!(cp.public_key, signer.public_key());
    assert_eq!(
        sink.signing_keys().await.unwrap(),
        vec![signer.public_key()]
    );
    let name = procuhelp_core::vault::SecretName::new(procuhelp_audit::SIGNING_KEY_NAME).unwrap();
    assert!(
        f.vault.get(&name).await.is_err(),
        "no signing key in the vault"
    );
    assert!(
        f.sink()
            .with_signer(signer.clone())
            .unwrap()
            .with_signer(signer)
            .is_err()
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Ed25519Signer::open_or_create_file(&path).is_err());
    std::fs::remove_dir_all(&dir).ok();
    f.teardown().await;
}
