//! Invitations: a user created without a password sets their first one by presenting a
//! single-use token (`<org id>.<token>`, 256 bits, stored only as its SHA-256) before it
//! expires. [`invite`] issues one in the inviter's transaction;
//! [`Authenticator::accept_invitation`](crate::Authenticator::accept_invitation) redeems
//! it. An unknown, used, expired or malformed token, another organisation's, and one of
//! an erased or disabled user are refused alike.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::{Duration, OffsetDateTime};

use crate::session::Credential;
use crate::{AuthError, AuthResult};

/// How long an invitation is valid unless the inviter says otherwise.
pub const DEFAULT_LIFETIME: Duration = Duration::days(7);

/// Issues an invitation for `user` (of `tx`'s organisation), valid for `lifetime`, by
/// `created_by` (`None`: an operator's command). The returned credential is the only copy
/// of the token: hand it to the person once.
///
/// ```no_run
/// # async fn f(tx: &mut procuhelp_tenancy::TenantTx, user: procuhelp_core::UserId)
/// #     -> procuhelp_auth::AuthResult<()> {
/// use procuhelp_auth::invitation::{DEFAULT_LIFETIME, invite};
/// let now = time::OffsetDateTime::now_utc();
/// let token = invite(tx, user, None, now, DEFAULT_LIFETIME).await?;
/// println!("send this link once: https://example.test/invitations#{}", token.expose());
/// # Ok(()) }
/// ```
pub async fn invite(
    tx: &mut TenantTx,
    user: UserId,
    created_by: Option<UserId>,
    now: OffsetDateTime,
    lifetime: Duration,
) -> AuthResult<Credential> {
    if lifetime <= Duration::ZERO || lifetime > Duration::days(30) {
        return Err(AuthError::Invalid {
            field: "lifetime",
            problem: "an invitation lasts more than nothing and at most 30 days",
        });
    }
    let credential = Credential::generate(tx.org()).map_err(|_| AuthError::Internal)?;
    sqlx::query(
        "INSERT INTO app.invitations (org_id, id, user_id, token_hash, created_by, created_at,
             expires_at)
         VALUES ($1, gen_random_uuid(), $2, $3, $4, $5, $6)",
    )
    .bind(tx.org().as_uuid())
    .bind(user.as_uuid())
    .bind(credential.token.hash().to_vec())
    .bind(created_by.map(|u| u.as_uuid()))
    .bind(now)
    .bind(now + lifetime)
    .execute(tx.conn())
    .await?;
    Ok(credential)
}

/// Marks the live invitation `credential` accepted and returns its user, locked for the
/// rest of `tx`, whose other invitations are withdrawn; `None` when there is no such live
/// invitation of an active, unerased user who has no password yet (an invitation sets a
/// first password; it is not a password reset).
pub(crate) async fn redeem(
    tx: &mut TenantTx,
    credential: &Credential,
    now: OffsetDateTime,
) -> AuthResult<Option<UserId>> {
    let user: Option<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE app.invitations i SET accepted_at = $2
         FROM app.users u
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2
           AND u.org_id = i.org_id AND u.id = i.user_id AND u.status = 'active'
           AND u.erased_at IS NULL AND u.password_hash IS NULL
         RETURNING i.user_id",
    )
    .bind(credential.token.hash().to_vec())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    // The user's row, locked and checked again: a disable or erasure committed since the
    // statement above read it wins.
    let still: Option<bool> = sqlx::query_scalar(
        "SELECT status = 'active' AND erased_at IS NULL AND password_hash IS NULL
         FROM app.users WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(user)
    .fetch_optional(tx.conn())
    .await?;
    if still != Some(true) {
        return Ok(None);
    }
    sqlx::query("DELETE FROM app.invitations WHERE user_id = $1 AND accepted_at IS NULL")
        .bind(user)
        .execute(tx.conn())
        .await?;
    UserId::from_uuid(user)
        .map(Some)
        .map_err(|_| AuthError::Internal)
}
