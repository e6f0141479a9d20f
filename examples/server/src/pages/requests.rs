//! Purchase requests: the list with a form to raise one, and a request's page with what
//! the person may do to it — edit the draft, submit, cancel (its requester), approve or
//! reject with a comment (an approver who is not its requester). Every action goes
//! through [`crate::requests::handle`], as the API's do.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use maud::{Markup, html};
use procuhelp_auth::{Permission, directory};
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{can, cents, error_page, error_page_back, money, page, parse_form, see_other};
use crate::requests::{self, Decision, PurchaseRequest, Status, handle};
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/requests", Needs(P::ReadRequests), list_page)
        .post("/requests", Needs(P::CreateRequest), raise)
        .get("/requests/{request}", Needs(P::ReadRequests), request_page)
        .post("/requests/{request}/edit", Needs(P::CreateRequest), edit)
        .post(
            "/requests/{request}/submit",
            Needs(P::CreateRequest),
            submit,
        )
        .post(
            "/requests/{request}/cancel",
            Needs(P::CreateRequest),
            cancel,
        )
        .post(
            "/requests/{request}/approve",
            Needs(P::ApproveRequest),
            approve,
        )
        .post(
            "/requests/{request}/reject",
            Needs(P::ApproveRequest),
            reject,
        )
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Draft => "Draft",
        Status::Open => "Waiting for approval",
        Status::Approved => "Approved",
        Status::Rejected => "Rejected",
        Status::Cancelled => "Cancelled",
    }
}

/// Display names of the people `requests` name (who asked, who decided).
async fn names(
    authed: &mut Authed,
    requests: &[&requests::PurchaseRequest],
) -> Result<HashMap<Uuid, String>, Error> {
    let mut ids: Vec<Uuid> = requests
        .iter()
        .flat_map(|r| [Some(r.requested_by), r.approved_by, r.rejected_by])
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(directory::display_names(authed.tx().await?, &ids).await?)
}

fn name(names: &HashMap<Uuid, String>, id: Uuid) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| "a former user".to_owned())
}

/// `GET /requests`.
async fn list_page(authed: Result<Authed, Error>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadRequests).await?;
        let (nav, _) = nav(&mut authed).await?;
        let list = requests::list(authed.tx().await?, 200).await?;
        let names = names(&mut authed, &list.iter().collect::<Vec<_>>()).await?;
        authed.commit().await?;
        let may_raise = can(&authed, Permission::CreateRequest);
        let body = html! {
            h1 { "Purchase requests" }
            @if may_raise {
                section aria-labelledby="new-h" {
                    h2 id="new-h" { "Raise a request" }
                    form.stack method="post" action="/requests" {
                        (csrf_field(&nav.csrf))
                        label { "What is needed" input name="title" required maxlength="200"; }
                        label { "Amount (EUR)" input name="amount" required inputmode="decimal" pattern="[0-9]{1,12}([.][0-9]{1,2})?" maxlength="15"; }
                        button type="submit" { "Save as draft" }
                    }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "Latest requests" }
                @if list.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr { th scope="col" { "Request" } th scope="col" { "Amount" } th scope="col" { "Requested by" } th scope="col" { "Status" } } }
                        tbody {
                            @for r in &list {
                                tr {
                                    td { a href=(format!("/requests/{}", r.id)) { (r.title) } }
                                    td { (money(r.amount_cents)) }
                                    td { (name(&names, r.requested_by)) }
                                    td data-status=(r.status.as_str()) { (status_label(r.status)) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Error>(page("Purchase requests", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/requests"))
}

#[derive(Deserialize)]
struct RequestForm {
    title: String,
    amount: String,
}

/// `POST /requests`: a draft, then its page.
async fn raise(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::CreateRequest).await?;
        let form: RequestForm = parse_form(&body)?;
        let amount = cents(&form.amount, "amount")?;
        handle::raise(&mut authed, &form.title, amount, false).await
    }
    .await;
    match result {
        Ok(r) => see_other(&format!("/requests/{}", r.id)),
        Err(e) => error_page_back(&e, None, "/requests"),
    }
}

fn decision_forms(r: &PurchaseRequest, csrf: &str) -> Markup {
    let at = |what: &str| format!("/requests/{}/{what}", r.id);
    html! {
        section aria-labelledby="decide-h" {
            h2 id="decide-h" { "Decide" }
            form.stack method="post" action=(at("approve")) {
                (csrf_field(csrf))
                label { "Comment (optional)" textarea name="comment" maxlength="1000" rows="2" {} }
                button type="submit" { "Approve" }
            }
            form.stack method="post" action=(at("reject")) {
                (csrf_field(csrf))
                label { "Why it is rejected" textarea name="comment" required maxlength="1000" rows="2" {} }
                button.danger type="submit" { "Reject" }
            }
        }
    }
}

/// `GET /requests/{request}`.
async fn request_page(authed: Result<Authed, Error>, Path(id): Path<Uuid>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadRequests).await?;
        let (nav, me) = nav(&mut authed).await?;
        let r = requests::get(authed.tx().await?, id).await?;
        let names = names(&mut authed, &[&r]).await?;
        authed.commit().await?;
        let mine = r.requested_by == me.id.as_uuid();
        let may_change = mine && can(&authed, Permission::CreateRequest);
        // Offered to approvers who are not its requester; the handler decides again.
        let may_decide = r.status == Status::Open
            && can(&authed, Permission::ApproveRequest)
            && authed.principal.may_approve(
                procuhelp_core::UserId::from_uuid(r.requested_by)
                    .map_err(|_| procuhelp_auth::AuthError::NotFound)?,
            );
        let at = |what: &str| format!("/requests/{}/{what}", r.id);
        let csrf = &nav.csrf;
        let body = html! {
            p { a href="/requests" { "← All requests" } }
            h1 { (r.title) }
            section {
                dl {
                    dt { "Amount" } dd { (money(r.amount_cents)) }
                    dt { "Requested by" } dd { (name(&names, r.requested_by)) }
                    dt { "Status" } dd data-status=(r.status.as_str()) { (status_label(r.status)) }
                    @if let Some(by) = r.approved_by { dt { "Approved by" } dd { (name(&names, by)) } }
                    @if let Some(by) = r.rejected_by { dt { "Rejected by" } dd { (name(&names, by)) } }
                    @if let Some(c) = &r.decision_comment { dt { "Comment" } dd { (c) } }
                }
            }
            @if may_change && r.status == Status::Draft {
                section aria-labelledby="edit-h" {
                    h2 id="edit-h" { "Edit the draft" }
                    form.stack method="post" action=(at("edit")) {
                        (csrf_field(csrf))
                        input type="hidden" name="version" value=(r.version);
                        label { "What is needed" input name="title" required maxlength="200" value=(r.title); }
                        label { "Amount (EUR)" input name="amount" required inputmode="decimal" maxlength="15" value=(format!("{}.{:02}", r.amount_cents / 100, r.amount_cents % 100)); }
                        button.secondary type="submit" { "Save" }
                    }
                    form method="post" action=(at("submit")) {
                        (csrf_field(csrf))
                        button type="submit" { "Submit for approval" }
                    }
                }
            }
            @if may_change && matches!(r.status, Status::Draft | Status::Open) {
                form method="post" action=(at("cancel")) {
                    (csrf_field(csrf))
                    button.danger type="submit" { "Cancel the request" }
                }
            }
            @if may_decide { (decision_forms(&r, csrf)) }
            @if mine && r.status == Status::Open {
                p.muted { "You raised this request: another approver decides it." }
            }
        };
        Ok::<_, Error>(page(&r.title, Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/requests"))
}

#[derive(Deserialize)]
struct EditForm {
    title: String,
    amount: String,
    version: i32,
}

async fn edit(mut authed: Authed, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::CreateRequest).await?;
        // Another organisation's request is not found, whatever the form holds.
        requests::get(authed.tx().await?, id).await?;
        let form: EditForm = parse_form(&body)?;
        let amount = cents(&form.amount, "amount")?;
        handle::edit(&mut authed, id, &form.title, amount, form.version).await
    }
    .await;
    done(result, id)
}

async fn submit(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    done(handle::submit(&mut authed, id).await, id)
}

async fn cancel(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    done(handle::cancel(&mut authed, id).await, id)
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    comment: String,
}

async fn decide(mut authed: Authed, id: Uuid, body: Bytes, decision: Decision) -> Response {
    let result = async {
        authed.require(Permission::ApproveRequest).await?;
        let form: CommentForm = parse_form(&body)?;
        handle::decide(&mut authed, id, decision, Some(&form.comment)).await
    }
    .await;
    done(result, id)
}

async fn approve(authed: Authed, Path(id): Path<Uuid>, body: Bytes) -> Response {
    decide(authed, id, body, Decision::Approve).await
}

async fn reject(authed: Authed, Path(id): Path<Uuid>, body: Bytes) -> Response {
    decide(authed, id, body, Decision::Reject).await
}

/// Back to the request's page, or the reason it was not done.
fn done(result: Result<PurchaseRequest, Error>, id: Uuid) -> Response {
    match result {
        Ok(_) => see_other(&format!("/requests/{id}")),
        Err(e) => error_page_back(&e, None, &format!("/requests/{id}")),
    }
}
