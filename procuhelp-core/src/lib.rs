//! # procuhelp-core
//!
//! The building blocks every other ProcuHelp crate shares and nothing more: typed
//! identifiers ([`OrgId`], [`UserId`]), an injectable [`Clock`], and — behind the `http`
//! feature — the [`http::SecurityHeadersLayer`] that puts strict browser protections on
//! every response.
//!
//! This crate has no database and (without `http`) no web dependency, so the tenancy,
//! auth and audit crates can depend on it without depending on each other.
//!
//! ```
//! use procuhelp_core::{OrgId, IdError};
//!
//! let org: OrgId = "0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b".parse()?;
//! assert_eq!(org.to_string(), "0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b");
//! assert!(matches!("not-an-id".parse::<OrgId>(), Err(IdError::Malformed { kind: "org", .. })));
//! # Ok::<(), IdError>(())
//! ```
#![forbid(unsafe_code)]

mod clock;
pub mod crypto;
mod ids;
mod net;
mod secret;
pub mod vault;

#[cfg(feature = "http")]
pub mod http;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{IdError, OrgId, SupplierId, UserId};
#[cfg(feature = "outbound")]
pub use net::outbound;
#[cfg(feature = "outbound")]
pub use net::outbound::{OutboundClient, OutboundError, OutboundPolicy};
pub use net::{is_canonical_loopback, is_loopback_host, is_public_ip};
pub use secret::{SecretBytes, SecretText};
