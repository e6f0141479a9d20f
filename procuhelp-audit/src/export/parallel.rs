//! Reading an export in bounded chunks and parsing each chunk's lines on several threads.

use std::io::{BufRead, Read as _};

use uuid::Uuid;

use super::MAX_LINE_BYTES;
use super::bad;
use super::line::{Parsed, Scratch, parse_event_line};
use crate::{AuditError, Result};

/// Most threads hashing lines of one export.
pub(super) const MAX_WORKERS: usize = 8;
/// A chunk holds at most this many bytes of lines (plus at most one line), or
/// [`CHUNK_LINES`] lines: memory stays bounded whatever the file's size.
const CHUNK_BYTES: usize = 4 << 20;
pub(super) const CHUNK_LINES: usize = 8192;
/// Below this many lines a chunk is parsed on the calling thread alone.
const MIN_PARALLEL_LINES: usize = 256;

/// Lines read from the export, back to back, with their ranges (newlines stripped).
#[derive(Default)]
pub(super) struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<std::ops::Range<usize>>,
}

pub(super) enum Fill {
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
    pub(super) fn fill<R: BufRead>(&mut self, reader: &mut R, line: &mut u64) -> Fill {
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

/// Parses and hashes the chunk's lines, split in contiguous runs over the workers (the
/// calling thread is one of them). Each run stops at its first error; the caller walks
/// the runs in order, so the first error in the file is the one reported.
pub(super) fn parse_chunk(
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
