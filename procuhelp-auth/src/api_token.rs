//! API tokens for service accounts: scoped to one organisation and one role, stored as a
//! SHA-256 hash, expiring (at most [`MAX_API_TOKEN_LIFETIME`]), revocable. Presented as
//! `Authorization: Bearer <org id>.<token>`.
//!
//! A token acts for the user who created it (issue #11, findings 5 and 6): segregation of
//! duties treats it as that user, it never acts with more than that user's base role *now*
//! (a demotion lowers it, disabling the user stops it), and a token minted with a
//! permission only an elevation gave ([`MintedUnder`]) lives no longer than that
//! elevation, whose revocation ends it too.

use procuhelp_core::UserId;
use procuhelp_tenancy::{TenantDb, TenantTx};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::session::Credential;
use crate::{AuthError, AuthResult, Role};

/// The longest life of an API token.
pub const MAX_API_TOKEN_LIFETIME: Duration = Duration::days(365);

/// A service account authenticated by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrincipal {
    /// The token's id (the service account's identity in the audit log).
    pub id: Uuid,
    /// The role it acts with: the most privileged role both the token's role and its creator's base role cover ([`Role::meet`])
    /// at this request.
    pub role: Role,
    /// The user it acts for (who created it): segregation of duties is theirs.
    pub created_by: UserId,
}

/// The elevation a token was minted under: the token ends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintedUnder {
    /// The elevation's id (its revocation ends the token).
    pub elevation: Uuid,
    /// When the elevation ends by itself (the token expires then at the latest).
    pub expires_at: OffsetDateTime,
}

/// Issues a token named `name` with `role`, valid for `lifetime` (cut to the end of the
/// elevation it was minted `under`, if any). The credential is shown once; only its hash
/// is kept. The caller checks that `role` does not outrank the creator's base role.
pub async fn issue(
    tx: &mut TenantTx,
    name: &str,
    role: Role,
    lifetime: Duration,
    created_by: UserId,
    under: Option<MintedUnder>,
    now: OffsetDateTime,
) -> AuthResult<(Uuid, Credential)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "name",
            problem: "must be 1 to 100 printable characters",
        });
    }
    if lifetime < Duration::minutes(1) || lifetime > MAX_API_TOKEN_LIFETIME {
        return Err(AuthError::Invalid {
            field: "lifetime",
            problem: "must be between 1 minute and 365 days",
        });
    }
    let mut expires_at = now + lifetime;
    if let Some(under) = under {
        if under.expires_at <= now {
            return Err(AuthError::Forbidden);
        }
        expires_at = expires_at.min(under.expires_at);
    }
    let credential = Credential::generate(tx.org()).map_err(|_| AuthError::Internal)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.api_tokens (org_id, id, token_hash, name, role, created_by, created_at,
                                     expires_at, elevation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(credential.token.hash().as_slice())
    .bind(name)
    .bind(role.as_str())
    .bind(created_by.as_uuid())
    .bind(now)
    .bind(expires_at)
    .bind(under.map(|u| u.elevation))
    .execute(tx.conn())
    .await?;
    Ok((id, credential))
}

/// The service account of a presented token, if it is live at `now`: not revoked, not
/// expired, its creator active, and the elevation it was minted under (if any) still in
/// force. It acts with what both its role and its creator's base role now cover ([`Role::meet`]).
pub async fn authenticate(
    tx: &mut TenantTx,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<TokenPrincipal> {
    if credential.org != tx.org() {
        return Err(AuthError::Unauthenticated);
    }
    // One statement: the creator and the elevation are read with the token, so a token
    // whose creator was disabled or whose elevation ended is refused like an unknown one.
    let row: Option<(Uuid, String, Uuid, String)> = sqlx::query_as(
        "SELECT t.id, t.role, t.created_by, u.role
         FROM app.api_tokens t
         JOIN app.users u ON u.org_id = t.org_id AND u.id = t.created_by
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2
           AND u.status = 'active'
           AND (t.elevation_id IS NULL OR EXISTS (
                SELECT 1 FROM app.elevations e
                WHERE e.org_id = t.org_id AND e.id = t.elevation_id
                  AND e.state = 'active' AND e.expires_at > $2))",
    )
    .bind(credential.token.hash().as_slice())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let (id, role, created_by, creator_role) = row.ok_or(AuthError::Unauthenticated)?;
    let parse = |r: String| r.parse::<Role>().map_err(|_| AuthError::Internal);
    Ok(TokenPrincipal {
        id,
        role: parse(role)?.meet(parse(creator_role)?),
        created_by: UserId::from_uuid(created_by).map_err(|_| AuthError::Internal)?,
    })
}

/// [`authenticate`] in one autocommit statement, before any tenant transaction: the
/// organisation is entered (`app.enter_org`) and the token read LATERAL to it, with the
/// same conditions. Nothing is written. An unknown organisation is
/// [`AuthError::Unauthenticated`] like an unknown token.
///
/// `OFFSET 0` keeps the planner from pulling the subquery up into a join whose inner side
/// could be scanned before `app.enter_org` has run (row-level security would then see no
/// tenant: no row, a valid token refused — fail closed, but wrong).
pub async fn authenticate_once(
    db: &TenantDb,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<TokenPrincipal> {
    use sqlx::Row as _;
    let query = sqlx::query(
        "SELECT q.* FROM app.enter_org($1) AS tenant(org) CROSS JOIN LATERAL (
             SELECT t.id, t.role, t.created_by, u.role AS creator_role
             FROM app.api_tokens t
             JOIN app.users u ON u.org_id = tenant.org AND u.id = t.created_by
             WHERE t.org_id = tenant.org AND t.token_hash = $2 AND t.revoked_at IS NULL
               AND t.expires_at > $3 AND u.status = 'active'
               AND (t.elevation_id IS NULL OR EXISTS (
                    SELECT 1 FROM app.elevations e
                    WHERE e.org_id = tenant.org AND e.id = t.elevation_id
                      AND e.state = 'active' AND e.expires_at > $3))
             OFFSET 0
         ) AS q",
    )
    .bind(credential.org.as_uuid())
    .bind(credential.token.hash().as_slice().to_vec())
    .bind(now);
    let row = crate::credential_row::verified_row(db, query).await?;
    let parse = |r: String| r.parse::<Role>().map_err(|_| AuthError::Internal);
    Ok(TokenPrincipal {
        id: row.try_get("id")?,
        role: parse(row.try_get("role")?)?.meet(parse(row.try_get("creator_role")?)?),
        created_by: UserId::from_uuid(row.try_get("created_by")?)
            .map_err(|_| AuthError::Internal)?,
    })
}

/// Revokes a token. True if it was live.
pub async fn revoke(tx: &mut TenantTx, id: Uuid, now: OffsetDateTime) -> AuthResult<bool> {
    let done = sqlx::query(
        "UPDATE app.api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An API token as listed: what it is for, never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRecord {
    /// The token's id (its service account's identity in the audit log).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its role (it never acts above its creator's base role).
    pub role: Role,
    /// Who created it (it acts for them).
    pub created_by: UserId,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it ends by itself.
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// The elevation it was minted under, if any (it ends with it).
    pub elevation: Option<Uuid>,
}

/// The most tokens [`list`] returns.
pub const LIST_LIMIT: i64 = 200;

/// The organisation's API tokens, newest first (at most [`LIST_LIMIT`]), revoked and
/// expired ones too. In the tenant transaction: row-level security scopes it to `tx`'s
/// organisation.
pub async fn list(tx: &mut TenantTx) -> AuthResult<Vec<TokenRecord>> {
    type Row = (
        Uuid,
        String,
        String,
        Uuid,
        OffsetDateTime,
        OffsetDateTime,
        Option<OffsetDateTime>,
        Option<Uuid>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, role, created_by, created_at, expires_at, revoked_at, elevation_id
         FROM app.api_tokens ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(LIST_LIMIT)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter()
        .map(
            |(id, name, role, created_by, created_at, expires_at, revoked_at, elevation)| {
                Ok(TokenRecord {
                    id,
                    name,
                    role: role.parse().map_err(|_| AuthError::Internal)?,
                    created_by: UserId::from_uuid(created_by).map_err(|_| AuthError::Internal)?,
                    created_at,
                    expires_at,
                    revoked_at,
                    elevation,
                })
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_acts_with_the_lower_role() {
        assert_eq!(Role::Admin.meet(Role::Approver), Role::Approver);
        assert_eq!(Role::ReadOnly.meet(Role::Admin), Role::ReadOnly);
        assert_eq!(Role::Requester.meet(Role::Requester), Role::Requester);
        // Neither covers the other: only what both hold.
        assert_eq!(Role::Auditor.meet(Role::Approver), Role::ReadOnly);
    }
}
