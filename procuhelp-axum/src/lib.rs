//! The ProcuHelp SDK for [axum]: mount tenant isolation, sign-in with MFA, API tokens,
//! administration and the audit trail in **your** axum application.
//!
//! - [`Sdk`]: the SDK's state (tenant-scoped database, authenticator, the one audit sink
//!   and clock, field cipher, vault). Put it in your state; implement
//!   [`FromRef`](axum::extract::FromRef) for it.
//! - [`Authed`]: the extractor. It verifies the session cookie (with the anti-CSRF header
//!   on changes) or API token, takes the tenant from that credential only, and gives the
//!   handler the principal and the tenant transaction. `authed.require(Permission::X)`
//!   is the permission check.
//! - [`Error`]: one error type; its response has a stable JSON `code` and no internal
//!   detail.
//! - Routers, each a [`RouteTable`] listing who may call each route.
//! - [`harden`]: security headers (CSP with a per-response nonce), the body limit,
//!   whole-body reads, the request timeout and panics answered as a plain 500.
//!
//! # Mounting
//!
//! ```no_run
//! use axum::Router;
//! use axum::extract::FromRef;
//! use axum::routing::get;
//! use procuhelp_auth::Permission;
//! use procuhelp_axum::{Authed, Limits, Result, Sdk, harden};
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
//! async fn claims(mut authed: Authed) -> Result<String> {
//!     authed.require(Permission::ReadRequests).await?;
//!     let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM app.purchase_requests")
//!         .fetch_one(authed.tx().await?.conn())
//!         .await?;
//!     authed.commit().await?;
//!     Ok(format!("{n} requests in {}", authed.org()))
//! }
//!
//! fn app(sdk: Sdk) -> Router {
//!     let routes = Router::new().route("/claims", get(claims));
//!     harden(routes.with_state(AppState { sdk }), Limits::default())
//! }
//! ```
#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod audit;
mod authed;
pub mod body;
pub mod client_addr;
mod error;
mod harden;
pub mod read;
mod route_table;
pub mod scim;
#[cfg(feature = "sso")]
pub mod sso;
mod state;

pub use authed::{Authed, CSRF_HEADER, Client, roll_back_in_background, session_cookie};
pub use error::{Error, Result, error_response};
pub use harden::{Limits, behind_proxies, harden};
pub use procuhelp_core::http::{CspNonce, SecurityHeadersLayer};
pub use route_table::{Access, Endpoint, RouteTable};
pub use state::{Sdk, SdkBuilder};
