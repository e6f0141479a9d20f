//! The account router: sign-in, second factor, sign-out, the user's sessions, MFA
//! enrolment and recovery codes, and the password. Mount it with [`routes`] (or merge
//! [`table`] into yours to walk its endpoints in a permission test).
//!
//! | route | who |
//! |---|---|
//! | `POST /api/login` (org, email, password) | anyone |
//! | `POST /api/login/mfa` (code) | a session waiting for its second factor |
//! | `POST /api/logout`, `GET /api/session` | any session |
//! | `GET /api/sessions`, `DELETE /api/sessions/{session}`, `POST /api/sessions/revoke-others` | signed in |
//! | `POST /api/password`, `POST /api/mfa/{enrol,confirm,disable,recovery-codes}` | signed in |

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::header;
use axum::response::{AppendHeaders, IntoResponse, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::recovery::RecoveryCodes;
use procuhelp_auth::session::{self, SessionPrincipal, SessionStage, clear_cookie};
use procuhelp_auth::{AuthError, Authenticator, ClientInfo, Issued};
use procuhelp_core::{OrgId, SecretText};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{Access, Authed, Client, Error, Result, RouteTable, Sdk};

/// The account routes with who may call each.
pub fn table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::{Public, SignedIn};
    RouteTable::new()
        .post("/api/login", Public, login)
        .post("/api/login/mfa", Public, login_second_factor)
        .post("/api/invitations/accept", Public, accept_invitation)
        .post("/api/logout", SignedIn, logout)
        .get("/api/session", SignedIn, whoami)
        .get("/api/sessions", SignedIn, list_sessions)
        .delete("/api/sessions/{session}", SignedIn, revoke_session)
        .post(
            "/api/sessions/revoke-others",
            SignedIn,
            revoke_other_sessions,
        )
        .post("/api/password", SignedIn, change_password)
        .post("/api/mfa/enrol", SignedIn, mfa_enrol)
        .post("/api/mfa/confirm", SignedIn, mfa_confirm)
        .post("/api/mfa/disable", SignedIn, mfa_disable)
        .post("/api/mfa/recovery-codes", SignedIn, mfa_recovery_codes)
}

/// The account router ([`table`]'s routes).
pub fn routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table().into_router()
}

/// The response that hands out a new session: cookie plus the CSRF token to echo.
fn issued(issued: &Issued, extra: serde_json::Value) -> Response {
    let mut body = json!({
        "stage": issued.stage,
        "user": issued.user.to_string(),
        "csrf_token": issued.credential.csrf_token(),
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (
        AppendHeaders([(header::SET_COOKIE, issued.credential.set_cookie())]),
        Json(body),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    org: String,
    email: String,
    password: String,
}

/// `POST /api/login`: organisation, email and password.
async fn login(
    State(sdk): State<Sdk>,
    Client(client): Client,
    Json(body): Json<LoginBody>,
) -> Result<Response> {
    let password = SecretText::new(body.password);
    // A malformed org id is answered like an unknown one.
    let Ok(org) = body.org.parse::<OrgId>() else {
        let _ = sdk
            .auth()
            .login(OrgId::new(), &body.email, password, &client)
            .await;
        return Err(AuthError::InvalidCredentials.into());
    };
    let signed_in = sdk
        .auth()
        .login(org, &body.email, password, &client)
        .await?;
    Ok(issued(&signed_in, json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationBody {
    token: String,
    password: String,
}

/// `POST /api/invitations/accept`: an invited user sets their first password with the
/// token they were given. Every token that cannot be redeemed gets the same 401; no
/// password is hashed before the token proved live.
async fn accept_invitation(
    State(sdk): State<Sdk>,
    Client(client): Client,
    Json(body): Json<InvitationBody>,
) -> Result<Json<serde_json::Value>> {
    let password = SecretText::new(body.password);
    let Ok(credential) = procuhelp_auth::session::Credential::parse(&body.token) else {
        return Err(AuthError::Unauthenticated.into());
    };
    let user = sdk
        .auth()
        .accept_invitation(&credential, password, &client)
        .await?;
    Ok(Json(
        json!({ "org": credential.org.to_string(), "user": user.to_string() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

/// `POST /api/login/mfa`: the second factor (TOTP or recovery code).
async fn login_second_factor(mut authed: Authed, Json(body): Json<CodeBody>) -> Result<Response> {
    let session = authed.principal.session()?.clone();
    let auth = authed.sdk().auth().clone();
    let client = authed.client.clone();
    // The request's transaction ends before the attempt is reserved: no connection is
    // held while the throttle takes one (the authenticator opens its own transaction).
    authed.commit().await?;
    let new = auth
        .complete_second_factor(&authed.credential, &session, &body.code, &client)
        .await?;
    Ok(issued(&new, json!({})))
}

/// `POST /api/logout`: revokes this session.
async fn logout(mut authed: Authed) -> Result<Response> {
    let session = authed.principal.session()?.session;
    let now = authed.sdk().now();
    session::revoke(authed.tx().await?, session, None, now).await?;
    let event = authed.event(Action::Logout, Outcome::Success);
    authed.record(event).await?;
    authed.commit().await?;
    Ok((
        AppendHeaders([(header::SET_COOKIE, clear_cookie())]),
        Json(json!({ "status": "signed out" })),
    )
        .into_response())
}

/// `GET /api/session`: who am I, with what role, and the CSRF token to echo.
async fn whoami(mut authed: Authed) -> Result<Json<serde_json::Value>> {
    let body = match &authed.principal {
        procuhelp_auth::Principal::User(s) => json!({
            "org": authed.org().to_string(),
            "user": s.user.to_string(),
            "stage": s.stage,
            "role": s.effective_role(),
            "base_role": s.base_role,
            "elevation": s.elevation.map(|e| json!({
                "id": e.id, "role": e.role,
                "expires_at": e.expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
            })),
            "amr": s.amr,
            "csrf_token": authed.credential.csrf_token(),
        }),
        procuhelp_auth::Principal::Service(t) => json!({
            "org": authed.org().to_string(),
            "service_account": t.id,
            "role": t.role,
        }),
    };
    authed.commit().await?;
    Ok(Json(body))
}

/// `GET /api/sessions`: the user's live sessions.
async fn list_sessions(mut authed: Authed) -> Result<Json<serde_json::Value>> {
    authed.require_signed_in().await?;
    let session = authed.principal.session()?.clone();
    let now = authed.sdk().now();
    let list = session::list(authed.tx().await?, session.user, now).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "current": session.session, "sessions": list }),
    ))
}

/// `DELETE /api/sessions/{id}`: revokes one of the user's own sessions.
async fn revoke_session(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>> {
    authed.require_signed_in().await?;
    let user = authed.principal.session()?.user;
    let now = authed.sdk().now();
    if !session::revoke(authed.tx().await?, id, Some(user), now).await? {
        return Err(AuthError::NotFound.into());
    }
    let event = authed
        .event(Action::SessionRevoked, Outcome::Success)
        .target(format!("session:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": id })))
}

/// `POST /api/sessions/revoke-others`: signs out everywhere else.
async fn revoke_other_sessions(mut authed: Authed) -> Result<Json<serde_json::Value>> {
    authed.require_signed_in().await?;
    let s = authed.principal.session()?.clone();
    let now = authed.sdk().now();
    let n = session::revoke_all(authed.tx().await?, s.user, Some(s.session), now).await?;
    let event = authed
        .event(Action::SessionRevokedAll, Outcome::Success)
        .context(json!({ "revoked": n, "kept_current": true }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "revoked": n })))
}

/// `POST /api/mfa/enrol`: starts TOTP enrolment (allowed to a full session, and to a
/// session whose organisation requires MFA the user does not have yet).
async fn mfa_enrol(mut authed: Authed) -> Result<Response> {
    let session = authed.principal.session()?.clone();
    if session.stage == SessionStage::SecondFactor {
        return Err(AuthError::SecondFactorRequired.into());
    }
    let auth = authed.sdk().auth().clone();
    let client = authed.client.clone();
    let enrolment = auth
        .start_enrolment(authed.tx().await?, &session, &client)
        .await?;
    authed.commit().await?;
    Ok(Json(json!({
        "otpauth_uri": enrolment.uri.expose(),
        "qr_svg": enrolment.qr_svg.expose(),
    }))
    .into_response())
}

/// `POST /api/mfa/confirm`: confirms enrolment with a code; returns the recovery codes
/// (shown once) and a new session.
async fn mfa_confirm(mut authed: Authed, Json(body): Json<CodeBody>) -> Result<Response> {
    let session = authed.principal.session()?.clone();
    if session.stage == SessionStage::SecondFactor {
        return Err(AuthError::SecondFactorRequired.into());
    }
    let auth = authed.sdk().auth().clone();
    let client = authed.client.clone();
    let (new, codes) = auth
        .confirm_enrolment(authed.tx().await?, &session, &body.code, &client)
        .await?;
    authed.commit().await?;
    Ok(issued(&new, recovery_codes(&codes)))
}

/// `{"recovery_codes": [...]}`: the codes shown to the user once.
fn recovery_codes(codes: &RecoveryCodes) -> serde_json::Value {
    let codes: Vec<&str> = codes.codes.iter().map(|c| c.expose()).collect();
    json!({ "recovery_codes": codes })
}

/// What a signed-in user's re-check of their password (and code) needs: the session, the
/// authenticator and the client. The request's transaction is committed first: re-checks
/// are throttled like sign-in, and the authenticator runs its own transactions.
async fn recheck(authed: &mut Authed) -> Result<(SessionPrincipal, Authenticator, ClientInfo)> {
    authed.require_signed_in().await?;
    let session = authed.principal.session()?.clone();
    let auth = authed.sdk().auth().clone();
    let client = authed.client.clone();
    authed.commit().await?;
    Ok((session, auth, client))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReauthBody {
    password: String,
    code: String,
}

/// `POST /api/mfa/disable`: fresh password and code required.
async fn mfa_disable(
    mut authed: Authed,
    Json(body): Json<ReauthBody>,
) -> Result<Json<serde_json::Value>> {
    let (session, auth, client) = recheck(&mut authed).await?;
    auth.disable_mfa(
        &authed.credential,
        &session,
        SecretText::new(body.password),
        &body.code,
        &client,
    )
    .await?;
    Ok(Json(json!({ "mfa": "disabled" })))
}

/// `POST /api/mfa/recovery-codes`: new recovery codes (fresh password and code).
async fn mfa_recovery_codes(
    mut authed: Authed,
    Json(body): Json<ReauthBody>,
) -> Result<Json<serde_json::Value>> {
    let (session, auth, client) = recheck(&mut authed).await?;
    let codes = auth
        .regenerate_recovery_codes(
            &authed.credential,
            &session,
            SecretText::new(body.password),
            &body.code,
            &client,
        )
        .await?;
    Ok(Json(recovery_codes(&codes)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current: String,
    new: String,
}

/// `POST /api/password`: changes the password; every session of the user is revoked
/// and a new one issued.
async fn change_password(mut authed: Authed, Json(body): Json<PasswordBody>) -> Result<Response> {
    let (session, auth, client) = recheck(&mut authed).await?;
    let new = auth
        .change_password(
            &authed.credential,
            &session,
            SecretText::new(body.current),
            SecretText::new(body.new),
            &client,
        )
        .await
        .map_err(Error::from)?;
    Ok(issued(&new, json!({})))
}
