//! SCIM 2.0 (RFC 7643/7644) for an identity provider such as Microsoft Entra ID, and its
//! administration.
//!
//! - [`scim_routes`]: `/scim/v2/{org}/...` ([`SCIM_ENDPOINTS`]). Authenticated by the
//!   organisation's SCIM bearer token only — never by a session cookie or an API token —
//!   so these routes are not in a [`RouteTable`] (the session × role matrix). An unknown
//!   organisation and a bad token get the same 401.
//! - [`admin_table`]: the admins' side (`manage_sso`, and `manage_users` for the
//!   handover): SCIM tokens, the group → role mapping and the SSO just-in-time flag, and
//!   handing a local user over to SCIM. Merge it into your route table so that the
//!   permission matrix covers it. The same steps as SDK functions, for pages: [`list_tokens`],
//!   [`issue_token`], [`revoke_token`], [`settings`], [`set_settings`].
//!
//! Every change and its audit events (actor: the SCIM token as a service account,
//! context `"via": "scim"`) are committed together, through the application's one audit
//! sink and clock ([`Sdk`]); if the audit log refuses, nothing changes (503). A request
//! that fails leaves nothing behind: its transaction is rolled back in the background.
//!
//! SCIM sees only the users it owns (see `procuhelp_auth::scim::store`). What it tried
//! and may not do is recorded (`scim.request_refused`, outcome `denied`, a fixed reason,
//! nothing of the input): a request by id for a user it does not manage (answered with
//! the same 404 as an unknown id), a create naming such a user's userName or address
//! (409), `active: true` for a user an admin disabled (400 `mutability`).
//!
//! ```no_run
//! use axum::Router;
//! use axum::extract::FromRef;
//! use procuhelp_axum::{Sdk, scim};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     sdk: Sdk,
//! }
//!
//! impl FromRef<AppState> for Sdk {
//!     fn from_ref(state: &AppState) -> Sdk {
//!         state.sdk.clone()
//!     }
//! }
//!
//! fn app(sdk: Sdk) -> Router {
//!     let table = procuhelp_axum::admin::table().merge(scim::admin_table());
//!     table
//!         .into_router()
//!         .merge(scim::scim_routes())
//!         .with_state(AppState { sdk })
//! }
//! ```

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{any, get, post};
use procuhelp_auth::Permission;

use crate::{Access, RouteTable, Sdk};

mod admin;
mod context;
mod discovery;
mod groups;
mod query;
mod record;
mod reply;
mod search;
mod users;

pub use admin::{IssuedScimToken, issue_token, list_tokens, revoke_token, set_settings, settings};

/// The SCIM media type (RFC 7644 §8.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Largest SCIM request body. Set it below the application's body limit, so that an
/// oversized body gets a SCIM error (413) rather than a generic one.
pub const MAX_SCIM_BODY_BYTES: usize = 256 * 1024;

/// Every SCIM route (relative to `/scim/v2/{org}`), for tests and documentation.
pub const SCIM_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/Users"),
    ("POST", "/Users"),
    ("GET", "/Users/{id}"),
    ("PUT", "/Users/{id}"),
    ("PATCH", "/Users/{id}"),
    ("DELETE", "/Users/{id}"),
    ("GET", "/Groups"),
    ("POST", "/Groups"),
    ("GET", "/Groups/{id}"),
    ("PUT", "/Groups/{id}"),
    ("PATCH", "/Groups/{id}"),
    ("DELETE", "/Groups/{id}"),
    ("GET", "/ServiceProviderConfig"),
    ("GET", "/ResourceTypes"),
    ("GET", "/ResourceTypes/{id}"),
    ("GET", "/Schemas"),
    ("GET", "/Schemas/{id}"),
];

/// The externally visible origin (`https://host[:port]`) for `meta.location`. Set it as a
/// request extension when the server sits behind a proxy or serves plain HTTP in tests;
/// otherwise `https://` and the request's Host header are used.
#[derive(Debug, Clone)]
pub struct PublicOrigin(pub String);

/// The SCIM 2.0 routes under `/scim/v2/{org}` (the identity provider's side).
pub fn scim_routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/scim/v2/{org}/Users",
            get(users::list_users).post(users::create_user),
        )
        .route(
            "/scim/v2/{org}/Users/{id}",
            get(users::get_user)
                .put(users::replace_user)
                .patch(users::patch_user)
                .delete(users::delete_user),
        )
        .route(
            "/scim/v2/{org}/Groups",
            get(groups::list_groups).post(groups::create_group),
        )
        .route(
            "/scim/v2/{org}/Groups/{id}",
            get(groups::get_group)
                .put(groups::replace_group)
                .patch(groups::patch_group)
                .delete(groups::delete_group),
        )
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes",
            get(discovery::resource_types),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes/{id}",
            get(discovery::resource_type),
        )
        .route("/scim/v2/{org}/Schemas", get(discovery::schemas))
        .route("/scim/v2/{org}/Schemas/{id}", get(discovery::schema))
        .route("/scim/v2/{org}/.search", post(search::search_all))
        .route("/scim/v2/{org}/Users/.search", post(users::search_users))
        .route("/scim/v2/{org}/Groups/.search", post(groups::search_groups))
        // Optional features we do not offer (advertised in ServiceProviderConfig).
        .route("/scim/v2/{org}/Bulk", post(discovery::not_implemented))
        .route("/scim/v2/{org}/Me", get(discovery::not_implemented))
        .route("/scim/v2/{org}/{*rest}", any(discovery::unknown))
}

/// The SCIM administration routes (the organisation's admins' side), with the permission
/// each needs.
pub fn admin_table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::Needs;
    use Permission as P;
    RouteTable::new()
        .post(
            "/api/users/{user}/scim-handover",
            Needs(P::ManageSso),
            admin::hand_over,
        )
        .get(
            "/api/scim/tokens",
            Needs(P::ManageSso),
            admin::api_list_tokens,
        )
        .post(
            "/api/scim/tokens",
            Needs(P::ManageSso),
            admin::api_issue_token,
        )
        .post(
            "/api/scim/tokens/{scim_token}/revoke",
            Needs(P::ManageSso),
            admin::api_revoke_token,
        )
        .get(
            "/api/scim/settings",
            Needs(P::ManageSso),
            admin::api_get_settings,
        )
        .put(
            "/api/scim/settings",
            Needs(P::ManageSso),
            admin::api_set_settings,
        )
}

/// The SCIM administration router ([`admin_table`]'s routes).
pub fn admin_routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    admin_table().into_router()
}
