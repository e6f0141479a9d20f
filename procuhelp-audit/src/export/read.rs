//! Reading an export (or an import file) line by line, within bounds, and reporting bad
//! input by line number without quoting it.

use std::io::{BufRead, Read as _};

use super::MAX_LINE_BYTES;
use crate::{AuditError, Result};

pub(crate) fn bad(line: u64, reason: impl Into<String>) -> AuditError {
    AuditError::BadInput {
        line,
        reason: reason.into(),
    }
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `buf` (without the newline).
/// `Ok(false)` at the end of input.
pub(crate) fn read_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    line: u64,
    context: &'static str,
) -> Result<bool> {
    buf.clear();
    let mut limited = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1);
    let n = limited
        .read_until(b'\n', buf)
        .map_err(|source| AuditError::Io { context, source })?;
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

pub(crate) fn utf8(buf: &[u8], line: u64) -> Result<&str> {
    std::str::from_utf8(buf).map_err(|_| bad(line, "invalid UTF-8"))
}

/// Trait-object-free helper: the classification of a serde_json error, never its text
/// (which can quote input).
pub(crate) trait Classify {
    fn classify_str(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected, missing or invalid field",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}
