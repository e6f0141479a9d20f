//! Erasing an account (GDPR article 17): the user's row becomes "a former user".
//!
//! The row stays because approvals, elevations and tokens refer to its id (and the audit
//! trail names it as actor); everything in it about the person goes. The placeholder
//! address is derived from the id, which the remaining records hold anyway, so nothing
//! erased is stored again. Migration 0017 keeps an erased row empty and erased for good.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;

use crate::{AuthError, AuthResult, Role, session};

/// What [`erase_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountErasure {
    /// The account had been erased before: nothing changed.
    pub already_erased: bool,
    /// Live sessions ended.
    pub sessions_ended: u64,
}

/// The display name of every erased user.
pub const FORMER_USER: &str = "a former user";

/// The placeholder address of erased user `id`: unique per organisation (the column is),
/// in a domain that can never receive mail (RFC 2606 `.invalid`).
pub fn former_user_email(id: UserId) -> String {
    format!("erased-{}@former-user.invalid", id.as_uuid().simple())
}

/// Erases the account `id` in the caller's transaction: ends its sessions, then reduces
/// its row to [`FORMER_USER`] with no credentials, second factor, SCIM attributes or
/// address. The caller deletes the person's other rows in the same transaction
/// (`procuhelp_tenancy::personal_data::subject::erase_rows`) and records the erasure.
///
/// Idempotent: an erased account is left as it is. Refused with
/// [`AuthError::Conflict`] for the last active admin of the organisation (nobody could
/// administer it afterwards), and [`AuthError::NotFound`] for an id this organisation
/// does not have.
///
/// ```no_run
/// # async fn f(tx: &mut procuhelp_tenancy::TenantTx, id: procuhelp_core::UserId)
/// #     -> procuhelp_auth::AuthResult<()> {
/// let now = time::OffsetDateTime::now_utc();
/// let done = procuhelp_auth::directory::erase_account(tx, id, now).await?;
/// println!("{} sessions ended", done.sessions_ended);
/// # Ok(()) }
/// ```
pub async fn erase_account(
    tx: &mut TenantTx,
    id: UserId,
    now: OffsetDateTime,
) -> AuthResult<AccountErasure> {
    // Every active admin's row, locked, before deciding: two concurrent erasures of the
    // last two admins serialise here, and the second sees it would leave none. NO KEY:
    // rows that merely reference an admin (their sessions, tokens) are not held up.
    let admins: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM app.users WHERE role = $1 AND status = 'active' ORDER BY id
         FOR NO KEY UPDATE",
    )
    .bind(Role::Admin.as_str())
    .fetch_all(tx.conn())
    .await?;
    let row: Option<(Option<OffsetDateTime>,)> =
        sqlx::query_as("SELECT erased_at FROM app.users WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    let Some((erased_at,)) = row else {
        return Err(AuthError::NotFound);
    };
    if erased_at.is_some() {
        return Ok(AccountErasure {
            already_erased: true,
            sessions_ended: 0,
        });
    }
    if admins.as_slice() == [id.as_uuid()] {
        return Err(AuthError::Conflict(
            "the last admin of an organisation cannot be erased: make another user admin first",
        ));
    }
    let sessions_ended = session::revoke_all(tx, id, None, now).await?;
    sqlx::query(
        "UPDATE app.users SET
             email = $2, display_name = $3, role = $4, status = 'disabled',
             disabled_by_admin = true, password_hash = NULL, totp_sealed = NULL,
             totp_pending_sealed = NULL, totp_last_step = NULL,
             scim_user_name = NULL, scim_external_id = NULL, scim_display_name = NULL,
             given_name = NULL, family_name = NULL, scim_emails = NULL,
             scim_managed = false, deprovisioned_by_scim = false, scim_deleted_at = NULL,
             scim_handed_over_at = NULL, scim_handed_over_by = NULL,
             changed_at = $5, erased_at = $5
         WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(former_user_email(id))
    .bind(FORMER_USER)
    .bind(Role::ReadOnly.as_str())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(AccountErasure {
        already_erased: false,
        sessions_ended,
    })
}
