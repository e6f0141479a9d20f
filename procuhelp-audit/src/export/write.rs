//! Writing export lines: JSON values, CSV rows (defused for spreadsheets), times, base64.

use std::io::Write;

use base64::Engine as _;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{AuditError, Result};

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) fn format_time(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339)
        .map_err(|_| AuditError::Internal("time does not format as RFC 3339"))
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes one JSON value and a newline.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
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
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
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
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
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
}
