//! The server's audit log: the PostgreSQL chain, with a signed checkpoint per active
//! organisation at a fixed interval (what an auditor checks an export against), signed by
//! a key the runtime's vault does not hold ([`checkpoint_signer`]), and how a verifier
//! says which keys it trusts ([`trust`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use procuhelp_audit::{AuditEvent, AuditSink, CheckpointSigner, PgAuditSink, Receipt, Trust};
use procuhelp_core::OrgId;

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

/// Every `every`, records the summaries of refusal windows that have ended (until the
/// task is aborted; call `flush_all` at shutdown).
pub fn spawn_refusal_flush<S: AuditSink + 'static>(
    refusals: &Arc<procuhelp_audit::RefusalAggregator<S>>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let refusals = refusals.clone();
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        timer.tick().await;
        loop {
            timer.tick().await;
            if let Err(e) = refusals
                .flush_expired(time::OffsetDateTime::now_utc())
                .await
            {
                tracing::error!(error = %e, "refusal counts not recorded; retrying");
            }
        }
    })
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

/// Records into the chain and remembers which organisations wrote since the last
/// checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointingSink {
    log: PgAuditSink,
    active: Arc<Mutex<HashSet<OrgId>>>,
}

impl CheckpointingSink {
    /// Wraps `log`.
    pub fn new(log: PgAuditSink) -> Self {
        Self {
            log,
            active: Arc::default(),
        }
    }

    /// Signs a checkpoint for every organisation that wrote since the last call.
    pub async fn checkpoint_active(&self) -> usize {
        let orgs: Vec<OrgId> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut signed = 0;
        for org in orgs {
            match self.log.checkpoint(org).await {
                Ok(_) => signed += 1,
                Err(e) => {
                    tracing::error!(%org, error = %e, "audit checkpoint failed");
                    // Try again next time.
                    self.active
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(org);
                }
            }
        }
        signed
    }

    /// Checkpoints every `every` until the task is aborted.
    pub fn spawn_checkpoints(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.tick().await;
            loop {
                timer.tick().await;
                sink.checkpoint_active().await;
            }
        })
    }
}

#[async_trait::async_trait]
impl AuditSink for CheckpointingSink {
    async fn record(&self, event: AuditEvent) -> procuhelp_audit::Result<Receipt> {
        let org = event.org;
        let receipt = self.log.record(event).await?;
        if let Some(org) = org {
            self.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(org);
        }
        Ok(receipt)
    }
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
