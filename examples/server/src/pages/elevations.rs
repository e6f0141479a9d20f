//! Time-bound elevation (admins): the organisation's elevations with who, what, why,
//! where each stands and until when; a form to grant (or, where a second admin must
//! approve, request) one; approve and revoke. Every action is the SDK's
//! ([`procuhelp_axum::admin::request_elevation`] and its siblings), as `/api/elevations`'.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::{Markup, html};
use procuhelp_auth::directory::{self, UserStatus};
use procuhelp_auth::elevation::{Elevation, ElevationState};
use procuhelp_auth::{Permission, Role};
use procuhelp_axum::admin;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::UserId;
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{error_page, error_page_back, page, parse_form, see_other, when};
use crate::state::AppState;

const BACK: &str = "/admin/elevations";

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/admin/elevations", Needs(P::ManageElevation), list_page)
        .post("/admin/elevations", Needs(P::ManageElevation), request)
        .post(
            "/admin/elevations/{elevation}/approve",
            Needs(P::ManageElevation),
            approve,
        )
        .post(
            "/admin/elevations/{elevation}/revoke",
            Needs(P::ManageElevation),
            revoke,
        )
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

/// Fixed notices a redirect may name (never text from the request): (key, message).
fn notice(key: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match key? {
        "granted" => (
            "granted",
            "The elevation is in force; the person signs in again to use it.",
        ),
        "requested" => (
            "requested",
            "The elevation is requested: another admin approves it.",
        ),
        "approved" => ("approved", "The elevation is approved and in force."),
        "revoked" => ("revoked", "The elevation is ended."),
        _ => return None,
    })
}

/// Where an elevation stands, as a word people read (and tests find as `data-state`).
fn state(s: ElevationState) -> &'static str {
    match s {
        ElevationState::Pending => "pending",
        ElevationState::Active => "active",
        ElevationState::Expired => "ended",
        ElevationState::Revoked => "revoked",
    }
}

/// What the actions column offers for `e`: approve (a pending one, to an admin who neither
/// asked for it nor holds it) and revoke (pending or active). The handlers decide again.
fn actions(e: &Elevation, me: UserId, csrf: &str) -> Markup {
    let at = |what: &str| format!("/admin/elevations/{}/{what}", e.id);
    let pending = e.state == ElevationState::Pending;
    let may_approve = pending && e.requested_by != me && e.user != me;
    html! {
        @if may_approve {
            form.inline method="post" action=(at("approve")) {
                (csrf_field(csrf))
                button type="submit" data-action="approve" { "Approve" }
            }
            " "
        } @else if pending {
            span.muted { "Another admin approves. " }
        }
        @if matches!(e.state, ElevationState::Pending | ElevationState::Active) {
            form.inline method="post" action=(at("revoke")) {
                (csrf_field(csrf))
                button.danger type="submit" data-action="revoke" { "Revoke" }
            }
        }
    }
}

/// `GET /admin/elevations`: the list (ended ones marked ended and recorded as they are
/// found) and the form.
async fn list_page(authed: Result<Authed, Error>, Query(q): Query<ListQuery>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageElevation).await?;
        let (nav, me) = nav(&mut authed).await?;
        let people = directory::list(authed.tx().await?).await?;
        // Commits: everything else is read above.
        let list = admin::list_elevations(&mut authed).await?;
        let names: HashMap<UserId, &str> = people
            .iter()
            .map(|u| (u.id, u.display_name.as_str()))
            .collect();
        let name = |id: UserId| names.get(&id).copied().unwrap_or("a former user");
        let csrf = &nav.csrf;
        let body = html! {
            h1 { "Elevation" }
            @if let Some((key, text)) = notice(q.done.as_deref()) {
                p.notice.ok role="status" data-notice=(key) { (text) }
            }
            section aria-labelledby="new-h" {
                h2 id="new-h" { "Grant a higher role for a while" }
                p.muted {
                    "For a stated reason and at most 8 hours. The person signs in again to use it; "
                    "where the sign-in policy says so, another admin approves it first."
                }
                form.stack method="post" action="/admin/elevations" {
                    (csrf_field(csrf))
                    label { "Person" select name="user" required {
                        @for u in people.iter().filter(|u| u.status == UserStatus::Active && u.id != me.id) {
                            option value=(u.id) { (u.display_name) " (" (u.email) ", " (u.role.as_str()) ")" }
                        }
                    } }
                    label { "Role" select name="role" required {
                        @for role in Role::ALL.iter().filter(|r| **r != Role::least_privileged()) {
                            option value=(role.as_str()) { (role.as_str()) }
                        }
                    } }
                    label { "Reason" input name="reason" required minlength="3" maxlength="500"; }
                    label { "Minutes (1 to 480)" input name="minutes" type="number" required min="1" max="480" value="60"; }
                    button type="submit" { "Grant" }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "Elevations" }
                @if list.elevations.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Person" } th scope="col" { "Role" } th scope="col" { "Reason" }
                            th scope="col" { "State" } th scope="col" { "Until" } th scope="col" { "Asked by" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for e in &list.elevations {
                                tr data-elevation=(e.id) {
                                    td { (name(e.user)) }
                                    td { (e.role.as_str()) }
                                    td { (e.reason) }
                                    td data-state=(state(e.state)) { (state(e.state)) }
                                    td { @if let Some(t) = e.expires_at { (when(t)) } @else { "—" } }
                                    td { (name(e.requested_by)) }
                                    td { (actions(e, me.id, csrf)) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Error>(page("Elevation", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

#[derive(Deserialize)]
struct RequestForm {
    user: String,
    role: String,
    reason: String,
    minutes: String,
}

/// `POST /admin/elevations`: as `POST /api/elevations`.
async fn request(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageElevation).await?;
        let form: RequestForm = parse_form(&body)?;
        let user: UserId = form
            .user
            .trim()
            .parse()
            .map_err(|_| Error::Invalid("user"))?;
        let role: Role = form.role.parse().map_err(|_| Error::Invalid("role"))?;
        let minutes: i64 = form
            .minutes
            .trim()
            .parse()
            .map_err(|_| Error::Invalid("minutes"))?;
        admin::request_elevation(&mut authed, user, role, &form.reason, minutes).await
    }
    .await;
    match result {
        Ok(e) if e.state == ElevationState::Pending => {
            see_other("/admin/elevations?done=requested")
        }
        Ok(_) => see_other("/admin/elevations?done=granted"),
        Err(e) => error_page_back(&e, None, BACK),
    }
}

/// `POST /admin/elevations/{elevation}/approve`: as its API twin (a second admin).
async fn approve(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    let result = async {
        authed.require(Permission::ManageElevation).await?;
        admin::approve_elevation(&mut authed, id).await
    }
    .await;
    match result {
        Ok(_) => see_other("/admin/elevations?done=approved"),
        Err(e) => error_page_back(&e, None, BACK),
    }
}

/// `POST /admin/elevations/{elevation}/revoke`: as its API twin.
async fn revoke(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    let result = async {
        authed.require(Permission::ManageElevation).await?;
        admin::revoke_elevation(&mut authed, id).await
    }
    .await;
    match result {
        Ok(_) => see_other("/admin/elevations?done=revoked"),
        Err(e) => error_page_back(&e, None, BACK),
    }
}
