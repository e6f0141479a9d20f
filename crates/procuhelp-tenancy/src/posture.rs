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
    /// A permissive policy on a tenant table does not compare against
    /// `app.current_org()` in USING or WITH CHECK (e.g. `USING (true)`).
    PolicyNotTenantBound,
    /// A view over a tenant table runs with its owner's rights (no `security_invoker`),
    /// or a materialized view copies tenant rows out of reach of RLS.
    ViewWithoutSecurityInvoker,
    /// A SECURITY DEFINER function owned by a privileged role touches a tenant table.
    PrivilegedSecurityDefiner,
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
                "permissive policy does not restrict rows to app.current_org() in both USING and WITH CHECK"
            }
            Problem::ViewWithoutSecurityInvoker => {
                "view over a tenant table lacks security_invoker (or is a materialized view)"
            }
            Problem::PrivilegedSecurityDefiner => {
                "SECURITY DEFINER function owned by a privileged role touches a tenant table"
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

/// Tables that are tenant tables: ordinary or partitioned tables with an `org_id` column.
const TENANT_TABLES: &str = "
    SELECT c.oid, c.oid::regclass::text AS name, c.relname, c.relowner,
           c.relrowsecurity, c.relforcerowsecurity
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)";

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
    let tables: Vec<(String, bool, bool, bool, bool, bool)> = sqlx::query_as(&format!(
        "WITH t AS ({TENANT_TABLES})
         SELECT t.name, t.relrowsecurity, t.relforcerowsecurity,
                EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid),
                EXISTS (SELECT 1 FROM pg_policy p
                        WHERE p.polrelid = t.oid AND p.polpermissive AND (
                          (p.polcmd IN ('r', 'w', 'd', '*') AND coalesce(pg_get_expr(p.polqual, p.polrelid), '') NOT LIKE '%app.current_org()%')
                          OR (p.polcmd IN ('a', 'w', '*') AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid), pg_get_expr(p.polqual, p.polrelid), '') NOT LIKE '%app.current_org()%'))),
                pg_has_role(current_user, t.relowner, 'MEMBER')
         FROM t ORDER BY t.name"
    ))
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

    if findings.is_empty() {
        tracing::info!("posture check passed");
        Ok(())
    } else {
        Err(PostureError { findings }.into())
    }
}
