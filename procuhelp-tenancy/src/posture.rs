//! The posture check: refuses to serve from a database where tenant isolation could be
//! bypassed. Run it as the runtime role (the role the server will use) at every start.
//!
//! ```no_run
//! # async fn demo(runtime_pool: sqlx::PgPool) -> Result<(), procuhelp_tenancy::Error> {
//! procuhelp_tenancy::posture::check(&runtime_pool).await?; // Err names every problem
//! # Ok(()) }
//! ```

use std::fmt;

use sqlx::PgPool;

/// One problem found by the posture check: the object and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostureFinding {
    /// The database object (role, table, view or function) at fault.
    pub object: String,
    /// What is wrong.
    pub problem: Problem,
}

/// The kinds of posture problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The runtime role is (or can become) a superuser.
    RuntimeRoleIsSuperuser,
    /// The runtime role has (or can become a role with) BYPASSRLS.
    RuntimeRoleBypassesRls,
    /// The runtime role owns (or is a member of the owner of) a tenant table.
    RuntimeRoleOwnsTenantTable,
    /// A table with an `org_id` column does not have row-level security enabled.
    RlsNotEnabled,
    /// A table with an `org_id` column does not FORCE row-level security.
    RlsNotForced,
    /// A tenant table has no policy at all (so RLS denies everything — or, worse, a
    /// later `DISABLE` would expose everything).
    NoPolicy,
    /// A permissive policy on a tenant table that applies to the runtime role is not
    /// exactly the tenant predicate in USING and WITH CHECK (e.g. `USING (true)`, or
    /// `USING (org_id = app.current_org() OR true)`).
    PolicyNotTenantBound,
    /// A view over a tenant table runs with its owner's rights (no `security_invoker`),
    /// or a materialized view copies tenant rows out of reach of RLS.
    ViewWithoutSecurityInvoker,
    /// A SECURITY DEFINER function owned by a privileged role touches a tenant table.
    PrivilegedSecurityDefiner,
    /// A SECURITY DEFINER function does not pin `search_path` (ending in `pg_temp`), so
    /// a caller's objects could be resolved with the owner's rights.
    SecurityDefinerWithoutSearchPath,
    /// A trigger is disabled (or fires only in replication sessions), e.g. an audit
    /// table's append-only guard switched off with `ALTER TABLE … DISABLE TRIGGER`.
    TriggerDisabled,
    /// An append-only table lacks an enabled trigger refusing UPDATE/DELETE or TRUNCATE.
    AppendOnlyGuardMissing,
}

impl Problem {
    fn describe(self) -> &'static str {
        match self {
            Problem::RuntimeRoleIsSuperuser => {
                "runtime role is superuser (or a member of one): RLS does not bind it"
            }
            Problem::RuntimeRoleBypassesRls => {
                "runtime role has BYPASSRLS (or is a member of a role that has)"
            }
            Problem::RuntimeRoleOwnsTenantTable => {
                "tenant table is owned by the runtime role (or a role it is a member of)"
            }
            Problem::RlsNotEnabled => {
                "table has an org_id column but row-level security is not ENABLED"
            }
            Problem::RlsNotForced => {
                "table has an org_id column but row-level security is not FORCED"
            }
            Problem::NoPolicy => "table has an org_id column but no row-level security policy",
            Problem::PolicyNotTenantBound => {
                "a permissive policy that applies to the runtime role is not exactly the tenant predicate (key = (SELECT app.current_org())) in USING and WITH CHECK"
            }
            Problem::ViewWithoutSecurityInvoker => {
                "view over a tenant table lacks security_invoker (or is a materialized view)"
            }
            Problem::PrivilegedSecurityDefiner => {
                "SECURITY DEFINER function owned by a privileged role touches a tenant table"
            }
            Problem::SecurityDefinerWithoutSearchPath => {
                "SECURITY DEFINER function does not pin search_path (SET search_path = ..., pg_temp)"
            }
            Problem::TriggerDisabled => "trigger is disabled (or fires only in replica mode)",
            Problem::AppendOnlyGuardMissing => {
                "append-only table lacks an enabled trigger refusing UPDATE/DELETE or TRUNCATE"
            }
        }
    }
}

impl fmt::Display for PostureFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.problem.describe())
    }
}

/// The posture check failed: every finding is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PostureError {
    /// What was found, in a stable order.
    pub findings: Vec<PostureFinding>,
}

impl fmt::Display for PostureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to serve: {} posture problem(s):",
            self.findings.len()
        )?;
        for finding in &self.findings {
            write!(f, "\n  - {finding}")?;
        }
        Ok(())
    }
}

/// Tables that are tenant tables: ordinary or partitioned tables with an `org_id` column,
/// any other table with row-level security enabled, and `app.organisations` (keyed by
/// `id`). `key_col` is the column the tenant policy compares to `app.current_org()`.
const TENANT_TABLES: &str = "
    SELECT c.oid, c.oid::regclass::text AS name, c.relname, c.relowner,
           c.relrowsecurity, c.relforcerowsecurity,
           CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
                THEN 'org_id'
                WHEN c.oid = to_regclass('app.organisations') THEN 'id' END AS key_col
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND (c.relrowsecurity
           OR c.oid = to_regclass('app.organisations')
           OR EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))";

/// The one accepted policy expression, as PostgreSQL stores it (`pg_get_expr` of the
/// policy `app.declare_tenant_table` creates, read back from a migrated database): `%s`
/// is the table's key column. Policies are compared for equality after PostgreSQL's own
/// deparse, so spacing and parentheses do not matter but any extra term (`OR true`,
/// `OR org_id IS NOT NULL`) does.
const TENANT_PREDICATE: &str = "(%s = ( SELECT app.current_org() AS current_org))";

/// Tables whose rows are never changed or removed: each needs an enabled trigger
/// refusing UPDATE and DELETE and one refusing TRUNCATE (migration 0006).
const APPEND_ONLY_TABLES: &[&str] = &["app.audit_events", "app.audit_checkpoints"];

/// Checks the database that `pool` is connected to, as `pool`'s role.
///
/// Returns `Ok(())` only when every check passes; otherwise
/// [`Error::Posture`](crate::Error::Posture) with every finding.
pub async fn check(pool: &PgPool) -> crate::Result<()> {
    let mut findings = Vec::new();
    let mut conn = pool.acquire().await?;

    // 1. The runtime role itself, and every role it can act as.
    let roles: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles
         WHERE pg_has_role(current_user, oid, 'MEMBER') AND (rolsuper OR rolbypassrls)
         ORDER BY rolname",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (role, is_super, bypass) in roles {
        let object = format!("role {role}");
        if is_super {
            findings.push(PostureFinding {
                object: object.clone(),
                problem: Problem::RuntimeRoleIsSuperuser,
            });
        }
        if bypass {
            findings.push(PostureFinding {
                object,
                problem: Problem::RuntimeRoleBypassesRls,
            });
        }
    }

    // 2. Every tenant table: RLS enabled and forced, tenant-bound policies, not ours.
    // A permissive policy that applies to the runtime role (PUBLIC, or a role it is a
    // member of) must be exactly the tenant predicate in USING and in WITH CHECK.
    // Policies for other roles (e.g. the owner's listing of organisations) do not
    // widen what the runtime role sees.
    let tables: Vec<(String, bool, bool, bool, bool, bool)> = sqlx::query_as(&format!(
        "WITH t AS ({TENANT_TABLES})
         SELECT t.name, t.relrowsecurity, t.relforcerowsecurity,
                EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid),
                EXISTS (SELECT 1 FROM pg_policy p
                        WHERE p.polrelid = t.oid AND p.polpermissive
                          AND (0 = ANY (p.polroles)
                               OR EXISTS (SELECT 1 FROM unnest(p.polroles) r(oid)
                                          WHERE pg_has_role(current_user, r.oid, 'MEMBER')))
                          AND (
                          (p.polcmd IN ('r', 'w', 'd', '*')
                           AND pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM format($1, t.key_col))
                          OR (p.polcmd IN ('a', 'w', '*')
                           AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid), pg_get_expr(p.polqual, p.polrelid))
                               IS DISTINCT FROM format($1, t.key_col)))),
                pg_has_role(current_user, t.relowner, 'MEMBER')
         FROM t ORDER BY t.name"
    ))
    .bind(TENANT_PREDICATE)
    .fetch_all(&mut *conn)
    .await?;
    for (table, enabled, forced, has_policy, unbound_policy, owned) in tables {
        let object = format!("table {table}");
        let mut push = |problem| {
            findings.push(PostureFinding {
                object: object.clone(),
                problem,
            })
        };
        if owned {
            push(Problem::RuntimeRoleOwnsTenantTable);
        }
        if !enabled {
            push(Problem::RlsNotEnabled);
        }
        if !forced {
            push(Problem::RlsNotForced);
        }
        if !has_policy {
            push(Problem::NoPolicy);
        }
        if unbound_policy {
            push(Problem::PolicyNotTenantBound);
        }
    }

    // 3. Views (transitively) over tenant tables must be security_invoker; materialized
    //    views over tenant tables are never acceptable (they hold rows outside RLS).
    let views: Vec<(String,)> = sqlx::query_as(&format!(
        "WITH RECURSIVE t AS ({TENANT_TABLES}),
         deps(view_oid, ref_oid) AS (
             SELECT DISTINCT r.ev_class, d.refobjid
             FROM pg_rewrite r
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                             AND d.refclassid = 'pg_class'::regclass
             WHERE d.refobjid <> r.ev_class),
         over_tenant(oid) AS (
             SELECT view_oid FROM deps WHERE ref_oid IN (SELECT oid FROM t)
             UNION
             SELECT deps.view_oid FROM deps JOIN over_tenant o ON deps.ref_oid = o.oid)
         SELECT v.oid::regclass::text
         FROM pg_class v JOIN over_tenant o ON o.oid = v.oid
         WHERE v.relkind = 'm'
            OR (v.relkind = 'v' AND NOT coalesce(
                 (SELECT option_value::bool FROM pg_options_to_table(v.reloptions)
                  WHERE option_name = 'security_invoker'), false))
         ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (view,) in views {
        findings.push(PostureFinding {
            object: format!("view {view}"),
            problem: Problem::ViewWithoutSecurityInvoker,
        });
    }

    // 4. SECURITY DEFINER functions owned by a privileged role (superuser, BYPASSRLS, or
    //    a tenant table's owner) that reference a tenant table, by dependency (SQL-standard
    //    bodies) or by name in the source text (everything else).
    let functions: Vec<(String,)> = sqlx::query_as(&format!(
        "WITH t AS ({TENANT_TABLES})
         SELECT DISTINCT p.oid::regprocedure::text
         FROM pg_proc p
         JOIN pg_roles o ON o.oid = p.proowner
         JOIN t ON (
             EXISTS (SELECT 1 FROM pg_depend d
                     WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                       AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid)
             OR position(lower(t.relname::text) IN lower(coalesce(p.prosrc, ''))) > 0)
         WHERE p.prosecdef
           AND (o.rolsuper OR o.rolbypassrls
                OR EXISTS (SELECT 1 FROM t t2 WHERE pg_has_role(p.proowner, t2.relowner, 'MEMBER')))
         ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (function,) in functions {
        findings.push(PostureFinding {
            object: format!("function {function}"),
            problem: Problem::PrivilegedSecurityDefiner,
        });
    }

    // 5. SECURITY DEFINER functions must pin search_path, with pg_temp last (otherwise
    //    the temporary schema is searched first for relations). Extension members are
    //    the extension's business.
    let unpinned: Vec<(String,)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
           AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c(setting)
                           WHERE c.setting LIKE 'search\\_path=%'
                             AND c.setting ~ '(^search_path=|,\\s*)\"?pg_temp\"?\\s*$')
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (function,) in unpinned {
        findings.push(PostureFinding {
            object: format!("function {function}"),
            problem: Problem::SecurityDefinerWithoutSearchPath,
        });
    }

    // 6. Triggers: a disabled trigger (or one that fires only in replica mode) is a guard
    //    switched off, which the table owner can do without superuser rights.
    let disabled: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.tgname::text, t.tgrelid::regclass::text
         FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE t.tgenabled IN ('D', 'R')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         ORDER BY 2, 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (trigger, table) in disabled {
        findings.push(PostureFinding {
            object: format!("trigger {trigger} on {table}"),
            problem: Problem::TriggerDisabled,
        });
    }
    //    ...and a dropped guard is as bad as a disabled one. tgtype bits (PostgreSQL's
    //    trigger.h): 8 DELETE, 16 UPDATE, 32 TRUNCATE.
    let unguarded: Vec<(String,)> = sqlx::query_as(
        "SELECT rel::text FROM unnest($1::text[]) AS tables(name)
         CROSS JOIN LATERAL to_regclass(tables.name) AS rel
         WHERE rel IS NOT NULL
           AND NOT (EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = rel
                            AND t.tgenabled IN ('O', 'A') AND t.tgtype & 24 = 24)
                    AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = rel
                                AND t.tgenabled IN ('O', 'A') AND t.tgtype & 32 = 32))
         ORDER BY 1",
    )
    .bind(APPEND_ONLY_TABLES)
    .fetch_all(&mut *conn)
    .await?;
    for (table,) in unguarded {
        findings.push(PostureFinding {
            object: format!("table {table}"),
            problem: Problem::AppendOnlyGuardMissing,
        });
    }

    if findings.is_empty() {
        tracing::info!("posture check passed");
        Ok(())
    } else {
        Err(PostureError { findings }.into())
    }
}
