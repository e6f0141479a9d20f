//! One table of routes, each declared with who may call it. The router is built from it
//! and the permission test walks the same entries, so a route cannot be served without
//! appearing in the role × organisation matrix (issue #11: `/api/audit`, its export and
//! `/audit` were served but missing from the hand-kept list the test walked).

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, post, put};
use procuhelp_auth::Permission;

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

/// The router under construction and the entries it was built from. Each SDK router is
/// one ([`crate::account::table`], ...); an app merges them with its own
/// ([`RouteTable::merge`]) and walks [`RouteTable::endpoints`] in its permission test.
///
/// The table records who may call a route; the handler enforces it
/// ([`Authed::require`](crate::Authed::require)), and the test proves the two agree.
pub struct RouteTable<S = ()> {
    router: Router<S>,
    endpoints: Vec<Endpoint>,
}

impl<S> std::fmt::Debug for RouteTable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
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
        route: MethodRouter<S>,
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
    pub fn get<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("GET", path, access, get(handler))
    }

    /// `POST path` served by `handler`.
    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("POST", path, access, post(handler))
    }

    /// `PUT path` served by `handler`.
    pub fn put<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("PUT", path, access, put(handler))
    }

    /// `DELETE path` served by `handler`.
    pub fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self {
        self.add("DELETE", path, access, delete(handler))
    }

    /// This table followed by `other` (its routes and its entries). Two tables serving
    /// the same method and path panic here, as [`Router::merge`] does: a programming
    /// error found by the first test.
    pub fn merge(mut self, other: RouteTable<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.endpoints.extend(other.endpoints);
        self
    }

    /// The entries, in declaration order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The router serving exactly the entries.
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}
