//! Users of an organisation, stored in `app.users` (a tenant table): every function takes
//! the caller's [`TenantTx`], so row-level security scopes it to that organisation.
//!
//! One job per module: who the users are (here), their addresses ([`Email`]), the stored
//! second factor (sealed TOTP secrets, replay step, recovery codes) and the
//! organisation's sign-in policy ([`OrgPolicy`]).

mod email;
mod erasure;
mod mfa;
mod policy;

pub use email::Email;
pub use erasure::{AccountErasure, FORMER_USER, erase_account, former_user_email};
pub use mfa::{
    advance_totp_step, clear_mfa, confirm_totp, replace_recovery_codes, set_totp_pending,
    totp_pending, use_recovery_code,
};
pub use policy::{OrgPolicy, org_policy, set_org_policy};

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;

use crate::{AuthError, AuthResult, Role};

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// Can sign in.
    Active,
    /// Cannot sign in; all sessions were revoked when this was set.
    Disabled,
}

impl UserStatus {
    fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

/// A user as stored (never serialised as is: it holds the password hash).
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// Normalised email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Base role (elevation may raise it for a while).
    pub role: Role,
    /// Active or disabled.
    pub status: UserStatus,
    /// The Argon2id PHC string, if the user has a password.
    pub password_hash: Option<String>,
    /// The sealed TOTP secret, once MFA is confirmed.
    pub totp_sealed: Option<Vec<u8>>,
    /// The last accepted TOTP step (replay protection).
    pub totp_last_step: Option<i64>,
}

impl UserRecord {
    /// Whether the user has confirmed a TOTP second factor.
    pub fn has_mfa(&self) -> bool {
        self.totp_sealed.is_some()
    }
}

type UserRow = (
    uuid::Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
);

const USER_COLUMNS: &str =
    "id, email, display_name, role, status, password_hash, totp_sealed, totp_last_step";

fn record(row: UserRow) -> AuthResult<UserRecord> {
    let (id, email, display_name, role, status, password_hash, totp_sealed, totp_last_step) = row;
    Ok(UserRecord {
        id: UserId::from_uuid(id).map_err(|_| AuthError::Internal)?,
        email,
        display_name,
        role: role.parse().map_err(|_| AuthError::Internal)?,
        status: if status == "active" {
            UserStatus::Active
        } else {
            UserStatus::Disabled
        },
        password_hash,
        totp_sealed,
        totp_last_step,
    })
}

/// A user to create. New users get [`Role::least_privileged`] unless `role` is set.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email address.
    pub email: Email,
    /// Display name (1 to 200 characters).
    pub display_name: String,
    /// Role; `None` means the least role.
    pub role: Option<Role>,
    /// Argon2id PHC string (hash it off the executor first), or `None` for SSO-only.
    pub password_hash: Option<String>,
}

/// Creates a user in the transaction's organisation.
pub async fn create(tx: &mut TenantTx, user: NewUser, now: OffsetDateTime) -> AuthResult<UserId> {
    let name = user.display_name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "display_name",
            problem: "must be 1 to 200 printable characters",
        });
    }
    let id = UserId::new();
    let role = user.role.unwrap_or(Role::least_privileged());
    let org = tx.org().as_uuid();
    let result = sqlx::query(
        "INSERT INTO app.users (org_id, id, email, display_name, role, password_hash, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(org)
    .bind(id.as_uuid())
    .bind(user.email.as_str())
    .bind(name)
    .bind(role.as_str())
    .bind(user.password_hash)
    .bind(now)
    .execute(tx.conn())
    .await;
    match result.map_err(procuhelp_tenancy::Error::from) {
        Ok(_) => Ok(id),
        Err(procuhelp_tenancy::Error::Conflict { .. }) => {
            Err(AuthError::Conflict("a user with this email exists"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The user with `email`, if any.
pub async fn find_by_email(tx: &mut TenantTx, email: &Email) -> AuthResult<Option<UserRecord>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM app.users WHERE email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    row.map(record).transpose()
}

/// The user `id`, or [`AuthError::NotFound`] (also for another organisation's user).
pub async fn get(tx: &mut TenantTx, id: UserId) -> AuthResult<UserRecord> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM app.users WHERE id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.map(record).transpose()?.ok_or(AuthError::NotFound)
}

/// Every user of the organisation, by email.
pub async fn list(tx: &mut TenantTx) -> AuthResult<Vec<UserRecord>> {
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM app.users ORDER BY email LIMIT 1000"
    ))
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(record).collect()
}

/// The display names of the users `ids` that exist in the organisation (a page naming
/// who did what reads only those, not the whole directory). At most 1,000 ids.
pub async fn display_names(
    tx: &mut TenantTx,
    ids: &[uuid::Uuid],
) -> AuthResult<std::collections::HashMap<uuid::Uuid, String>> {
    let ids = &ids[..ids.len().min(1000)];
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, display_name FROM app.users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(tx.conn())
            .await?;
    Ok(rows.into_iter().collect())
}

fn changed(done: sqlx::postgres::PgQueryResult) -> AuthResult<()> {
    if done.rows_affected() == 0 {
        return Err(AuthError::NotFound);
    }
    Ok(())
}

/// Sets the base role. The caller revokes the user's sessions (a privilege change).
pub async fn set_role(
    tx: &mut TenantTx,
    id: UserId,
    role: Role,
    now: OffsetDateTime,
) -> AuthResult<()> {
    changed(
        sqlx::query(
            "UPDATE app.users SET role = $3, changed_at = $2 WHERE id = $1 AND erased_at IS NULL",
        )
        .bind(id.as_uuid())
        .bind(now)
        .bind(role.as_str())
        .execute(tx.conn())
        .await?,
    )
}

/// Enables or disables the user: an administrator's decision, recorded as such
/// (`disabled_by_admin`) so that SCIM cannot re-enable a user an admin disabled. The
/// caller revokes the sessions of a disabled user.
pub async fn set_status(
    tx: &mut TenantTx,
    id: UserId,
    status: UserStatus,
    now: OffsetDateTime,
) -> AuthResult<()> {
    changed(
        sqlx::query(
            "UPDATE app.users SET status = $3, disabled_by_admin = ($3 = 'disabled'),
                 changed_at = $2
             WHERE id = $1 AND erased_at IS NULL",
        )
        .bind(id.as_uuid())
        .bind(now)
        .bind(status.as_str())
        .execute(tx.conn())
        .await?,
    )
}

/// Replaces the password hash (a rehash at sign-in, or a password change).
pub async fn set_password_hash(
    tx: &mut TenantTx,
    id: UserId,
    phc: &str,
    now: OffsetDateTime,
) -> AuthResult<()> {
    changed(
        sqlx::query("UPDATE app.users SET password_hash = $3, changed_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(now)
            .bind(phc)
            .execute(tx.conn())
            .await?,
    )
}
