//! SSO state in the tenant database: connections, identity links, sign-ins in flight and
//! seen SAML assertion ids. Every function takes the caller's `TenantTx` (RLS-scoped).

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use sha2::{Digest, Sha256};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::{AuthError, AuthResult};

/// The protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenID Connect.
    Oidc,
    /// SAML 2.0.
    Saml,
}

impl Protocol {
    /// The stable string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Oidc => "oidc",
            Protocol::Saml => "saml",
        }
    }
}

/// A stored connection: its settings (JSON, no secrets).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    /// The protocol's settings document.
    pub settings: serde_json::Value,
    /// When the settings last changed (clients cached per connection use it as version).
    pub updated_at: OffsetDateTime,
}

/// The organisation's connection for `protocol`, if configured.
pub async fn connection(
    tx: &mut TenantTx,
    protocol: Protocol,
) -> AuthResult<Option<StoredConnection>> {
    let row =
        sqlx::query("SELECT settings, updated_at FROM app.sso_connections WHERE protocol = $1")
            .bind(protocol.as_str())
            .fetch_optional(tx.conn())
            .await?;
    row.map(|r| {
        Ok(StoredConnection {
            settings: r.try_get(0)?,
            updated_at: r.try_get(1)?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| AuthError::from(e))
}

/// Creates or replaces the organisation's connection for `protocol`.
pub async fn save_connection(
    tx: &mut TenantTx,
    protocol: Protocol,
    settings: &serde_json::Value,
    now: OffsetDateTime,
) -> AuthResult<()> {
    let org = tx.org().as_uuid();
    sqlx::query(
        "INSERT INTO app.sso_connections (org_id, protocol, settings, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id, protocol) DO UPDATE
         SET settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at",
    )
    .bind(org)
    .bind(protocol.as_str())
    .bind(settings)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Removes the organisation's connection for `protocol`; whether there was one.
pub async fn delete_connection(tx: &mut TenantTx, protocol: Protocol) -> AuthResult<bool> {
    let done = sqlx::query("DELETE FROM app.sso_connections WHERE protocol = $1")
        .bind(protocol.as_str())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The user a provider identity (`subject_key`) is linked to.
pub async fn linked_user(tx: &mut TenantTx, subject_key: &str) -> AuthResult<Option<UserId>> {
    let id: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT user_id FROM app.sso_identities WHERE subject_key = $1")
            .bind(subject_key)
            .fetch_optional(tx.conn())
            .await?;
    id.map(|id| UserId::from_uuid(id).map_err(|_| AuthError::Internal))
        .transpose()
}

/// Links a provider identity to a user (refused if it is already linked).
pub async fn link(
    tx: &mut TenantTx,
    subject_key: &str,
    user: UserId,
    now: OffsetDateTime,
) -> AuthResult<()> {
    let org = tx.org().as_uuid();
    let done = sqlx::query(
        "INSERT INTO app.sso_identities (org_id, subject_key, user_id, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(subject_key)
    .bind(user.as_uuid())
    .bind(now)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(AuthError::Conflict("this identity is already linked"));
    }
    Ok(())
}

/// What a sign-in in flight keeps until its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// OIDC PKCE verifier.
    pub pkce_verifier: Option<String>,
}

fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Stores a sign-in in flight under `lookup` (OIDC state or SAML request id), bound to
/// the browser secret, until `expires_at`. Expired entries are removed on the way.
pub async fn begin_login(
    tx: &mut TenantTx,
    protocol: Protocol,
    lookup: &str,
    browser_secret: &str,
    in_flight: &InFlight,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> AuthResult<()> {
    sqlx::query("DELETE FROM app.sso_login_requests WHERE expires_at <= $1")
        .bind(now)
        .execute(tx.conn())
        .await?;
    let org = tx.org().as_uuid();
    sqlx::query(
        "INSERT INTO app.sso_login_requests
             (org_id, lookup_hash, browser_hash, protocol, nonce, pkce_verifier, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org)
    .bind(sha256(lookup))
    .bind(sha256(browser_secret))
    .bind(protocol.as_str())
    .bind(in_flight.nonce.as_deref())
    .bind(in_flight.pkce_verifier.as_deref())
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Takes (deletes and returns) the sign-in in flight under `lookup` if it was started by
/// this browser, for this protocol, and has not expired. Single use: a second call finds
/// nothing.
pub async fn take_login(
    tx: &mut TenantTx,
    protocol: Protocol,
    lookup: &str,
    browser_secret: &str,
    now: OffsetDateTime,
) -> AuthResult<Option<InFlight>> {
    let row = sqlx::query(
        "DELETE FROM app.sso_login_requests
         WHERE lookup_hash = $1 AND browser_hash = $2 AND protocol = $3
         RETURNING nonce, pkce_verifier, expires_at",
    )
    .bind(sha256(lookup))
    .bind(sha256(browser_secret))
    .bind(protocol.as_str())
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: OffsetDateTime = row.try_get(2)?;
    if expires_at <= now {
        return Ok(None);
    }
    Ok(Some(InFlight {
        nonce: row.try_get(0)?,
        pkce_verifier: row.try_get(1)?,
    }))
}

/// Records a SAML assertion id until `expires_at`; `false` if it was already seen (a
/// replay). Expired ids are removed on the way.
pub async fn first_use_of_assertion(
    tx: &mut TenantTx,
    assertion_id: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> AuthResult<bool> {
    sqlx::query("DELETE FROM app.sso_assertion_replay WHERE expires_at <= $1")
        .bind(now)
        .execute(tx.conn())
        .await?;
    let org = tx.org().as_uuid();
    let done = sqlx::query(
        "INSERT INTO app.sso_assertion_replay (org_id, assertion_id, expires_at)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(assertion_id)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
