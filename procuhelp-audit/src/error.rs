//! The crate's one error type.

/// Why an audit operation failed.
///
/// No variant ever carries secret material or personal data: values are described by the
/// field they were in and their size, never echoed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink could not make the event durable (database down, disk full, sink closed).
    /// The caller must not perform or acknowledge the audited operation.
    #[error("audit sink unavailable: {0}")]
    Unavailable(String),
    /// A field of the event is not acceptable (caller mistake).
    #[error("invalid audit event: {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field of the event is larger than its limit.
    #[error("audit event field {field} is {actual} bytes, the limit is {limit}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its limit in bytes.
        limit: usize,
        /// Its size in bytes.
        actual: usize,
    },
    /// A string is not a known action.
    #[error(transparent)]
    UnknownAction(#[from] UnknownAction),
    /// A string is not a known outcome.
    #[error(transparent)]
    UnknownOutcome(#[from] UnknownOutcome),
    /// Local I/O (file sink, export writer).
    #[error("audit I/O ({context}): {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The database refused or failed a statement (the message names no values).
    #[error("audit storage: {0}")]
    Storage(String),
    /// The organisation does not exist.
    #[error("unknown organisation {0}")]
    UnknownOrg(procuhelp_core::OrgId),
    /// The vault failed (audit KEK, signing key).
    #[error("audit vault: {0}")]
    Vault(#[from] procuhelp_core::vault::VaultError),
    /// Encryption of personal data failed.
    #[error("audit crypto: {0}")]
    Crypto(#[from] procuhelp_core::crypto::CryptoError),
    /// A signing key or signature could not be used.
    #[error("audit signature: {0}")]
    Signature(&'static str),
    /// An export file (or import) is malformed at a line.
    #[error("audit export line {line}: {reason}")]
    BadInput {
        /// The 1-based line number.
        line: u64,
        /// What is wrong (never the line's content).
        reason: String,
    },
    /// An internal invariant did not hold (a bug, reported rather than panicking).
    #[error("audit internal error: {0}")]
    Internal(&'static str),
}

/// A string that names no [`Action`](crate::Action).
///
/// Carries the length of the input only: unknown strings may come from untrusted files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action ({len} bytes)")]
pub struct UnknownAction {
    /// Length of the rejected input.
    pub len: usize,
}

/// A string that names no [`Outcome`](crate::Outcome).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit outcome ({len} bytes)")]
pub struct UnknownOutcome {
    /// Length of the rejected input.
    pub len: usize,
}

/// `Result` with [`AuditError`].
pub type Result<T, E = AuditError> = std::result::Result<T, E>;
