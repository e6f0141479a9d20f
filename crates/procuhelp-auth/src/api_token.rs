//! API tokens for service accounts: scoped to one organisation and one role, stored as a
//! SHA-256 hash, expiring (at most [`MAX_API_TOKEN_LIFETIME`]), revocable. Presented as
//! `Authorization: Bearer <org id>.<token>`.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
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
    /// The role it acts with.
    pub role: Role,
}

/// Issues a token named `name` with `role`, valid for `lifetime`. The credential is
/// shown once; only its hash is kept.
pub async fn issue(
    tx: &mut TenantTx,
    name: &str,
    role: Role,
    lifetime: Duration,
    created_by: UserId,
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
    let credential = Credential::generate(tx.org()).map_err(|_| AuthError::Internal)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.api_tokens (org_id, id, token_hash, name, role, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(credential.token.hash().as_slice())
    .bind(name)
    .bind(role.as_str())
    .bind(created_by.as_uuid())
    .bind(now)
    .bind(now + lifetime)
    .execute(tx.conn())
    .await?;
    Ok((id, credential))
}

/// The service account of a presented token, if it is live at `now`.
pub async fn authenticate(
    tx: &mut TenantTx,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<TokenPrincipal> {
    if credential.org != tx.org() {
        return Err(AuthError::Unauthenticated);
    }
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, role FROM app.api_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(credential.token.hash().as_slice())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let (id, role) = row.ok_or(AuthError::Unauthenticated)?;
    Ok(TokenPrincipal {
        id,
        role: role.parse().map_err(|_| AuthError::Internal)?,
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
