//! Field encryption with per-tenant data keys on a real PostgreSQL, with the embedded
//! file vault holding the KEKs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use procuhelp_core::OrgId;
use procuhelp_core::crypto::{CryptoError, RustCryptoAead};
use procuhelp_core::vault::{FileVault, SecretProvider, WrappedKey};
use procuhelp_tenancy::testkit::{ScratchDb, TestRecords};
use procuhelp_tenancy::{
    EncryptedColumn, Error, FieldCipher, FieldRef, TenantDb, create_organisation,
};
use sqlx::PgPool;

/// The testkit table's encrypted column (as `testkit::MIGRATIONS` declares it).
const IBAN: EncryptedColumn = EncryptedColumn {
    table: "app.test_records",
    column: "secret_sealed",
    field_table: "test_records",
    field_column: "secret",
};

struct Fx {
    scratch: ScratchDb,
    pool: PgPool,
    db: TenantDb,
    vault: Arc<FileVault>,
    vault_dir: std::path::PathBuf,
    a: OrgId,
    b: OrgId,
}

async fn fx() -> Fx {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = create_organisation(&owner, "A").await.unwrap();
    let b = create_organisation(&owner, "B").await.unwrap();
    owner.close().await;
    let pool = scratch.runtime_pool(4).await.unwrap();
    let vault_dir = std::env::temp_dir().join(format!("ph-fc-{}", uuid::Uuid::new_v4().simple()));
    let vault = Arc::new(FileVault::open_or_create(&vault_dir).unwrap());
    Fx {
        scratch,
        db: TenantDb::new(pool.clone()),
        pool,
        vault,
        vault_dir,
        a,
        b,
    }
}

impl Fx {
    fn cipher(&self) -> FieldCipher {
        FieldCipher::new(self.db.clone(), self.vault.clone(), &RustCryptoAead)
    }

    /// Creates `n` records of `org` with an encrypted IBAN each; returns their ids.
    async fn records(
        &self,
        cipher: &FieldCipher,
        org: OrgId,
        n: usize,
    ) -> Vec<(uuid::Uuid, String)> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut tx = self.db.begin(org).await.unwrap();
            let s = TestRecords
                .create(&mut tx, &format!("s{i}"), procuhelp_core::UserId::new())
                .await
                .unwrap();
            let row = s.id.to_string();
            let iban = format!("DE{i:020}");
            let sealed = cipher
                .encrypt(
                    org,
                    FieldRef::new("test_records", "secret", &row),
                    iban.as_bytes(),
                )
                .await
                .unwrap();
            sqlx::query("UPDATE app.test_records SET secret_sealed = $1 WHERE id = $2")
                .bind(&sealed)
                .bind(s.id)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            out.push((s.id, iban));
        }
        out
    }

    async fn sealed(&self, org: OrgId, id: uuid::Uuid) -> Vec<u8> {
        let mut tx = self.db.begin(org).await.unwrap();
        let v: Vec<u8> =
            sqlx::query_scalar("SELECT secret_sealed FROM app.test_records WHERE id = $1")
                .bind(id)
                .fetch_one(tx.conn())
                .await
                .unwrap();
        tx.commit().await.unwrap();
        v
    }

    async fn all_readable(&self, cipher: &FieldCipher, org: OrgId, rows: &[(uuid::Uuid, String)]) {
        for (id, iban) in rows {
            let row = id.to_string();
            let sealed = self.sealed(org, *id).await;
            let plain = cipher
                .decrypt(org, FieldRef::new("test_records", "secret", &row), &sealed)
                .await
                .unwrap();
            assert_eq!(plain.expose(), iban.as_bytes());
        }
    }

    async fn done(self) {
        self.pool.close().await;
        self.scratch.drop_all().await.unwrap();
        std::fs::remove_dir_all(&self.vault_dir).ok();
    }
}

#[tokio::test]
async fn ciphertexts_are_bound_to_row_column_and_tenant() {
    let f = fx().await;
    let cipher = f.cipher();
    let rows = f.records(&cipher, f.a, 2).await;
    f.all_readable(&cipher, f.a, &rows).await;
    let sealed0 = f.sealed(f.a, rows[0].0).await;
    let row0 = rows[0].0.to_string();
    let row1 = rows[1].0.to_string();
    // Copied to another row, another column, another tenant: refused.
    for (org, field) in [
        (f.a, FieldRef::new("test_records", "secret", &row1)),
        (f.a, FieldRef::new("test_records", "vat", &row0)),
        (f.a, FieldRef::new("contracts", "secret", &row0)),
        (f.b, FieldRef::new("test_records", "secret", &row0)),
    ] {
        let err = cipher.decrypt(org, field, &sealed0).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Crypto(CryptoError::Unauthentic)
                    | Error::Crypto(CryptoError::UnknownKeyVersion(_))
            ),
            "{err:?}"
        );
    }
    // Tampered, truncated, unknown version: typed errors.
    let field = FieldRef::new("test_records", "secret", &row0);
    let mut tampered = sealed0.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        cipher.decrypt(f.a, field, &tampered).await,
        Err(Error::Crypto(CryptoError::Unauthentic))
    ));
    assert!(matches!(
        cipher.decrypt(f.a, field, &sealed0[..10]).await,
        Err(Error::Crypto(CryptoError::Malformed))
    ));
    let mut unknown = sealed0.clone();
    unknown[1..5].copy_from_slice(&99u32.to_be_bytes());
    assert!(matches!(
        cipher.decrypt(f.a, field, &unknown).await,
        Err(Error::Crypto(CryptoError::UnknownKeyVersion(99)))
    ));
    // The database holds no plaintext.
    assert!(!sealed0.windows(4).any(|w| w == b"DE00"));
    f.done().await;
}

#[tokio::test]
async fn data_key_rotation_with_interrupted_reencryption_and_retirement() {
    let f = fx().await;
    let cipher = f.cipher();
    let rows = f.records(&cipher, f.a, 7).await;
    assert_eq!(cipher.rotate_data_key(f.a).await.unwrap(), 2);
    // Old rows still open with version 1, decrypt-only.
    f.all_readable(&cipher, f.a, &rows).await;
    // Retiring version 1 is refused while rows use it.
    assert!(matches!(
        cipher.retire(f.a, 1, &[IBAN]).await,
        Err(Error::Invalid { .. })
    ));
    // Re-encrypt 3 rows, then "crash" (drop the cipher), resume with a fresh one.
    let first = cipher.reencrypt_batch(f.a, &IBAN, 3).await.unwrap();
    assert_eq!((first.reencrypted, first.remaining), (3, 4));
    drop(cipher);
    let cipher = f.cipher();
    let mut progress = cipher.reencrypt_batch(f.a, &IBAN, 3).await.unwrap();
    while progress.remaining > 0 {
        progress = cipher.reencrypt_batch(f.a, &IBAN, 3).await.unwrap();
    }
    f.all_readable(&cipher, f.a, &rows).await;
    for (id, _) in &rows {
        assert_eq!(
            procuhelp_core::crypto::key_version(&f.sealed(f.a, *id).await).unwrap(),
            2
        );
    }
    // Now version 1 can be retired, and a retired version is refused.
    cipher.retire(f.a, 1, &[IBAN]).await.unwrap();
    // Active version cannot be retired.
    assert!(cipher.retire(f.a, 2, &[IBAN]).await.is_err());
    // Tenant B was never touched.
    let b_rows = f.records(&cipher, f.b, 1).await;
    f.all_readable(&cipher, f.b, &b_rows).await;
    f.done().await;
}

#[tokio::test]
async fn retired_version_is_refused() {
    let f = fx().await;
    let cipher = f.cipher();
    let sealed_v1 = cipher
        .encrypt(f.a, FieldRef::new("t", "c", "r"), b"old")
        .await
        .unwrap();
    cipher.rotate_data_key(f.a).await.unwrap();
    // Not stored in a registered column, so retirement is allowed.
    cipher.retire(f.a, 1, &[IBAN]).await.unwrap();
    let err = f
        .cipher()
        .decrypt(f.a, FieldRef::new("t", "c", "r"), &sealed_v1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::KeyUnavailable(m) if m.contains("retired")),
        "{err:?}"
    );
    f.done().await;
}

#[tokio::test]
async fn kek_rotation_rewraps_every_data_key_without_touching_data() {
    let f = fx().await;
    let cipher = f.cipher();
    let rows = f.records(&cipher, f.a, 3).await;
    cipher.rotate_data_key(f.a).await.unwrap();
    let before: Vec<Vec<u8>> =
        futures_util::future::join_all(rows.iter().map(|(id, _)| f.sealed(f.a, *id))).await;
    let (kek_version, rewrapped) = cipher.rotate_kek(f.a).await.unwrap();
    assert_eq!((kek_version, rewrapped), (2, 2));
    let mut tx = f.db.begin(f.a).await.unwrap();
    let keks: Vec<i32> =
        sqlx::query_scalar("SELECT kek_version FROM app.data_keys ORDER BY version")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(keks, vec![2, 2]);
    let after: Vec<Vec<u8>> =
        futures_util::future::join_all(rows.iter().map(|(id, _)| f.sealed(f.a, *id))).await;
    assert_eq!(before, after, "KEK rotation must not touch data");
    // A cold cipher (nothing cached) reads everything through the new wraps.
    f.all_readable(&f.cipher(), f.a, &rows).await;
    f.done().await;
}

#[tokio::test]
async fn crypto_shredding_makes_data_unrecoverable_even_from_old_backups() {
    let f = fx().await;
    let cipher = f.cipher();
    let rows = f.records(&cipher, f.a, 2).await;
    let b_rows = f.records(&cipher, f.b, 1).await;
    // An "old backup" of A's wrapped keys.
    let mut tx = f.db.begin(f.a).await.unwrap();
    let backup: Vec<(i32, Vec<u8>)> =
        sqlx::query_as("SELECT kek_version, wrapped FROM app.data_keys")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.commit().await.unwrap();

    cipher.shred(f.a).await.unwrap();
    for c in [&cipher, &f.cipher()] {
        let row = rows[0].0.to_string();
        let err = c
            .decrypt(
                f.a,
                FieldRef::new("test_records", "secret", &row),
                &f.sealed(f.a, rows[0].0).await,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::KeyUnavailable(m) if m.contains("destroyed")),
            "{err:?}"
        );
    }
    // The backup's wrapped keys no longer unwrap: the tenant KEK is gone from the vault.
    let kek = format!("tenant-{}", f.a.as_uuid().simple());
    for (kek_version, ciphertext) in backup {
        let wrapped = WrappedKey {
            kek_version: kek_version as u32,
            ciphertext,
        };
        assert!(f.vault.unwrap_key(&kek, &wrapped).await.is_err());
    }
    // The destruction is recorded.
    let mut tx = f.db.begin(f.a).await.unwrap();
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM app.key_events WHERE event = 'destroyed'")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(events, vec!["destroyed".to_owned()]);
    // Another tenant is unaffected.
    f.all_readable(&cipher, f.b, &b_rows).await;
    f.done().await;
}

#[tokio::test]
async fn message_limit_forces_a_new_key_version() {
    let f = fx().await;
    let cipher = f.cipher().with_message_limit(10);
    let mut versions = std::collections::BTreeSet::new();
    for i in 0..25 {
        let row = format!("r{i}");
        let sealed = cipher
            .encrypt(f.a, FieldRef::new("t", "c", &row), b"v")
            .await
            .unwrap();
        versions.insert(procuhelp_core::crypto::key_version(&sealed).unwrap());
        assert_eq!(
            cipher
                .decrypt(f.a, FieldRef::new("t", "c", &row), &sealed)
                .await
                .unwrap()
                .expose(),
            b"v"
        );
    }
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    let mut tx = f.db.begin(f.a).await.unwrap();
    let over: bool =
        sqlx::query_scalar("SELECT bool_or(encryptions_reserved > 10) FROM app.data_keys")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert!(!over, "no key may be reserved past its limit");
    f.done().await;
}

/// Issue #11: key lookups carry an explicit organisation predicate besides RLS. On a
/// pool that RLS does not bind (the superuser), two organisations' keys stay apart: each
/// decrypts its own values, and shredding one leaves the other's keys alone.
#[tokio::test]
async fn key_management_names_the_organisation_even_where_rls_does_not_bind() {
    let f = fx().await;
    let admin = f.scratch.admin_pool(2).await.unwrap();
    let cipher = FieldCipher::new(
        TenantDb::new(admin.clone()),
        f.vault.clone(),
        &RustCryptoAead,
    );
    let field = FieldRef::new("t", "c", "r1");
    let a = cipher.encrypt(f.a, field, b"secret of A").await.unwrap();
    let b = cipher.encrypt(f.b, field, b"secret of B").await.unwrap();
    assert_eq!(
        cipher.decrypt(f.a, field, &a).await.unwrap().expose(),
        b"secret of A"
    );
    assert_eq!(
        cipher.decrypt(f.b, field, &b).await.unwrap().expose(),
        b"secret of B"
    );
    // Rotation and shredding of A touch A's keys only.
    cipher.rotate_kek(f.a).await.unwrap();
    cipher.rotate_data_key(f.a).await.unwrap();
    cipher.shred(f.a).await.unwrap();
    let states: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT org_id, state FROM app.data_keys ORDER BY org_id, version")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert!(
        states
            .iter()
            .all(|(org, state)| (*org == f.a.as_uuid()) == (state == "destroyed")),
        "{states:?}"
    );
    let fresh = f.cipher();
    assert_eq!(
        fresh.decrypt(f.b, field, &b).await.unwrap().expose(),
        b"secret of B"
    );
    admin.close().await;
    f.done().await;
}

/// Issue #11: revocation reaches other processes' key caches. Two ciphers with their own
/// pools and vault handles stand for two server processes: once one shreds (or retires)
/// a key, the other refuses it within its cache bound, although it had the key cached.
#[tokio::test]
async fn shredding_in_one_process_reaches_another_process_cache() {
    let f = fx().await;
    let ttl = std::time::Duration::from_millis(300);
    let other_pool = f.scratch.runtime_pool(2).await.unwrap();
    let other_vault = Arc::new(FileVault::open_or_create(&f.vault_dir).unwrap());
    let one = f.cipher().with_key_cache_ttl(ttl);
    let two = FieldCipher::new(
        TenantDb::new(other_pool.clone()),
        other_vault,
        &RustCryptoAead,
    )
    .with_key_cache_ttl(ttl);
    let field = FieldRef::new("t", "c", "r1");
    let sealed = one.encrypt(f.a, field, b"v").await.unwrap();
    let b_sealed = one.encrypt(f.b, field, b"w").await.unwrap();
    // The second process decrypts, and so caches A's key.
    assert_eq!(
        two.decrypt(f.a, field, &sealed).await.unwrap().expose(),
        b"v"
    );
    assert_eq!(
        two.decrypt(f.b, field, &b_sealed).await.unwrap().expose(),
        b"w"
    );
    one.shred(f.a).await.unwrap();
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;
    let err = two.decrypt(f.a, field, &sealed).await.unwrap_err();
    assert!(
        matches!(err, Error::KeyUnavailable(m) if m.contains("destroyed")),
        "{err:?}"
    );
    // Encrypting in the second process does not reuse A's shredded key either.
    let after = two.encrypt(f.a, field, b"x").await;
    if let Ok(resealed) = after {
        assert_ne!(
            procuhelp_core::crypto::key_version(&resealed).unwrap(),
            procuhelp_core::crypto::key_version(&sealed).unwrap()
        );
    }
    // B is untouched.
    assert_eq!(
        two.decrypt(f.b, field, &b_sealed).await.unwrap().expose(),
        b"w"
    );
    other_pool.close().await;
    f.done().await;
}

#[test]
fn key_cache_ttl_defaults_to_a_minute() {
    assert_eq!(
        procuhelp_tenancy::DEFAULT_KEY_CACHE_TTL,
        std::time::Duration::from_secs(60)
    );
}
