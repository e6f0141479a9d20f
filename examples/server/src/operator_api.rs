//! The operator API: `POST /operator/organisations` creates an organisation with its
//! first admin invited, as `procuhelp-server org create` does — for a deployment's named
//! operators only ([`procuhelp_auth::operator`]: a request signed with the operator's
//! Ed25519 key, fresh and used once). docs/operators.md.
//!
//! Served only when `serve --operators FILE` names the operators, and only on a
//! connection that is the schema owner (organisations are created by the owner, never by
//! the runtime role); the server refuses to start otherwise. A request is bounded before
//! anything is checked ([`MAX_BODY`]), then costs one signature check; every refusal is
//! the same 401. An accepted one is recorded as `org.created` in the system chain with
//! the operator's name.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use procuhelp_audit::PgAuditSink;
use procuhelp_auth::directory::Email;
use procuhelp_auth::operator::{Operators, ReplayGuard, SCHEME};
use procuhelp_tenancy::residency::Residency;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

/// The largest request body accepted (refused with 413 before anything is checked).
pub const MAX_BODY: usize = 4096;
/// The route.
pub const ORGANISATIONS: &str = "/operator/organisations";

/// What the operator API needs.
#[derive(Debug, Clone)]
pub struct OperatorApi {
    /// The deployment's operators.
    pub operators: Arc<Operators>,
    /// Requests already accepted.
    pub replay: Arc<ReplayGuard>,
    /// The schema owner's pool (creates organisations).
    pub owner: PgPool,
    /// The runtime role's pool (the first admin and their invitation).
    pub runtime: PgPool,
    /// The audit log (events appended in the operator's transactions).
    pub log: PgAuditSink,
    /// The audit pipeline's sink (events recorded on their own reach the detectors).
    pub sink: Arc<dyn procuhelp_audit::AuditSink>,
    /// Shows the detectors an event appended in a transaction, after its commit.
    pub committed: Committed,
    /// The deployment's residency (the new organisation's region).
    pub residency: Arc<Residency>,
}

/// An operator's time-bound access to one organisation: `POST` grants (with a reason),
/// `DELETE …/{grant}` revokes.
pub const ACCESS: &str = "/operator/organisations/{org}/access";
/// Revoking a grant.
pub const ACCESS_GRANT: &str = "/operator/organisations/{org}/access/{grant}";
/// The organisation's audit trail, read under a grant in force.
pub const AUDIT: &str = "/operator/organisations/{org}/audit";

/// Shows the alert detectors an event committed inside a transaction
/// (`AuditPipeline::committed_observer`).
#[derive(Clone)]
pub struct Committed(pub Arc<dyn Fn(&procuhelp_audit::AuditEvent) + Send + Sync>);

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committed")
    }
}

/// The operator routes.
pub fn routes(api: OperatorApi) -> Router {
    Router::new()
        .route(ORGANISATIONS, post(create))
        .route(ACCESS, post(crate::operator_access::grant))
        .route(
            ACCESS_GRANT,
            axum::routing::delete(crate::operator_access::revoke),
        )
        .route(
            AUDIT,
            axum::routing::get(crate::operator_access::read_audit),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// The operator who signed this request, or `None` (answer [`refused`]; the reason is
/// logged, never the header or the claimed name).
pub(crate) fn authenticate(
    api: &OperatorApi,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<procuhelp_auth::operator::OperatorName> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    api.operators
        .verify(&api.replay, authorization, method.as_str(), path, body, now)
        .map_err(|refusal| {
            tracing::warn!(reason = refusal.reason.as_str(), "operator request refused");
        })
        .ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrganisation {
    name: String,
    admin_email: String,
    #[serde(default)]
    admin_name: Option<String>,
}

pub(crate) fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, SCHEME)],
        axum::Json(json!({ "error": "operator authentication failed" })),
    )
        .into_response()
}

pub(crate) fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

async fn create(
    State(api): State<OperatorApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(operator) = authenticate(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let request: NewOrganisation = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("the body: {e}")),
    };
    let email = match Email::parse(&request.admin_email) {
        Ok(e) => e,
        Err(e) => return bad_request(format!("admin_email: {e}")),
    };
    let admin_name = match crate::orgs::check_admin_name(
        request.admin_name.as_deref().unwrap_or("Administrator"),
    ) {
        Ok(n) => n,
        Err(e) => return bad_request(format!("admin_name: {e}")),
    };
    let name = match crate::orgs::check_name(&request.name) {
        Ok(n) => n,
        Err(e) => return bad_request(format!("name: {e}")),
    };
    // On a task of its own: a client that disconnects (or the request timeout) cannot
    // stop it between its steps and leave an organisation without its admin or record.
    let by = operator.clone();
    let task = tokio::spawn(async move {
        crate::orgs::create(
            &api.owner,
            &api.runtime,
            &api.log,
            &name,
            &email,
            &admin_name,
            &api.residency,
            crate::orgs::Via::Operator(&by),
        )
        .await
        .map(|created| (created, email))
    });
    let created = match task.await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!("the creation task failed: {e}")),
    };
    match created {
        Ok((created, email)) => (
            StatusCode::CREATED,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "organisation": created.org.to_string(),
                "region": created.region.as_str(),
                "admin": created.admin.to_string(),
                "admin_email": email.as_str(),
                "invitation_token": created.token.expose(),
                "expires_at": created.expires_at,
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), %operator, "operator: creating an organisation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(
                    json!({ "error": "the organisation could not be created; nothing was kept" }),
                ),
            )
                .into_response()
        }
    }
}
