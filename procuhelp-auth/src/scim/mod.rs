//! SCIM 2.0 provisioning (RFC 7643/7644), shaped for Microsoft Entra ID.
//!
//! - [`token`]: the per-organisation bearer tokens an identity provider presents;
//! - [`model`]: User and Group bodies parsed from untrusted JSON (Entra-tolerant:
//!   case-insensitive attribute names, `"True"`/`"False"` booleans), rendering with
//!   `schemas` and `meta`, paging, `attributes`/`excludedAttributes`;
//! - [`filter`]: `userName eq "…"`, `externalId eq "…"`, `displayName eq "…"`, and
//!   `invalidFilter` for anything else;
//! - [`patch`]: PATCH bodies (Entra's dialect) parsed into typed changes;
//! - [`store`]: create, replace, patch (bodies parsed by [`patch`]), delete,
//!   deprovisioning that disables and signs out in one transaction, and the group → role
//!   mapping;
//! - [`discovery`]: ServiceProviderConfig, ResourceTypes, Schemas.
//!
//! Errors are [`ScimError`]s: an HTTP status, a `scimType` and a fixed detail.
//!
//! **Ownership:** SCIM manages only the users it created or that an admin handed over
//! ([`store::hand_over`]); see [`store`].
//!
//! **For sign-in code (SSO, JIT provisioning):** a user with `status = 'disabled'` and
//! `deprovisioned_by_scim = true` was deprovisioned by the identity provider; only SCIM
//! may re-activate them. Use [`is_deprovisioned_by_scim`] before signing in or creating
//! a user for an address. To link a new federated identity by SCIM data, use
//! [`user_by_external_id`] / [`user_by_user_name`]: they find only users it is safe to
//! link implicitly (see [`LINKABLE`]).
//!
//! ```
//! use procuhelp_auth::scim::{filter::parse_filter, model::ResourceKind};
//! let f = parse_filter(r#"userName eq "ada@contoso.com""#, ResourceKind::User)?;
//! assert_eq!(f.value, "ada@contoso.com");
//! assert_eq!(
//!     parse_filter(r#"userName sw "a""#, ResourceKind::User).unwrap_err().scim_type,
//!     Some("invalidFilter")
//! );
//! # Ok::<(), procuhelp_auth::scim::ScimError>(())
//! ```
//!
//! Module order (each uses only those before it, so there are no cycles): `error` →
//! [`model`] → [`filter`], [`patch`], [`discovery`] → [`store`]; [`token`] and the
//! sign-in helpers (`status`) use no other `scim` module.

pub mod discovery;
mod error;
pub mod filter;
pub mod model;
pub mod patch;
mod status;
pub mod store;
pub mod token;

pub use error::{ERROR_SCHEMA, ScimError, ScimResult};
pub use status::{
    LINKABLE, is_deprovisioned_by_scim, lift_admin_disable, sso_jit_provisioning,
    user_by_external_id, user_by_user_name, user_deprovisioned_by_scim, user_is_scim_managed,
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::filter::parse_filter;
    use super::model::{ResourceKind, USER_SCHEMA, parse_group, parse_search, parse_user};
    use super::patch::{parse_group_patch, parse_user_patch};

    proptest::proptest! {
        // Untrusted input: every parser answers Ok or a typed 400, never panics.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            for e in [parse_user(&bytes).err(), parse_search(&bytes).err()].into_iter().flatten() {
                proptest::prop_assert_eq!(e.status, 400);
            }
            if let Err(e) = parse_group(&bytes) { proptest::prop_assert_eq!(e.status, 400); }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_filter(&text, ResourceKind::User);
            let _ = parse_user_patch(&bytes);
            let _ = parse_group_patch(&bytes);
        }

        #[test]
        fn user_like_json_never_panics(user_name in ".{0,40}", active in ".{0,8}", key in "[a-zA-Z$]{1,12}") {
            let body = json!({ "schemas": [USER_SCHEMA], "userName": user_name, "active": active, key: [{"value": user_name}] });
            let _ = parse_user(body.to_string().as_bytes());
        }
    }
}
