//! SCIM bearer tokens: one organisation each, 256-bit random, stored as SHA-256 only,
//! expiring (at most [`MAX_SCIM_TOKEN_LIFETIME`]), revocable. Issued by an org admin and
//! shown once; the identity provider presents it as `Authorization: Bearer <token>` on
//! `/scim/v2/{org}/...`. The token is looked up by its hash inside the organisation named
//! by the path (row-level security), so a token of another organisation finds nothing.

use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::{TenantDb, TenantTx};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::session::SessionToken;
use crate::{AuthError, AuthResult};

/// The longest life of a SCIM token.
pub const MAX_SCIM_TOKEN_LIFETIME: Duration = Duration::days(730);

/// A SCIM token as listed to admins (never the secret or its hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScimTokenInfo {
    /// Its id (the SCIM client's identity in the audit log).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Issued at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Ends at.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Revoked at, if revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Issues a token; the secret is returned once, only its hash is kept.
pub async fn issue(
    tx: &mut TenantTx,
    name: &str,
    lifetime: Duration,
    created_by: Option<UserId>,
    now: OffsetDateTime,
) -> AuthResult<(Uuid, SessionToken)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "name",
            problem: "must be 1 to 100 printable characters",
        });
    }
    if lifetime < Duration::minutes(1) || lifetime > MAX_SCIM_TOKEN_LIFETIME {
        return Err(AuthError::Invalid {
            field: "days",
            problem: "must be between 1 and 730 days",
        });
    }
    let token = SessionToken::generate().map_err(|_| AuthError::Internal)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.scim_tokens (org_id, id, token_hash, name, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(token.hash().as_slice())
    .bind(name)
    .bind(created_by.map(|u| u.as_uuid()))
    .bind(now)
    .bind(now + lifetime)
    .execute(tx.conn())
    .await?;
    Ok((id, token))
}

/// The id of the live token `presented` in the transaction's organisation, or
/// [`AuthError::Unauthenticated`]. The token is compared by hash lookup, never by value.
pub async fn authenticate(
    tx: &mut TenantTx,
    presented: &str,
    now: OffsetDateTime,
) -> AuthResult<Uuid> {
    let token = SessionToken::parse(presented).map_err(|_| AuthError::Unauthenticated)?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM app.scim_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(token.hash().as_slice())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    id.ok_or(AuthError::Unauthenticated)
}

/// [`authenticate`] in one autocommit statement, before any transaction: the id of the
/// live token `presented` in organisation `org`, or [`AuthError::Unauthenticated`] — also
/// for an unknown organisation and for another organisation's token (one answer for all).
/// A refused token costs one statement and opens no transaction, so a client guessing
/// tokens holds no pooled connection; begin the tenant transaction after it succeeds.
///
/// The statement enters `org` through `app.enter_org` and reads in a LATERAL subquery
/// fenced with `OFFSET 0`, so row-level security applies to the lookup.
pub async fn authenticate_once(
    db: &TenantDb,
    org: OrgId,
    presented: &str,
    now: OffsetDateTime,
) -> AuthResult<Uuid> {
    use sqlx::Row as _;
    let token = SessionToken::parse(presented).map_err(|_| AuthError::Unauthenticated)?;
    let query = sqlx::query(
        "SELECT q.id FROM app.enter_org($1) AS tenant(org) CROSS JOIN LATERAL (
             SELECT t.id FROM app.scim_tokens t
             WHERE t.org_id = tenant.org AND t.token_hash = $2 AND t.revoked_at IS NULL
               AND t.expires_at > $3
             OFFSET 0
         ) AS q",
    )
    .bind(org.as_uuid())
    .bind(token.hash().as_slice().to_vec())
    .bind(now);
    let row = crate::credential_row::verified_row(db, query).await?;
    Ok(row.try_get("id")?)
}

/// Revokes a token. True if it was live.
pub async fn revoke(tx: &mut TenantTx, id: Uuid, now: OffsetDateTime) -> AuthResult<bool> {
    let done = sqlx::query(
        "UPDATE app.scim_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The organisation's tokens, newest first.
pub async fn list(tx: &mut TenantTx) -> AuthResult<Vec<ScimTokenInfo>> {
    let rows: Vec<(
        Uuid,
        String,
        OffsetDateTime,
        OffsetDateTime,
        Option<OffsetDateTime>,
    )> = sqlx::query_as(
        "SELECT id, name, created_at, expires_at, revoked_at FROM app.scim_tokens
             ORDER BY created_at DESC LIMIT 100",
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, created_at, expires_at, revoked_at)| ScimTokenInfo {
                id,
                name,
                created_at,
                expires_at,
                revoked_at,
            },
        )
        .collect())
}
