//! One table of routes, each declared with who may call it. The router is built from it
//! and the permission test walks the same entries, so a route cannot be served without
//! appearing in the role × organisation matrix (issue #11: `/api/audit`, its export and
//! `/audit` were served but missing from the hand-kept list the test walked).

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, post, put};
use procuhelp_auth::Permission;

use crate::app::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session or API token: sign-in, SSO pages (the handler checks what it needs).
    Public,
    /// Any fully signed-in principal, whatever the role.
    SignedIn,
    /// A principal whose role in force grants this permission.
    Needs(Permission),
}

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path template, with named parameters (`/api/users/{user}/role`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// The router under construction and the entries it was built from.
#[derive(Debug)]
pub struct RouteTable {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            endpoints: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        route: MethodRouter<AppState>,
    ) -> Self {
        // Two methods on one path are merged by the router.
        self.router = self.router.route(path, route);
        self.endpoints.push(Endpoint {
            method,
            path,
            access,
        });
        self
    }

    /// `GET path` served by `handler`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("GET", path, access, get(handler))
    }

    /// `POST path` served by `handler`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("POST", path, access, post(handler))
    }

    /// `PUT path` served by `handler`.
    pub fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("PUT", path, access, put(handler))
    }

    /// `DELETE path` served by `handler`.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("DELETE", path, access, delete(handler))
    }

    /// The entries, in declaration order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The router serving exactly the entries.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
