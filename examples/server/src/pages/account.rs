//! Sign-in, the second factor, accepting an invitation, and the account settings: TOTP
//! (QR code and the secret as text, confirmation, recovery codes shown once, disabling
//! with the password and a code), sessions with revoke, the password.
//!
//! Each handler calls what its `/api/...` twin calls ([`procuhelp_axum::account`]), so
//! throttling, lockout, auditing and session rotation are the same; a form posted from
//! another site is refused (`Sec-Fetch-Site`), so nobody signs a victim into an account of
//! theirs (login CSRF).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use base64::Engine as _;
use maud::{Markup, html};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::session::{self, SessionStage, clear_cookie};
use procuhelp_auth::{AuthError, Issued, directory};
use procuhelp_axum::{Access, Authed, Client, Error, RouteTable, Sdk};
use procuhelp_core::{OrgId, SecretText};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::csrf_field;
use super::{Nav, error_page, page, see_other, when};
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::{Public, SignedIn};
    RouteTable::new()
        .get("/login", Public, login_page)
        .post("/login", Public, login)
        .get("/login/mfa", Public, second_factor_page)
        .post("/login/mfa", Public, second_factor)
        .get("/invitations/accept", Public, invitation_page)
        .post("/invitations/accept", Public, accept_invitation)
        .post("/logout", SignedIn, logout)
        .get("/account", SignedIn, account_page)
        .post("/account/mfa/enrol", SignedIn, mfa_enrol)
        .post("/account/mfa/confirm", SignedIn, mfa_confirm)
        .post("/account/mfa/disable", SignedIn, mfa_disable)
        .post("/account/password", SignedIn, change_password)
        .post(
            "/account/sessions/{session}/revoke",
            SignedIn,
            revoke_session,
        )
}

/// A browser's form from another site (or a frame of one) is refused: only forms of this
/// origin, or a navigation the person started, reach sign-in. Fail closed: a request
/// without `Sec-Fetch-Site` (every current browser sends it; scripts use `/api/login`) is
/// refused too.
pub(super) fn from_this_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v, "same-origin" | "none"))
}

pub(super) fn cross_site() -> Response {
    (
        StatusCode::FORBIDDEN,
        page(
            "Refused",
            None,
            html! {
                h1 { "Refused" }
                p.notice.error role="alert" data-error="cross_site" {
                    "This form can only be sent from ProcuHelp itself."
                }
            },
        ),
    )
        .into_response()
}

/// A new session: its cookie, then on to `to`.
fn signed_in(issued: &Issued, to: &str) -> Response {
    (
        AppendHeaders([(header::SET_COOKIE, issued.credential.set_cookie())]),
        see_other(to),
    )
        .into_response()
}

/// Where a session of `stage` goes next.
fn next_step(stage: SessionStage) -> &'static str {
    match stage {
        SessionStage::SecondFactor => "/login/mfa",
        SessionStage::Enrolment | SessionStage::Full => "/account",
    }
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    org: Option<String>,
    notice: Option<String>,
}

/// Fixed notices a redirect may name (never text from the request).
fn notice(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "accepted" => Some("Your password is set. Sign in to continue."),
        "signed_out" => Some("You are signed out."),
        "password" => Some("Your password is changed; your other sessions are signed out."),
        "mfa_disabled" => Some("Two-step sign-in is off."),
        "session_revoked" => Some("The session is signed out."),
        _ => None,
    }
}

fn login_form(org: &str, error: Option<&str>, info: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.notice.error role="alert" data-error="sign_in" { (e) } }
        @if let Some(i) = info { p.notice.ok role="status" { (i) } }
        section {
            form.stack method="post" action="/login" {
                label { "Organisation ID" input name="org" value=(org) required autocomplete="organization" maxlength="64"; }
                label { "E-mail" input name="email" type="email" required autocomplete="username" maxlength="320"; }
                label { "Password" input name="password" type="password" required autocomplete="current-password" maxlength="1024"; }
                button type="submit" { "Sign in" }
            }
        }
    }
}

/// `GET /login?org=…`: the sign-in form.
async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let org = q.org.unwrap_or_default();
    page(
        "Sign in",
        None,
        login_form(&org, None, notice(q.notice.as_deref())),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    org: String,
    email: String,
    password: String,
}

/// `POST /login`: as `POST /api/login`.
async fn login(
    State(sdk): State<Sdk>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !from_this_site(&headers) {
        return cross_site();
    }
    let password = SecretText::new(form.password);
    // A malformed organisation id is answered like an unknown one (same work, same page).
    let org = form
        .org
        .trim()
        .parse::<OrgId>()
        .unwrap_or_else(|_| OrgId::new());
    match sdk.auth().login(org, &form.email, password, &client).await {
        Ok(issued) => signed_in(&issued, next_step(issued.stage)),
        Err(e) => {
            let e = Error::from(e);
            let (status, _, message) = e.parts();
            (
                status,
                page("Sign in", None, login_form(&form.org, Some(message), None)),
            )
                .into_response()
        }
    }
}

fn code_form(action: &str, csrf: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.notice.error role="alert" data-error="code" { (e) } }
        form.stack method="post" action=(action) {
            (csrf_field(csrf))
            label { "Code from your authenticator app (or a recovery code)"
                input name="code" required autocomplete="one-time-code" inputmode="numeric" maxlength="32"; }
            button type="submit" { "Continue" }
        }
    }
}

/// `GET /login/mfa`: the second step, for a session that passed its password.
async fn second_factor_page(authed: Result<Authed, Error>) -> Response {
    let authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    match authed.principal.session() {
        Ok(s) if s.stage == SessionStage::SecondFactor => {}
        Ok(_) => return see_other("/account"),
        Err(e) => return error_page(&e.into(), None),
    }
    let csrf = authed.credential.csrf_token();
    page(
        "Two-step sign-in",
        None,
        html! {
            h1 { "Two-step sign-in" }
            section { (code_form("/login/mfa", &csrf, None)) }
        },
    )
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

/// `POST /login/mfa`: as `POST /api/login/mfa`.
async fn second_factor(mut authed: Authed, Form(form): Form<CodeForm>) -> Response {
    let result = async {
        let session = authed.principal.session()?.clone();
        let auth = authed.sdk().auth().clone();
        let client = authed.client.clone();
        authed.commit().await?;
        Ok::<_, Error>(
            auth.complete_second_factor(&authed.credential, &session, &form.code, &client)
                .await?,
        )
    }
    .await;
    match result {
        Ok(issued) => signed_in(&issued, "/account"),
        Err(e) => {
            let (status, _, message) = e.parts();
            let csrf = authed.credential.csrf_token();
            (
                status,
                page(
                    "Two-step sign-in",
                    None,
                    html! {
                        h1 { "Two-step sign-in" }
                        section { (code_form("/login/mfa", &csrf, Some(message))) }
                    },
                ),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct InvitationQuery {
    token: Option<String>,
}

fn invitation_form(token: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Welcome to ProcuHelp" }
        @if let Some(e) = error { p.notice.error role="alert" data-error="invitation" { (e) } }
        section {
            p { "Choose your password (at least 12 characters) to accept the invitation." }
            form.stack method="post" action="/invitations/accept" {
                input type="hidden" name="token" value=(token);
                label { "New password" input name="password" type="password" required minlength="12" maxlength="1024" autocomplete="new-password"; }
                button type="submit" { "Set password" }
            }
        }
    }
}

/// `GET /invitations/accept?token=…`: the link of an invitation e-mail.
async fn invitation_page(Query(q): Query<InvitationQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    // The link's token stays out of the Referer of anything this page loads.
    (
        [(header::REFERRER_POLICY, "no-referrer")],
        page("Accept invitation", None, invitation_form(&token, None)),
    )
        .into_response()
}

#[derive(Deserialize)]
struct InvitationForm {
    token: String,
    password: String,
}

/// `POST /invitations/accept`: as `POST /api/invitations/accept`; on to sign-in.
async fn accept_invitation(
    State(sdk): State<Sdk>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<InvitationForm>,
) -> Response {
    if !from_this_site(&headers) {
        return cross_site();
    }
    let password = SecretText::new(form.password);
    let accepted = match session::Credential::parse(&form.token) {
        Ok(credential) => sdk
            .auth()
            .accept_invitation(&credential, password, &client)
            .await
            .map(|_| credential.org)
            .map_err(Error::from),
        Err(_) => Err(AuthError::Unauthenticated.into()),
    };
    match accepted {
        Ok(org) => see_other(&format!("/login?org={org}&notice=accepted")),
        Err(e) => {
            let (status, code, message) = e.parts();
            let message = if code == "unauthenticated" {
                "This invitation link is not valid: it was used already, it expired, or it was mistyped. Ask your administrator for a new one."
            } else {
                message
            };
            (
                status,
                page(
                    "Accept invitation",
                    None,
                    invitation_form(&form.token, Some(message)),
                ),
            )
                .into_response()
        }
    }
}

/// `POST /logout`: as `POST /api/logout`.
async fn logout(mut authed: Authed) -> Response {
    let org = authed.org();
    let result = async {
        let session = authed.principal.session()?.session;
        let now = authed.sdk().now();
        session::revoke(authed.tx().await?, session, None, now).await?;
        let event = authed.event(Action::Logout, Outcome::Success);
        authed.record(event).await?;
        authed.commit().await
    }
    .await;
    match result {
        Ok(()) => (
            AppendHeaders([(header::SET_COOKIE, clear_cookie())]),
            see_other(&format!("/login?org={org}&notice=signed_out")),
        )
            .into_response(),
        Err(e) => error_page(&e, None),
    }
}

#[derive(Deserialize, Default)]
struct AccountQuery {
    notice: Option<String>,
}

/// The header of a signed-in person's pages.
pub(super) async fn nav(authed: &mut Authed) -> Result<(Nav, directory::UserRecord), Error> {
    let user = authed.principal.session()?.user;
    let record = directory::get(authed.tx().await?, user).await?;
    let nav = Nav {
        name: record.display_name.clone(),
        csrf: authed.credential.csrf_token(),
        links: super::nav_links(authed),
    };
    Ok((nav, record))
}

/// `GET /account`: two-step sign-in, sessions, password.
async fn account_page(authed: Result<Authed, Error>, Query(q): Query<AccountQuery>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        let session = authed.principal.session()?.clone();
        if session.stage == SessionStage::SecondFactor {
            return Ok(see_other("/login/mfa"));
        }
        let (nav, me) = nav(&mut authed).await?;
        let now = authed.sdk().now();
        let sessions = if session.stage == SessionStage::Full {
            session::list(authed.tx().await?, session.user, now).await?
        } else {
            Vec::new()
        };
        authed.commit().await?;
        let csrf = &nav.csrf;
        let body = html! {
            h1 { "Your account" }
            @if let Some(n) = notice(q.notice.as_deref()) { p.notice.ok role="status" { (n) } }
            @if session.stage == SessionStage::Enrolment {
                p.notice.error role="alert" data-error="mfa_required" {
                    "Your organisation requires two-step sign-in: set it up to continue."
                }
            }
            section aria-labelledby="mfa-h" {
                h2 id="mfa-h" { "Two-step sign-in" }
                @if me.has_mfa() {
                    p data-mfa="on" { "On: signing in asks for a code from your authenticator app." }
                    form.stack method="post" action="/account/mfa/disable" {
                        (csrf_field(csrf))
                        label { "Password" input name="password" type="password" required autocomplete="current-password" maxlength="1024"; }
                        label { "Code" input name="code" required autocomplete="one-time-code" inputmode="numeric" maxlength="32"; }
                        button.danger type="submit" { "Turn off two-step sign-in" }
                    }
                } @else {
                    p data-mfa="off" { "Off. Turn it on to protect your account with an authenticator app." }
                    form method="post" action="/account/mfa/enrol" {
                        (csrf_field(csrf))
                        button type="submit" { "Set up two-step sign-in" }
                    }
                }
            }
            @if session.stage == SessionStage::Full {
                section aria-labelledby="sessions-h" {
                    h2 id="sessions-h" { "Where you are signed in" }
                    table {
                        thead { tr { th scope="col" { "Browser" } th scope="col" { "Signed in" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Action" } } } }
                        tbody {
                            @for s in &sessions {
                                tr {
                                    td { (s.user_agent.as_deref().unwrap_or("unknown")) }
                                    td { (when(s.created_at)) }
                                    td { (when(s.last_seen_at)) }
                                    td {
                                        @if s.id == session.session { "this session" } @else {
                                            form.inline method="post" action=(format!("/account/sessions/{}/revoke", s.id)) {
                                                (csrf_field(csrf))
                                                button.secondary type="submit" { "Sign out" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="password-h" {
                    h2 id="password-h" { "Password" }
                    form.stack method="post" action="/account/password" {
                        (csrf_field(csrf))
                        label { "Current password" input name="current" type="password" required autocomplete="current-password" maxlength="1024"; }
                        label { "New password" input name="new" type="password" required minlength="12" maxlength="1024" autocomplete="new-password"; }
                        button type="submit" { "Change password" }
                    }
                }
            }
        };
        Ok::<_, Error>(page("Your account", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e, None))
}

/// The secret of an `otpauth://` URI, for people who type it instead of scanning.
fn otpauth_secret(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
}

/// `POST /account/mfa/enrol`: as `POST /api/mfa/enrol`; the QR code, the secret as text
/// and the confirmation form.
async fn mfa_enrol(mut authed: Authed) -> Response {
    let result = async {
        let session = authed.principal.session()?.clone();
        if session.stage == SessionStage::SecondFactor {
            return Err(AuthError::SecondFactorRequired.into());
        }
        let (nav, _) = nav(&mut authed).await?;
        let auth = authed.sdk().auth().clone();
        let client = authed.client.clone();
        let enrolment = auth
            .start_enrolment(authed.tx().await?, &session, &client)
            .await?;
        authed.commit().await?;
        let qr = base64::engine::general_purpose::STANDARD.encode(enrolment.qr_svg.expose());
        let secret = otpauth_secret(enrolment.uri.expose()).unwrap_or_default();
        let body = html! {
            h1 { "Set up two-step sign-in" }
            section {
                ol {
                    li { "Scan this code with your authenticator app:" br;
                        img.qr src=(format!("data:image/svg+xml;base64,{qr}")) alt="QR code holding your two-step sign-in secret"; }
                    li { "Or type this secret into it: " span.secret id="totp-secret" { (secret) } }
                    li { "Enter the code the app shows." }
                }
                (code_form("/account/mfa/confirm", &nav.csrf, None))
            }
        };
        Ok::<_, Error>(page("Set up two-step sign-in", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e, None))
}

/// `POST /account/mfa/confirm`: as `POST /api/mfa/confirm`; the recovery codes, shown
/// this once, and the new session.
async fn mfa_confirm(mut authed: Authed, Form(form): Form<CodeForm>) -> Response {
    let result = async {
        let session = authed.principal.session()?.clone();
        if session.stage == SessionStage::SecondFactor {
            return Err(AuthError::SecondFactorRequired.into());
        }
        let (mut nav, _) = nav(&mut authed).await?;
        let auth = authed.sdk().auth().clone();
        let client = authed.client.clone();
        let (issued, codes) = auth
            .confirm_enrolment(authed.tx().await?, &session, &form.code, &client)
            .await?;
        authed.commit().await?;
        nav.csrf = issued.credential.csrf_token();
        let body = html! {
            h1 { "Two-step sign-in is on" }
            section {
                h2 { "Your recovery codes" }
                p { "Each code signs you in once if you lose your phone. Keep them somewhere safe: this page shows them only now." }
                ul.codes id="recovery-codes" { @for c in &codes.codes { li { (c.expose()) } } }
                p { a href="/account" { "Continue to your account" } }
            }
        };
        Ok::<_, Error>((
            AppendHeaders([(header::SET_COOKIE, issued.credential.set_cookie())]),
            page("Two-step sign-in is on", Some(&nav), body),
        )
            .into_response())
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) if e.parts().1 == "invalid_code" => {
            let csrf = authed.credential.csrf_token();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                page(
                    "Set up two-step sign-in",
                    None,
                    html! {
                        h1 { "Set up two-step sign-in" }
                        p.notice.error role="alert" data-error="invalid_code" {
                            "That code did not match. Start again to get a new secret."
                        }
                        form method="post" action="/account/mfa/enrol" {
                            (csrf_field(&csrf))
                            button type="submit" { "Start again" }
                        }
                    },
                ),
            )
                .into_response()
        }
        Err(e) => error_page(&e, None),
    }
}

#[derive(Deserialize)]
struct ReauthForm {
    password: String,
    code: String,
}

/// `POST /account/mfa/disable`: as `POST /api/mfa/disable` (password and a code).
async fn mfa_disable(mut authed: Authed, Form(form): Form<ReauthForm>) -> Response {
    let result = async {
        authed.require_signed_in().await?;
        let session = authed.principal.session()?.clone();
        let auth = authed.sdk().auth().clone();
        let client = authed.client.clone();
        authed.commit().await?;
        auth.disable_mfa(
            &authed.credential,
            &session,
            SecretText::new(form.password),
            &form.code,
            &client,
        )
        .await?;
        Ok::<_, Error>(see_other("/account?notice=mfa_disabled"))
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e, None))
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
}

/// `POST /account/password`: as `POST /api/password`; every other session ends.
async fn change_password(mut authed: Authed, Form(form): Form<PasswordForm>) -> Response {
    let result = async {
        authed.require_signed_in().await?;
        let session = authed.principal.session()?.clone();
        let auth = authed.sdk().auth().clone();
        let client = authed.client.clone();
        authed.commit().await?;
        let issued = auth
            .change_password(
                &authed.credential,
                &session,
                SecretText::new(form.current),
                SecretText::new(form.new),
                &client,
            )
            .await?;
        Ok::<_, Error>(signed_in(&issued, "/account?notice=password"))
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e, None))
}

/// `POST /account/sessions/{session}/revoke`: as `DELETE /api/sessions/{session}`.
async fn revoke_session(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    let result = async {
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
        Ok::<_, Error>(see_other("/account?notice=session_revoked"))
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e, None))
}
