//! The JSON API. Every route but `POST /api/login` needs a session cookie (with the
//! anti-CSRF header on changes) or an API token; the tenant comes from that credential.
//! The SCIM routes (`/scim/v2/{org}/...`, [`scim`]) take the organisation's SCIM bearer
//! token instead, and nothing else.

mod account;
mod admin;
mod audit;
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
    use Access::{Needs, Public, SignedIn};
    use Permission as P;
    RouteTable::new()
        .post("/api/login", Public, account::login)
        .post("/api/login/mfa", Public, account::login_second_factor)
        .post("/api/logout", SignedIn, account::logout)
        .get("/api/session", SignedIn, account::whoami)
        .get("/api/sessions", SignedIn, account::list_sessions)
        .delete("/api/sessions/{session}", SignedIn, account::revoke_session)
        .post(
            "/api/sessions/revoke-others",
            SignedIn,
            account::revoke_other_sessions,
        )
        .post("/api/password", SignedIn, account::change_password)
        .post("/api/mfa/enrol", SignedIn, account::mfa_enrol)
        .post("/api/mfa/confirm", SignedIn, account::mfa_confirm)
        .post("/api/mfa/disable", SignedIn, account::mfa_disable)
        .post(
            "/api/mfa/recovery-codes",
            SignedIn,
            account::mfa_recovery_codes,
        )
        .get(
            "/api/suppliers",
            Needs(P::ReadSuppliers),
            procurement::list_suppliers,
        )
        .post(
            "/api/suppliers",
            Needs(P::ManageSuppliers),
            procurement::create_supplier,
        )
        .get(
            "/api/suppliers/{supplier}",
            Needs(P::ReadSuppliers),
            procurement::get_supplier,
        )
        .delete(
            "/api/suppliers/{supplier}",
            Needs(P::ManageSuppliers),
            procurement::delete_supplier,
        )
        .get(
            "/api/requests",
            Needs(P::ReadRequests),
            procurement::list_requests,
        )
        .post(
            "/api/requests",
            Needs(P::CreateRequest),
            procurement::create_request,
        )
        .post(
            "/api/requests/{request}/approve",
            Needs(P::ApproveRequest),
            procurement::approve_request,
        )
        .get("/api/users", Needs(P::ManageUsers), admin::list_users)
        .post("/api/users", Needs(P::ManageUsers), admin::create_user)
        .put(
            "/api/users/{user}/role",
            Needs(P::ManageRoles),
            admin::set_role,
        )
        .post(
            "/api/users/{user}/disable",
            Needs(P::ManageUsers),
            admin::disable_user,
        )
        .post(
            "/api/users/{user}/enable",
            Needs(P::ManageUsers),
            admin::enable_user,
        )
        .post(
            "/api/users/{user}/sessions/revoke",
            Needs(P::ManageUsers),
            admin::revoke_user_sessions,
        )
        .post(
            "/api/users/{user}/unlock",
            Needs(P::ManageUsers),
            admin::unlock_user,
        )
        .post(
            "/api/users/{user}/scim-handover",
            Needs(P::ManageSso),
            scim_admin::hand_over,
        )
        .get("/api/org/policy", Needs(P::ManageUsers), admin::get_policy)
        .put("/api/org/policy", Needs(P::ManageUsers), admin::set_policy)
        .get(
            "/api/org/policy/changes",
            Needs(P::ManageUsers),
            admin::list_policy_changes,
        )
        .post(
            "/api/org/policy/changes/{change}/approve",
            Needs(P::ManageUsers),
            admin::approve_policy_change,
        )
        .get(
            "/api/elevations",
            Needs(P::ManageElevation),
            admin::list_elevations,
        )
        .post(
            "/api/elevations",
            Needs(P::ManageElevation),
            admin::request_elevation,
        )
        .post(
            "/api/elevations/{elevation}/approve",
            Needs(P::ManageElevation),
            admin::approve_elevation,
        )
        .post(
            "/api/elevations/{elevation}/revoke",
            Needs(P::ManageElevation),
            admin::revoke_elevation,
        )
        .post("/api/tokens", Needs(P::ManageUsers), admin::create_token)
        .post(
            "/api/tokens/{token}/revoke",
            Needs(P::ManageUsers),
            admin::revoke_token,
        )
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
        )
        .get("/api/audit", Needs(P::ReadAuditLog), audit::list)
        .get("/api/audit/export", Needs(P::ReadAuditLog), audit::export)
        .get("/audit", Needs(P::ReadAuditLog), audit::page)
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
