//! The procurement API: suppliers and purchase requests, each behind its permission, in
//! the tenant of the authenticated caller.

use crate::suppliers::{
    MAX_SUPPLIER_PAGE, NewSupplier, PgSupplierRepository, Supplier, SupplierRepository as _,
};
use axum::Json;
use axum::extract::{Path, Query};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::session_read::AuthenticatedRead;
use procuhelp_auth::{AuthError, Permission};
use procuhelp_core::{SupplierId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use procuhelp_axum::read::ReadAuth;
use procuhelp_axum::{Access, Authed, RouteTable};
use procuhelp_axum::{Error as ApiError, Result as ApiResult};

use crate::state::AppState;

/// The procurement routes with the permission each needs.
pub(crate) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/api/suppliers", Needs(P::ReadSuppliers), list_suppliers)
        .post("/api/suppliers", Needs(P::ManageSuppliers), create_supplier)
        .get(
            "/api/suppliers/{supplier}",
            Needs(P::ReadSuppliers),
            get_supplier,
        )
        .delete(
            "/api/suppliers/{supplier}",
            Needs(P::ManageSuppliers),
            delete_supplier,
        )
        .get("/api/requests", Needs(P::ReadRequests), list_requests)
        .post("/api/requests", Needs(P::CreateRequest), create_request)
        .post(
            "/api/requests/{request}/approve",
            Needs(P::ApproveRequest),
            approve_request,
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<u32>,
}

/// The first page of suppliers, read with the session check (`ReadAuth`): RLS scopes it.
const LIST_SUPPLIERS: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT s.org_id, s.id, s.name, s.country, s.vat_id, s.status, s.created_by,
            s.created_at, s.updated_at
     FROM app.suppliers s WHERE s.org_id = tenant.org ORDER BY s.name, s.id LIMIT $6",
);

/// `GET /api/suppliers`: one round trip (a remembered session: one plain statement).
pub(crate) async fn list_suppliers(
    auth: ReadAuth,
    Query(page): Query<Page>,
) -> ApiResult<Json<Value>> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_SUPPLIER_PAGE);
    let read = auth
        .fetch_all(
            Permission::ReadSuppliers,
            &LIST_SUPPLIERS
                .query_as::<Supplier>()
                .bind_int(i64::from(limit)),
        )
        .await?;
    Ok(Json(json!({ "suppliers": read.rows })))
}

/// `GET /api/suppliers/{id}`.
pub(crate) async fn get_supplier(
    mut authed: Authed,
    Path(id): Path<SupplierId>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ReadSuppliers).await?;
    let supplier = PgSupplierRepository.get(authed.tx().await?, id).await?;
    authed.commit().await?;
    Ok(Json(json!(supplier)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSupplierBody {
    name: String,
    country: String,
}

/// The acting person: the signed-in user, or the user who created the token. A token's
/// own id would make segregation of duties compare two different ids for one person.
fn acting_id(authed: &Authed) -> UserId {
    authed.principal.acting_user()
}

/// `POST /api/suppliers`: invites a supplier.
pub(crate) async fn create_supplier(
    mut authed: Authed,
    Json(body): Json<NewSupplierBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSuppliers).await?;
    let new = NewSupplier::new(&body.name, &body.country)?;
    let by = acting_id(&authed);
    let supplier = PgSupplierRepository
        .create(authed.tx().await?, new, by)
        .await?;
    let event = authed
        .event(Action::SupplierInvited, Outcome::Success)
        .target(format!("supplier:{}", supplier.id))
        .context(json!({ "name": supplier.name, "country": supplier.country }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!(supplier)))
}

/// `DELETE /api/suppliers/{id}`.
pub(crate) async fn delete_supplier(
    mut authed: Authed,
    Path(id): Path<SupplierId>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSuppliers).await?;
    PgSupplierRepository.delete(authed.tx().await?, id).await?;
    let event = authed
        .event(Action::SupplierDeleted, Outcome::Success)
        .target(format!("supplier:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(json!({ "deleted": id })))
}

type RequestRow = (Uuid, String, i64, Uuid, String, Option<Uuid>);

fn request_json(r: RequestRow) -> Value {
    let (id, title, amount_cents, requested_by, status, approved_by) = r;
    json!({
        "id": id, "title": title, "amount_cents": amount_cents,
        "requested_by": requested_by, "status": status, "approved_by": approved_by,
    })
}

/// The latest purchase requests, read with the session check (`ReadAuth`).
const LIST_REQUESTS: AuthenticatedRead = AuthenticatedRead::new(
    "SELECT r.id, r.title, r.amount_cents, r.requested_by, r.status, r.approved_by
     FROM app.purchase_requests r WHERE r.org_id = tenant.org
     ORDER BY r.created_at DESC LIMIT 200",
);

/// `GET /api/requests`: one round trip, as `GET /api/suppliers`.
pub(crate) async fn list_requests(auth: ReadAuth) -> ApiResult<Json<Value>> {
    let read = auth
        .fetch_all(
            Permission::ReadRequests,
            &LIST_REQUESTS.query_as::<RequestRow>(),
        )
        .await?;
    Ok(Json(
        json!({ "requests": read.rows.into_iter().map(request_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRequestBody {
    title: String,
    amount_cents: i64,
}

/// `POST /api/requests`: raises a purchase request.
pub(crate) async fn create_request(
    mut authed: Authed,
    Json(body): Json<NewRequestBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::CreateRequest).await?;
    let title = body.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(ApiError::Invalid("title"));
    }
    if body.amount_cents <= 0 {
        return Err(ApiError::Invalid("amount_cents"));
    }
    let by = acting_id(&authed);
    let org = authed.org();
    let id = Uuid::now_v7();
    let row: RequestRow = sqlx::query_as(
        "INSERT INTO app.purchase_requests (org_id, id, title, amount_cents, requested_by)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, title, amount_cents, requested_by, status, approved_by",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(&title)
    .bind(body.amount_cents)
    .bind(by.as_uuid())
    .fetch_one(authed.tx().await?.conn())
    .await?;
    let event = authed
        .event(Action::RequestCreated, Outcome::Success)
        .target(format!("request:{id}"))
        .context(json!({ "amount_cents": body.amount_cents }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(request_json(row)))
}

/// `POST /api/requests/{id}/approve`: nobody approves their own request.
pub(crate) async fn approve_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ApproveRequest).await?;
    let by = acting_id(&authed);
    let requested_by: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT requested_by, status FROM app.purchase_requests WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(authed.tx().await?.conn())
    .await?;
    let (requested_by, status) = requested_by.ok_or(AuthError::NotFound)?;
    let requester = UserId::from_uuid(requested_by).map_err(|_| AuthError::Internal)?;
    if !authed.principal.may_approve(requester) {
        authed.abandon().await;
        let event = authed
            .event(Action::RequestApprovalRefused, Outcome::Denied)
            .target(format!("request:{id}"))
            .context(json!({ "reason": "segregation of duties" }));
        authed.sdk().record(event).await?;
        return Err(AuthError::SelfApproval.into());
    }
    if status != "open" {
        return Err(AuthError::Conflict("request is not open").into());
    }
    let row: RequestRow = sqlx::query_as(
        "UPDATE app.purchase_requests SET status = 'approved', approved_by = $2
         WHERE id = $1 RETURNING id, title, amount_cents, requested_by, status, approved_by",
    )
    .bind(id)
    .bind(by.as_uuid())
    .fetch_one(authed.tx().await?.conn())
    .await?;
    let event = authed
        .event(Action::RequestApproved, Outcome::Success)
        .target(format!("request:{id}"));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Json(request_json(row)))
}
