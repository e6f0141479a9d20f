//! Offboarding an organisation: the customer's export, then every row deleted and a
//! tombstone left, then its keys destroyed (issue #14, point 4; docs/gdpr.md).
//!
//! The steps run on the **owner** pool, in this order, each safe to repeat:
//! 1. [`export`]: every row the organisation holds, as JSON Lines, from one snapshot
//!    (credentials and sealed columns withheld, and listed as such);
//! 2. [`delete`]: one transaction writes the tombstone (`app.offboarded_organisations`)
//!    and deletes the organisation's rows from every table that has them
//!    (found in the live catalog, not listed by hand) — the audit
//!    trail's append-only triggers release an organisation's events only once its
//!    tombstone exists — and checks that none is left;
//! 3. [`destroy_keys`]: destroys its key-encryption keys in the vault. Its rows in
//!    every earlier backup are sealed under its `tenant-<id>` KEK
//!    ([`crate::backup`]), so from then on no backup can bring them back.
//!
//! A vault is not transactional: a crash between 2 and 3 leaves a tombstone with
//! `keys_destroyed_at` unset, which [`Tombstone::keys_destroyed_at`] shows and a rerun
//! finishes.
//!
//! ```no_run
//! # async fn demo(owner: sqlx::PgPool, schema: procuhelp_tenancy::Schema,
//! #     cipher: procuhelp_tenancy::FieldCipher,
//! #     vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
//! #     org: procuhelp_core::OrgId) -> procuhelp_tenancy::Result<()> {
//! use procuhelp_tenancy::offboarding;
//! let mut file = std::io::BufWriter::new(std::fs::File::create("/secure/export.jsonl").unwrap());
//! let mut tx = procuhelp_tenancy::TenantDb::new(owner.clone()).begin(org).await?;
//! let exported = offboarding::export(&owner, &schema, &cipher, org, &mut file).await?;
//! let tombstone = offboarding::delete(&mut tx, org, Some(&exported.fingerprint)).await?;
//! // … record the event in `tx` …
//! tx.commit().await?;
//! offboarding::destroy_keys(&owner, vault.as_ref(), org, &[]).await?;
//! # let _ = tombstone; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use futures_util::TryStreamExt as _;
use procuhelp_core::OrgId;
use procuhelp_core::vault::{SecretProvider, VaultError};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::catalog::{OrganisationTable, organisation_tables};
use crate::personal_data::Class;
use crate::{EncryptedColumn, Error, FieldCipher, FieldRef, Result, Schema, TenantTx};

/// What is left of an offboarded organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tombstone {
    /// The organisation.
    pub organisation: uuid::Uuid,
    /// Its data region.
    pub data_region: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its rows were deleted.
    #[serde(with = "time::serde::rfc3339")]
    pub offboarded_at: OffsetDateTime,
    /// Rows deleted, per table.
    pub deleted_rows: BTreeMap<String, i64>,
    /// When its keys were destroyed (`None`: not yet — rerun [`destroy_keys`]).
    #[serde(with = "time::serde::rfc3339::option")]
    pub keys_destroyed_at: Option<OffsetDateTime>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Rows written, per table.
    pub rows: BTreeMap<String, u64>,
    /// Columns left out (`table.column`), with why.
    pub withheld: Vec<(String, &'static str)>,
    /// Field-encrypted columns written opened (`table.column`).
    pub opened: Vec<String>,
    /// What was exported, to check against what [`delete`] deletes.
    pub fingerprint: Fingerprint,
}

/// The export's first line.
#[derive(Serialize)]
struct ExportHeader<'a> {
    format: &'static str,
    organisation: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339")]
    exported_at: OffsetDateTime,
    opened: &'a [String],
    withheld: &'a [(String, &'static str)],
}

const FORMAT: &str = "procuhelp-organisation-export/1";

/// Writes every row `org` holds to `out` as JSON Lines: a header line (format,
/// organisation, time, the opened and the withheld columns), then
/// `{"table": …, "row": {…}}` per row, all read in one snapshot. A sealed column
/// ([`Class::Sealed`]) that the schema declares field-encrypted (an [`EncryptedColumn`],
/// like the suppliers' bank details) is opened with `cipher` and written as
/// `{"table", "opened": {"row_id", "column", "value"}}` lines (`value_hex` when not UTF-8): the
/// customer gets their data, not ciphertext whose keys offboarding destroys. Credentials
/// ([`Class::Secret`]) and other sealed columns (audit personal data, under per-person
/// keys: the audit export carries those events) are withheld and named in the header. A
/// table or column the register does not know is refused (the register test keeps that
/// from happening).
pub async fn export(
    owner: &PgPool,
    schema: &Schema,
    cipher: &FieldCipher,
    org: OrgId,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary> {
    let mut tx = owner.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    enter(&mut tx, org).await?;
    let tables = organisation_tables(&mut tx).await?;
    let encrypted = schema.encrypted_columns();
    let mut plan = Vec::new();
    let mut withheld = Vec::new();
    let mut opened = Vec::new();
    for table in &tables {
        let entry = schema
            .personal_data()
            .find(|t| t.table == table.name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "table {} is not in the personal-data register: not exported blind",
                    table.name
                ))
            })?;
        let mut columns = Vec::new();
        for column in &table.columns {
            match entry.class_of(column) {
                Some(Class::Secret) => {
                    withheld.push((format!("{}.{column}", table.name), "a credential"));
                }
                Some(Class::Sealed) => match encrypted
                    .iter()
                    .find(|e| e.table == table.name && e.column == column)
                {
                    Some(field) => opened.push((table.name.clone(), *field)),
                    None => withheld.push((
                        format!("{}.{column}", table.name),
                        "sealed under per-person keys (the audit export carries the events)",
                    )),
                },
                Some(_) => columns.push(column.clone()),
                None => {
                    return Err(Error::Config(format!(
                        "column {}.{column} is not in the personal-data register",
                        table.name
                    )));
                }
            }
        }
        plan.push((table, columns));
    }
    let io = |e: std::io::Error| Error::Config(format!("writing the export: {e}"));
    let header = serde_json::to_string(&ExportHeader {
        format: FORMAT,
        organisation: org.as_uuid(),
        exported_at: OffsetDateTime::now_utc(),
        opened: &opened
            .iter()
            .map(|(t, f)| format!("{t}.{}", f.column))
            .collect::<Vec<_>>(),
        withheld: &withheld,
    })
    .map_err(|e| Error::Config(format!("encoding the export: {e}")))?;
    writeln!(out, "{header}").map_err(io)?;
    let mut rows = BTreeMap::new();
    for (table, columns) in plan {
        let name = serde_json::to_string(&table.name)
            .map_err(|e| Error::Config(format!("encoding the export: {e}")))?;
        let statement = format!(
            "SELECT row_to_json(x)::text FROM (SELECT {} FROM ONLY {} WHERE {} = $1) x",
            columns.join(", "),
            table.name,
            table.key
        );
        let mut stream = sqlx::query_scalar::<_, String>(&statement)
            .bind(org.as_uuid())
            .fetch(&mut *tx);
        let mut count = 0u64;
        while let Some(row) = stream.try_next().await? {
            writeln!(out, "{{\"table\":{name},\"row\":{row}}}").map_err(io)?;
            count += 1;
        }
        drop(stream);
        rows.insert(table.name.clone(), count);
        for (_, field) in opened.iter().filter(|(t, _)| *t == table.name) {
            write_opened(&mut tx, cipher, org, field, &name, out).await?;
        }
    }
    out.flush().map_err(io)?;
    let fingerprint = fingerprint(&mut tx, &tables, org).await?;
    tx.rollback().await?;
    Ok(ExportSummary {
        rows,
        withheld,
        opened: opened
            .iter()
            .map(|(t, f)| format!("{t}.{}", f.column))
            .collect(),
        fingerprint,
    })
}

/// Rows and a content digest per table of one organisation: what [`export`] wrote, and
/// what [`delete`] checks it is about to delete.
pub type Fingerprint = BTreeMap<String, TableFingerprint>;

/// One table's share of a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableFingerprint {
    /// Rows.
    pub rows: i64,
    /// The sum of a 64-bit hash of each row's text (order-independent).
    pub digest: String,
}

async fn fingerprint(
    conn: &mut PgConnection,
    tables: &[OrganisationTable],
    org: OrgId,
) -> Result<Fingerprint> {
    let mut out = BTreeMap::new();
    for table in tables {
        let (rows, digest): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text
             FROM ONLY {} t WHERE {} = $1",
            table.name, table.key
        ))
        .bind(org.as_uuid())
        .fetch_one(&mut *conn)
        .await?;
        if rows > 0 {
            out.insert(table.name.clone(), TableFingerprint { rows, digest });
        }
    }
    Ok(out)
}

/// Writes the opened values of one field-encrypted column (rows keyed by `id`, as the
/// field cipher's AAD is).
async fn write_opened(
    conn: &mut PgConnection,
    cipher: &FieldCipher,
    org: OrgId,
    field: &EncryptedColumn,
    table_json: &str,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let io = |e: std::io::Error| Error::Config(format!("writing the export: {e}"));
    let statement =
        field.sql("SELECT id, {c} FROM ONLY {t} WHERE org_id = $1 AND {c} IS NOT NULL")?;
    let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(&statement)
        .bind(org.as_uuid())
        .fetch_all(&mut *conn)
        .await?;
    for (id, sealed) in rows {
        let row = id.hyphenated().to_string();
        let plain = cipher
            .decrypt(
                org,
                FieldRef::new(field.field_table, field.field_column, &row),
                &sealed,
            )
            .await?;
        let value = match std::str::from_utf8(plain.expose()) {
            Ok(text) => serde_json::json!({ "value": text }),
            Err(_) => serde_json::json!({ "value_hex": hex_encode(plain.expose()) }),
        };
        let mut line = serde_json::json!({ "row_id": row, "column": field.column });
        if let (Some(line), Some(value)) = (line.as_object_mut(), value.as_object()) {
            line.extend(value.clone());
        }
        writeln!(out, "{{\"table\":{table_json},\"opened\":{line}}}").map_err(io)?;
    }
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Deletes every row of `org` and leaves its tombstone, inside `tx` — a transaction on
/// the **owner** pool, whichever organisation it entered (the audit system chain's, so
/// the caller records its `org.offboarded` event in the same transaction and commits:
/// the deletion and its record are one).
///
/// With `exported` (the [`ExportSummary::fingerprint`] of the customer's export), the
/// rows about to be deleted must be exactly those exported — same rows, same content —
/// or nothing is deleted: the organisation was still in use. Refuses to leave anything
/// behind. For an organisation already offboarded it deletes whatever is left (an
/// append that was in flight) and adds it to the tombstone's counts. On an error the
/// transaction must be rolled back (dropping it does).
pub async fn delete(
    tx: &mut TenantTx,
    org: OrgId,
    exported: Option<&Fingerprint>,
) -> Result<Tombstone> {
    let conn = tx.conn();
    crate::admin::require_owner(&mut *conn, "offboarding").await?;
    // Row-level security binds the owner too: this organisation's rows are visible only
    // while it is the transaction's organisation; the one entered is put back after.
    let entered: Option<String> =
        sqlx::query_scalar("SELECT current_setting('procuhelp.org_id', true)")
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query("SELECT set_config('procuhelp.org_id', $1, true)")
        .bind(org.to_string())
        .execute(&mut *conn)
        .await?;
    let previous = tombstone_on(&mut *conn, org).await?;
    if previous.is_none() {
        let row: Option<(String, OffsetDateTime)> = sqlx::query_as(
            "SELECT o.data_region, o.created_at FROM app.organisations o
             JOIN app.deployment d ON d.region = o.data_region
             WHERE o.id = $1 FOR UPDATE OF o",
        )
        .bind(org.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
        let Some((region, created_at)) = row else {
            return Err(Error::UnknownOrg(org));
        };
        // First: the audit trail's triggers release this organisation's events (and
        // refuse new ones) only now.
        sqlx::query(
            "INSERT INTO app.offboarded_organisations (id, data_region, created_at) VALUES ($1, $2, $3)",
        )
        .bind(org.as_uuid())
        .bind(&region)
        .bind(created_at)
        .execute(&mut *conn)
        .await?;
    }
    let tables = organisation_tables(&mut *conn).await?;
    let found = fingerprint(&mut *conn, &tables, org).await?;
    if let Some(exported) = exported
        && previous.is_none()
        && *exported != found
    {
        let changed: Vec<&String> = exported
            .keys()
            .chain(found.keys())
            .filter(|t| exported.get(*t) != found.get(*t))
            .collect();
        return Err(Error::Config(format!(
            "organisation {org} changed after its export (tables {changed:?}): nothing was \
             deleted; stop its traffic (disable its users and SSO) and export again"
        )));
    }
    // The organisation's row first: foreign keys cascade in dependency order; what has
    // no foreign key to it (the audit trail) goes next, table by table.
    for table in &tables {
        sqlx::query(&format!(
            "DELETE FROM ONLY {} WHERE {} = $1",
            table.name, table.key
        ))
        .bind(org.as_uuid())
        .execute(&mut *conn)
        .await?;
    }
    for table in &tables {
        if count(&mut *conn, table, org).await? != 0 {
            return Err(Error::Config(format!(
                "offboarding {org}: rows are left in {} after deleting; nothing was deleted",
                table.name
            )));
        }
    }
    let mut deleted_rows = previous.map(|t| t.deleted_rows).unwrap_or_default();
    for (table, share) in &found {
        *deleted_rows.entry(table.clone()).or_default() += share.rows;
    }
    sqlx::query("UPDATE app.offboarded_organisations SET deleted_rows = $2 WHERE id = $1")
        .bind(org.as_uuid())
        .bind(sqlx::types::Json(&deleted_rows))
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT set_config('procuhelp.org_id', coalesce($1, ''), true)")
        .bind(entered)
        .execute(&mut *conn)
        .await?;
    tombstone_on(&mut *conn, org).await?.ok_or(Error::NotFound)
}

/// Destroys `org`'s key-encryption keys in `vault` — its field-encryption KEK
/// (`tenant-<id>`), the KEK sealing its part of every backup (`tenant-<id>-backup`) and
/// the `also` ones (the audit trail's) — then records the time in its tombstone. Refused for an organisation
/// that was not offboarded (use [`crate::FieldCipher::shred`] to shred a live one).
pub async fn destroy_keys(
    owner: &PgPool,
    vault: &dyn SecretProvider,
    org: OrgId,
    also: &[String],
) -> Result<Tombstone> {
    if tombstone(owner, org).await?.is_none() {
        return Err(Error::Config(format!(
            "organisation {org} was not offboarded: its keys are not destroyed"
        )));
    }
    let own = [
        crate::field_cipher::kek_name(org),
        crate::field_cipher::backup_kek_name(org),
    ];
    for kek in own.iter().chain(also) {
        match vault.destroy_kek(kek).await {
            Ok(()) | Err(VaultError::NotFound(_)) => {}
            Err(e) => return Err(Error::Config(format!("destroying key {kek}: {e}"))),
        }
    }
    sqlx::query(
        "UPDATE app.offboarded_organisations SET keys_destroyed_at = coalesce(keys_destroyed_at, now())
         WHERE id = $1",
    )
    .bind(org.as_uuid())
    .execute(owner)
    .await?;
    tracing::info!(%org, "organisation offboarded: keys destroyed");
    tombstone(owner, org).await?.ok_or(Error::NotFound)
}

/// `org`'s tombstone, if it was offboarded.
pub async fn tombstone(pool: &PgPool, org: OrgId) -> Result<Option<Tombstone>> {
    let mut conn = pool.acquire().await?;
    tombstone_on(&mut conn, org).await
}

async fn tombstone_on(conn: &mut PgConnection, org: OrgId) -> Result<Option<Tombstone>> {
    type Row = (
        String,
        OffsetDateTime,
        OffsetDateTime,
        sqlx::types::Json<BTreeMap<String, i64>>,
        Option<OffsetDateTime>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT data_region, created_at, offboarded_at, deleted_rows, keys_destroyed_at
         FROM app.offboarded_organisations WHERE id = $1",
    )
    .bind(org.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(
        |(data_region, created_at, offboarded_at, deleted, keys_destroyed_at)| Tombstone {
            organisation: org.as_uuid(),
            data_region,
            created_at,
            offboarded_at,
            deleted_rows: deleted.0,
            keys_destroyed_at,
        },
    ))
}

/// Enters `org` for this transaction (row-level security binds the owner too): refused
/// as unknown for an organisation that does not exist or is of another region.
async fn enter(conn: &mut PgConnection, org: OrgId) -> Result<()> {
    match sqlx::query("SELECT app.enter_org($1)")
        .bind(org.as_uuid())
        .execute(&mut *conn)
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("PH404") => {
            Err(Error::UnknownOrg(org))
        }
        Err(e) => Err(e.into()),
    }
}

async fn count(conn: &mut PgConnection, table: &OrganisationTable, org: OrgId) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM ONLY {} WHERE {} = $1",
        table.name, table.key
    ))
    .bind(org.as_uuid())
    .fetch_one(&mut *conn)
    .await?)
}
