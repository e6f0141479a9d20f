//! The export file formats and offline verification of a JSON-lines export.
//!
//! JSON lines (the verifiable format), one object per line:
//! 1. a header: `{"format":"procuhelp-audit-export","version":2,"chain_version":1,
//!    "org":…,"first_seq":…,"last_seq":…,"prev_hash":…,"exported_at":…,"checkpoints":N,
//!    "seal":{…}}` — the seal ([`ExportSeal`](crate::ExportSeal), version 2) signs the
//!    range and its head hash, so that a cut at either end is found;
//! 2. `N` lines `{"checkpoint":{…}}` — signed checkpoints within the range, each with its
//!    public key (before the events, so cutting the file's tail cannot remove them);
//! 3. one line per event, in sequence order, with every hashed field (`context` verbatim
//!    as its canonical JSON, `personal` as base64 ciphertext, hashes as hex).
//!
//! CSV has one row per event and per checkpoint (column `record`), for people; cells that
//! a spreadsheet would run as a formula are prefixed with `'`.

mod decode;
mod line;
mod parallel;
mod read;
mod verify;
mod write;

use procuhelp_core::OrgId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::checkpoint::Checkpoint;

pub(crate) use read::{Classify, bad, read_line, utf8};
pub use verify::verify_export;
#[cfg_attr(not(feature = "postgres"), allow(unused_imports))] // used by the PostgreSQL export
pub(crate) use write::{CSV_COLUMNS, b64, format_time, write_csv_row, write_json_line};

/// The `format` value of an export header.
pub const EXPORT_FORMAT: &str = "procuhelp-audit-export";
/// The version of the exports written: 2 carries the [`ExportSeal`](crate::ExportSeal)
/// (version 1, without it, is still read; a pinned verification reports it
/// [`Unsealed`](crate::ProblemKind::Unsealed)).
pub const EXPORT_VERSION: u32 = 2;
/// The longest line accepted when verifying an export.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) chain_version: u32,
    pub(crate) org: OrgId,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) prev_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) exported_at: OffsetDateTime,
    pub(crate) checkpoints: u64,
    /// Version 2: the signed statement of the range (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seal: Option<crate::ExportSeal>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointLine {
    pub(crate) checkpoint: Checkpoint,
}

/// One event line, borrowed from the row being written.
#[derive(Serialize)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) struct LineOut<'a> {
    pub(crate) seq: u64,
    pub(crate) at: String,
    pub(crate) actor_kind: &'a str,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) action: &'a str,
    pub(crate) target: Option<&'a str>,
    pub(crate) outcome: &'a str,
    pub(crate) context: &'a RawValue,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) person_key: Option<Uuid>,
    pub(crate) personal: Option<String>,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}
