//! Operators' access to one organisation's data (break-glass, support): a named operator
//! ([`crate::operator`]) is granted access with a reason, for a bounded time, and the
//! grant is written in the organisation's own transaction — the caller records it in that
//! organisation's audit trail in the same transaction (`operator.access_granted`), where
//! its admins read it. Nothing is open-ended: a grant lasts at most [`MAX_GRANT`], ends
//! at its time whatever happens, and can be revoked earlier. The clock is the caller's
//! (`now`), so "ends on time" is decided by one comparison a test can drive.
//!
//! An organisation whose policy says `operator_access_needs_approval` gets a **pending**
//! grant instead ([`GrantState::Pending`]): not in force until one of its admins approves
//! it ([`approve`]), and then for the duration asked, from the approval. A pending grant
//! not approved within [`APPROVAL_WINDOW`] lapses; an admin may also decline it by
//! revoking it ([`revoke`]). The database holds the rules as well: a trigger allows a
//! grant to change only by one approval and one revocation.
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

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::operator::OperatorName;

/// How long a grant waits for an admin's approval before it lapses.
pub const APPROVAL_WINDOW: Duration = Duration::hours(24);

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
    /// Whether it is in force, waiting, or over (at the time it was read).
    pub state: GrantState,
    /// The organisation's admin who approved it, when it needed approval.
    pub approved_by: Option<UserId>,
}

/// Where a grant stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Waiting for an admin's approval (its times are those asked for; an approval moves
    /// them to start at the approval).
    Pending,
    /// In force.
    Active,
    /// Ran to its end.
    Ended,
    /// Ended early, or declined while pending.
    Revoked,
    /// Not approved within [`APPROVAL_WINDOW`].
    Lapsed,
}

/// The columns a [`Grant`] is read from, in this order.
const GRANT_COLUMNS: &str =
    "id, operator, reason, starts_at, ends_at, revoked_at, approval_needed, approved_by";

type GrantRow = (
    Uuid,
    String,
    String,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
    bool,
    Option<Uuid>,
);

fn from_row(row: GrantRow, now: OffsetDateTime) -> Result<Grant, AccessError> {
    let (id, operator, reason, starts_at, ends_at, revoked_at, approval_needed, approved_by) = row;
    let approved_by = approved_by
        .map(UserId::from_uuid)
        .transpose()
        .map_err(|_| AccessError::NotFound)?;
    let pending = approval_needed && approved_by.is_none();
    let state = if revoked_at.is_some() {
        GrantState::Revoked
    } else if pending && now >= starts_at + APPROVAL_WINDOW {
        GrantState::Lapsed
    } else if pending {
        GrantState::Pending
    } else if now >= ends_at {
        GrantState::Ended
    } else {
        GrantState::Active
    };
    Ok(Grant {
        id,
        operator: OperatorName::parse(&operator).map_err(|_| AccessError::NotFound)?,
        reason,
        starts_at,
        ends_at,
        state,
        approved_by,
    })
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
    /// Approving a grant that is not waiting for approval (never needed one, already
    /// approved, declined, or lapsed).
    #[error("the grant is not waiting for approval")]
    NotPending,
    /// The database.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Grants `operator` access to the transaction's organisation from `now` for `duration`,
/// with `reason` — or, when the organisation's policy requires its admin's approval,
/// records the request as [`GrantState::Pending`]. Record it in the organisation's trail
/// in the same transaction.
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
    // Read in the transaction that writes the grant: a policy changed concurrently is
    // either seen or serialised after it (the row lock).
    let needs_approval: bool = sqlx::query_scalar(
        "SELECT operator_access_needs_approval FROM app.organisations
         WHERE id = app.current_org() FOR SHARE",
    )
    .fetch_one(tx.conn())
    .await?;
    let grant = Grant {
        id: Uuid::now_v7(),
        operator: operator.clone(),
        reason: reason.to_owned(),
        starts_at: now,
        ends_at: now + duration,
        state: if needs_approval {
            GrantState::Pending
        } else {
            GrantState::Active
        },
        approved_by: None,
    };
    let org = tx.org();
    sqlx::query(
        "INSERT INTO app.operator_grants
             (org_id, id, operator, reason, starts_at, ends_at, approval_needed)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org.as_uuid())
    .bind(grant.id)
    .bind(grant.operator.as_str())
    .bind(&grant.reason)
    .bind(grant.starts_at)
    .bind(grant.ends_at)
    .bind(needs_approval)
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
    let row: Option<GrantRow> = sqlx::query_as(&format!(
        "SELECT {GRANT_COLUMNS} FROM app.operator_grants
         WHERE org_id = $1 AND operator = $2 AND revoked_at IS NULL
           AND (NOT approval_needed OR approved_at IS NOT NULL)
           AND starts_at <= $3 AND ends_at > $3
         ORDER BY ends_at DESC LIMIT 1"
    ))
    .bind(org.as_uuid())
    .bind(operator.as_str())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| from_row(r, now)).transpose()
}

/// Approves pending grant `id` by the organisation's admin `by` at `now`: it is in force
/// from `now` for the duration asked. One statement, so of two concurrent approvals (or an
/// approval and a decline) exactly one wins. Record it in the trail in the same
/// transaction; who may approve (an admin, in person) is the caller's check.
pub async fn approve(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
    now: OffsetDateTime,
) -> Result<Grant, AccessError> {
    let org = tx.org();
    let row: Option<GrantRow> = sqlx::query_as(&format!(
        "UPDATE app.operator_grants
            SET approved_by = $3, approved_at = $4,
                starts_at = $4, ends_at = $4 + (ends_at - starts_at)
          WHERE org_id = $1 AND id = $2 AND approval_needed AND approved_at IS NULL
            AND revoked_at IS NULL AND starts_at > $4 - $5::interval
          RETURNING {GRANT_COLUMNS}"
    ))
    .bind(org.as_uuid())
    .bind(id)
    .bind(by.as_uuid())
    .bind(now)
    .bind(APPROVAL_WINDOW)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(row) => from_row(row, now),
        None if exists(tx, id).await? => Err(AccessError::NotPending),
        None => Err(AccessError::NotFound),
    }
}

/// The organisation's grants, newest first: every one pending or in force, and those
/// that ended within the last 90 days (at most `limit`).
pub async fn list(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Vec<Grant>, AccessError> {
    let org = tx.org();
    let rows: Vec<GrantRow> = sqlx::query_as(&format!(
        "SELECT {GRANT_COLUMNS} FROM app.operator_grants
          WHERE org_id = $1 AND (ends_at > $2 - interval '90 days' OR starts_at > $2 - $3::interval)
          ORDER BY starts_at DESC, id DESC LIMIT $4"
    ))
    .bind(org.as_uuid())
    .bind(now)
    .bind(APPROVAL_WINDOW)
    .bind(i64::from(limit.min(1000)))
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(|r| from_row(r, now)).collect()
}

async fn exists(tx: &mut TenantTx, id: Uuid) -> Result<bool, AccessError> {
    let org = tx.org();
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM app.operator_grants WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    Ok(found.is_some())
}

/// Ends grant `id` at `now` — or declines it while it waits for approval — in one
/// statement (two concurrent revocations: one ends it, the other finds it over). Returns
/// whose grant it was if it was in force or pending, `None` if it was already over,
/// lapsed or revoked.
pub async fn revoke(
    tx: &mut TenantTx,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<OperatorName>, AccessError> {
    let org = tx.org();
    let ended: Option<String> = sqlx::query_scalar(
        "UPDATE app.operator_grants SET revoked_at = $3
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL
           AND CASE WHEN approval_needed AND approved_at IS NULL
                    THEN starts_at > $3 - $4::interval
                    ELSE ends_at > $3 END
         RETURNING operator",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(now)
    .bind(APPROVAL_WINDOW)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(operator) = ended {
        return OperatorName::parse(&operator)
            .map(Some)
            .map_err(|_| AccessError::NotFound);
    }
    if exists(tx, id).await? {
        Ok(None)
    } else {
        Err(AccessError::NotFound)
    }
}
