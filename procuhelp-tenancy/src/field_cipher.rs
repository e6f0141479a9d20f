//! Field encryption with per-tenant data keys.
//!
//! Key hierarchy: each organisation has a key-encryption key (KEK) `tenant-<org>` inside
//! the [`SecretProvider`] (it never leaves it), which wraps that organisation's data keys
//! (DEKs); wrapped DEKs live in `app.data_keys`. Fields are sealed with
//! [`EnvelopeKey`] (AES-256-GCM, key version in the header, AAD = org, table, column,
//! row), so a ciphertext copied to another row, column or tenant does not open.
//!
//! ```no_run
//! # async fn demo(cipher: procuhelp_tenancy::FieldCipher, org: procuhelp_core::OrgId) -> procuhelp_tenancy::Result<()> {
//! use procuhelp_tenancy::FieldRef;
//! let row = "0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b";
//! let sealed = cipher.encrypt(org, FieldRef::new("suppliers", "iban", row), b"DE89370400440532013000").await?;
//! let iban = cipher.decrypt(org, FieldRef::new("suppliers", "iban", row), &sealed).await?;
//! # let _ = iban; Ok(()) }
//! ```
//!
//! * Every DEK has a hard message limit ([`DEFAULT_MESSAGE_LIMIT`], well under the 2^32
//!   that random 96-bit nonces allow); encryptions are reserved in blocks in the database
//!   *before* use, in their own transaction, so a crash can only over-count. An exhausted
//!   key is replaced by a new version automatically.
//! * Rotation: [`FieldCipher::rotate_kek`] re-wraps every DEK under the new KEK version
//!   without touching data; [`FieldCipher::rotate_data_key`] starts a new DEK version and
//!   [`FieldCipher::reencrypt_batch`] moves rows to it in resumable batches; old versions
//!   decrypt until [`FieldCipher::retire`]d, which refuses while rows still use them.
//! * Crypto-shredding: [`FieldCipher::shred`] erases the wrapped DEKs *and* destroys the
//!   tenant's KEK in the vault, so copies of the wrapped DEKs in old backups are useless.
//! * Cached DEKs are zeroized when evicted or dropped, and used from memory for at most
//!   [`DEFAULT_KEY_CACHE_TTL`] (or [`FieldCipher::with_key_cache_ttl`]): retirement and
//!   crypto-shredding done by *another* process reach this one within that bound, because
//!   an expired key is looked up again (and a destroyed or retired state is refused).
//! * Every key-management statement names the organisation (`org_id = $n`) besides
//!   row-level security, so keys stay apart even on a connection RLS does not bind.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procuhelp_core::crypto::{Aad, AeadProvider, CryptoError, DataKey, EnvelopeKey, key_version};
use procuhelp_core::vault::{SecretProvider, VaultError, WrappedKey};
use procuhelp_core::{OrgId, SecretBytes};

use crate::{Error, Result, TenantDb, TenantTx};

/// The hard limit of encryptions per data key (2^30).
pub const DEFAULT_MESSAGE_LIMIT: i64 = 1 << 30;
const RESERVATION: i64 = 4096;
const CACHE_CAPACITY: usize = 4096;
/// How long an unwrapped data key is used from memory before it is looked up again: the
/// longest another process's retirement or crypto-shredding can go unnoticed here. Also
/// the upper bound of [`FieldCipher::with_key_cache_ttl`].
pub const DEFAULT_KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Where a field value belongs: bound into its ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    table: &'static str,
    column: &'static str,
    row: &'a str,
}

impl<'a> FieldRef<'a> {
    /// The field `column` of row `row` of `table`.
    pub fn new(table: &'static str, column: &'static str, row: &'a str) -> Self {
        Self { table, column, row }
    }

    fn aad(&self, org: OrgId) -> Aad {
        Aad::field(org, self.table, self.column, self.row)
    }
}

/// A column of encrypted values, for re-encryption jobs: the table has `org_id`, `id`
/// (uuid) and the `bytea` column.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedColumn {
    /// Schema-qualified table, e.g. `app.suppliers`.
    pub table: &'static str,
    /// The column, e.g. `iban_sealed`.
    pub column: &'static str,
    /// The table name used in [`FieldRef`]s for this column.
    pub field_table: &'static str,
    /// The column name used in [`FieldRef`]s.
    pub field_column: &'static str,
}

impl EncryptedColumn {
    /// `template` with `{t}` and `{c}` replaced by the table and column, after checking
    /// that both are plain identifiers (they are `'static` code, but they go into SQL).
    pub(crate) fn sql(&self, template: &str) -> Result<String> {
        check_ident(self.table)?;
        check_ident(self.column)?;
        Ok(template
            .replace("{t}", self.table)
            .replace("{c}", self.column))
    }
}

/// Progress of a re-encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReencryptProgress {
    /// Rows moved to the active key by this call.
    pub reencrypted: u64,
    /// Rows still under older keys.
    pub remaining: u64,
}

struct ActiveKey {
    key: Arc<EnvelopeKey>,
    remaining: i64,
    loaded: Instant,
}

/// Encrypts and decrypts fields with per-tenant data keys: key hierarchy, message limits,
/// rotation and crypto-shredding are described in `docs/encryption.md`.
pub struct FieldCipher {
    db: TenantDb,
    vault: Arc<dyn SecretProvider>,
    provider: &'static dyn AeadProvider,
    message_limit: i64,
    key_ttl: Duration,
    active: Mutex<HashMap<OrgId, ActiveKey>>,
    cache: Mutex<KeyCache>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldCipher")
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

/// Decrypted (unwrapped, prepared) DEKs by (org, version), with when they were loaded;
/// oldest evicted first, expired ones on use. Dropping an `EnvelopeKey` zeroizes its key
/// schedule.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<(OrgId, u32), (Arc<EnvelopeKey>, Instant)>,
    order: VecDeque<(OrgId, u32)>,
}

impl KeyCache {
    /// The key if it was loaded less than `ttl` ago; an expired one is dropped, so the
    /// caller looks its state up again.
    fn get(&mut self, id: &(OrgId, u32), ttl: Duration) -> Option<Arc<EnvelopeKey>> {
        match self.keys.get(id) {
            Some((key, loaded)) if loaded.elapsed() < ttl => Some(key.clone()),
            Some(_) => {
                self.keys.remove(id);
                self.order.retain(|k| k != id);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, id: (OrgId, u32), key: Arc<EnvelopeKey>) {
        if self.keys.insert(id, (key, Instant::now())).is_none() {
            self.order.push_back(id);
        }
        while self.keys.len() > CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.keys.remove(&old);
                }
                None => break,
            }
        }
    }

    fn evict_org(&mut self, org: OrgId) {
        self.keys.retain(|(o, _), _| *o != org);
        self.order.retain(|(o, _)| *o != org);
    }
}

/// Whether an organisation's encrypted fields can be read ([`FieldCipher::key_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// Every usable data-key version unwraps.
    Readable {
        /// How many versions.
        versions: usize,
    },
    /// The organisation's KEK is gone from the vault (crypto-shredded): its fields are
    /// unrecoverable, here and in every backup.
    Shredded,
    /// It never had a data key (nothing encrypted yet).
    NoKeys,
}

pub(crate) fn kek_name(org: OrgId) -> String {
    format!("tenant-{}", org.as_uuid().simple())
}

/// The KEK sealing the organisation's part of every backup ([`crate::backup`]): apart
/// from the field KEK, because crypto-shredding (which destroys that one) must not make
/// a live organisation's backups unreadable; only offboarding destroys this one. Under
/// the `tenant-` prefix: the one OpenBao's policy lets the application delete.
pub(crate) fn backup_kek_name(org: OrgId) -> String {
    format!("tenant-{}-backup", org.as_uuid().simple())
}

fn vault_err(e: VaultError) -> Error {
    match e {
        VaultError::NotFound(_) => {
            Error::KeyUnavailable("the tenant's key-encryption key is gone (destroyed?)")
        }
        other => Error::Vault(other),
    }
}

fn crypto_err(e: CryptoError) -> Error {
    Error::Crypto(e)
}

impl FieldCipher {
    /// A cipher whose key management runs on `db` (its own pool, so reservations commit
    /// independently of callers' transactions), with KEKs in `vault` and `provider` for
    /// AES-256-GCM.
    pub fn new(
        db: TenantDb,
        vault: Arc<dyn SecretProvider>,
        provider: &'static dyn AeadProvider,
    ) -> Self {
        Self {
            db,
            vault,
            provider,
            message_limit: DEFAULT_MESSAGE_LIMIT,
            key_ttl: DEFAULT_KEY_CACHE_TTL,
            active: Mutex::new(HashMap::new()),
            cache: Mutex::new(KeyCache::default()),
        }
    }

    /// Lowers the per-key message limit (tests exercise automatic rotation with it).
    pub fn with_message_limit(mut self, limit: i64) -> Self {
        self.message_limit = limit.clamp(1, DEFAULT_MESSAGE_LIMIT);
        self
    }

    /// Shortens how long an unwrapped data key is used from memory (at most
    /// [`DEFAULT_KEY_CACHE_TTL`]): the bound within which another process's retirement
    /// or crypto-shredding reaches this one. Each expiry costs one key lookup per
    /// organisation and version, and re-reserving the active key's block.
    pub fn with_key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.key_ttl = ttl.min(DEFAULT_KEY_CACHE_TTL);
        self
    }

    /// Seals `plaintext` for `field` of `org` under the organisation's active data key.
    pub async fn encrypt(
        &self,
        org: OrgId,
        field: FieldRef<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.active_key(org).await?;
        key.seal(&field.aad(org), plaintext).map_err(crypto_err)
    }

    /// Opens a value sealed for `field` of `org`.
    pub async fn decrypt(
        &self,
        org: OrgId,
        field: FieldRef<'_>,
        sealed: &[u8],
    ) -> Result<SecretBytes> {
        let version = key_version(sealed).map_err(crypto_err)?;
        let key = self.key(org, version).await?;
        key.open(&field.aad(org), sealed)
            .map(SecretBytes::new)
            .map_err(crypto_err)
    }

    /// The active key, reserving a block of encryptions when the current block is used up.
    async fn active_key(&self, org: OrgId) -> Result<Arc<EnvelopeKey>> {
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = active.get_mut(&org)
                && a.remaining > 0
                && a.loaded.elapsed() < self.key_ttl
            {
                a.remaining -= 1;
                return Ok(a.key.clone());
            }
        }
        // Reserve in the database, in a transaction of our own.
        let block = RESERVATION.min(self.message_limit);
        for _ in 0..3 {
            let mut tx = self.db.begin(org).await?;
            let reserved: Option<(i32, i64)> = sqlx::query_as(
                "UPDATE app.data_keys SET encryptions_reserved = encryptions_reserved + $1, changed_at = now()
                 WHERE org_id = $3 AND state = 'active' AND encryptions_reserved + $1 <= $2
                 RETURNING version, encryptions_reserved",
            )
            .bind(block)
            .bind(self.message_limit)
            .bind(org.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
            match reserved {
                Some((version, _)) => {
                    tx.commit().await?;
                    let version = u32::try_from(version)
                        .map_err(|_| Error::KeyUnavailable("bad key version"))?;
                    let key = self.key(org, version).await?;
                    let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
                    active.insert(
                        org,
                        ActiveKey {
                            key: key.clone(),
                            remaining: block - 1,
                            loaded: Instant::now(),
                        },
                    );
                    return Ok(key);
                }
                None => {
                    // No active key, or it is exhausted: start a new version (forces
                    // rotation), then reserve again.
                    self.new_version(&mut tx, org, "created").await?;
                    tx.commit().await?;
                }
            }
        }
        Err(Error::KeyUnavailable(
            "could not reserve encryptions under a data key",
        ))
    }

    /// Creates a new active DEK version (the previous active one becomes decrypt-only).
    async fn new_version(&self, tx: &mut TenantTx, org: OrgId, event: &'static str) -> Result<u32> {
        let kek = kek_name(org);
        self.vault.create_kek(&kek).await.map_err(vault_err)?;
        let dek = DataKey::generate().map_err(crypto_err)?;
        let wrapped = self.vault.wrap_key(&kek, &dek).await.map_err(vault_err)?;
        sqlx::query("UPDATE app.data_keys SET state = 'decrypt_only', changed_at = now() WHERE org_id = $1 AND state = 'active'")
            .bind(org.as_uuid())
            .execute(tx.conn())
            .await?;
        let version: i32 = sqlx::query_scalar(
            "INSERT INTO app.data_keys (org_id, version, state, kek_version, wrapped)
             SELECT $1, coalesce(max(version), 0) + 1, 'active', $2, $3 FROM app.data_keys
             WHERE org_id = $1
             RETURNING version",
        )
        .bind(org.as_uuid())
        .bind(i32::try_from(wrapped.kek_version).unwrap_or(i32::MAX))
        .bind(&wrapped.ciphertext)
        .fetch_one(tx.conn())
        .await?;
        record(
            tx,
            org,
            event,
            Some(version),
            serde_json::json!({ "kek_version": wrapped.kek_version }),
        )
        .await?;
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&org);
        u32::try_from(version).map_err(|_| Error::KeyUnavailable("bad key version"))
    }

    /// A decryption key by version: cached, or loaded, unwrapped and prepared.
    async fn key(&self, org: OrgId, version: u32) -> Result<Arc<EnvelopeKey>> {
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(org, version), self.key_ttl)
        {
            return Ok(key);
        }
        let row: Option<(String, Option<i32>, Option<Vec<u8>>)> = self
            .db
            .fetch_optional_once(org, LOAD_KEY.query_as().bind_int(i64::from(version)))
            .await?;
        let (state, kek_version, wrapped) =
            row.ok_or(Error::Crypto(CryptoError::UnknownKeyVersion(version)))?;
        match state.as_str() {
            "active" | "decrypt_only" => {}
            "retired" => return Err(Error::KeyUnavailable("the data key version was retired")),
            _ => {
                // Shredding destroys every version at once: drop the others now rather
                // than when they expire.
                self.forget_org(org);
                return Err(Error::KeyUnavailable(
                    "the data key was destroyed (crypto-shredded)",
                ));
            }
        }
        let (Some(kek_version), Some(ciphertext)) = (kek_version, wrapped) else {
            return Err(Error::KeyUnavailable(
                "the data key was destroyed (crypto-shredded)",
            ));
        };
        let wrapped = WrappedKey {
            kek_version: u32::try_from(kek_version).unwrap_or(0),
            ciphertext,
        };
        let dek = self
            .vault
            .unwrap_key(&kek_name(org), &wrapped)
            .await
            .map_err(vault_err)?;
        let key = Arc::new(EnvelopeKey::new(self.provider, &dek, version).map_err(crypto_err)?);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((org, version), key.clone());
        Ok(key)
    }

    /// Drops every cached key of `org` (active and decryption keys).
    fn forget_org(&self, org: OrgId) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&org);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .evict_org(org);
    }

    /// Starts a new data-key version for `org`; rows keep opening with the old one until
    /// re-encrypted and the old version retired.
    pub async fn rotate_data_key(&self, org: OrgId) -> Result<u32> {
        let mut tx = self.db.begin(org).await?;
        let version = self.new_version(&mut tx, org, "rotated").await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Re-encrypts at most `batch` rows of `column` that are under an older key version;
    /// commits per batch, so it can be interrupted and resumed at any point.
    pub async fn reencrypt_batch(
        &self,
        org: OrgId,
        column: &EncryptedColumn,
        batch: i64,
    ) -> Result<ReencryptProgress> {
        let select = column.sql(
            "SELECT id, {c} FROM {t} WHERE org_id = $3 AND {c} IS NOT NULL AND substring({c} from 2 for 4) <> $1
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )?;
        let update =
            column.sql("UPDATE {t} SET {c} = $1 WHERE org_id = $4 AND id = $2 AND {c} = $3")?;
        let count = column.sql(
            "SELECT count(*) FROM {t} WHERE org_id = $2 AND {c} IS NOT NULL AND substring({c} from 2 for 4) <> $1",
        )?;
        let active = self.active_key(org).await?;
        let version = active.version().to_be_bytes().to_vec();
        let mut tx = self.db.begin(org).await?;
        let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(&select)
            .bind(&version)
            .bind(batch)
            .bind(org.as_uuid())
            .fetch_all(tx.conn())
            .await?;
        let mut done = 0u64;
        for (id, sealed) in rows {
            let row = id.hyphenated().to_string();
            let field = FieldRef::new(column.field_table, column.field_column, &row);
            let plain = self.decrypt(org, field, &sealed).await?;
            let resealed = self.encrypt(org, field, plain.expose()).await?;
            sqlx::query(&update)
                .bind(&resealed)
                .bind(id)
                .bind(&sealed)
                .bind(org.as_uuid())
                .execute(tx.conn())
                .await?;
            done += 1;
        }
        let remaining: i64 = sqlx::query_scalar(&count)
            .bind(&version)
            .bind(org.as_uuid())
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(ReencryptProgress {
            reencrypted: done,
            remaining: u64::try_from(remaining).unwrap_or(0),
        })
    }

    /// Retires a decrypt-only version: refused afterwards. Fails while any of `columns`
    /// still holds a value under it, or if it is the active version.
    pub async fn retire(
        &self,
        org: OrgId,
        version: u32,
        columns: &[EncryptedColumn],
    ) -> Result<()> {
        let mut tx = self.db.begin(org).await?;
        let prefix = version.to_be_bytes().to_vec();
        for column in columns {
            let in_use_sql = column
                .sql("SELECT EXISTS (SELECT 1 FROM {t} WHERE org_id = $2 AND substring({c} from 2 for 4) = $1)")?;
            let in_use: bool = sqlx::query_scalar(&in_use_sql)
                .bind(&prefix)
                .bind(org.as_uuid())
                .fetch_one(tx.conn())
                .await?;
            if in_use {
                return Err(Error::Invalid {
                    field: "version",
                    problem: "still used by stored values; re-encrypt first",
                });
            }
        }
        let changed = sqlx::query("UPDATE app.data_keys SET state = 'retired', changed_at = now() WHERE org_id = $2 AND version = $1 AND state = 'decrypt_only'")
            .bind(i32::try_from(version).unwrap_or(i32::MAX))
            .bind(org.as_uuid())
            .execute(tx.conn())
            .await?;
        if changed.rows_affected() == 0 {
            return Err(Error::Invalid {
                field: "version",
                problem: "not a decrypt-only key version",
            });
        }
        record(
            &mut tx,
            org,
            "retired",
            i32::try_from(version).ok(),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .remove(&(org, version));
        Ok(())
    }

    /// Rotates the organisation's KEK and re-wraps every live DEK under the new version.
    /// Data is not touched. Returns the new KEK version and the number of DEKs re-wrapped.
    pub async fn rotate_kek(&self, org: OrgId) -> Result<(u32, usize)> {
        let kek = kek_name(org);
        self.vault.create_kek(&kek).await.map_err(vault_err)?;
        let kek_version = self.vault.rotate_kek(&kek).await.map_err(vault_err)?;
        let mut tx = self.db.begin(org).await?;
        let rows: Vec<(i32, i32, Vec<u8>)> = sqlx::query_as(
            "SELECT version, kek_version, wrapped FROM app.data_keys WHERE org_id = $1 AND wrapped IS NOT NULL FOR UPDATE",
        )
        .bind(org.as_uuid())
        .fetch_all(tx.conn())
        .await?;
        let mut count = 0;
        for (version, old_kek, ciphertext) in rows {
            let wrapped = WrappedKey {
                kek_version: u32::try_from(old_kek).unwrap_or(0),
                ciphertext,
            };
            let rewrapped = self
                .vault
                .rewrap_key(&kek, &wrapped)
                .await
                .map_err(vault_err)?;
            sqlx::query("UPDATE app.data_keys SET kek_version = $2, wrapped = $3, changed_at = now() WHERE org_id = $4 AND version = $1")
                .bind(version)
                .bind(i32::try_from(rewrapped.kek_version).unwrap_or(i32::MAX))
                .bind(&rewrapped.ciphertext)
                .bind(org.as_uuid())
                .execute(tx.conn())
                .await?;
            count += 1;
        }
        record(
            &mut tx,
            org,
            "rewrapped",
            None,
            serde_json::json!({ "kek_version": kek_version, "data_keys": count }),
        )
        .await?;
        tx.commit().await?;
        Ok((kek_version, count))
    }

    /// Whether `org`'s data keys still open: every usable version is unwrapped by the
    /// vault (nothing is cached or decrypted). A restore drill uses it to tell an
    /// organisation shredded after the backup (its KEK is gone: [`KeyState::Shredded`],
    /// as intended) from a vault that does not match the database (an error).
    pub async fn key_state(&self, org: OrgId) -> Result<KeyState> {
        let rows: Vec<(String, Option<i32>, Option<Vec<u8>>)> = {
            let mut tx = self.db.begin(org).await?;
            let rows = sqlx::query_as(
                "SELECT state, kek_version, wrapped FROM app.data_keys WHERE org_id = $1 ORDER BY version",
            )
            .bind(org.as_uuid())
            .fetch_all(tx.conn())
            .await?;
            tx.rollback().await?;
            rows
        };
        if rows.is_empty() {
            return Ok(KeyState::NoKeys);
        }
        let mut usable = 0usize;
        for (state, kek_version, wrapped) in rows {
            let (Some(kek_version), Some(ciphertext)) = (kek_version, wrapped) else {
                continue;
            };
            if !matches!(state.as_str(), "active" | "decrypt_only") {
                continue;
            }
            let wrapped = WrappedKey {
                kek_version: u32::try_from(kek_version).unwrap_or(0),
                ciphertext,
            };
            match self.vault.unwrap_key(&kek_name(org), &wrapped).await {
                Ok(_) => usable += 1,
                Err(VaultError::NotFound(_)) => return Ok(KeyState::Shredded),
                Err(e) => return Err(Error::Vault(e)),
            }
        }
        Ok(if usable == 0 {
            KeyState::Shredded
        } else {
            KeyState::Readable { versions: usable }
        })
    }

    /// Crypto-shredding: erases every wrapped DEK of `org`, destroys its KEK in the vault
    /// and records the destruction. Every encrypted value of the organisation — here and
    /// in any backup — becomes unrecoverable.
    pub async fn shred(&self, org: OrgId) -> Result<()> {
        let mut tx = self.db.begin(org).await?;
        let destroyed = sqlx::query(
            "UPDATE app.data_keys SET state = 'destroyed', wrapped = NULL, kek_version = NULL, changed_at = now()
             WHERE org_id = $1 AND state <> 'destroyed'",
        )
        .bind(org.as_uuid())
        .execute(tx.conn())
        .await?
        .rows_affected();
        record(
            &mut tx,
            org,
            "destroyed",
            None,
            serde_json::json!({ "data_keys": destroyed }),
        )
        .await?;
        tx.commit().await?;
        self.forget_org(org);
        match self.vault.destroy_kek(&kek_name(org)).await {
            Ok(()) | Err(VaultError::NotFound(_)) => Ok(()),
            Err(e) => Err(Error::Vault(e)),
        }
    }
}

const LOAD_KEY: crate::ScopedRead = crate::ScopedRead::new(
    "SELECT k.state, k.kek_version, k.wrapped FROM app.data_keys k WHERE k.org_id = tenant.org AND k.version = $2",
);

async fn record(
    tx: &mut TenantTx,
    org: OrgId,
    event: &str,
    version: Option<i32>,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO app.key_events (org_id, event, version, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(org.as_uuid())
    .bind(event)
    .bind(version)
    .bind(detail)
    .execute(tx.conn())
    .await?;
    tracing::info!(%org, event, version, "data key event");
    Ok(())
}

fn check_ident(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "column",
            problem: "identifiers are [a-z0-9_.]",
        })
    }
}
