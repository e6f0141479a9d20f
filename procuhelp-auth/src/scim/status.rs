//! What SCIM's marks on a user mean to the rest of auth: sign-in code (SSO, JIT
//! provisioning) and user administration read them here.

use procuhelp_tenancy::TenantTx;

use crate::AuthResult;
use crate::directory::Email;

/// Whether the user with sign-in address `email` was deprovisioned by SCIM: SSO sign-in
/// must refuse them, and just-in-time provisioning must not create a new account for the
/// address.
pub async fn is_deprovisioned_by_scim(tx: &mut TenantTx, email: &Email) -> AuthResult<bool> {
    let flag: Option<bool> =
        sqlx::query_scalar("SELECT deprovisioned_by_scim FROM app.users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(tx.conn())
            .await?;
    Ok(flag.unwrap_or(false))
}

/// Whether user `id` is managed by SCIM (its role then follows the SCIM group mapping;
/// SSO sign-ins do not change it).
pub async fn user_is_scim_managed(
    tx: &mut TenantTx,
    id: procuhelp_core::UserId,
) -> AuthResult<bool> {
    let flag: Option<bool> = sqlx::query_scalar("SELECT scim_managed FROM app.users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(tx.conn())
        .await?;
    flag.ok_or(crate::AuthError::NotFound)
}

/// Which users a federated identity that is not linked yet may be linked to through SCIM
/// data (SQL over `app.users u`). SCIM data is only as trustworthy as whoever holds the
/// SCIM token or edits the identity provider's attribute mapping, so:
///
/// - only a user SCIM owns (created by SCIM, or handed over by an admin) — never a local
///   account SCIM cannot see;
/// - not handed over: only one without local credentials (password, TOTP). SCIM never
///   creates those, so a SCIM-managed user with one is a local account marked managed
///   without an admin's handover (the adoption before issue #11, finding 7): linking it
///   would skip its password and second factor;
/// - only a user with no federated identity yet: SCIM editing the externalId or userName
///   of someone who already signs in never re-points their account at another identity.
pub const LINKABLE: &str = "u.scim_managed AND u.scim_deleted_at IS NULL
    AND (u.scim_handed_over_at IS NOT NULL OR (u.password_hash IS NULL AND u.totp_sealed IS NULL))
    AND NOT EXISTS (SELECT 1 FROM app.sso_identities i WHERE i.org_id = u.org_id AND i.user_id = u.id)";

/// The user whose SCIM `externalId` is `external_id` (with Entra's attribute mapping
/// `externalId ← objectId`, the `oid` of an ID token), if one may be linked implicitly
/// ([`LINKABLE`]).
pub async fn user_by_external_id(
    tx: &mut TenantTx,
    external_id: &str,
) -> AuthResult<Option<procuhelp_core::UserId>> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT u.id FROM app.users u WHERE u.scim_external_id = $1 AND {LINKABLE}"
    ))
    .bind(external_id)
    .fetch_optional(tx.conn())
    .await?;
    id.map(|id| procuhelp_core::UserId::from_uuid(id).map_err(|_| crate::AuthError::Internal))
        .transpose()
}

/// The user whose SCIM `userName` is `user_name` (case-insensitive; a SAML NameID is the
/// userName Entra provisions; a handed-over user's userName is their sign-in address
/// until SCIM sets one), if one may be linked implicitly ([`LINKABLE`]).
pub async fn user_by_user_name(
    tx: &mut TenantTx,
    user_name: &str,
) -> AuthResult<Option<procuhelp_core::UserId>> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT u.id FROM app.users u
         WHERE lower(COALESCE(u.scim_user_name, u.email)) = lower($1) AND {LINKABLE}"
    ))
    .bind(user_name)
    .fetch_optional(tx.conn())
    .await?;
    id.map(|id| procuhelp_core::UserId::from_uuid(id).map_err(|_| crate::AuthError::Internal))
        .transpose()
}

/// Whether user `id` was deprovisioned by SCIM (an admin cannot re-enable them: the
/// identity provider decides; the database refuses it too).
pub async fn user_deprovisioned_by_scim(
    tx: &mut TenantTx,
    id: procuhelp_core::UserId,
) -> AuthResult<bool> {
    let flag: Option<bool> =
        sqlx::query_scalar("SELECT deprovisioned_by_scim FROM app.users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    flag.ok_or(crate::AuthError::NotFound)
}

/// An admin enables user `id` while SCIM has them deprovisioned too: the admin lifts
/// only their own disable (`disabled_by_admin`); the user stays disabled until SCIM
/// re-activates them. Whether there was an admin's disable to lift.
pub async fn lift_admin_disable(
    tx: &mut TenantTx,
    id: procuhelp_core::UserId,
    now: time::OffsetDateTime,
) -> AuthResult<bool> {
    let done = sqlx::query(
        "UPDATE app.users SET disabled_by_admin = false, changed_at = $2
         WHERE id = $1 AND disabled_by_admin AND deprovisioned_by_scim",
    )
    .bind(id.as_uuid())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether the organisation lets SSO create unknown users at their first sign-in
/// (`sso_jit_provisioning`, default off).
pub async fn sso_jit_provisioning(tx: &mut TenantTx) -> AuthResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT sso_jit_provisioning FROM app.organisations WHERE id = app.current_org()",
    )
    .fetch_one(tx.conn())
    .await?)
}
