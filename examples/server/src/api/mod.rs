//! The JSON API. Every route but `POST /api/login` needs a session cookie (with the
//! anti-CSRF header on changes) or an API token; the tenant comes from that credential.
//! The SCIM routes (`/scim/v2/{org}/...`, [`scim`]) take the organisation's SCIM bearer
//! token instead, and nothing else.

mod account;
mod admin;
mod audit;
pub mod authed;
pub mod error;
mod procurement;
pub mod scim;
mod scim_admin;
pub mod sso;
pub mod sso_saml;

use axum::Router;
use axum::routing::{delete, get, post, put};
use procuhelp_auth::Permission;

use crate::app::AppState;

/// Every authenticated endpoint with the permission it requires (`None`: any fully
/// signed-in principal). The permission test walks this list for every role, so a route
/// added to [`routes`] belongs here too.
pub const ENDPOINTS: &[(&str, &str, Option<Permission>)] = &[
    ("GET", "/api/suppliers", Some(Permission::ReadSuppliers)),
    (
        "GET",
        "/api/suppliers/{supplier}",
        Some(Permission::ReadSuppliers),
    ),
    ("POST", "/api/suppliers", Some(Permission::ManageSuppliers)),
    (
        "DELETE",
        "/api/suppliers/{supplier}",
        Some(Permission::ManageSuppliers),
    ),
    ("GET", "/api/requests", Some(Permission::ReadRequests)),
    ("POST", "/api/requests", Some(Permission::CreateRequest)),
    (
        "POST",
        "/api/requests/{request}/approve",
        Some(Permission::ApproveRequest),
    ),
    ("GET", "/api/users", Some(Permission::ManageUsers)),
    ("POST", "/api/users", Some(Permission::ManageUsers)),
    (
        "PUT",
        "/api/users/{user}/role",
        Some(Permission::ManageRoles),
    ),
    (
        "POST",
        "/api/users/{user}/disable",
        Some(Permission::ManageUsers),
    ),
    (
        "POST",
        "/api/users/{user}/enable",
        Some(Permission::ManageUsers),
    ),
    (
        "POST",
        "/api/users/{user}/sessions/revoke",
        Some(Permission::ManageUsers),
    ),
    (
        "POST",
        "/api/users/{user}/unlock",
        Some(Permission::ManageUsers),
    ),
    (
        "POST",
        "/api/users/{user}/scim-handover",
        Some(Permission::ManageSso),
    ),
    ("GET", "/api/org/policy", Some(Permission::ManageUsers)),
    ("PUT", "/api/org/policy", Some(Permission::ManageUsers)),
    ("GET", "/api/elevations", Some(Permission::ManageElevation)),
    ("POST", "/api/elevations", Some(Permission::ManageElevation)),
    (
        "POST",
        "/api/elevations/{elevation}/approve",
        Some(Permission::ManageElevation),
    ),
    (
        "POST",
        "/api/elevations/{elevation}/revoke",
        Some(Permission::ManageElevation),
    ),
    ("POST", "/api/tokens", Some(Permission::ManageUsers)),
    (
        "POST",
        "/api/tokens/{token}/revoke",
        Some(Permission::ManageUsers),
    ),
    ("GET", "/api/sso", Some(Permission::ManageSso)),
    ("PUT", "/api/sso/oidc", Some(Permission::ManageSso)),
    ("DELETE", "/api/sso/oidc", Some(Permission::ManageSso)),
    ("PUT", "/api/sso/saml", Some(Permission::ManageSso)),
    ("DELETE", "/api/sso/saml", Some(Permission::ManageSso)),
    ("GET", "/api/scim/tokens", Some(Permission::ManageSso)),
    ("POST", "/api/scim/tokens", Some(Permission::ManageSso)),
    (
        "POST",
        "/api/scim/tokens/{scim_token}/revoke",
        Some(Permission::ManageSso),
    ),
    ("GET", "/api/scim/settings", Some(Permission::ManageSso)),
    ("PUT", "/api/scim/settings", Some(Permission::ManageSso)),
    ("GET", "/api/session", None),
    ("GET", "/api/sessions", None),
    ("DELETE", "/api/sessions/{session}", None),
    ("POST", "/api/sessions/revoke-others", None),
    ("POST", "/api/password", None),
    ("POST", "/api/mfa/enrol", None),
    ("POST", "/api/mfa/confirm", None),
    ("POST", "/api/mfa/disable", None),
    ("POST", "/api/mfa/recovery-codes", None),
    ("POST", "/api/logout", None),
];

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(account::login))
        .route("/api/login/mfa", post(account::login_second_factor))
        .route("/api/logout", post(account::logout))
        .route("/api/session", get(account::whoami))
        .route("/api/sessions", get(account::list_sessions))
        .route("/api/sessions/{id}", delete(account::revoke_session))
        .route(
            "/api/sessions/revoke-others",
            post(account::revoke_other_sessions),
        )
        .route("/api/password", post(account::change_password))
        .route("/api/mfa/enrol", post(account::mfa_enrol))
        .route("/api/mfa/confirm", post(account::mfa_confirm))
        .route("/api/mfa/disable", post(account::mfa_disable))
        .route("/api/mfa/recovery-codes", post(account::mfa_recovery_codes))
        .route(
            "/api/suppliers",
            get(procurement::list_suppliers).post(procurement::create_supplier),
        )
        .route(
            "/api/suppliers/{id}",
            get(procurement::get_supplier).delete(procurement::delete_supplier),
        )
        .route(
            "/api/requests",
            get(procurement::list_requests).post(procurement::create_request),
        )
        .route(
            "/api/requests/{id}/approve",
            post(procurement::approve_request),
        )
        .route(
            "/api/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/api/users/{id}/role", put(admin::set_role))
        .route("/api/users/{id}/disable", post(admin::disable_user))
        .route("/api/users/{id}/enable", post(admin::enable_user))
        .route(
            "/api/users/{id}/sessions/revoke",
            post(admin::revoke_user_sessions),
        )
        .route("/api/users/{id}/unlock", post(admin::unlock_user))
        .route("/api/users/{id}/scim-handover", post(scim_admin::hand_over))
        .route(
            "/api/org/policy",
            get(admin::get_policy).put(admin::set_policy),
        )
        .route(
            "/api/elevations",
            get(admin::list_elevations).post(admin::request_elevation),
        )
        .route(
            "/api/elevations/{id}/approve",
            post(admin::approve_elevation),
        )
        .route("/api/elevations/{id}/revoke", post(admin::revoke_elevation))
        .route("/api/tokens", post(admin::create_token))
        .route("/api/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/api/sso", get(sso::get_settings))
        .route("/api/sso/oidc", put(sso::put_oidc).delete(sso::delete_oidc))
        .route("/sso/{org}", get(sso::login_page))
        .route("/sso/{org}/oidc/start", get(sso::oidc_start))
        .route("/sso/{org}/oidc/callback", get(sso::oidc_callback))
        .route(
            "/api/sso/saml",
            put(sso_saml::put_saml).delete(sso_saml::delete_saml),
        )
        .route("/sso/{org}/saml/metadata", get(sso_saml::metadata))
        .route("/sso/{org}/saml/start", get(sso_saml::start))
        .route("/sso/{org}/saml/acs", post(sso_saml::acs))
        .route(
            "/api/scim/tokens",
            get(scim_admin::list_tokens).post(scim_admin::issue_token),
        )
        .route(
            "/api/scim/tokens/{id}/revoke",
            post(scim_admin::revoke_token),
        )
        .route(
            "/api/scim/settings",
            get(scim_admin::get_settings).put(scim_admin::set_settings),
        )
        .merge(scim::routes())
        .route("/api/audit", get(audit::list))
        .route("/api/audit/export", get(audit::export))
        .route("/audit", get(audit::page))
}
