//! A session credential verified in **one autocommit statement**, before any tenant
//! transaction is opened: an HTTP adapter refuses a bad credential without a transaction,
//! and opens the request's transaction only for a verified principal.
//!
//! The statement enters the credential's organisation (`app.enter_org`) and, LATERAL to
//! it, reads the session with the same conditions as [`authenticate`](super::authenticate)
//! (token, not revoked, within its absolute and idle lifetime, its user active, the
//! elevation in force). It writes nothing: when the lookup has something to write — an
//! elevation of the user ran out (its expiry is to be marked and recorded before anything
//! else happens), or the session's last use is more than a minute old (the touch) — the
//! answer is [`Verified::NeedsTransaction`], and the caller takes the transactional path
//! ([`authenticate`](super::authenticate) in a tenant transaction), which decides the same.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantDb;
use sqlx::Row as _;
use time::{Duration, OffsetDateTime};

use super::{ActiveElevation, Credential, SessionPrincipal, SessionStage};
use crate::{AuthError, AuthResult};

/// What [`verify_once`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verified {
    /// A live session with nothing to write first.
    Session(SessionPrincipal),
    /// A live session whose lookup must write first (an elevation ran out, or the use is
    /// to be touched): verify it with [`authenticate`](super::authenticate) in a tenant
    /// transaction.
    NeedsTransaction,
}

// `OFFSET 0` keeps the planner from pulling the subquery up into a join whose inner side
// could be scanned before `app.enter_org` has run (row-level security would then see no
// tenant and the session would be refused: fail closed, but wrong).

/// How stale a session's last use may be before the lookup touches it (as
/// [`authenticate`](super::authenticate) does).
const TOUCH_AFTER: Duration = Duration::minutes(1);

const VERIFY: &str = "SELECT q.* FROM app.enter_org($1) AS tenant(org) CROSS JOIN LATERAL (
    SELECT s.id, s.user_id, s.stage, s.amr, s.last_seen_at, u.role, u.status,
           e.id AS e_id, e.role AS e_role, e.expires_at AS e_expires,
           EXISTS (SELECT 1 FROM app.elevations x
                   WHERE x.org_id = tenant.org AND x.user_id = s.user_id
                     AND x.state = 'active' AND x.expires_at <= $3) AS ran_out
    FROM app.sessions s
    JOIN app.users u ON u.org_id = tenant.org AND u.id = s.user_id
    LEFT JOIN LATERAL (
        SELECT id, role, expires_at FROM app.elevations
        WHERE org_id = tenant.org AND user_id = s.user_id AND state = 'active'
          AND starts_at <= $3 AND expires_at > $3
        ORDER BY app.role_rank(role), expires_at DESC
        LIMIT 1) e ON true
    WHERE s.org_id = tenant.org AND s.token_hash = $2 AND s.revoked_at IS NULL
      AND s.expires_at > $3 AND s.last_seen_at + make_interval(secs => s.idle_secs) > $3
    OFFSET 0
) AS q";

/// Verifies `credential` in one autocommit statement (no transaction). Unknown, revoked,
/// expired and idle sessions, disabled users, another organisation's token and an
/// unknown organisation are all [`AuthError::Unauthenticated`].
pub async fn verify_once(
    db: &TenantDb,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<Verified> {
    let query = sqlx::query(VERIFY)
        .bind(credential.org.as_uuid())
        .bind(credential.token.hash().as_slice().to_vec())
        .bind(now);
    let row = crate::credential_row::verified_row(db, query).await?;
    let status: String = row.try_get("status")?;
    if status != "active" {
        return Err(AuthError::Unauthenticated);
    }
    let ran_out: bool = row.try_get("ran_out")?;
    let last_seen: OffsetDateTime = row.try_get("last_seen_at")?;
    if ran_out || last_seen < now - TOUCH_AFTER {
        return Ok(Verified::NeedsTransaction);
    }
    let elevation = ActiveElevation::from_columns(
        row.try_get("e_id")?,
        row.try_get("e_role")?,
        row.try_get("e_expires")?,
    )?;
    let role: String = row.try_get("role")?;
    let stage: String = row.try_get("stage")?;
    Ok(Verified::Session(SessionPrincipal {
        session: row.try_get("id")?,
        user: UserId::from_uuid(row.try_get("user_id")?).map_err(|_| AuthError::Internal)?,
        stage: SessionStage::parse(&stage)?,
        amr: row.try_get("amr")?,
        base_role: role.parse().map_err(|_| AuthError::Internal)?,
        elevation,
        expired_elevations: Vec::new(),
    }))
}
