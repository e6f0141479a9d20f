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
use procuhelp_auth::scim::store::RoleMapping;
use procuhelp_axum::scim;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{error_page, error_page_back, page, parse_form, see_other, when};
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
        .post("/admin/scim/settings", Needs(P::ManageSso), save_settings)
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
        "settings" => Some((
            "settings",
            "Saved. Members of the mapped groups have their roles now; a changed role ended their sessions.",
        )),
        _ => None,
    }
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
        let base = mail.link(&format!("/scim/v2/{}", authed.org()));
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
                form.stack method="post" action="/admin/scim/settings" {
                    (csrf_field(csrf))
                    input type="hidden" name="settings" value="all";
                    label {
                        "One mapping per line: a group's id or name, “=”, a role ("
                        (procuhelp_auth::Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
                        "). A member of several mapped groups gets the first role in that order. Empty: SCIM does not set roles."
                        textarea name="role_mappings" rows="5" maxlength="20000" {
                            @for m in &settings.role_mappings { (m.group) " = " (m.role.as_str()) "\n" }
                        }
                    }
                    label {
                        input type="checkbox" name="sso_jit_provisioning" value="on" checked[settings.sso_jit_provisioning];
                        " A first SSO sign-in creates the user (just in time)"
                    }
                    button type="submit" { "Save the mapping" }
                }
            }
        };
        Ok::<_, Error>(page("SCIM provisioning", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

#[derive(Deserialize)]
struct SettingsForm {
    /// Always `all`: an unticked box is not sent, so a cut-off post cannot switch
    /// provisioning off or empty the mapping by accident.
    settings: String,
    #[serde(default)]
    role_mappings: String,
    sso_jit_provisioning: Option<String>,
}

/// The mapping as typed: `group = role` per line, blank lines ignored; at most 100.
fn parse_mappings(text: &str) -> Result<Vec<RoleMapping>, Error> {
    let invalid = || Error::Invalid("role_mappings");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() > 100 {
        return Err(invalid());
    }
    lines
        .into_iter()
        .map(|line| {
            let (group, role) = line.rsplit_once('=').ok_or_else(invalid)?;
            let group = group.trim();
            if group.is_empty()
                || group.chars().count() > 512
                || group.chars().any(char::is_control)
            {
                return Err(invalid());
            }
            Ok(RoleMapping {
                group: group.to_owned(),
                role: role.trim().parse().map_err(|_| invalid())?,
            })
        })
        .collect()
}

/// `POST /admin/scim/settings`: as `PUT /api/scim/settings` (a role above the admin's
/// own is refused: mapping a group to it would be granting it).
async fn save_settings(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let form: SettingsForm = parse_form(&body)?;
        if form.settings != "all" {
            return Err(Error::Invalid("form"));
        }
        let mappings = parse_mappings(&form.role_mappings)?;
        scim::set_settings(&mut authed, &mappings, form.sso_jit_provisioning.is_some()).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => see_other("/admin/scim?done=settings"),
        Err(e) => error_page_back(&e, None, BACK),
    }
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
        let base = mail.link(&issued.tenant_url);
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
