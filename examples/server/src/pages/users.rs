//! Users (admins): the organisation's people, and inviting someone by e-mail — the admin
//! types an address and a name, never a password; the person sets their own through the
//! link. Who may add whom is the SDK's rule ([`procuhelp_axum::admin::invite_user`], as
//! `POST /api/users`). A person's page: their role (changing it ends their sessions),
//! disable and enable, unlock sign-in, sign out everywhere — each the SDK function its
//! API twin calls ([`procuhelp_axum::admin::change_role`] and the others).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use procuhelp_auth::directory::UserStatus;
use procuhelp_auth::{AuthError, Permission, Role, directory};
use procuhelp_axum::admin;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::UserId;
use serde::Deserialize;

use super::account::nav;
use super::layout::csrf_field;
use super::{can, error_page, error_page_back, page, parse_form, see_other, when};
use crate::mail::Mail;
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/users", Needs(P::ManageUsers), list_page)
        .post("/users/invite", Needs(P::ManageUsers), invite)
        .get("/users/{user}", Needs(P::ManageUsers), user_page)
        .post("/users/{user}/role", Needs(P::ManageRoles), change_role)
        .post("/users/{user}/disable", Needs(P::ManageUsers), disable)
        .post("/users/{user}/enable", Needs(P::ManageUsers), enable)
        .post("/users/{user}/unlock", Needs(P::ManageUsers), unlock)
        .post(
            "/users/{user}/sessions/revoke",
            Needs(P::ManageUsers),
            sign_out_everywhere,
        )
}

/// The list and the form, with what happened (an invitation sent, or its link).
async fn render(authed: &mut Authed, notice: Option<maud::Markup>) -> Result<Response, Error> {
    let (nav, _) = nav(authed).await?;
    let users = directory::list(authed.tx().await?).await?;
    authed.commit().await?;
    let may_set_roles = can(authed, Permission::ManageRoles);
    let body = html! {
        h1 { "Users" }
        @if let Some(n) = notice { (n) }
        section aria-labelledby="invite-h" {
            h2 id="invite-h" { "Invite someone" }
            p.muted { "They get an e-mail with a link to set their own password." }
            form.stack method="post" action="/users/invite" {
                (csrf_field(&nav.csrf))
                label { "E-mail" input name="email" type="email" required maxlength="320"; }
                label { "Name" input name="display_name" required maxlength="200"; }
                @if may_set_roles {
                    label { "Role" select name="role" {
                        @for role in Role::ALL.iter().rev() {
                            option value=(role.as_str()) selected[*role == Role::least_privileged()] { (role.as_str()) }
                        }
                    } }
                }
                button type="submit" { "Send the invitation" }
            }
        }
        section aria-labelledby="users-h" {
            h2 id="users-h" { "People" }
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "E-mail" } th scope="col" { "Role" } th scope="col" { "Status" } } }
                tbody {
                    @for u in &users {
                        tr { td { a href=(format!("/users/{}", u.id)) { (u.display_name) } } td { (u.email) } td { (u.role.as_str()) } td { (status_label(u.status)) } }
                    }
                }
            }
        }
    };
    Ok(page("Users", Some(&nav), body))
}

/// `GET /users`.
async fn list_page(authed: Result<Authed, Error>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        render(&mut authed, None).await
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/users"))
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    display_name: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /users/invite`: the account and its link, e-mailed before the commit (if the
/// message cannot be handed over, nothing is kept); with no mail configured, the link is
/// shown once.
async fn invite(State(mail): State<Mail>, mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        let form: InviteForm = parse_form(&body)?;
        let role = form
            .role
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<Role>().map_err(|_| Error::Invalid("role")))
            .transpose()?;
        let (user, token) =
            procuhelp_axum::admin::invite_user(&mut authed, &form.email, &form.display_name, role)
                .await?;
        let path = format!("/invitations/accept?token={}", token.expose());
        let notice = if mail.is_enabled() {
            let text = format!(
                "Hello {},\n\nyou are invited to ProcuHelp. Set your password with this link \
                 (it works once, for 7 days):\n\n{}\n\nProcuHelp",
                user.display_name,
                mail.link(&path)
            );
            mail.send(&user.email, "Your invitation to ProcuHelp", &text)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "user invitation e-mail not sent");
                    AuthError::Conflict("the e-mail could not be sent; nothing was kept")
                })?;
            html! { p.notice.ok role="status" data-invitation="sent" { "Invitation sent to " (user.email) "." } }
        } else {
            html! {
                p.notice.ok role="status" data-invitation="link" {
                    "Give this link to " (user.email) " (shown only now): "
                    a id="invitation-link" href=(path) { (path) }
                }
            }
        };
        render(&mut authed, Some(notice)).await
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/users"))
}

fn status_label(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Disabled => "disabled",
    }
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

/// The notices after a change, chosen by key (never the request's text).
const NOTICES: [(&str, &str); 7] = [
    (
        "role",
        "Role changed. Their sessions ended: they sign in again with the new role.",
    ),
    (
        "disabled",
        "Disabled. Their sessions ended and they cannot sign in.",
    ),
    ("enabled", "Enabled: they can sign in again."),
    (
        "enabled_scim",
        "Your disable is lifted, but the identity provider (SCIM) deprovisioned them too: \
         they stay disabled until it re-activates them.",
    ),
    ("unlocked", "Sign-in unlocked."),
    ("not_locked", "Sign-in was not locked; nothing changed."),
    ("signed_out", "Signed out everywhere."),
];

/// `GET /users/{user}`: a person, and what an admin may do about them.
async fn user_page(
    authed: Result<Authed, Error>,
    Path(id): Path<UserId>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        let (nav, me) = nav(&mut authed).await?;
        // Another organisation's user is not found in this one's transaction.
        let u = directory::get(authed.tx().await?, id).await?;
        let held_until = admin::sign_in_held_until(&mut authed, id).await?;
        authed.commit().await?;
        let myself = u.id == me.id;
        let may_set_roles = can(&authed, Permission::ManageRoles) && !myself;
        let at = |what: &str| format!("/users/{}/{what}", u.id);
        let csrf = &nav.csrf;
        let body = html! {
            p { a href="/users" { "← All users" } }
            h1 { (u.display_name) }
            @if let Some((key, text)) = NOTICES.iter().find(|(k, _)| Some(*k) == q.done.as_deref()) {
                p.notice.ok role="status" data-notice=(key) { (text) }
            }
            section aria-labelledby="who-h" {
                h2 id="who-h" { "Account" }
                dl {
                    dt { "E-mail" } dd { (u.email) }
                    dt { "Role" } dd data-role=(u.role.as_str()) { (u.role.as_str()) }
                    dt { "Status" } dd data-status=(status_label(u.status)) { (status_label(u.status)) }
                    dt { "Two-step sign-in" } dd data-mfa=(if u.has_mfa() { "on" } else { "off" }) {
                        (if u.has_mfa() { "Yes" } else { "No" })
                    }
                    dt { "Signing in" } dd data-locked=(if held_until.is_some() { "yes" } else { "no" }) {
                        @if let Some(until) = held_until {
                            "held back after failed attempts, until " (when(until))
                        } @else { "open" }
                    }
                }
                @if myself {
                    p.muted { "This is you: another admin changes your role or disables you." }
                }
            }
            @if may_set_roles {
                section aria-labelledby="role-h" {
                    h2 id="role-h" { "Role" }
                    form.stack method="post" action=(at("role")) {
                        (csrf_field(csrf))
                        label { "Role" select name="role" {
                            @for role in Role::ALL {
                                option value=(role.as_str()) selected[role == u.role] { (role.as_str()) }
                            }
                        } }
                        p.muted { "A new role ends their sessions: they sign in again." }
                        button type="submit" { "Change the role" }
                    }
                }
            }
            section aria-labelledby="access-h" {
                h2 id="access-h" { "Access" }
                @if !myself {
                    @if u.status == UserStatus::Active {
                        form method="post" action=(at("disable")) {
                            (csrf_field(csrf))
                            button.danger type="submit" { "Disable the account" }
                        }
                    } @else {
                        form method="post" action=(at("enable")) {
                            (csrf_field(csrf))
                            button type="submit" { "Enable the account" }
                        }
                    }
                }
                @if held_until.is_some() {
                    form method="post" action=(at("unlock")) {
                        (csrf_field(csrf))
                        button.secondary type="submit" { "Unlock sign-in" }
                    }
                }
                form method="post" action=(at("sessions/revoke")) {
                    (csrf_field(csrf))
                    button.secondary type="submit" { "Sign out everywhere" }
                }
            }
        };
        Ok::<_, Error>(page(&u.display_name, Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/users"))
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

/// Back to the person's page with the notice `done`, or the reason it was not done.
fn back(result: Result<&'static str, Error>, id: UserId) -> Response {
    match result {
        Ok(done) => see_other(&format!("/users/{id}?done={done}")),
        Err(e) => error_page_back(&e, None, &format!("/users/{id}")),
    }
}

/// `POST /users/{user}/role`.
async fn change_role(mut authed: Authed, Path(id): Path<UserId>, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageRoles).await?;
        // Another organisation's user is not found, whatever the form holds.
        directory::get(authed.tx().await?, id).await?;
        let form: RoleForm = parse_form(&body)?;
        let role = form
            .role
            .parse::<Role>()
            .map_err(|_| Error::Invalid("role"))?;
        admin::change_role(&mut authed, id, role).await?;
        Ok("role")
    }
    .await;
    back(result, id)
}

/// `POST /users/{user}/disable`.
async fn disable(mut authed: Authed, Path(id): Path<UserId>) -> Response {
    let result = admin::disable_account(&mut authed, id)
        .await
        .map(|_| "disabled");
    back(result, id)
}

/// `POST /users/{user}/enable`.
async fn enable(mut authed: Authed, Path(id): Path<UserId>) -> Response {
    let result = admin::enable_account(&mut authed, id).await.map(|c| {
        if c.still_deprovisioned_by_scim {
            "enabled_scim"
        } else {
            "enabled"
        }
    });
    back(result, id)
}

/// `POST /users/{user}/unlock`.
async fn unlock(mut authed: Authed, Path(id): Path<UserId>) -> Response {
    let result = admin::unlock_account(&mut authed, id).await.map(|u| {
        if u.was_locked {
            "unlocked"
        } else {
            "not_locked"
        }
    });
    back(result, id)
}

/// `POST /users/{user}/sessions/revoke`.
async fn sign_out_everywhere(mut authed: Authed, Path(id): Path<UserId>) -> Response {
    let result = admin::sign_out_everywhere(&mut authed, id)
        .await
        .map(|_| "signed_out");
    back(result, id)
}
