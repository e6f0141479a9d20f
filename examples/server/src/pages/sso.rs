//! Single sign-on: the OIDC and SAML connection forms, the SP metadata.

use procuhelp_axum::RouteTable;

use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new()
}
