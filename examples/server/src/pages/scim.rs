//! SCIM: tokens for the identity provider.

use procuhelp_axum::RouteTable;

use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new()
}
