//! The stored second factor of a user: TOTP secrets (sealed by the caller with the field
//! cipher), the last accepted time step (no code twice), and recovery codes (hashes
//! only, each usable once).

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;

use super::changed;
use crate::{AuthError, AuthResult};

/// Stores a pending (unconfirmed) TOTP secret, sealed by the caller.
pub async fn set_totp_pending(
    tx: &mut TenantTx,
    id: UserId,
    sealed: &[u8],
    now: OffsetDateTime,
) -> AuthResult<()> {
    changed(
        sqlx::query("UPDATE app.users SET totp_pending_sealed = $3, changed_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(now)
            .bind(sealed)
            .execute(tx.conn())
            .await?,
    )
}

/// The pending TOTP secret, if enrolment was started.
pub async fn totp_pending(tx: &mut TenantTx, id: UserId) -> AuthResult<Option<Vec<u8>>> {
    let row: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT totp_pending_sealed FROM app.users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    row.ok_or(AuthError::NotFound)
}

/// Makes the pending secret the active one (already re-sealed for its column by the
/// caller), with the step that confirmed it.
pub async fn confirm_totp(
    tx: &mut TenantTx,
    id: UserId,
    sealed: &[u8],
    step: i64,
    now: OffsetDateTime,
) -> AuthResult<()> {
    changed(
        sqlx::query("UPDATE app.users SET totp_sealed = $3, totp_pending_sealed = NULL, totp_last_step = $4, changed_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(now)
            .bind(sealed)
            .bind(step)
            .execute(tx.conn())
            .await?,
    )
}

/// Records the last accepted TOTP step, only if it is later than the stored one: two
/// concurrent sign-ins with the same code cannot both succeed.
pub async fn advance_totp_step(tx: &mut TenantTx, id: UserId, step: i64) -> AuthResult<bool> {
    let done = sqlx::query(
        "UPDATE app.users SET totp_last_step = $2
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(id.as_uuid())
    .bind(step)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes MFA: secret, pending secret and recovery codes.
pub async fn clear_mfa(tx: &mut TenantTx, id: UserId, now: OffsetDateTime) -> AuthResult<()> {
    changed(
        sqlx::query("UPDATE app.users SET totp_sealed = NULL, totp_pending_sealed = NULL, totp_last_step = NULL, changed_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(now)
            .execute(tx.conn())
            .await?,
    )?;
    replace_recovery_codes(tx, id, &[]).await
}

/// Replaces the user's recovery codes with `hashes`.
pub async fn replace_recovery_codes(
    tx: &mut TenantTx,
    id: UserId,
    hashes: &[[u8; 32]],
) -> AuthResult<()> {
    let org = tx.org().as_uuid();
    sqlx::query("DELETE FROM app.recovery_codes WHERE user_id = $1")
        .bind(id.as_uuid())
        .execute(tx.conn())
        .await?;
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO app.recovery_codes (org_id, user_id, code_hash)
         SELECT $1, $2, h FROM unnest($3::bytea[]) AS h",
    )
    .bind(org)
    .bind(id.as_uuid())
    .bind(hashes)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Consumes the recovery code `input` if it is one of the user's: true if it was.
pub async fn use_recovery_code(tx: &mut TenantTx, id: UserId, input: &str) -> AuthResult<bool> {
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT code_hash FROM app.recovery_codes WHERE user_id = $1")
            .bind(id.as_uuid())
            .fetch_all(tx.conn())
            .await?;
    let hashes: Vec<[u8; 32]> = stored
        .iter()
        .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .collect();
    let Some(index) = crate::recovery::find_code(input, &hashes) else {
        return Ok(false);
    };
    let Some(hash) = hashes.get(index) else {
        return Ok(false);
    };
    // DELETE ... RETURNING: of two concurrent uses of one code, only one deletes it.
    let deleted =
        sqlx::query("DELETE FROM app.recovery_codes WHERE user_id = $1 AND code_hash = $2")
            .bind(id.as_uuid())
            .bind(hash.as_slice())
            .execute(tx.conn())
            .await?;
    Ok(deleted.rows_affected() == 1)
}
