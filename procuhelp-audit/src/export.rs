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
use crate::checkpoint::{Checkpoint, Trust};
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

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) fn format_time(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339)
        .map_err(|_| AuditError::Internal("time does not format as RFC 3339"))
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // used by the PostgreSQL export
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

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

/// The value of each hex digit (either case); 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes 64 hex digits into a stack array (table lookup: the `hex` crate's generic
/// decoder was a fifth of export verification).
/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` — the form our exports
/// write — without the general RFC 3339 parser (the largest share of verification
/// time). `None` for anything else, including out-of-range fields: the caller then uses
/// the general parser, so both paths accept and reject exactly the same strings, and a
/// property test checks they agree.
fn utc_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &b[19..b.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut n = 0u32;
            for (i, &c) in digits.iter().enumerate() {
                if !c.is_ascii_digit() {
                    return None;
                }
                n += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
            n
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(unix_micros(date.with_time(clock).assume_utc()))
}

fn hex32(s: &str, line: u64, field: &str) -> Result<Hash> {
    let mut out = [0u8; 32];
    let digits = s.as_bytes();
    let mut invalid = digits.len() != 64;
    if !invalid {
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (HEX_VALUE[usize::from(*hi)], HEX_VALUE[usize::from(*lo)]),
                _ => (0xff, 0xff),
            };
            invalid |= (hi | lo) > 0x0f;
            *byte = (hi << 4) | (lo & 0x0f);
        }
    }
    if invalid {
        return Err(bad(line, format!("{field} is not 64 hex digits")));
    }
    Ok(out)
}

/// Verifies a JSON-lines export against `trust`: the deployment's pinned public key(s)
/// ([`Trust::Pinned`]), or — only for diagnostics — whatever keys the file names.
///
/// Returns the report with the first bad sequence number for any modified, deleted,
/// inserted, reordered or truncated event, any checkpoint signed by a key not pinned
/// ([`ProblemKind::UntrustedKey`](crate::ProblemKind::UntrustedKey)), and — with pinned
/// keys — events after the last trusted checkpoint
/// ([`ProblemKind::Unsigned`](crate::ProblemKind::Unsigned); an export always ends at a
/// checkpoint). Malformed input (invalid UTF-8, unknown action, a corrupt or oversized
/// line) is an [`AuditError::BadInput`] naming the line.
///
/// The input is read in bounded chunks (at most 4 MiB of lines plus one line), whose
/// lines are parsed and hashed on up to 8 threads (`std::thread::scope`); the chain is
/// then checked in file order, so the result is the same as a sequential pass.
pub fn verify_export<R: BufRead>(mut reader: R, trust: &Trust) -> Result<VerifyReport> {
    let mut buf = Vec::with_capacity(4096);
    let mut line: u64 = 1;
    if !read_line(&mut reader, &mut buf, line, "reading the export")? {
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
        if !read_line(&mut reader, &mut buf, line, "reading the export")? {
            return Err(bad(line, "missing checkpoint line"));
        }
        let cp: CheckpointLine = serde_json::from_str(utf8(&buf, line)?)
            .map_err(|e| bad(line, format!("not a checkpoint: {}", e.classify_str())))?;
        checkpoints.push(cp.checkpoint);
    }
    let org = header.org;
    let mut verifier = ChainVerifier::new(org, header.first_seq, prev, checkpoints, trust);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_WORKERS);
    let mut chunk = Chunk::default();
    let mut scratch: Vec<Scratch> = (0..workers).map(|_| Scratch::default()).collect();
    loop {
        // Read a bounded chunk of lines; a read error or an oversized line is reported
        // after the lines before it (which may hold an earlier error).
        let first_line = line + 1;
        let pending = chunk.fill(&mut reader, &mut line);
        let results = parse_chunk(&chunk, first_line, org.as_uuid(), &mut scratch);
        for parsed in results.into_iter().flatten() {
            let p = parsed?;
            verifier.push_hashed(p.seq, &p.prev_hash, &p.hash, &p.computed);
        }
        match pending {
            Fill::More => {}
            Fill::End => break,
            Fill::Failed(e) => return Err(e),
        }
    }
    verifier.expect_end(header.last_seq);
    if matches!(trust, Trust::Pinned(_)) {
        verifier.require_signed_end();
    }
    Ok(verifier.finish())
}

/// Most threads hashing lines of one export.
const MAX_WORKERS: usize = 8;
/// A chunk holds at most this many bytes of lines (plus at most one line), or
/// [`CHUNK_LINES`] lines: memory stays bounded whatever the file's size.
const CHUNK_BYTES: usize = 4 << 20;
const CHUNK_LINES: usize = 8192;
/// Below this many lines a chunk is parsed on the calling thread alone.
const MIN_PARALLEL_LINES: usize = 256;

/// Lines read from the export, back to back, with their ranges (newlines stripped).
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<std::ops::Range<usize>>,
}

enum Fill {
    /// The chunk is full; more may follow.
    More,
    /// The input ended.
    End,
    /// Reading the next line failed (the chunk holds the lines before it).
    Failed(AuditError),
}

impl Chunk {
    /// Replaces the contents with the next lines; `line` is the number of the last line
    /// read (or of the failing line).
    fn fill<R: BufRead>(&mut self, reader: &mut R, line: &mut u64) -> Fill {
        self.bytes.clear();
        self.lines.clear();
        while self.bytes.len() < CHUNK_BYTES && self.lines.len() < CHUNK_LINES {
            *line += 1;
            let start = self.bytes.len();
            let mut limited = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1);
            let n = match limited.read_until(b'\n', &mut self.bytes) {
                Ok(n) => n,
                Err(source) => {
                    return Fill::Failed(AuditError::Io {
                        context: "reading the export",
                        source,
                    });
                }
            };
            if n == 0 {
                *line -= 1;
                return Fill::End;
            }
            if self.bytes.last() == Some(&b'\n') {
                self.bytes.pop();
            } else if self.bytes.len() - start > MAX_LINE_BYTES {
                self.bytes.truncate(start);
                return Fill::Failed(bad(
                    *line,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            self.lines.push(start..self.bytes.len());
        }
        Fill::More
    }
}

/// Per-worker buffers, reused from chunk to chunk.
#[derive(Default)]
struct Scratch {
    personal: Vec<u8>,
    encoded: Vec<u8>,
}

/// What the chain check needs from one event line.
struct Parsed {
    seq: u64,
    prev_hash: Hash,
    hash: Hash,
    computed: Hash,
}

/// Parses and hashes the chunk's lines, split in contiguous runs over the workers (the
/// calling thread is one of them). Each run stops at its first error; the caller walks
/// the runs in order, so the first error in the file is the one reported.
fn parse_chunk(
    chunk: &Chunk,
    first_line: u64,
    org: Uuid,
    scratch: &mut [Scratch],
) -> Vec<Vec<Result<Parsed>>> {
    let n = chunk.lines.len();
    let workers = if n < MIN_PARALLEL_LINES {
        1
    } else {
        scratch.len().max(1)
    };
    let per = n.div_ceil(workers).max(1);
    let run = |index: usize, scratch: &mut Scratch| -> Vec<Result<Parsed>> {
        let start = index * per;
        let end = (start + per).min(n);
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        for (i, range) in chunk
            .lines
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let line = first_line + (start + i) as u64;
            let bytes = chunk.bytes.get(range.clone()).unwrap_or_default();
            let parsed = parse_event_line(bytes, line, org, scratch);
            let failed = parsed.is_err();
            out.push(parsed);
            if failed {
                break;
            }
        }
        out
    };
    let Some((mine, others)) = scratch.split_first_mut() else {
        return Vec::new();
    };
    if workers == 1 {
        return vec![run(0, mine)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter_mut()
            .take(workers - 1)
            .enumerate()
            .map(|(i, s)| {
                let run = &run;
                scope.spawn(move || run(i + 1, s))
            })
            .collect();
        let mut results = Vec::with_capacity(workers);
        results.push(run(0, mine));
        for h in handles {
            // A worker cannot panic on input (no panicking paths); should one panic
            // anyway, its run is reported as an internal error rather than lost.
            results.push(h.join().unwrap_or_else(|_| {
                vec![Err(AuditError::Internal(
                    "export verification worker failed",
                ))]
            }));
        }
        results
    })
}

/// Parses one event line and computes its hash.
fn parse_event_line(bytes: &[u8], line: u64, org: Uuid, scratch: &mut Scratch) -> Result<Parsed> {
    let text = utf8(bytes, line)?;
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
    let at_micros = match utc_micros(&ev.at) {
        Some(micros) => micros,
        None => unix_micros(
            OffsetDateTime::parse(&ev.at, &Rfc3339).map_err(|_| bad(line, "at is not RFC 3339"))?,
        ),
    };
    let prev_hash = hex32(&ev.prev_hash, line, "prev_hash")?;
    let hash = hex32(&ev.hash, line, "hash")?;
    scratch.personal.clear();
    let has_personal = match &ev.personal {
        Some(p) => {
            base64::engine::general_purpose::STANDARD
                .decode_vec(p.as_bytes(), &mut scratch.personal)
                .map_err(|_| bad(line, "personal is not base64"))?;
            true
        }
        None => false,
    };
    let fields = Fields {
        org,
        seq: ev.seq,
        prev_hash: &prev_hash,
        at_micros,
        actor_kind: &ev.actor_kind,
        actor_id: ev.actor_id,
        action: &ev.action,
        target: ev.target.as_deref(),
        outcome: &ev.outcome,
        context: ev.context.get(),
        request_id: ev.request_id.as_deref(),
        subject: ev.subject.as_deref(),
        person_key: ev.person_key,
        personal: has_personal.then_some(&scratch.personal[..]),
    };
    let computed = fields.hash_with(&mut scratch.encoded);
    Ok(Parsed {
        seq: ev.seq,
        prev_hash,
        hash,
        computed,
    })
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

    fn general(s: &str) -> Option<i64> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(unix_micros)
    }

    #[test]
    fn the_timestamp_fast_path_agrees_with_the_rfc3339_parser() {
        for s in [
            "2026-11-25T09:00:00Z",
            "2026-11-25T09:00:00.123456Z",
            "2026-11-25T09:00:00.1Z",
            "2026-11-25T09:00:00.123456789Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
        ] {
            assert_eq!(utc_micros(s), general(s), "{s}");
        }
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T09:00:60Z",
            "2026-11-25t09:00:00z",
            "2026-11-25T09:00:00+00:00",
            "2026-11-25T09:00:00.Z",
            "2026-11-25T09:00:00.1234567890Z",
            "+026-11-25T09:00:00Z",
        ] {
            assert_eq!(utc_micros(s), None, "{s}");
        }
        // What the exporter writes always takes the fast path.
        let at = time::macros::datetime!(2026-11-25 09:00:00.123456 UTC);
        let written = format_time(at).unwrap();
        assert_eq!(utc_micros(&written), Some(unix_micros(at)));
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_never_disagrees(
            y in 0i32..10000, mo in 0u8..14, d in 0u8..33, h in 0u8..26, mi in 0u8..62,
            se in 0u8..62, frac in proptest::option::of("[0-9]{1,10}"),
        ) {
            let s = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{}Z",
                frac.map(|f| format!(".{f}")).unwrap_or_default()
            );
            if let Some(fast) = utc_micros(&s) {
                proptest::prop_assert_eq!(Some(fast), general(&s), "{}", s);
            }
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        let mut out = Vec::new();
        assert!(write_csv_row(&mut out, &["a\"b", "=cmd()", "x,y", ""]).is_ok());
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\"a\"\"b\",\"'=cmd()\",\"x,y\",\"\"\r\n"
        );
    }

    /// A valid export of `n` events (chain from seq 1), one line per element.
    fn export_lines(n: u64) -> Vec<String> {
        use crate::{Actor, ChainedEvent};
        let org = OrgId::new();
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        let header = Header {
            format: EXPORT_FORMAT.to_owned(),
            version: 1,
            chain_version: CHAIN_VERSION,
            org,
            first_seq: 1,
            last_seq: n,
            prev_hash: hex::encode(GENESIS),
            exported_at: OffsetDateTime::UNIX_EPOCH,
            checkpoints: 0,
        };
        lines.push(serde_json::to_string(&header).unwrap_or_default());
        for seq in 1..=n {
            let mut e = ChainedEvent {
                org,
                seq,
                at: OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(seq as i64),
                actor: Actor::System,
                action: Action::AdminCommand,
                target: Some(format!("t{seq}")),
                outcome: Outcome::Success,
                context: format!("{{\"n\":{seq}}}"),
                request_id: None,
                subject: None,
                person_key: (seq % 2 == 0).then(Uuid::nil),
                personal: (seq % 2 == 0).then(|| vec![1, 2, 3]),
                prev_hash: prev,
                hash: [0; 32],
            };
            e.hash = e.compute_hash();
            prev = e.hash;
            let context = RawValue::from_string(e.context.clone()).unwrap_or_else(|_| {
                RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!())
            });
            lines.push(
                serde_json::to_string(&LineOut {
                    seq,
                    at: format_time(e.at).unwrap_or_default(),
                    actor_kind: e.actor.kind(),
                    actor_id: e.actor.id(),
                    action: e.action.as_str(),
                    target: e.target.as_deref(),
                    outcome: e.outcome.as_str(),
                    context: &context,
                    request_id: None,
                    subject: None,
                    person_key: e.person_key,
                    personal: e.personal.as_deref().map(b64),
                    prev_hash: hex::encode(e.prev_hash),
                    hash: hex::encode(e.hash),
                })
                .unwrap_or_default(),
            );
        }
        lines
    }

    fn join(lines: &[String]) -> Vec<u8> {
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        out
    }

    #[test]
    fn parallel_chunks_report_the_first_problem_in_file_order() {
        // More lines than one chunk holds, so runs and chunk boundaries are crossed.
        let n = CHUNK_LINES as u64 + 900;
        let lines = export_lines(n);
        let report = verify_export(&join(&lines)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.events, report.last_seq), (n, n));

        // A modified event deep in a later run and in the second chunk.
        for seq in [3_000u64, CHUNK_LINES as u64 + 5] {
            let mut t = lines.clone();
            let i = seq as usize; // line index: the header is line 1 (index 0)
            t[i] = t[i].replace(&format!("\"t{seq}\""), "\"forged\"");
            let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                r.problem.map(|p| (p.seq, p.kind)),
                Some((seq, crate::ProblemKind::Modified))
            );
        }
        // Deleted and swapped lines.
        let mut t = lines.clone();
        t.remove(5_000);
        let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((5_000, crate::ProblemKind::Missing))
        );
        let mut t = lines.clone();
        t.swap(700, 701);
        let r = verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((700, crate::ProblemKind::Missing))
        );
        // The first corrupt line wins, whichever worker or chunk saw it; a chain
        // problem before it does not hide it.
        let mut t = lines.clone();
        t[100] = t[100].replace("\"t100\"", "\"forged\"");
        t[6_001] = "{garbage".to_owned();
        t[8_500] = "{garbage".to_owned();
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 6_002),
            other => panic!("{other:?}"),
        }
        let mut t = lines.clone();
        t[8_500] = "{garbage".to_owned();
        t.insert(9_000, "x".repeat(MAX_LINE_BYTES + 1));
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 8_501),
            other => panic!("{other:?}"),
        }
        let mut t = lines.clone();
        t.insert(9_000, "x".repeat(MAX_LINE_BYTES + 1));
        match verify_export(&join(&t)[..], &Trust::DangerouslyTrustEmbeddedKeys) {
            Err(AuditError::BadInput { line, .. }) => assert_eq!(line, 9_001),
            other => panic!("{other:?}"),
        }
        // A cut tail.
        let t = &lines[..lines.len() - 10];
        let r = verify_export(&join(t)[..], &Trust::DangerouslyTrustEmbeddedKeys)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problem.map(|p| (p.seq, p.kind)),
            Some((n - 9, crate::ProblemKind::Truncated))
        );
    }

    #[test]
    fn hex32_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        for text in [hex::encode(&bytes), hex::encode_upper(&bytes)] {
            assert_eq!(
                hex32(&text, 1, "h").ok().map(|h| h.to_vec()),
                Some(bytes.clone())
            );
        }
        for bad_text in [
            "",
            "0",
            &"0".repeat(63),
            &"0".repeat(65),
            &format!("{}g", "0".repeat(63)),
            &format!("{}é", "0".repeat(62)),
        ] {
            assert!(hex32(bad_text, 1, "h").is_err(), "{bad_text}");
        }
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
            match verify_export(&input[..], &Trust::DangerouslyTrustEmbeddedKeys) {
                Err(AuditError::BadInput { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{other:?}"),
            }
        }
    }
}
