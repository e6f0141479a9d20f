//! Live verification of a chain in the database.

use futures_util::TryStreamExt as _;
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;

use super::PgAuditSink;
use super::checkpoint::load_checkpoints;
use super::storage::{RawRow, SELECT_ROWS, db_err, tenancy_err};
use crate::Result;
use crate::chain::{GENESIS, hash_from_slice};
use crate::checkpoint::Trust;
use crate::verify::{ChainVerifier, VerifyReport};

/// Verifies `tx`'s organisation's whole chain in the database: every link and hash, and
/// every checkpoint (signed by a key `trust` accepts, with a valid signature and the
/// right head); a checkpoint beyond the last event reports truncation. Events after the
/// last checkpoint are normal here (the next periodic checkpoint covers them).
pub async fn verify_live(tx: &mut TenantTx, trust: &Trust) -> Result<VerifyReport> {
    let org = tx.org();
    let checkpoints = load_checkpoints(tx, org, 1, u64::MAX >> 1).await?;
    let mut verifier = ChainVerifier::new(org, 1, GENESIS, checkpoints, trust);
    let sql = format!("{SELECT_ROWS} WHERE org_id = $1 ORDER BY seq");
    let mut rows = sqlx::query(&sql).bind(org.as_uuid()).fetch(tx.conn());
    while let Some(row) = rows.try_next().await.map_err(db_err)? {
        let raw = RawRow::from_row(&row)?;
        // A malformed stored hash is a broken link (or mismatch) at this row.
        let prev = hash_from_slice("prev_hash", &raw.prev_hash).unwrap_or([0xff; 32]);
        let stored = hash_from_slice("hash", &raw.hash).unwrap_or([0xff; 32]);
        match raw.fields(org, &prev) {
            Some(fields) => verifier.push(&fields, &stored),
            None => break,
        }
        if verifier.done_before(u64::try_from(raw.seq).unwrap_or(0)) {
            break;
        }
    }
    drop(rows);
    Ok(verifier.finish())
}

impl PgAuditSink {
    /// Verifies `org`'s chain in the database against `trust` — the published keys,
    /// pinned by the verifier: keys this process (or its vault) offers prove nothing to
    /// someone checking whether this process rewrote history.
    pub async fn verify_live(&self, org: OrgId, trust: &Trust) -> Result<VerifyReport> {
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let report = verify_live(&mut tx, trust).await?;
        tx.rollback().await.map_err(tenancy_err)?;
        Ok(report)
    }
}
