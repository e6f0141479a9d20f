//! The session store: `app.sessions` rows, looked up by the hash of the presented token.

use std::net::IpAddr;

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Credential, SessionPolicy};
use crate::{AuthError, AuthResult, Role};

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStage {
    /// Password accepted; only the second-factor step is allowed.
    SecondFactor,
    /// The organisation requires MFA and the user has none: only enrolment is allowed.
    Enrolment,
    /// Fully signed in.
    Full,
}

impl SessionStage {
    fn as_str(self) -> &'static str {
        match self {
            SessionStage::SecondFactor => "mfa",
            SessionStage::Enrolment => "enrol",
            SessionStage::Full => "full",
        }
    }

    pub(super) fn parse(s: &str) -> AuthResult<Self> {
        match s {
            "mfa" => Ok(SessionStage::SecondFactor),
            "enrol" => Ok(SessionStage::Enrolment),
            "full" => Ok(SessionStage::Full),
            _ => Err(AuthError::Internal),
        }
    }
}

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// Whose session.
    pub user: UserId,
    /// What it may do.
    pub stage: SessionStage,
    /// How the user authenticated (RFC 8176 `amr` values).
    pub amr: &'a [&'a str],
    /// Idle and absolute lifetimes.
    pub policy: SessionPolicy,
    /// Client address, if known.
    pub source: Option<IpAddr>,
    /// Client user agent, if known (truncated to 256 characters).
    pub user_agent: Option<&'a str>,
}

/// Opens a session and returns its credential (to be handed to the client once).
pub async fn open(
    tx: &mut TenantTx,
    new: NewSession<'_>,
    now: OffsetDateTime,
) -> AuthResult<(Uuid, Credential)> {
    let credential = Credential::generate(tx.org()).map_err(|_| AuthError::Internal)?;
    let id = Uuid::now_v7();
    let idle_secs = i32::try_from(new.policy.idle.whole_seconds()).unwrap_or(i32::MAX);
    let agent: Option<String> = new.user_agent.map(|a| a.chars().take(256).collect());
    let amr: Vec<String> = new.amr.iter().map(|s| (*s).to_owned()).collect();
    sqlx::query(
        "INSERT INTO app.sessions (org_id, id, token_hash, user_id, stage, amr, created_at,
                                   last_seen_at, idle_secs, expires_at, source, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10::inet, $11)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(credential.token.hash().as_slice())
    .bind(new.user.as_uuid())
    .bind(new.stage.as_str())
    .bind(amr)
    .bind(now)
    .bind(idle_secs.max(1))
    .bind(now + new.policy.absolute)
    .bind(new.source.map(|ip| ip.to_string()))
    .bind(agent)
    .execute(tx.conn())
    .await?;
    Ok((id, credential))
}

/// An elevation in force for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveElevation {
    /// The elevation's id.
    pub id: Uuid,
    /// The role it grants.
    pub role: Role,
    /// When it ends by itself.
    pub expires_at: OffsetDateTime,
}

impl ActiveElevation {
    /// The elevation of a session row's left-joined elevation columns (id, role, expiry):
    /// none unless all three are there; a role that does not parse is
    /// [`AuthError::Internal`].
    pub(crate) fn from_columns(
        id: Option<Uuid>,
        role: Option<String>,
        expires_at: Option<OffsetDateTime>,
    ) -> AuthResult<Option<Self>> {
        Ok(match (id, role, expires_at) {
            (Some(id), Some(role), Some(expires_at)) => Some(ActiveElevation {
                id,
                role: role.parse().map_err(|_| AuthError::Internal)?,
                expires_at,
            }),
            _ => None,
        })
    }
}

/// The authenticated user of a request, from a valid session.
#[derive(Debug, Clone)]
pub struct SessionPrincipal {
    /// The session's id (not its token).
    pub session: Uuid,
    /// The user.
    pub user: UserId,
    /// What the session may do.
    pub stage: SessionStage,
    /// How the user authenticated.
    pub amr: Vec<String>,
    /// The user's base role.
    pub base_role: Role,
    /// The highest elevation in force now, if any.
    pub elevation: Option<ActiveElevation>,
    /// Elevations of this user that ran out since the last request (state set to
    /// `expired` by this lookup): the caller records their expiry.
    pub expired_elevations: Vec<Uuid>,
}

impl SessionPrincipal {
    /// The user's side of [`Principal::require`](crate::Principal::require): fully
    /// signed in, and the role in force holds `permission` (saying whether an elevation
    /// granted it).
    pub fn require(&self, permission: crate::Permission) -> crate::AuthResult<crate::Grant> {
        if self.stage != SessionStage::Full {
            return Err(crate::AuthError::SecondFactorRequired);
        }
        if !self.effective_role().allows(permission) {
            return Err(crate::AuthError::Forbidden);
        }
        let from_elevation = !self.base_role.allows(permission);
        if from_elevation && !permission.elevation_may_grant() {
            return Err(crate::AuthError::Forbidden);
        }
        let via_elevation = self.elevation.filter(|_| from_elevation).map(|e| e.id);
        Ok(crate::Grant { via_elevation })
    }

    /// The role in force: the base role, raised by an elevation in force.
    pub fn effective_role(&self) -> Role {
        match self.elevation {
            Some(e) if e.role.outranks(self.base_role) => e.role,
            _ => self.base_role,
        }
    }
}

type PrincipalRow = (
    Uuid,
    Uuid,
    String,
    Vec<String>,
    String,
    String,
    Option<Uuid>,
    Option<String>,
    Option<OffsetDateTime>,
    Vec<Uuid>,
);

/// Looks up the presented credential in the transaction's organisation, refusing
/// unknown, revoked, idle-expired and absolutely-expired sessions and disabled users; on
/// success records the use (`last_seen_at = now`), and marks elevations that ran out.
/// One round trip.
///
/// The use is written at most once a minute: a request that writes nothing commits
/// without a WAL flush (a third of the lookup's cost when measured), at the price of an
/// idle timeout that may end up to a minute early — never late.
pub async fn authenticate(
    tx: &mut TenantTx,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<SessionPrincipal> {
    if credential.org != tx.org() {
        return Err(AuthError::Unauthenticated);
    }
    // Expiry is decided with the caller's clock (`$2`), not the database's, so tests can
    // inject time and every check of one request sees the same instant.
    let row: Option<PrincipalRow> = sqlx::query_as(
        "WITH s AS (
             SELECT id, user_id, stage, amr, last_seen_at FROM app.sessions
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2
               AND last_seen_at + make_interval(secs => idle_secs) > $2),
         touch AS (
             UPDATE app.sessions t SET last_seen_at = $2 FROM s
             WHERE t.id = s.id AND s.last_seen_at < $2 - interval '1 minute'),
         expired AS (
             UPDATE app.elevations SET state = 'expired', ended_at = $2
             WHERE state = 'active' AND expires_at <= $2 AND user_id IN (SELECT user_id FROM s)
             RETURNING id)
         SELECT s.id, s.user_id, s.stage, s.amr, u.role, u.status, e.id, e.role, e.expires_at,
                ARRAY(SELECT id FROM expired)
         FROM s JOIN app.users u ON u.id = s.user_id
         LEFT JOIN LATERAL (
             SELECT id, role, expires_at FROM app.elevations
             WHERE user_id = s.user_id AND state = 'active' AND starts_at <= $2 AND expires_at > $2
             ORDER BY app.role_rank(role), expires_at DESC
             LIMIT 1) e ON true",
    )
    .bind(credential.token.hash().as_slice())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let Some((session, user, stage, amr, role, status, e_id, e_role, e_expires, expired)) = row
    else {
        return Err(AuthError::Unauthenticated);
    };
    if status != "active" {
        return Err(AuthError::Unauthenticated);
    }
    let elevation = ActiveElevation::from_columns(e_id, e_role, e_expires)?;
    Ok(SessionPrincipal {
        session,
        user: UserId::from_uuid(user).map_err(|_| AuthError::Internal)?,
        stage: SessionStage::parse(&stage)?,
        amr,
        base_role: role.parse().map_err(|_| AuthError::Internal)?,
        elevation,
        expired_elevations: expired,
    })
}

/// Revokes one session of `user` (their own, or any when `user` is `None`, for admins).
/// Returns whether a live session was revoked.
pub async fn revoke(
    tx: &mut TenantTx,
    session: Uuid,
    user: Option<UserId>,
    now: OffsetDateTime,
) -> AuthResult<bool> {
    let done = sqlx::query(
        "UPDATE app.sessions SET revoked_at = $3
         WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL",
    )
    .bind(session)
    .bind(user.map(|u| u.as_uuid()))
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live session of `user` (password change, role change, disabling,
/// deprovisioning), except `keep` if given. Returns how many were revoked.
pub async fn revoke_all(
    tx: &mut TenantTx,
    user: UserId,
    keep: Option<Uuid>,
    now: OffsetDateTime,
) -> AuthResult<u64> {
    let done = sqlx::query(
        "UPDATE app.sessions SET revoked_at = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user.as_uuid())
    .bind(keep)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A live session, as shown to its user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    /// Session id.
    pub id: Uuid,
    /// Opened at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last used at.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// Ends at the latest.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Client user agent, if recorded.
    pub user_agent: Option<String>,
}

/// The live sessions of `user`, newest first.
pub async fn list(
    tx: &mut TenantTx,
    user: UserId,
    now: OffsetDateTime,
) -> AuthResult<Vec<SessionSummary>> {
    let rows: Vec<(
        Uuid,
        OffsetDateTime,
        OffsetDateTime,
        OffsetDateTime,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT id, created_at, last_seen_at, expires_at, user_agent FROM app.sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
               AND last_seen_at + make_interval(secs => idle_secs) > $2
             ORDER BY created_at DESC LIMIT 100",
    )
    .bind(user.as_uuid())
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, created_at, last_seen_at, expires_at, user_agent)| SessionSummary {
                id,
                created_at,
                last_seen_at,
                expires_at,
                user_agent,
            },
        )
        .collect())
}
