//! SCIM provisioning (`manage_sso`): the tenant URL the identity provider needs, its
//! bearer tokens — listed without their secrets, a form to create one whose secret is
//! shown once on the answer page (never in a URL, never again), revoke — and the group →
//! role mapping in force (set through `PUT /api/scim/settings`). Every action is the
//! SDK's ([`procuhelp_axum::scim::issue_token`] and its siblings), as `/api/scim`'s.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use procuhelp_auth::Permission;
use procuhelp_axum::scim;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{error_page, error_page_back, page, parse_form, see_other};
use crate::mail::Mail;
use crate::state::AppState;

const BACK: &str = "/admin/scim";

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/admin/scim", Needs(P::ManageSso), scim_page)
        .post("/admin/scim/tokens", Needs(P::ManageSso), create)
        .post(
            "/admin/scim/tokens/{scim_token}/revoke",
            Needs(P::ManageSso),
            revoke,
        )
}

#[derive(Deserialize, Default)]
struct PageQuery {
    done: Option<String>,
}

/// Fixed notices a redirect may name (never text from the request): (key, message).
fn notice(key: Option<&str>) -> Option<(&'static str, &'static str)> {
    match key? {
        "revoked" => Some((
            "revoked",
            "The token is revoked: the identity provider's requests with it are refused.",
        )),
        _ => None,
    }
}

fn when(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

/// The tenant URL on the server's public origin (a path when the origin is not known).
fn tenant_url(mail: &Mail, path: &str) -> String {
    mail.link(path)
}

/// `GET /admin/scim`.
async fn scim_page(
    State(mail): State<Mail>,
    authed: Result<Authed, Error>,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let (nav, _) = nav(&mut authed).await?;
        let tokens = scim::list_tokens(&mut authed).await?;
        let settings = scim::settings(&mut authed).await?;
        authed.commit().await?;
        let now = authed.sdk().now();
        let base = tenant_url(&mail, &format!("/scim/v2/{}", authed.org()));
        let csrf = &nav.csrf;
        let body = html! {
            h1 { "SCIM provisioning" }
            @if let Some((key, text)) = notice(q.done.as_deref()) {
                p.notice.ok role="status" data-notice=(key) { (text) }
            }
            section aria-labelledby="url-h" {
                h2 id="url-h" { "For the identity provider" }
                p {
                    "Tenant URL: " code id="scim-base-url" { (base) }
                    @if !base.starts_with("http") { span.muted { " (on this server's address)" } }
                }
                p.muted {
                    "The secret token is one of the tokens below. Users it creates are managed by "
                    "the identity provider: their attributes, status and — with a group mapping — role."
                }
            }
            section aria-labelledby="new-h" {
                h2 id="new-h" { "Create a token" }
                p.muted { "Its secret is shown once, when it is created." }
                form.stack method="post" action="/admin/scim/tokens" {
                    (csrf_field(csrf))
                    label { "Name" input name="name" required maxlength="100"; }
                    label { "Days (1 to 730)" input name="days" type="number" required min="1" max="730" value="365"; }
                    button type="submit" { "Create" }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "Tokens" }
                @if tokens.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Until" }
                            th scope="col" { "State" } th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for t in &tokens {
                                @let state = if t.revoked_at.is_some() { "revoked" } else if t.expires_at <= now { "expired" } else { "live" };
                                tr data-scim-token=(t.id) {
                                    td { (t.name) }
                                    td { (when(t.created_at)) }
                                    td { (when(t.expires_at)) }
                                    td data-state=(state) { (state) }
                                    td {
                                        @if state == "live" {
                                            form.inline method="post" action=(format!("/admin/scim/tokens/{}/revoke", t.id)) {
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
            section aria-labelledby="roles-h" {
                h2 id="roles-h" { "Group → role" }
                @if settings.role_mappings.is_empty() {
                    p.muted { "No group is mapped: SCIM does not set roles." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Group" } th scope="col" { "Role" } } }
                        tbody {
                            @for m in &settings.role_mappings {
                                tr { td { (m.group) } td { (m.role.as_str()) } }
                            }
                        }
                    }
                }
                p.muted {
                    "Sign-in creates unknown users: "
                    (if settings.sso_jit_provisioning { "yes" } else { "no" })
                    ". Both are set through the API (PUT /api/scim/settings)."
                }
            }
        };
        Ok::<_, Error>(page("SCIM provisioning", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

#[derive(Deserialize)]
struct CreateForm {
    name: String,
    days: String,
}

/// `POST /admin/scim/tokens`: as `POST /api/scim/tokens`; the answer is a page with the
/// secret, shown this once (the page is `no-store`; the secret is in no URL).
async fn create(State(mail): State<Mail>, mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let form: CreateForm = parse_form(&body)?;
        let days: i64 = form
            .days
            .trim()
            .parse()
            .map_err(|_| Error::Invalid("days"))?;
        // Before the token's commit ends the request's transaction.
        let (nav, _) = nav(&mut authed).await?;
        let issued = scim::issue_token(&mut authed, &form.name, days).await?;
        let base = tenant_url(&mail, &issued.tenant_url);
        let body = html! {
            h1 { "SCIM token created" }
            section aria-labelledby="secret-h" {
                h2 id="secret-h" { "Copy the token now" }
                p.notice.ok role="status" {
                    "It is shown only this once: ProcuHelp keeps only a hash of it. "
                    "Give it to the identity provider as the secret token, with the tenant URL."
                }
                p.secret id="scim-token-secret" { (issued.secret.expose()) }
                dl {
                    dt { "Name" } dd { (form.name.trim()) }
                    dt { "Tenant URL" } dd { code { (base) } }
                    dt { "Days" } dd { (days) }
                }
            }
            p { a href=(BACK) { "Back to SCIM provisioning" } }
        };
        Ok::<_, Error>(page("SCIM token created", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

/// `POST /admin/scim/tokens/{scim_token}/revoke`: as its API twin (another
/// organisation's token is not found).
async fn revoke(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        scim::revoke_token(&mut authed, id).await
    }
    .await;
    match result {
        Ok(()) => see_other(&format!("{BACK}?done=revoked")),
        Err(e) => error_page_back(&e, None, BACK),
    }
}
