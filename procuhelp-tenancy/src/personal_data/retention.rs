//! Retention jobs: purge what the register says has expired.
//!
//! Every table whose retention is [`Retention::UntilExpiry`] or [`Retention::DaysAfter`]
//! loses the rows whose instant (plus the grace) has passed. Tenant tables (those with an
//! `org_id` column) are purged organisation by organisation in that organisation's
//! transaction — row-level security applies to the job as to any request — and the
//! others (the sign-in throttle) directly. Each statement deletes at most `batch` rows,
//! so a long backlog never holds locks or a transaction for long, and a run stops after
//! `max_batches` statements per table and organisation: what is left goes next run, and
//! [`Purge::more_left`] says so.
//!
//! ```no_run
//! # async fn f(db: &procuhelp_tenancy::TenantDb, pool: &sqlx::PgPool,
//! #            schema: &procuhelp_tenancy::Schema) -> procuhelp_tenancy::Result<()> {
//! use procuhelp_tenancy::personal_data::retention::{Limits, purge_expired};
//!
//! let register: Vec<_> = schema.personal_data().copied().collect();
//! let orgs = procuhelp_tenancy::organisation_ids(pool).await?;
//! let purge = purge_expired(db, pool, &register, &orgs, time::OffsetDateTime::now_utc(),
//!     Limits::default()).await?;
//! println!("{} rows purged", purge.total());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use procuhelp_core::OrgId;
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};

use super::subject::{is_identifier, is_table_name};
use super::{PersonalTable, Retention};
use crate::{Error, Result, TenantDb};

/// How much one run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rows per statement.
    pub batch: u32,
    /// Statements per table (and organisation) per run.
    pub max_batches: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch: 5_000,
            max_batches: 100,
        }
    }
}

/// What a run purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purge {
    /// Rows deleted, by table (all organisations together).
    pub rows: BTreeMap<&'static str, u64>,
    /// Some table still had expired rows when its batches ran out.
    pub more_left: bool,
}

impl Purge {
    /// All rows deleted.
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// The instant before which `entry`'s rows have expired, and the column holding theirs;
/// `None` for a table kept by other rules.
pub fn cutoff(
    entry: &PersonalTable,
    now: OffsetDateTime,
) -> Option<(&'static str, OffsetDateTime)> {
    match entry.retention {
        Retention::UntilExpiry { column, grace_days } => {
            Some((column, now - Duration::days(i64::from(grace_days))))
        }
        Retention::DaysAfter { column, days } => {
            Some((column, now - Duration::days(i64::from(days))))
        }
        _ => None,
    }
}

/// Purges every expired row of `register`'s tables: tenant tables in each organisation of
/// `orgs` through `db`, the others through `pool` (the runtime role's). See the
/// [module docs](self).
pub async fn purge_expired(
    db: &TenantDb,
    pool: &PgPool,
    register: &[PersonalTable],
    orgs: &[OrgId],
    now: OffsetDateTime,
    limits: Limits,
) -> Result<Purge> {
    let mut purge = Purge::default();
    for entry in register {
        let Some((column, before)) = cutoff(entry, now) else {
            continue;
        };
        let sql = statement(entry.table, column)?;
        let batch = limits.batch.max(1);
        // Tenant tables organisation by organisation, under row-level security; the others
        // (no `org_id`) once, outside any organisation.
        let scopes: Vec<Option<OrgId>> = if entry.class_of("org_id").is_some() {
            orgs.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let mut deleted = 0;
        for org in scopes {
            let mut more = true;
            for _ in 0..limits.max_batches.max(1) {
                // One short transaction per batch: no lock (a deleted session bumps its
                // user's session epoch) is held beyond one batch.
                let n = match org {
                    Some(org) => {
                        let mut tx = db.begin(org).await?;
                        let n = delete_batch(tx.conn(), &sql, before, batch).await?;
                        tx.commit().await?;
                        n
                    }
                    None => delete_batch(&mut *pool.acquire().await?, &sql, before, batch).await?,
                };
                deleted += n;
                if n < u64::from(batch) {
                    more = false;
                    break;
                }
            }
            purge.more_left |= more;
        }
        purge.rows.insert(entry.table, deleted);
    }
    Ok(purge)
}

fn statement(table: &str, column: &str) -> Result<String> {
    if !is_table_name(table) || !is_identifier(column) {
        return Err(Error::Invalid {
            field: "register",
            problem: "a name is not a plain identifier",
        });
    }
    // ctid: the physical row, so a batch is bounded without a key the register names.
    Ok(format!(
        "DELETE FROM {table} WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM {table} WHERE \"{column}\" < $1 LIMIT $2))"
    ))
}

/// One statement of `sql`: at most `batch` rows whose instant is before `before`.
async fn delete_batch(
    conn: &mut PgConnection,
    sql: &str,
    before: OffsetDateTime,
    batch: u32,
) -> Result<u64> {
    let done = sqlx::query(sql)
        .bind(before)
        .bind(i64::from(batch))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personal_data::Class;
    use time::macros::datetime;

    #[test]
    fn the_cutoff_is_the_register_s() {
        let now = datetime!(2026-12-03 12:00 UTC);
        let mut entry = PersonalTable {
            table: "app.things",
            subject: None,
            purpose: "p",
            retention: Retention::UntilExpiry {
                column: "expires_at",
                grace_days: 30,
            },
            columns: &[("expires_at", Class::NotPersonal)],
        };
        assert_eq!(
            cutoff(&entry, now),
            Some(("expires_at", datetime!(2026-11-03 12:00 UTC)))
        );
        entry.retention = Retention::DaysAfter {
            column: "seen",
            days: 2,
        };
        assert_eq!(
            cutoff(&entry, now),
            Some(("seen", datetime!(2026-12-01 12:00 UTC)))
        );
        for kept in [
            Retention::Organisation,
            Retention::Account,
            Retention::Identity,
            Retention::AuditTrail,
        ] {
            entry.retention = kept;
            assert_eq!(cutoff(&entry, now), None);
        }
        assert!(statement("app.things", "seen").is_ok());
        assert!(statement("app.things", "se\"en").is_err());
        assert!(statement("things", "seen").is_err());
    }
}
