//! Migrations (run as the owner role) and the runtime role the server logs in as.

use sqlx::Executor as _;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::{Error, Result};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The embedded migrations.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// The privileges the runtime role gets, table by table, and nothing else.
///
/// `migrate` revokes everything in schema `app` from the runtime role and grants exactly
/// these, so a privilege added by hand is removed at the next migration. A test checks
/// that every table in `app` is listed here.
pub fn runtime_grants() -> &'static [(&'static str, &'static str)] {
    &[
        // Organisations are created by administrators (owner role), never by the server.
        ("app.organisations", "SELECT"),
        ("app.suppliers", "SELECT, INSERT, UPDATE, DELETE"),
        // Keys are never deleted by the server: destruction erases the wrapped key.
        ("app.data_keys", "SELECT, INSERT, UPDATE"),
        ("app.key_events", "SELECT, INSERT"),
        // Admins change their org's sign-in policy; nothing else of the row.
        (
            "app.organisations",
            "UPDATE (mfa_required, elevation_needs_second_admin)",
        ),
        // Users are disabled, never deleted by the server (their audit trail refers to them).
        ("app.users", "SELECT, INSERT, UPDATE"),
        ("app.recovery_codes", "SELECT, INSERT, DELETE"),
        ("app.sessions", "SELECT, INSERT, UPDATE"),
        ("app.api_tokens", "SELECT, INSERT, UPDATE"),
        ("app.elevations", "SELECT, INSERT, UPDATE"),
        // Policy changes waiting for a second admin (0013): decided, never deleted.
        ("app.policy_changes", "SELECT, INSERT, UPDATE"),
        ("app.purchase_requests", "SELECT, INSERT, UPDATE"),
        ("app.login_throttle", "SELECT, INSERT, UPDATE, DELETE"),
        // The audit trail is append-only (triggers refuse UPDATE, DELETE and TRUNCATE
        // even for the owner); person keys are created, re-wrapped and erased, never deleted.
        ("app.audit_events", "SELECT, INSERT"),
        // SCIM (0008): tokens are revoked, never deleted; groups and memberships follow
        // the identity provider; the role mapping is replaced by admins.
        ("app.organisations", "UPDATE (sso_jit_provisioning)"),
        ("app.scim_tokens", "SELECT, INSERT, UPDATE"),
        ("app.scim_groups", "SELECT, INSERT, UPDATE, DELETE"),
        ("app.scim_group_members", "SELECT, INSERT, DELETE"),
        ("app.scim_role_mappings", "SELECT, INSERT, DELETE"),
        ("app.audit_checkpoints", "SELECT, INSERT"),
        (
            "app.audit_person_keys",
            "SELECT, INSERT, UPDATE (wrapped, kek_version, erased_at)",
        ),
        // SSO: admins configure connections; identities are linked, never re-pointed;
        // sign-ins in flight are used once; seen assertion ids expire.
        ("app.sso_connections", "SELECT, INSERT, UPDATE, DELETE"),
        ("app.sso_identities", "SELECT, INSERT, DELETE"),
        ("app.sso_login_requests", "SELECT, INSERT, DELETE"),
        ("app.sso_assertion_replay", "SELECT, INSERT, DELETE"),
    ]
}

/// The role the server logs in as: not superuser, NOBYPASSRLS, owns nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRole {
    name: String,
}

impl RuntimeRole {
    /// The default name, `procuhelp_app`.
    pub const DEFAULT_NAME: &'static str = "procuhelp_app";

    /// A runtime role name: lowercase ASCII letters, digits and `_`, starting with a
    /// letter or `_`, at most 63 bytes (PostgreSQL's identifier limit).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::Config(
                "runtime role name must match [a-z_][a-z0-9_]{0,62}".to_owned(),
            ));
        }
        Ok(Self { name })
    }

    /// The role name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for RuntimeRole {
    fn default() -> Self {
        Self {
            name: Self::DEFAULT_NAME.to_owned(),
        }
    }
}

/// Runs the embedded migrations on `owner` (a pool logged in as the role that owns the
/// schema), then creates or updates `runtime` and sets its privileges to exactly
/// [`runtime_grants`].
///
/// The owner needs CREATEROLE (or to be superuser) to create the runtime role.
pub async fn migrate(owner: &PgPool, runtime: &RuntimeRole) -> Result<()> {
    MIGRATOR.run(owner).await?;
    let mut tx = owner.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(runtime.name())
            .fetch_one(&mut *tx)
            .await?;
    // Statements are built by the server's format(%I), which quotes identifiers
    // correctly; the name was also validated above.
    // A non-superuser owner may not even *clear* SUPERUSER/BYPASSRLS/REPLICATION on an
    // existing role, so those are set at creation and verified afterwards.
    let create = "CREATE ROLE %1$I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT";
    let alter = "ALTER ROLE %1$I LOGIN NOCREATEDB NOCREATEROLE NOINHERIT";
    let mut statements = vec![
        (if exists { alter } else { create }).to_owned(),
        "GRANT CONNECT ON DATABASE %2$I TO %1$I".to_owned(),
        // Tenant predicates compare against a run-time InitPlan parameter in every plan,
        // so custom plans gain nothing for tenant queries, while PostgreSQL's `auto` mode
        // kept re-planning the one-shot reads on every execution (~65 µs each, measured).
        "ALTER ROLE %1$I IN DATABASE %2$I SET plan_cache_mode = force_generic_plan".to_owned(),
        "REVOKE ALL ON ALL TABLES IN SCHEMA app FROM %1$I".to_owned(),
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA app FROM %1$I".to_owned(),
        "GRANT USAGE ON SCHEMA app TO %1$I".to_owned(),
    ];
    for (table, privileges) in runtime_grants() {
        statements.push(format!("GRANT {privileges} ON {table} TO %1$I"));
    }
    for template in statements {
        let sql: String = sqlx::query_scalar("SELECT format($1, $2::text, current_database())")
            .bind(&template)
            .bind(runtime.name())
            .fetch_one(&mut *tx)
            .await?;
        (&mut *tx).execute(sql.as_str()).await?;
    }
    let (is_super, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(runtime.name())
            .fetch_one(&mut *tx)
            .await?;
    if is_super || bypass {
        return Err(Error::Config(format!(
            "runtime role {} is SUPERUSER or BYPASSRLS; a superuser must run ALTER ROLE {} NOSUPERUSER NOBYPASSRLS",
            runtime.name(),
            runtime.name()
        )));
    }
    tx.commit().await?;
    tracing::info!(
        runtime_role = runtime.name(),
        "migrations applied, runtime role up to date"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_validated() {
        assert!(RuntimeRole::new("procuhelp_app").is_ok());
        assert!(RuntimeRole::new("_x1").is_ok());
        for bad in [
            "",
            "1abc",
            "App",
            "a-b",
            "a\"; DROP ROLE x; --",
            &"a".repeat(64),
        ] {
            assert!(RuntimeRole::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
