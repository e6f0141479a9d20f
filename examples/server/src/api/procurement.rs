//! The procurement API: suppliers and purchase requests, each behind its permission, in
//! the tenant of the authenticated caller.

use crate::suppliers::{
    MAX_SUPPLIER_PAGE, NewSupplier, PgSupplierRepository, Supplier, SupplierRepository as _,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::Permission;
use procuhelp_auth::session_read::AuthenticatedRead;
use procuhelp_core::{SupplierId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::requests::{Decision, PurchaseRequest, handle};
use procuhelp_axum::Result as ApiResult;
use procuhelp_axum::read::ReadAuth;
use procuhelp_axum::{Access, Authed, RouteTable};

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
        .put(
            "/api/suppliers/{supplier}",
            Needs(P::ManageSuppliers),
            edit_supplier,
        )
        .delete(
            "/api/suppliers/{supplier}",
            Needs(P::ManageSuppliers),
            delete_supplier,
        )
        .post(
            "/api/suppliers/{supplier}/invitations",
            Needs(P::ManageSuppliers),
            invite_supplier,
        )
        .post(
            "/api/suppliers/{supplier}/reveal-iban",
            Needs(P::ManageSuppliers),
            reveal_supplier_iban,
        )
        .post(
            "/api/suppliers/{supplier}/archive",
            Needs(P::ManageSuppliers),
            archive_supplier,
        )
        .get("/api/requests", Needs(P::ReadRequests), list_requests)
        .post("/api/requests", Needs(P::CreateRequest), create_request)
        .put(
            "/api/requests/{request}",
            Needs(P::CreateRequest),
            edit_request,
        )
        .post(
            "/api/requests/{request}/submit",
            Needs(P::CreateRequest),
            submit_request,
        )
        .post(
            "/api/requests/{request}/cancel",
            Needs(P::CreateRequest),
            cancel_request,
        )
        .post(
            "/api/requests/{request}/approve",
            Needs(P::ApproveRequest),
            approve_request,
        )
        .post(
            "/api/requests/{request}/reject",
            Needs(P::ApproveRequest),
            reject_request,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditSupplierBody {
    name: String,
    country: String,
    vat_id: Option<String>,
    /// The `updated_at` of the version the client edits (as `GET` answered it).
    updated_at: String,
}

/// `PUT /api/suppliers/{id}`: name, country and VAT id, on the version the client read;
/// 409 if someone changed it since (nothing written).
pub(crate) async fn edit_supplier(
    mut authed: Authed,
    Path(id): Path<SupplierId>,
    Json(body): Json<EditSupplierBody>,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ManageSuppliers).await?;
    let details =
        crate::suppliers::handle::details(&body.name, &body.country, body.vat_id.as_deref())?;
    let seen = crate::suppliers::handle::seen(&body.updated_at)?;
    let supplier = crate::suppliers::handle::edit(&mut authed, id, details, seen).await?;
    Ok(Json(json!(supplier)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteSupplierBody {
    email: String,
}

/// `POST /api/suppliers/{id}/invitations` `{"email": "…"}`: a single-use link for the
/// supplier's contact, e-mailed (`{"sent_to"}`), or with no mail configured returned once
/// (`{"link"}`). Only while the supplier waits for its details.
pub(crate) async fn invite_supplier(
    State(mail): State<crate::mail::Mail>,
    mut authed: Authed,
    Path(id): Path<SupplierId>,
    Json(body): Json<InviteSupplierBody>,
) -> ApiResult<Response> {
    use crate::supplier_onboarding::handle::{self, Invited};
    authed.require(Permission::ManageSuppliers).await?;
    PgSupplierRepository.get(authed.tx().await?, id).await?;
    let email = procuhelp_auth::directory::Email::parse(&body.email)
        .map_err(|_| procuhelp_axum::Error::Invalid("email"))?;
    let invited = handle::invite(&mut authed, &mail, id, &email).await?;
    authed.commit().await?;
    let body = match invited {
        Invited::SentTo(to) => json!({ "sent_to": to }),
        Invited::Link(path) => json!({ "link": path }),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `POST /api/suppliers/{id}/reveal-iban`: the whole IBAN, its reveal recorded first.
pub(crate) async fn reveal_supplier_iban(
    mut authed: Authed,
    Path(id): Path<SupplierId>,
) -> ApiResult<Response> {
    let iban = crate::supplier_onboarding::handle::reveal_iban(&mut authed, id).await?;
    authed.commit().await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "iban": iban })),
    )
        .into_response())
}

/// `POST /api/suppliers/{id}/archive`: kept for the record; its links end.
pub(crate) async fn archive_supplier(
    mut authed: Authed,
    Path(id): Path<SupplierId>,
) -> ApiResult<Json<Value>> {
    crate::supplier_onboarding::handle::archive(&mut authed, id).await?;
    Ok(Json(json!({ "archived": id })))
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

/// A request as the API shows it.
pub(crate) fn purchase_request_json(r: &PurchaseRequest) -> Value {
    json!({
        "id": r.id, "title": r.title, "amount_cents": r.amount_cents,
        "requested_by": r.requested_by, "status": r.status.as_str(),
        "approved_by": r.approved_by, "rejected_by": r.rejected_by,
        "decision_comment": r.decision_comment, "version": r.version,
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
    /// Keep it as a draft (default: submitted at once).
    #[serde(default)]
    draft: bool,
}

/// `POST /api/requests`: raises a purchase request (submitted, or a draft).
pub(crate) async fn create_request(
    mut authed: Authed,
    Json(body): Json<NewRequestBody>,
) -> ApiResult<Json<Value>> {
    let r = handle::raise(&mut authed, &body.title, body.amount_cents, !body.draft).await?;
    Ok(Json(purchase_request_json(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditRequestBody {
    title: String,
    amount_cents: i64,
    /// The version the change is based on.
    version: i32,
}

/// `PUT /api/requests/{id}`: the requester edits their draft.
pub(crate) async fn edit_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
    Json(body): Json<EditRequestBody>,
) -> ApiResult<Json<Value>> {
    let r = handle::edit(
        &mut authed,
        id,
        &body.title,
        body.amount_cents,
        body.version,
    )
    .await?;
    Ok(Json(purchase_request_json(&r)))
}

/// `POST /api/requests/{id}/submit`.
pub(crate) async fn submit_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let r = handle::submit(&mut authed, id).await?;
    Ok(Json(purchase_request_json(&r)))
}

/// `POST /api/requests/{id}/cancel`.
pub(crate) async fn cancel_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let r = handle::cancel(&mut authed, id).await?;
    Ok(Json(purchase_request_json(&r)))
}

/// `POST /api/requests/{id}/approve`: nobody approves their own request.
pub(crate) async fn approve_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    authed.require(Permission::ApproveRequest).await?;
    // An optional `{"comment": "…"}`, as the page's approval form has: no body, no comment.
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: ApproveBody =
            serde_json::from_slice(&body).map_err(|_| procuhelp_axum::Error::Invalid("body"))?;
        parsed.comment
    };
    let r = handle::decide(&mut authed, id, Decision::Approve, comment.as_deref()).await?;
    Ok(Json(purchase_request_json(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    comment: String,
}

/// `POST /api/requests/{id}/reject` `{"comment": "…"}`: nobody rejects their own request.
pub(crate) async fn reject_request(
    mut authed: Authed,
    Path(id): Path<Uuid>,
    Json(body): Json<RejectBody>,
) -> ApiResult<Json<Value>> {
    let r = handle::decide(&mut authed, id, Decision::Reject, Some(&body.comment)).await?;
    Ok(Json(purchase_request_json(&r)))
}
