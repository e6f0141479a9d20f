//! The User and Group resources (RFC 7643 §4) as we accept and render them, paging and
//! `attributes`/`excludedAttributes` (RFC 7644 §3.4).
//!
//! Input is untrusted JSON: it is parsed into typed values before anything is stored.
//! Attribute names are matched case-insensitively (RFC 7643 §2.1); booleans may arrive as
//! Entra's strings `"True"`/`"False"`. Standard User attributes we do not store (title,
//! phoneNumbers, the enterprise extension, ...) are ignored, so that Entra's default
//! attribute mapping works; anything else unknown — and the attributes we refuse to take
//! from a provisioning client (`password`, `roles`, `entitlements`) — is `invalidValue`.
//!
//! Module order (each uses only those before it): `schema` (URNs, kinds, limits) →
//! `json` (helpers for untrusted bodies) → `user`, `group`, `list`. This module only
//! re-exports them.

mod group;
mod json;
mod list;
mod schema;
mod user;

pub use group::{GroupInput, parse_group, parse_members};
pub use json::{boolean, parse_object};
pub use list::{Page, Projection, SearchRequest, list_response, meta, parse_search, timestamp};
pub use schema::{
    DEFAULT_PAGE_SIZE, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, MAX_EMAILS,
    MAX_MEMBERS, MAX_PAGE_SIZE, MAX_VALUE_CHARS, ResourceKind, SEARCH_REQUEST_SCHEMA, USER_SCHEMA,
};
pub(crate) use user::IGNORED_USER_ATTRIBUTES;
pub use user::{EmailEntry, UserInput, parse_emails, parse_user};
