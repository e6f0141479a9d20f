//! Single sign-on: identities asserted by an organisation's own identity provider.
//!
//! Each protocol module verifies what the provider sent and returns an identity; it never
//! creates users or sessions. [`FederatedSignIn`] then decides (the same rules for both
//! protocols): it links the identity to a user by the provider's immutable identifier —
//! never by e-mail address — or creates one just in time, refuses disabled users and
//! sign-ins without the MFA the organisation requires (a typed [`Refusal`], recorded),
//! maps groups to a role with [`RoleMapping`] and opens the session.
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

mod federated;
mod roles;
pub mod store;

pub use federated::{FederatedError, FederatedIdentity, FederatedSignIn, Method, Refusal};
pub use roles::{BadMapping, GroupClaim, RoleMapping};
