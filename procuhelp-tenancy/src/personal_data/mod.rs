//! The register of personal data: for every table of the schema, whom its rows are about,
//! why it is kept, how long, and what each column holds.
//!
//! Each crate declares the tables its migrations create, beside them
//! ([`Migrations::personal_data`](crate::migrate::Migrations::personal_data)); the
//! [`Schema`] composes the parts' registers. [`check`] compares the register with the live
//! database after the migrations: a column no register classifies, or a register entry
//! the database does not have, is an error — so a new column cannot slip past the GDPR
//! tooling (subject export, erasure and retention are built from this register).
//! [`markdown`] renders it as the record of processing (`docs/retention.md`), and
//! [`subject`] reads and erases one person's rows from it.
//!
//! ```
//! use procuhelp_tenancy::personal_data::{Class::*, PersonalTable, Retention};
//!
//! pub const CLAIMS: PersonalTable = PersonalTable {
//!     table: "app.expense_claims",
//!     subject: Some("claimant"),
//!     purpose: "expense claims and their approval",
//!     retention: Retention::Organisation,
//!     columns: &[
//!         ("org_id", NotPersonal),
//!         ("id", NotPersonal),
//!         ("claimant", UserRef),
//!         ("title", Personal),
//!     ],
//! };
//! assert_eq!(CLAIMS.class_of("claimant"), Some(UserRef));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sqlx::PgPool;

use crate::Schema;

pub mod retention;
pub mod subject;

/// What a column holds, for data protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Nothing about a person: ids of things, states, amounts, system times, counters.
    NotPersonal,
    /// Identifies a person directly: e-mail, name, an identity provider's subject, a
    /// keyed hash of one of these.
    Identifier,
    /// A user's id (`app.users.id`, type `uuid`): identifies a person by reference.
    /// Subject access finds a person's rows by these columns; where a record outlives the
    /// account (an approval), the id stays and points to "a former user".
    UserRef,
    /// About a person: their role, status, what they did and when, their address or
    /// browser, free text they wrote.
    Personal,
    /// Personal, stored sealed: encrypted by the field cipher or under a per-person key
    /// that erasure shreds. Exported decrypted, never copied sealed.
    Sealed,
    /// A credential or a hash of one (password hash, token hash, recovery code hash):
    /// about a person, never exported, deleted with the account.
    Secret,
}

impl Class {
    /// The name used in the record of processing.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::NotPersonal => "not personal",
            Class::Identifier => "identifier",
            Class::UserRef => "user id",
            Class::Personal => "personal",
            Class::Sealed => "personal, sealed",
            Class::Secret => "credential",
        }
    }
}

/// How long a table's rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// As long as the organisation is a customer; deleted when it is offboarded.
    Organisation,
    /// As long as the person's account exists; erased with it.
    Account,
    /// The person's own account record (and what must outlive it with it): reduced to
    /// "a former user" on erasure by the crate that owns the table, and kept, so that
    /// records referring to the id stay whole.
    Identity,
    /// Until the instant in `column` has passed, then purged (a grace of `grace_days`).
    UntilExpiry {
        /// The column holding the expiry.
        column: &'static str,
        /// Days kept after it, for investigation.
        grace_days: u16,
    },
    /// `days` after the instant in `column`, then purged.
    DaysAfter {
        /// The column holding the start.
        column: &'static str,
        /// How many days.
        days: u16,
    },
    /// The audit trail's: append-only and kept with the organisation; a person's
    /// personal fields are crypto-shredded when the person is erased (docs/audit.md).
    AuditTrail,
}

impl Retention {
    /// How long, in words (as in the record of processing).
    pub fn describe(self) -> String {
        match self {
            Retention::Organisation => "while the organisation is a customer".to_owned(),
            Retention::Account => "while the person's account exists".to_owned(),
            Retention::Identity => {
                "while the account exists; reduced to \"a former user\" on erasure".to_owned()
            }
            Retention::UntilExpiry { column, grace_days } => {
                format!("until `{column}`, then {}", days(grace_days))
            }
            Retention::DaysAfter { column, days: n } => format!("{} after `{column}`", days(n)),
            Retention::AuditTrail => {
                "with the organisation; personal fields shredded on erasure".to_owned()
            }
        }
    }
}

fn days(n: u16) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

/// One table's entry in the register.
#[derive(Debug, Clone, Copy)]
pub struct PersonalTable {
    /// Schema-qualified name, as `app.users`.
    pub table: &'static str,
    /// The column naming the person each row is about (`None`: the rows are about no
    /// one, or about the organisation).
    pub subject: Option<&'static str>,
    /// Why the table is kept.
    pub purpose: &'static str,
    /// How long its rows are kept.
    pub retention: Retention,
    /// Every column and what it holds.
    pub columns: &'static [(&'static str, Class)],
}

impl PersonalTable {
    /// What `column` holds, if the entry names it.
    pub fn class_of(&self, column: &str) -> Option<Class> {
        self.columns
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, class)| *class)
    }

    /// The columns holding a user's id ([`Class::UserRef`]).
    pub fn user_refs(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .filter(|(_, c)| *c == Class::UserRef)
            .map(|(name, _)| *name)
    }

    /// Whether any column is about a person.
    pub fn is_personal(&self) -> bool {
        self.columns.iter().any(|(_, c)| *c != Class::NotPersonal)
    }
}

/// Where the register and the database disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "personal-data register out of date: unclassified columns {unclassified:?}; \
     registered but absent {absent:?}; {problems:?}"
)]
pub struct RegisterError {
    /// `table.column` in the database and in no register.
    pub unclassified: Vec<String>,
    /// `table.column` in a register and not in the database.
    pub absent: Vec<String>,
    /// Entries that contradict themselves (a table declared twice, a subject or
    /// retention column that is not one of the table's columns, a user id that is not a
    /// `uuid`, a name that is not a plain SQL identifier).
    pub problems: Vec<String>,
}

/// Compares `schema`'s register with every column of every table in schema `app` of the
/// database behind `pool` (after the migrations).
pub async fn check(pool: &PgPool, schema: &Schema) -> crate::Result<()> {
    let live: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_schema || '.' || c.table_name, c.column_name::text, c.udt_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'app' AND t.table_type = 'BASE TABLE'
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let (registered, mut problems) = registered_columns(schema);
    problems.extend(unindexed_user_refs(pool, schema).await?);
    for entry in schema.personal_data() {
        for column in entry.user_refs() {
            let found = live
                .iter()
                .find(|(t, c, _)| t == entry.table && c == column);
            if let Some((_, _, udt)) = found.filter(|(_, _, udt)| udt != "uuid") {
                problems.push(format!(
                    "{}.{column} is a user id but of type {udt}, not uuid",
                    entry.table
                ));
            }
        }
    }
    let live: BTreeSet<String> = live
        .into_iter()
        .map(|(t, c, _)| format!("{t}.{c}"))
        .collect();
    let unclassified: Vec<String> = live.difference(&registered).cloned().collect();
    let absent: Vec<String> = registered.difference(&live).cloned().collect();
    if unclassified.is_empty() && absent.is_empty() && problems.is_empty() {
        return Ok(());
    }
    Err(crate::Error::Register(Box::new(RegisterError {
        unclassified,
        absent,
        problems,
    })))
}

/// A user id that no index leads with (alone or after `org_id`): finding a person's rows
/// (export, erasure) would scan the table — or, under row-level security, the whole
/// organisation's rows. Partial indexes do not count: the lookups have no predicate.
async fn unindexed_user_refs(pool: &PgPool, schema: &Schema) -> crate::Result<Vec<String>> {
    let indexes: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT format('%s.%s', n.nspname, t.relname),
                array_agg(a.attname::text ORDER BY k.ord)
         FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
         WHERE n.nspname = 'app' AND i.indpred IS NULL
         GROUP BY i.indexrelid, n.nspname, t.relname",
    )
    .fetch_all(pool)
    .await?;
    let mut problems = Vec::new();
    for entry in schema.personal_data() {
        if entry.retention == Retention::AuditTrail {
            continue;
        }
        for column in entry.user_refs() {
            let indexed = indexes.iter().any(|(table, keys)| {
                table == entry.table
                    && match keys.as_slice() {
                        [first, ..] if first == column => true,
                        [org, second, ..] => org == "org_id" && second == column,
                        _ => false,
                    }
            });
            if !indexed {
                problems.push(format!(
                    "{}.{column} is a user id that no index leads with (after org_id)",
                    entry.table
                ));
            }
        }
    }
    Ok(problems)
}

fn registered_columns(schema: &Schema) -> (BTreeSet<String>, Vec<String>) {
    let mut columns = BTreeSet::new();
    let mut problems = Vec::new();
    let mut tables = BTreeSet::new();
    for entry in schema.personal_data() {
        if !tables.insert(entry.table) {
            problems.push(format!("{} is declared twice", entry.table));
        }
        if !subject::is_table_name(entry.table) {
            problems.push(format!("{} is not a plain schema.table name", entry.table));
        }
        for (column, _) in entry.columns {
            if !subject::is_identifier(column) {
                problems.push(format!(
                    "{}.{column} is not a plain column name",
                    entry.table
                ));
            }
            if !columns.insert(format!("{}.{column}", entry.table)) {
                problems.push(format!("{}.{column} is declared twice", entry.table));
            }
        }
        let named = match entry.retention {
            Retention::UntilExpiry { column, .. } | Retention::DaysAfter { column, .. } => {
                Some(column)
            }
            _ => None,
        };
        // Erasure finds a person's rows by the subject column: a table kept with the
        // account must name its person by user id, or erasure would silently skip it.
        let by_user_id = entry
            .subject
            .is_some_and(|s| entry.class_of(s) == Some(Class::UserRef));
        if matches!(entry.retention, Retention::Account | Retention::Identity) && !by_user_id {
            problems.push(format!(
                "{}: kept with the account, but its subject is not a user id",
                entry.table
            ));
        }
        for column in entry.subject.into_iter().chain(named) {
            if entry.class_of(column).is_none() {
                problems.push(format!(
                    "{}: {column} is not one of its columns",
                    entry.table
                ));
            }
        }
    }
    (columns, problems)
}

/// The register as Markdown: the record of processing and the retention of every table.
pub fn markdown(schema: &Schema) -> String {
    let mut entries: Vec<&PersonalTable> = schema.personal_data().collect();
    entries.sort_by_key(|e| e.table);
    let mut out = String::new();
    out.push_str(
        "# Personal data: record of processing and retention\n\n\
         Generated from the personal-data register (`procuhelp_tenancy::personal_data`, \
         each crate's `MIGRATIONS`) by `procuhelp_tenancy::personal_data::markdown`; a test \
         fails when this file, or the live schema, disagrees with it. Do not edit by hand.\n\n\
         Classes: *identifier* names a person; *user id* names a person by reference \
         (subject access finds their rows by it); *personal* is about a person; *sealed* is \
         personal and stored encrypted (field cipher, or a per-person key that erasure \
         shreds); *credential* is a secret or its hash (never exported).\n\n\
         ## Tables\n\n\
         | table | about whom | purpose | kept |\n| --- | --- | --- | --- |\n",
    );
    for e in &entries {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            e.table,
            e.subject.map_or("no one".to_owned(), |s| format!("`{s}`")),
            e.purpose,
            e.retention.describe()
        );
    }
    out.push_str("\n## Columns holding personal data\n\n");
    for e in entries.iter().filter(|e| e.is_personal()) {
        let mut by_class: BTreeMap<Class, Vec<&str>> = BTreeMap::new();
        for (column, class) in e.columns {
            if *class != Class::NotPersonal {
                by_class.entry(*class).or_default().push(column);
            }
        }
        let _ = writeln!(out, "- `{}`:", e.table);
        for (class, columns) in by_class {
            let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
            let _ = writeln!(out, "  - {}: {}", class.as_str(), list.join(", "));
        }
    }
    out
}

/// procuhelp-tenancy's own tables (part of [`MIGRATIONS`](crate::migrate::MIGRATIONS)).
pub(crate) const TENANCY: &[PersonalTable] = &[
    PersonalTable {
        table: "app.organisations",
        subject: None,
        purpose: "the customer organisations and their sign-in policy",
        retention: Retention::Organisation,
        columns: &[
            ("id", Class::NotPersonal),
            ("name", Class::NotPersonal),
            ("created_at", Class::NotPersonal),
            ("mfa_required", Class::NotPersonal),
            ("elevation_needs_second_admin", Class::NotPersonal),
            ("operator_access_needs_approval", Class::NotPersonal),
            ("sso_jit_provisioning", Class::NotPersonal),
            ("data_region", Class::NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.offboarded_organisations",
        subject: None,
        purpose: "tombstones of offboarded organisations: proof of what was deleted, and that the id is never reused",
        retention: Retention::Organisation,
        columns: &[
            ("id", Class::NotPersonal),
            ("data_region", Class::NotPersonal),
            ("created_at", Class::NotPersonal),
            ("offboarded_at", Class::NotPersonal),
            ("deleted_rows", Class::NotPersonal),
            ("keys_destroyed_at", Class::NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.deployment",
        subject: None,
        purpose: "the data region this deployment serves",
        retention: Retention::Organisation,
        columns: &[
            ("singleton", Class::NotPersonal),
            ("region", Class::NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.data_keys",
        subject: None,
        purpose: "per-organisation data keys, wrapped by the vault's key",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", Class::NotPersonal),
            ("version", Class::NotPersonal),
            ("state", Class::NotPersonal),
            ("kek_version", Class::NotPersonal),
            ("wrapped", Class::NotPersonal),
            ("encryptions_reserved", Class::NotPersonal),
            ("created_at", Class::NotPersonal),
            ("changed_at", Class::NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.key_events",
        subject: None,
        purpose: "history of data keys: created, rotated, destroyed",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", Class::NotPersonal),
            ("id", Class::NotPersonal),
            ("event", Class::NotPersonal),
            ("version", Class::NotPersonal),
            ("detail", Class::NotPersonal),
            ("at", Class::NotPersonal),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::Migrations;

    const BROKEN: &[PersonalTable] = &[
        PersonalTable {
            table: "app.things",
            subject: Some("owner"),
            purpose: "p",
            retention: Retention::DaysAfter {
                column: "seen",
                days: 1,
            },
            columns: &[("id", Class::NotPersonal), ("id", Class::Identifier)],
        },
        PersonalTable {
            table: "app.things",
            subject: None,
            purpose: "p",
            retention: Retention::Organisation,
            columns: &[],
        },
    ];

    #[test]
    fn self_contradicting_entries_are_problems() {
        let schema = Schema::new().with(
            Migrations::app("broken", sqlx::migrate!("./testkit/migrations")).personal_data(BROKEN),
        );
        let (_, problems) = registered_columns(&schema);
        for expected in [
            "app.things.id is declared twice",
            "app.things: owner is not one of its columns",
            "app.things: seen is not one of its columns",
            "app.things is declared twice",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected}: {problems:?}"
            );
        }
        let md = markdown(&schema);
        assert!(md.contains("| `app.things` | `owner` | p | 1 day after `seen` |"));
    }
}
