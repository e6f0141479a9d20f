//! Signing and storing checkpoints of a chain's head, and reading them back.

use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use sqlx::Row as _;
use time::OffsetDateTime;

use super::PgAuditSink;
use super::storage::{db_err, tenancy_err};
use crate::chain::hash_from_slice;
use crate::checkpoint::{
    Checkpoint, CheckpointSigner, Ed25519Signer, PublicKey, VaultSigner, sign_checkpoint,
};
use crate::{AuditError, Result};

/// The checkpoints of `org` from `from` to `to` (inclusive), in sequence order.
pub(super) async fn load_checkpoints(
    tx: &mut TenantTx,
    org: OrgId,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT seq, head_hash, at, public_key, signature FROM app.audit_checkpoints
         WHERE org_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
    )
    .bind(org.as_uuid())
    .bind(i64::try_from(from).unwrap_or(i64::MAX))
    .bind(i64::try_from(to).unwrap_or(i64::MAX))
    .fetch_all(tx.conn())
    .await
    .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get(0).map_err(db_err)?;
        let head: Vec<u8> = row.try_get(1).map_err(db_err)?;
        let public_key: Vec<u8> = row.try_get(3).map_err(db_err)?;
        let signature: Vec<u8> = row.try_get(4).map_err(db_err)?;
        out.push(Checkpoint {
            org,
            seq: u64::try_from(seq).map_err(|_| AuditError::Internal("negative seq"))?,
            head: hash_from_slice("head_hash", &head)?,
            at: row.try_get(2).map_err(db_err)?,
            public_key: hash_from_slice("public_key", &public_key)?,
            signature: <[u8; 64]>::try_from(&signature[..]).map_err(|_| AuditError::Invalid {
                field: "signature",
                reason: "must be 64 bytes",
            })?,
        });
    }
    Ok(out)
}

impl PgAuditSink {
    pub(super) async fn signer(&self) -> Result<&dyn CheckpointSigner> {
        let inner = self.inner();
        let signer = inner
            .signer
            .get_or_try_init(|| async {
                let key = Ed25519Signer::from_vault(inner.vault.as_ref()).await?;
                let legacy: std::sync::Arc<dyn CheckpointSigner> =
                    std::sync::Arc::new(VaultSigner {
                        key,
                        vault: inner.vault.clone(),
                    });
                Ok::<_, AuditError>(legacy)
            })
            .await?;
        Ok(signer.as_ref())
    }

    /// The public keys that sign this deployment's checkpoints (every version the signer
    /// knows), for publishing: verifiers pin them ([`Trust::Pinned`](crate::Trust::Pinned)).
    pub async fn signing_keys(&self) -> Result<Vec<PublicKey>> {
        self.signer().await?.public_keys().await
    }

    /// Signs and stores a checkpoint of `org`'s current head; `None` for an empty chain.
    /// Call it periodically per active organisation (and [`export`](Self::export) signs
    /// one of its last event, so every export ends at a checkpoint).
    pub async fn checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>> {
        self.checkpoint_at(org, None, OffsetDateTime::now_utc())
            .await
    }

    /// Signs and stores a checkpoint of `org`'s chain at `seq` (`None`: the head) — a
    /// true statement about the past too, since the chain never changes. A checkpoint
    /// already stored at that sequence number is kept (and returned as signed now).
    /// `at` is the signing time the checkpoint states.
    pub(crate) async fn checkpoint_at(
        &self,
        org: OrgId,
        seq: Option<u64>,
        at: OffsetDateTime,
    ) -> Result<Option<Checkpoint>> {
        let signer = self.signer().await?;
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM app.audit_events
             WHERE org_id = $1 AND ($2::bigint IS NULL OR seq = $2) ORDER BY seq DESC LIMIT 1",
        )
        .bind(org.as_uuid())
        .bind(seq.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
        .fetch_optional(tx.conn())
        .await
        .map_err(db_err)?;
        let Some((seq, hash)) = head else {
            tx.rollback().await.map_err(tenancy_err)?;
            return Ok(None);
        };
        let seq = u64::try_from(seq).map_err(|_| AuditError::Internal("negative seq"))?;
        let cp = sign_checkpoint(signer, org, seq, hash_from_slice("hash", &hash)?, at).await?;
        sqlx::query(
            "INSERT INTO app.audit_checkpoints (org_id, seq, head_hash, at, public_key, signature)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, seq) DO NOTHING",
        )
        .bind(org.as_uuid())
        .bind(i64::try_from(cp.seq).unwrap_or(i64::MAX))
        .bind(cp.head.to_vec())
        .bind(cp.at)
        .bind(cp.public_key.to_vec())
        .bind(cp.signature.to_vec())
        .execute(tx.conn())
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(tenancy_err)?;
        Ok(Some(cp))
    }
}
