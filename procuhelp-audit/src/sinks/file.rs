//! One JSON object per line, appended and fsynced before `record` returns.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{AuditError, AuditEvent, AuditSink, PersonalData, Receipt, Result};

/// Appends each event as one JSON line (the [`AuditEvent`] serde form) and `fsync`s the
/// file before returning.
///
/// Personal data is left out unless [`with_personal_data`](Self::with_personal_data)
/// (a plain file cannot be erased per person; the subject is kept). A failed write is cut
/// back to the last complete line; if even that fails the sink refuses every later event
/// rather than append after a torn line.
#[derive(Debug, Clone)]
pub struct JsonLinesFileSink {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
    personal: bool,
}

#[derive(Debug)]
struct Inner {
    file: File,
    len: u64,
    broken: bool,
}

impl JsonLinesFileSink {
    /// Opens (creating, mode 0600 on Unix) `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|source| AuditError::Io {
            context: "opening the audit file",
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| AuditError::Io {
                context: "reading the audit file's length",
                source,
            })?
            .len();
        Ok(Self {
            path,
            inner: Arc::new(Mutex::new(Inner {
                file,
                len,
                broken: false,
            })),
            personal: false,
        })
    }

    /// Also writes personal data (e-mail, display name, address, user agent) in clear.
    pub fn with_personal_data(mut self, include: bool) -> Self {
        self.personal = include;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Inner {
    fn append(&mut self, line: &[u8]) -> Result<()> {
        if self.broken {
            return Err(AuditError::Unavailable(
                "audit file has a torn line that could not be cut back".to_owned(),
            ));
        }
        let written = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(source) => {
                if self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data())
                    .is_err()
                {
                    self.broken = true;
                }
                Err(AuditError::Io {
                    context: "appending to the audit file",
                    source,
                })
            }
        }
    }
}

#[async_trait]
impl AuditSink for JsonLinesFileSink {
    async fn record(&self, mut event: AuditEvent) -> Result<Receipt> {
        event.validate()?;
        let org = event.org;
        if !self.personal {
            event.personal = PersonalData {
                subject: event.personal.subject.take(),
                ..PersonalData::default()
            };
        }
        let mut line = serde_json::to_vec(&event)
            .map_err(|_| AuditError::Internal("event did not serialize"))?;
        line.push(b'\n');
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&line)
        })
        .await
        .map_err(|_| AuditError::Unavailable("audit file writer task failed".to_owned()))??;
        Ok(Receipt::unnumbered(org))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Actor, Outcome};
    use procuhelp_core::{OrgId, UserId};

    #[tokio::test]
    async fn appends_one_line_per_event_and_reopens_at_the_end() {
        let dir = std::env::temp_dir().join(format!("audit-file-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("audit.jsonl");
        let org = OrgId::new();
        let ev = |n: u64| {
            AuditEvent::new(
                Some(org),
                Actor::System,
                Action::KeysRotated,
                Outcome::Success,
            )
            .context(serde_json::json!({ "n": n }))
            .person(UserId::new(), Some("ada@example.com"), None)
        };
        {
            let sink = JsonLinesFileSink::open(&path);
            assert!(sink.is_ok());
            let Ok(sink) = sink else { return };
            for n in 0..3 {
                assert!(sink.record(ev(n)).await.is_ok());
            }
        }
        let sink = JsonLinesFileSink::open(&path).map(|s| s.with_personal_data(true));
        let Ok(sink) = sink else { return };
        assert!(sink.record(ev(3)).await.is_ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        for (n, line) in lines.iter().enumerate() {
            let back: Option<AuditEvent> = serde_json::from_str(line).ok();
            assert_eq!(back.map(|e| e.context["n"].as_u64()), Some(Some(n as u64)));
        }
        // Personal data only where asked for; the subject always.
        assert!(!lines[0].contains("ada@example.com"));
        assert!(lines[0].contains("\"subject\""));
        assert!(lines[3].contains("ada@example.com"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
