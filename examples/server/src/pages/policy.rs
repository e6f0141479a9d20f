//! The organisation's sign-in policy (admins).

use procuhelp_axum::RouteTable;

use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new()
}
