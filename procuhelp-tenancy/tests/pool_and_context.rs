//! A pooled connection never carries one tenant's context into another's work — after
//! commits, failed statements, panics and cancellations — and with no tenant set, tenant
//! tables return no rows and accept no writes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::testkit::{ScratchDb, TestRecords};
use procuhelp_tenancy::{Error, TenantDb, create_organisation};
use sqlx::{PgPool, Row as _};

struct Fixture {
    scratch: ScratchDb,
    pool: PgPool,
    db: TenantDb,
    a: OrgId,
    b: OrgId,
}

async fn fixture() -> Fixture {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = create_organisation(&owner, "A").await.unwrap();
    let b = create_organisation(&owner, "B").await.unwrap();
    owner.close().await;
    // Pool of ONE connection: every transaction below reuses the same session.
    let pool = scratch.runtime_pool(1).await.unwrap();
    let db = TenantDb::new(pool.clone());
    for org in [a, b] {
        let mut tx = db.begin(org).await.unwrap();
        TestRecords
            .create(&mut tx, "only mine", UserId::new())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    Fixture {
        scratch,
        pool,
        db,
        a,
        b,
    }
}

/// What a transaction for `org` sees: its setting and the orgs of visible rows.
async fn sees_only(db: &TenantDb, org: OrgId) {
    let mut tx = db.begin(org).await.unwrap();
    let setting: String = sqlx::query_scalar("SELECT current_setting('procuhelp.org_id')")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(setting, org.to_string());
    let orgs: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT org_id FROM app.test_records")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(orgs, vec![org.as_uuid()]);
    tx.commit().await.unwrap();
}

/// A bare connection from the same pool carries no tenant and sees nothing.
async fn bare_connection_is_clean(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('procuhelp.org_id', true), '')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(setting, None, "tenant context leaked into the pool");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.test_records")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn teardown(f: Fixture) {
    f.pool.close().await;
    f.scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn alternating_tenants_on_one_connection() {
    let f = fixture().await;
    for _ in 0..25 {
        sees_only(&f.db, f.a).await;
        bare_connection_is_clean(&f.pool).await;
        sees_only(&f.db, f.b).await;
    }
    teardown(f).await;
}

#[tokio::test]
async fn one_round_trip_reads_alternating_on_one_connection() {
    let f = fixture().await;
    let repo = TestRecords;
    for _ in 0..25 {
        for org in [f.a, f.b] {
            let page = repo.first_page_once(&f.db, org, 10).await.unwrap();
            assert_eq!(page.len(), 1);
            assert_eq!(page[0].org_id, org);
            // The other org's row is invisible by id too.
            let other = if org == f.a { f.b } else { f.a };
            let theirs = repo.first_page_once(&f.db, other, 1).await.unwrap()[0].id;
            assert!(matches!(
                repo.get_once(&f.db, org, theirs).await,
                Err(Error::NotFound)
            ));
            bare_connection_is_clean(&f.pool).await;
        }
    }
    // A failing one-shot (unknown org) leaves the connection clean too.
    assert!(matches!(
        repo.first_page_once(&f.db, OrgId::new(), 1).await,
        Err(Error::UnknownOrg(_))
    ));
    bare_connection_is_clean(&f.pool).await;
    sees_only(&f.db, f.a).await;
    // Inside A's transaction, a scoped-read function cannot switch to B.
    let mut tx = f.db.begin(f.a).await.unwrap();
    let err = sqlx::query("SELECT app.enter_org($1)")
        .bind(f.b.as_uuid())
        .fetch_all(tx.conn())
        .await
        .unwrap_err();
    assert!(matches!(Error::from(err), Error::TenantViolation));
    drop(tx);
    bare_connection_is_clean(&f.pool).await;
    teardown(f).await;
}

#[tokio::test]
async fn after_a_failed_statement_mid_transaction() {
    let f = fixture().await;
    let mut tx = f.db.begin(f.a).await.unwrap();
    assert!(
        sqlx::query("SELECT 1 / 0")
            .execute(tx.conn())
            .await
            .is_err()
    );
    drop(tx); // never committed
    bare_connection_is_clean(&f.pool).await;
    sees_only(&f.db, f.b).await;
    // and an explicit rollback after a failure
    let mut tx = f.db.begin(f.b).await.unwrap();
    assert!(
        sqlx::query("SELECT * FROM app.no_such_table")
            .execute(tx.conn())
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    sees_only(&f.db, f.a).await;
    teardown(f).await;
}

#[tokio::test]
async fn after_a_panic_in_the_task_holding_the_handle() {
    let f = fixture().await;
    let db = f.db.clone();
    let a = f.a;
    let joined = tokio::spawn(async move {
        let mut tx = db.begin(a).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM app.test_records")
            .fetch_one(tx.conn())
            .await
            .unwrap();
        panic!("handler bug while holding the tenant handle");
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    bare_connection_is_clean(&f.pool).await;
    sees_only(&f.db, f.b).await;
    teardown(f).await;
}

#[tokio::test]
async fn after_cancellation_mid_statement() {
    let f = fixture().await;
    let db = f.db.clone();
    let a = f.a;
    let cancelled = tokio::time::timeout(Duration::from_millis(200), async move {
        let mut tx = db.begin(a).await.unwrap();
        sqlx::query("SELECT pg_sleep(5)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    assert!(
        cancelled.is_err(),
        "the slow statement should have been cancelled"
    );
    sees_only(&f.db, f.b).await;
    bare_connection_is_clean(&f.pool).await;
    teardown(f).await;
}

#[tokio::test]
async fn no_tenant_means_no_rows_and_no_writes() {
    let f = fixture().await;
    let mut conn = f.pool.acquire().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.test_records")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM app.organisations")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(orgs, 0);
    let err = sqlx::query("INSERT INTO app.test_records (org_id, id, name, country, status, created_by) VALUES ($1, gen_random_uuid(), 'x', 'DE', 'active', gen_random_uuid())")
        .bind(f.a.as_uuid())
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(matches!(Error::from(err), Error::TenantViolation));
    let updated = sqlx::query("UPDATE app.test_records SET name = 'x'")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM app.test_records")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    // An empty setting (what PostgreSQL leaves after a transaction-local one) is no tenant.
    sqlx::query("SET procuhelp.org_id = ''")
        .execute(&mut *conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.test_records")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A malformed setting is an error, not a match.
    sqlx::query("SET procuhelp.org_id = 'not-a-uuid'")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        sqlx::query("SELECT count(*) FROM app.test_records")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    conn.close().await.unwrap();
    teardown(f).await;
}

#[tokio::test]
async fn unknown_org_is_a_typed_error_and_the_connection_stays_usable() {
    let f = fixture().await;
    let ghost = OrgId::new();
    match f.db.begin(ghost).await {
        Err(Error::UnknownOrg(o)) => assert_eq!(o, ghost),
        other => panic!("expected UnknownOrg, got {other:?}"),
    }
    bare_connection_is_clean(&f.pool).await;
    sees_only(&f.db, f.a).await;
    teardown(f).await;
}

#[tokio::test]
async fn runtime_role_cannot_create_organisations_or_touch_schema() {
    let f = fixture().await;
    let mut conn = f.pool.acquire().await.unwrap();
    for sql in [
        "INSERT INTO app.organisations (id, name) VALUES (gen_random_uuid(), 'x')",
        "ALTER TABLE app.test_records DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON app.test_records",
        "CREATE TABLE app.mine (org_id uuid)",
        "SET ROLE NONE; SET SESSION AUTHORIZATION DEFAULT; ALTER TABLE app.test_records NO FORCE ROW LEVEL SECURITY",
    ] {
        assert!(
            sqlx::raw_sql(sql).execute(&mut *conn).await.is_err(),
            "runtime role was allowed: {sql}"
        );
    }
    drop(conn);
    teardown(f).await;
}

#[tokio::test]
async fn database_down_is_a_typed_error() {
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1)
        .username("nobody");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(opts);
    let err = TenantDb::new(pool).begin(OrgId::new()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

/// Whether the pool's next borrower starts outside any transaction: inside one begun
/// earlier, `now()` (the transaction's start) lags the statement's own timestamp, and a
/// tenant setting made by the earlier `BEGIN` would still be visible.
async fn next_borrower_is_outside_a_transaction(pool: &PgPool) {
    let mut conn = tokio::time::timeout(Duration::from_secs(10), pool.acquire())
        .await
        .expect("the pool's only connection never came back")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A simple query (one message): outside a transaction it starts its own, so its
    // statement and transaction timestamps are the same.
    let row = sqlx::raw_sql(
        "SELECT now() = statement_timestamp(), \
                nullif(current_setting('procuhelp.org_id', true), '')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let (fresh, setting): (bool, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(
        setting, None,
        "a cancelled begin or commit handed its tenant setting to the next borrower"
    );
    assert!(
        fresh,
        "a cancelled begin or commit handed a connection still inside a transaction to the next borrower"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_cancelled_after_its_begin_was_sent_returns_no_open_transaction() {
    let f = fixture().await;
    // Hold the organisations table: `BEGIN` runs, the tenant setting is made, and then
    // the membership check inside `app.enter_org` waits for the lock.
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let mut locker = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE app.organisations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), f.db.begin(f.a)).await;
    assert!(
        cancelled.is_err(),
        "begin should have been waiting for the lock"
    );
    // The statement finishes once the lock is gone; whatever the pool gets back must not
    // be inside that transaction.
    locker.rollback().await.unwrap();
    next_borrower_is_outside_a_transaction(&f.pool).await;
    bare_connection_is_clean(&f.pool).await;
    sees_only(&f.db, f.b).await;
    admin.close().await;
    teardown(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cancelled_in_flight_returns_no_open_transaction() {
    let f = fixture().await;
    let admin = f.scratch.admin_pool(1).await.unwrap();
    let mut tx = f.db.begin(f.a).await.unwrap();
    // The commit is asked for while a statement of the same transaction cannot finish
    // (it waits for a table another session holds), then cancelled mid-way.
    let mut locker = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE app.test_records IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(300),
        sqlx::query("SELECT count(*) FROM app.test_records").execute(tx.conn()),
    )
    .await;
    assert!(blocked.is_err());
    let cancelled = tokio::time::timeout(Duration::from_millis(100), tx.commit()).await;
    assert!(cancelled.is_err(), "commit should have been waiting");
    locker.rollback().await.unwrap();
    next_borrower_is_outside_a_transaction(&f.pool).await;
    bare_connection_is_clean(&f.pool).await;
    admin.close().await;
    teardown(f).await;
}
