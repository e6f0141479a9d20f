//! The organisation's sign-in policy (admins): the rules as one form, and the proposals
//! that wait for a second admin (switching off "elevation needs a second admin" is only
//! proposed; another admin approves it). Each action is the SDK function its API twin
//! calls ([`procuhelp_axum::admin::update_policy`],
//! [`procuhelp_axum::admin::approve_pending_change`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use procuhelp_auth::directory::{self, OrgPolicy};
use procuhelp_auth::{AuthError, Permission, policy_change};
use procuhelp_axum::admin;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::UserId;
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{error_page, error_page_back, page, parse_form, see_other, when};
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/admin/policy", Needs(P::ManageUsers), policy_page)
        .post("/admin/policy", Needs(P::ManageUsers), save)
        .post(
            "/admin/policy/changes/{change}/approve",
            Needs(P::ManageUsers),
            approve,
        )
}

/// The notices after a change, chosen by key (never the request's text).
const NOTICES: [(&str, &str); 3] = [
    ("saved", "The policy is saved."),
    (
        "proposed",
        "Saved. Switching off the second admin for elevation waits for another admin's \
         approval (below); until then the rule stays on.",
    ),
    ("approved", "Approved: the change is in force."),
];

/// The settings, as the form names them (the fields of [`OrgPolicy`]), with their labels.
fn setting_label(setting: &str) -> &'static str {
    match setting {
        "mfa_required" => {
            "Everyone signs in with a second factor (TOTP or the identity provider's MFA)"
        }
        "elevation_needs_second_admin" => "An elevation needs a second admin's approval",
        "operator_access_needs_approval" => "Operator access to our data needs an admin's approval",
        _ => "Another setting",
    }
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

/// `GET /admin/policy`.
async fn policy_page(authed: Result<Authed, Error>, Query(q): Query<DoneQuery>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        // Checks `manage_users` first (once: a permission used through an elevation is
        // recorded each time it is checked).
        let policy = admin::org_policy(&mut authed).await?;
        let (nav, me) = nav(&mut authed).await?;
        let now = authed.sdk().now();
        let changes = policy_change::pending(authed.tx().await?, now).await?;
        let names: HashMap<UserId, String> = directory::list(authed.tx().await?)
            .await?
            .into_iter()
            .map(|u| (u.id, u.display_name))
            .collect();
        authed.commit().await?;
        let csrf = &nav.csrf;
        let rules = [
            ("mfa_required", policy.mfa_required),
            (
                "elevation_needs_second_admin",
                policy.elevation_needs_second_admin,
            ),
            (
                "operator_access_needs_approval",
                policy.operator_access_needs_approval,
            ),
        ];
        let body = html! {
            h1 { "Sign-in policy" }
            @if let Some((key, text)) = NOTICES.iter().find(|(k, _)| Some(*k) == q.done.as_deref()) {
                p.notice.ok role="status" data-notice=(key) { (text) }
            }
            section aria-labelledby="rules-h" {
                h2 id="rules-h" { "Rules" }
                form.stack method="post" action="/admin/policy" {
                    (csrf_field(csrf))
                    input type="hidden" name="settings" value="all";
                    input type="hidden" name="shown" value=(shown(&policy));
                    @for (name, on) in rules {
                        label { input type="checkbox" name=(name) value="on" checked[on]; (setting_label(name)) }
                    }
                    p.muted { "Switching off the second admin for elevation waits for another admin's approval." }
                    button type="submit" { "Save the policy" }
                }
            }
            section aria-labelledby="pending-h" {
                h2 id="pending-h" { "Waiting for a second admin" }
                @if changes.is_empty() {
                    p.muted { "Nothing is waiting." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Change" } th scope="col" { "Proposed by" } th scope="col" { "Lapses" } th scope="col" { span.visually-hidden { "Action" } } } }
                        tbody {
                            @for c in &changes {
                                tr data-change=(c.id) {
                                    td { (setting_label(c.setting)) ": " (if c.value { "on" } else { "off" }) }
                                    td { (names.get(&c.requested_by).map_or("a former user", String::as_str)) }
                                    td { (when(c.expires_at)) }
                                    td {
                                        @if c.requested_by == me.id {
                                            span.muted { "Another admin approves it." }
                                        } @else {
                                            form method="post" action=(format!("/admin/policy/changes/{}/approve", c.id)) {
                                                (csrf_field(csrf))
                                                button type="submit" { "Approve" }
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
        Ok::<_, Error>(page("Sign-in policy", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/admin"))
}

/// The policy form: a checkbox is sent only when ticked, so a form must say it carries
/// the settings (`settings=all`): an empty or truncated body switches nothing off.
#[derive(Deserialize)]
struct PolicyForm {
    settings: String,
    /// The policy as the page showed it ([`shown`]).
    shown: String,
    mfa_required: Option<String>,
    elevation_needs_second_admin: Option<String>,
    operator_access_needs_approval: Option<String>,
}

/// The policy as a form shows it, one digit per rule (`"101"`): the version the save
/// compares with.
fn shown(p: &OrgPolicy) -> String {
    [
        p.mfa_required,
        p.elevation_needs_second_admin,
        p.operator_access_needs_approval,
    ]
    .iter()
    .map(|on| if *on { '1' } else { '0' })
    .collect()
}

/// `POST /admin/policy`.
async fn save(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageUsers).await?;
        let form: PolicyForm = parse_form(&body)?;
        if form.settings != "all" {
            return Err(Error::Invalid("form"));
        }
        // Saved on the policy the admin saw: another admin's change since is not undone
        // by a form that never showed it.
        if admin::org_policy(&mut authed).await.map(|p| shown(&p))? != form.shown {
            return Err(AuthError::Conflict(
                "the policy was changed meanwhile: reload it and try again",
            )
            .into());
        }
        let wanted = OrgPolicy {
            mfa_required: form.mfa_required.is_some(),
            elevation_needs_second_admin: form.elevation_needs_second_admin.is_some(),
            operator_access_needs_approval: form.operator_access_needs_approval.is_some(),
        };
        let update = admin::update_policy(&mut authed, wanted).await?;
        Ok(if update.pending_change.is_some() {
            "proposed"
        } else {
            "saved"
        })
    }
    .await;
    match result {
        Ok(done) => see_other(&format!("/admin/policy?done={done}")),
        Err(e) => error_page_back(&e, None, "/admin/policy"),
    }
}

/// `POST /admin/policy/changes/{change}/approve`: a second admin, never the proposer.
async fn approve(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    match admin::approve_pending_change(&mut authed, id).await {
        Ok(_) => see_other("/admin/policy?done=approved"),
        Err(e) => error_page_back(&e, None, "/admin/policy"),
    }
}
