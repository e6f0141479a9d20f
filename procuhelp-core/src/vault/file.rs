//! The embedded vault: one file of sealed entries under a master key file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{SecretName, SecretProvider, VaultError, VersionedSecret, WrappedKey, check_kek_name};
use crate::SecretBytes;
use crate::crypto::{Aad, DataKey, EnvelopeKey, RustCryptoAead, key_version};

const KEY_FILE: &str = "vault.key";
const DATA_FILE: &str = "vault.json";
const LOCK_FILE: &str = "vault.lock";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The embedded vault (see the [module docs](super)).
///
/// Files (in the directory given to [`FileVault::open_or_create`]):
/// * `vault.key` — 32 random bytes, mode 0600, created on first run. Anything looser is
///   refused. Losing it loses every secret: back it up separately from the data.
/// * `vault.json` — every secret version and KEK version, each sealed with AES-256-GCM
///   under the master key, bound by associated data to its name and version, written
///   atomically (temporary file, fsync, rename).
///
/// I/O is synchronous and small (one file); calls are rare (start-up, administration).
pub struct FileVault {
    dir: PathBuf,
    master: EnvelopeKey,
    state: Mutex<State>,
}

impl std::fmt::Debug for FileVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileVault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The state, locked and fresh from disk; the file lock is released on drop.
struct Locked<'a> {
    state: std::sync::MutexGuard<'a, State>,
    _file: std::fs::File,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Proves the master key matches the data at open time.
    check: String,
    secrets: BTreeMap<String, Vec<Entry>>,
    keks: BTreeMap<String, Vec<Entry>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    version: u32,
    sealed: String,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
    let context = context.into();
    move |source| VaultError::Io { context, source }
}

impl FileVault {
    /// Opens the vault in `dir`, creating the directory, the master key and an empty
    /// vault on first use. Refuses a key file readable by group or others, a missing key
    /// file next to existing data, and data sealed under another key.
    pub fn open_or_create(dir: &Path) -> Result<Self, VaultError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating the vault directory"))?;
        let key_path = dir.join(KEY_FILE);
        let data_path = dir.join(DATA_FILE);
        let key_problem = |problem: &str| VaultError::KeyFile {
            path: key_path.display().to_string(),
            problem: problem.to_owned(),
        };
        if !key_path.exists() {
            if data_path.exists() {
                return Err(key_problem(
                    "missing, but vault.json exists: restore the key file (a new key could not read the data)",
                ));
            }
            let key =
                DataKey::generate().map_err(|_| key_problem("no randomness to generate it"))?;
            write_private(&key_path, key.expose())?;
        }
        let meta = std::fs::metadata(&key_path).map_err(io("reading the master key file"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_problem(&format!(
                "permissions {mode:o} are too open; chmod 600"
            )));
        }
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(&key_path).map_err(io("reading the master key file"))?,
        );
        let master =
            DataKey::from_slice(&bytes).map_err(|_| key_problem("must hold exactly 32 bytes"))?;
        let master =
            EnvelopeKey::new(&RustCryptoAead, &master, 1).map_err(|_| key_problem("unusable"))?;
        let vault = Self {
            dir: dir.to_path_buf(),
            master,
            state: Mutex::new(State::default()),
        };
        if data_path.exists() {
            let text = std::fs::read_to_string(&data_path).map_err(io("reading vault.json"))?;
            let state: State = serde_json::from_str(&text)
                .map_err(|e| VaultError::Corrupt(format!("vault.json: {e}")))?;
            vault.open_sealed(&state.check, &check_aad()).map_err(|_| {
                VaultError::Corrupt("the master key does not match vault.json".into())
            })?;
            *vault.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        } else {
            let mut state = State {
                check: vault.seal(b"procuhelp-vault", &check_aad())?,
                ..State::default()
            };
            vault.persist(&mut state)?;
            *vault.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        }
        Ok(vault)
    }

    /// Locks the vault for one operation — in this process (mutex) and across processes
    /// (`flock` on `vault.lock`) — and reloads the state from disk, so several processes
    /// (the server, `keys rotate`) never work on stale copies or overwrite each other.
    fn lock(&self) -> Result<Locked<'_>, VaultError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .map_err(io("opening vault.lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            VaultError::Io {
                context: "locking the vault".into(),
                source: e.into(),
            }
        })?;
        let text =
            std::fs::read_to_string(self.dir.join(DATA_FILE)).map_err(io("reading vault.json"))?;
        *guard = serde_json::from_str(&text)
            .map_err(|e| VaultError::Corrupt(format!("vault.json: {e}")))?;
        Ok(Locked {
            state: guard,
            _file: file,
        })
    }

    fn seal(&self, plaintext: &[u8], aad: &Aad) -> Result<String, VaultError> {
        let sealed = self
            .master
            .seal(aad, plaintext)
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok(B64.encode(sealed))
    }

    fn open_sealed(&self, sealed: &str, aad: &Aad) -> Result<SecretBytes, VaultError> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| VaultError::Corrupt("bad base64".into()))?;
        let plain = self
            .master
            .open(aad, &raw)
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok(SecretBytes::new(plain))
    }

    fn persist(&self, state: &mut State) -> Result<(), VaultError> {
        let text =
            serde_json::to_string_pretty(state).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        let tmp = self.dir.join(format!("{DATA_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, self.dir.join(DATA_FILE)).map_err(io("replacing vault.json"))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the vault directory"))?;
        Ok(())
    }

    fn kek(
        &self,
        state: &mut State,
        kek: &str,
        version: Option<u32>,
        create: bool,
    ) -> Result<(u32, DataKey), VaultError> {
        if create && !state.keks.contains_key(kek) {
            self.add_kek(state, kek)?;
        }
        let versions = state
            .keks
            .get(kek)
            .ok_or_else(|| VaultError::NotFound(format!("KEK {kek}")))?;
        let entry = match version {
            Some(v) => versions.iter().find(|e| e.version == v),
            None => versions.last(),
        }
        .ok_or_else(|| VaultError::NotFound(format!("KEK {kek} version {version:?}")))?;
        let bytes = self.open_sealed(&entry.sealed, &kek_aad(kek, entry.version))?;
        let key = DataKey::from_slice(bytes.expose())
            .map_err(|_| VaultError::Corrupt("KEK length".into()))?;
        Ok((entry.version, key))
    }

    fn add_kek(&self, state: &mut State, kek: &str) -> Result<u32, VaultError> {
        let version = state
            .keks
            .get(kek)
            .and_then(|v| v.last())
            .map_or(1, |e| e.version + 1);
        let key = DataKey::generate().map_err(|e| VaultError::Corrupt(e.to_string()))?;
        let sealed = self.seal(key.expose(), &kek_aad(kek, version))?;
        state
            .keks
            .entry(kek.to_owned())
            .or_default()
            .push(Entry { version, sealed });
        self.persist(state)?;
        Ok(version)
    }
}

fn check_aad() -> Aad {
    Aad::parts(&[b"vault-check"])
}

fn secret_aad(name: &str, version: u32) -> Aad {
    Aad::parts(&[b"vault-secret", name.as_bytes(), &version.to_be_bytes()])
}

fn kek_aad(kek: &str, version: u32) -> Aad {
    Aad::parts(&[b"vault-kek", kek.as_bytes(), &version.to_be_bytes()])
}

fn wrap_aad(kek: &str) -> Aad {
    Aad::parts(&[b"wrapped-data-key", kek.as_bytes()])
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", path.display())))?;
    file.sync_all()
        .map_err(io(format!("syncing {}", path.display())))?;
    Ok(())
}

#[async_trait]
impl SecretProvider for FileVault {
    async fn get(&self, name: &SecretName) -> Result<VersionedSecret, VaultError> {
        let state = self.lock()?;
        let entry = state
            .secrets
            .get(name.as_str())
            .and_then(|v| v.last())
            .ok_or_else(|| VaultError::NotFound(format!("secret {name}")))?;
        let value = self.open_sealed(&entry.sealed, &secret_aad(name.as_str(), entry.version))?;
        Ok(VersionedSecret {
            version: entry.version,
            value,
        })
    }

    async fn get_version(
        &self,
        name: &SecretName,
        version: u32,
    ) -> Result<VersionedSecret, VaultError> {
        let state = self.lock()?;
        let entry = state
            .secrets
            .get(name.as_str())
            .and_then(|v| v.iter().find(|e| e.version == version))
            .ok_or_else(|| VaultError::NotFound(format!("secret {name} version {version}")))?;
        let value = self.open_sealed(&entry.sealed, &secret_aad(name.as_str(), version))?;
        Ok(VersionedSecret { version, value })
    }

    async fn put(&self, name: &SecretName, value: SecretBytes) -> Result<u32, VaultError> {
        let mut state = self.lock()?;
        let version = state
            .secrets
            .get(name.as_str())
            .and_then(|v| v.last())
            .map_or(1, |e| e.version + 1);
        let sealed = self.seal(value.expose(), &secret_aad(name.as_str(), version))?;
        state
            .secrets
            .entry(name.as_str().to_owned())
            .or_default()
            .push(Entry { version, sealed });
        if let Err(e) = self.persist(&mut state) {
            // Keep memory equal to disk: the write did not happen.
            if let Some(v) = state.secrets.get_mut(name.as_str()) {
                v.pop();
            }
            return Err(e);
        }
        Ok(version)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<SecretName>, VaultError> {
        let state = self.lock()?;
        Ok(state
            .secrets
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| SecretName(k.clone()))
            .collect())
    }

    async fn delete(&self, name: &SecretName) -> Result<(), VaultError> {
        let mut state = self.lock()?;
        let removed = state
            .secrets
            .remove(name.as_str())
            .ok_or_else(|| VaultError::NotFound(format!("secret {name}")))?;
        if let Err(e) = self.persist(&mut state) {
            state.secrets.insert(name.as_str().to_owned(), removed);
            return Err(e);
        }
        Ok(())
    }

    async fn wrap_key(&self, kek: &str, key: &DataKey) -> Result<WrappedKey, VaultError> {
        check_kek_name(kek)?;
        let mut state = self.lock()?;
        let (version, kek_key) = self.kek(&mut state, kek, None, true)?;
        let kek_key = EnvelopeKey::new(&RustCryptoAead, &kek_key, version)
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        let ciphertext = kek_key
            .seal(&wrap_aad(kek), key.expose())
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok(WrappedKey {
            kek_version: version,
            ciphertext,
        })
    }

    async fn unwrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        check_kek_name(kek)?;
        let version =
            key_version(&wrapped.ciphertext).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        if version != wrapped.kek_version {
            return Err(VaultError::Corrupt("wrapped key version mismatch".into()));
        }
        let mut state = self.lock()?;
        let (_, kek_key) = self.kek(&mut state, kek, Some(version), false)?;
        let plain = zeroize::Zeroizing::new(
            EnvelopeKey::new(&RustCryptoAead, &kek_key, version)
                .and_then(|k| k.open(&wrap_aad(kek), &wrapped.ciphertext))
                .map_err(|e| VaultError::Corrupt(e.to_string()))?,
        );
        DataKey::from_slice(&plain).map_err(|_| VaultError::Corrupt("data key length".into()))
    }

    async fn rotate_kek(&self, kek: &str) -> Result<u32, VaultError> {
        check_kek_name(kek)?;
        let mut state = self.lock()?;
        self.add_kek(&mut state, kek)
    }

    async fn create_kek(&self, kek: &str) -> Result<(), VaultError> {
        check_kek_name(kek)?;
        let mut state = self.lock()?;
        if !state.keks.contains_key(kek) {
            self.add_kek(&mut state, kek)?;
        }
        Ok(())
    }

    async fn destroy_kek(&self, kek: &str) -> Result<(), VaultError> {
        check_kek_name(kek)?;
        let mut state = self.lock()?;
        let removed = state
            .keks
            .remove(kek)
            .ok_or_else(|| VaultError::NotFound(format!("KEK {kek}")))?;
        if let Err(e) = self.persist(&mut state) {
            state.keks.insert(kek.to_owned(), removed);
            return Err(e);
        }
        Ok(())
    }

    async fn rewrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<WrappedKey, VaultError> {
        let key = self.unwrap_key(kek, wrapped).await?;
        self.wrap_key(kek, &key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("ph-vault-{}", uuid::Uuid::new_v4().simple()))
    }

    #[tokio::test]
    async fn secrets_are_versioned_sealed_and_survive_reopen() {
        let d = dir();
        let vault = FileVault::open_or_create(&d).unwrap();
        let name = SecretName::new("scim/token").unwrap();
        assert_eq!(
            vault
                .put(&name, SecretBytes::new(b"first-value".to_vec()))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            vault
                .put(&name, SecretBytes::new(b"second-value".to_vec()))
                .await
                .unwrap(),
            2
        );
        drop(vault);
        // Nothing readable on disk.
        let disk = std::fs::read_to_string(d.join(DATA_FILE)).unwrap();
        assert!(!disk.contains("first-value") && !disk.contains("second-value"));
        let vault = FileVault::open_or_create(&d).unwrap();
        assert_eq!(
            vault.get(&name).await.unwrap().value.expose(),
            b"second-value"
        );
        assert_eq!(
            vault.get_version(&name, 1).await.unwrap().value.expose(),
            b"first-value"
        );
        assert_eq!(vault.list("scim/").await.unwrap(), vec![name.clone()]);
        vault.delete(&name).await.unwrap();
        assert!(matches!(
            vault.get(&name).await,
            Err(VaultError::NotFound(_))
        ));
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn kek_rotation_keeps_old_wraps_readable() {
        let d = dir();
        let vault = FileVault::open_or_create(&d).unwrap();
        let dek = DataKey::generate().unwrap();
        let w1 = vault.wrap_key("tenant-data", &dek).await.unwrap();
        assert_eq!(w1.kek_version, 1);
        assert_eq!(vault.rotate_kek("tenant-data").await.unwrap(), 2);
        let w2 = vault.rewrap_key("tenant-data", &w1).await.unwrap();
        assert_eq!(w2.kek_version, 2);
        for w in [&w1, &w2] {
            assert_eq!(
                vault.unwrap_key("tenant-data", w).await.unwrap().expose(),
                dek.expose()
            );
        }
        // Another KEK name cannot open it.
        let _ = vault.wrap_key("other", &dek).await.unwrap();
        assert!(vault.unwrap_key("other", &w1).await.is_err());
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn two_instances_on_one_directory_see_each_others_writes() {
        let d = dir();
        let one = FileVault::open_or_create(&d).unwrap();
        let two = FileVault::open_or_create(&d).unwrap();
        let dek = DataKey::generate().unwrap();
        let w1 = one.wrap_key("shared", &dek).await.unwrap();
        assert_eq!(two.rotate_kek("shared").await.unwrap(), 2);
        let w2 = one.rewrap_key("shared", &w1).await.unwrap();
        assert_eq!(w2.kek_version, 2);
        let name = SecretName::new("a").unwrap();
        one.put(&name, SecretBytes::new(b"x".to_vec()))
            .await
            .unwrap();
        two.put(&name, SecretBytes::new(b"y".to_vec()))
            .await
            .unwrap();
        assert_eq!(one.get(&name).await.unwrap().version, 2, "no lost update");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn refuses_loose_permissions_missing_key_and_wrong_key() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        drop(FileVault::open_or_create(&d).unwrap());
        let key = d.join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = FileVault::open_or_create(&d).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::remove_file(&key).unwrap();
        let err = FileVault::open_or_create(&d).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        write_private(&key, &[9u8; 32]).unwrap();
        let err = FileVault::open_or_create(&d).unwrap_err();
        assert!(matches!(err, VaultError::Corrupt(_)), "{err}");
        assert!(!err.to_string().contains("\\u{9}"));
        std::fs::remove_dir_all(&d).ok();
    }
}
