//! Each organisation's rows in a file of its own, sealed under that organisation's KEK.
//!
//! The `pg_dump` archive holds the schema and the tables no organisation owns; every row
//! of a table with an `org_id` column (and the organisation's own `app.organisations`
//! row) goes into `org-<id>.phbk`, whose data key is wrapped by the organisation's KEK
//! `tenant-<id>` — the key [`crate::FieldCipher::shred`] and offboarding destroy. So once an
//! organisation is offboarded its rows cannot be read from *any* earlier backup, while
//! every other organisation's still restore (docs/backups.md, docs/gdpr.md).
//!
//! Inside the sealed stream a part is a sequence of frames: `T` (u32 length, JSON table
//! header), `D` (u32 length, PostgreSQL binary `COPY` bytes) repeated, `E` (the table's
//! end), and `Z` after the last table. The frames are inside the authenticated stream, but
//! are still parsed with bounds, and a table is only ever loaded into a table of the
//! restored schema with exactly the same columns.

use std::path::Path;

use futures_util::TryStreamExt as _;
use procuhelp_core::vault::SecretProvider;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio::io::AsyncRead;

use super::BackupError;
use super::sealed::{CHUNK, FileKind, SealedReader, SealedWriter};

/// The rows of tables with no organisation (`org_id IS NULL`): under the `backup` KEK.
pub(crate) const SHARED_FILE: &str = "shared.phbk";

/// The file holding organisation `org`'s rows.
pub(crate) fn part_file(org: uuid::Uuid) -> String {
    format!("org-{}.phbk", org.simple())
}

/// The file of the part of `org` (`None`: the rows of no organisation).
pub(crate) fn file_name(org: Option<uuid::Uuid>) -> String {
    org.map_or_else(|| SHARED_FILE.to_owned(), part_file)
}

/// The label sealed into a part's header: the backup's label and the organisation, so a
/// part copied to another organisation's name (or another backup) is refused.
pub(crate) fn part_label(label: &str, org: Option<uuid::Uuid>) -> String {
    match org {
        Some(org) => format!("{label}/{}", org.simple()),
        None => format!("{label}/shared"),
    }
}

/// A table whose rows are split by organisation.
pub(crate) use crate::catalog::OrganisationTable as SplitTable;

impl SplitTable {
    /// The quoted column naming the organisation.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

/// Every table split by organisation ([`crate::catalog`]).
pub(crate) async fn split_tables(conn: &mut PgConnection) -> Result<Vec<SplitTable>, BackupError> {
    Ok(crate::catalog::organisation_tables(conn).await?)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableHeader {
    table: String,
    columns: Vec<String>,
}

/// Largest frame: a `D` frame carries at most one sealed chunk's worth.
const MAX_FRAME: usize = CHUNK;

/// Writes the part of `org` (`None`: rows with no organisation) from `conn`'s snapshot
/// into `dir`, sealed under `kek`; returns its plaintext size.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_part(
    conn: &mut PgConnection,
    dir: &Path,
    label: &str,
    org: Option<uuid::Uuid>,
    kek: &str,
    tables: &[SplitTable],
    vault: &dyn SecretProvider,
) -> Result<u64, BackupError> {
    let path = dir.join(file_name(org));
    let file = super::create_private(&path).await?;
    let mut out = SealedWriter::create_under(
        tokio::io::BufWriter::with_capacity(CHUNK, file),
        FileKind::Organisation,
        &part_label(label, org),
        kek,
        vault,
    )
    .await?;
    let mut plain = 0u64;
    for table in tables {
        if org.is_none() && table.key != "org_id" {
            continue;
        }
        let header = serde_json::to_vec(&TableHeader {
            table: table.name.clone(),
            columns: table.columns.clone(),
        })
        .map_err(|e| BackupError::Refused(format!("encoding a table header: {e}")))?;
        plain += frame(&mut out, b'T', &header).await?;
        // A uuid's text is hex and dashes: nothing to escape.
        let filter = match org {
            Some(org) => format!("{} = '{org}'", table.key),
            None => format!("{} IS NULL", table.key),
        };
        let statement = format!(
            "COPY (SELECT {} FROM ONLY {} WHERE {filter}) TO STDOUT (FORMAT binary)",
            table.columns.join(", "),
            table.name
        );
        let mut rows = conn.copy_out_raw(&statement).await?;
        while let Some(bytes) = rows.try_next().await? {
            for piece in bytes.chunks(MAX_FRAME) {
                plain += frame(&mut out, b'D', piece).await?;
            }
        }
        drop(rows);
        out.write(b"E").await?;
        plain += 1;
    }
    out.write(b"Z").await?;
    plain += 1;
    let (mut file, _) = out.finish().await?;
    super::sync_file(file.get_mut(), &path).await?;
    Ok(plain)
}

async fn frame<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut SealedWriter<W>,
    tag: u8,
    body: &[u8],
) -> Result<u64, BackupError> {
    let len = u32::try_from(body.len())
        .map_err(|_| BackupError::Refused("a backup frame over 4 GiB".to_owned()))?;
    out.write(&[tag]).await?;
    out.write(&len.to_be_bytes()).await?;
    out.write(body).await?;
    Ok(5 + body.len() as u64)
}

/// Loads a part into `conn`'s database (inside the caller's transaction), each table
/// only into the table of the same name with exactly the same columns in `tables` (the
/// restored schema's). Returns the plaintext bytes read.
pub(crate) async fn load_part<R: AsyncRead + Unpin>(
    conn: &mut PgConnection,
    reader: SealedReader<R>,
    file: &str,
    tables: &[SplitTable],
) -> Result<u64, BackupError> {
    let mut frames = FrameReader::new(reader, file);
    loop {
        match frames.next().await? {
            Frame::Finish => break,
            Frame::Table(header) => {
                let table = tables
                    .iter()
                    .find(|t| t.name == header.table && t.columns == header.columns)
                    .ok_or_else(|| {
                        frames.corrupt(
                            "a table the restored schema does not have, or has with other columns",
                        )
                    })?;
                let statement = format!(
                    "COPY {} ({}) FROM STDIN (FORMAT binary)",
                    table.name,
                    table.columns.join(", ")
                );
                let mut copy = conn.copy_in_raw(&statement).await?;
                loop {
                    match frames.next().await {
                        Ok(Frame::Data(bytes)) => {
                            if let Err(e) = copy.send(bytes).await {
                                let _ = copy.abort("backup part not loaded").await;
                                return Err(e.into());
                            }
                        }
                        Ok(Frame::End) => break,
                        Ok(_) => {
                            let _ = copy.abort("backup part not loaded").await;
                            return Err(frames.corrupt("a table's rows end without its end mark"));
                        }
                        Err(e) => {
                            let _ = copy.abort("backup part not loaded").await;
                            return Err(e);
                        }
                    }
                }
                copy.finish().await?;
            }
            Frame::Data(_) | Frame::End => {
                return Err(frames.corrupt("rows outside a table"));
            }
        }
    }
    Ok(frames.consumed)
}

#[derive(Debug)]
enum Frame {
    Table(TableHeader),
    Data(Vec<u8>),
    End,
    Finish,
}

/// Frames out of the authenticated chunks of a part.
struct FrameReader<R> {
    reader: SealedReader<R>,
    file: String,
    buf: Vec<u8>,
    pos: usize,
    consumed: u64,
    finished: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(reader: SealedReader<R>, file: &str) -> Self {
        Self {
            reader,
            file: file.to_owned(),
            buf: Vec::new(),
            pos: 0,
            consumed: 0,
            finished: false,
        }
    }

    fn corrupt(&self, what: &str) -> BackupError {
        BackupError::Corrupt {
            file: self.file.clone(),
            part: what.to_owned(),
        }
    }

    /// Makes `n` bytes available from `pos`.
    async fn fill(&mut self, n: usize) -> Result<(), BackupError> {
        while self.buf.len() - self.pos < n {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            match self.reader.next_chunk().await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return Err(self.corrupt("ends inside a frame")),
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        self.consumed += n as u64;
        out
    }

    async fn next(&mut self) -> Result<Frame, BackupError> {
        if self.finished {
            return Ok(Frame::Finish);
        }
        self.fill(1).await?;
        let tag = self.take(1)[0];
        match tag {
            b'E' => Ok(Frame::End),
            b'Z' => {
                self.finished = true;
                // Nothing may follow the end mark, and the sealed stream must end whole.
                if self.buf.len() > self.pos || self.reader.next_chunk().await?.is_some() {
                    return Err(self.corrupt("data after the end mark"));
                }
                Ok(Frame::Finish)
            }
            b'T' | b'D' => {
                self.fill(4).await?;
                let len = self.take(4);
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if len > MAX_FRAME {
                    return Err(self.corrupt("a frame longer than any writer makes"));
                }
                self.fill(len).await?;
                let body = self.take(len).to_vec();
                if tag == b'D' {
                    return Ok(Frame::Data(body));
                }
                serde_json::from_slice(&body)
                    .map(Frame::Table)
                    .map_err(|_| self.corrupt("a table header does not parse"))
            }
            _ => Err(self.corrupt("an unknown frame")),
        }
    }
}
