//! Key rotation for every organisation: a new KEK version (re-wrapping the data keys), a
//! new data key, re-encryption of every encrypted column in batches, and retirement of
//! the old data-key versions.
//!
//! The columns come from the composed [`Schema`](crate::migrate::Schema): each crate and
//! the application declare their own ([`Migrations::encrypted_columns`]), so a column
//! nobody listed by hand is never left under an old key. Each organisation's completed
//! rotation goes to a [`RotationAudit`] (the application records it in its audit trail:
//! this crate does not depend on the audit crate).
//!
//! ```no_run
//! # async fn demo(owner: sqlx::PgPool, cipher: procuhelp_tenancy::FieldCipher,
//! #               schema: procuhelp_tenancy::Schema,
//! #               audit: &dyn procuhelp_tenancy::rotation::RotationAudit) -> procuhelp_tenancy::Result<()> {
//! // `cipher` runs on the owner's pool (the key jobs visit every organisation).
//! let done = procuhelp_tenancy::rotation::rotate_all(
//!     &owner, &cipher, &schema.encrypted_columns(), 500, audit,
//! ).await?;
//! for org in &done {
//!     println!("{org}");
//! }
//! # Ok(()) }
//! ```
//!
//! Interrupting a rotation leaves every value readable (old versions decrypt until
//! retired, and retirement refuses while a value still uses them); re-running finishes
//! the job.
//!
//! [`Migrations::encrypted_columns`]: crate::migrate::Migrations::encrypted_columns

use std::fmt;

use async_trait::async_trait;
use procuhelp_core::OrgId;
use sqlx::PgPool;

use crate::{EncryptedColumn, Error, FieldCipher, Result};

/// What rotating one organisation's keys did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrgRotation {
    /// The organisation.
    pub org: OrgId,
    /// Its KEK's new version.
    pub kek_version: u32,
    /// Data keys re-wrapped under it.
    pub rewrapped: usize,
    /// The new active data-key version.
    pub dek_version: u32,
    /// Values moved to the new data key.
    pub reencrypted: u64,
    /// Older data-key versions retired by this run.
    pub retired: Vec<u32>,
}

impl OrgRotation {
    /// The figures as JSON (no key material), e.g. for an audit event's context.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kek_version": self.kek_version,
            "rewrapped": self.rewrapped,
            "dek_version": self.dek_version,
            "reencrypted": self.reencrypted,
            "retired": self.retired,
        })
    }
}

impl fmt::Display for OrgRotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "organisation {}: KEK v{} ({} data keys re-wrapped), data key v{}, {} values re-encrypted",
            self.org, self.kek_version, self.rewrapped, self.dek_version, self.reencrypted
        )
    }
}

/// Records each organisation's completed rotation (e.g. a `KeysRotated` audit event).
///
/// An error stops the run before the next organisation: what was rotated stays rotated
/// and readable, and the error is returned as [`Error::AuditRefused`].
#[async_trait]
pub trait RotationAudit: Send + Sync {
    /// Called once per organisation, after its rotation is complete.
    async fn rotated(
        &self,
        rotation: &OrgRotation,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Rotates every organisation's keys and re-encrypts `columns` in batches of `batch`
/// rows, reporting each organisation to `audit`.
///
/// `owner` must be the schema owner's pool (only it lists every organisation; any other
/// role is refused before anything is touched), and `cipher` should run on it too.
pub async fn rotate_all(
    owner: &PgPool,
    cipher: &FieldCipher,
    columns: &[EncryptedColumn],
    batch: i64,
    audit: &dyn RotationAudit,
) -> Result<Vec<OrgRotation>> {
    let orgs = crate::organisation_ids(owner).await?;
    let mut done = Vec::with_capacity(orgs.len());
    for org in orgs {
        let rotation = rotate_org(cipher, org, columns, batch).await?;
        audit
            .rotated(&rotation)
            .await
            .map_err(Error::AuditRefused)?;
        done.push(rotation);
    }
    Ok(done)
}

/// Rotates one organisation's keys and re-encrypts `columns` (see [`rotate_all`]). The
/// caller records the result.
pub async fn rotate_org(
    cipher: &FieldCipher,
    org: OrgId,
    columns: &[EncryptedColumn],
    batch: i64,
) -> Result<OrgRotation> {
    if batch < 1 {
        return Err(Error::Invalid {
            field: "batch",
            problem: "must be at least 1",
        });
    }
    let (kek_version, rewrapped) = cipher.rotate_kek(org).await?;
    let dek_version = cipher.rotate_data_key(org).await?;
    let mut reencrypted = 0;
    for column in columns {
        loop {
            let progress = cipher.reencrypt_batch(org, column, batch).await?;
            reencrypted += progress.reencrypted;
            tracing::info!(%org, table = column.table, column = column.column,
                remaining = progress.remaining, "re-encryption progress");
            if progress.remaining == 0 {
                break;
            }
        }
    }
    let mut retired = Vec::new();
    for old in 1..dek_version {
        match cipher.retire(org, old, columns).await {
            Ok(()) => retired.push(old),
            // Already retired or destroyed: nothing to do.
            Err(Error::Invalid { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(OrgRotation {
        org,
        kek_version,
        rewrapped,
        dek_version,
        reencrypted,
        retired,
    })
}
