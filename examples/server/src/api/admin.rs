//! User, role, elevation, API-token and sign-in-policy administration. Every change is
//! audited before it is committed; role changes and disabling revoke the user's sessions.
//!
//! An elevation lets its holder act, never hand out more than they hold without it
//! (issue #11, finding 5): roles granted, new users and tokens are capped at the actor's
//! base role ([`within_base_role`]); new users, role grants and re-enabled users need the
//! permission by base role ([`lasting_change_needs_base_role`]); a token minted under an
//! elevation ends with it; an elevation cannot grant or approve another; and switching off
//! the second-admin rule for elevations waits for a second admin ([`policy_change`]).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::directory::{self, Email, NewUser, OrgPolicy, UserStatus};
use procuhelp_auth::elevation::{self, ElevationRequest, ElevationState};
use procuhelp_auth::throttle::ThrottleKey;
use procuhelp_auth::{AuthError, Grant, Permission, Role, api_token, policy_change, session_store};
use procuhelp_core::{SecretText, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use procuhelp_axum::Authed;
use procuhelp_axum::{Error as ApiError, Result as ApiResult};

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

/// Refuses to hand out `role` (to a user, a new user or a token) above the acting
/// principal's base role: what an elevation allows is acting, and it ends with the
/// elevation; a grant would outlive it. For a base-role admin this never refuses.
fn within_base_role(authed: &Authed, role: Role) -> ApiResult<()> {
    if role.outranks(authed.principal.base_role()) {
        return Err(AuthError::Forbidden.into());
    }
    Ok(())
}

/// Refuses identity changes (a new user, a role grant, a re-enabled user) made with a
/// permission only an elevation gives: an account or a grant outlives the elevation that
/// allowed it, so an elevation lets its holder act on users (list, disable, revoke
/// sessions) but never make lasting ones. The refusal is recorded with the elevation that was tried.
pub(crate) async fn lasting_change_needs_base_role(
    authed: &mut Authed,
    grant: &Grant,
    action: Action,
) -> ApiResult<()> {
    let Some(elevation) = grant.via_elevation else {
        return Ok(());
    };
    let event = authed
        .event(action, Outcome::Denied)
        .target(format!("elevation:{elevation}"))
        .context(json!({ "reason": "lasting change under an elevation" }));
    authed.record(event).await?;
    authed.abandon().await;
    Err(AuthError::Forbidden.into())
}

/// `GET /api/users`.
pub(crate) async fn list_users(mut authed: Authed) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let users = directory::list(authed.tx().await?).await?;
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
    let grant = authed.require(Permission::ManageUsers).await?;
    lasting_change_needs_base_role(&mut authed, &grant, Action::UserCreated).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if let Some(role) = role.filter(|r| *r != Role::least_privileged()) {
        let grant = authed.require(Permission::ManageRoles).await?;
        lasting_change_needs_base_role(&mut authed, &grant, Action::UserCreated).await?;
        within_base_role(&authed, role)?;
    }
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

/// The signed-in user, for actions only a person in a session takes (elevations, tokens,
/// approving policy changes); `None` for a token.
fn acting_user(authed: &Authed) -> Option<UserId> {
    authed.principal.session().ok().map(|s| s.user)
}

/// Refuses to act on a user whose role is above the actor's base role: an elevated
/// approver may not demote or disable the admins who oversee them.
pub(crate) fn may_manage(authed: &Authed, target: &directory::UserRecord) -> ApiResult<()> {
    within_base_role(authed, target.role)
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
    let grant = authed.require(Permission::ManageRoles).await?;
    lasting_change_needs_base_role(&mut authed, &grant, Action::UserRoleChanged).await?;
    let role = parse_role(&body.role)?;
    // Through a token too: a token acts for its creator.
    if authed.principal.acting_user() == id {
        return Err(AuthError::Conflict("admins cannot change their own role").into());
    }
    within_base_role(&authed, role)?;
    let now = authed.sdk().now();
    let before = directory::get(authed.tx().await?, id).await?;
    may_manage(&authed, &before)?;
    directory::set_role(authed.tx().await?, id, role, now).await?;
    let revoked = session_store::revoke_all(authed.tx().await?, id, None, now).await?;
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
    let grant = authed.require(Permission::ManageUsers).await?;
    if status == UserStatus::Active {
        // A re-enabled account outlives the elevation as a new one would.
        lasting_change_needs_base_role(&mut authed, &grant, Action::UserEnabled).await?;
    }
    if authed.principal.acting_user() == id {
        return Err(AuthError::Conflict("admins cannot disable themselves").into());
    }
    let now = authed.sdk().now();
    let target = directory::get(authed.tx().await?, id).await?;
    may_manage(&authed, &target)?;
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
    directory::set_status(authed.tx().await?, id, status, now).await?;
    let (action, revoked) = match status {
        UserStatus::Disabled => (
            Action::UserDisabled,
            session_store::revoke_all(authed.tx().await?, id, None, now).await?,
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
    let now = authed.sdk().now();
    directory::get(authed.tx().await?, id).await?;
    let revoked = session_store::revoke_all(authed.tx().await?, id, None, now).await?;
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
    let user = directory::get(authed.tx().await?, id).await?;
    let email = Email::parse(&user.email)?;
    let org = authed.org();
    // In the admin's transaction: the unlock takes effect with its audit event. Both the
    // password's and the second factor's locks are lifted.
    let throttle = authed.sdk().auth().throttle().clone();
    let keys = [
        ThrottleKey::Account(org, &email),
        ThrottleKey::SecondFactor(org, id),
    ];
    let unlocked = throttle.unlock(authed.tx().await?.conn(), &keys).await?;
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
    let policy = directory::org_policy(authed.tx().await?).await?;
    authed.commit().await?;
    Ok(Json(policy))
}

/// `PUT /api/org/policy`: require MFA; require a second admin for elevation. Switching
/// the second-admin rule off is only proposed (202 with the pending change): another admin
/// approves it with [`approve_policy_change`]. The rest of the policy applies at once.
pub(crate) async fn set_policy(
    mut authed: Authed,
    Json(wanted): Json<OrgPolicy>,
) -> ApiResult<Response> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let current = directory::org_policy(authed.tx().await?).await?;
    if wanted != current {
        // The sign-in policy (MFA required, the second-admin rule) outlives any elevation.
        lasting_change_needs_base_role(&mut authed, &grant, Action::OrgPolicyChanged).await?;
    }
    let waits = policy_change::needs_second_admin(current, wanted);
    let applied = OrgPolicy {
        elevation_needs_second_admin: if waits {
            current.elevation_needs_second_admin
        } else {
            wanted.elevation_needs_second_admin
        },
        ..wanted
    };
    if applied != current {
        directory::set_org_policy(authed.tx().await?, applied).await?;
        let event = authed
            .event(Action::OrgPolicyChanged, Outcome::Success)
            .target("org:policy")
            .context(json!({ "from": current, "to": applied }));
        authed.record(event).await?;
    }
    if !waits {
        authed.commit().await?;
        return Ok(Json(applied).into_response());
    }
    let now = authed.sdk().now();
    let by = authed.principal.acting_user();
    let change = policy_change::propose(authed.tx().await?, by, now).await?;
    let event = authed
        .event(Action::OrgPolicyChangeRequested, Outcome::Success)
        .target(format!("policy_change:{}", change.id))
        .context(json!({ "setting": change.setting, "value": change.value }));
    authed.record(event).await?;
    authed.commit().await?;
    let body = json!({ "policy": applied, "pending_change": change });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /api/org/policy/changes`: proposals waiting for a second admin.
pub(crate) async fn list_policy_changes(mut authed: Authed) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageUsers).await?;
    let now = authed.sdk().now();
    let changes = policy_change::pending(authed.tx().await?, now).await?;
    authed.commit().await?;
    Ok(Json(json!({ "changes": changes })))
}

/// `POST /api/org/policy/changes/{change}/approve`: a second admin — in a session, with
/// the base role (not an elevation), and not the proposer — puts a proposal into force.
pub(crate) async fn approve_policy_change(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let approver = acting_user(&authed);
    let refusal = match approver {
        None => Some("a second admin approves in a session, not with a token"),
        Some(_) if grant.via_elevation.is_some() => {
            Some("a second admin holds the role without elevation")
        }
        Some(_) => None,
    };
    let result = match (refusal, approver) {
        (None, Some(by)) => {
            let now = authed.sdk().now();
            policy_change::approve(authed.tx().await?, id, by, now).await
        }
        _ => Err(AuthError::Forbidden),
    };
    let change = match result {
        Ok(change) => change,
        Err(e @ (AuthError::SelfApproval | AuthError::Forbidden)) => {
            authed.abandon().await;
            let reason = refusal.unwrap_or("the proposer cannot approve their own change");
            let event = authed
                .event(Action::OrgPolicyChangeRefused, Outcome::Denied)
                .target(format!("policy_change:{id}"))
                .context(json!({ "reason": reason }));
            authed.sdk().record(event).await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let event = authed
        .event(Action::OrgPolicyChanged, Outcome::Success)
        .target(format!("policy_change:{id}"))
        .context(json!({
            "setting": change.setting, "value": change.value,
            "requested_by": change.requested_by.to_string(),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!(change)))
}

/// Refuses (and records) an elevation action whose permission itself came from an
/// elevation: one elevation never grants or approves another, so a chain of them cannot
/// outlast the first.
async fn refuse_chained_elevation(
    authed: &mut Authed,
    grant: procuhelp_auth::Grant,
    target: String,
) -> ApiResult<()> {
    if grant.via_elevation.is_none() {
        return Ok(());
    }
    authed.abandon().await;
    let event = authed
        .event(Action::ElevationRefused, Outcome::Denied)
        .target(target)
        .context(json!({ "reason": "an elevation cannot grant or approve another" }));
    authed.sdk().record(event).await?;
    Err(AuthError::Forbidden.into())
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
    let now = authed.sdk().now();
    let (list, expired) = elevation::list(authed.tx().await?, now).await?;
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
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_chained_elevation(&mut authed, grant, format!("user:{}", body.user)).await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let role = parse_role(&body.role)?;
    if !(1..=480).contains(&body.minutes) {
        return Err(AuthError::Invalid {
            field: "minutes",
            problem: "must be between 1 and 480",
        }
        .into());
    }
    let now = authed.sdk().now();
    let policy = directory::org_policy(authed.tx().await?).await?;
    let request = ElevationRequest {
        user: body.user,
        role,
        reason: body.reason,
        duration: time::Duration::minutes(body.minutes),
    };
    let e = elevation::request(
        authed.tx().await?,
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
    let now = authed.sdk().now();
    session_store::revoke_all(authed.tx().await?, e.user, None, now).await?;
    record_elevation(authed, e, Action::ElevationGranted).await
}

/// `POST /api/elevations/{id}/approve`: a second admin (neither the requester nor the
/// elevated user) approves.
pub(crate) async fn approve_elevation(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let grant = authed.require(Permission::ManageElevation).await?;
    refuse_chained_elevation(&mut authed, grant, format!("elevation:{id}")).await?;
    let by = acting_user(&authed).ok_or(AuthError::Forbidden)?;
    let now = authed.sdk().now();
    let result = elevation::approve(authed.tx().await?, id, by, now).await;
    let e = match result {
        Ok(e) => e,
        Err(AuthError::SelfApproval) => {
            authed.abandon().await;
            let event = authed
                .event(Action::ElevationRefused, Outcome::Denied)
                .target(format!("elevation:{id}"))
                .context(json!({ "reason": "self-approval" }));
            authed.sdk().record(event).await?;
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
    let now = authed.sdk().now();
    let e = elevation::revoke(authed.tx().await?, id, now).await?;
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

/// `POST /api/tokens`: an API token for a service account (shown once). Its role is at
/// most the creator's *base* role; minted with a permission only an elevation gave, it
/// ends with that elevation (expiry or revocation).
pub(crate) async fn create_token(
    mut authed: Authed,
    Json(body): Json<TokenBody>,
) -> ApiResult<Json<Value>> {
    let grant = authed.require(Permission::ManageUsers).await?;
    let session = authed.principal.session()?;
    let by = session.user;
    let under = match (grant.via_elevation, session.elevation) {
        (Some(id), Some(e)) if e.id == id => Some(api_token::MintedUnder {
            elevation: id,
            expires_at: e.expires_at,
        }),
        (Some(_), _) => return Err(AuthError::Internal.into()),
        (None, _) => None,
    };
    let role = parse_role(&body.role)?;
    within_base_role(&authed, role)?;
    if !(1..=365).contains(&body.days) {
        return Err(ApiError::Invalid("days"));
    }
    let now = authed.sdk().now();
    let (id, credential) = api_token::issue(
        authed.tx().await?,
        &body.name,
        role,
        time::Duration::days(body.days),
        by,
        under,
        now,
    )
    .await?;
    let event = authed
        .event(Action::ApiTokenCreated, Outcome::Success)
        .target(format!("api_token:{id}"))
        .context(json!({
            "name": body.name, "role": role, "days": body.days,
            "elevation": under.map(|u| u.elevation),
        }));
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
    let now = authed.sdk().now();
    if !api_token::revoke(authed.tx().await?, id, now).await? {
        return Err(AuthError::NotFound.into());
    }
    let event = authed
        .event(Action::ApiTokenRevoked, Outcome::Success)
        .target(format!("api_token:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": id })))
}
