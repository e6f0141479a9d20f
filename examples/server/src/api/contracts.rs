//! The contracts API: list, create, read with every version, amend on the version seen,
//! terminate. Each change goes through [`crate::contracts::handle`], as the pages' do.

use axum::Json;
use axum::extract::Path;
use procuhelp_auth::Permission;
use procuhelp_axum::{Access, Authed, Error, Result, RouteTable};
use procuhelp_core::SupplierId;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::contracts::{self, Contract, Terms, Version, handle};
use crate::state::AppState;

pub(crate) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/api/contracts", Needs(P::ReadSuppliers), list)
        .post("/api/contracts", Needs(P::ManageSuppliers), create)
        .get("/api/contracts/{contract}", Needs(P::ReadSuppliers), read)
        .put(
            "/api/contracts/{contract}",
            Needs(P::ManageSuppliers),
            amend,
        )
        .post(
            "/api/contracts/{contract}/terminate",
            Needs(P::ManageSuppliers),
            terminate,
        )
}

/// `YYYY-MM-DD`.
fn date(text: &str, field: &'static str) -> Result<time::Date> {
    contracts::parse_date(text).ok_or(Error::Invalid(field))
}

fn contract_json(c: &Contract) -> Value {
    json!({
        "id": c.id, "supplier": c.supplier_id, "title": c.title,
        "status": if c.terminated { "terminated" } else { "active" },
        "version": c.current_version,
    })
}

fn version_json(v: &Version) -> Value {
    json!({
        "version": v.version, "value_cents": v.terms.value_cents,
        "starts_on": v.terms.starts_on.to_string(), "ends_on": v.terms.ends_on.to_string(),
        "terms": v.terms.text, "changed_by": v.changed_by,
    })
}

async fn list(mut authed: Authed) -> Result<Json<Value>> {
    authed.require(Permission::ReadSuppliers).await?;
    let list = contracts::list(authed.tx().await?, 200).await?;
    authed.commit().await?;
    Ok(Json(
        json!({ "contracts": list.iter().map(contract_json).collect::<Vec<_>>() }),
    ))
}

/// Checked terms from their fields.
fn terms(value_cents: i64, starts_on: &str, ends_on: &str, text: &str) -> Result<Terms> {
    Ok(Terms::new(
        value_cents,
        date(starts_on, "starts_on")?,
        date(ends_on, "ends_on")?,
        text,
    )?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewContractBody {
    supplier: SupplierId,
    title: String,
    value_cents: i64,
    starts_on: String,
    ends_on: String,
    #[serde(default)]
    terms: String,
}

async fn create(mut authed: Authed, Json(body): Json<NewContractBody>) -> Result<Json<Value>> {
    let terms = terms(
        body.value_cents,
        &body.starts_on,
        &body.ends_on,
        &body.terms,
    )?;
    let c = handle::create(&mut authed, body.supplier, &body.title, &terms).await?;
    Ok(Json(contract_json(&c)))
}

async fn read(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    authed.require(Permission::ReadSuppliers).await?;
    let c = contracts::get(authed.tx().await?, id).await?;
    let versions = contracts::history(authed.tx().await?, id).await?;
    authed.commit().await?;
    let mut body = contract_json(&c);
    body["versions"] = versions.iter().map(version_json).collect();
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmendBody {
    /// The version the amendment was made on.
    version: i32,
    value_cents: i64,
    starts_on: String,
    ends_on: String,
    #[serde(default)]
    terms: String,
}

async fn amend(
    mut authed: Authed,
    Path(id): Path<Uuid>,
    Json(body): Json<AmendBody>,
) -> Result<Json<Value>> {
    let terms = terms(
        body.value_cents,
        &body.starts_on,
        &body.ends_on,
        &body.terms,
    )?;
    let version = handle::amend(&mut authed, id, body.version, &terms).await?;
    Ok(Json(json!({ "id": id, "version": version })))
}

async fn terminate(mut authed: Authed, Path(id): Path<Uuid>) -> Result<Json<Value>> {
    handle::terminate(&mut authed, id).await?;
    Ok(Json(json!({ "id": id, "status": "terminated" })))
}
