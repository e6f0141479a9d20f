//! Every row of a database, for tests that compare two databases (a restored copy with
//! its source).

use std::collections::BTreeMap;

use sqlx::PgPool;

use crate::Result;

/// Every table of schemas `app` and `public`, each as its rows' text (sorted), read in one
/// snapshot with the text form of dates and floats pinned. Read as a superuser (RLS
/// would hide rows from any other role).
pub async fn rows_by_table(pool: &PgPool) -> Result<BTreeMap<String, Vec<String>>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    for setting in [
        "SET LOCAL DateStyle = 'ISO, YMD'",
        "SET LOCAL TimeZone = 'UTC'",
        "SET LOCAL extra_float_digits = 3",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname IN ('app', 'public') ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut out = BTreeMap::new();
    for table in tables {
        // `table` comes from format('%I.%I'): quoted identifiers.
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
                .fetch_all(&mut *tx)
                .await?;
        out.insert(table, rows);
    }
    tx.rollback().await?;
    Ok(out)
}
