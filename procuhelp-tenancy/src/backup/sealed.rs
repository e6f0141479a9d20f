//! Backup files sealed with AES-256-GCM in authenticated chunks.
//!
//! A file is a header, then chunks of at most [`CHUNK`] plaintext bytes, each its own
//! AES-256-GCM message under a fresh data key that only the vault's `backup` KEK unwraps.
//! The nonce of chunk *i* is `prefix ‖ i ‖ last` (the STREAM construction: Hoang, Reyhanitabar,
//! Rogaway, Vizár 2015), and every chunk's associated data is the SHA-256 of the header, so:
//! - a changed byte anywhere fails the chunk that holds it (and names it);
//! - chunks cannot be reordered, repeated or moved to another file (counter, header hash);
//! - a file cut at a chunk boundary lacks the chunk sealed as `last`, so truncation is an
//!   error, never a shorter backup that looks whole;
//! - the header's label and kind are authenticated by every chunk, so a file renamed into
//!   another backup's directory is refused.
//!
//! Why not the repository cipher of pgBackRest: it is AES-256-CBC with no MAC (integrity
//! comes from SHA-1 checksums inside the encrypted manifest); here every byte is
//! authenticated before it is used (docs/backups.md).

use std::path::Path;

use procuhelp_core::crypto::{CryptoError, DataKey, NONCE_LEN, PreparedKey, TAG_LEN};
use procuhelp_core::vault::{SecretProvider, VaultError, WrappedKey};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::BackupError;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 20;
/// The vault KEK that wraps every backup file's data key.
pub const BACKUP_KEK: &str = "backup";

const MAGIC: &[u8; 8] = b"PHBKUP\x00\x01";
const PREFIX_LEN: usize = 7;
const LAST: u32 = 1 << 31;
const MAX_LABEL: usize = 64;
const MAX_WRAPPED: usize = 1024;

/// What a sealed file holds (authenticated: a manifest cannot pass as a dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The `pg_dump` archive.
    Dump = 1,
    /// The manifest (JSON).
    Manifest = 2,
    /// One organisation's rows (`org-<id>.phbk`), under that organisation's own KEK.
    Organisation = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    kind: FileKind,
    label: String,
    wrapped: WrappedKey,
    prefix: [u8; PREFIX_LEN],
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.label.len() + self.wrapped.ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.push(self.kind as u8);
        out.push(u8::try_from(self.label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.label.as_bytes());
        out.extend_from_slice(&self.wrapped.kek_version.to_be_bytes());
        out.extend_from_slice(
            &u16::try_from(self.wrapped.ciphertext.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.wrapped.ciphertext);
        out.extend_from_slice(&self.prefix);
        out
    }

    async fn read<R: AsyncRead + Unpin>(
        r: &mut R,
        file: &str,
    ) -> Result<(Self, Vec<u8>), BackupError> {
        let bad = |what: &str| BackupError::Corrupt {
            file: file.to_owned(),
            part: format!("header: {what}"),
        };
        let mut raw = Vec::new();
        let mut fixed = [0u8; 10];
        read_exact(r, &mut fixed, file, "header").await?;
        if &fixed[..8] != MAGIC {
            return Err(bad("not a procuhelp backup file (wrong magic)"));
        }
        let kind = match fixed[8] {
            1 => FileKind::Dump,
            2 => FileKind::Manifest,
            3 => FileKind::Organisation,
            _ => return Err(bad("unknown file kind")),
        };
        let label_len = usize::from(fixed[9]);
        if label_len == 0 || label_len > MAX_LABEL {
            return Err(bad("label length out of range"));
        }
        raw.extend_from_slice(&fixed);
        let mut label = vec![0u8; label_len];
        read_exact(r, &mut label, file, "header").await?;
        raw.extend_from_slice(&label);
        let label = String::from_utf8(label).map_err(|_| bad("label is not UTF-8"))?;
        let mut kv = [0u8; 6];
        read_exact(r, &mut kv, file, "header").await?;
        raw.extend_from_slice(&kv);
        let kek_version = u32::from_be_bytes([kv[0], kv[1], kv[2], kv[3]]);
        let wrapped_len = usize::from(u16::from_be_bytes([kv[4], kv[5]]));
        if wrapped_len == 0 || wrapped_len > MAX_WRAPPED {
            return Err(bad("wrapped key length out of range"));
        }
        let mut ciphertext = vec![0u8; wrapped_len];
        read_exact(r, &mut ciphertext, file, "header").await?;
        raw.extend_from_slice(&ciphertext);
        let mut prefix = [0u8; PREFIX_LEN];
        read_exact(r, &mut prefix, file, "header").await?;
        raw.extend_from_slice(&prefix);
        Ok((
            Self {
                kind,
                label,
                wrapped: WrappedKey {
                    kek_version,
                    ciphertext,
                },
                prefix,
            },
            raw,
        ))
    }
}

async fn read_exact<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    file: &str,
    part: &str,
) -> Result<(), BackupError> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BackupError::Corrupt {
            file: file.to_owned(),
            part: format!("{part}: truncated"),
        }),
        Err(e) => Err(BackupError::io(format!("reading {file}"), e)),
    }
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[NONCE_LEN - 1] = u8::from(last);
    n
}

fn prepare(key: &DataKey) -> Result<Box<dyn PreparedKey>, BackupError> {
    procuhelp_core::crypto::default_provider()
        .prepare(key)
        .map_err(BackupError::Crypto)
}

fn key_err(kek: &str, e: VaultError) -> BackupError {
    match e {
        // Only an organisation's key is ever destroyed on purpose (offboarding,
        // crypto-shredding); the `backup` key missing means the wrong vault.
        VaultError::NotFound(_) if kek != BACKUP_KEK => BackupError::KeyDestroyed {
            kek: kek.to_owned(),
        },
        VaultError::NotFound(_) => BackupError::KeyUnavailable(
            "the vault has no `backup` key-encryption key (a vault other than the one that took \
             this backup, or the key was destroyed)"
                .to_owned(),
        ),
        VaultError::Corrupt(_) => BackupError::KeyUnavailable(format!(
            "the vault's `{kek}` key does not open this backup file (another vault's key?)"
        )),
        other => BackupError::Vault(other),
    }
}

/// Writes one sealed file: [`SealedWriter::create`], [`write`](SealedWriter::write) the
/// plaintext, then [`finish`](SealedWriter::finish) (which seals the final chunk and
/// syncs). A writer dropped before `finish` leaves a file that no reader accepts.
pub struct SealedWriter<W> {
    out: W,
    key: Box<dyn PreparedKey>,
    prefix: [u8; PREFIX_LEN],
    aad: [u8; 32],
    counter: u32,
    buf: Vec<u8>,
    written: u64,
}

impl<W> std::fmt::Debug for SealedWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedWriter")
            .field("chunks", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<R> std::fmt::Debug for SealedReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedReader")
            .field("file", &self.file)
            .field("chunks", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> SealedWriter<W> {
    /// Starts a file of `kind` for backup `label`, under a fresh data key wrapped by the
    /// vault's `backup` KEK (created on first use).
    pub async fn create(
        out: W,
        kind: FileKind,
        label: &str,
        vault: &dyn SecretProvider,
    ) -> Result<Self, BackupError> {
        Self::create_under(out, kind, label, BACKUP_KEK, vault).await
    }

    /// As [`create`](Self::create), with the data key wrapped by KEK `kek` (created on
    /// first use): an organisation's part is wrapped by that organisation's own KEK, so
    /// destroying it makes the part unreadable in every backup.
    pub async fn create_under(
        mut out: W,
        kind: FileKind,
        label: &str,
        kek: &str,
        vault: &dyn SecretProvider,
    ) -> Result<Self, BackupError> {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(BackupError::Refused(
                "a backup label is 1-64 bytes".to_owned(),
            ));
        }
        vault.create_kek(kek).await.map_err(|e| key_err(kek, e))?;
        let dek = DataKey::generate().map_err(BackupError::Crypto)?;
        let wrapped = vault
            .wrap_key(kek, &dek)
            .await
            .map_err(|e| key_err(kek, e))?;
        if wrapped.ciphertext.is_empty() || wrapped.ciphertext.len() > MAX_WRAPPED {
            // No reader would accept it: refused now, not at the next drill.
            return Err(BackupError::Refused(
                "the vault's wrapped key is larger than a backup header holds".to_owned(),
            ));
        }
        let mut prefix = [0u8; PREFIX_LEN];
        getrandom::fill(&mut prefix).map_err(|_| BackupError::Crypto(CryptoError::Rng))?;
        let header = Header {
            kind,
            label: label.to_owned(),
            wrapped,
            prefix,
        }
        .encode();
        out.write_all(&header)
            .await
            .map_err(|e| BackupError::io("writing a backup file", e))?;
        Ok(Self {
            out,
            key: prepare(&dek)?,
            prefix,
            aad: Sha256::digest(&header).into(),
            counter: 0,
            buf: Vec::with_capacity(CHUNK + TAG_LEN),
            written: header.len() as u64,
        })
    }

    /// Appends plaintext.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), BackupError> {
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.seal_chunk(false).await?;
            }
        }
        Ok(())
    }

    async fn seal_chunk(&mut self, last: bool) -> Result<(), BackupError> {
        if self.counter == u32::MAX >> 1 {
            return Err(BackupError::Refused(
                "a backup file is limited to 2^31 chunks".to_owned(),
            ));
        }
        let n = nonce(&self.prefix, self.counter, last);
        self.key
            .seal_in_place(&n, &self.aad, &mut self.buf)
            .map_err(BackupError::Crypto)?;
        let len =
            u32::try_from(self.buf.len()).unwrap_or(u32::MAX >> 1) | if last { LAST } else { 0 };
        self.out
            .write_all(&len.to_be_bytes())
            .await
            .map_err(|e| BackupError::io("writing a backup file", e))?;
        self.out
            .write_all(&self.buf)
            .await
            .map_err(|e| BackupError::io("writing a backup file", e))?;
        self.written += 4 + self.buf.len() as u64;
        self.counter += 1;
        self.buf.clear();
        Ok(())
    }

    /// Seals the final chunk (possibly empty) and flushes; returns the file's size.
    pub async fn finish(mut self) -> Result<(W, u64), BackupError> {
        self.seal_chunk(true).await?;
        self.out
            .flush()
            .await
            .map_err(|e| BackupError::io("flushing a backup file", e))?;
        Ok((self.out, self.written))
    }
}

/// Reads one sealed file chunk by chunk; nothing is released before its chunk is
/// authenticated, and the end is accepted only after the chunk sealed as last.
pub struct SealedReader<R> {
    input: R,
    file: String,
    key: Box<dyn PreparedKey>,
    prefix: [u8; PREFIX_LEN],
    aad: [u8; 32],
    counter: u32,
    done: bool,
}

impl<R: AsyncRead + Unpin> SealedReader<R> {
    /// Reads the header of `file` (a name for errors), checks its kind and label, and
    /// unwraps its data key with the vault.
    pub async fn open(
        input: R,
        file: &str,
        kind: FileKind,
        label: &str,
        vault: &dyn SecretProvider,
    ) -> Result<Self, BackupError> {
        Self::open_under(input, file, kind, label, BACKUP_KEK, vault).await
    }

    /// As [`open`](Self::open), unwrapping with KEK `kek`
    /// ([`SealedWriter::create_under`]).
    pub async fn open_under(
        mut input: R,
        file: &str,
        kind: FileKind,
        label: &str,
        kek: &str,
        vault: &dyn SecretProvider,
    ) -> Result<Self, BackupError> {
        let (header, raw) = Header::read(&mut input, file).await?;
        if header.kind != kind || header.label != label {
            return Err(BackupError::Corrupt {
                file: file.to_owned(),
                part: "header: belongs to another backup or is another kind of file".to_owned(),
            });
        }
        let dek = vault
            .unwrap_key(kek, &header.wrapped)
            .await
            .map_err(|e| key_err(kek, e))?;
        Ok(Self {
            input,
            file: file.to_owned(),
            key: prepare(&dek)?,
            prefix: header.prefix,
            aad: Sha256::digest(&raw).into(),
            counter: 0,
            done: false,
        })
    }

    /// The next authenticated chunk of plaintext, or `None` after the last one.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let chunk = self.counter;
        let corrupt = |part: String| BackupError::Corrupt {
            file: self.file.clone(),
            part,
        };
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(corrupt(format!(
                    "truncated: ends before chunk {chunk}, without the final chunk"
                )));
            }
            Err(e) => return Err(BackupError::io(format!("reading {}", self.file), e)),
        }
        let len = u32::from_be_bytes(len);
        let last = len & LAST != 0;
        let size = (len & !LAST) as usize;
        if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&size) {
            return Err(corrupt(format!("chunk {chunk}: impossible length")));
        }
        let mut buf = vec![0u8; size];
        read_exact(
            &mut self.input,
            &mut buf,
            &self.file,
            &format!("chunk {chunk}"),
        )
        .await?;
        let n = nonce(&self.prefix, chunk, last);
        if self.key.open_in_place(&n, &self.aad, &mut buf).is_err() {
            return Err(corrupt(format!(
                "chunk {chunk} (bytes from about {}) fails authentication: changed or damaged",
                u64::from(chunk) * CHUNK as u64
            )));
        }
        self.counter += 1;
        if last {
            self.done = true;
            let mut extra = [0u8; 1];
            let more = self
                .input
                .read(&mut extra)
                .await
                .map_err(|e| BackupError::io(format!("reading {}", self.file), e))?;
            if more != 0 {
                return Err(corrupt(format!("data after the final chunk {chunk}")));
            }
        }
        Ok(Some(buf))
    }

    /// Reads and authenticates every chunk, returning the plaintext length.
    pub async fn verify_all(mut self) -> Result<u64, BackupError> {
        let mut total = 0u64;
        while let Some(chunk) = self.next_chunk().await? {
            total += chunk.len() as u64;
        }
        Ok(total)
    }
}

/// Opens `path` for reading a sealed file.
pub async fn open_file(
    path: &Path,
    kind: FileKind,
    label: &str,
    vault: &dyn SecretProvider,
) -> Result<SealedReader<tokio::io::BufReader<tokio::fs::File>>, BackupError> {
    open_file_under(path, kind, label, BACKUP_KEK, vault).await
}

/// As [`open_file`], unwrapping with KEK `kek`.
pub async fn open_file_under(
    path: &Path,
    kind: FileKind,
    label: &str,
    kek: &str,
    vault: &dyn SecretProvider,
) -> Result<SealedReader<tokio::io::BufReader<tokio::fs::File>>, BackupError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| BackupError::io(format!("opening {}", path.display()), e))?;
    SealedReader::open_under(
        tokio::io::BufReader::with_capacity(CHUNK, file),
        &path.display().to_string(),
        kind,
        label,
        kek,
        vault,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use procuhelp_core::vault::FileVault;

    async fn seal(vault: &FileVault, data: &[u8]) -> Vec<u8> {
        let mut w = SealedWriter::create(Vec::new(), FileKind::Dump, "l1", vault)
            .await
            .unwrap();
        w.write(data).await.unwrap();
        w.finish().await.unwrap().0
    }

    async fn open(vault: &FileVault, bytes: &[u8]) -> Result<Vec<u8>, BackupError> {
        let mut r = SealedReader::open(bytes, "f", FileKind::Dump, "l1", vault).await?;
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn round_trip_and_every_kind_of_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("phbk-{}", uuid::Uuid::new_v4()));
        let vault = FileVault::open_or_create(&dir).unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 77)).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&vault, &data).await;
        assert_eq!(open(&vault, &sealed).await.unwrap(), data);
        assert_eq!(open(&vault, &seal(&vault, b"").await).await.unwrap(), b"");
        // No plaintext in the file.
        assert!(!sealed.windows(64).any(|w| w == &data[1000..1064]));

        // A flipped byte in the second chunk names chunk 1.
        let mut flipped = sealed.clone();
        let at = sealed.len() - (4 + 77 + TAG_LEN) - 100;
        flipped[at] ^= 1;
        let err = open(&vault, &flipped).await.unwrap_err().to_string();
        assert!(
            err.contains("chunk 1") && err.contains("authentication"),
            "{err}"
        );

        // Cut at a chunk boundary: no final chunk.
        let header_len = sealed.len() - 3 * 4 - 2 * (CHUNK + TAG_LEN) - (77 + TAG_LEN);
        let cut = &sealed[..header_len + 2 * (4 + CHUNK + TAG_LEN)];
        let err = open(&vault, cut).await.unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("chunk 2"),
            "{err}"
        );
        // Cut inside a chunk, and trailing garbage.
        assert!(open(&vault, &sealed[..sealed.len() - 5]).await.is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        let err = open(&vault, &longer).await.unwrap_err().to_string();
        assert!(err.contains("after the final chunk"), "{err}");
        // Chunks swapped.
        let mut swapped = sealed[..header_len].to_vec();
        let c0 = &sealed[header_len..header_len + 4 + CHUNK + TAG_LEN];
        let c1 = &sealed[header_len + 4 + CHUNK + TAG_LEN..header_len + 2 * (4 + CHUNK + TAG_LEN)];
        swapped.extend_from_slice(c1);
        swapped.extend_from_slice(c0);
        swapped.extend_from_slice(&sealed[header_len + 2 * (4 + CHUNK + TAG_LEN)..]);
        let err = open(&vault, &swapped).await.unwrap_err().to_string();
        assert!(err.contains("chunk 0"), "{err}");
        // Another label or kind.
        assert!(
            SealedReader::open(&sealed[..], "f", FileKind::Manifest, "l1", &vault)
                .await
                .is_err()
        );
        assert!(
            SealedReader::open(&sealed[..], "f", FileKind::Dump, "l2", &vault)
                .await
                .is_err()
        );
        // Another vault has no key for it.
        let other = FileVault::open_or_create(&dir.join("other")).unwrap();
        let err = open(&other, &sealed).await.unwrap_err();
        assert!(matches!(err, BackupError::KeyUnavailable(_)), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A writer whose disk fills after `room` bytes.
    struct FullDisk {
        room: usize,
    }

    impl tokio::io::AsyncWrite for FullDisk {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if self.room == 0 {
                // ENOSPC
                return std::task::Poll::Ready(Err(std::io::Error::from_raw_os_error(28)));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("phbk-{}", uuid::Uuid::new_v4()));
        let vault = FileVault::open_or_create(&dir).unwrap();
        let mut w = SealedWriter::create(FullDisk { room: 5000 }, FileKind::Dump, "l1", &vault)
            .await
            .unwrap();
        let data = vec![7u8; CHUNK + 1];
        let err = w.write(&data).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::Io { source, .. } if source.raw_os_error() == Some(28)),
            "{err}"
        );
        assert!(err.to_string().contains("No space left on device"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The header parser refuses or accepts, never panics, on any bytes.
        #[test]
        fn any_bytes_are_refused_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _ = rt.block_on(Header::read(&mut &bytes[..], "f"));
        }
    }
}
