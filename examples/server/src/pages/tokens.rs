//! API tokens: create (the secret shown once), list, revoke.

use procuhelp_axum::RouteTable;

use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new()
}
