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
