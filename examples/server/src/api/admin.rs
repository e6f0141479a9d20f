//! User, role, elevation, API-token and sign-in-policy administration. Every change is
//! audited before it is committed; role changes and disabling revoke the user's sessions.

use axum::Json;
use axum::extract::Path;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, Email, NewUser, OrgPolicy, UserStatus};
use procuhelp_auth::elevation::{self, ElevationRequest, ElevationState};
use procuhelp_auth::throttle::ThrottleKey;
use procuhelp_auth::{AuthError, Permission, Role, api_token, session_store};
use procuhelp_core::{SecretText, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::authed::Authed;
use super::error::{ApiError, ApiResult};

fn user_json(u: &directory::UserRecord) -> Value {
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role,
        "status": if u.status == UserStatus::Active { "active" } else { "disabled" },
        "mfa": u.has_mfa(),
    })
}

fn parse_role(role: &str) -> ApiResult<Role> {
    role.parse().map_err(|_| ApiError::Invalid("role"))
}

/// `GET /api/users`.
pub(crate) async fn list_users(mut authed: Authed) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let users = directory::list(authed.tx()?).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    email: String,
    display_name: String,
    password: Option<String>,
    role: Option<String>,
}

/// `POST /api/users`: a new user, with the least role unless one is given (which needs
/// `manage_roles` too).
pub(crate) async fn create_user(
    mut authed: Authed,
    Json(body): Json<NewUserBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if role.is_some_and(|r| r != Role::least_privileged()) {
        authed.require(Permission::ManageRoles).await?;
    }
    let email = Email::parse(&body.email)?;
    let password_hash = match body.password {
        Some(p) => Some(
            authed
                .state()
                .auth
                .hash_new_password(SecretText::new(p))
                .await?,
        ),
        None => None,
    };
    let now = authed.state().auth.now();
    let id = directory::create(
        authed.tx()?,
        NewUser {
            email: email.clone(),
            display_name: body.display_name,
            role,
            password_hash,
        },
        now,
    )
    .await?;
    let user = directory::get(authed.tx()?, id).await?;
    let event = authed
        .event(Action::UserCreated, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "role": user.role }))
        .person(id, Some(&user.email), Some(&user.display_name));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(user_json(&user)))
}

fn acting_user(authed: &Authed) -> Option<UserId> {
    authed.principal.session().ok().map(|s| s.user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: String,
}

/// `PUT /api/users/{id}/role`: changes the base role and revokes the user's sessions.
pub(crate) async fn set_role(
    mut authed: Authed,
    Path(id): Path<UserId>,
    Json(body): Json<RoleBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageRoles).await?;
    let role = parse_role(&body.role)?;
    if acting_user(&authed) == Some(id) {
        return Err(AuthError::Conflict("admins cannot change their own role").into());
    }
    let now = authed.state().auth.now();
    let before = directory::get(authed.tx()?, id).await?;
    directory::set_role(authed.tx()?, id, role, now).await?;
    let revoked = session_store::revoke_all(authed.tx()?, id, None, now).await?;
    let event = authed
        .event(Action::UserRoleChanged, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "from": before.role, "to": role, "sessions_revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "id": id.to_string(), "role": role, "sessions_revoked": revoked }),
    ))
}

async fn set_status(mut authed: Authed, id: UserId, status: UserStatus) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    if acting_user(&authed) == Some(id) {
        return Err(AuthError::Conflict("admins cannot disable themselves").into());
    }
    let now = authed.state().auth.now();
    if status == UserStatus::Active
        && procuhelp_auth::scim::user_deprovisioned_by_scim(authed.tx()?, id).await?
    {
        // Disabled by both: the admin lifts their own disable (else SCIM could never
        // re-activate the user); the user stays disabled until SCIM does.
        if procuhelp_auth::scim::lift_admin_disable(authed.tx()?, id, now).await? {
            let event = authed
                .event(Action::UserEnabled, Outcome::Success)
                .target(format!("user:{id}"))
                .context(json!({ "sessions_revoked": 0, "still_deprovisioned_by_scim": true }));
            authed.record(event).await?;
            authed.commit().await?;
            return Ok(Json(json!({
                "id": id.to_string(), "sessions_revoked": 0, "status": "disabled",
                "deprovisioned_by_scim": true,
            })));
        }
        return Err(AuthError::Conflict(
            "deprovisioned by the identity provider (SCIM): re-activate the user there",
        )
        .into());
    }
    directory::set_status(authed.tx()?, id, status, now).await?;
    let (action, revoked) = match status {
        UserStatus::Disabled => (
            Action::UserDisabled,
            session_store::revoke_all(authed.tx()?, id, None, now).await?,
        ),
        UserStatus::Active => (Action::UserEnabled, 0),
    };
    let event = authed
        .event(action, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "sessions_revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "id": id.to_string(), "sessions_revoked": revoked }),
    ))
}

/// `POST /api/users/{id}/disable`: disables the user and revokes all their sessions.
pub(crate) async fn disable_user(authed: Authed, Path(id): Path<UserId>) -> ApiResult<Json<Value>> {
    set_status(authed, id, UserStatus::Disabled).await
}

/// `POST /api/users/{id}/enable`.
pub(crate) async fn enable_user(authed: Authed, Path(id): Path<UserId>) -> ApiResult<Json<Value>> {
    set_status(authed, id, UserStatus::Active).await
}

/// `POST /api/users/{id}/sessions/revoke`: signs the user out everywhere.
pub(crate) async fn revoke_user_sessions(
    mut authed: Authed,
    Path(id): Path<UserId>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.state().auth.now();
    directory::get(authed.tx()?, id).await?;
    let revoked = session_store::revoke_all(authed.tx()?, id, None, now).await?;
    let event = authed
        .event(Action::SessionRevokedAll, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "revoked": revoked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// `POST /api/users/{id}/unlock`: lifts a sign-in lock early.
pub(crate) async fn unlock_user(
    mut authed: Authed,
    Path(id): Path<UserId>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let user = directory::get(authed.tx()?, id).await?;
    let email = Email::parse(&user.email)?;
    let org = authed.org();
    // In the admin's transaction: the unlock takes effect with its audit event. Both the
    // password's and the second factor's locks are lifted.
    let throttle = authed.state().auth.throttle().clone();
    let keys = [
        ThrottleKey::Account(org, &email),
        ThrottleKey::SecondFactor(org, id),
    ];
    let unlocked = throttle.unlock(authed.tx()?.conn(), &keys).await?;
    let event = authed
        .event(Action::AccountUnlocked, Outcome::Success)
        .target(format!("user:{id}"))
        .context(json!({ "was_locked": unlocked }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "unlocked": unlocked })))
}

/// `GET /api/org/policy`.
pub(crate) async fn get_policy(mut authed: Authed) -> ApiResult<Json<OrgPolicy>> {
    authed.require(Permission::ManageUsers).await?;
    let policy = directory::org_policy(authed.tx()?).await?;
    authed.commit().await?;
    Ok(Json(policy))
}

/// `PUT /api/org/policy`: require MFA; require a second admin for elevation.
pub(crate) async fn set_policy(
    mut authed: Authed,
    Json(policy): Json<OrgPolicy>,
) -> ApiResult<Json<OrgPolicy>> {
    authed.require(Permission::ManageUsers).await?;
    directory::set_org_policy(authed.tx()?, policy).await?;
    let event = authed
        .event(Action::AdminCommand, Outcome::Success)
        .target("org:policy")
        .context(json!({ "policy": policy }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(policy))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ElevationBody {
    user: UserId,
    role: String,
    reason: String,
    minutes: i64,
}

/// `GET /api/elevations`.
pub(crate) async fn list_elevations(mut authed: Authed) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.state().auth.now();
    let (list, expired) = elevation::list(authed.tx()?, now).await?;
    for id in expired {
        let event = authed
            .event(Action::ElevationExpired, Outcome::Success)
            .target(format!("elevation:{id}"));
        authed.record(event).await?;
    }
    authed.commit().await?;
    Ok(Json(json!({ "elevations": list })))
}

/// `POST /api/elevations`: grants (or, where a second admin must approve, requests) a
/// higher role for a reason and a bounded time.
pub(crate) async fn request_elevation(
    mut authed: Authed,
    Json(body): Json<ElevationBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let role = parse_role(&body.role)?;
    if !(1..=480).contains(&body.minutes) {
        return Err(AuthError::Invalid {
            field: "minutes",
            problem: "must be between 1 and 480",
        }
        .into());
    }
    let now = authed.state().auth.now();
    let policy = directory::org_policy(authed.tx()?).await?;
    let request = ElevationRequest {
        user: body.user,
        role,
        reason: body.reason,
        duration: time::Duration::minutes(body.minutes),
    };
    let e = elevation::request(
        authed.tx()?,
        by,
        request,
        policy.elevation_needs_second_admin,
        now,
    )
    .await?;
    record_elevation(&mut authed, &e, Action::ElevationRequested).await?;
    if e.state == ElevationState::Active {
        activated(&mut authed, &e).await?;
    }
    authed.commit().await?;
    Ok(Json(json!(e)))
}

async fn record_elevation(
    authed: &mut Authed,
    e: &elevation::Elevation,
    action: Action,
) -> ApiResult<()> {
    let event = authed
        .event(action, Outcome::Success)
        .target(format!("elevation:{}", e.id))
        .context(json!({
            "user": e.user.to_string(), "role": e.role, "reason": e.reason,
            "state": e.state, "expires_at": e.expires_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        }));
    authed.record(event).await
}

/// An elevation took effect: the user's privileges changed, so their sessions are
/// revoked (they sign in again and get a new session id).
async fn activated(authed: &mut Authed, e: &elevation::Elevation) -> ApiResult<()> {
    let now = authed.state().auth.now();
    session_store::revoke_all(authed.tx()?, e.user, None, now).await?;
    record_elevation(authed, e, Action::ElevationGranted).await
}

/// `POST /api/elevations/{id}/approve`: a second admin (neither the requester nor the
/// elevated user) approves.
pub(crate) async fn approve_elevation(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let now = authed.state().auth.now();
    let result = elevation::approve(authed.tx()?, id, by, now).await;
    let e = match result {
        Ok(e) => e,
        Err(AuthError::SelfApproval) => {
            authed.abandon().await;
            let event = authed
                .event(Action::ElevationRefused, Outcome::Denied)
                .target(format!("elevation:{id}"))
                .context(json!({ "reason": "self-approval" }));
            authed.state().auth.record(event).await?;
            return Err(AuthError::SelfApproval.into());
        }
        Err(e) => return Err(e.into()),
    };
    record_elevation(&mut authed, &e, Action::ElevationApproved).await?;
    activated(&mut authed, &e).await?;
    authed.commit().await?;
    Ok(Json(json!(e)))
}

/// `POST /api/elevations/{id}/revoke`: ends an elevation now.
pub(crate) async fn revoke_elevation(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageElevation).await?;
    let now = authed.state().auth.now();
    let e = elevation::revoke(authed.tx()?, id, now).await?;
    record_elevation(&mut authed, &e, Action::ElevationRevoked).await?;
    authed.commit().await?;
    Ok(Json(json!(e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    name: String,
    role: String,
    days: i64,
}

/// `POST /api/tokens`: an API token for a service account (shown once).
pub(crate) async fn create_token(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let role = parse_role(&body.role)?;
    if role.outranks(authed.principal.role()) {
        return Err(AuthError::Forbidden.into());
    }
    if !(1..=365).contains(&body.days) {
        return Err(ApiError::Invalid("days"));
    }
    let now = authed.state().auth.now();
    let (id, credential) = api_token::issue(
        authed.tx()?,
        &body.name,
        role,
        time::Duration::days(body.days),
        by,
        now,
    )
    .await?;
    let event = authed
        .event(Action::ApiTokenCreated, Outcome::Success)
        .target(format!("api_token:{id}"))
        .context(json!({ "name": body.name, "role": role, "days": body.days }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "id": id, "token": credential.expose(), "role": role }),
    ))
}

/// `POST /api/tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.state().auth.now();
    if !api_token::revoke(authed.tx()?, id, now).await? {
        return Err(AuthError::NotFound.into());
    }
    let event = authed
        .event(Action::ApiTokenRevoked, Outcome::Success)
        .target(format!("api_token:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": id })))
}
