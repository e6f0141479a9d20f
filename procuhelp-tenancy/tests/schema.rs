//! Schema-level guarantees: the declared way to make a tenant table, index use by scoped
//! reads, and the runtime role's exact privileges.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::testkit::{self, ScratchDb};
use procuhelp_tenancy::{TenantDb, create_organisation};

#[tokio::test]
async fn scoped_point_read_uses_the_tenant_index_with_one_initplan() {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let mut orgs = Vec::new();
    for i in 0..20 {
        orgs.push(
            create_organisation(&owner, &format!("org {i}"))
                .await
                .unwrap(),
        );
    }
    // 20 orgs x 500 rows, loaded as the superuser (RLS does not bind it).
    let admin = scratch.admin_pool(1).await.unwrap();
    sqlx::query(
        "INSERT INTO app.test_records (org_id, id, name, country, status, created_by)
         SELECT o, gen_random_uuid(), 'record ' || g, 'DE', 'active', gen_random_uuid()
         FROM unnest($1::uuid[]) AS o, generate_series(1, 500) AS g",
    )
    .bind(orgs.iter().map(|o| o.as_uuid()).collect::<Vec<_>>())
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("ANALYZE app.test_records")
        .execute(&admin)
        .await
        .unwrap();
    let some_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.test_records WHERE org_id = $1 LIMIT 1")
            .bind(orgs[3].as_uuid())
            .fetch_one(&admin)
            .await
            .unwrap();

    let db_pool = scratch.runtime_pool(1).await.unwrap();
    let db = TenantDb::new(db_pool.clone());
    let mut tx = db.begin(orgs[3]).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (COSTS OFF) SELECT * FROM app.test_records WHERE id = '{some_id}'"
    ))
    .fetch_all(tx.conn())
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using test_records_pkey"),
        "{plan}"
    );
    assert!(
        plan.contains("Index Cond: ((org_id = $0) AND (id = "),
        "tenant predicate is not an index condition:\n{plan}"
    );
    assert_eq!(
        plan.matches("InitPlan").count(),
        1,
        "setting must be evaluated once per statement:\n{plan}"
    );
    let list: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (COSTS OFF) SELECT * FROM app.test_records ORDER BY name, id LIMIT 50",
    )
    .fetch_all(tx.conn())
    .await
    .unwrap();
    let list = list.join("\n");
    assert!(list.contains("test_records_by_name"), "{list}");
    tx.rollback().await.unwrap();

    // The one-round-trip form: enter_org runs first (outer side of the nested loop), the
    // lateral query uses the tenant index, and the runtime role's cached generic plan is
    // the one explained.
    let mut conn = db_pool.acquire().await.unwrap();
    // The statement actually sent (with its planner fence), not a copy of it.
    const BY_ID: procuhelp_tenancy::ScopedRead = procuhelp_tenancy::ScopedRead::new(
        "SELECT * FROM app.test_records s WHERE s.org_id = tenant.org AND s.id = $2",
    );
    let explain = format!("EXPLAIN (COSTS OFF) {}", BY_ID.statement());
    let plan: Vec<String> = sqlx::query_scalar(&explain)
        .bind(orgs[3].as_uuid())
        .bind(some_id)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.starts_with("Nested Loop"), "{plan}");
    let outer = plan
        .find("Function Scan on enter_org")
        .expect("enter_org in plan");
    let inner = plan
        .find("Index Scan using test_records_pkey")
        .expect("pkey index in plan");
    assert!(outer < inner, "enter_org must be the outer side:\n{plan}");
    drop(conn);

    db.close().await;
    admin.close().await;
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn runtime_role_has_exactly_the_declared_grants() {
    let scratch = ScratchDb::migrated().await.unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let schema = Schema::new().with(testkit::MIGRATIONS);
    let declared: Vec<&str> = schema.grants().map(|g| g.table).collect();
    for t in &tables {
        assert!(
            declared.contains(&t.as_str()),
            "table {t} has no runtime grant in the composed schema"
        );
    }
    let role = scratch.runtime_role().name().to_owned();
    let privileges: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema || '.' || table_name, string_agg(privilege_type, ', ' ORDER BY privilege_type)
         FROM information_schema.role_table_grants WHERE grantee = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(&role)
    .fetch_all(&admin)
    .await
    .unwrap();
    // Expected: the table-level privileges of the grants (column-level grants such
    // as `UPDATE (col)` do not appear in role_table_grants), merged per table and sorted.
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for grant in schema.grants() {
        let (table, list) = (grant.table, grant.privileges);
        // Split on top-level commas; skip column-level grants such as "UPDATE (a, b)".
        let mut items = vec![String::new()];
        let mut depth = 0;
        for c in list.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(String::new());
                    continue;
                }
                _ => {}
            }
            if let Some(last) = items.last_mut() {
                last.push(c);
            }
        }
        for p in items
            .iter()
            .map(|i| i.trim())
            .filter(|i| !i.is_empty() && !i.contains('('))
        {
            expected
                .entry(table.to_owned())
                .or_default()
                .push(p.to_owned());
        }
    }
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort();
            (t, ps.join(", "))
        })
        .collect();
    assert_eq!(privileges, expected);
    assert!(
        expected
            .iter()
            .any(|(t, p)| t == "app.test_records" && p == "DELETE, INSERT, SELECT, UPDATE")
    );
    assert!(
        expected
            .iter()
            .any(|(t, p)| t == "app.organisations" && p == "SELECT")
    );
    // Of the organisation row, the server may change nothing (auth's policy columns are
    // granted by auth's part, not composed here).
    let can: bool = sqlx::query_scalar(
        "SELECT has_column_privilege($1, 'app.organisations', 'name', 'UPDATE')",
    )
    .bind(&role)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!can, "UPDATE organisations.name");
    let (is_super, bypass, owns): (bool, bool, i64) = sqlx::query_as(
        "SELECT r.rolsuper, r.rolbypassrls, (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(&role)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!is_super && !bypass && owns == 0);

    // A privilege added by hand is removed by the next migrate.
    sqlx::raw_sql(&format!("GRANT UPDATE ON app.organisations TO {role}"))
        .execute(&admin)
        .await
        .unwrap();
    schema
        .migrate(
            &scratch.owner_pool(1).await.unwrap(),
            scratch.runtime_role(),
        )
        .await
        .unwrap();
    let can_update: bool =
        sqlx::query_scalar("SELECT has_table_privilege($1, 'app.organisations', 'UPDATE')")
            .bind(&role)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!can_update);

    admin.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn declare_tenant_table_refuses_a_table_without_org_id() {
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    sqlx::raw_sql("CREATE TABLE app.loose (id uuid)")
        .execute(&owner)
        .await
        .unwrap();
    let err = sqlx::raw_sql("CALL app.declare_tenant_table('app.loose')")
        .execute(&owner)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs a column org_id uuid NOT NULL"),
        "{err}"
    );
    owner.close().await;
    scratch.drop_all().await.unwrap();
}

#[tokio::test]
async fn scoped_reads_must_reference_the_tenant() {
    use procuhelp_tenancy::{Error, ScopedRead};
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let org = create_organisation(&owner, "o").await.unwrap();
    let db = TenantDb::new(scratch.runtime_pool(1).await.unwrap());
    const UNCORRELATED: ScopedRead = ScopedRead::new("SELECT count(*) FROM app.test_records");
    let err = db
        .fetch_all_once::<(i64,)>(org, UNCORRELATED.query_as())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    const TWO: ScopedRead = ScopedRead::new("SELECT tenant.org; DELETE FROM app.test_records");
    assert!(matches!(
        db.fetch_all_once::<(uuid::Uuid,)>(org, TWO.query_as())
            .await,
        Err(Error::Invalid { .. })
    ));
    const OK: ScopedRead = ScopedRead::new("SELECT tenant.org AS org");
    let rows = db
        .fetch_all_once::<(uuid::Uuid,)>(org, OK.query_as())
        .await
        .unwrap();
    assert_eq!(rows, vec![(org.as_uuid(),)]);
    db.close().await;
    owner.close().await;
    scratch.drop_all().await.unwrap();
}
