//! SCIM 2.0 endpoints (`/scim/v2/{org}/...`) for an identity provider such as Microsoft
//! Entra ID. Authenticated by the organisation's SCIM bearer token only — never by a
//! session cookie or an API token — so these routes are not in [`super::ENDPOINTS`]
//! (the session × role matrix); [`SCIM_ENDPOINTS`] lists them instead. An unknown
//! organisation and a bad token get the same 401.
//!
//! Every change and its audit events (actor: the SCIM token as a service account,
//! context `"via": "scim"`) are committed together; if the audit log refuses, nothing
//! changes (503).
//!
//! SCIM sees only the users it owns (see `procuhelp_auth::scim::store`). What it tried
//! and may not do is recorded (`scim.request_refused`, outcome `denied`, a fixed reason,
//! nothing of the input): a request by id for a user it does not manage (answered with
//! the same 404 as an unknown id), a create naming such a user's userName or address
//! (409), `active: true` for a user an admin disabled (400 `mutability`).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::ClientInfo;
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{self, Page, Projection, ResourceKind};
use procuhelp_auth::scim::store::{self, Effects};
use procuhelp_auth::scim::{ScimError, discovery, patch as scim_patch, token};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use procuhelp_axum::Client;

/// The SCIM media type (RFC 7644 §8.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Largest SCIM request body. Below the server-wide limit, so an oversized body gets a
/// SCIM error (413) rather than a generic one.
pub const MAX_SCIM_BODY_BYTES: usize = 256 * 1024;

/// Every SCIM route (relative to `/scim/v2/{org}`), for tests and documentation.
pub const SCIM_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/Users"),
    ("POST", "/Users"),
    ("GET", "/Users/{id}"),
    ("PUT", "/Users/{id}"),
    ("PATCH", "/Users/{id}"),
    ("DELETE", "/Users/{id}"),
    ("GET", "/Groups"),
    ("POST", "/Groups"),
    ("GET", "/Groups/{id}"),
    ("PUT", "/Groups/{id}"),
    ("PATCH", "/Groups/{id}"),
    ("DELETE", "/Groups/{id}"),
    ("GET", "/ServiceProviderConfig"),
    ("GET", "/ResourceTypes"),
    ("GET", "/ResourceTypes/{id}"),
    ("GET", "/Schemas"),
    ("GET", "/Schemas/{id}"),
];

/// The externally visible origin (`https://host[:port]`) for `meta.location`. Set it as a
/// request extension when the server sits behind a proxy or serves plain HTTP in tests;
/// otherwise `https://` and the request's Host header are used.
#[derive(Debug, Clone)]
pub struct PublicOrigin(pub String);

/// The SCIM routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scim/v2/{org}/Users", get(list_users).post(create_user))
        .route(
            "/scim/v2/{org}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/{org}/Groups", get(list_groups).post(create_group))
        .route(
            "/scim/v2/{org}/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/{org}/ResourceTypes", get(resource_types))
        .route("/scim/v2/{org}/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/{org}/Schemas", get(schemas))
        .route("/scim/v2/{org}/Schemas/{id}", get(schema))
        .route("/scim/v2/{org}/.search", post(search_all))
        .route("/scim/v2/{org}/Users/.search", post(search_users))
        .route("/scim/v2/{org}/Groups/.search", post(search_groups))
        // Optional features we do not offer (advertised in ServiceProviderConfig).
        .route("/scim/v2/{org}/Bulk", post(not_implemented))
        .route("/scim/v2/{org}/Me", get(not_implemented))
        .route("/scim/v2/{org}/{*rest}", axum::routing::any(unknown))
}

/// A SCIM reply: status, `application/scim+json`, body.
#[derive(Debug)]
pub struct ScimReply {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

impl ScimReply {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            location: None,
        }
    }
}

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, l);
        }
        response
    }
}

/// A SCIM failure as a response.
#[derive(Debug)]
pub struct ScimFailure(pub ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<scim_patch::PatchError> for ScimFailure {
    fn from(e: scim_patch::PatchError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = ScimReply {
            status,
            body: self.0.to_json(),
            location: None,
        }
        .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

type ScimResult<T> = Result<T, ScimFailure>;

/// An authenticated SCIM request: the organisation from the path, a live SCIM token of
/// that organisation, and the open tenant transaction.
#[derive(Debug)]
pub struct ScimCtx {
    org: OrgId,
    token: Uuid,
    base: String,
    client: ClientInfo,
    state: AppState,
    tx: Option<TenantTx>,
}

fn org_from_path(path: &str) -> Option<OrgId> {
    path.strip_prefix("/scim/v2/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn origin(parts: &Parts) -> String {
    if let Some(o) = parts.extensions.get::<PublicOrigin>() {
        return o.0.trim_end_matches('/').to_owned();
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

impl FromRequestParts<AppState> for ScimCtx {
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ScimResult<Self> {
        let Client(client) = match Client::from_request_parts(parts, state).await {
            Ok(c) => c,
            Err(never) => match never {},
        };
        // One answer for a missing org, an unknown org and a bad token.
        let unauthorized = || ScimFailure(ScimError::unauthorized());
        let org = org_from_path(parts.uri.path()).ok_or_else(unauthorized)?;
        let presented = bearer(parts).ok_or_else(unauthorized)?;
        let mut tx = match state.sdk.tenants().begin(org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => return Err(unauthorized()),
            Err(e) => return Err(ScimError::from(e).into()),
        };
        let now = state.sdk.now();
        let token = match token::authenticate(&mut tx, presented, now).await {
            Ok(id) => id,
            Err(procuhelp_auth::AuthError::Unauthenticated) => {
                let _ = tx.rollback().await;
                tracing::info!(%org, "scim request with an invalid token");
                return Err(unauthorized());
            }
            Err(e) => return Err(ScimError::from(e).into()),
        };
        Ok(ScimCtx {
            org,
            token,
            base: format!("{}/scim/v2/{org}", origin(parts)),
            client,
            state: state.clone(),
            tx: Some(tx),
        })
    }
}

impl Drop for ScimCtx {
    /// A handler that returned early leaves its transaction open: rolled back in the
    /// background rather than closing a pooled connection per failed SCIM request.
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            procuhelp_axum::roll_back_in_background(tx);
        }
    }
}

impl ScimCtx {
    fn tx(&mut self) -> ScimResult<&mut TenantTx> {
        self.tx
            .as_mut()
            .ok_or(ScimFailure(ScimError::unavailable()))
    }

    fn now(&self) -> time::OffsetDateTime {
        self.state.sdk.now()
    }

    fn event(&self, action: Action, target: String, context: Value) -> AuditEvent {
        self.event_with(action, Outcome::Success, target, context)
    }

    fn event_with(
        &self,
        action: Action,
        outcome: Outcome,
        target: String,
        context: Value,
    ) -> AuditEvent {
        let mut context = context;
        if let Some(obj) = context.as_object_mut() {
            obj.insert("via".to_owned(), json!("scim"));
        }
        let mut event = AuditEvent::new(
            Some(self.org),
            Actor::ServiceAccount { id: self.token },
            action,
            outcome,
        )
        .at(self.now())
        .source(self.client.source, self.client.user_agent.as_deref())
        .target(target)
        .context(context);
        if let Some(id) = &self.client.request_id {
            event = event.request_id(id.clone());
        }
        event
    }

    /// Records `event` before the commit; on failure nothing of the request is kept.
    async fn record(&mut self, event: AuditEvent) -> ScimResult<()> {
        if let Err(e) = self.state.sdk.audit().record(event).await {
            if let Some(tx) = self.tx.take() {
                let _ = tx.rollback().await;
            }
            return Err(ScimError::from(procuhelp_auth::AuthError::Audit(e)).into());
        }
        Ok(())
    }

    /// Refuses what SCIM may not do: nothing of the request is kept (rolled back), and
    /// the attempt is recorded first — `op`, a fixed `reason`, the user it concerned, no
    /// input. If the audit log refuses the record, 503.
    async fn refuse(
        &mut self,
        error: ScimError,
        op: &'static str,
        user: Option<String>,
        reason: &'static str,
    ) -> ScimFailure {
        if let Some(tx) = self.tx.take() {
            let _ = tx.rollback().await;
        }
        let target = user.map_or_else(|| "scim:Users".to_owned(), |u| format!("user:{u}"));
        let event = self.event_with(
            Action::ScimRequestRefused,
            Outcome::Denied,
            target,
            json!({ "op": op, "reason": reason }),
        );
        if let Err(e) = self.state.sdk.audit().record(event).await {
            return ScimError::from(procuhelp_auth::AuthError::Audit(e)).into();
        }
        error.into()
    }

    /// The failure for `error` from an operation on user `id`, recording the refusals
    /// that concern ownership: a 404 for a user SCIM does not manage (SCIM was never
    /// shown that id), and an admin's disable.
    async fn user_failure(&mut self, error: ScimError, op: &'static str, id: &str) -> ScimFailure {
        if error == ScimError::not_found() {
            let hidden = match self.tx.as_mut() {
                Some(tx) => match store::is_unmanaged_user(tx, id).await {
                    Ok(hidden) => hidden,
                    Err(e) => return e.into(),
                },
                None => false,
            };
            if hidden {
                return self
                    .refuse(error, op, Some(id.to_owned()), "user not managed by SCIM")
                    .await;
            }
        } else if error.is_ownership_refusal() {
            return self
                .refuse(error, op, Some(id.to_owned()), error.detail)
                .await;
        }
        error.into()
    }

    async fn commit(&mut self) -> ScimResult<()> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(|e| ScimError::from(e).into()),
            None => Err(ScimError::unavailable().into()),
        }
    }

    /// The role changes and (de)activations a write caused.
    async fn record_effects(&mut self, user: Option<String>, effects: &Effects) -> ScimResult<()> {
        if let Some(user) = &user {
            if let Some(revoked) = effects.deprovisioned {
                let e = self.event(
                    Action::ScimUserDeprovisioned,
                    format!("user:{user}"),
                    json!({ "sessions_revoked": revoked }),
                );
                self.record(e).await?;
            }
            if effects.reactivated {
                let e = self.event(
                    Action::ScimUserReactivated,
                    format!("user:{user}"),
                    json!({}),
                );
                self.record(e).await?;
            }
        }
        for change in &effects.role_changes {
            let e = self.event(
                Action::UserRoleChanged,
                format!("user:{}", change.user),
                json!({ "from": change.from, "to": change.to,
                        "sessions_revoked": change.sessions_revoked, "reason": "scim group mapping" }),
            );
            self.record(e).await?;
        }
        Ok(())
    }
}

/// Reads the body up to [`MAX_SCIM_BODY_BYTES`].
async fn body(request: Request) -> ScimResult<Bytes> {
    axum::body::to_bytes(request.into_body(), MAX_SCIM_BODY_BYTES)
        .await
        .map_err(|_| ScimError::too_large().into())
}

struct ListQuery {
    filter: Option<String>,
    page: Page,
    projection: Projection,
}

impl ListQuery {
    fn from_search(s: &model::SearchRequest, kind: ResourceKind) -> ScimResult<Self> {
        Ok(Self {
            filter: s.filter.clone(),
            page: Page::parse(s.start_index.as_deref(), s.count.as_deref())?,
            projection: Projection::parse(
                kind,
                s.attributes.as_deref(),
                s.excluded_attributes.as_deref(),
            )?,
        })
    }
}

fn list_query(uri: &Uri, kind: ResourceKind) -> ScimResult<ListQuery> {
    let pairs: Vec<(String, String)> = match uri.query() {
        None => Vec::new(),
        Some(_) => {
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|_| ScimError::invalid_syntax("malformed query string"))?
                .0
        }
    };
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if param("sortBy").is_some() {
        return Err(ScimError::invalid_value("sorting is not supported").into());
    }
    Ok(ListQuery {
        filter: param("filter").map(str::to_owned),
        page: Page::parse(param("startIndex"), param("count"))?,
        projection: Projection::parse(kind, param("attributes"), param("excludedAttributes"))?,
    })
}

fn projection(uri: &Uri, kind: ResourceKind) -> ScimResult<Projection> {
    Ok(list_query(uri, kind)?.projection)
}

fn created(body: Value, location: String) -> ScimReply {
    ScimReply {
        status: StatusCode::CREATED,
        body,
        location: Some(location),
    }
}

// --- Users -------------------------------------------------------------------------

async fn list_users(ctx: ScimCtx, uri: Uri) -> ScimResult<ScimReply> {
    let q = list_query(&uri, ResourceKind::User)?;
    users_page(ctx, q).await
}

async fn search_users(ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    users_page(ctx, ListQuery::from_search(&s, ResourceKind::User)?).await
}

async fn users_page(mut ctx: ScimCtx, q: ListQuery) -> ScimResult<ScimReply> {
    let filter = q
        .filter
        .as_deref()
        .map(|f| parse_filter(f, ResourceKind::User))
        .transpose()?;
    let (total, users) = store::list_users(ctx.tx()?, filter.as_ref(), q.page).await?;
    ctx.commit().await?;
    let items = users
        .iter()
        .map(|u| q.projection.apply(u.to_json(&ctx.base)))
        .collect();
    Ok(ScimReply::ok(model::list_response(total, q.page, items)))
}

async fn get_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let user = match store::user(ctx.tx()?, &id).await {
        Ok(user) => user,
        Err(e) => return Err(ctx.user_failure(e, "get", &id).await),
    };
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(user.to_json(&ctx.base))))
}

async fn create_user(mut ctx: ScimCtx, uri: Uri, request: Request) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let input = model::parse_user(&body(request).await?)?;
    let now = ctx.now();
    let (user, effects) = match store::create_user(ctx.tx()?, input.clone(), now).await {
        Ok(done) => done,
        Err(e) if e.is_ownership_refusal() => {
            let target = store::create_target(ctx.tx()?, &input).await?;
            return Err(ctx
                .refuse(e, "create", target.map(|t| t.to_string()), e.detail)
                .await);
        }
        Err(e) => return Err(e.into()),
    };
    let id = user.id.to_string();
    let e = ctx
        .event(
            Action::ScimUserProvisioned,
            format!("user:{id}"),
            json!({ "revived": effects.revived, "active": user.active }),
        )
        .person(user.id, Some(&user.email), user.display_name.as_deref());
    ctx.record(e).await?;
    ctx.record_effects(Some(id.clone()), &effects).await?;
    ctx.commit().await?;
    let location = format!("{}/Users/{id}", ctx.base);
    Ok(created(p.apply(user.to_json(&ctx.base)), location))
}

async fn user_updated(
    ctx: &mut ScimCtx,
    user: &store::ScimUser,
    op: &str,
    effects: &Effects,
) -> ScimResult<()> {
    let e = ctx
        .event(
            Action::ScimUserUpdated,
            format!("user:{}", user.id),
            json!({ "op": op }),
        )
        .person(user.id, Some(&user.email), user.display_name.as_deref());
    ctx.record(e).await?;
    ctx.record_effects(Some(user.id.to_string()), effects).await
}

async fn replace_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let input = model::parse_user(&body(request).await?)?;
    let now = ctx.now();
    let (user, effects) = match store::replace_user(ctx.tx()?, &id, input, now).await {
        Ok(done) => done,
        Err(e) => return Err(ctx.user_failure(e, "replace", &id).await),
    };
    user_updated(&mut ctx, &user, "replace", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(user.to_json(&ctx.base))))
}

async fn patch_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let changes = scim_patch::parse_user_patch(&body(request).await?)?;
    let now = ctx.now();
    let (user, effects) = match store::patch_user(ctx.tx()?, &id, &changes, now).await {
        Ok(done) => done,
        Err(e) => return Err(ctx.user_failure(e, "patch", &id).await),
    };
    user_updated(&mut ctx, &user, "patch", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(user.to_json(&ctx.base))))
}

async fn delete_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    let now = ctx.now();
    let effects = match store::delete_user(ctx.tx()?, &id, now).await {
        Ok(effects) => effects,
        Err(e) => return Err(ctx.user_failure(e, "delete", &id).await),
    };
    let e = ctx.event(
        Action::ScimUserDeprovisioned,
        format!("user:{id}"),
        json!({ "op": "delete", "sessions_revoked": effects.deprovisioned.unwrap_or(0) }),
    );
    ctx.record(e).await?;
    let rest = Effects {
        deprovisioned: None,
        ..effects
    };
    ctx.record_effects(Some(id), &rest).await?;
    ctx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- Groups ------------------------------------------------------------------------

async fn list_groups(ctx: ScimCtx, uri: Uri) -> ScimResult<ScimReply> {
    let q = list_query(&uri, ResourceKind::Group)?;
    groups_page(ctx, q).await
}

async fn search_groups(ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    groups_page(ctx, ListQuery::from_search(&s, ResourceKind::Group)?).await
}

async fn groups_page(mut ctx: ScimCtx, q: ListQuery) -> ScimResult<ScimReply> {
    let filter = q
        .filter
        .as_deref()
        .map(|f| parse_filter(f, ResourceKind::Group))
        .transpose()?;
    let (total, groups) = store::list_groups(ctx.tx()?, filter.as_ref(), q.page).await?;
    ctx.commit().await?;
    let items = groups
        .iter()
        .map(|g| q.projection.apply(g.to_json(&ctx.base)))
        .collect();
    Ok(ScimReply::ok(model::list_response(total, q.page, items)))
}

async fn get_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let group = store::group(ctx.tx()?, &id).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))))
}

async fn group_changed(
    ctx: &mut ScimCtx,
    action: Action,
    group: &str,
    op: &str,
    effects: &Effects,
) -> ScimResult<()> {
    let e = ctx.event(
        action,
        format!("scim_group:{group}"),
        json!({ "op": op, "members_added": effects.members_added,
                "members_removed": effects.members_removed }),
    );
    ctx.record(e).await?;
    ctx.record_effects(None, effects).await
}

async fn create_group(mut ctx: ScimCtx, uri: Uri, request: Request) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let input = model::parse_group(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::create_group(ctx.tx()?, input, now).await?;
    let id = group.id.to_string();
    group_changed(&mut ctx, Action::ScimGroupCreated, &id, "create", &effects).await?;
    ctx.commit().await?;
    let location = format!("{}/Groups/{id}", ctx.base);
    Ok(created(p.apply(group.to_json(&ctx.base)), location))
}

async fn replace_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let input = model::parse_group(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::replace_group(ctx.tx()?, &id, input, now).await?;
    group_changed(&mut ctx, Action::ScimGroupChanged, &id, "replace", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))))
}

async fn patch_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<Response> {
    let p = projection(&uri, ResourceKind::Group)?;
    let changes = scim_patch::parse_group_patch(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::patch_group(ctx.tx()?, &id, &changes, now).await?;
    group_changed(&mut ctx, Action::ScimGroupChanged, &id, "patch", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))).into_response())
}

async fn delete_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    let now = ctx.now();
    let effects = store::delete_group(ctx.tx()?, &id, now).await?;
    group_changed(&mut ctx, Action::ScimGroupDeleted, &id, "delete", &effects).await?;
    ctx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /.search` at the root: Users, then Groups, paged as one list. A filter applies
/// to the resource types that have its attribute (`externalId`: both).
async fn search_all(mut ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    let users_q = ListQuery::from_search(&s, ResourceKind::User)?;
    let groups_q = ListQuery::from_search(&s, ResourceKind::Group)?;
    let page = users_q.page;
    let (user_filter, group_filter) = match s.filter.as_deref() {
        None => (None, None),
        Some(f) => {
            let u = parse_filter(f, ResourceKind::User);
            let g = parse_filter(f, ResourceKind::Group);
            if let (Err(e), Err(_)) = (&u, &g) {
                return Err((*e).into());
            }
            (Some(u.ok()), Some(g.ok()))
        }
    };
    let mut items = Vec::new();
    let mut total = 0;
    // `Some(None)`: a filter this resource type cannot match.
    if !matches!(user_filter, Some(None)) {
        let (t, users) = store::list_users(ctx.tx()?, user_filter.flatten().as_ref(), page).await?;
        total += t;
        items.extend(
            users
                .iter()
                .map(|u| users_q.projection.apply(u.to_json(&ctx.base))),
        );
    }
    if !matches!(group_filter, Some(None)) {
        let users_total = total;
        let skip = (page.offset() - users_total).max(0);
        let left = page
            .count
            .saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let group_page = Page {
            start_index: u32::try_from(skip + 1).unwrap_or(u32::MAX),
            count: left,
        };
        let (t, groups) =
            store::list_groups(ctx.tx()?, group_filter.flatten().as_ref(), group_page).await?;
        total += t;
        items.extend(
            groups
                .iter()
                .map(|g| groups_q.projection.apply(g.to_json(&ctx.base))),
        );
    }
    ctx.commit().await?;
    Ok(ScimReply::ok(model::list_response(total, page, items)))
}

// --- Discovery and the rest ----------------------------------------------------------

async fn service_provider_config(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::service_provider_config(&ctx.base)))
}

async fn resource_types(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::resource_types(&ctx.base)))
}

async fn resource_type(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    let kind = match id.as_str() {
        "User" => ResourceKind::User,
        "Group" => ResourceKind::Group,
        _ => return Err(ScimError::not_found().into()),
    };
    Ok(ScimReply::ok(discovery::resource_type(&ctx.base, kind)))
}

async fn schemas(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::schemas(&ctx.base)))
}

async fn schema(mut ctx: ScimCtx, Path((_, id)): Path<(String, String)>) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    discovery::schema_by_id(&ctx.base, &id)
        .map(ScimReply::ok)
        .ok_or(ScimError::not_found().into())
}

async fn not_implemented(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Err(ScimError::not_implemented().into())
}

async fn unknown(mut ctx: ScimCtx, _body: Body) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Err(ScimError::not_found().into())
}
