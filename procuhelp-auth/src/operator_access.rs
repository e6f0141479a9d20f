//! Operators' access to one organisation's data (break-glass, support): a named operator
//! ([`crate::operator`]) is granted access with a reason, for a bounded time, and the
//! grant is written in the organisation's own transaction — the caller records it in that
//! organisation's audit trail in the same transaction (`operator.access_granted`), where
//! its admins read it. Nothing is open-ended: a grant lasts at most [`MAX_GRANT`], ends
//! at its time whatever happens, and can be revoked earlier. The clock is the caller's
//! (`now`), so "ends on time" is decided by one comparison a test can drive.
//!
//! ```no_run
//! # async fn demo(mut tx: procuhelp_tenancy::TenantTx, who: procuhelp_auth::operator::OperatorName) -> Result<(), procuhelp_auth::operator_access::AccessError> {
//! use procuhelp_auth::operator_access::{grant, in_force};
//! let now = time::OffsetDateTime::now_utc();
//! let g = grant(&mut tx, &who, "INC-4711: supplier import stuck", time::Duration::hours(1), now).await?;
//! assert!(in_force(&mut tx, &who, now).await?.is_some());
//! assert!(in_force(&mut tx, &who, g.ends_at).await?.is_none()); // over at its end
//! # Ok(()) }
//! ```

use procuhelp_tenancy::TenantTx;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::operator::OperatorName;

/// The longest grant: break-glass is for an incident, not a standing door.
pub const MAX_GRANT: Duration = Duration::hours(8);
/// Shortest and longest reason, in characters (trimmed).
pub const REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=500;

/// A grant in force or past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub id: Uuid,
    /// Who may use it.
    pub operator: OperatorName,
    /// Why (as given).
    pub reason: String,
    /// From.
    pub starts_at: OffsetDateTime,
    /// Until (exclusive).
    pub ends_at: OffsetDateTime,
}

/// Why a grant was refused, or the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// No reason, or not 10–500 characters.
    #[error("a grant needs a reason of 10 to 500 characters")]
    Reason,
    /// Not between a second and [`MAX_GRANT`].
    #[error("a grant lasts from 1 second to 8 hours")]
    Duration,
    /// No grant with that id in this organisation.
    #[error("no such grant")]
    NotFound,
    /// The database.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Grants `operator` access to the transaction's organisation from `now` for `duration`,
/// with `reason`. Record it in the organisation's trail in the same transaction.
pub async fn grant(
    tx: &mut TenantTx,
    operator: &OperatorName,
    reason: &str,
    duration: Duration,
    now: OffsetDateTime,
) -> Result<Grant, AccessError> {
    let reason = reason.trim();
    if !REASON_CHARS.contains(&reason.chars().count()) || reason.chars().any(char::is_control) {
        return Err(AccessError::Reason);
    }
    if duration < Duration::SECOND || duration > MAX_GRANT {
        return Err(AccessError::Duration);
    }
    let grant = Grant {
        id: Uuid::now_v7(),
        operator: operator.clone(),
        reason: reason.to_owned(),
        starts_at: now,
        ends_at: now + duration,
    };
    let org = tx.org();
    sqlx::query(
        "INSERT INTO app.operator_grants (org_id, id, operator, reason, starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(org.as_uuid())
    .bind(grant.id)
    .bind(grant.operator.as_str())
    .bind(&grant.reason)
    .bind(grant.starts_at)
    .bind(grant.ends_at)
    .execute(tx.conn())
    .await?;
    Ok(grant)
}

/// The grant of `operator` in force at `now` in the transaction's organisation (the one
/// ending last), if any.
pub async fn in_force(
    tx: &mut TenantTx,
    operator: &OperatorName,
    now: OffsetDateTime,
) -> Result<Option<Grant>, AccessError> {
    let org = tx.org();
    let row: Option<(Uuid, String, OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
        "SELECT id, reason, starts_at, ends_at FROM app.operator_grants
         WHERE org_id = $1 AND operator = $2 AND revoked_at IS NULL
           AND starts_at <= $3 AND ends_at > $3
         ORDER BY ends_at DESC LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(operator.as_str())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|(id, reason, starts_at, ends_at)| Grant {
        id,
        operator: operator.clone(),
        reason,
        starts_at,
        ends_at,
    }))
}

/// Ends grant `id` at `now`, in one statement (two concurrent revocations: one ends it,
/// the other finds it over). Returns whose grant it was if it was in force, `None` if it
/// was already over or revoked.
pub async fn revoke(
    tx: &mut TenantTx,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<OperatorName>, AccessError> {
    let org = tx.org();
    let ended: Option<String> = sqlx::query_scalar(
        "UPDATE app.operator_grants SET revoked_at = $3
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL AND ends_at > $3
         RETURNING operator",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(operator) = ended {
        return OperatorName::parse(&operator)
            .map(Some)
            .map_err(|_| AccessError::NotFound);
    }
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM app.operator_grants WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    match exists {
        Some(_) => Ok(None),
        None => Err(AccessError::NotFound),
    }
}
