//! Users (admins): the organisation's people, and inviting someone by e-mail — the admin
//! types an address and a name, never a password; the person sets their own through the
//! link. Who may add whom is the SDK's rule ([`procuhelp_axum::admin::invite_user`], as
//! `POST /api/users`).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use procuhelp_auth::{AuthError, Permission, Role, directory};
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use serde::Deserialize;

use super::account::nav;
use super::layout::csrf_field;
use super::{can, error_page, error_page_back, page, parse_form};
use crate::mail::Mail;
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/users", Needs(P::ManageUsers), list_page)
        .post("/users/invite", Needs(P::ManageUsers), invite)
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
                        tr { td { (u.display_name) } td { (u.email) } td { (u.role.as_str()) } td { (format!("{:?}", u.status).to_lowercase()) } }
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
