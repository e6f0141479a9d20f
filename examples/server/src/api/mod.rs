//! The JSON API, and the pages beside it ([`crate::pages`], one table for both). Every
//! API route but `POST /api/login` needs a session cookie (with the
//! anti-CSRF header on changes) or an API token; the tenant comes from that credential.
//! The SCIM routes (`/scim/v2/{org}/...`, [`procuhelp_axum::scim`]) take the
//! organisation's SCIM bearer token instead, and nothing else.

mod contracts;
mod procurement;

use std::sync::LazyLock;

use axum::Router;
use procuhelp_auth::Permission;

use crate::state::AppState;
pub use procuhelp_axum::{Access, Endpoint, RouteTable};

/// Every route but SCIM's, each with who may call it: the router is built from this table
/// and nothing else ([`routes`]), and the permission test walks the same entries
/// ([`endpoints`], [`ENDPOINTS`]), so a route cannot be served without being in the
/// role × organisation matrix. Add a route here, never with `Router::route` elsewhere.
/// Path parameters are named after what they point at (the test fills them by name).
fn table() -> RouteTable<AppState> {
    procuhelp_axum::account::table()
        .merge(crate::pages::table())
        .merge(procurement::table())
        .merge(contracts::table())
        .merge(procuhelp_axum::admin::table())
        .merge(procuhelp_axum::scim::admin_table())
        .merge(procuhelp_axum::sso::table())
        // The trail's page is the app's own (`pages::audit`), in its frame.
        .merge(procuhelp_axum::audit::api_table())
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
/// [`procuhelp_axum::scim::SCIM_ENDPOINTS`] and walked by the SCIM tests).
pub fn routes() -> Router<AppState> {
    table()
        .into_router()
        .merge(procuhelp_axum::scim::scim_routes())
}
