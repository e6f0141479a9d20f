//! Sessions, in one place: the token and the credential a client presents ([`Credential`],
//! 256-bit random, opaque, stored only as a SHA-256 hash), the `__Host-` cookie that
//! carries it ([`COOKIE_NAME`]), idle and absolute lifetimes checked against an injected
//! clock ([`SessionPolicy`]), and the store in `app.sessions` (a tenant table): [`open`] at
//! sign-in with a fresh token (never one the client brought: no fixation), [`authenticate`]
//! on every request, [`revoke`], [`revoke_all`] and [`list`].
//!
//! ```
//! use procuhelp_auth::session::{SessionPolicy, SessionToken};
//! use time::{Duration, macros::datetime};
//!
//! let token = SessionToken::generate()?;
//! let stored_hash = token.hash(); // what the database keeps
//! let presented = SessionToken::parse(token.expose())?;
//! assert_eq!(presented.hash(), stored_hash);
//!
//! let policy = SessionPolicy::default();
//! let created = datetime!(2026-11-25 08:00 UTC);
//! assert!(policy.check(created, created, created + Duration::minutes(5)).is_ok());
//! assert!(policy.check(created, created, created + Duration::hours(1)).is_err()); // idle
//! # Ok::<(), procuhelp_auth::session::SessionError>(())
//! ```

mod cookie;
mod policy;
mod store;
mod token;
mod verify;

pub use cookie::{COOKIE_NAME, clear_cookie};
pub use policy::SessionPolicy;
pub use store::{
    ActiveElevation, NewSession, SessionPrincipal, SessionStage, SessionSummary, authenticate,
    list, open, revoke, revoke_all,
};
pub use token::{Credential, SessionToken};
pub use verify::{Verified, verify_once};

/// Why a session is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a token we issue (length, alphabet).
    #[error("invalid session")]
    Malformed,
    /// Unused for longer than the idle timeout.
    #[error("session expired")]
    IdleExpired,
    /// Older than the absolute lifetime.
    #[error("session expired")]
    AbsoluteExpired,
    /// The OS RNG failed.
    #[error("session could not be created")]
    Rng,
}
