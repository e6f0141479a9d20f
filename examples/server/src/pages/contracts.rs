//! Contracts: the list with a form to make one with a supplier, and a contract's page —
//! its terms in force, every earlier version (the history), the amendment form (made on
//! the version shown: if someone amended it meanwhile, the page says so and nothing is
//! lost), termination.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use maud::html;
use procuhelp_auth::Permission;
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::SupplierId;
use serde::Deserialize;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{can, cents, error_page, error_page_back, money, page, parse_form, see_other};
use crate::contracts::{self, Terms, handle};
use crate::state::AppState;
use crate::suppliers::{PgSupplierRepository, SupplierRepository as _};

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/contracts", Needs(P::ReadSuppliers), list_page)
        .post("/contracts", Needs(P::ManageSuppliers), create)
        .get(
            "/contracts/{contract}",
            Needs(P::ReadSuppliers),
            contract_page,
        )
        .post(
            "/contracts/{contract}/amend",
            Needs(P::ManageSuppliers),
            amend,
        )
        .post(
            "/contracts/{contract}/terminate",
            Needs(P::ManageSuppliers),
            terminate,
        )
}

/// Checked terms from a form's fields.
fn form_terms(value: &str, starts_on: &str, ends_on: &str, text: &str) -> Result<Terms, Error> {
    Ok(Terms::new(
        cents(value, "value")?,
        contracts::parse_date(starts_on).ok_or(Error::Invalid("starts_on"))?,
        contracts::parse_date(ends_on).ok_or(Error::Invalid("ends_on"))?,
        text,
    )?)
}

/// How many suppliers the new-contract form offers (a supplier's own page offers a
/// contract with it, whatever the count).
const SUPPLIER_CHOICES: u32 = 500;

pub(super) fn terms_fields(t: Option<&Terms>) -> maud::Markup {
    let value = t.map(|t| format!("{}.{:02}", t.value_cents / 100, t.value_cents % 100));
    html! {
        label { "Value (EUR)" input name="value" required inputmode="decimal" maxlength="15" value=[value]; }
        label { "Starts on" input name="starts_on" type="date" required value=[t.map(|t| t.starts_on.to_string())]; }
        label { "Ends on" input name="ends_on" type="date" required value=[t.map(|t| t.ends_on.to_string())]; }
        label { "Terms" textarea name="terms" maxlength="5000" rows="4" { @if let Some(t) = t { (t.text) } } }
    }
}

/// `GET /contracts`.
async fn list_page(authed: Result<Authed, Error>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadSuppliers).await?;
        let (nav, _) = nav(&mut authed).await?;
        let list = contracts::list(authed.tx().await?, 200).await?;
        let suppliers = PgSupplierRepository
            .list(authed.tx().await?, None, SUPPLIER_CHOICES)
            .await?;
        let mut ids: Vec<Uuid> = list.iter().map(|c| c.supplier_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let names = crate::suppliers::names(authed.tx().await?, &ids).await?;
        authed.commit().await?;
        let names: HashMap<Uuid, &str> = names.iter().map(|(id, n)| (*id, n.as_str())).collect();
        let may_manage = can(&authed, Permission::ManageSuppliers);
        let body = html! {
            h1 { "Contracts" }
            @if may_manage && !suppliers.is_empty() {
                section aria-labelledby="new-h" {
                    h2 id="new-h" { "New contract" }
                    form.stack method="post" action="/contracts" {
                        (csrf_field(&nav.csrf))
                        label { "Supplier" select name="supplier" required {
                            @for s in &suppliers { option value=(s.id) { (s.name) } }
                        } }
                        @if suppliers.len() as u32 >= SUPPLIER_CHOICES {
                            p.muted { "The first " (SUPPLIER_CHOICES) " suppliers by name. For another, start from the supplier's page." }
                        }
                        label { "Title" input name="title" required maxlength="200"; }
                        (terms_fields(None))
                        button type="submit" { "Create" }
                    }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "All contracts" }
                @if list.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr { th scope="col" { "Contract" } th scope="col" { "Supplier" } th scope="col" { "Version" } th scope="col" { "Status" } } }
                        tbody {
                            @for c in &list {
                                tr {
                                    td { a href=(format!("/contracts/{}", c.id)) { (c.title) } }
                                    td { (names.get(&c.supplier_id).copied().unwrap_or("—")) }
                                    td { (c.current_version) }
                                    td { @if c.terminated { "Terminated" } @else { "Active" } }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Error>(page("Contracts", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/contracts"))
}

#[derive(Deserialize)]
struct NewContractForm {
    supplier: SupplierId,
    title: String,
    value: String,
    starts_on: String,
    ends_on: String,
    #[serde(default)]
    terms: String,
}

/// `POST /contracts`.
async fn create(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        let form: NewContractForm = parse_form(&body)?;
        let terms = form_terms(&form.value, &form.starts_on, &form.ends_on, &form.terms)?;
        handle::create(&mut authed, form.supplier, &form.title, &terms).await
    }
    .await;
    match result {
        Ok(c) => see_other(&format!("/contracts/{}", c.id)),
        Err(e) => error_page_back(&e, None, "/contracts"),
    }
}

/// `GET /contracts/{contract}`.
async fn contract_page(authed: Result<Authed, Error>, Path(id): Path<Uuid>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadSuppliers).await?;
        let (nav, _) = nav(&mut authed).await?;
        let c = contracts::get(authed.tx().await?, id).await?;
        let versions = contracts::history(authed.tx().await?, id).await?;
        let supplier = SupplierId::from_uuid(c.supplier_id)
            .map_err(|_| procuhelp_auth::AuthError::NotFound)?;
        let supplier = PgSupplierRepository
            .get(authed.tx().await?, supplier)
            .await?;
        authed.commit().await?;
        let current = versions.iter().find(|v| v.version == c.current_version);
        let may_manage = can(&authed, Permission::ManageSuppliers) && !c.terminated;
        let csrf = &nav.csrf;
        let body = html! {
            p { a href="/contracts" { "← All contracts" } }
            h1 { (c.title) }
            section {
                dl {
                    dt { "Supplier" } dd { a href=(format!("/suppliers/{}", supplier.id)) { (supplier.name) } }
                    dt { "Status" } dd data-status=(if c.terminated { "terminated" } else { "active" }) { @if c.terminated { "Terminated" } @else { "Active" } }
                    @if let Some(v) = current {
                        dt { "Version in force" } dd { (v.version) }
                        dt { "Value" } dd { (money(v.terms.value_cents)) }
                        dt { "Runs" } dd { (v.terms.starts_on) " to " (v.terms.ends_on) }
                    }
                }
            }
            @if may_manage {
                section aria-labelledby="amend-h" {
                    h2 id="amend-h" { "Amend" }
                    form.stack method="post" action=(format!("/contracts/{id}/amend")) {
                        (csrf_field(csrf))
                        input type="hidden" name="version" value=(c.current_version);
                        (terms_fields(current.map(|v| &v.terms)))
                        button type="submit" { "Save as a new version" }
                    }
                }
                form method="post" action=(format!("/contracts/{id}/terminate")) {
                    (csrf_field(csrf))
                    button.danger type="submit" { "Terminate the contract" }
                }
            }
            section aria-labelledby="history-h" {
                h2 id="history-h" { "History" }
                table id="history" {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Value" } th scope="col" { "Runs" } th scope="col" { "Terms" } th scope="col" { "Written" } } }
                    tbody {
                        @for v in &versions {
                            tr data-version=(v.version) {
                                td { (v.version) }
                                td { (money(v.terms.value_cents)) }
                                td { (v.terms.starts_on) " to " (v.terms.ends_on) }
                                td { (v.terms.text) }
                                td { (v.changed_at.date()) }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Error>(page(&c.title, Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/contracts"))
}

#[derive(Deserialize)]
struct AmendForm {
    version: i32,
    value: String,
    starts_on: String,
    ends_on: String,
    #[serde(default)]
    terms: String,
}

/// `POST /contracts/{contract}/amend`.
async fn amend(mut authed: Authed, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        contracts::get(authed.tx().await?, id).await?;
        let form: AmendForm = parse_form(&body)?;
        let terms = form_terms(&form.value, &form.starts_on, &form.ends_on, &form.terms)?;
        handle::amend(&mut authed, id, form.version, &terms).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/contracts/{id}")),
        Err(e) => error_page_back(&e, None, &format!("/contracts/{id}")),
    }
}

/// `POST /contracts/{contract}/terminate`.
async fn terminate(mut authed: Authed, Path(id): Path<Uuid>) -> Response {
    match handle::terminate(&mut authed, id).await {
        Ok(()) => see_other(&format!("/contracts/{id}")),
        Err(e) => error_page_back(&e, None, &format!("/contracts/{id}")),
    }
}
