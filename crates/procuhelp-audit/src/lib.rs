//! # procuhelp-audit
//!
//! The audit trail. Every privileged action produces an [`AuditEvent`] (who, what, to
//! which target, how it ended, when, in what context) and hands it to an [`AuditSink`],
//! which returns only once the event is durable. Operations **fail closed**: when the
//! sink returns an error, the operation must not happen.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procuhelp_audit::AuditError> {
//! use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, MemorySink, Outcome};
//! use procuhelp_core::{OrgId, UserId};
//!
//! let sink = MemorySink::new();
//! let (org, user) = (OrgId::new(), UserId::new());
//! let receipt = sink
//!     .record(
//!         AuditEvent::new(Some(org), Actor::User { id: user }, Action::SupplierInvited, Outcome::Success)
//!             .target("supplier:acme")
//!             .context(serde_json::json!({ "country": "DE" }))
//!             .person(user, Some("ada@example.com"), Some("Ada")),
//!     )
//!     .await?;
//! assert_eq!(receipt.seq, Some(1));
//!
//! // A sink that cannot write refuses, and the caller refuses the operation.
//! sink.set_failing(true);
//! let refused = sink
//!     .record(AuditEvent::new(Some(org), Actor::System, Action::KeysRotated, Outcome::Success))
//!     .await;
//! assert!(refused.is_err());
//! # Ok(()) }
//! ```
//!
//! * [`Action`] and [`Outcome`] have stable string forms (they are hashed and exported).
//! * Personal data (e-mail, display name, source address, user agent) sits in
//!   [`PersonalData`], apart from the rest, so the PostgreSQL sink can encrypt it under a
//!   per-person key and erase it by destroying that key.
//! * Sinks: [`MemorySink`] (tests), [`FanOutSink`] (all must succeed),
//!   [`JsonLinesFileSink`] (append + fsync).
#![forbid(unsafe_code)]

mod action;
mod canonical;
mod error;
mod event;
mod sink;
mod sinks;

pub use action::{Action, Outcome};
pub use error::{AuditError, Result, UnknownAction, UnknownOutcome};
pub use event::{
    Actor, ActorContext, AuditEvent, MAX_CONTEXT_BYTES, MAX_DISPLAY_NAME_BYTES, MAX_EMAIL_BYTES,
    MAX_REQUEST_ID_BYTES, MAX_SUBJECT_BYTES, MAX_TARGET_BYTES, MAX_USER_AGENT_CHARS, PersonalData,
    Subject,
};
pub use sink::{AuditSink, Receipt};
pub use sinks::{FailingSink, FanOutSink, JsonLinesFileSink, MemorySink};
