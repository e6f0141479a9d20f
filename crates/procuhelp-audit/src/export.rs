//! The export file formats and offline verification of a JSON-lines export.
//!
//! JSON lines (the verifiable format), one object per line:
//! 1. a header: `{"format":"procuhelp-audit-export","version":1,"chain_version":1,
//!    "org":…,"first_seq":…,"last_seq":…,"prev_hash":…,"exported_at":…,"checkpoints":N}`;
//! 2. `N` lines `{"checkpoint":{…}}` — signed checkpoints within the range, each with its
//!    public key (before the events, so cutting the file's tail cannot remove them);
//! 3. one line per event, in sequence order, with every hashed field (`context` verbatim
//!    as its canonical JSON, `personal` as base64 ciphertext, hashes as hex).
//!
//! CSV has one row per event and per checkpoint (column `record`), for people; cells that
//! a spreadsheet would run as a formula are prefixed with `'`.

use std::borrow::Cow;
use std::io::{BufRead, Read as _, Write};

use base64::Engine as _;
use procuhelp_core::OrgId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::chain::{CHAIN_VERSION, Fields, GENESIS, Hash, unix_micros};
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::verify::{ChainVerifier, VerifyReport};
use crate::{Action, AuditError, Outcome, Result};

/// The `format` value of an export header.
pub const EXPORT_FORMAT: &str = "procuhelp-audit-export";
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
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointLine {
    pub(crate) checkpoint: Checkpoint,
}

/// One event line, borrowed from the row being written.
#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    seq: u64,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow)]
    actor_kind: Cow<'a, str>,
    actor_id: Option<Uuid>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    context: &'a RawValue,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    person_key: Option<Uuid>,
    #[serde(borrow)]
    personal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

pub(crate) fn format_time(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339)
        .map_err(|_| AuditError::Internal("time does not format as RFC 3339"))
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn bad(line: u64, reason: impl Into<String>) -> AuditError {
    AuditError::BadInput {
        line,
        reason: reason.into(),
    }
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `buf` (without the newline).
/// `Ok(false)` at the end of input.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, line: u64) -> Result<bool> {
    buf.clear();
    let mut limited = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1);
    let n = limited
        .read_until(b'\n', buf)
        .map_err(|source| AuditError::Io {
            context: "reading the export",
            source,
        })?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        return Err(bad(
            line,
            format!("line longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    Ok(true)
}

fn utf8(buf: &[u8], line: u64) -> Result<&str> {
    std::str::from_utf8(buf).map_err(|_| bad(line, "invalid UTF-8"))
}

fn hex32(s: &str, line: u64, field: &str) -> Result<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.as_bytes(), &mut out)
        .map_err(|_| bad(line, format!("{field} is not 64 hex digits")))?;
    Ok(out)
}

/// Verifies a JSON-lines export, trusting the signing keys it names (compare
/// [`VerifyReport::signing_keys`] with the key the organisation published).
///
/// Returns the report with the first bad sequence number for any modified, deleted,
/// inserted, reordered or truncated event; malformed input (invalid UTF-8, unknown
/// action, a corrupt or oversized line) is an [`AuditError::BadInput`] naming the line.
pub fn verify_export<R: BufRead>(reader: R) -> Result<VerifyReport> {
    verify_export_trusting(reader, &[])
}

/// Like [`verify_export`], accepting only checkpoints signed by one of `trusted`
/// (an empty slice trusts the keys in the file).
pub fn verify_export_trusting<R: BufRead>(
    mut reader: R,
    trusted: &[PublicKey],
) -> Result<VerifyReport> {
    let mut buf = Vec::with_capacity(4096);
    let mut line: u64 = 1;
    if !read_line(&mut reader, &mut buf, line)? {
        return Err(bad(line, "empty export"));
    }
    let header: Header = serde_json::from_str(utf8(&buf, line)?)
        .map_err(|e| bad(line, format!("not an export header: {}", e.classify_str())))?;
    if header.format != EXPORT_FORMAT
        || header.version != 1
        || header.chain_version != CHAIN_VERSION
    {
        return Err(bad(line, "unsupported export format or version"));
    }
    let prev = hex32(&header.prev_hash, line, "prev_hash")?;
    if header.first_seq == 1 && prev != GENESIS {
        return Err(bad(
            line,
            "a chain starting at seq 1 must start from the genesis hash",
        ));
    }
    let mut checkpoints = Vec::new();
    for _ in 0..header.checkpoints {
        line += 1;
        if !read_line(&mut reader, &mut buf, line)? {
            return Err(bad(line, "missing checkpoint line"));
        }
        let cp: CheckpointLine = serde_json::from_str(utf8(&buf, line)?)
            .map_err(|e| bad(line, format!("not a checkpoint: {}", e.classify_str())))?;
        checkpoints.push(cp.checkpoint);
    }
    let org = header.org;
    let mut verifier = ChainVerifier::new(org, header.first_seq, prev, checkpoints, trusted);
    let mut personal = Vec::new();
    loop {
        line += 1;
        if !read_line(&mut reader, &mut buf, line)? {
            break;
        }
        let text = utf8(&buf, line)?;
        let ev: LineIn<'_> = serde_json::from_str(text)
            .map_err(|e| bad(line, format!("not an event: {}", e.classify_str())))?;
        // Typed checks: an unknown action or outcome is bad input, not a chain problem.
        ev.action
            .parse::<Action>()
            .map_err(|_| bad(line, "unknown action"))?;
        ev.outcome
            .parse::<Outcome>()
            .map_err(|_| bad(line, "unknown outcome"))?;
        if !matches!(
            ev.actor_kind.as_ref(),
            "user" | "service_account" | "system"
        ) {
            return Err(bad(line, "unknown actor kind"));
        }
        let at =
            OffsetDateTime::parse(&ev.at, &Rfc3339).map_err(|_| bad(line, "at is not RFC 3339"))?;
        let prev_hash = hex32(&ev.prev_hash, line, "prev_hash")?;
        let hash = hex32(&ev.hash, line, "hash")?;
        personal.clear();
        let has_personal = match &ev.personal {
            Some(p) => {
                base64::engine::general_purpose::STANDARD
                    .decode_vec(p.as_bytes(), &mut personal)
                    .map_err(|_| bad(line, "personal is not base64"))?;
                true
            }
            None => false,
        };
        let fields = Fields {
            org: org.as_uuid(),
            seq: ev.seq,
            prev_hash: &prev_hash,
            at_micros: unix_micros(at),
            actor_kind: &ev.actor_kind,
            actor_id: ev.actor_id,
            action: &ev.action,
            target: ev.target.as_deref(),
            outcome: &ev.outcome,
            context: ev.context.get(),
            request_id: ev.request_id.as_deref(),
            subject: ev.subject.as_deref(),
            person_key: ev.person_key,
            personal: has_personal.then_some(&personal[..]),
        };
        verifier.push(&fields, &hash);
    }
    verifier.expect_end(header.last_seq);
    Ok(verifier.finish())
}

/// Trait-object-free helper: the classification of a serde_json error, never its text
/// (which can quote input).
trait Classify {
    fn classify_str(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected or missing field",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

/// Writes one JSON value and a newline.
pub(crate) fn write_json_line<W: Write, T: Serialize>(out: &mut W, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| match e.io_error_kind() {
        Some(kind) => AuditError::Io {
            context: "writing the export",
            source: std::io::Error::from(kind),
        },
        None => AuditError::Internal("export line did not serialize"),
    })?;
    out.write_all(b"\n").map_err(|source| AuditError::Io {
        context: "writing the export",
        source,
    })
}

/// The CSV header row.
pub(crate) const CSV_COLUMNS: &[&str] = &[
    "record",
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "action",
    "target",
    "outcome",
    "context",
    "request_id",
    "subject",
    "person_key",
    "personal",
    "prev_hash",
    "hash",
    "public_key",
    "signature",
];

/// Writes one CSV row, every cell quoted; formula-like cells are prefixed with `'`.
pub(crate) fn write_csv_row<W: Write>(out: &mut W, cells: &[&str]) -> Result<()> {
    let mut row = String::with_capacity(256);
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            row.push(',');
        }
        row.push('"');
        if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            row.push('\'');
        }
        row.push_str(&cell.replace('"', "\"\""));
        row.push('"');
    }
    row.push_str("\r\n");
    out.write_all(row.as_bytes())
        .map_err(|source| AuditError::Io {
            context: "writing the export",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        let mut out = Vec::new();
        assert!(write_csv_row(&mut out, &["a\"b", "=cmd()", "x,y", ""]).is_ok());
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\"a\"\"b\",\"'=cmd()\",\"x,y\",\"\"\r\n"
        );
    }

    #[test]
    fn bad_input_names_the_line() {
        let cases: Vec<(Vec<u8>, u64)> = vec![
            (b"".to_vec(), 1),
            (b"{not json}\n".to_vec(), 1),
            (vec![0xff, 0xfe, b'\n'], 1),
            (vec![b'a'; MAX_LINE_BYTES + 10], 1),
        ];
        for (input, line) in cases {
            match verify_export(&input[..]) {
                Err(AuditError::BadInput { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{other:?}"),
            }
        }
    }
}
