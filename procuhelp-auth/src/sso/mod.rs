//! Single sign-on: identities asserted by an organisation's own identity provider.
//!
//! Each protocol module verifies what the provider sent and returns an identity; it never
//! creates users or sessions. The caller (the server) links the identity to a user by the
//! provider's immutable identifier — never by e-mail address — and maps groups to a role
//! with [`RoleMapping`].
//!
//! ```
//! use procuhelp_auth::Role;
//! use procuhelp_auth::sso::{GroupClaim, RoleMapping};
//! let mapping = RoleMapping::new([("admins", Role::Admin), ("buyers", Role::Requester)]);
//! let groups = GroupClaim::Listed(vec!["buyers".into(), "admins".into()]);
//! assert_eq!(mapping.role_for(&groups), Some(Role::Admin));
//! assert_eq!(mapping.role_for(&GroupClaim::Overage), None);
//! ```

#[cfg(feature = "oidc")]
pub mod oidc;
#[cfg(feature = "saml")]
pub mod saml;

mod roles;
pub mod store;

pub use roles::{GroupClaim, RoleMapping};
