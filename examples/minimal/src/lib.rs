//! Someone else's app embedding the ProcuHelp SDK: expense claims.
//!
//! Run it with `createdb -h 127.0.0.1 -U postgres procuhelp_minimal && cargo run -p
//! procuhelp-minimal` (plain HTTP on <http://127.0.0.1:3000/>; see `src/main.rs` for the
//! environment it reads).
//!
//! The app owns one thing, its domain ([`claims`]: the `app.expense_claims` table and
//! three routes). By mounting the SDK ([`wiring`], the block the README's "Embed it"
//! section shows verbatim) it gets, without writing them:
//!
//! - tenant isolation: `app.expense_claims` is declared with `app.declare_tenant_table`,
//!   and every handler works in the [`Authed`](procuhelp::axum::Authed) extractor's
//!   tenant transaction, whose organisation comes from the verified credential only;
//! - sign-in with a password and TOTP, sessions, recovery codes (the account router),
//!   users, roles, elevation and API tokens (admin), SSO with OpenID Connect and SAML
//!   (sso), SCIM 2.0 provisioning (scim), the audit trail's reads and exports (audit);
//! - audit of its own actions: a claim and its audit event commit together or not at
//!   all, through the one audit pipeline (hash chain, signed checkpoints, alerting);
//! - the hardened responses of [`harden`](procuhelp::axum::harden): security headers with
//!   a CSP nonce, body limit, request timeout, panics answered as a plain 500.
#![forbid(unsafe_code)]

pub mod claims;
pub mod wiring;

pub use wiring::{AppState, app, schema};
