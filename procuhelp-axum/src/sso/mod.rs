//! Single sign-on over HTTP: an organisation's OpenID Connect (Entra ID) and SAML 2.0
//! connections (admin API), its sign-in page, and the public sign-in flows
//! (`/sso/{org}/oidc/start` → provider → `/sso/{org}/oidc/callback`; SAML metadata,
//! `/sso/{org}/saml/start` → IdP → the assertion consumer service).
//!
//! The protocol checks are `procuhelp_auth::sso::{oidc, saml}`; who may sign in is
//! decided by [`procuhelp_auth::sso::FederatedSignIn`] (linking by the provider's
//! immutable id, just-in-time provisioning, the organisation's MFA rule, SCIM's
//! ownership of roles). This module adds what only HTTP has: the single-use sign-in in
//! flight bound to the browser by a cookie, the replay cache of SAML assertions, the
//! per-organisation OIDC client cache and the stable JSON refusals. Every refusal and
//! every success is an audit event, through the [`Sdk`]'s one audit sink and clock.
//!
//! The connection administration is also offered as SDK functions, for pages and other
//! callers: [`connections`], `save_oidc` (feature `oidc`), `save_saml` (feature
//! `saml`) and [`delete_connection`] — each checks `manage_sso`; the changes record their
//! audit event (a refused setting too: [`SettingsRefusal`]) and commit, as `/api/sso`
//! does.
//!
//! # Mounting
//!
//! Your state provides the [`Sdk`] and the [`SsoClients`] (the OIDC clients' cache and
//! the outbound policy their fetches obey) through [`FromRef`]:
//!
//! ```no_run
//! use axum::Router;
//! use axum::extract::FromRef;
//! use procuhelp_axum::sso::{SsoClients, sso_routes};
//! use procuhelp_axum::Sdk;
//! use procuhelp_core::OutboundPolicy;
//!
//! #[derive(Clone)]
//! struct AppState {
//!     sdk: Sdk,
//!     sso: SsoClients,
//! }
//! impl FromRef<AppState> for Sdk {
//!     fn from_ref(s: &AppState) -> Sdk {
//!         s.sdk.clone()
//!     }
//! }
//! impl FromRef<AppState> for SsoClients {
//!     fn from_ref(s: &AppState) -> SsoClients {
//!         s.sso.clone()
//!     }
//! }
//!
//! fn app(sdk: Sdk) -> Router {
//!     let state = AppState { sdk, sso: SsoClients::new(OutboundPolicy::public_only()) };
//!     sso_routes().with_state(state)
//! }
//! ```

// With one protocol only, some shared helpers have no caller.
#![cfg_attr(
    not(all(feature = "oidc", feature = "saml")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "oidc")]
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use procuhelp_auth::Permission;
#[cfg(feature = "oidc")]
use procuhelp_auth::sso::oidc::OidcClient;
use procuhelp_core::{OrgId, OutboundPolicy};
#[cfg(feature = "oidc")]
use tokio::sync::Mutex;

use crate::{Access, RouteTable, Sdk};

mod admin;
mod flow;
#[cfg(feature = "oidc")]
mod oidc;
mod page;
mod refusal;
#[cfg(feature = "saml")]
mod saml;

#[cfg(feature = "oidc")]
pub use admin::save_oidc;
#[cfg(feature = "saml")]
pub use admin::save_saml;
pub use admin::{Connections, SettingsRefusal, connections, delete_connection};

/// Whether this build has the OpenID Connect connection and sign-in (feature `oidc`).
pub const OIDC_AVAILABLE: bool = cfg!(feature = "oidc");
/// Whether this build has the SAML 2.0 connection and sign-in (feature `saml`).
pub const SAML_AVAILABLE: bool = cfg!(feature = "saml");

/// OIDC clients per organisation, rebuilt when the connection changes (their discovery
/// and key caches live as long as the connection), and the outbound policy every one of
/// them fetches under (default: public addresses only). Clone it freely (one `Arc`).
#[derive(Clone, Default)]
pub struct SsoClients {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    #[cfg(feature = "oidc")]
    oidc: Mutex<HashMap<OrgId, (time::OffsetDateTime, Arc<OidcClient>)>>,
    outbound: OutboundPolicy,
}

impl SsoClients {
    /// No clients yet; their fetches held to `outbound` (the operator's choice).
    pub fn new(outbound: OutboundPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                #[cfg(feature = "oidc")]
                oidc: Mutex::default(),
                outbound,
            }),
        }
    }

    /// The policy the clients' fetches obey.
    pub fn outbound(&self) -> OutboundPolicy {
        self.inner.outbound
    }
}

impl fmt::Debug for SsoClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoClients").finish_non_exhaustive()
    }
}

/// The SSO routes with who may call them: the connection admin API (`ManageSso`) and
/// the public sign-in endpoints.
pub fn table<S>() -> RouteTable<S>
where
    Sdk: FromRef<S>,
    SsoClients: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    use Access::{Needs, Public};
    let manage = Needs(Permission::ManageSso);
    let table = RouteTable::new()
        .get("/api/sso", manage, admin::get_settings)
        .get("/sso/{org}", Public, page::login_page);
    #[cfg(feature = "oidc")]
    let table = table
        .put("/api/sso/oidc", manage, admin::put_oidc)
        .delete("/api/sso/oidc", manage, admin::delete_oidc)
        .get("/sso/{org}/oidc/start", Public, oidc::start)
        .get("/sso/{org}/oidc/callback", Public, oidc::callback);
    #[cfg(feature = "saml")]
    let table = table
        .put("/api/sso/saml", manage, admin::put_saml)
        .delete("/api/sso/saml", manage, admin::delete_saml)
        .get("/sso/{org}/saml/metadata", Public, saml::metadata)
        .get("/sso/{org}/saml/start", Public, saml::start)
        .post("/sso/{org}/saml/acs", Public, saml::acs);
    table
}

/// The SSO router ([`table`] without its entries).
pub fn sso_routes<S>() -> Router<S>
where
    Sdk: FromRef<S>,
    SsoClients: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table().into_router()
}
