//! The JSON API. Every route but `POST /api/login` needs a session cookie (with the
//! anti-CSRF header on changes) or an API token; the tenant comes from that credential.
//! The SCIM routes (`/scim/v2/{org}/...`, [`scim`]) take the organisation's SCIM bearer
//! token instead, and nothing else.

mod procurement;
pub mod scim;
mod scim_admin;
pub mod sso;
pub mod sso_saml;

use std::sync::LazyLock;

use axum::Router;
use procuhelp_auth::Permission;

use crate::app::AppState;
pub use procuhelp_axum::{Access, Endpoint, RouteTable};

/// Every route but SCIM's, each with who may call it: the router is built from this table
/// and nothing else ([`routes`]), and the permission test walks the same entries
/// ([`endpoints`], [`ENDPOINTS`]), so a route cannot be served without being in the
/// role × organisation matrix. Add a route here, never with `Router::route` elsewhere.
/// Path parameters are named after what they point at (the test fills them by name).
fn table() -> RouteTable<AppState> {
    use Access::{Needs, Public};
    use Permission as P;
    procuhelp_axum::account::table()
        .merge(procurement::table())
        .merge(procuhelp_axum::admin::table())
        .merge(RouteTable::new().post(
            "/api/users/{user}/scim-handover",
            Needs(P::ManageSso),
            scim_admin::hand_over,
        ))
        .merge(
            RouteTable::new()
                .get("/api/sso", Needs(P::ManageSso), sso::get_settings)
                .put("/api/sso/oidc", Needs(P::ManageSso), sso::put_oidc)
                .delete("/api/sso/oidc", Needs(P::ManageSso), sso::delete_oidc)
                .get("/sso/{org}", Public, sso::login_page)
                .get("/sso/{org}/oidc/start", Public, sso::oidc_start)
                .get("/sso/{org}/oidc/callback", Public, sso::oidc_callback)
                .put("/api/sso/saml", Needs(P::ManageSso), sso_saml::put_saml)
                .delete("/api/sso/saml", Needs(P::ManageSso), sso_saml::delete_saml)
                .get("/sso/{org}/saml/metadata", Public, sso_saml::metadata)
                .get("/sso/{org}/saml/start", Public, sso_saml::start)
                .post("/sso/{org}/saml/acs", Public, sso_saml::acs)
                .get(
                    "/api/scim/tokens",
                    Needs(P::ManageSso),
                    scim_admin::list_tokens,
                )
                .post(
                    "/api/scim/tokens",
                    Needs(P::ManageSso),
                    scim_admin::issue_token,
                )
                .post(
                    "/api/scim/tokens/{scim_token}/revoke",
                    Needs(P::ManageSso),
                    scim_admin::revoke_token,
                )
                .get(
                    "/api/scim/settings",
                    Needs(P::ManageSso),
                    scim_admin::get_settings,
                )
                .put(
                    "/api/scim/settings",
                    Needs(P::ManageSso),
                    scim_admin::set_settings,
                ),
        )
        .merge(procuhelp_axum::audit::table())
}

/// Every route of [`routes`] but SCIM's, with who may call it, in declaration order.
pub fn endpoints() -> Vec<Endpoint> {
    table().endpoints().to_vec()
}

/// Every authenticated route with the permission it requires (`None`: any fully
/// signed-in principal), taken from the route table: the permission test walks this list
/// for every role.
pub static ENDPOINTS: LazyLock<Vec<(&'static str, &'static str, Option<Permission>)>> =
    LazyLock::new(|| {
        endpoints()
            .into_iter()
            .filter_map(|e| match e.access {
                Access::Public => None,
                Access::SignedIn => Some((e.method, e.path, None)),
                Access::Needs(p) => Some((e.method, e.path, Some(p))),
            })
            .collect()
    });

/// The API routes: the table's, and SCIM's (which take the SCIM bearer token, listed in
/// [`scim::SCIM_ENDPOINTS`] and walked by the SCIM tests).
pub fn routes() -> Router<AppState> {
    table().into_router().merge(scim::routes())
}
