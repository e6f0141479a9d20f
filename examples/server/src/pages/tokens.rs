//! API tokens (admins): the organisation's tokens — never a secret — with who created
//! them (a token acts for its creator) and until when; a form to create one, whose secret
//! is shown once on the answer page (never in a URL, never again); revoke. Every action is
//! the SDK's ([`procuhelp_axum::admin::create_token`] and its siblings), as `/api/tokens`'.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use procuhelp_auth::{Permission, Role, directory};
use procuhelp_axum::admin;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::UserId;
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{error_page, error_page_back, page, parse_form, see_other, when};
use crate::state::AppState;

const BACK: &str = "/admin/tokens";

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/admin/tokens", Needs(P::ManageUsers), list_page)
        .post("/admin/tokens", Needs(P::ManageUsers), create)
        .post(
            "/admin/tokens/{token}/revoke",
            Needs(P::ManageUsers),
            revoke,
        )
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

/// Fixed notices a redirect may name (never text from the request): (key, message).
fn notice(key: Option<&str>) -> Option<(&'static str, &'static str)> {
    match key? {
        "revoked" => Some(("revoked", "The token is revoked: it no longer works.")),
        _ => None,
    }
}

/// `GET /admin/tokens`.
async fn list_page(authed: Result<Authed, Error>, Query(q): Query<ListQuery>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        let (nav, _) = nav(&mut authed).await?;
        let people = directory::list(authed.tx().await?).await?;
        // Commits: everything else is read above.
        let tokens = admin::list_tokens(&mut authed).await?;
        let now = authed.sdk().now();
        let names: HashMap<UserId, &str> = people
            .iter()
            .map(|u| (u.id, u.display_name.as_str()))
            .collect();
        let csrf = &nav.csrf;
        let body = html! {
            h1 { "API tokens" }
            @if let Some((key, text)) = notice(q.done.as_deref()) {
                p.notice.ok role="status" data-notice=(key) { (text) }
            }
            section aria-labelledby="new-h" {
                h2 id="new-h" { "Create a token" }
                p.muted {
                    "For a script or an integration: it acts for you, with at most your role. "
                    "Its secret is shown once, when it is created."
                }
                form.stack method="post" action="/admin/tokens" {
                    (csrf_field(csrf))
                    label { "Name" input name="name" required maxlength="100"; }
                    label { "Role" select name="role" required {
                        @for role in Role::ALL.iter().rev() {
                            option value=(role.as_str()) selected[*role == Role::least_privileged()] { (role.as_str()) }
                        }
                    } }
                    label { "Days (1 to 365)" input name="days" type="number" required min="1" max="365" value="30"; }
                    button type="submit" { "Create" }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "Tokens" }
                @if tokens.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Created by" }
                            th scope="col" { "Created" } th scope="col" { "Until" } th scope="col" { "State" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for t in &tokens {
                                @let state = if t.revoked_at.is_some() { "revoked" } else if t.expires_at <= now { "expired" } else { "live" };
                                tr data-token=(t.id) {
                                    td { (t.name) }
                                    td { (t.role.as_str()) }
                                    td { (names.get(&t.created_by).copied().unwrap_or("a former user")) }
                                    td { (when(t.created_at)) }
                                    td {
                                        (when(t.expires_at))
                                        @if t.elevation.is_some() { br; span.muted { "or when the elevation it was made under ends" } }
                                    }
                                    td data-state=(state) { (state) }
                                    td {
                                        @if state == "live" {
                                            form.inline method="post" action=(format!("/admin/tokens/{}/revoke", t.id)) {
                                                (csrf_field(csrf))
                                                button.danger type="submit" { "Revoke" span.visually-hidden { " " (t.name) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Error>(page("API tokens", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

#[derive(Deserialize)]
struct CreateForm {
    name: String,
    role: String,
    days: String,
}

/// `POST /admin/tokens`: as `POST /api/tokens`; the answer is a page with the secret,
/// shown this once (the page is `no-store`; the secret is in no URL).
async fn create(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        let form: CreateForm = parse_form(&body)?;
        let role: Role = form.role.parse().map_err(|_| Error::Invalid("role"))?;
        let days: i64 = form
            .days
            .trim()
            .parse()
            .map_err(|_| Error::Invalid("days"))?;
        // Before the token's commit ends the request's transaction.
        let (nav, _) = nav(&mut authed).await?;
        let token = admin::create_token(&mut authed, &form.name, role, days).await?;
        let body = html! {
            h1 { "API token created" }
            section aria-labelledby="secret-h" {
                h2 id="secret-h" { "Copy the token now" }
                p.notice.ok role="status" {
                    "It is shown only this once: ProcuHelp keeps only a hash of it. "
                    "Send it as " code { "Authorization: Bearer …" } "."
                }
                p.secret id="token-secret" { (token.credential.expose()) }
                dl {
                    dt { "Name" } dd { (form.name.trim()) }
                    dt { "Role" } dd { (token.role.as_str()) }
                    dt { "Until" } dd { (when(token.expires_at)) }
                }
            }
            p { a href=(BACK) { "Back to the tokens" } }
        };
        Ok::<_, Error>(page("API token created", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

/// `POST /admin/tokens/{token}/revoke`: as its API twin.
async fn revoke(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        admin::revoke_token(&mut authed, id).await
    }
    .await;
    match result {
        Ok(()) => see_other("/admin/tokens?done=revoked"),
        Err(e) => error_page_back(&e, None, BACK),
    }
}
