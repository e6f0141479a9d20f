//! Time-bound elevation: an admin grants a user a higher role for a stated reason and at
//! most [`MAX_ELEVATION`]; where the organisation requires it, a second admin approves
//! before it takes effect. It is checked on every request (the session lookup reads it),
//! ends by itself, and can be revoked.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{AuthError, AuthResult, Role, directory};

/// The longest elevation.
pub const MAX_ELEVATION: Duration = Duration::hours(8);

/// Where an elevation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElevationState {
    /// Waiting for a second admin.
    Pending,
    /// In force until `expires_at`.
    Active,
    /// Ended early by an admin.
    Revoked,
    /// Ran out.
    Expired,
}

/// An elevation request.
#[derive(Debug, Clone)]
pub struct ElevationRequest {
    /// Who is elevated.
    pub user: UserId,
    /// The role granted (must hold strictly more than the user's base role).
    pub role: Role,
    /// Why (3 to 500 characters): recorded and shown.
    pub reason: String,
    /// How long, once in force (1 minute to [`MAX_ELEVATION`]).
    pub duration: Duration,
}

/// An elevation as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Elevation {
    /// Id.
    pub id: Uuid,
    /// Who is elevated.
    pub user: UserId,
    /// The role granted.
    pub role: Role,
    /// Why.
    pub reason: String,
    /// State.
    pub state: ElevationState,
    /// Who asked.
    pub requested_by: UserId,
    /// Who approved (second admin), if any.
    pub approved_by: Option<UserId>,
    /// When it ends (once in force).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Records an elevation requested by `by`. It is in force at once unless
/// `needs_second_admin`, in which case it waits for [`approve`].
pub async fn request(
    tx: &mut TenantTx,
    by: UserId,
    req: ElevationRequest,
    needs_second_admin: bool,
    now: OffsetDateTime,
) -> AuthResult<Elevation> {
    let invalid = |field, problem| AuthError::Invalid { field, problem };
    let reason = req.reason.trim().to_owned();
    if reason.chars().count() < 3 || reason.chars().count() > 500 {
        return Err(invalid("reason", "must be 3 to 500 characters"));
    }
    if req.duration < Duration::minutes(1) || req.duration > MAX_ELEVATION {
        return Err(invalid("duration", "must be between 1 minute and 8 hours"));
    }
    if req.user == by {
        return Err(AuthError::SelfApproval);
    }
    let target = directory::get(tx, req.user).await?;
    // Strictly more than the user holds (so the total order agrees: see Role::outranks).
    if req.role == target.role || !req.role.covers(target.role) {
        return Err(invalid("role", "must be higher than the user's role"));
    }
    let id = Uuid::now_v7();
    let (state, starts, expires) = if needs_second_admin {
        ("pending", None, None)
    } else {
        ("active", Some(now), Some(now + req.duration))
    };
    sqlx::query(
        "INSERT INTO app.elevations (org_id, id, user_id, role, reason, state, requested_by,
                                     duration_secs, created_at, starts_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(req.user.as_uuid())
    .bind(req.role.as_str())
    .bind(&reason)
    .bind(state)
    .bind(by.as_uuid())
    .bind(i32::try_from(req.duration.whole_seconds()).unwrap_or(i32::MAX))
    .bind(now)
    .bind(starts)
    .bind(expires)
    .execute(tx.conn())
    .await?;
    get(tx, id).await
}

/// A second admin approves a pending elevation; it is in force from `now`. Neither the
/// admin who asked nor the elevated user may approve it.
pub async fn approve(
    tx: &mut TenantTx,
    id: Uuid,
    approver: UserId,
    now: OffsetDateTime,
) -> AuthResult<Elevation> {
    let current = get(tx, id).await?;
    if current.requested_by == approver || current.user == approver {
        return Err(AuthError::SelfApproval);
    }
    if current.state != ElevationState::Pending {
        return Err(AuthError::Conflict("elevation is not pending"));
    }
    // Still strictly more than the person holds now (a role change ends pending
    // elevations too; this also holds for one made before that rule).
    let target = directory::get(tx, current.user).await?;
    if current.role == target.role || !current.role.covers(target.role) {
        return Err(AuthError::Conflict(
            "the person's role changed since the elevation was asked: ask again",
        ));
    }
    approve_once(
        tx,
        "UPDATE app.elevations SET state = 'active', approved_by = $2, starts_at = $3,
                expires_at = $3 + make_interval(secs => duration_secs)
         WHERE id = $1 AND state = 'pending'",
        id,
        approver,
        now,
        "elevation is not pending",
    )
    .await?;
    get(tx, id).await
}

/// Runs a second admin's conditional approval `sql` (`$1` the record's id, `$2` the
/// approver, `$3` now): exactly one row must change, so of two concurrent approvals only
/// one applies; otherwise it is [`AuthError::Conflict`] with `not_pending`. Shared with
/// [`crate::policy_change`], the other two-admin record.
pub(crate) async fn approve_once(
    tx: &mut TenantTx,
    sql: &'static str,
    id: Uuid,
    approver: UserId,
    now: OffsetDateTime,
    not_pending: &'static str,
) -> AuthResult<()> {
    let done = sqlx::query(sql)
        .bind(id)
        .bind(approver.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() != 1 {
        return Err(AuthError::Conflict(not_pending));
    }
    Ok(())
}

/// A user id read back from the database: a malformed one is [`AuthError::Internal`].
pub(crate) fn stored_user(id: Uuid) -> AuthResult<UserId> {
    UserId::from_uuid(id).map_err(|_| AuthError::Internal)
}

/// Ends a pending or active elevation now.
pub async fn revoke(tx: &mut TenantTx, id: Uuid, now: OffsetDateTime) -> AuthResult<Elevation> {
    let done = sqlx::query(
        "UPDATE app.elevations SET state = 'revoked', ended_at = $2
         WHERE id = $1 AND state IN ('pending', 'active')",
    )
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        get(tx, id).await?; // NotFound if it does not exist
        return Err(AuthError::Conflict("elevation already ended"));
    }
    get(tx, id).await
}

type ElevationRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    Uuid,
    Option<Uuid>,
    Option<OffsetDateTime>,
);

const COLUMNS: &str = "id, user_id, role, reason, state, requested_by, approved_by, expires_at";

fn elevation(row: ElevationRow) -> AuthResult<Elevation> {
    let (id, user, role, reason, state, requested_by, approved_by, expires_at) = row;
    Ok(Elevation {
        id,
        user: stored_user(user)?,
        role: role.parse().map_err(|_| AuthError::Internal)?,
        reason,
        state: match state.as_str() {
            "pending" => ElevationState::Pending,
            "active" => ElevationState::Active,
            "revoked" => ElevationState::Revoked,
            "expired" => ElevationState::Expired,
            _ => return Err(AuthError::Internal),
        },
        requested_by: stored_user(requested_by)?,
        approved_by: approved_by.map(stored_user).transpose()?,
        expires_at,
    })
}

/// One elevation of the organisation.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> AuthResult<Elevation> {
    let row: Option<ElevationRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.elevations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    elevation(row.ok_or(AuthError::NotFound)?)
}

/// The organisation's elevations, newest first (expiring those that ran out, whose ids
/// are returned second so the caller records their expiry).
pub async fn list(
    tx: &mut TenantTx,
    now: OffsetDateTime,
) -> AuthResult<(Vec<Elevation>, Vec<Uuid>)> {
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE app.elevations SET state = 'expired', ended_at = $1
         WHERE state = 'active' AND expires_at <= $1 RETURNING id",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    let rows: Vec<ElevationRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.elevations ORDER BY created_at DESC LIMIT 200"
    ))
    .fetch_all(tx.conn())
    .await?;
    let list = rows
        .into_iter()
        .map(elevation)
        .collect::<AuthResult<Vec<_>>>()?;
    Ok((list, expired))
}
