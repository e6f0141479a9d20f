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
    api_table().get("/audit", Needs(P::ReadAuditLog), page)
}

/// [`table`] without the `/audit` page: for an application that shows the trail in its
/// own frame (with [`read_page`]).
pub fn api_table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/api/audit", Needs(P::ReadAuditLog), list)
        .get("/api/audit/export", Needs(P::ReadAuditLog), export)
}

/// The audit router ([`table`]'s routes).
pub fn routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table().into_router()
}

/// Which events to read: the query of `GET /api/audit` and of the pages (every field
/// optional; unknown fields are refused). Times are RFC 3339.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditFilter {
    /// From this time.
    pub from: Option<String>,
    /// Before this time.
    pub to: Option<String>,
    /// One action (`request.approved`).
    pub action: Option<String>,
    /// One actor (a user's id).
    pub actor: Option<uuid::Uuid>,
    /// After this sequence number (paging).
    pub after_seq: Option<u64>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Export format (`jsonl`, `csv`).
    pub format: Option<String>,
}

type Filter = AuditFilter;

/// One page of the trail: its events, and the filter that continues after them (`None`
/// on the last page).
#[derive(Debug)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events, oldest first.
    pub events: Vec<StoredEvent>,
    /// The filter of the next page.
    pub next: Option<AuditFilter>,
}

/// Reads one page of the organisation's trail for `authed` (`read_audit_log`); the read
/// is itself recorded before anything is returned. The request's transaction is
/// committed (the log reads in its own).
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_axum::audit::{AuditFilter, read_page};
/// let page = read_page(&mut authed, &AuditFilter::default()).await?;
/// for stored in &page.events {
///     println!("{} {}", stored.event.seq, stored.event.action.as_str());
/// }
/// if let Some(next) = page.next {
///     println!("more at ?{}", next.to_query());
/// }
/// # Ok(()) }
/// ```
pub async fn read_page(authed: &mut Authed, filter: &AuditFilter) -> Result<AuditPage> {
    let events = read(authed, filter).await?;
    let limit = filter.query()?.limit;
    let next = match events.last() {
        Some(last) if events.len() >= limit as usize => Some(AuditFilter {
            after_seq: Some(last.event.seq),
            ..filter.clone()
        }),
        _ => None,
    };
    Ok(AuditPage { events, next })
}

impl AuditFilter {
    /// The filter as a query string (for a link), empty fields left out.
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("action", &self.action),
            ("format", &self.format),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        if let Some(actor) = self.actor {
            q.append_pair("actor", &actor.to_string());
        }
        if let Some(after) = self.after_seq {
            q.append_pair("after_seq", &after.to_string());
        }
        if let Some(limit) = self.limit {
            q.append_pair("limit", &limit.to_string());
        }
        q.finish()
    }
}

/// An event as the API shows it (`GET /api/audit`'s `events[]`): seq, time, actor,
/// action, target, outcome, context, request id, the personal data the reader may see,
/// hash.
pub fn event_view(stored: &StoredEvent) -> Value {
    event_json(stored)
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
    let AuditPage { events, next } = read_page(&mut authed, &filter).await?;
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
    let next = next
        .map(|f| {
            format!(
                r#"<p><a rel="next" href="/audit?{}">Next page</a></p>"#,
                escape(&f.to_query())
            )
        })
        .unwrap_or_default();
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
