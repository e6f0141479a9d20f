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
//!   The embedding application names its own actions with [`Action::app`] or
//!   [`app_action!`] (`app.claim.created`: the `app.` namespace is never an SDK action's).
//! * Personal data (e-mail, display name, source address, user agent) sits in
//!   [`PersonalData`], apart from the rest, so the PostgreSQL sink can encrypt it under a
//!   per-person key and erase it by destroying that key.
//! * Sinks: [`MemorySink`] (tests), [`FanOutSink`] (all must succeed),
//!   [`JsonLinesFileSink`] (append + fsync), and with the `postgres` feature
//!   `PgAuditSink`: append-only (grants and triggers), row-level security per tenant, a
//!   SHA-256 hash chain per organisation ([`ChainedEvent`]), group commit, appends inside
//!   the caller's transaction, per-person encryption and erasure of personal data.
//! * The pipeline (feature `postgres`): `AuditPipeline::builder(pg_sink)
//!   .checkpoints(signer, CheckpointSchedule::default()).alerts(detectors, sink).build()`
//!   gives the one `Arc<dyn AuditSink>` an application holds — PostgreSQL chain →
//!   checkpoints signed after N events and/or T (injected `Clock`) → refusal aggregation
//!   → alerting — and a background task with a graceful `shutdown`.
//! * Key rotation (feature `postgres`): `RotationAuditor` records each organisation's
//!   rotation by `procuhelp_tenancy::rotation::rotate_all` as a `keys.rotated` event.
//! * [`RefusalAggregator`]: repeated unauthenticated refusals from one source are
//!   recorded once in full and then as counts per window, so nobody can grow the
//!   append-only trail without bound.
//! * [`Checkpoint`]s: Ed25519-signed chain heads ([`CheckpointSigner`]: a local key file
//!   apart from the vault, [`Ed25519Signer`], or with the `transit` feature OpenBao
//!   Transit, `TransitSigner`, whose key the process can never export).
//! * Export (JSON lines, CSV) and verification: [`verify_export`] offline, `verify_live`
//!   on the database, both against the verifier's pinned keys ([`Trust`]); a
//!   [`VerifyReport`] names the first bad sequence number. A JSON-lines export carries an
//!   [`ExportSeal`] (its signed range and head), so a file cut at either end is found.
//! * Alerting: [`Detectors`] over the event stream (failed sign-ins per account, address
//!   and organisation, lockouts, traffic and error spikes), [`AlertSink`] with
//!   [`LogAlertSink`] and, with the `webhook` feature, `WebhookAlertSink`; the
//!   [`AlertingSink`] wrapper records first, then alerts without blocking.
//!
//! The design (byte layouts, enforcement, limits) is in `docs/audit.md`.
#![forbid(unsafe_code)]

mod action;
mod alert;
mod app_action;
mod canonical;
mod chain;
mod checkpoint;
mod error;
mod event;
mod export;
mod import;
mod key_file;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pipeline;
#[cfg(feature = "postgres")]
mod register;
#[cfg(feature = "postgres")]
mod rotation;
#[cfg(feature = "postgres")]
mod schema;
mod seal;
mod sink;
mod sinks;
mod stream;
#[cfg(feature = "transit")]
mod transit;
mod verify;

pub use action::{Action, Outcome};
pub use alert::{
    Alert, AlertConfig, AlertKey, AlertKind, AlertSink, AlertingSink, Detectors, FanOutAlertSink,
    HttpResponse, LogAlertSink, SpikeRule, WindowRule,
};
#[cfg(feature = "webhook")]
pub use alert::{WebhookAlertSink, WebhookConfig, WebhookStats};
pub use app_action::{AppAction, AppActionError};
pub use chain::{CHAIN_VERSION, ChainedEvent, GENESIS, Hash};
pub use checkpoint::{
    Checkpoint, CheckpointSigner, Ed25519Signer, PublicKey, SIGNING_KEY_NAME, Trust,
    parse_public_key, sign_checkpoint,
};
pub use error::{AuditError, Result, UnknownAction, UnknownOutcome};
pub use event::{
    Actor, ActorContext, AuditEvent, MAX_CONTEXT_BYTES, MAX_DISPLAY_NAME_BYTES, MAX_EMAIL_BYTES,
    MAX_REQUEST_ID_BYTES, MAX_SUBJECT_BYTES, MAX_TARGET_BYTES, MAX_USER_AGENT_CHARS, PersonalData,
    Subject,
};
pub use export::{EXPORT_FORMAT, EXPORT_VERSION, MAX_LINE_BYTES, verify_export};
pub use import::{MAX_IMPORT_EVENTS, read_events};
#[cfg(feature = "postgres")]
pub use pg::{
    Erasure, EventQuery, ExportFormat, ExportRange, ExportSummary, ImportSummary, MAX_IMPORT_BYTES,
    MAX_READ, PersonalView, PgAuditConfig, PgAuditSink, StoredEvent, organisation_kek,
    unattributed_subject, verify_live,
};
#[cfg(feature = "postgres")]
pub use pipeline::{AuditPipeline, AuditPipelineBuilder, CheckpointSchedule, PipelineStats};
#[cfg(feature = "postgres")]
pub use rotation::RotationAuditor;
#[cfg(feature = "postgres")]
pub use schema::MIGRATIONS;
pub use seal::ExportSeal;
pub use sink::{AuditSink, Receipt};
pub use sinks::{
    AggregationConfig, FailingSink, FanOutSink, JsonLinesFileSink, MemorySink, RefusalAggregator,
};
#[cfg(feature = "nats")]
pub use stream::{NatsAuditStream, NatsStreamConfig, StreamNudge, StreamStats};
pub use stream::{Ocsf, STREAM_SCHEMA, StreamActor, StreamEvent};
#[cfg(feature = "transit")]
pub use transit::{TransitConfig, TransitSigner};
pub use verify::{ChainProblem, ProblemKind, VerifyReport};

/// The reserved organisation whose chain holds system-wide events (`org: None`).
///
/// Created by the migration as an `app.organisations` row named `(system audit chain)`,
/// so system events travel the same row-level-security path as every tenant's events
/// and no tenant can read them. Lists of organisations should leave it out.
pub fn system_chain_org() -> procuhelp_core::OrgId {
    // Non-nil constant: from_uuid cannot fail; the default is never reached.
    procuhelp_core::OrgId::from_uuid(uuid::Uuid::from_u128(0xa0d1)).unwrap_or_default()
}
