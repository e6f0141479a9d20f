//! Single sign-on (`manage_sso`): the organisation's OpenID Connect (Microsoft Entra ID)
//! and SAML 2.0 connections — a form each, its refusal shown next to it in fixed words
//! (never the input), removal — and what the identity provider's administrator needs
//! (the SP entity id, the ACS URL, the SP metadata). Every action is the SDK's
//! ([`procuhelp_axum::sso::save_oidc`] and its siblings), as `/api/sso`'s: the same
//! checks, the same audit events (a refused setting too).
//!
//! The OIDC client secret is a password field, left empty to keep the stored one, never
//! shown back.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use procuhelp_auth::Permission;
use procuhelp_auth::sso::oidc::OidcConnection;
use procuhelp_auth::sso::saml::{SamlConnection, SamlSettings};
use procuhelp_auth::sso::store::Protocol;
use procuhelp_axum::sso::{self, Connections, SettingsRefusal, SsoClients};
use procuhelp_axum::{Access, Authed, Error, RouteTable};
use procuhelp_core::OrgId;
use serde::Deserialize;

use super::account::nav;
use super::layout::{Nav, csrf_field};
use super::{error_page, error_page_back, page, parse_form, see_other};
use crate::mail::Mail;
use crate::state::AppState;

const BACK: &str = "/admin/sso";

pub(super) fn table() -> RouteTable<AppState> {
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .get("/admin/sso", Needs(P::ManageSso), sso_page)
        .post("/admin/sso/oidc", Needs(P::ManageSso), save_oidc)
        .post("/admin/sso/saml", Needs(P::ManageSso), save_saml)
        .post("/admin/sso/oidc/delete", Needs(P::ManageSso), delete_oidc)
        .post("/admin/sso/saml/delete", Needs(P::ManageSso), delete_saml)
}

#[derive(Deserialize, Default)]
struct PageQuery {
    done: Option<String>,
}

/// Fixed notices a redirect may name (never text from the request): (key, message).
fn notice(key: Option<&str>) -> Option<(&'static str, &'static str)> {
    match key? {
        "oidc_saved" => Some(("oidc_saved", "The OpenID Connect connection is saved.")),
        "oidc_removed" => Some((
            "oidc_removed",
            "The OpenID Connect connection is removed: nobody signs in through it any more.",
        )),
        "saml_saved" => Some(("saml_saved", "The SAML connection is saved.")),
        "saml_removed" => Some((
            "saml_removed",
            "The SAML connection is removed: nobody signs in through it any more.",
        )),
        _ => None,
    }
}

/// `url` when it is absolute (the server knows its public origin), else nothing: a
/// suggestion for a field that must hold an absolute URL.
fn absolute(url: String) -> Option<String> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

/// A group → role mapping as lines `group = role`.
fn mapping_text(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(g, r)| format!("{g} = {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines `group = role` as a mapping; a line without `=` maps its group to no role (the
/// SDK refuses it, recorded, with its fixed message).
fn mapping(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((g, r)) => (g.trim().to_owned(), r.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// PEM text as one entry per `-----BEGIN` block (anything before the first is an entry
/// of its own, which the SDK refuses as not a certificate).
fn certificates(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let skip = rest.chars().next().map_or(0, char::len_utf8);
        let next = rest[skip..]
            .find("-----BEGIN")
            .map_or(rest.len(), |at| at + skip);
        found.push(rest[..next].trim().to_owned());
        rest = rest[next..].trim_start();
    }
    found
}

/// What the page shows: the stored connections and, after a refused form, its reason.
struct View<'a> {
    nav: &'a Nav,
    org: OrgId,
    connections: &'a Connections,
    origin: &'a Mail,
    notice: Option<(&'static str, &'static str)>,
    refused: Option<(Protocol, SettingsRefusal)>,
}

fn refusal_for(view: &View<'_>, protocol: Protocol) -> Markup {
    html! {
        @if let Some((_, r)) = view.refused.filter(|(p, _)| *p == protocol) {
            p.notice.error role="alert" data-error=(r.code()) { (r.message()) }
        }
    }
}

fn oidc_section(view: &View<'_>) -> Markup {
    let stored = view.connections.oidc_settings();
    let configured = view.connections.oidc.is_some();
    let redirect = stored.as_ref().map(|s| s.redirect_uri.clone()).or_else(|| {
        absolute(
            view.origin
                .link(&format!("/sso/{}/oidc/callback", view.org)),
        )
    });
    let csrf = &view.nav.csrf;
    html! {
        section aria-labelledby="oidc-h" data-connection="oidc" {
            h2 id="oidc-h" { "Microsoft Entra ID (OpenID Connect)" }
            @if !sso::OIDC_AVAILABLE {
                p.muted { "OpenID Connect is not available in this build." }
            } @else {
                @if configured {
                    p data-configured="oidc" { "Connected. People sign in at " a href=(format!("/sso/{}", view.org)) { "this organisation's sign-in page" } "." }
                } @else {
                    p.muted { "Not configured." }
                }
                (refusal_for(view, Protocol::Oidc))
                form.stack method="post" action="/admin/sso/oidc" {
                    (csrf_field(csrf))
                    label { "Discovery URL" input name="discovery_url" type="url" required maxlength="2048" value=[stored.as_ref().map(|s| s.discovery_url.as_str())]; }
                    label { "Issuer" input name="issuer" required maxlength="512" value=[stored.as_ref().map(|s| s.issuer.as_str())]; }
                    label { "Client (application) id" input name="client_id" required maxlength="256" value=[stored.as_ref().map(|s| s.client_id.as_str())]; }
                    label { "Tenant ids (comma-separated)" input name="tenant_ids" required maxlength="2048" value=[stored.as_ref().map(|s| s.tenant_ids.join(", "))]; }
                    label { "Redirect URI (register it at the provider)" input name="redirect_uri" type="url" required maxlength="2048" value=[redirect]; }
                    label { "Group → role, one per line (group id = role)"
                        textarea name="group_roles" rows="3" { (stored.as_ref().map(|s| mapping_text(&s.group_roles)).unwrap_or_default()) }
                    }
                    label {
                        @if configured { "Client secret (leave empty to keep the stored one)" } @else { "Client secret" }
                        input name="client_secret" type="password" autocomplete="new-password" maxlength="1024" required[!configured];
                    }
                    button type="submit" { "Save the OpenID Connect connection" }
                }
                @if configured {
                    form.inline method="post" action="/admin/sso/oidc/delete" {
                        (csrf_field(csrf))
                        button.danger type="submit" { "Remove the OpenID Connect connection" }
                    }
                }
            }
        }
    }
}

fn saml_section(view: &View<'_>) -> Markup {
    let stored = view.connections.saml_settings();
    let configured = view.connections.saml.is_some();
    let conn = stored.as_ref().map(|s| &s.connection);
    let sp_entity = conn
        .map(|c| c.sp_entity_id.clone())
        .or_else(|| absolute(view.origin.link(&format!("/sso/{}/saml", view.org))));
    let acs = conn
        .map(|c| c.acs_url.clone())
        .or_else(|| absolute(view.origin.link(&format!("/sso/{}/saml/acs", view.org))));
    let metadata = format!("/sso/{}/saml/metadata", view.org);
    let csrf = &view.nav.csrf;
    html! {
        section aria-labelledby="saml-h" data-connection="saml" {
            h2 id="saml-h" { "SAML 2.0" }
            @if !sso::SAML_AVAILABLE {
                p.muted { "SAML is not available in this build." }
            } @else {
                @if configured { p data-configured="saml" { "Connected." } } @else { p.muted { "Not configured." } }
                h3 { "For the identity provider" }
                dl {
                    dt { "SP entity id" } dd data-sp="entity_id" {
                        @if let Some(v) = &sp_entity { (v) } @else { "this server's address followed by " code { (format!("/sso/{}/saml", view.org)) } }
                    }
                    dt { "ACS URL (HTTP-POST)" } dd data-sp="acs_url" {
                        @if let Some(v) = &acs { (v) } @else { "this server's address followed by " code { (format!("/sso/{}/saml/acs", view.org)) } }
                    }
                    dt { "SP metadata" } dd {
                        @if configured {
                            a href=(metadata) download="procuhelp-sp-metadata.xml" { "Download the SP metadata" }
                        } @else {
                            span.muted { "Available once the connection is saved." }
                        }
                    }
                }
                @if let Some(c) = conn.filter(|c| c.allows_sha1() || c.allows_idp_initiated()) {
                    p.notice.error {
                        "This connection accepts "
                        @if c.allows_sha1() { "SHA-1 signatures" @if c.allows_idp_initiated() { " and " } }
                        @if c.allows_idp_initiated() { "unsolicited (IdP-initiated) responses" }
                        " (set through the API; kept when saved here)."
                    }
                }
                (refusal_for(view, Protocol::Saml))
                form.stack method="post" action="/admin/sso/saml" {
                    (csrf_field(csrf))
                    label { "IdP entity id (issuer)" input name="idp_entity_id" required maxlength="1024" value=[conn.map(|c| c.idp_entity_id.as_str())]; }
                    label { "IdP sign-in URL (HTTP-Redirect)" input name="idp_sso_url" type="url" required maxlength="2048" value=[conn.map(|c| c.idp_sso_url.as_str())]; }
                    label { "IdP signing certificate(s), PEM"
                        textarea name="idp_certificates" rows="6" { (conn.map(|c| c.idp_certificates.join("\n")).unwrap_or_default()) }
                    }
                    label { "SP entity id" input name="sp_entity_id" required maxlength="1024" value=[sp_entity.as_deref()]; }
                    label { "ACS URL" input name="acs_url" type="url" required maxlength="2048" value=[acs.as_deref()]; }
                    label { "Group → role, one per line (group id = role)"
                        textarea name="group_roles" rows="3" { (stored.as_ref().map(|s| mapping_text(&s.group_roles)).unwrap_or_default()) }
                    }
                    button type="submit" { "Save the SAML connection" }
                }
                @if configured {
                    form.inline method="post" action="/admin/sso/saml/delete" {
                        (csrf_field(csrf))
                        button.danger type="submit" { "Remove the SAML connection" }
                    }
                }
            }
        }
    }
}

fn render(view: &View<'_>) -> Markup {
    html! {
        h1 { "Single sign-on" }
        @if let Some((key, text)) = view.notice {
            p.notice.ok role="status" data-notice=(key) { (text) }
        }
        p.muted {
            "People of this organisation sign in through its identity provider. "
            "Who may sign in and with which role: the group mapping below, and "
            a href="/admin/scim" { "SCIM provisioning" } "."
        }
        (oidc_section(view))
        (saml_section(view))
    }
}

/// `GET /admin/sso`.
async fn sso_page(
    State(mail): State<Mail>,
    authed: Result<Authed, Error>,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let (nav, _) = nav(&mut authed).await?;
        let connections = sso::connections(&mut authed).await?;
        authed.commit().await?;
        let view = View {
            nav: &nav,
            org: authed.org(),
            connections: &connections,
            origin: &mail,
            notice: notice(q.done.as_deref()),
            refused: None,
        };
        Ok::<_, Error>(page("Single sign-on", Some(&nav), render(&view)))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

/// After a form: 303 back on success; a refusal shows the page again (422) with its
/// fixed message next to the form and the stored settings (nothing changed).
fn answer(
    org: OrgId,
    mail: &Mail,
    protocol: Protocol,
    nav: Nav,
    before: Connections,
    saved: Result<(), SettingsRefusal>,
) -> Response {
    match saved {
        Ok(()) => see_other(&format!("{BACK}?done={}_saved", protocol.as_str())),
        Err(refusal) => {
            let view = View {
                nav: &nav,
                org,
                connections: &before,
                origin: mail,
                notice: None,
                refused: Some((protocol, refusal)),
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                page("Single sign-on", Some(&nav), render(&view)),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct OidcForm {
    discovery_url: String,
    issuer: String,
    client_id: String,
    tenant_ids: String,
    redirect_uri: String,
    #[serde(default)]
    group_roles: String,
    #[serde(default)]
    client_secret: String,
}

/// `POST /admin/sso/oidc`: as `PUT /api/sso/oidc`; the fields the form does not show
/// (MFA `acr` values, clock skew) are kept as stored.
async fn save_oidc(
    State(mail): State<Mail>,
    State(clients): State<SsoClients>,
    mut authed: Authed,
    body: Bytes,
) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let form: OidcForm = parse_form(&body)?;
        // Read before the save commits the request's transaction (for a refusal's page).
        let (nav, _) = nav(&mut authed).await?;
        let before = sso::connections(&mut authed).await?;
        let kept = before.oidc_settings();
        let settings = OidcConnection {
            discovery_url: form.discovery_url.trim().to_owned(),
            issuer: form.issuer.trim().to_owned(),
            client_id: form.client_id.trim().to_owned(),
            tenant_ids: form
                .tenant_ids
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            redirect_uri: form.redirect_uri.trim().to_owned(),
            group_roles: mapping(&form.group_roles),
            mfa_acr_values: kept
                .as_ref()
                .map(|k| k.mfa_acr_values.clone())
                .unwrap_or_default(),
            max_clock_skew_secs: kept.as_ref().map_or(120, |k| k.max_clock_skew_secs),
        };
        let secret = Some(form.client_secret.as_str()).filter(|s| !s.is_empty());
        let saved = sso::save_oidc(&mut authed, &clients, &settings, secret).await?;
        Ok::<_, Error>(answer(
            authed.org(),
            &mail,
            Protocol::Oidc,
            nav,
            before,
            saved,
        ))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

#[derive(Deserialize)]
struct SamlForm {
    idp_entity_id: String,
    idp_sso_url: String,
    #[serde(default)]
    idp_certificates: String,
    sp_entity_id: String,
    acs_url: String,
    #[serde(default)]
    group_roles: String,
}

/// `POST /admin/sso/saml`: as `PUT /api/sso/saml`; the settings the form does not show
/// (the ones that weaken verification, MFA contexts, clock skew, attribute names) are
/// kept as stored.
async fn save_saml(State(mail): State<Mail>, mut authed: Authed, body: Bytes) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        let form: SamlForm = parse_form(&body)?;
        let (nav, _) = nav(&mut authed).await?;
        let before = sso::connections(&mut authed).await?;
        let mut connection = SamlConnection::new(
            form.idp_entity_id.trim(),
            form.idp_sso_url.trim(),
            certificates(&form.idp_certificates),
            form.sp_entity_id.trim(),
            form.acs_url.trim(),
        );
        if let Some(kept) = before.saml_settings().map(|s| s.connection) {
            connection
                .dangerous()
                .set_allow_sha1(kept.allows_sha1())
                .set_allow_idp_initiated(kept.allows_idp_initiated());
            connection.mfa_authn_contexts = kept.mfa_authn_contexts;
            connection.max_clock_skew_secs = kept.max_clock_skew_secs;
            connection.attributes = kept.attributes;
        }
        let settings = SamlSettings {
            connection,
            group_roles: mapping(&form.group_roles),
        };
        let saved = sso::save_saml(&mut authed, &settings).await?;
        Ok::<_, Error>(answer(
            authed.org(),
            &mail,
            Protocol::Saml,
            nav,
            before,
            saved,
        ))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, BACK))
}

/// Removes a connection, as `DELETE /api/sso/{protocol}`.
async fn delete(mut authed: Authed, protocol: Protocol) -> Response {
    let result = async {
        authed.require(Permission::ManageSso).await?;
        sso::delete_connection(&mut authed, protocol).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("{BACK}?done={}_removed", protocol.as_str())),
        Err(e) => error_page_back(&e, None, BACK),
    }
}

/// `POST /admin/sso/oidc/delete`.
async fn delete_oidc(authed: Authed) -> Response {
    delete(authed, Protocol::Oidc).await
}

/// `POST /admin/sso/saml/delete`.
async fn delete_saml(authed: Authed) -> Response {
    delete(authed, Protocol::Saml).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_text_is_one_entry_per_block() {
        let a = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let b = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----";
        assert_eq!(certificates(&format!("\n{a}\n\n{b}\n")), [a, b]);
        assert_eq!(certificates(&format!("junk {a}")), ["junk", a]);
        assert!(certificates("  \n").is_empty());
    }

    #[test]
    fn mapping_lines_are_group_equals_role() {
        let m = mapping(" admins = admin \n\nbuyers=requester\nstray");
        assert_eq!(m["admins"], "admin");
        assert_eq!(m["buyers"], "requester");
        assert_eq!(m["stray"], "");
        assert_eq!(
            mapping_text(&m),
            "admins = admin\nbuyers = requester\nstray = "
        );
    }
}
