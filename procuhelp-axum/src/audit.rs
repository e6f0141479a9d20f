//! The audit router: the tenant's audit trail for those with `read_audit_log` — a
//! filtered JSON API (`GET /api/audit`), an export verifiable offline
//! (`GET /api/audit/export?format=jsonl|csv`) and a page (`GET /audit`). Every read and
//! export is itself recorded (by the audit log, before it answers). It reads the
//! [`PgAuditSink`](procuhelp_audit::PgAuditSink) given to
//! [`SdkBuilder::audit_log`](crate::SdkBuilder::audit_log); without one it answers 409.

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Query};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use procuhelp_audit::{Action, EventQuery, ExportFormat, ExportRange, Outcome, StoredEvent};
use procuhelp_auth::{AuthError, Permission};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Access, Authed, Error, Result, RouteTable, Sdk};

/// The audit routes with who may call each.
pub fn table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/api/audit", Needs(P::ReadAuditLog), list)
        .get("/api/audit/export", Needs(P::ReadAuditLog), export)
        .get("/audit", Needs(P::ReadAuditLog), page)
}

/// The audit router ([`table`]'s routes).
pub fn routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table().into_router()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filter {
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    actor: Option<uuid::Uuid>,
    after_seq: Option<u64>,
    limit: Option<u32>,
    format: Option<String>,
}

fn time_param(value: Option<&str>, field: &'static str) -> Result<Option<OffsetDateTime>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| Error::Invalid(field)))
        .transpose()
}

impl Filter {
    fn query(&self) -> Result<EventQuery> {
        let action = match self.action.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<Action>().map_err(|_| Error::Invalid("action"))?),
            None => None,
        };
        Ok(EventQuery {
            from: time_param(self.from.as_deref(), "from")?,
            to: time_param(self.to.as_deref(), "to")?,
            action,
            actor_id: self.actor,
            after_seq: self.after_seq.unwrap_or(0),
            limit: self
                .limit
                .unwrap_or(100)
                .clamp(1, procuhelp_audit::MAX_READ),
        })
    }
}

use crate::subject_rights::event_json;

pub(crate) fn audit_log(authed: &Authed) -> Result<procuhelp_audit::PgAuditSink> {
    Ok(authed
        .sdk()
        .audit_log()
        .cloned()
        .ok_or(AuthError::Conflict("no audit database configured"))?)
}

async fn read(authed: &mut Authed, filter: &Filter) -> Result<Vec<StoredEvent>> {
    authed.require(Permission::ReadAuditLog).await?;
    let query = filter.query()?;
    // The request's transaction is not needed: the log reads in its own.
    authed.commit().await?;
    let log = audit_log(authed)?;
    let access = authed
        .event(Action::AuditRead, Outcome::Success)
        .context(json!({ "filter": format!("{filter:?}") }));
    Ok(log.read_events(access, &query).await?)
}

/// `GET /api/audit`: a page of events, filtered by time, action and actor.
async fn list(mut authed: Authed, Query(filter): Query<Filter>) -> Result<Json<Value>> {
    let events = read(&mut authed, &filter).await?;
    Ok(Json(
        json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/audit/export?format=jsonl|csv&from=&to=`: the tenant's chain with its
/// signed checkpoints, verifiable offline (`procuhelp_audit::verify_export`; the example
/// server's `audit verify --file`).
async fn export(mut authed: Authed, Query(filter): Query<Filter>) -> Result<Response> {
    authed.require(Permission::ReadAuditLog).await?;
    let format = match filter.format.as_deref() {
        None | Some("jsonl") => ExportFormat::JsonLines,
        Some("csv") => ExportFormat::Csv,
        Some(_) => return Err(Error::Invalid("format")),
    };
    let range = ExportRange {
        from: time_param(filter.from.as_deref(), "from")?,
        to: time_param(filter.to.as_deref(), "to")?,
    };
    authed.commit().await?;
    let log = audit_log(&authed)?;
    let access = authed.event(Action::AuditExported, Outcome::Success);
    let mut out = Vec::new();
    log.export(access, range, format, &mut out).await?;
    let content_type = match format {
        ExportFormat::Csv => "text/csv; charset=utf-8",
        _ => "application/x-ndjson",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-export\"",
            ),
        ],
        out,
    )
        .into_response())
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /audit`: the audit trail as a page, with the same filters.
async fn page(
    mut authed: Authed,
    Query(filter): Query<Filter>,
    axum::Extension(nonce): axum::Extension<procuhelp_core::http::CspNonce>,
) -> Result<Html<String>> {
    let events = read(&mut authed, &filter).await?;
    let mut rows = String::new();
    for stored in &events {
        let v = event_json(stored);
        let cell = |key: &str| {
            escape(&match &v[key] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            cell("seq"), cell("at"), cell("actor"), cell("action"), cell("target"), cell("outcome"), cell("context")
        ));
    }
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    // The next page continues after the last event shown, with the same filters.
    let limit = filter.query()?.limit;
    let next = match events.last() {
        Some(last) if events.len() >= limit as usize => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [
                ("from", &filter.from),
                ("to", &filter.to),
                ("action", &filter.action),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    q.append_pair(k, v);
                }
            }
            if let Some(actor) = filter.actor {
                q.append_pair("actor", &actor.to_string());
            }
            q.append_pair("after_seq", &last.event.seq.to_string());
            format!(
                r#"<p><a rel="next" href="/audit?{}">Next page</a></p>"#,
                escape(&q.finish())
            )
        }
        _ => String::new(),
    };
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audit log — ProcuHelp</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .4rem;font-size:.85rem;vertical-align:top}}label{{margin-right:.75rem}}</style>
</head><body><main><h1>Audit log</h1>
<form method="get" action="/audit">
<label>From <input name="from" value="{from}" placeholder="2026-11-25T00:00:00Z"></label>
<label>To <input name="to" value="{to}"></label>
<label>Action <input name="action" value="{action}" placeholder="auth.login_failed"></label>
<label>Actor (user id) <input name="actor" value="{actor}"></label>
<button type="submit">Filter</button></form>
<p>Reading this page is itself recorded. Export: <a href="/api/audit/export" download>JSON lines</a> · <a href="/api/audit/export?format=csv" download>CSV</a></p>
<table><thead><tr><th scope="col">seq</th><th scope="col">time</th><th scope="col">actor</th><th scope="col">action</th><th scope="col">target</th><th scope="col">outcome</th><th scope="col">context</th></tr></thead>
<tbody>
{rows}</tbody></table>
{next}</main></body></html>"#,
        nonce = nonce.as_str(),
        from = value(&filter.from),
        to = value(&filter.to),
        action = value(&filter.action),
        actor = filter.actor.map(|a| a.to_string()).unwrap_or_default(),
    )))
}
