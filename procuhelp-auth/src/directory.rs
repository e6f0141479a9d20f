//! Users of an organisation, stored in `app.users` (a tenant table): every function takes
//! the caller's [`TenantTx`], so row-level security scopes it to that organisation.

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;

use crate::{AuthError, AuthResult, Role};

/// A normalised email address: trimmed, lower-case, one `@`, at most 254 bytes, no
/// whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> AuthResult<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = |problem| AuthError::Invalid {
            field: "email",
            problem,
        };
        if email.len() < 3 || email.len() > 254 {
            return Err(invalid("must be 3 to 254 bytes"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => return Err(invalid("must look like name@domain")),
        }
        if email.matches('@').count() != 1 {
            return Err(invalid("must look like name@domain"));
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
        sqlx::query("UPDATE app.users SET role = $3, changed_at = $2 WHERE id = $1")
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
             WHERE id = $1",
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

/// Whether the organisation requires a second factor for password sign-ins, and whether
/// elevation needs a second admin.
pub async fn org_policy(tx: &mut TenantTx) -> AuthResult<OrgPolicy> {
    let (mfa_required, elevation_needs_second_admin): (bool, bool) = sqlx::query_as(
        "SELECT mfa_required, elevation_needs_second_admin FROM app.organisations
         WHERE id = app.current_org()",
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(OrgPolicy {
        mfa_required,
        elevation_needs_second_admin,
    })
}

/// Changes the organisation's sign-in policy.
pub async fn set_org_policy(tx: &mut TenantTx, policy: OrgPolicy) -> AuthResult<()> {
    sqlx::query(
        "UPDATE app.organisations SET mfa_required = $1, elevation_needs_second_admin = $2
         WHERE id = app.current_org()",
    )
    .bind(policy.mfa_required)
    .bind(policy.elevation_needs_second_admin)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// An organisation's authentication policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPolicy {
    /// Password sign-ins must pass a second factor (SSO sign-ins whose IdP asserted MFA
    /// satisfy it).
    pub mfa_required: bool,
    /// An elevation takes effect only once a second admin approves it.
    pub elevation_needs_second_admin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "a",
            "no-at",
            "@x",
            "x@",
            "a@b@c",
            "a b@c",
            "a\u{0}@b",
            &format!("{}@x.io", "a".repeat(300)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
