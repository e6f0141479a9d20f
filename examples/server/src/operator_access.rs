//! Operators' break-glass access to one organisation (issue #16 point 7, docs/operators.md):
//! a signed operator request grants itself access with a reason for a bounded time
//! ([`procuhelp_auth::operator_access`]), reads the organisation's audit trail while the
//! grant is in force, and can end it early. Every step — and every refusal of an
//! authenticated operator — is recorded in **that organisation's own** audit trail, in
//! the transaction that writes the grant, so its admins see who looked, why and until
//! when.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, EventQuery, Outcome};
use procuhelp_auth::operator::OperatorName;
use procuhelp_auth::operator_access::{self, AccessError, GrantState};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantDb;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::operator_api::{OperatorApi, authenticate, bad_request, refused};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    reason: String,
    duration_secs: i64,
}

fn event(org: OrgId, action: Action, outcome: Outcome, operator: &OperatorName) -> AuditEvent {
    AuditEvent::new(Some(org), Actor::System, action, outcome)
        .at(OffsetDateTime::now_utc())
        .context(json!({ "operator": operator.as_str() }))
}

fn status(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({ "error": message }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "operator access");
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "failed; nothing was kept",
    )
}

/// Why an organisation's transaction could not be begun.
enum Unentered {
    Unknown,
    Failed(procuhelp_tenancy::Error),
}

impl Unentered {
    fn answer(self) -> Response {
        match self {
            Unentered::Unknown => status(StatusCode::NOT_FOUND, "no such organisation"),
            Unentered::Failed(e) => internal(e),
        }
    }
}

/// A transaction in `org` on the runtime role's connection.
async fn enter(api: &OperatorApi, org: OrgId) -> Result<procuhelp_tenancy::TenantTx, Unentered> {
    match TenantDb::new(api.runtime.clone()).begin(org).await {
        Ok(tx) => Ok(tx),
        Err(procuhelp_tenancy::Error::UnknownOrg(_)) => Err(Unentered::Unknown),
        Err(e) => Err(Unentered::Failed(e)),
    }
}

/// Records that an authenticated operator was refused, in the organisation's trail.
async fn record_refusal(api: &OperatorApi, org: OrgId, operator: &OperatorName, why: &str) {
    let e = event(
        org,
        Action::OperatorAccessRefused,
        Outcome::Denied,
        operator,
    )
    .context(json!({ "operator": operator.as_str(), "why": why }));
    if let Err(err) = api.sink.record(e).await {
        tracing::error!(error = %err, "recording an operator refusal");
    }
}

/// `POST /operator/organisations/{org}/access` `{"reason": "…", "duration_secs": N}`.
pub(crate) async fn grant(
    State(api): State<OperatorApi>,
    Path(org): Path<OrgId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(operator) = authenticate(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let request: GrantRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            record_refusal(&api, org, &operator, "a grant request that is not one").await;
            return bad_request(format!("the body: {e}"));
        }
    };
    let mut tx = match enter(&api, org).await {
        Ok(tx) => tx,
        Err(unentered) => return unentered.answer(),
    };
    let now = OffsetDateTime::now_utc();
    let duration = time::Duration::seconds(request.duration_secs);
    let granted =
        match operator_access::grant(&mut tx, &operator, &request.reason, duration, now).await {
            Ok(g) => g,
            Err(e @ (AccessError::Reason | AccessError::Duration)) => {
                let _ = tx.rollback().await;
                record_refusal(&api, org, &operator, &e.to_string()).await;
                return bad_request(e.to_string());
            }
            Err(e) => return internal(e),
        };
    let pending = granted.state == GrantState::Pending;
    let record = if pending {
        event(
            org,
            Action::OperatorAccessRequested,
            Outcome::Success,
            &operator,
        )
        .context(json!({
            "operator": operator.as_str(),
            "reason": granted.reason,
            "duration_secs": (granted.ends_at - granted.starts_at).whole_seconds(),
        }))
    } else {
        event(
            org,
            Action::OperatorAccessGranted,
            Outcome::Success,
            &operator,
        )
        .context(json!({
            "operator": operator.as_str(),
            "reason": granted.reason,
            "starts_at": granted.starts_at,
            "ends_at": granted.ends_at,
        }))
    }
    .target(format!("operator_grant:{}", granted.id));
    if let Err(e) = api.log.append_in_tx(&mut tx, &record).await {
        return internal(e);
    }
    if let Err(e) = tx.commit().await {
        return internal(e);
    }
    // A grant, or a request for one, pages someone (the webhook), like a lockout.
    (api.committed.0)(&record);
    if pending {
        tracing::warn!(%org, operator = operator.as_str(), "operator access requested: waits for the organisation's admin");
        return (
            StatusCode::ACCEPTED,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({ "grant": granted.id, "state": granted.state,
                "approve_within_secs": operator_access::APPROVAL_WINDOW.whole_seconds() })),
        )
            .into_response();
    }
    tracing::warn!(%org, operator = operator.as_str(), ends_at = %granted.ends_at, "operator access granted");
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "grant": granted.id, "state": granted.state,
            "starts_at": granted.starts_at, "ends_at": granted.ends_at })),
    )
        .into_response()
}

/// `DELETE /operator/organisations/{org}/access/{grant}`.
pub(crate) async fn revoke(
    State(api): State<OperatorApi>,
    Path((org, grant)): Path<(OrgId, uuid::Uuid)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(operator) = authenticate(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let mut tx = match enter(&api, org).await {
        Ok(tx) => tx,
        Err(unentered) => return unentered.answer(),
    };
    let holder = match operator_access::revoke(&mut tx, grant, OffsetDateTime::now_utc()).await {
        Ok(Some(holder)) => holder,
        Ok(None) => {
            let _ = tx.rollback().await;
            record_refusal(&api, org, &operator, "revoking a grant already over").await;
            return status(StatusCode::CONFLICT, "the grant is already over");
        }
        Err(AccessError::NotFound) => {
            let _ = tx.rollback().await;
            record_refusal(&api, org, &operator, "revoking an unknown grant").await;
            return status(StatusCode::NOT_FOUND, "no such grant");
        }
        Err(e) => return internal(e),
    };
    let record = event(
        org,
        Action::OperatorAccessRevoked,
        Outcome::Success,
        &operator,
    )
    .target(format!("operator_grant:{grant}"))
    .context(json!({ "operator": operator.as_str(), "grant_holder": holder.as_str() }));
    if let Err(e) = api.log.append_in_tx(&mut tx, &record).await {
        return internal(e);
    }
    if let Err(e) = tx.commit().await {
        return internal(e);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditPage {
    #[serde(default)]
    after_seq: u64,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /operator/organisations/{org}/audit?after_seq=N&limit=M`: a page of the trail
/// (what happened, by whom, when — no personal data), under a grant in force; the read
/// is recorded in the trail itself with the grant it used.
pub(crate) async fn read_audit(
    State(api): State<OperatorApi>,
    Path(org): Path<OrgId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(operator) = authenticate(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    // Parsed once the operator is proved: a stranger's malformed query costs nothing.
    let page = match Query::<AuditPage>::try_from_uri(&uri) {
        Ok(Query(p)) => p,
        Err(e) => {
            record_refusal(&api, org, &operator, "a malformed read").await;
            return bad_request(format!("the query: {e}"));
        }
    };
    let mut tx = match enter(&api, org).await {
        Ok(tx) => tx,
        Err(unentered) => return unentered.answer(),
    };
    let in_force = operator_access::in_force(&mut tx, &operator, OffsetDateTime::now_utc()).await;
    let _ = tx.rollback().await;
    let grant = match in_force {
        Ok(Some(g)) => g,
        Ok(None) => {
            record_refusal(&api, org, &operator, "no grant in force").await;
            return status(
                StatusCode::FORBIDDEN,
                "no access grant in force for this organisation",
            );
        }
        Err(e) => return internal(e),
    };
    let access = event(org, Action::AuditRead, Outcome::Success, &operator).context(json!({
        "operator": operator.as_str(),
        "grant": grant.id,
        "reason": grant.reason,
    }));
    let query = EventQuery {
        after_seq: page.after_seq,
        limit: page.limit.unwrap_or(100),
        ..EventQuery::default()
    };
    match api.log.read_events(access, &query).await {
        Ok(events) => {
            let events: Vec<serde_json::Value> = events
                .iter()
                .map(|e| {
                    let e = &e.event;
                    json!({ "seq": e.seq, "at": e.at, "action": e.action.as_str(),
                            "outcome": e.outcome.as_str(), "target": e.target })
                })
                .collect();
            (
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(json!({ "grant_ends_at": grant.ends_at, "events": events })),
            )
                .into_response()
        }
        Err(e) => internal(e),
    }
}
