//! Migrations composed from every crate and the application, run as the owner role, and
//! the runtime role the server logs in as.
//!
//! Each crate owns its tables: it ships its migrations (`sqlx::migrate!`), the runtime
//! grants those tables need and the columns it encrypts, as one [`Migrations`] value.
//! The application declares its own tables the same way and composes everything into one
//! [`Schema`]:
//!
//! ```ignore
//! use procuhelp_tenancy::migrate::{Grant, Migrations, Schema};
//!
//! // The application's tables: versions 10000 and up (docs/tenancy.md, "Migrations").
//! const APP: Migrations = Migrations::app("expenses", sqlx::migrate!("./migrations"))
//!     .grants(&[Grant::new("app.claims", "SELECT, INSERT, UPDATE")]);
//!
//! let schema = Schema::new() // procuhelp-tenancy's own migrations
//!     .with(procuhelp_auth::MIGRATIONS)
//!     .with(procuhelp_audit::MIGRATIONS)
//!     .with(APP);
//! schema.migrate(&owner_pool, &RuntimeRole::default()).await?;
//! ```
//!
//! [`Schema::migrate`] refuses two parts declaring the same version, an application
//! migration below 10000 and an application's grant on a table another part grants; it
//! runs every migration in version order in one sqlx migrator, and then sets the runtime
//! role's privileges to exactly the composed grants. A database whose applied history does not match (a
//! migration changed after it was applied, one no part declares, or the layout from
//! before each crate owned its migrations) is refused before anything runs.

use crate::personal_data::PersonalTable;
use std::collections::BTreeMap;

use sqlx::Executor as _;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::{EncryptedColumn, Error, Result};

/// One crate's (or the application's) part of the schema: its migrations, the runtime
/// grants its tables need, and the columns it encrypts (for key rotation).
///
/// Built in a `const`, so a crate can export it:
///
/// ```ignore
/// pub const MIGRATIONS: Migrations = Migrations::app("expenses", sqlx::migrate!("./migrations"))
///     .grants(&[Grant::new("app.claims", "SELECT, INSERT")]);
/// ```
///
/// Each part's versions must lie in its range (docs/tenancy.md, "Migrations"): an
/// application's ([`Migrations::app`]) are 10000 and up, so they run after every SDK
/// migration and never collide with a future one.
#[derive(Debug)]
pub struct Migrations {
    name: &'static str,
    range: VersionRange,
    migrator: Migrator,
    grants: &'static [Grant],
    encrypted_columns: &'static [EncryptedColumn],
    personal_data: &'static [PersonalTable],
}

/// Which versions a part may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionRange {
    /// The SDK crates: 1..=8999.
    Sdk,
    /// The SDK's test scaffolding: 9000..=9999.
    Testkit,
    /// Applications: 10000 and up.
    App,
}

impl VersionRange {
    fn contains(self, version: i64) -> bool {
        match self {
            Self::Sdk => (1..=8999).contains(&version),
            Self::Testkit => (9000..=9999).contains(&version),
            Self::App => version >= 10_000,
        }
    }
}

impl Migrations {
    /// An application's part: `name` (for error messages) and its migrations, usually
    /// `sqlx::migrate!("./migrations")`, versions 10000 and up. No grants and no
    /// encrypted columns yet.
    pub const fn app(name: &'static str, migrator: Migrator) -> Self {
        Self::in_range(name, VersionRange::App, migrator)
    }

    /// An SDK crate's part (versions 1..=8999). Applications use [`Migrations::app`].
    #[doc(hidden)]
    pub const fn new(name: &'static str, migrator: Migrator) -> Self {
        Self::in_range(name, VersionRange::Sdk, migrator)
    }

    /// The SDK's test scaffolding (versions 9000..=9999).
    #[doc(hidden)]
    pub const fn testkit(name: &'static str, migrator: Migrator) -> Self {
        Self::in_range(name, VersionRange::Testkit, migrator)
    }

    const fn in_range(name: &'static str, range: VersionRange, migrator: Migrator) -> Self {
        Self {
            name,
            range,
            migrator,
            grants: &[],
            encrypted_columns: &[],
            personal_data: &[],
        }
    }

    /// The privileges the runtime role needs on this part's tables.
    pub const fn grants(mut self, grants: &'static [Grant]) -> Self {
        self.grants = grants;
        self
    }

    /// The columns this part stores sealed by the [`FieldCipher`](crate::FieldCipher):
    /// key rotation re-encrypts them.
    pub const fn encrypted_columns(mut self, columns: &'static [EncryptedColumn]) -> Self {
        self.encrypted_columns = columns;
        self
    }

    /// The register of the tables this part creates: whom their rows are about, why and
    /// how long they are kept, what each column holds ([`crate::personal_data`]).
    pub const fn personal_data(mut self, tables: &'static [PersonalTable]) -> Self {
        self.personal_data = tables;
        self
    }

    /// The part's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The part's migrations.
    pub fn migrator(&self) -> &Migrator {
        &self.migrator
    }
}

/// A privilege the runtime role gets on a table: `GRANT {privileges} ON {table}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Schema-qualified table, e.g. `app.users`.
    pub table: &'static str,
    /// Privileges, e.g. `SELECT, INSERT` or `UPDATE (mfa_required)`.
    pub privileges: &'static str,
}

impl Grant {
    /// `GRANT privileges ON table TO <runtime role>`.
    pub const fn new(table: &'static str, privileges: &'static str) -> Self {
        Self { table, privileges }
    }

    /// Both go into SQL (they are `'static` code, never input): the table must be
    /// `schema.table` in `[a-z0-9_]`, the privileges keywords, column lists and commas.
    fn is_well_formed(&self) -> bool {
        let ident = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let table_ok = matches!(self.table.split_once('.'), Some((s, t)) if ident(s) && ident(t));
        let privileges_ok = !self.privileges.trim().is_empty()
            && self.privileges.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b' ' | b',' | b'(' | b')' | b'_')
            });
        table_ok && privileges_ok
    }
}

/// procuhelp-tenancy's own part: the tenancy foundation (`app` schema, `app.current_org`,
/// `app.enter_org`, `app.declare_tenant_table`), organisations and data keys. Every
/// [`Schema`] starts with it.
pub const MIGRATIONS: Migrations =
    Migrations::new("procuhelp-tenancy", sqlx::migrate!("./migrations"))
        .grants(&[
            // Organisations are created by administrators (owner role), never by the server.
            Grant::new("app.organisations", "SELECT"),
            // The region this deployment serves (0020): written only by the owner.
            Grant::new("app.deployment", "SELECT"),
            // Tombstones of offboarded organisations (0023): written only by the owner;
            // ids, dates and row counts, nothing of a tenant's data.
            Grant::new("app.offboarded_organisations", "SELECT"),
            // Keys are never deleted by the server: destruction erases the wrapped key.
            Grant::new("app.data_keys", "SELECT, INSERT, UPDATE"),
            Grant::new("app.key_events", "SELECT, INSERT"),
        ])
        .personal_data(crate::personal_data::TENANCY);

/// Why a composed schema was refused. Nothing has been applied when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// Two parts declare the same migration version.
    #[error(
        "migration version {version} is declared by both {first} and {second}: versions \
         1-8999 belong to the SDK crates, 9000-9999 to its testkit, 10000 and up to \
         applications (docs/tenancy.md, \"Migrations\")"
    )]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// The part composed first.
        first: &'static str,
        /// The part composed later.
        second: &'static str,
    },
    /// A part declares a version outside its range (SDK crates 1-8999, testkit
    /// 9000-9999, applications 10000 and up).
    #[error(
        "{part}: migration version {version} is outside its range: versions 1-8999 belong \
         to the SDK crates, 9000-9999 to its testkit, 10000 and up to applications \
         (docs/tenancy.md, \"Migrations\")"
    )]
    VersionOutOfRange {
        /// The part declaring it.
        part: &'static str,
        /// The version.
        version: i64,
    },
    /// A part grants the runtime role privileges on a table another part grants (owns).
    #[error(
        "{part}: the runtime grant on {table} is refused: that table belongs to {owner}, \
         and a part may grant only on its own tables"
    )]
    GrantOnForeignTable {
        /// The part declaring the grant.
        part: &'static str,
        /// The table.
        table: &'static str,
        /// The part that grants on it first.
        owner: &'static str,
    },
    /// A grant's table or privileges are not plain SQL names.
    #[error("{part}: the runtime grant on {table:?} is not of the form schema.table / privileges")]
    InvalidGrant {
        /// The part declaring it.
        part: &'static str,
        /// The table as declared.
        table: &'static str,
    },
    /// The database was migrated with the layout from before each crate owned its
    /// migrations (issue #12): its 0004/0005 no longer match.
    #[error(
        "this database was migrated before each crate owned its migrations (its migration \
         {version} is the old combined one); it is refused rather than half-migrated. The \
         layout changed before any release: re-create the database (drop it, create it \
         empty, run `migrate` again) and reload its data from a logical dump if you need \
         it (docs/tenancy.md, \"Databases migrated before the split\")"
    )]
    PreSplitDatabase {
        /// The first old-layout migration found.
        version: i64,
    },
    /// A migration applied to the database differs from the one composed now.
    #[error(
        "migration {version} applied to this database differs from the one in this build \
         (migrations are never edited once applied: add a new one)"
    )]
    AppliedMigrationChanged {
        /// The version.
        version: i64,
    },
    /// A migration applied to the database is declared by no composed part.
    #[error(
        "migration {version} was applied to this database but no composed part declares \
         it: compose every crate and application that migrated this database \
         (Schema::with)"
    )]
    AppliedMigrationUnknown {
        /// The version.
        version: i64,
    },
}

/// SHA-384 checksums of the combined 0004 and 0005 of the layout before each crate owned
/// its migrations (they also created the example's supplier column and purchase
/// requests). A database with either applied is refused with
/// [`SchemaError::PreSplitDatabase`].
const PRE_SPLIT_CHECKSUMS: &[(i64, &str)] = &[
    (
        4,
        "8c8a77f0cbb87d52964cd395da5045dbf05b861748009770c081389c90d88154c3921b9c15732c6ac2a983b8fb9b3c96",
    ),
    (
        5,
        "3fd31c7b651071bf9356674564c53b5b2973074334b3ae28458fd09b0dccfd1aeb4a0db1df17cf39ec88b8d8f07d2833",
    ),
];

/// The whole database schema: procuhelp-tenancy's migrations and every part composed
/// with [`Schema::with`], applied by one migrator in version order.
#[derive(Debug)]
pub struct Schema {
    parts: Vec<Migrations>,
}

impl Default for Schema {
    fn default() -> Self {
        Self::new()
    }
}

impl Schema {
    /// procuhelp-tenancy's own migrations ([`MIGRATIONS`]) and nothing else.
    pub fn new() -> Self {
        Self {
            parts: vec![MIGRATIONS],
        }
    }

    /// Adds a crate's or the application's part.
    #[must_use]
    pub fn with(mut self, part: Migrations) -> Self {
        self.parts.push(part);
        self
    }

    /// The composed parts, in the order they were added.
    pub fn parts(&self) -> &[Migrations] {
        &self.parts
    }

    /// One migrator with every part's migrations in version order; refuses a version
    /// outside its part's range and a version two parts declare.
    pub fn migrator(&self) -> Result<Migrator, SchemaError> {
        let mut owners: BTreeMap<i64, &'static str> = BTreeMap::new();
        let mut migrations = Vec::new();
        for part in &self.parts {
            for m in part.migrator.iter() {
                if !part.range.contains(m.version) {
                    return Err(SchemaError::VersionOutOfRange {
                        part: part.name,
                        version: m.version,
                    });
                }
                if !m.migration_type.is_down_migration()
                    && let Some(first) = owners.insert(m.version, part.name)
                {
                    return Err(SchemaError::DuplicateVersion {
                        version: m.version,
                        first,
                        second: part.name,
                    });
                }
                migrations.push(m.clone());
            }
        }
        migrations.sort_by_key(|m| m.version);
        Ok(Migrator {
            migrations: migrations.into(),
            ..Migrator::DEFAULT
        })
    }

    /// Refuses a malformed grant, and an application's (or the testkit's) grant on a
    /// table another part grants on. SDK crates may grant on each other's tables (auth
    /// grants columns it adds to `app.organisations`); they are one reviewed sequence.
    fn check_grants(&self) -> Result<(), SchemaError> {
        for part in &self.parts {
            for grant in part.grants {
                if !grant.is_well_formed() {
                    return Err(SchemaError::InvalidGrant {
                        part: part.name,
                        table: grant.table,
                    });
                }
                if part.range == VersionRange::Sdk {
                    continue;
                }
                let other = self.parts.iter().find(|o| {
                    o.name != part.name && o.grants.iter().any(|g| g.table == grant.table)
                });
                if let Some(owner) = other {
                    return Err(SchemaError::GrantOnForeignTable {
                        part: part.name,
                        table: grant.table,
                        owner: owner.name,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every part's runtime grants, in composition order.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> + '_ {
        self.parts.iter().flat_map(|p| p.grants.iter())
    }

    /// Every part's register of personal data ([`crate::personal_data`]).
    pub fn personal_data(&self) -> impl Iterator<Item = &PersonalTable> + '_ {
        self.parts.iter().flat_map(|p| p.personal_data.iter())
    }

    /// Every part's encrypted columns: what key rotation re-encrypts.
    pub fn encrypted_columns(&self) -> Vec<EncryptedColumn> {
        self.parts
            .iter()
            .flat_map(|p| p.encrypted_columns.iter().copied())
            .collect()
    }

    /// Runs the composed migrations on `owner` (a pool logged in as the role that owns
    /// the schema), then creates or updates `runtime` and sets its privileges in schema
    /// `app` to exactly [`Schema::grants`].
    ///
    /// Refused before anything runs: duplicate or out-of-range versions, malformed grants,
    /// an application's grant on a table another part grants (an application grants only
    /// on its own tables; each SDK part lists every table it owns), and a database
    /// whose applied history does not match ([`SchemaError`]). The owner needs CREATEROLE
    /// (or to be superuser) to create the runtime role.
    pub async fn migrate(&self, owner: &PgPool, runtime: &RuntimeRole) -> Result<()> {
        let migrator = self.migrator()?;
        self.check_grants()?;
        check_history(owner, &migrator).await?;
        migrator.run(owner).await?;
        apply_runtime_role(owner, runtime, self.grants()).await?;
        tracing::info!(
            runtime_role = runtime.name(),
            parts = self.parts.len(),
            "migrations applied, runtime role up to date"
        );
        Ok(())
    }
}

/// Compares the database's applied migrations with `migrator` before anything runs.
async fn check_history(owner: &PgPool, migrator: &Migrator) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(owner)
        .await?;
    if !exists {
        return Ok(());
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(owner)
            .await?;
    for (version, checksum) in &applied {
        let hex: String = checksum.iter().map(|b| format!("{b:02x}")).collect();
        if PRE_SPLIT_CHECKSUMS.contains(&(*version, hex.as_str())) {
            return Err(SchemaError::PreSplitDatabase { version: *version }.into());
        }
    }
    for (version, checksum) in applied {
        match migrator
            .iter()
            .find(|m| m.version == version && !m.migration_type.is_down_migration())
        {
            None => return Err(SchemaError::AppliedMigrationUnknown { version }.into()),
            Some(m) if *m.checksum != *checksum => {
                return Err(SchemaError::AppliedMigrationChanged { version }.into());
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Creates or updates `runtime` and grants it exactly `grants` in schema `app`.
async fn apply_runtime_role(
    owner: &PgPool,
    runtime: &RuntimeRole,
    grants: impl Iterator<Item = &Grant>,
) -> Result<()> {
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
        // A privilege added by hand is removed at the next migration.
        "REVOKE ALL ON ALL TABLES IN SCHEMA app FROM %1$I".to_owned(),
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA app FROM %1$I".to_owned(),
        "GRANT USAGE ON SCHEMA app TO %1$I".to_owned(),
    ];
    for grant in grants {
        // Checked by Grant::is_well_formed; `%` would be read by format().
        statements.push(format!(
            "GRANT {} ON {} TO %1$I",
            grant.privileges, grant.table
        ));
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
    Ok(())
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

    #[test]
    fn duplicate_versions_are_refused_and_order_is_by_version() {
        // The same part twice declares every version twice.
        let err = Schema::new().with(MIGRATIONS).migrator().unwrap_err();
        assert_eq!(
            err,
            SchemaError::DuplicateVersion {
                version: 1,
                first: "procuhelp-tenancy",
                second: "procuhelp-tenancy"
            }
        );
        let m = Schema::new().migrator().unwrap();
        let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(versions, sorted);
    }

    #[test]
    fn grants_are_plain_names() {
        assert!(Grant::new("app.users", "SELECT, UPDATE (mfa_required)").is_well_formed());
        for bad in [
            Grant::new("users", "SELECT"),
            Grant::new("app.users; DROP TABLE x", "SELECT"),
            Grant::new("app.users", "SELECT; DROP TABLE x"),
            Grant::new("app.users", "SELECT %s"),
            Grant::new("app.users", " "),
        ] {
            assert!(!bad.is_well_formed(), "{bad:?} accepted");
        }
    }
}
