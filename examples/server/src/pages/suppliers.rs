//! Suppliers: the list (paged, bank details masked), a supplier's page (reveal the IBAN
//! with the permission — the reveal is recorded —, send its contact an invitation link,
//! archive), and the link's own page, where the contact fills in company and bank details
//! without an account.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::directory::Email;
use procuhelp_auth::session::Credential;
use procuhelp_auth::{AuthError, Permission};
use procuhelp_axum::{Access, Authed, Error, RouteTable, Sdk};
use procuhelp_core::SupplierId;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::account::nav;
use super::layout::csrf_field;
use super::{can, error_page, error_page_back, page, parse_form, see_other};
use crate::mail::Mail;
use crate::state::AppState;
use crate::supplier_onboarding::handle::{self as onboarding_handle, Invited};
use crate::supplier_onboarding::{self as onboarding, Details, Iban, OnboardingError};
use crate::suppliers::handle as supplier_handle;
use crate::suppliers::{
    NewSupplier, PgSupplierRepository, Supplier, SupplierRepository as _, SupplierStatus,
};

/// Suppliers per page.
const PAGE: u32 = 50;

pub(super) fn table() -> RouteTable<AppState> {
    use Access::{Needs, Public};
    use Permission as P;
    RouteTable::new()
        .get("/suppliers", Needs(P::ReadSuppliers), list_page)
        .post("/suppliers", Needs(P::ManageSuppliers), create)
        .get(
            "/suppliers/{supplier}",
            Needs(P::ReadSuppliers),
            supplier_page,
        )
        .post(
            "/suppliers/{supplier}/invite",
            Needs(P::ManageSuppliers),
            invite,
        )
        .post(
            "/suppliers/{supplier}/reveal-iban",
            Needs(P::ManageSuppliers),
            reveal_iban,
        )
        .post(
            "/suppliers/{supplier}/edit",
            Needs(P::ManageSuppliers),
            edit,
        )
        .post(
            "/suppliers/{supplier}/archive",
            Needs(P::ManageSuppliers),
            archive,
        )
        .get("/supplier-invitations/accept", Public, onboarding_page)
        .post("/supplier-invitations/accept", Public, onboard)
}

fn status_label(s: SupplierStatus) -> &'static str {
    match s {
        SupplierStatus::Invited => "Invited",
        SupplierStatus::Active => "Active",
        SupplierStatus::Suspended => "Suspended",
        SupplierStatus::Archived => "Archived",
    }
}

async fn hints(authed: &mut Authed, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, Error> {
    let org = authed.org();
    let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, iban_hint FROM app.suppliers WHERE org_id = $1 AND id = ANY($2)",
    )
    .bind(org.as_uuid())
    .bind(ids)
    .fetch_all(authed.tx().await?.conn())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, h)| Some((id, h?)))
        .collect())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    after_name: Option<String>,
    after_id: Option<Uuid>,
}

/// `GET /suppliers?after_name=&after_id=`.
async fn list_page(authed: Result<Authed, Error>, Query(q): Query<ListQuery>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadSuppliers).await?;
        let (nav, _) = nav(&mut authed).await?;
        let after = match (&q.after_name, q.after_id) {
            (Some(name), Some(id)) => Some((
                name.as_str(),
                SupplierId::from_uuid(id).map_err(|_| Error::Invalid("after_id"))?,
            )),
            _ => None,
        };
        let list = PgSupplierRepository
            .list(authed.tx().await?, after, PAGE)
            .await?;
        let ids: Vec<Uuid> = list.iter().map(|s| s.id.as_uuid()).collect();
        let hints = hints(&mut authed, &ids).await?;
        authed.commit().await?;
        let next = (list.len() == PAGE as usize)
            .then(|| list.last())
            .flatten()
            .map(|last| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("after_name", &last.name);
                q.append_pair("after_id", &last.id.to_string());
                format!("/suppliers?{}", q.finish())
            });
        let may_manage = can(&authed, Permission::ManageSuppliers);
        let body = html! {
            h1 { "Suppliers" }
            @if may_manage {
                section aria-labelledby="new-h" {
                    h2 id="new-h" { "Add a supplier" }
                    form.stack method="post" action="/suppliers" {
                        (csrf_field(&nav.csrf))
                        label { "Name" input name="name" required maxlength="200"; }
                        label { "Country (two letters)" input name="country" required pattern="[A-Za-z]{2}" maxlength="2"; }
                        button type="submit" { "Add" }
                    }
                }
            }
            section aria-labelledby="list-h" {
                h2 id="list-h" { "All suppliers" }
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Country" } th scope="col" { "Status" } th scope="col" { "Bank account" } } }
                    tbody {
                        @for s in &list {
                            tr {
                                td { a href=(format!("/suppliers/{}", s.id)) { (s.name) } }
                                td { (s.country) }
                                td data-status=(s.status.as_str()) { (status_label(s.status)) }
                                td.iban-hint { (hints.get(&s.id.as_uuid()).map(String::as_str).unwrap_or("—")) }
                            }
                        }
                    }
                }
                @if let Some(next) = next { p { a rel="next" href=(next) { "Next page" } } }
            }
        };
        Ok::<_, Error>(page("Suppliers", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/suppliers"))
}

#[derive(Deserialize)]
struct NewSupplierForm {
    name: String,
    country: String,
}

/// `POST /suppliers`.
async fn create(mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        let form: NewSupplierForm = parse_form(&body)?;
        let new = NewSupplier::new(&form.name, &form.country.to_ascii_uppercase())?;
        let by = authed.principal.acting_user();
        let supplier = PgSupplierRepository
            .create(authed.tx().await?, new, by)
            .await?;
        let event = authed
            .event(Action::SupplierInvited, Outcome::Success)
            .target(format!("supplier:{}", supplier.id))
            .context(json!({ "country": supplier.country }));
        authed.record(event).await?;
        authed.commit().await?;
        Ok::<_, Error>(supplier.id)
    }
    .await;
    match result {
        Ok(id) => see_other(&format!("/suppliers/{id}")),
        Err(e) => error_page_back(&e, None, "/suppliers"),
    }
}

fn supplier_body(
    s: &Supplier,
    hint: Option<&str>,
    revealed: Option<&str>,
    invited: Option<&Invited>,
    may_manage: bool,
    csrf: &str,
) -> Markup {
    let at = |what: &str| format!("/suppliers/{}/{what}", s.id);
    html! {
        p { a href="/suppliers" { "← All suppliers" } }
        h1 { (s.name) }
        section {
            dl {
                dt { "Country" } dd { (s.country) }
                dt { "VAT id" } dd { (s.vat_id.as_deref().unwrap_or("—")) }
                dt { "Status" } dd data-status=(s.status.as_str()) { (status_label(s.status)) }
                dt { "Bank account" }
                dd {
                    @if let Some(iban) = revealed { span.secret id="iban" { (iban) } }
                    @else { span.iban-hint { (hint.unwrap_or("not given yet")) } }
                }
            }
        }
        @match invited {
            Some(Invited::Link(link)) => {
                section aria-labelledby="link-h" {
                    h2 id="link-h" { "Invitation link" }
                    p { "Send this link to the supplier's contact. It works once, for 14 days, and is shown only now." }
                    p { a id="invitation-link" href=(link) { (link) } }
                }
            }
            Some(Invited::SentTo(to)) => {
                p.notice.ok role="status" data-invitation="sent" { "The invitation link was sent to " (to) ". It works once, for 14 days." }
            }
            None => {}
        }
        @if may_manage {
            @if hint.is_some() && revealed.is_none() {
                form method="post" action=(at("reveal-iban")) {
                    (csrf_field(csrf))
                    button.secondary type="submit" { "Show the full IBAN (recorded)" }
                }
            }
            @if s.status == SupplierStatus::Invited {
                section aria-labelledby="invite-h" {
                    h2 id="invite-h" { "Ask the supplier for their details" }
                    form.stack method="post" action=(at("invite")) {
                        (csrf_field(csrf))
                        label { "Contact's e-mail" input name="email" type="email" required maxlength="320"; }
                        button type="submit" { "Create an invitation link" }
                    }
                }
            }
            @if s.status != SupplierStatus::Archived {
                section aria-labelledby="edit-h" {
                    h2 id="edit-h" { "Edit" }
                    form.stack method="post" action=(at("edit")) {
                        (csrf_field(csrf))
                        input type="hidden" name="updated_at" value=(rfc3339(s.updated_at));
                        label { "Name" input name="name" required maxlength="200" value=(s.name); }
                        label { "Country (ISO code)" input name="country" required minlength="2" maxlength="2" value=(s.country); }
                        label { "VAT id" input name="vat_id" maxlength="40" value=(s.vat_id.as_deref().unwrap_or("")); }
                        button type="submit" { "Save" }
                    }
                }
                section aria-labelledby="contract-h" {
                    h2 id="contract-h" { "New contract with this supplier" }
                    form.stack method="post" action="/contracts" {
                        (csrf_field(csrf))
                        input type="hidden" name="supplier" value=(s.id);
                        label { "Title" input name="title" required maxlength="200"; }
                        (super::contracts::terms_fields(None))
                        button type="submit" { "Create the contract" }
                    }
                }
                form method="post" action=(at("archive")) {
                    (csrf_field(csrf))
                    button.danger type="submit" { "Archive" }
                }
            }
        }
    }
}

/// A supplier's page, with what is to be shown once (a revealed IBAN, a new link).
async fn show(
    authed: &mut Authed,
    id: SupplierId,
    revealed: Option<&str>,
    invited: Option<&Invited>,
) -> Result<Response, Error> {
    let (nav, _) = nav(authed).await?;
    let supplier = PgSupplierRepository.get(authed.tx().await?, id).await?;
    let (hint, _) = onboarding::bank_details(authed.tx().await?, id).await?;
    authed.commit().await?;
    let may_manage = can(authed, Permission::ManageSuppliers);
    let body = supplier_body(
        &supplier,
        hint.as_deref(),
        revealed,
        invited,
        may_manage,
        &nav.csrf,
    );
    Ok(page(&supplier.name, Some(&nav), body))
}

/// `GET /suppliers/{supplier}`.
async fn supplier_page(authed: Result<Authed, Error>, Path(id): Path<SupplierId>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ReadSuppliers).await?;
        show(&mut authed, id, None, None).await
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/suppliers"))
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
}

/// `POST /suppliers/{supplier}/invite`: the link, e-mailed to the contact (or, with no
/// mail configured, shown once). The message goes before the commit: if it cannot be
/// sent, nothing is kept.
async fn invite(
    State(mail): State<Mail>,
    mut authed: Authed,
    Path(id): Path<SupplierId>,
    body: Bytes,
) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        PgSupplierRepository.get(authed.tx().await?, id).await?;
        let form: InviteForm = parse_form(&body)?;
        let email = Email::parse(&form.email).map_err(|_| Error::Invalid("email"))?;
        let invited = onboarding_handle::invite(&mut authed, &mail, id, &email).await?;
        let mut response = show(&mut authed, id, None, Some(&invited)).await?;
        response.headers_mut().insert(
            header::REFERRER_POLICY,
            "no-referrer"
                .parse()
                .map_err(|_| Error::Invalid("header"))?,
        );
        Ok::<_, Error>(response)
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, &format!("/suppliers/{id}")))
}

/// `POST /suppliers/{supplier}/reveal-iban`: the whole IBAN, once, recorded first.
async fn reveal_iban(mut authed: Authed, Path(id): Path<SupplierId>) -> Response {
    let result = async {
        let iban = onboarding_handle::reveal_iban(&mut authed, id).await?;
        show(&mut authed, id, Some(&iban), None).await
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, &format!("/suppliers/{id}")))
}

/// A version token for a form (`updated_at`, RFC 3339, to the microsecond as stored).
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct EditForm {
    name: String,
    country: String,
    #[serde(default)]
    vat_id: Option<String>,
    updated_at: String,
}

/// `POST /suppliers/{supplier}/edit`: on the version the form was filled in on; if
/// someone saved in between, nothing is written and the page says so.
async fn edit(mut authed: Authed, Path(id): Path<SupplierId>, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        PgSupplierRepository.get(authed.tx().await?, id).await?;
        let form: EditForm = parse_form(&body)?;
        let details = supplier_handle::details(&form.name, &form.country, form.vat_id.as_deref())?;
        let seen = supplier_handle::seen(&form.updated_at)?;
        supplier_handle::edit(&mut authed, id, details, seen).await?;
        Ok::<_, Error>(see_other(&format!("/suppliers/{id}")))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, &format!("/suppliers/{id}")))
}

/// `POST /suppliers/{supplier}/archive`.
async fn archive(mut authed: Authed, Path(id): Path<SupplierId>) -> Response {
    let result = async {
        authed.require(Permission::ManageSuppliers).await?;
        onboarding_handle::archive(&mut authed, id).await?;
        Ok::<_, Error>(see_other(&format!("/suppliers/{id}")))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, &format!("/suppliers/{id}")))
}

const INVALID_LINK: &str = "This link does not work: it was used already, it expired, or it was mistyped. Ask your contact for a new one.";

fn link_refused() -> Response {
    (
        StatusCode::GONE,
        page(
            "Supplier details",
            None,
            html! {
                h1 { "Supplier details" }
                p.notice.error role="alert" data-error="invalid_link" { (INVALID_LINK) }
            },
        ),
    )
        .into_response()
}

fn onboarding_form(token: &str, name: &str, vat_id: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Your company's details" }
        @if let Some(e) = error { p.notice.error role="alert" data-error="invalid_input" { (e) } }
        section {
            p { "Fill in your company's details and where to pay you. The bank account is stored encrypted." }
            form.stack method="post" action="/supplier-invitations/accept" {
                input type="hidden" name="token" value=(token);
                label { "Legal name" input name="legal_name" required maxlength="200" value=(name); }
                label { "VAT id (if any)" input name="vat_id" maxlength="40" value=(vat_id); }
                label { "IBAN" input name="iban" required maxlength="50" autocomplete="off"; }
                button type="submit" { "Send" }
            }
        }
    }
}

#[derive(Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// `GET /supplier-invitations/accept?token=…`: the form, if the link still works.
async fn onboarding_page(State(sdk): State<Sdk>, Query(q): Query<LinkQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let Ok(credential) = Credential::parse(&token) else {
        return link_refused();
    };
    let peeked = async {
        let mut tx = sdk.tenants().begin(credential.org).await.ok()?;
        let name = onboarding::peek(&mut tx, &credential, sdk.now()).await.ok();
        let _ = tx.rollback().await;
        name
    }
    .await;
    match peeked {
        Some(name) => (
            [(header::REFERRER_POLICY, "no-referrer")],
            page(
                "Your company's details",
                None,
                onboarding_form(&token, &name, "", None),
            ),
        )
            .into_response(),
        None => link_refused(),
    }
}

#[derive(Deserialize)]
struct OnboardingForm {
    token: String,
    legal_name: String,
    #[serde(default)]
    vat_id: String,
    iban: String,
}

/// `POST /supplier-invitations/accept`: uses the link once, stores the details, records
/// `supplier.onboarded` in the organisation's trail — all or nothing.
async fn onboard(State(sdk): State<Sdk>, headers: HeaderMap, body: Bytes) -> Response {
    if !super::account::from_this_site(&headers) {
        return super::account::cross_site();
    }
    let Ok(form) = parse_form::<OnboardingForm>(&body) else {
        return link_refused();
    };
    let Ok(credential) = Credential::parse(&form.token) else {
        return link_refused();
    };
    let details =
        Iban::parse(&form.iban).and_then(|iban| Details::new(&form.legal_name, &form.vat_id, iban));
    let details = match details {
        Ok(d) => d,
        Err(e) => {
            let message = match e {
                OnboardingError::Invalid("iban") => {
                    "That IBAN is not valid: check it and try again."
                }
                OnboardingError::Invalid("vat_id") => "That VAT id is not valid.",
                _ => "The legal name is missing or too long.",
            };
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                page(
                    "Your company's details",
                    None,
                    onboarding_form(&form.token, &form.legal_name, &form.vat_id, Some(message)),
                ),
            )
                .into_response();
        }
    };
    let result = async {
        let mut tx = sdk.tenants().begin(credential.org).await?;
        let now = sdk.now();
        let supplier =
            onboarding::redeem(&mut tx, sdk.cipher(), &credential, &details, now).await?;
        let event = AuditEvent::new(
            Some(credential.org),
            Actor::System,
            Action::SupplierOnboarded,
            Outcome::Success,
        )
        .at(now)
        .target(format!("supplier:{supplier}"))
        .context(json!({ "via": "invitation link", "vat_id_given": details.vat_id.is_some() }));
        let log = sdk
            .audit_log()
            .cloned()
            .ok_or(AuthError::Conflict("no audit database configured"))?;
        log.append_in_tx(&mut tx, &event).await?;
        tx.commit().await?;
        Ok::<_, Error>(())
    }
    .await;
    match result {
        Ok(()) => page(
            "Thank you",
            None,
            html! {
                h1 { "Thank you" }
                p.notice.ok role="status" data-onboarded="yes" { "Your details are saved. You can close this page." }
            },
        ),
        Err(e) if e.parts().1 == "unauthenticated" => link_refused(),
        Err(e) => error_page_back(&e, None, "/"),
    }
}
