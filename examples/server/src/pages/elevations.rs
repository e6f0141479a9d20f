//! Time-bound elevation: request, approve, revoke, expiry.

use procuhelp_axum::RouteTable;

use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new()
}
