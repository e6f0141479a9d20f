//! The app's own domain: expense claims. Nothing here is the SDK's; the handlers use it
//! through [`Authed`] (who is asking, in which organisation, and the request's tenant
//! transaction) and record what they do in the SDK's audit trail.

use axum::Json;
use axum::extract::{FromRef, Path};
use axum::http::StatusCode;
use procuhelp::auth::AuthError;
use procuhelp::axum::{Error, Result};
use procuhelp::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The app's part of the schema: `app.expense_claims` (migration 10001, declared with
/// `app.declare_tenant_table`) and the privileges the runtime role needs on it.
pub const MIGRATIONS: Migrations =
    Migrations::app("procuhelp-minimal", sqlx::migrate!("./migrations"))
        .grants(&[Grant::new("app.expense_claims", "SELECT, INSERT")]);

/// The claim routes with who may call each (claims map onto the SDK's request
/// permissions: raising one needs `create_request`, reading them `read_requests`).
pub fn table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    RouteTable::new()
        .post(
            "/api/claims",
            Access::Needs(Permission::CreateRequest),
            create,
        )
        .get("/api/claims", Access::Needs(Permission::ReadRequests), list)
        .get(
            "/api/claims/{id}",
            Access::Needs(Permission::ReadRequests),
            get,
        )
}

/// A new claim.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClaim {
    /// What was paid for (1 to 200 characters).
    pub title: String,
    /// How much, in cents (positive).
    pub amount_cents: i64,
}

/// A stored claim.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Claim {
    /// Its id.
    pub id: Uuid,
    /// What was paid for.
    pub title: String,
    /// How much, in cents.
    pub amount_cents: i64,
    /// Who claims it.
    pub claimed_by: Uuid,
}

const COLUMNS: &str = "id, title, amount_cents, claimed_by";

/// The app's own audit action, recorded as `app.claim.created` (the SDK keeps the `app.`
/// namespace for applications; a malformed name would not compile).
pub const CLAIM_CREATED: Action = procuhelp::audit::app_action!("claim.created");

/// `POST /api/claims`: the claim and its audit event commit together, or neither does.
async fn create(
    mut authed: Authed,
    Json(new): Json<NewClaim>,
) -> Result<(StatusCode, Json<Claim>)> {
    authed.require(Permission::CreateRequest).await?;
    if new.title.trim().is_empty() || new.title.chars().count() > 200 {
        return Err(Error::Invalid("title"));
    }
    if new.amount_cents <= 0 {
        return Err(Error::Invalid("amount_cents"));
    }
    // Through an API token, the claim is the token creator's.
    let claimant = authed.principal.acting_user();
    let org = authed.org();
    let claim: Claim = sqlx::query_as(&format!(
        "INSERT INTO app.expense_claims (org_id, id, title, amount_cents, claimed_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(org.as_uuid())
    .bind(Uuid::now_v7())
    .bind(new.title.trim())
    .bind(new.amount_cents)
    .bind(claimant.as_uuid())
    .fetch_one(authed.tx().await?.conn())
    .await?;
    // Recorded before the commit: if the trail refuses, nothing is kept.
    let event = authed
        .event(CLAIM_CREATED, Outcome::Success)
        .target(format!("expense_claim:{}", claim.id))
        .context(serde_json::json!({ "amount_cents": claim.amount_cents }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok((StatusCode::CREATED, Json(claim)))
}

/// `GET /api/claims`: this organisation's claims, newest first. No `WHERE org_id`: the
/// database's row-level security shows nothing else.
async fn list(mut authed: Authed) -> Result<Json<Vec<Claim>>> {
    authed.require(Permission::ReadRequests).await?;
    let claims = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.expense_claims ORDER BY created_at DESC, id DESC LIMIT 100"
    ))
    .fetch_all(authed.tx().await?.conn())
    .await?;
    authed.commit().await?;
    Ok(Json(claims))
}

/// `GET /api/claims/{id}`: one claim; another organisation's is "not found".
async fn get(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Claim>> {
    authed.require(Permission::ReadRequests).await?;
    let claim = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.expense_claims WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(authed.tx().await?.conn())
    .await?
    .ok_or(AuthError::NotFound)?;
    authed.commit().await?;
    Ok(Json(claim))
}
