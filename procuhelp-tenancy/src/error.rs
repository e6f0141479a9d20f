//! The crate's error type.

use procuhelp_core::OrgId;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tenant-scoped data access.
///
/// Callers branch on the variant; messages name the problem without echoing row data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The organisation does not exist (or is not visible to the runtime role).
    #[error("unknown organisation {0}")]
    UnknownOrg(OrgId),
    /// The requested record does not exist in this organisation.
    #[error("not found")]
    NotFound,
    /// Input failed validation before reaching the database.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The database refused a write whose row would not belong to the current
    /// organisation (row-level security WITH CHECK), or a read/write with no tenant set.
    #[error(
        "row-level security refused the statement: the row does not belong to the current organisation"
    )]
    TenantViolation,
    /// A uniqueness or other integrity constraint was violated.
    #[error("constraint violated: {constraint}")]
    Conflict {
        /// Name of the constraint.
        constraint: String,
    },
    /// The database could not be reached or the pool is exhausted/closed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The personal-data register and the live schema disagree.
    #[error(transparent)]
    Register(Box<crate::personal_data::RegisterError>),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The composed schema, or the database's migration history, was refused.
    #[error(transparent)]
    Schema(#[from] crate::migrate::SchemaError),
    /// The database's security posture would let isolation be bypassed.
    #[error(transparent)]
    Posture(#[from] crate::posture::PostureError),
    /// A cryptographic failure: wrong context, tampering, unknown key version.
    #[error("encryption: {0}")]
    Crypto(procuhelp_core::crypto::CryptoError),
    /// A data key cannot be used: retired, destroyed, or its KEK is gone.
    #[error("data key unavailable: {0}")]
    KeyUnavailable(&'static str),
    /// The secret provider (vault) failed.
    #[error("vault: {0}")]
    Vault(#[from] procuhelp_core::vault::VaultError),
    /// The application's audit hook refused to record a completed key rotation
    /// ([`RotationAudit`](crate::rotation::RotationAudit)): the run stopped there.
    #[error("the audit trail refused to record the key rotation: {0}")]
    AuditRefused(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A role name, URL or other configuration value is unusable.
    #[error("misconfigured: {0}")]
    Config(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e),
            sqlx::Error::Database(db) => {
                // 42501 insufficient_privilege is what RLS WITH CHECK raises
                // ("new row violates row-level security policy").
                match db.code().as_deref() {
                    // PH409: app.enter_org refused to switch the transaction's tenant.
                    Some("PH409") => Error::TenantViolation,
                    Some("42501") if db.message().contains("row-level security") => {
                        Error::TenantViolation
                    }
                    Some("23505") | Some("23503") | Some("23514") => Error::Conflict {
                        constraint: db.constraint().unwrap_or("unnamed").to_owned(),
                    },
                    _ => Error::Database(e),
                }
            }
            _ => Error::Database(e),
        }
    }
}
