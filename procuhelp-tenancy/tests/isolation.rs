//! Isolation property test: random interleaved work by several tenants through the SDK,
//! as the runtime role on a real PostgreSQL, checked against an in-memory model after
//! every operation. No row of another tenant may ever be returned, changed or deleted,
//! and no write may land in another tenant.
//!
//! Reproduce a failure with `PROCUHELP_ISOLATION_SEED=<seed printed by the failing run>`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};

use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::testkit::{ScratchDb, TestRecords};
use procuhelp_tenancy::{Error, TenantDb, create_organisation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

const TENANTS: usize = 6;
const WORKERS: usize = 3;
const OPS_PER_WORKER: usize = 3_400; // 10,200 operations in all

/// One tenant's rows as the model expects them: id -> status.
type Model = BTreeMap<Uuid, String>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleaved_work_never_crosses_tenants() {
    let seed: u64 = std::env::var("PROCUHELP_ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("isolation seed = {seed} (set PROCUHELP_ISOLATION_SEED={seed} to reproduce)");

    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(2).await.unwrap();
    let mut orgs = Vec::new();
    for i in 0..TENANTS {
        orgs.push(
            create_organisation(&owner, &format!("tenant {i}"))
                .await
                .unwrap(),
        );
    }
    let db = TenantDb::new(scratch.runtime_pool(WORKERS as u32).await.unwrap());

    // Each worker owns a disjoint set of tenants (so each tenant's model is exact) but all
    // workers share the pool and run concurrently, and every "foreign" id or org they use
    // comes from all tenants.
    let all_ids = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<Uuid>::new()));
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let mine: Vec<OrgId> = orgs.iter().copied().skip(w).step_by(WORKERS).collect();
        let (db, orgs, all_ids) = (db.clone(), orgs.clone(), all_ids.clone());
        handles.push(tokio::spawn(async move {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut models: BTreeMap<OrgId, Model> =
                mine.iter().map(|o| (*o, Model::new())).collect();
            for step in 0..OPS_PER_WORKER {
                let org = mine[rng.random_range(0..mine.len())];
                let foreign = *orgs
                    .iter()
                    .filter(|o| **o != org)
                    .nth(rng.random_range(0..orgs.len() - 1))
                    .unwrap();
                let ctx = format!("seed {seed}, worker {w}, step {step}, org {org}");
                one_op(
                    &db,
                    &mut rng,
                    org,
                    foreign,
                    models.get_mut(&org).unwrap(),
                    &all_ids,
                    &ctx,
                )
                .await;
            }
            models
        }));
    }
    let mut expected: BTreeMap<OrgId, Model> = BTreeMap::new();
    for h in handles {
        expected.extend(h.await.unwrap());
    }

    // The whole table, read as the superuser (RLS does not apply), equals the models.
    let admin = scratch.admin_pool(1).await.unwrap();
    let rows: Vec<(Uuid, Uuid, String)> =
        sqlx::query_as("SELECT org_id, id, status FROM app.test_records")
            .fetch_all(&admin)
            .await
            .unwrap();
    let mut actual: BTreeMap<OrgId, Model> = orgs.iter().map(|o| (*o, Model::new())).collect();
    for (org, id, status) in rows {
        actual
            .get_mut(&OrgId::from_uuid(org).unwrap())
            .expect("row of an unknown org")
            .insert(id, status);
    }
    assert_eq!(
        actual, expected,
        "seed {seed}: final table differs from the model"
    );
    let total: usize = expected.values().map(BTreeMap::len).sum();
    eprintln!(
        "isolation: {} operations, {total} rows at the end",
        WORKERS * OPS_PER_WORKER
    );

    admin.close().await;
    owner.close().await;
    db.close().await;
    scratch.drop_all().await.unwrap();
}

async fn one_op(
    db: &TenantDb,
    rng: &mut ChaCha8Rng,
    org: OrgId,
    foreign: OrgId,
    model: &mut Model,
    all_ids: &std::sync::Mutex<BTreeSet<Uuid>>,
    ctx: &str,
) {
    let repo = TestRecords;
    // One in ten operations is a single-round-trip read outside any transaction.
    if rng.random_range(0..10) == 0 {
        let page = repo.first_page_once(db, org, 500).await.unwrap();
        assert!(
            page.iter().all(|s| s.org_id == org),
            "{ctx}: one-shot list returned another org's row"
        );
        let seen: Model = page.into_iter().map(|s| (s.id, s.status)).collect();
        assert_eq!(&seen, model, "{ctx}: one-shot list differs from the model");
        let probe = {
            all_ids
                .lock()
                .unwrap()
                .iter()
                .copied()
                .nth(rng.random_range(0..64))
        };
        if let Some(id) = probe {
            match repo.get_once(db, org, id).await {
                Ok(s) => assert!(
                    s.org_id == org && model.contains_key(&id),
                    "{ctx}: one-shot get crossed orgs"
                ),
                Err(Error::NotFound) => {
                    assert!(!model.contains_key(&id), "{ctx}: one-shot get lost a row")
                }
                Err(e) => panic!("{ctx}: {e}"),
            }
        }
        return;
    }
    let mut tx = db.begin(org).await.unwrap();
    // Some id that is not this tenant's (usually another tenant's), if any exists.
    let foreign_id = {
        let ids = all_ids.lock().unwrap();
        let candidates: Vec<Uuid> = ids
            .iter()
            .filter(|id| !model.contains_key(id))
            .copied()
            .collect();
        (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())])
    };
    let own_id =
        (!model.is_empty()).then(|| *model.keys().nth(rng.random_range(0..model.len())).unwrap());
    let status = ["invited", "active", "suspended", "archived"][rng.random_range(0..4)];
    let mut pending = model.clone();

    match rng.random_range(0..100) {
        // Insert through the repository.
        0..=24 => {
            let s = repo
                .create(&mut tx, &format!("s{}", rng.random::<u32>()), UserId::new())
                .await
                .unwrap();
            assert_eq!(s.org_id, org, "{ctx}: insert landed in another org");
            pending.insert(s.id, "invited".to_owned());
            all_ids.lock().unwrap().insert(s.id);
        }
        // Hand-written insert naming another tenant's org_id: refused by WITH CHECK.
        25..=29 => {
            let err = sqlx::query(
                "INSERT INTO app.test_records (org_id, id, name, country, status, created_by) VALUES ($1, $2, 'x', 'DE', 'active', $3)",
            )
            .bind(foreign.as_uuid())
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7())
            .execute(tx.conn())
            .await
            .expect_err(&format!("{ctx}: insert into another org was accepted"));
            assert!(matches!(Error::from(err), Error::TenantViolation), "{ctx}");
            return; // the transaction is aborted; dropping it rolls back
        }
        // SELECT with no WHERE clause sees exactly this tenant's rows.
        30..=44 => {
            let rows: Vec<(Uuid, Uuid, String)> =
                sqlx::query_as("SELECT org_id, id, status FROM app.test_records")
                    .fetch_all(tx.conn())
                    .await
                    .unwrap();
            assert!(
                rows.iter().all(|(o, _, _)| *o == org.as_uuid()),
                "{ctx}: saw another org's row"
            );
            let seen: Model = rows.into_iter().map(|(_, id, s)| (id, s)).collect();
            assert_eq!(&seen, model, "{ctx}: visible rows differ from the model");
        }
        // UPDATE with no WHERE clause changes exactly this tenant's rows.
        45..=52 => {
            let done = sqlx::query("UPDATE app.test_records SET status = $1")
                .bind(status)
                .execute(tx.conn())
                .await
                .unwrap();
            assert_eq!(
                done.rows_affected() as usize,
                model.len(),
                "{ctx}: update reached other rows"
            );
            pending.values_mut().for_each(|s| *s = status.to_owned());
        }
        // Targeted update/delete/get of another tenant's id: nothing happens.
        53..=62 => {
            if let Some(id) = foreign_id {
                assert!(
                    matches!(repo.get(&mut tx, id).await, Err(Error::NotFound)),
                    "{ctx}: read a foreign row"
                );
                let up = sqlx::query("UPDATE app.test_records SET name = 'pwned' WHERE id = $1")
                    .bind(id)
                    .execute(tx.conn())
                    .await
                    .unwrap();
                assert_eq!(up.rows_affected(), 0, "{ctx}: updated a foreign row");
                assert!(
                    matches!(repo.delete(&mut tx, id).await, Err(Error::NotFound)),
                    "{ctx}: deleted a foreign row"
                );
            }
        }
        // Moving an own row into another tenant: refused by WITH CHECK.
        63..=65 => {
            if let Some(id) = own_id {
                let err = sqlx::query("UPDATE app.test_records SET org_id = $1 WHERE id = $2")
                    .bind(foreign.as_uuid())
                    .bind(id)
                    .execute(tx.conn())
                    .await
                    .expect_err(&format!("{ctx}: moved a row to another org"));
                assert!(
                    matches!(
                        Error::from(err),
                        Error::TenantViolation | Error::Conflict { .. }
                    ),
                    "{ctx}"
                );
                return;
            }
        }
        // Status change and delete of own rows through the repository.
        66..=75 => {
            if let Some(id) = own_id {
                if rng.random_bool(0.5) {
                    let s = repo.set_status(&mut tx, id, status).await.unwrap();
                    assert_eq!(s.org_id, org, "{ctx}");
                    pending.insert(id, status.to_owned());
                } else {
                    repo.delete(&mut tx, id).await.unwrap();
                    pending.remove(&id);
                }
            }
        }
        // Self-join and join with organisations: only this tenant appears.
        76..=83 => {
            let pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT a.org_id, b.org_id FROM app.test_records a JOIN app.test_records b ON a.status = b.status",
            )
            .fetch_all(tx.conn())
            .await
            .unwrap();
            let mut per_status: BTreeMap<&str, usize> = BTreeMap::new();
            model
                .values()
                .for_each(|s| *per_status.entry(s.as_str()).or_default() += 1);
            let expected_pairs: usize = per_status.values().map(|n| n * n).sum();
            assert_eq!(pairs.len(), expected_pairs, "{ctx}: self-join size");
            assert!(
                pairs
                    .iter()
                    .all(|(a, b)| *a == org.as_uuid() && *b == org.as_uuid()),
                "{ctx}: join crossed orgs"
            );
            let orgs: Vec<(Uuid, i64)> = sqlx::query_as(
                "SELECT o.id, count(s.id) FROM app.organisations o LEFT JOIN app.test_records s ON s.org_id = o.id GROUP BY o.id",
            )
            .fetch_all(tx.conn())
            .await
            .unwrap();
            assert_eq!(
                orgs,
                vec![(org.as_uuid(), model.len() as i64)],
                "{ctx}: organisations join"
            );
        }
        // Aggregates over the whole table.
        84..=92 => {
            let (n, distinct, max_org): (i64, i64, Option<String>) = sqlx::query_as(
                "SELECT count(*), count(DISTINCT org_id), max(org_id::text) FROM app.test_records",
            )
            .fetch_one(tx.conn())
            .await
            .unwrap();
            assert_eq!(n as usize, model.len(), "{ctx}: count(*)");
            assert!(distinct <= 1, "{ctx}: more than one org visible");
            assert!(
                max_org.is_none() || max_org == Some(org.to_string()),
                "{ctx}: max(org_id)"
            );
        }
        // DELETE with no WHERE clause: only this tenant's rows go.
        93..=94 => {
            let done = sqlx::query("DELETE FROM app.test_records")
                .execute(tx.conn())
                .await
                .unwrap();
            assert_eq!(
                done.rows_affected() as usize,
                model.len(),
                "{ctx}: delete reached other rows"
            );
            pending.clear();
        }
        // Paged list through the repository.
        _ => {
            let page = repo.list(&mut tx, 50).await.unwrap();
            assert!(
                page.iter().all(|s| s.org_id == org),
                "{ctx}: list returned another org's row"
            );
            assert_eq!(page.len(), model.len().min(50), "{ctx}: list size");
        }
    }
    // One in ten transactions rolls back: nothing it did may remain.
    if rng.random_range(0..10) == 0 {
        tx.rollback().await.unwrap();
    } else {
        tx.commit().await.unwrap();
        *model = pending;
    }
}
