//! `/audit`: the organisation's audit trail in the app's frame, for admins and auditors
//! (`read_audit_log`) — filters (action, actor, time), one page at a time with a link to
//! the next, and the export downloads. The SDK reads and records the read
//! ([`procuhelp_axum::audit::read_page`]); this page only shows it, with people's names
//! instead of bare ids where the directory has them.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::Response;
use maud::html;
use procuhelp_audit::Actor;
use procuhelp_auth::{Permission, directory};
use procuhelp_axum::audit::{AuditFilter, AuditPage, event_view, read_page};
use procuhelp_axum::{Access, Authed, Error, RouteTable};

use super::account::nav;
use super::{error_page, error_page_back, page};
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new().get("/audit", Access::Needs(Permission::ReadAuditLog), viewer)
}

/// `GET /audit?action=&actor=&from=&to=&after_seq=`.
async fn viewer(
    authed: Result<Authed, Error>,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadAuditLog).await?;
        // A malformed query is bad input (after the permission), not a bare 400.
        let Query(filter) = filter.map_err(|_| Error::Invalid("filter"))?;
        let (nav, _) = nav(&mut authed).await?;
        let AuditPage { events, next, .. } = read_page(&mut authed, &filter).await?;
        let mut ids: Vec<uuid::Uuid> = events
            .iter()
            .filter_map(|e| match &e.event.actor {
                Actor::User { id } => Some(id.as_uuid()),
                _ => None,
            })
            .chain(filter.actor)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Names of the people on this page only (an auditor does not read the directory),
        // in a transaction of their own: read_page ended the request's.
        let mut tx = authed.sdk().tenants().begin(authed.org()).await.map_err(Error::from)?;
        let names = directory::display_names(&mut tx, &ids).await?;
        tx.commit().await.map_err(Error::from)?;
        let name_of = |id: &uuid::Uuid| names.get(id).cloned();
        let mut people: Vec<(&uuid::Uuid, &String)> = names.iter().collect();
        people.sort_by(|a, b| a.1.cmp(b.1));
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let value = |v: &Option<String>| v.clone().unwrap_or_default();
        let body = html! {
            h1 { "Audit log" }
            form.filters method="get" action="/audit" {
                label { "Action" input name="action" value=(value(&filter.action)) placeholder="request.approved" maxlength="64"; }
                label { "Person" select name="actor" {
                    option value="" { "anyone" }
                    @for (id, name) in &people {
                        option value=(id) selected[filter.actor == Some(**id)] { (name) }
                    }
                } }
                label { "From" input name="from" value=(value(&filter.from)) placeholder="2026-12-01T00:00:00Z" maxlength="40"; }
                label { "To" input name="to" value=(value(&filter.to)) placeholder="2026-12-31T00:00:00Z" maxlength="40"; }
                button type="submit" { "Filter" }
            }
            p.muted {
                "Reading this page is itself recorded. Download the whole trail, verifiable offline: "
                a href="/api/audit/export" download { "JSON lines" } " · "
                a href="/api/audit/export?format=csv" download { "CSV" }
            }
            table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time (UTC)" } th scope="col" { "Who" }
                    th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" }
                    th scope="col" { "Details" }
                } }
                tbody {
                    @for stored in &events {
                        @let e = &stored.event;
                        @let v = event_view(stored);
                        tr data-action=(e.action.as_str()) {
                            td { (e.seq) }
                            td { (text(&v["at"])) }
                            td { @match &e.actor {
                                Actor::User { id } => { (name_of(&id.as_uuid()).unwrap_or_else(|| id.to_string())) }
                                _ => { (text(&v["actor"]["type"])) }
                            } }
                            td { code { (e.action.as_str()) } }
                            td { (e.target.as_deref().unwrap_or("")) }
                            td { (e.outcome.as_str()) }
                            td.details { (text(&v["context"])) }
                        }
                    }
                }
            }
            @if events.is_empty() { p.muted { "No events match." } }
            @if let Some(next) = next {
                p { a rel="next" href=(format!("/audit?{}", next.to_query())) { "Next page" } }
            }
        };
        Ok(page("Audit log", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/audit"))
}
