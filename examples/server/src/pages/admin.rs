//! `/admin`: the organisation's settings an admin reaches from one page — each section
//! listed only to who may open it (its own page checks again).

use axum::response::Response;
use maud::html;
use procuhelp_auth::Permission;
use procuhelp_axum::{Access, Authed, Error, RouteTable};

use super::account::nav;
use super::{can, error_page, error_page_back, page};
use crate::state::AppState;

pub(super) fn table() -> RouteTable<AppState> {
    RouteTable::new().get("/admin", Access::SignedIn, hub)
}

/// The admin sections: (path, title, what it is for, the permission it needs).
const SECTIONS: [(&str, &str, &str, Permission); 6] = [
    (
        "/users",
        "Users",
        "Invite people, change roles, disable, unlock, sign out everywhere.",
        Permission::ManageUsers,
    ),
    (
        "/admin/policy",
        "Sign-in policy",
        "Require a second factor; who approves elevation and operator access.",
        Permission::ManageUsers,
    ),
    (
        "/admin/elevations",
        "Elevation",
        "Time-bound extra rights: request, approve, revoke.",
        Permission::ManageElevation,
    ),
    (
        "/admin/tokens",
        "API tokens",
        "Tokens for scripts and integrations, with a role and an expiry.",
        Permission::ManageUsers,
    ),
    (
        "/admin/sso",
        "Single sign-on",
        "Microsoft Entra ID (OIDC) and SAML connections; the SP metadata.",
        Permission::ManageSso,
    ),
    (
        "/admin/scim",
        "SCIM provisioning",
        "Tokens for the identity provider's user provisioning.",
        Permission::ManageSso,
    ),
];

/// The sections `authed` may open.
pub(super) fn sections(
    authed: &Authed,
) -> Vec<&'static (&'static str, &'static str, &'static str, Permission)> {
    SECTIONS.iter().filter(|s| can(authed, s.3)).collect()
}

/// `GET /admin`.
async fn hub(authed: Result<Authed, Error>) -> Response {
    let mut authed = match authed {
        Ok(a) => a,
        Err(e) => return error_page(&e, None),
    };
    let result = async {
        authed.require_signed_in().await?;
        let (nav, _) = nav(&mut authed).await?;
        authed.commit().await?;
        let sections = sections(&authed);
        let body = html! {
            h1 { "Administration" }
            @if sections.is_empty() {
                p { "Your role has no administration rights." }
            }
            ul.sections {
                @for (href, title, what, _) in &sections {
                    li { a href=(href) { (title) } " — " span.muted { (what) } }
                }
            }
        };
        Ok(page("Administration", Some(&nav), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page_back(&e, None, "/account"))
}
