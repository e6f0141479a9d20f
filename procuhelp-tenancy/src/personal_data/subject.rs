//! One person's rows, read or erased through the register: the generic half of a data
//! subject's access and erasure requests (GDPR articles 15 and 17).
//!
//! Both run in the caller's [`TenantTx`], so row-level security confines them to one
//! organisation, and a request's parts (the owners' steps, its audit event) commit or roll
//! back together. They cover every registered table that holds a user id
//! ([`Class::UserRef`]), which is why a new table is covered as soon as it is in the
//! register — and the register test fails until it is:
//!
//! - [`rows_about`] returns every row of such a table in which the person's id appears in
//!   any user-id column, as JSON, without credentials ([`Class::Secret`]) or sealed
//!   columns ([`Class::Sealed`]: their owner exports them opened, or they are not the
//!   person's, like a supplier's IBAN). A row whose subject is someone else (a request
//!   the person approved) shows only its non-personal columns, and other users' ids as
//!   `"another user"`: an export holds nothing of anyone else. Tables of the audit trail
//!   ([`Retention::AuditTrail`]) are left to the audit crate, which opens their sealed
//!   personal fields.
//! - [`erase_rows`] deletes the rows whose *subject* is the person in tables kept only as
//!   long as the account or until an expiry. Rows kept for the organisation's records
//!   stay and keep the id, which then names "a former user": the table of
//!   [`Retention::Identity`] is reduced to that by its owner (procuhelp-auth for
//!   `app.users`), and the audit trail's personal fields are crypto-shredded by the audit
//!   crate.
//!
//! ```no_run
//! # async fn f(tx: &mut procuhelp_tenancy::TenantTx, schema: &procuhelp_tenancy::Schema,
//! #            person: uuid::Uuid) -> procuhelp_tenancy::Result<()> {
//! use procuhelp_tenancy::personal_data::subject;
//!
//! let register: Vec<_> = schema.personal_data().copied().collect();
//! for found in subject::rows_about(tx, &register, person).await? {
//!     println!("{}: {} rows", found.table, found.rows.len());
//! }
//! # Ok(()) }
//! ```

use serde_json::Value;
use uuid::Uuid;

use super::{Class, PersonalTable, Retention};
use crate::{Error, Result, TenantTx};

/// The most rows [`rows_about`] returns from one table: an export is one file, and a
/// person with more rows than this in one table is an operator's job, not a request's.
pub const MAX_ROWS_PER_TABLE: usize = 100_000;

/// One table's rows about a person.
#[derive(Debug, Clone)]
pub struct TableRows {
    /// The table, as `app.sessions`.
    pub table: &'static str,
    /// Why it is kept (from the register).
    pub purpose: &'static str,
    /// How long it is kept (from the register).
    pub retention: Retention,
    /// The rows, each a JSON object of its exported columns.
    pub rows: Vec<Value>,
}

/// How many rows of one table an erasure deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The table.
    pub table: &'static str,
    /// Rows deleted.
    pub rows: u64,
}

/// Every row about `person` (a user id) in the tables of `register` that hold user ids,
/// except the audit trail's; see the [module docs](self). Tables with no such row are
/// left out.
pub async fn rows_about(
    tx: &mut TenantTx,
    register: &[PersonalTable],
    person: Uuid,
) -> Result<Vec<TableRows>> {
    let mut out = Vec::new();
    for entry in register {
        if entry.retention == Retention::AuditTrail {
            continue;
        }
        let refs: Vec<&str> = entry.user_refs().collect();
        if refs.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {} FROM {} t WHERE {} LIMIT $2",
            projection(entry)?,
            quoted_table(entry.table)?,
            any_column_is_person(&refs)?,
        );
        let rows: Vec<Value> = sqlx::query_scalar(&sql)
            .bind(person)
            .bind(i64::try_from(MAX_ROWS_PER_TABLE + 1).unwrap_or(i64::MAX))
            .fetch_all(tx.conn())
            .await?;
        if rows.len() > MAX_ROWS_PER_TABLE {
            return Err(Error::Invalid {
                field: "person",
                problem: "more rows in one table than one export holds",
            });
        }
        if !rows.is_empty() {
            out.push(TableRows {
                table: entry.table,
                purpose: entry.purpose,
                retention: entry.retention,
                rows,
            });
        }
    }
    Ok(out)
}

/// What a row shows the person (`$1`), column by column: credentials and sealed columns
/// never; identifiers and personal columns only when the row is about the person (its
/// subject column is them) — a row that merely names them (an approval of someone else's
/// request, another user handed over by them) shows its other people's data to no one;
/// another user's id shows as `"another user"`.
fn projection(entry: &PersonalTable) -> Result<String> {
    let own = match entry
        .subject
        .filter(|s| entry.class_of(s) == Some(Class::UserRef))
    {
        Some(subject) => format!("t.{} = $1", quoted(subject)?),
        None => "false".to_owned(),
    };
    let mut pairs = Vec::new();
    for (column, class) in entry.columns {
        let c = format!("t.{}", quoted(column)?);
        let value = match class {
            Class::Secret | Class::Sealed => continue,
            Class::NotPersonal => format!("to_jsonb({c})"),
            Class::UserRef => format!(
                "CASE WHEN {c} = $1 OR {c} IS NULL THEN to_jsonb({c}) ELSE '\"another user\"'::jsonb END"
            ),
            Class::Identifier | Class::Personal => {
                format!("CASE WHEN {own} THEN to_jsonb({c}) END")
            }
        };
        pairs.push(format!("'{column}', {value}"));
    }
    // jsonb_build_object takes at most 100 arguments: wider tables are built in parts.
    let parts: Vec<String> = pairs
        .chunks(40)
        .map(|chunk| format!("jsonb_build_object({})", chunk.join(", ")))
        .collect();
    if parts.is_empty() {
        return Ok("'{}'::jsonb".to_owned());
    }
    Ok(parts.join(" || "))
}

/// Deletes the rows whose subject is `person` in every table of `register` kept with the
/// account or until an expiry ([`Retention::Account`], [`Retention::UntilExpiry`],
/// [`Retention::DaysAfter`]) whose subject column is a user id; see the
/// [module docs](self) for what stays. Returns what it deleted, by table.
pub async fn erase_rows(
    tx: &mut TenantTx,
    register: &[PersonalTable],
    person: Uuid,
) -> Result<Vec<Deleted>> {
    let mut out = Vec::new();
    for entry in register {
        let ends_with_account = matches!(
            entry.retention,
            Retention::Account | Retention::UntilExpiry { .. } | Retention::DaysAfter { .. }
        );
        let Some(subject) = entry.subject else {
            continue;
        };
        if !ends_with_account || entry.class_of(subject) != Some(Class::UserRef) {
            continue;
        }
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1",
            quoted_table(entry.table)?,
            quoted(subject)?
        );
        let done = sqlx::query(&sql).bind(person).execute(tx.conn()).await?;
        out.push(Deleted {
            table: entry.table,
            rows: done.rows_affected(),
        });
    }
    Ok(out)
}

/// Whether `name` is a plain lower-case SQL identifier (so quoting it cannot change the
/// statement, and the register's names are the database's).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// Whether `name` is `schema.table` of plain identifiers.
pub(crate) fn is_table_name(name: &str) -> bool {
    matches!(name.split_once('.'), Some((s, t)) if is_identifier(s) && is_identifier(t))
}

fn quoted(name: &str) -> Result<String> {
    if is_identifier(name) {
        Ok(format!("\"{name}\""))
    } else {
        Err(Error::Invalid {
            field: "register",
            problem: "a column name is not a plain identifier",
        })
    }
}

fn quoted_table(name: &str) -> Result<String> {
    let (schema, table) = name.split_once('.').ok_or(Error::Invalid {
        field: "register",
        problem: "a table name is not schema.table",
    })?;
    Ok(format!("{}.{}", quoted(schema)?, quoted(table)?))
}

fn any_column_is_person(columns: &[&str]) -> Result<String> {
    let tests: Result<Vec<String>> = columns
        .iter()
        .map(|c| quoted(c).map(|q| format!("{q} = $1")))
        .collect();
    Ok(tests?.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_quoted_into_statements() {
        assert!(is_identifier("user_id"));
        assert!(is_identifier("_x9"));
        for bad in ["", "User", "a-b", "a\"b", "9a", "a b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
            assert!(quoted(bad).is_err(), "{bad}");
        }
        assert!(is_table_name("app.users"));
        assert!(!is_table_name("users"));
        assert!(!is_table_name("app.users.x"));
        assert_eq!(quoted_table("app.users").unwrap(), "\"app\".\"users\"");
        assert_eq!(
            any_column_is_person(&["a", "b"]).unwrap(),
            "\"a\" = $1 OR \"b\" = $1"
        );
    }
}
