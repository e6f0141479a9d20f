//! Tenant-scoped reads through the SDK against the same SQL with an explicit
//! `WHERE org_id = $1` on a connection with no tenant context (a role RLS does not bind),
//! in the same run, on the same data (1,000 organisations x 1,000 suppliers), decoded into
//! the same `Supplier` type.
//!
//! Needs the machine's PostgreSQL (`PROCUHELP_TEST_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Run: `cargo bench -p procuhelp-benches --bench tenancy`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench set-up failure should stop the bench
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use procuhelp_core::{OrgId, SupplierId};
use procuhelp_server::suppliers::{PgSupplierRepository, Supplier, SupplierRepository};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{FieldCipher, FieldRef, TenantDb, create_organisation};
use rand::Rng;
use sqlx::PgPool;
use uuid::Uuid;

const ORGS: usize = 1_000;
const ROWS_PER_ORG: i32 = 1_000;
const POOL: u32 = 4;

struct Fixture {
    scratch: ScratchDb,
    raw: PgPool,
    db: TenantDb,
    samples: Vec<(OrgId, SupplierId)>,
}

async fn fixture() -> Fixture {
    let scratch = ScratchDb::migrated_with(&procuhelp_server::database::schema())
        .await
        .unwrap();
    let owner = scratch.owner_pool(2).await.unwrap();
    let mut orgs = Vec::with_capacity(ORGS);
    for i in 0..ORGS {
        orgs.push(
            create_organisation(&owner, &format!("org {i}"))
                .await
                .unwrap(),
        );
    }
    owner.close().await;
    let admin = scratch.admin_pool(POOL).await.unwrap();
    for chunk in orgs.chunks(100) {
        sqlx::query(
            "INSERT INTO app.suppliers (org_id, id, name, country, status, created_by)
             SELECT o, gen_random_uuid(), 'supplier ' || g, 'DE', 'active', gen_random_uuid()
             FROM unnest($1::uuid[]) AS o, generate_series(1, $2) AS g",
        )
        .bind(chunk.iter().map(|o| o.as_uuid()).collect::<Vec<_>>())
        .bind(ROWS_PER_ORG)
        .execute(&admin)
        .await
        .unwrap();
    }
    sqlx::query("VACUUM ANALYZE app.suppliers")
        .execute(&admin)
        .await
        .unwrap();
    let rows: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT org_id, id FROM app.suppliers TABLESAMPLE SYSTEM (1) LIMIT 4096")
            .fetch_all(&admin)
            .await
            .unwrap();
    let samples = rows
        .into_iter()
        .map(|(o, i)| {
            (
                OrgId::from_uuid(o).unwrap(),
                SupplierId::from_uuid(i).unwrap(),
            )
        })
        .collect();
    let db = TenantDb::new(scratch.runtime_pool(POOL).await.unwrap());
    Fixture {
        scratch,
        raw: admin,
        db,
        samples,
    }
}

const COLUMNS: &str =
    "org_id, id, name, country, vat_id, status, created_by, created_at, updated_at";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let pick = |f: &Fixture| f.samples[rand::rng().random_range(0..f.samples.len())];
    let point_sql = format!("SELECT {COLUMNS} FROM app.suppliers WHERE org_id = $1 AND id = $2");
    let list_sql =
        format!("SELECT {COLUMNS} FROM app.suppliers WHERE org_id = $1 ORDER BY name, id LIMIT 50");

    let mut g = c.benchmark_group("point_read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_where_org_id", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, id) = pick(&f);
            let row: Supplier = sqlx::query_as(&point_sql)
                .bind(org.as_uuid())
                .bind(id.as_uuid())
                .fetch_one(&f.raw)
                .await
                .unwrap();
            row
        })
    });
    g.bench_function("sdk_scoped", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, id) = pick(&f);
            let mut tx = f.db.begin(org).await.unwrap();
            let s = PgSupplierRepository.get(&mut tx, id).await.unwrap();
            tx.commit().await.unwrap();
            s
        })
    });
    g.bench_function("sdk_one_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, id) = pick(&f);
            PgSupplierRepository.get_once(&f.db, org, id).await.unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("list_50");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_where_org_id", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, _) = pick(&f);
            let rows: Vec<Supplier> = sqlx::query_as(&list_sql)
                .bind(org.as_uuid())
                .fetch_all(&f.raw)
                .await
                .unwrap();
            assert_eq!(rows.len(), 50);
            rows
        })
    });
    g.bench_function("sdk_scoped", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, _) = pick(&f);
            let mut tx = f.db.begin(org).await.unwrap();
            let rows = PgSupplierRepository.list(&mut tx, None, 50).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(rows.len(), 50);
            rows
        })
    });
    g.bench_function("sdk_one_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let (org, _) = pick(&f);
            let rows = PgSupplierRepository
                .first_page_once(&f.db, org, 50)
                .await
                .unwrap();
            assert_eq!(rows.len(), 50);
            rows
        })
    });
    g.finish();

    // DEK cache: a hit (key cached and prepared) vs a miss (load the wrapped DEK from
    // PostgreSQL, unwrap it through the vault, expand the key schedule).
    let vault_dir = std::env::temp_dir().join(format!("ph-bench-vault-{}", std::process::id()));
    let vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider> =
        std::sync::Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
    let provider: &'static dyn procuhelp_core::crypto::AeadProvider =
        &procuhelp_core::crypto::AwsLcAead;
    let cipher = FieldCipher::new(f.db.clone(), vault.clone(), provider);
    let org = f.samples[0].0;
    let field = FieldRef::new("suppliers", "iban", "row");
    let sealed = rt
        .block_on(cipher.encrypt(org, field, b"DE89370400440532013000"))
        .unwrap();
    let mut g = c.benchmark_group("dek_cache");
    g.bench_function("encrypt_64B_hit", |b| {
        b.to_async(&rt)
            .iter(|| cipher.encrypt(org, field, &[0u8; 64]))
    });
    g.bench_function("decrypt_hit", |b| {
        b.to_async(&rt).iter(|| cipher.decrypt(org, field, &sealed))
    });
    g.bench_function("decrypt_miss", |b| {
        b.to_async(&rt).iter(|| async {
            let cold = FieldCipher::new(f.db.clone(), vault.clone(), provider);
            cold.decrypt(org, field, &sealed).await.unwrap()
        })
    });
    g.finish();
    std::fs::remove_dir_all(&vault_dir).ok();

    rt.block_on(async {
        f.raw.close().await;
        f.db.close().await;
        f.scratch.drop_all().await.unwrap();
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
