//! The server's audit wiring: the library's pipeline ([`pipeline`]: PostgreSQL chain →
//! periodic signed checkpoints → refusal aggregation → alerting), checkpoints signed by a
//! key the runtime's vault does not hold ([`checkpoint_signer`]), and how a verifier says
//! which keys it trusts ([`trust`]).

use std::sync::Arc;

use anyhow::Context as _;
use procuhelp_audit::{AuditPipeline, CheckpointSchedule, CheckpointSigner, PgAuditSink, Trust};

use crate::cli::DatabaseArgs;

/// The checkpoint signer the arguments name: OpenBao Transit (`--audit-transit-key`, the
/// key never leaves OpenBao), else the local key file (`--audit-signing-key-file`,
/// default `DATA_DIR/audit-signing/checkpoint.key`), apart from the data vault — whoever
/// holds the vault's files or `secrets` access cannot read it (see `docs/audit.md` for
/// what it does not protect against).
pub async fn checkpoint_signer(args: &DatabaseArgs) -> anyhow::Result<Arc<dyn CheckpointSigner>> {
    let v = &args.vault;
    if let (Some(key), Some(token_file), Some(addr)) = (
        &v.audit_transit_key,
        &v.audit_transit_token_file,
        &v.openbao_addr,
    ) {
        let mut config = procuhelp_audit::TransitConfig::new(addr.clone(), token_file.clone());
        config.key = key.clone();
        if let Some(ca) = &v.openbao_ca_file {
            config.ca_pem =
                std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        }
        let signer = procuhelp_audit::TransitSigner::connect(config)
            .await
            .context("the OpenBao Transit checkpoint key is not usable")?;
        return Ok(Arc::new(signer));
    }
    let path = v
        .audit_signing_key_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("audit-signing").join("checkpoint.key"));
    let signer = procuhelp_audit::Ed25519Signer::open_or_create_file(&path)
        .with_context(|| format!("opening the checkpoint signing key {}", path.display()))?;
    Ok(Arc::new(signer))
}

/// The server's audit pipeline over `log`: checkpoints signed by `signer` on the
/// library's default schedule (every ten minutes, or every 10,000 events of a chain),
/// unauthenticated refusals aggregated, alerts by `alerting` (`--alerts`). Call
/// [`AuditPipeline::shutdown`] after the server stopped.
pub fn pipeline(
    log: PgAuditSink,
    signer: Arc<dyn CheckpointSigner>,
    alerting: crate::alerting::Alerting,
    clock: Arc<dyn procuhelp_core::Clock>,
) -> anyhow::Result<AuditPipeline> {
    Ok(AuditPipeline::builder(log)
        .checkpoints(signer, CheckpointSchedule::default())
        .alerts(alerting.detectors, alerting.sink)
        .clock(clock)
        .build()?)
}

/// A public key as the 64 lowercase hex digits `--trusted-key` takes.
pub fn key_hex(key: &procuhelp_audit::PublicKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a verification trusts: the given keys (hex, or files holding hex lines), or —
/// only when asked for by name — the keys the checkpoints bring. Neither is refused: a
/// verification that trusts whatever it is shown proves nothing.
pub fn trust(keys: &[String], dangerously_trust_embedded_keys: bool) -> anyhow::Result<Trust> {
    if dangerously_trust_embedded_keys {
        return Ok(Trust::DangerouslyTrustEmbeddedKeys);
    }
    if keys.is_empty() {
        anyhow::bail!(
            "give the deployment's published checkpoint key with --trusted-key HEX|FILE \
             (print it with `audit public-key`); --dangerously-trust-embedded-keys checks \
             only consistency and accepts a re-signed forgery"
        );
    }
    let mut pinned = Vec::new();
    for key in keys {
        match procuhelp_audit::parse_public_key(key) {
            Ok(k) => pinned.push(k),
            Err(_) => {
                let text = std::fs::read_to_string(key).with_context(|| {
                    format!("--trusted-key {key:?} is neither 64 hex digits nor a readable file")
                })?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    pinned.push(
                        procuhelp_audit::parse_public_key(line)
                            .with_context(|| format!("a line of {key} is not a public key"))?,
                    );
                }
            }
        }
    }
    Ok(Trust::pinned(pinned)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report
    use super::*;

    #[test]
    fn verification_trust_needs_a_pinned_key_or_the_named_flag() {
        let err = trust(&[], false).unwrap_err().to_string();
        assert!(err.contains("--dangerously-trust-embedded-keys"), "{err}");
        assert_eq!(
            trust(&[], true).ok(),
            Some(Trust::DangerouslyTrustEmbeddedKeys)
        );
        let key = [7u8; 32];
        assert_eq!(
            trust(&[key_hex(&key)], false).ok(),
            Some(Trust::Pinned(vec![key]))
        );
        // A file of hex lines (as `audit public-key` prints them).
        let path = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, format!("{}\n{}\n", key_hex(&key), key_hex(&[8; 32]))).ok();
        assert_eq!(
            trust(&[path.display().to_string()], false).ok(),
            Some(Trust::Pinned(vec![key, [8; 32]]))
        );
        std::fs::write(&path, "not a key\n").ok();
        assert!(trust(&[path.display().to_string()], false).is_err());
        std::fs::remove_file(&path).ok();
        assert!(trust(&["zz".to_owned()], false).is_err());
    }
}
