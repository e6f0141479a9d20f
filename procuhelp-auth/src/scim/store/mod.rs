//! SCIM Users and Groups in the tenant tables: every function takes the request's
//! [`TenantTx`](procuhelp_tenancy::TenantTx), validates everything before the first write, and reports what it did
//! ([`Effects`]) so that the caller records it in the audit log in the same transaction.
//!
//! **Ownership.** SCIM sees and changes only the users it owns (`scim_managed`): those it
//! created, and those an admin handed over ([`hand_over`], audited). Every other user is
//! invisible to SCIM — 404 by id, absent from lists and filters, refused as a group
//! member — and a create naming their userName or address is refused
//! ([`ScimError::not_managed`](crate::scim::ScimError::not_managed)) instead of adopting them, so the SCIM token can never take
//! over a local or break-glass account (issue #11, finding 7).
//!
//! Deprovisioning (`active: false`, or DELETE) disables the user, marks them
//! `deprovisioned_by_scim` and revokes every session in the same transaction. A SCIM
//! DELETE keeps the row (the audit trail refers to it) with `scim_deleted_at` set: SCIM no
//! longer sees it, and a later POST with the same userName or address revives it.
//! `active: true` never lifts an admin's disable (`disabled_by_admin`):
//! [`ScimError::disabled_by_admin`](crate::scim::ScimError::disabled_by_admin).
//!
//! Module order (each uses only those before it): `outcome` (effects, error mapping) →
//! `roles` (roles follow groups) → `settings` (the mapping); `users` (SCIM's view) →
//! `user_changes` (a PATCH in memory) → `user_writes`; `groups` → `group_writes`;
//! `handover` (ownership). This module only re-exports them.

mod group_writes;
mod groups;
mod handover;
mod outcome;
mod roles;
mod settings;
mod user_changes;
mod user_writes;
mod users;

pub use group_writes::{create_group, delete_group, patch_group, replace_group};
pub use groups::{ScimGroup, group, list_groups};
pub use handover::{HandOver, hand_over};
pub use outcome::{Effects, RoleChange};
pub use roles::{managed_users, sync_roles};
pub use settings::{MAX_ROLE_MAPPINGS, RoleMapping, ScimSettings, set_settings, settings};
pub use user_writes::{create_target, create_user, delete_user, patch_user, replace_user};
pub use users::{ScimUser, is_unmanaged_user, list_users, user};
