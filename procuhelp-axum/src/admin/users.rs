//! Users: list, create, role, disable and enable, sign out everywhere, unlock.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, Email, NewUser, UserStatus};
use procuhelp_auth::session;
use procuhelp_auth::throttle::ThrottleKey;
use procuhelp_auth::{AuthError, Permission, Role};
use procuhelp_core::{SecretText, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ElevationLimit, may_manage, parse_role, refuse_under_elevation, user_json, within_base_role,
};
use crate::{Authed, Result};

/// `GET /api/users`.
pub(super) async fn list_users(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let users = directory::list(authed.tx().await?).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserBody {
    email: String,
    display_name: String,
    password: Option<String>,
    role: Option<String>,
}

/// Whether the actor may add a user with `role` (`None`: the least role): `manage_users`
/// by base role (a new account outlives any elevation), and for any other role
/// `manage_roles` too, capped at the actor's base role. A refusal under an elevation is
/// recorded.
async fn may_add_user(authed: &mut Authed, role: Option<Role>) -> Result<()> {
    let grant = authed.require(Permission::ManageUsers).await?;
    refuse_under_elevation(
        authed,
        &grant,
        ElevationLimit::LastingChange(Action::UserCreated),
    )
    .await?;
    if let Some(role) = role.filter(|r| *r != Role::least_privileged()) {
        let grant = authed.require(Permission::ManageRoles).await?;
        refuse_under_elevation(
            authed,
            &grant,
            ElevationLimit::LastingChange(Action::UserCreated),
        )
        .await?;
        within_base_role(authed, role)?;
    }
    Ok(())
}

/// Invites a new user: the account without a password, and an invitation whose link the
/// caller hands over (by e-mail) **before** committing the request's transaction — so a
/// link that could not be sent leaves nothing behind. The same rules as
/// `POST /api/users` (who may add whom); recorded as `user.invited`.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let (user, link_token) =
///     procuhelp_axum::admin::invite_user(&mut authed, "ada@example.test", "Ada", None).await?;
/// // send `/invitations/accept?token={link_token.expose()}` to user.email, then:
/// authed.commit().await?;
/// # Ok(()) }
/// ```
pub async fn invite_user(
    authed: &mut Authed,
    email: &str,
    display_name: &str,
    role: Option<Role>,
) -> Result<(directory::UserRecord, procuhelp_auth::session::Credential)> {
    may_add_user(authed, role).await?;
    let email = Email::parse(email)?;
    let now = authed.sdk().now();
    let by = super::acting_user(authed);
    let id = directory::create(
        authed.tx().await?,
        NewUser {
            email,
            display_name: display_name.to_owned(),
            role,
            password_hash: None,
        },
        now,
    )
    .await?;
    let token = procuhelp_auth::invitation::invite(
        authed.tx().await?,
        id,
        by,
        now,
        procuhelp_auth::invitation::DEFAULT_LIFETIME,
    )
    .await?;
    let user = directory::get(authed.tx().await?, id).await?;
    let event = authed
        .event(Action::UserInvited, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({
            "role": user.role,
            "expires_at": (now + procuhelp_auth::invitation::DEFAULT_LIFETIME).unix_timestamp(),
        }))
        .person(id, Some(&user.email), Some(&user.display_name));
    authed.record(event).await?;
    Ok((user, token))
}

/// `POST /api/users`: a new user, with the least role unless one is given (which needs
/// `manage_roles` too).
pub(super) async fn create_user(
    mut authed: Authed,
    Json(body): Json<NewUserBody>,
) -> Result<Json<Value>> {
    let role = body.role.as_deref().map(parse_role).transpose()?;
    may_add_user(&mut authed, role).await?;
    let email = Email::parse(&body.email)?;
    let password_hash = match body.password {
        Some(p) => Some(
            authed
                .sdk()
                .auth()
                .hash_new_password(SecretText::new(p))
                .await?,
        ),
        None => None,
    };
    let now = authed.sdk().now();
    let id = directory::create(
        authed.tx().await?,
        NewUser {
            email: email.clone(),
            display_name: body.display_name,
            role,
            password_hash,
        },
        now,
    )
    .await?;
    let user = directory::get(authed.tx().await?, id).await?;
    let event = authed
        .event(Action::UserCreated, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "role": user.role }))
        .person(id, Some(&user.email), Some(&user.display_name));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleBody {
    role: String,
}

/// What [`change_role`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleChange {
    /// The user.
    pub user: UserId,
    /// The base role before.
    pub from: Role,
    /// The base role now.
    pub to: Role,
    /// The user's sessions ended by the change (they sign in again under the new role).
    pub sessions_revoked: u64,
}

/// `manage_roles` by base role: a role granted outlives any elevation (a refusal under
/// an elevation is recorded).
async fn may_change_roles(authed: &mut Authed) -> Result<()> {
    let grant = authed.require(Permission::ManageRoles).await?;
    refuse_under_elevation(
        authed,
        &grant,
        ElevationLimit::LastingChange(Action::UserRoleChanged),
    )
    .await
}

/// Changes `user`'s base role and ends all their sessions, as `PUT /api/users/{id}/role`:
/// `manage_roles` by base role, never one's own role, never above the actor's base role
/// nor on a user whose role holds more than their base role (`Role::covers`); another organisation's user is not found. Recorded
/// as `user.role_changed` and committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::Role;
/// let change = procuhelp_axum::admin::change_role(&mut authed, user, Role::Approver).await?;
/// assert_eq!(change.to, Role::Approver);
/// # Ok(()) }
/// ```
pub async fn change_role(authed: &mut Authed, user: UserId, role: Role) -> Result<RoleChange> {
    may_change_roles(authed).await?;
    // Through a token too: a token acts for its creator.
    if authed.principal.acting_user() == user {
        return Err(AuthError::Conflict("admins cannot change their own role").into());
    }
    within_base_role(authed, role)?;
    let now = authed.sdk().now();
    let before = directory::get(authed.tx().await?, user).await?;
    may_manage(authed, &before)?;
    directory::set_role(authed.tx().await?, user, role, now).await?;
    let revoked = session::revoke_all(authed.tx().await?, user, None, now).await?;
    let event = authed
        .event(Action::UserRoleChanged, Outcome::Success)
        .target(format!("user:{user}"))
        .context(json!({ "from": before.role, "to": role, "sessions_revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(RoleChange {
        user,
        from: before.role,
        to: role,
        sessions_revoked: revoked,
    })
}

/// `PUT /api/users/{id}/role`: changes the base role and revokes the user's sessions.
pub(super) async fn set_role(
    mut authed: Authed,
    Path(id): Path<UserId>,
    Json(body): Json<RoleBody>,
) -> Result<Json<Value>> {
    let change = match parse_role(&body.role) {
        Ok(role) => change_role(&mut authed, id, role).await?,
        Err(e) => {
            // The permission first, as for a known role: a stranger is refused, not told.
            may_change_roles(&mut authed).await?;
            return Err(e);
        }
    };
    Ok(Json(json!({
        "id": change.user.to_string(),
        "role": change.to,
        "sessions_revoked": change.sessions_revoked,
    })))
}

/// What [`disable_account`] or [`enable_account`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusChange {
    /// The user.
    pub user: UserId,
    /// Whether the user may sign in now.
    pub status: UserStatus,
    /// The user's sessions ended (disabling ends them all; enabling none).
    pub sessions_revoked: u64,
    /// Enabling lifted the admin's disable, but the identity provider (SCIM) deprovisioned
    /// the user too: they stay disabled until it re-activates them.
    pub still_deprovisioned_by_scim: bool,
}

async fn set_status(authed: &mut Authed, id: UserId, status: UserStatus) -> Result<StatusChange> {
    let grant = authed.require(Permission::ManageUsers).await?;
    if status == UserStatus::Active {
        // A re-enabled account outlives the elevation as a new one would.
        refuse_under_elevation(
            authed,
            &grant,
            ElevationLimit::LastingChange(Action::UserEnabled),
        )
        .await?;
    }
    if authed.principal.acting_user() == id {
        return Err(AuthError::Conflict("admins cannot disable themselves").into());
    }
    let now = authed.sdk().now();
    let target = directory::get(authed.tx().await?, id).await?;
    may_manage(authed, &target)?;
    if status == UserStatus::Active
        && procuhelp_auth::scim::user_deprovisioned_by_scim(authed.tx().await?, id).await?
    {
        // Disabled by both: the admin lifts their own disable (else SCIM could never
        // re-activate the user); the user stays disabled until SCIM does.
        if procuhelp_auth::scim::lift_admin_disable(authed.tx().await?, id, now).await? {
            let event = authed
                .event(Action::UserEnabled, Outcome::Success)
                .target(format!("user:{id}"))
                .context(json!({ "sessions_revoked": 0, "still_deprovisioned_by_scim": true }));
            authed.record(event).await?;
            authed.commit().await?;
            return Ok(StatusChange {
                user: id,
                status: UserStatus::Disabled,
                sessions_revoked: 0,
                still_deprovisioned_by_scim: true,
            });
        }
        return Err(AuthError::Conflict(
            "deprovisioned by the identity provider (SCIM): re-activate the user there",
        )
        .into());
    }
    directory::set_status(authed.tx().await?, id, status, now).await?;
    let (action, revoked) = match status {
        UserStatus::Disabled => (
            Action::UserDisabled,
            session::revoke_all(authed.tx().await?, id, None, now).await?,
        ),
        UserStatus::Active => (Action::UserEnabled, 0),
    };
    let event = authed
        .event(action, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "sessions_revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(StatusChange {
        user: id,
        status,
        sessions_revoked: revoked,
        still_deprovisioned_by_scim: false,
    })
}

/// Disables `user` and ends all their sessions, as `POST /api/users/{id}/disable`:
/// `manage_users`, never oneself, never a user whose role the actor's base role does not cover; another
/// organisation's user is not found. Recorded as `user.disabled` and committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// let change = procuhelp_axum::admin::disable_account(&mut authed, user).await?;
/// println!("{} sessions ended", change.sessions_revoked);
/// # Ok(()) }
/// ```
pub async fn disable_account(authed: &mut Authed, user: UserId) -> Result<StatusChange> {
    set_status(authed, user, UserStatus::Disabled).await
}

/// Enables `user` again, as `POST /api/users/{id}/enable`: `manage_users` by base role (a
/// re-enabled account outlives any elevation). A user the identity provider deprovisioned
/// (SCIM) stays disabled until it re-activates them
/// ([`StatusChange::still_deprovisioned_by_scim`]; a conflict when the admin had not
/// disabled them). Recorded as `user.enabled` and committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// let change = procuhelp_axum::admin::enable_account(&mut authed, user).await?;
/// if change.still_deprovisioned_by_scim {
///     println!("re-activate the user in the identity provider");
/// }
/// # Ok(()) }
/// ```
pub async fn enable_account(authed: &mut Authed, user: UserId) -> Result<StatusChange> {
    set_status(authed, user, UserStatus::Active).await
}

fn status_json(change: &StatusChange) -> Json<Value> {
    if change.still_deprovisioned_by_scim {
        return Json(json!({
            "id": change.user.to_string(), "sessions_revoked": change.sessions_revoked,
            "status": "disabled", "deprovisioned_by_scim": true,
        }));
    }
    Json(json!({ "id": change.user.to_string(), "sessions_revoked": change.sessions_revoked }))
}

/// `POST /api/users/{id}/disable`: disables the user and revokes all their sessions.
pub(super) async fn disable_user(
    mut authed: Authed,
    Path(id): Path<UserId>,
) -> Result<Json<Value>> {
    Ok(status_json(&disable_account(&mut authed, id).await?))
}

/// `POST /api/users/{id}/enable`.
pub(super) async fn enable_user(mut authed: Authed, Path(id): Path<UserId>) -> Result<Json<Value>> {
    Ok(status_json(&enable_account(&mut authed, id).await?))
}

/// What [`sign_out_everywhere`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedOut {
    /// The user.
    pub user: UserId,
    /// How many sessions were still open and are ended now.
    pub revoked: u64,
}

/// Signs `user` out everywhere (every session ends), as
/// `POST /api/users/{id}/sessions/revoke`: `manage_users`; another organisation's user is
/// not found. Recorded as `session.revoked_all` and committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// let done = procuhelp_axum::admin::sign_out_everywhere(&mut authed, user).await?;
/// println!("{} sessions ended", done.revoked);
/// # Ok(()) }
/// ```
pub async fn sign_out_everywhere(authed: &mut Authed, user: UserId) -> Result<SignedOut> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    let target = directory::get(authed.tx().await?, user).await?;
    // Signing someone out again and again is disabling them: not above the actor's base
    // role (an elevated approver does not sign out the admins who oversee them).
    may_manage(authed, &target)?;
    let revoked = session::revoke_all(authed.tx().await?, user, None, now).await?;
    let event = authed
        .event(Action::SessionRevokedAll, Outcome::Success)
        .target(format!("user:{user}"))
        .context(json!({ "revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(SignedOut { user, revoked })
}

/// `POST /api/users/{id}/sessions/revoke`: signs the user out everywhere.
pub(super) async fn revoke_user_sessions(
    mut authed: Authed,
    Path(id): Path<UserId>,
) -> Result<Json<Value>> {
    let done = sign_out_everywhere(&mut authed, id).await?;
    Ok(Json(json!({ "revoked": done.revoked })))
}

/// What [`unlock_account`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unlocked {
    /// The user.
    pub user: UserId,
    /// Whether a lock (of the password or of the second factor) was lifted.
    pub was_locked: bool,
}

/// Lifts `user`'s sign-in locks early (the password's and the second factor's), as
/// `POST /api/users/{id}/unlock`: `manage_users`; another organisation's user is not
/// found. In the actor's transaction, so the unlock takes effect with its
/// `auth.account_unlocked` event; committed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// let done = procuhelp_axum::admin::unlock_account(&mut authed, user).await?;
/// println!("was locked: {}", done.was_locked);
/// # Ok(()) }
/// ```
pub async fn unlock_account(authed: &mut Authed, user: UserId) -> Result<Unlocked> {
    authed.require(Permission::ManageUsers).await?;
    let record = directory::get(authed.tx().await?, user).await?;
    // Lifting the lock of an account above the actor's base role would help whoever is
    // guessing its password.
    may_manage(authed, &record)?;
    let email = Email::parse(&record.email)?;
    let org = authed.org();
    let throttle = authed.sdk().auth().throttle().clone();
    let keys = sign_in_keys(org, &email, user);
    let unlocked = throttle.unlock(authed.tx().await?.conn(), &keys).await?;
    let event = authed
        .event(Action::AccountUnlocked, Outcome::Success)
        .target(format!("user:{user}"))
        .context(json!({ "was_locked": unlocked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Unlocked {
        user,
        was_locked: unlocked,
    })
}

/// What throttles `user`'s sign-ins: their password's and their second factor's
/// counters. Both are lifted by an unlock.
fn sign_in_keys<'a>(
    org: procuhelp_core::OrgId,
    email: &'a Email,
    user: UserId,
) -> [ThrottleKey<'a>; 2] {
    [
        ThrottleKey::Account(org, email),
        ThrottleKey::SecondFactor(org, user),
    ]
}

/// Until when `user`'s sign-in is held back (a back-off or a lock after failed
/// attempts), if it is now: `manage_users`; another organisation's user is not found. A
/// read: the caller commits.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed, user: procuhelp_core::UserId)
/// # -> procuhelp_axum::Result<()> {
/// if let Some(until) = procuhelp_axum::admin::sign_in_held_until(&mut authed, user).await? {
///     println!("locked until {until}");
/// }
/// authed.commit().await?;
/// # Ok(()) }
/// ```
pub async fn sign_in_held_until(
    authed: &mut Authed,
    user: UserId,
) -> Result<Option<time::OffsetDateTime>> {
    authed.require(Permission::ManageUsers).await?;
    let record = directory::get(authed.tx().await?, user).await?;
    let email = Email::parse(&record.email)?;
    let keys = sign_in_keys(authed.org(), &email, user);
    let now = authed.sdk().now();
    let throttle = authed.sdk().auth().throttle().clone();
    Ok(throttle
        .held_until(authed.tx().await?.conn(), &keys, now)
        .await?)
}

/// `POST /api/users/{id}/unlock`: lifts a sign-in lock early.
pub(super) async fn unlock_user(mut authed: Authed, Path(id): Path<UserId>) -> Result<Json<Value>> {
    let done = unlock_account(&mut authed, id).await?;
    Ok(Json(json!({ "unlocked": done.was_locked })))
}
