//! Which tables hold an organisation's rows, read from the live catalog: every ordinary
//! table with an `org_id uuid` column, and `app.organisations` itself. Backups split by
//! it (each organisation's rows sealed under its own key) and offboarding deletes by it,
//! so a table added by any crate or application is covered without being listed.

use sqlx::PgConnection;

/// A table holding organisations' rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrganisationTable {
    /// `format('%I.%I')` of schema and table.
    pub(crate) name: String,
    /// The quoted column naming the organisation (`org_id`, or `id` of
    /// `app.organisations`).
    pub(crate) key: String,
    /// Quoted columns, in order, generated columns left out.
    pub(crate) columns: Vec<String>,
}

/// Every table holding organisations' rows in `conn`'s database; `app.organisations`
/// first.
pub(crate) async fn organisation_tables(
    conn: &mut PgConnection,
) -> Result<Vec<OrganisationTable>, sqlx::Error> {
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                CASE WHEN c.oid = to_regclass('app.organisations') THEN 'id' ELSE 'org_id' END,
                array_agg(format('%I', a.attname) ORDER BY a.attnum)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                             AND a.attgenerated = ''
         WHERE c.relkind = 'r'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
           AND (c.oid = to_regclass('app.organisations') OR EXISTS (
                SELECT 1 FROM pg_attribute o WHERE o.attrelid = c.oid AND o.attname = 'org_id'
                AND NOT o.attisdropped AND o.atttypid = 'uuid'::regtype))
         GROUP BY c.oid, n.nspname, c.relname
         ORDER BY c.oid = to_regclass('app.organisations') DESC NULLS LAST, 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, key, columns)| OrganisationTable { name, key, columns })
        .collect())
}
