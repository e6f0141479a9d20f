//! Key rotation through `procuhelp_tenancy::rotation` with the columns a composed schema
//! declares, on a real PostgreSQL with the file vault holding the KEKs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use procuhelp_core::crypto::{RustCryptoAead, key_version};
use procuhelp_core::vault::FileVault;
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::rotation::{OrgRotation, RotationAudit, rotate_all};
use procuhelp_tenancy::testkit::{self, ScratchDb, TestRecords};
use procuhelp_tenancy::{Error, FieldCipher, FieldRef, TenantDb, create_organisation};
use sqlx::PgPool;
use uuid::Uuid;

/// Records what it is told; refuses from the `refuse_from`-th call on.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<OrgRotation>>,
    refuse_from: Option<usize>,
}

#[async_trait]
impl RotationAudit for Recorder {
    async fn rotated(
        &self,
        rotation: &OrgRotation,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut seen = self.seen.lock().unwrap();
        if self.refuse_from.is_some_and(|n| seen.len() >= n) {
            return Err("audit trail unavailable".into());
        }
        seen.push(rotation.clone());
        Ok(())
    }
}

struct Fx {
    scratch: ScratchDb,
    owner: PgPool,
    cipher: FieldCipher,
    vault_dir: std::path::PathBuf,
    orgs: Vec<OrgId>,
    /// (org, record id, plaintext)
    rows: Vec<(OrgId, Uuid, String)>,
}

async fn fx() -> Fx {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(2).await.unwrap();
    let mut orgs = Vec::new();
    for name in ["A", "B"] {
        orgs.push(create_organisation(&owner, name).await.unwrap());
    }
    let vault_dir = std::env::temp_dir().join(format!("ph-rot-{}", Uuid::new_v4().simple()));
    let vault = Arc::new(FileVault::open_or_create(&vault_dir).unwrap());
    let db = TenantDb::new(owner.clone());
    let cipher = FieldCipher::new(db.clone(), vault, &RustCryptoAead);
    let mut rows = Vec::new();
    for &org in &orgs {
        for i in 0..3 {
            let mut tx = db.begin(org).await.unwrap();
            let r = TestRecords
                .create(&mut tx, &format!("r{i}"), UserId::new())
                .await
                .unwrap();
            let plain = format!("secret {i} of {org}");
            let row = r.id.to_string();
            let sealed = cipher
                .encrypt(
                    org,
                    FieldRef::new("test_records", "secret", &row),
                    plain.as_bytes(),
                )
                .await
                .unwrap();
            sqlx::query("UPDATE app.test_records SET secret_sealed = $1 WHERE id = $2")
                .bind(&sealed)
                .bind(r.id)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            rows.push((org, r.id, plain));
        }
    }
    Fx {
        scratch,
        owner,
        cipher,
        vault_dir,
        orgs,
        rows,
    }
}

impl Fx {
    /// Every value decrypts to what was stored; returns the key versions they are under.
    async fn versions(&self) -> Vec<u32> {
        let db = TenantDb::new(self.owner.clone());
        let mut versions = Vec::new();
        for (org, id, plain) in &self.rows {
            let mut tx = db.begin(*org).await.unwrap();
            let sealed: Vec<u8> =
                sqlx::query_scalar("SELECT secret_sealed FROM app.test_records WHERE id = $1")
                    .bind(id)
                    .fetch_one(tx.conn())
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            let row = id.to_string();
            let opened = self
                .cipher
                .decrypt(*org, FieldRef::new("test_records", "secret", &row), &sealed)
                .await
                .unwrap();
            assert_eq!(opened.expose(), plain.as_bytes());
            versions.push(key_version(&sealed).unwrap());
        }
        versions
    }

    async fn done(self) {
        self.owner.close().await;
        self.scratch.drop_all().await.unwrap();
        std::fs::remove_dir_all(&self.vault_dir).ok();
    }
}

#[tokio::test]
async fn rotates_every_org_and_every_declared_column_and_reports_each_org() {
    let f = fx().await;
    let schema = Schema::new().with(testkit::MIGRATIONS);
    let columns = schema.encrypted_columns();
    assert!(
        columns
            .iter()
            .any(|c| c.table == "app.test_records" && c.column == "secret_sealed"),
        "the testkit's declared column is in the composed list"
    );
    assert_eq!(f.versions().await, vec![1; 6]);

    let audit = Recorder::default();
    let done = rotate_all(&f.owner, &f.cipher, &columns, 2, &audit)
        .await
        .unwrap();
    // Every value was moved to the new data key and still opens; the old one is retired.
    assert_eq!(f.versions().await, vec![2; 6]);
    let mut reported: Vec<OrgId> = done.iter().map(|r| r.org).collect();
    reported.sort();
    let mut orgs = f.orgs.clone();
    orgs.sort();
    assert_eq!(reported, orgs);
    for r in &done {
        assert_eq!((r.kek_version, r.dek_version, r.reencrypted), (2, 2, 3));
        assert_eq!(r.retired, vec![1]);
        assert!(r.to_string().contains("3 values re-encrypted"), "{r}");
    }
    assert_eq!(
        *audit.seen.lock().unwrap(),
        done,
        "one audit record per org"
    );

    // Running again finishes cleanly (a new version, everything moved again).
    let again = rotate_all(&f.owner, &f.cipher, &columns, 100, &Recorder::default())
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|r| r.dek_version == 3 && r.retired == vec![2])
    );
    assert_eq!(f.versions().await, vec![3; 6]);
    f.done().await;
}

#[tokio::test]
async fn an_audit_refusal_stops_the_run_and_leaves_everything_readable() {
    let f = fx().await;
    let columns = Schema::new().with(testkit::MIGRATIONS).encrypted_columns();
    let audit = Recorder {
        refuse_from: Some(0),
        ..Recorder::default()
    };
    let err = rotate_all(&f.owner, &f.cipher, &columns, 10, &audit)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuditRefused(_)), "{err:?}");
    // The first organisation was rotated, the second never reached; all values open.
    let mut versions = f.versions().await;
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 1, 1, 2, 2, 2]);
    f.done().await;
}

#[tokio::test]
async fn the_runtime_role_cannot_rotate_every_organisation() {
    let f = fx().await;
    let runtime = f.scratch.runtime_pool(1).await.unwrap();
    let columns = Schema::new().with(testkit::MIGRATIONS).encrypted_columns();
    let err = rotate_all(&runtime, &f.cipher, &columns, 10, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(f.versions().await, vec![1; 6], "nothing was touched");
    runtime.close().await;
    f.done().await;
}
