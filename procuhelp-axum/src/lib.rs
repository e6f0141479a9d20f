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
//! - Routers, each independently mountable as a `Router<S>` for any state `S` the
//!   [`Sdk`] can be taken from, and each a [`RouteTable`] listing who may call each
//!   route (merge them into yours and walk [`RouteTable::endpoints`] in a permission
//!   test): [`account`] (sign-in, second factor, sessions, password, MFA), [`admin`]
//!   (users, roles, elevation, API tokens, the sign-in policy), [`audit`] (read, export,
//!   page), `sso` (feature `sso`) and [`scim`].
//! - [`harden`]: security headers (CSP with a per-response nonce), the body limit,
//!   whole-body reads, the request timeout and panics answered as a plain 500.
//!
//! # The walk of a request
//!
//! [`harden`] reads the body whole (within the limit and the timeout) before any route
//! runs, so a slow upload holds no database connection. [`Authed`] then refuses a
//! missing or malformed credential, two session cookies, or a cookie-authenticated
//! change without the anti-CSRF header before it asks the database anything; otherwise
//! it verifies the credential in one autocommit statement that enters the credential's
//! organisation (row-level security scopes the lookup): an unknown, expired, revoked or
//! other-organisation credential is the same 401, with no transaction opened. Only a
//! verified principal reaches the handler; its tenant transaction begins on the first
//! `authed.tx().await`. Read-only routes can do all of this in one statement with
//! [`read::ReadAuth`].
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
//!     let routes = Router::new()
//!         .route("/claims", get(claims))
//!         .merge(procuhelp_axum::account::routes())
//!         .merge(procuhelp_axum::admin::routes())
//!         .merge(procuhelp_axum::audit::routes());
//!     harden(routes.with_state(AppState { sdk }), Limits::default())
//! }
//! ```
#![forbid(unsafe_code)]

pub mod access_log;
pub mod account;
pub mod admin;
pub mod audit;
mod authed;
pub mod body;
pub mod client_addr;
mod error;
pub mod form;
mod harden;
#[cfg(feature = "prometheus")]
pub mod metrics;
pub mod read;
mod route_table;
pub mod scim;
pub mod security_txt;
#[cfg(feature = "sso")]
pub mod sso;
mod state;
pub mod subject_rights;

pub use authed::{Authed, CSRF_HEADER, Client, roll_back_in_background, session_cookie};
pub use error::{Error, Result, error_response};
pub use harden::{Limits, behind_proxies, harden};
pub use procuhelp_core::http::{CspNonce, SecurityHeadersLayer};
pub use route_table::{Access, Endpoint, RouteTable};
pub use state::{Sdk, SdkBuilder};
