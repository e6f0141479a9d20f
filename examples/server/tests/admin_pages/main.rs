//! The pages (issue #15): the admin pages and the procurement forms, through the real router on a real PostgreSQL:
//! each form does what its API twin does, with the same permission, and tells a person
//! what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../common/mod.rs"]
mod common;

mod elevations_tokens;
mod every_page;
mod forms;
mod sso_scim;
mod supplier_edit;
mod users_policy;
