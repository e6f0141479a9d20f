//! The backup repository: a directory apart from the database, one sub-directory per
//! backup, and drill reports.
//!
//! ```text
//! REPO/
//!   20261203T174600Z-3f2a/   dump.phbk  manifest.phbk  backup.json (written last: "complete")
//!   drills/20261204T030000Z.json
//! ```

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::BackupError;

/// The file holding the database dump.
pub const DUMP_FILE: &str = "dump.phbk";
/// The file holding the sealed manifest.
pub const MANIFEST_FILE: &str = "manifest.phbk";
/// The completion record, written last: a directory without it is not a backup.
pub const COMPLETE_FILE: &str = "backup.json";
/// Where drill reports go.
pub const DRILLS_DIR: &str = "drills";

/// Where a repository may sit relative to the data it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// On another filesystem than the data directory (the default).
    #[default]
    Apart,
    /// Anywhere but inside the data directory: the operator knows the disk is shared
    /// (`--allow-repo-on-same-filesystem`), e.g. because the filesystem is itself replicated.
    AllowSameFilesystem,
}

/// The completion record of a backup (no secrets, no row data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// Its label (its directory's name).
    pub label: String,
    /// When the snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// When the backup was complete.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// The database it is of.
    pub database: String,
    /// Size of the sealed dump.
    pub dump_bytes: u64,
    /// Plaintext size of the dump.
    pub plain_bytes: u64,
}

/// A backup directory in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Complete: its record says so.
    Complete(BackupInfo),
    /// Interrupted or being written: never restored, removed by retention.
    Incomplete {
        /// The directory name.
        label: String,
    },
}

impl Entry {
    /// The label.
    pub fn label(&self) -> &str {
        match self {
            Entry::Complete(info) => &info.label,
            Entry::Incomplete { label } => label,
        }
    }
}

/// A repository directory, checked to be apart from the data.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
    data_dir: Option<PathBuf>,
    placement: Placement,
}

impl Repository {
    /// Opens (creating, mode 0700) the repository at `root`. With `data_dir` (the local
    /// database's directory) it is refused inside that directory (or holding it), and on
    /// the same filesystem unless `placement` allows it: a backup that dies with the disk
    /// it protects is not a backup.
    pub fn open(
        root: &Path,
        data_dir: Option<&Path>,
        placement: Placement,
    ) -> Result<Self, BackupError> {
        let existed = root.exists();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| {
                BackupError::io(format!("creating the repository {}", root.display()), e)
            })?;
        let root = root
            .canonicalize()
            .map_err(|e| BackupError::io(format!("resolving {}", root.display()), e))?;
        if let Some(data_dir) = data_dir
            && let Err(e) = check_apart(&root, data_dir, placement)
        {
            if !existed {
                // Leave nothing behind where we were told not to write.
                let _ = std::fs::remove_dir(&root);
            }
            return Err(e);
        }
        Ok(Self {
            root,
            data_dir: data_dir.map(Path::to_path_buf),
            placement,
        })
    }

    /// Checks again that the repository is where it was opened and still apart from the
    /// data: a backup volume that was unmounted leaves an empty directory on the root
    /// filesystem, which may be the data's.
    pub fn recheck(&self) -> Result<(), BackupError> {
        let now = self
            .root
            .canonicalize()
            .map_err(|e| BackupError::io(format!("resolving {}", self.root.display()), e))?;
        if now != self.root {
            return Err(BackupError::Placement {
                repo: self.root.display().to_string(),
                problem: "it now resolves elsewhere (a changed symlink?)".to_owned(),
            });
        }
        match &self.data_dir {
            Some(data) => check_apart(&self.root, data, self.placement),
            None => Ok(()),
        }
    }

    /// A sub-directory of the repository (e.g. [`DRILLS_DIR`]), created 0700; refused
    /// when it is a symlink (it would send our writes elsewhere).
    pub fn subdir(&self, name: &str) -> Result<PathBuf, BackupError> {
        let dir = self.root.join(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                return Err(BackupError::Placement {
                    repo: self.root.display().to_string(),
                    problem: format!("{} is not a plain directory", dir.display()),
                });
            }
            Ok(_) => {}
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| BackupError::io(format!("creating {}", dir.display()), e))?,
        }
        Ok(dir)
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of backup `label` (not checked to exist).
    pub fn dir(&self, label: &str) -> Result<PathBuf, BackupError> {
        check_label(label)?;
        Ok(self.root.join(label))
    }

    /// Every backup directory, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>, BackupError> {
        let mut out = Vec::new();
        let read = std::fs::read_dir(&self.root)
            .map_err(|e| BackupError::io(format!("listing {}", self.root.display()), e))?;
        for dirent in read {
            let dirent = dirent.map_err(|e| BackupError::io("listing the repository", e))?;
            let Some(label) = dirent.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_label(&label).is_err() || !dirent.path().is_dir() {
                continue;
            }
            let record = dirent.path().join(COMPLETE_FILE);
            match std::fs::read(&record) {
                Ok(bytes) => match serde_json::from_slice::<BackupInfo>(&bytes) {
                    Ok(info) if info.label == label => out.push(Entry::Complete(info)),
                    _ => out.push(Entry::Incomplete { label }),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.push(Entry::Incomplete { label });
                }
                Err(e) => return Err(BackupError::io(format!("reading {}", record.display()), e)),
            }
        }
        out.sort_by(|a, b| a.label().cmp(b.label()));
        Ok(out)
    }

    /// The complete backup `label`, or the latest complete one.
    pub fn find(&self, label: Option<&str>) -> Result<BackupInfo, BackupError> {
        let mut complete = self.list()?.into_iter().filter_map(|e| match e {
            Entry::Complete(info) => Some(info),
            Entry::Incomplete { .. } => None,
        });
        match label {
            Some(label) => complete
                .into_iter()
                .find(|i| i.label == label)
                .ok_or_else(|| BackupError::NotFound(label.to_owned())),
            None => complete
                .next_back()
                .ok_or_else(|| BackupError::NotFound("(any complete backup)".to_owned())),
        }
    }

    /// Removes backup `label`'s directory: first its completion record (so an interrupted
    /// removal leaves an incomplete backup, never a complete one missing its parts).
    pub fn remove(&self, label: &str) -> Result<(), BackupError> {
        let dir = self.dir(label)?;
        match std::fs::remove_file(dir.join(COMPLETE_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(format!("removing {}", dir.display()), e)),
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| BackupError::io(format!("removing {}", dir.display()), e))
    }

    /// Writes `bytes` to `name` in `dir` through a temporary file, synced, then renamed:
    /// the name appears whole or not at all.
    pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // A random temporary name opened with O_EXCL: a symlink planted in a shared
        // repository is never followed (O_CREAT|O_EXCL refuses any existing name).
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd)
            .map_err(|_| BackupError::Crypto(procuhelp_core::crypto::CryptoError::Rng))?;
        let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(rnd)));
        let path = dir.join(name);
        let ctx = |e| BackupError::io(format!("writing {}", path.display()), e);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(ctx)?;
        file.write_all(bytes).map_err(ctx)?;
        file.sync_all().map_err(ctx)?;
        std::fs::rename(&tmp, &path).map_err(ctx)?;
        sync_dir(dir)
    }
}

/// fsync of a directory, so a rename or a new file in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(format!("syncing {}", dir.display()), e))
}

/// A label is `YYYYMMDDTHHMMSSZ-xxxx`: sortable by time, safe as a path segment.
pub fn check_label(label: &str) -> Result<(), BackupError> {
    let b = label.as_bytes();
    let ok = b.len() == 21
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if ok {
        Ok(())
    } else {
        Err(BackupError::Refused(
            "a backup label looks like 20261203T174600Z-3f2a".to_owned(),
        ))
    }
}

/// A new label for a backup taken at `at`.
pub(crate) fn new_label(at: OffsetDateTime) -> Result<String, BackupError> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let mut rnd = [0u8; 2];
    getrandom::fill(&mut rnd)
        .map_err(|_| BackupError::Crypto(procuhelp_core::crypto::CryptoError::Rng))?;
    Ok(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:02x}{:02x}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        rnd[0],
        rnd[1]
    ))
}

/// The time a label names.
pub fn label_time(label: &str) -> Option<OffsetDateTime> {
    check_label(label).ok()?;
    let n = |r: std::ops::Range<usize>| label.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?,
        u8::try_from(n(6..8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(n(9..11)?).ok()?,
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(t).assume_utc())
}

fn check_apart(repo: &Path, data_dir: &Path, placement: Placement) -> Result<(), BackupError> {
    // The data directory may not exist yet (a backup is never its first use, but keep the
    // check meaningful): compare with its nearest existing ancestor.
    let data = nearest_existing(data_dir)?;
    let refuse = |problem: String| BackupError::Placement {
        repo: repo.display().to_string(),
        problem,
    };
    if repo.starts_with(&data) || data.starts_with(repo) {
        return Err(refuse(format!(
            "it overlaps the data directory {}; a backup must not live (or die) with the data it \
             protects: choose a directory on another disk, e.g. a mounted backup volume",
            data.display()
        )));
    }
    let dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| BackupError::io(format!("reading {}", p.display()), e))
    };
    if placement == Placement::Apart && dev(repo)? == dev(&data)? {
        return Err(refuse(format!(
            "it is on the same filesystem as the data directory {}; a failed disk would take \
             both. Use another volume, or say that this is intended with \
             --allow-repo-on-same-filesystem",
            data.display()
        )));
    }
    Ok(())
}

fn nearest_existing(path: &Path) -> Result<PathBuf, BackupError> {
    let abs = std::path::absolute(path)
        .map_err(|e| BackupError::io(format!("resolving {}", path.display()), e))?;
    for ancestor in abs.ancestors() {
        if let Ok(p) = ancestor.canonicalize() {
            return Ok(p);
        }
    }
    Ok(PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_refuse_paths() {
        let at = time::macros::datetime!(2026-12-03 17:46:05 UTC);
        let label = new_label(at).unwrap();
        assert!(label.starts_with("20261203T174605Z-"), "{label}");
        assert_eq!(label_time(&label), Some(at));
        for bad in [
            "../x",
            "",
            "20261203T174605Z-3f2",
            "20261203T174605Z/3f2a",
            "x".repeat(21).as_str(),
        ] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let base = std::env::temp_dir().join(format!("phrepo-{}", uuid::Uuid::new_v4()));
        let repo = Repository::open(&base.join("repo"), None, Placement::Apart).unwrap();
        let victim = base.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // A symlink where the record goes: replaced, the victim untouched.
        std::os::unix::fs::symlink(&victim, repo.root().join("r.json")).unwrap();
        Repository::write_atomically(repo.root(), "r.json", b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(repo.root().join("r.json")).unwrap(), b"{}");
        // A symlinked drills directory is refused.
        std::os::unix::fs::symlink(&base, repo.root().join(DRILLS_DIR)).unwrap();
        assert!(matches!(
            repo.subdir(DRILLS_DIR),
            Err(BackupError::Placement { .. })
        ));
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn a_repository_inside_or_beside_the_data_is_refused() {
        let base = std::env::temp_dir().join(format!("phrepo-{}", uuid::Uuid::new_v4()));
        let data = base.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inside = Repository::open(
            &data.join("backups"),
            Some(&data),
            Placement::AllowSameFilesystem,
        )
        .unwrap_err()
        .to_string();
        assert!(inside.contains("overlaps the data directory"), "{inside}");
        // /tmp and the data directory share a filesystem here unless /tmp is its own mount.
        let beside = base.join("repo");
        let same_fs =
            std::fs::metadata(&base).unwrap().dev() == std::fs::metadata(&data).unwrap().dev();
        if same_fs {
            let err = Repository::open(&beside, Some(&data), Placement::Apart)
                .unwrap_err()
                .to_string();
            assert!(err.contains("same filesystem"), "{err}");
        }
        Repository::open(&beside, Some(&data), Placement::AllowSameFilesystem).unwrap();
        std::fs::remove_dir_all(&base).ok();
    }
}
