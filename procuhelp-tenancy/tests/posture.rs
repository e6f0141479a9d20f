//! Each posture misconfiguration, created on purpose in a scratch database, is caught
//! and named; a correctly migrated database passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_tenancy::posture::{self, Problem};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{Error, PostureFinding};

/// Migrates a scratch database, applies `sabotage` as the superuser (`{app}` is replaced by
/// the runtime role's name) and returns what the posture check finds as the runtime role.
async fn findings_after(sabotage: &str) -> Vec<PostureFinding> {
    let scratch = ScratchDb::migrated().await.unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    let sql = sabotage.replace("{app}", scratch.runtime_role().name());
    if !sql.is_empty() {
        sqlx::raw_sql(&sql).execute(&admin).await.unwrap();
    }
    let runtime = scratch.runtime_pool(1).await.unwrap();
    let result = posture::check(&runtime).await;
    runtime.close().await;
    // Undo role-level changes so the scratch roles can be dropped.
    sqlx::raw_sql(&format!(
        "ALTER ROLE {} NOSUPERUSER NOBYPASSRLS",
        scratch.runtime_role().name()
    ))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    scratch.drop_all().await.unwrap();
    match result {
        Ok(()) => Vec::new(),
        Err(Error::Posture(e)) => {
            // The message names every object and problem.
            let text = e.to_string();
            for f in &e.findings {
                assert!(text.contains(&f.object), "{text}");
            }
            e.findings
        }
        Err(other) => panic!("posture check errored instead of reporting: {other}"),
    }
}

fn has(findings: &[PostureFinding], object: &str, problem: Problem) -> bool {
    findings
        .iter()
        .any(|f| f.object == object && f.problem == problem)
}

#[tokio::test]
async fn clean_database_passes() {
    assert_eq!(findings_after("").await, vec![]);
}

#[tokio::test]
async fn runtime_role_superuser() {
    let f = findings_after("ALTER ROLE {app} SUPERUSER").await;
    assert!(
        f.iter()
            .any(|f| f.problem == Problem::RuntimeRoleIsSuperuser),
        "{f:?}"
    );
}

#[tokio::test]
async fn runtime_role_bypassrls() {
    let f = findings_after("ALTER ROLE {app} BYPASSRLS").await;
    assert!(
        f.iter()
            .any(|f| f.problem == Problem::RuntimeRoleBypassesRls),
        "{f:?}"
    );
}

#[tokio::test]
async fn runtime_role_member_of_a_bypassrls_role() {
    let f = findings_after(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'procuhelp_test_bypass') THEN
             CREATE ROLE procuhelp_test_bypass NOLOGIN BYPASSRLS; END IF; END $$;
         GRANT procuhelp_test_bypass TO {app}",
    )
    .await;
    assert!(
        has(
            &f,
            "role procuhelp_test_bypass",
            Problem::RuntimeRoleBypassesRls
        ),
        "{f:?}"
    );
}

#[tokio::test]
async fn runtime_role_owns_a_tenant_table() {
    let f = findings_after("ALTER TABLE app.test_records OWNER TO {app}").await;
    assert!(
        has(
            &f,
            "table app.test_records",
            Problem::RuntimeRoleOwnsTenantTable
        ),
        "{f:?}"
    );
}

#[tokio::test]
async fn rls_not_forced() {
    let f = findings_after("ALTER TABLE app.test_records NO FORCE ROW LEVEL SECURITY").await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "table app.test_records".into(),
            problem: Problem::RlsNotForced
        }]
    );
}

#[tokio::test]
async fn rls_not_enabled() {
    let f = findings_after("ALTER TABLE app.test_records DISABLE ROW LEVEL SECURITY").await;
    assert!(
        has(&f, "table app.test_records", Problem::RlsNotEnabled),
        "{f:?}"
    );
}

#[tokio::test]
async fn new_table_with_org_id_but_no_isolation() {
    let f =
        findings_after("CREATE TABLE public.invoices (org_id uuid NOT NULL, total numeric)").await;
    for p in [
        Problem::RlsNotEnabled,
        Problem::RlsNotForced,
        Problem::NoPolicy,
    ] {
        assert!(has(&f, "table invoices", p), "{p:?} missing: {f:?}");
    }
}

#[tokio::test]
async fn rls_enabled_and_forced_but_no_policy() {
    let f = findings_after(
        "CREATE TABLE app.contracts (org_id uuid NOT NULL);
         ALTER TABLE app.contracts ENABLE ROW LEVEL SECURITY;
         ALTER TABLE app.contracts FORCE ROW LEVEL SECURITY;",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "table app.contracts".into(),
            problem: Problem::NoPolicy
        }]
    );
}

#[tokio::test]
async fn permissive_policy_that_is_not_tenant_bound() {
    let f =
        findings_after("CREATE POLICY everyone ON app.test_records FOR SELECT USING (true)").await;
    assert!(
        has(&f, "table app.test_records", Problem::PolicyNotTenantBound),
        "{f:?}"
    );
}

#[tokio::test]
async fn view_without_security_invoker() {
    let f =
        findings_after("CREATE VIEW app.record_names AS SELECT org_id, name FROM app.test_records")
            .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "view app.record_names".into(),
            problem: Problem::ViewWithoutSecurityInvoker
        }]
    );
}

#[tokio::test]
async fn view_over_a_view_over_a_tenant_table() {
    let f = findings_after(
        "CREATE VIEW app.v1 WITH (security_invoker = true) AS SELECT org_id, name FROM app.test_records;
         CREATE VIEW app.v2 AS SELECT name FROM app.v1;",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "view app.v2".into(),
            problem: Problem::ViewWithoutSecurityInvoker
        }]
    );
}

#[tokio::test]
async fn security_invoker_view_passes_and_materialized_view_fails() {
    assert_eq!(
        findings_after(
            "CREATE VIEW app.ok WITH (security_invoker = true) AS SELECT * FROM app.test_records"
        )
        .await,
        vec![]
    );
    let f =
        findings_after("CREATE MATERIALIZED VIEW app.snapshot AS SELECT * FROM app.test_records")
            .await;
    assert!(
        has(&f, "view app.snapshot", Problem::ViewWithoutSecurityInvoker),
        "{f:?}"
    );
}

#[tokio::test]
async fn security_definer_function_owned_by_superuser() {
    let f = findings_after(
        "CREATE FUNCTION app.count_all() RETURNS bigint LANGUAGE sql SECURITY DEFINER
         SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM app.test_records'",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "function app.count_all()".into(),
            problem: Problem::PrivilegedSecurityDefiner
        }]
    );
}

#[tokio::test]
async fn security_definer_with_sql_standard_body() {
    let f = findings_after(
        "CREATE FUNCTION app.n() RETURNS bigint LANGUAGE sql SECURITY DEFINER
         BEGIN ATOMIC SELECT count(*) FROM app.test_records; END",
    )
    .await;
    assert!(
        has(&f, "function app.n()", Problem::PrivilegedSecurityDefiner),
        "{f:?}"
    );
}

#[tokio::test]
async fn security_invoker_function_passes() {
    assert_eq!(
        findings_after("CREATE FUNCTION app.count_mine() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM app.test_records'").await,
        vec![]
    );
}

// ---- Issue #11, posture gaps ----

#[tokio::test]
async fn organisations_without_forced_rls_is_reported() {
    // app.organisations has no org_id column (its key is `id`), but it is row-level
    // secured all the same: NO FORCE would let its owner read and write every row.
    let f = findings_after("ALTER TABLE app.organisations NO FORCE ROW LEVEL SECURITY").await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "table app.organisations".into(),
            problem: Problem::RlsNotForced
        }]
    );
}

#[tokio::test]
async fn policy_mentioning_current_org_but_or_true_is_refused() {
    // The old check accepted any expression that *contained* app.current_org().
    let f = findings_after(
        "DROP POLICY tenant_isolation ON app.test_records;
         CREATE POLICY tenant_isolation ON app.test_records
             USING (org_id = (SELECT app.current_org()) OR true)
             WITH CHECK (org_id = (SELECT app.current_org()))",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "table app.test_records".into(),
            problem: Problem::PolicyNotTenantBound
        }]
    );
    let f = findings_after(
        "DROP POLICY tenant_isolation ON app.organisations;
         CREATE POLICY tenant_isolation ON app.organisations
             USING (id = (SELECT app.current_org()))
             WITH CHECK (id = (SELECT app.current_org()) OR id IS NOT NULL)",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "table app.organisations".into(),
            problem: Problem::PolicyNotTenantBound
        }]
    );
}

#[tokio::test]
async fn equivalent_spelling_of_the_tenant_policy_passes() {
    // Compared after PostgreSQL's own deparse: spacing and the sub-select's alias do
    // not matter, only the expression.
    assert_eq!(
        findings_after(
            "DROP POLICY tenant_isolation ON app.test_records;
             CREATE POLICY tenant_isolation ON app.test_records
                 USING (org_id   =   ( select app.current_org() ))
                 WITH CHECK ((org_id = (SELECT app.current_org())))"
        )
        .await,
        vec![]
    );
}

#[tokio::test]
async fn security_definer_function_without_pinned_search_path() {
    let f = findings_after(
        "CREATE FUNCTION app.stamp() RETURNS timestamptz LANGUAGE sql SECURITY DEFINER
         AS 'SELECT now()'",
    )
    .await;
    assert_eq!(
        f,
        vec![PostureFinding {
            object: "function app.stamp()".into(),
            problem: Problem::SecurityDefinerWithoutSearchPath
        }]
    );
    // A path without pg_temp last still searches the temporary schema first.
    let f = findings_after(
        "CREATE FUNCTION app.stamp() RETURNS timestamptz LANGUAGE sql SECURITY DEFINER
         SET search_path = pg_catalog AS 'SELECT now()'",
    )
    .await;
    assert!(
        has(
            &f,
            "function app.stamp()",
            Problem::SecurityDefinerWithoutSearchPath
        ),
        "{f:?}"
    );
    assert_eq!(
        findings_after(
            "CREATE FUNCTION app.stamp() RETURNS timestamptz LANGUAGE sql SECURITY DEFINER
             SET search_path = pg_catalog, pg_temp AS 'SELECT now()'"
        )
        .await,
        vec![]
    );
}

#[tokio::test]
async fn the_owner_lists_every_organisation_and_the_runtime_role_none() {
    // The SSO self-check and key jobs list organisations as the owner. Under FORCEd RLS
    // a plain SELECT would see none, so the listing must be explicit and refuse a role
    // that cannot see them all instead of silently checking nothing.
    let scratch = ScratchDb::migrated().await.unwrap();
    let owner = scratch.owner_pool(1).await.unwrap();
    let a = procuhelp_tenancy::create_organisation(&owner, "A")
        .await
        .unwrap();
    let b = procuhelp_tenancy::create_organisation(&owner, "B")
        .await
        .unwrap();
    let listed = procuhelp_tenancy::organisation_ids(&owner).await.unwrap();
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    // The owner is bound for writes: it cannot rename another organisation.
    let renamed = sqlx::query("UPDATE app.organisations SET name = 'x' WHERE id = $1")
        .bind(a.as_uuid())
        .execute(&owner)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(renamed, 0);
    owner.close().await;
    let runtime = scratch.runtime_pool(1).await.unwrap();
    let err = procuhelp_tenancy::organisation_ids(&runtime)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("owner"), "{err}");
    runtime.close().await;
    scratch.drop_all().await.unwrap();
}
