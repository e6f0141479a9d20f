//! An application's own audit actions ([`AppAction`]): names the embedding application
//! chooses (`claim.created`), recorded as [`Action::App`](crate::Action::App) under the
//! reserved `app.` namespace (`app.claim.created`).
//!
//! The namespace is the security property: no SDK action starts with `app.`, and every
//! application action does, so an application can never record, and a reader of the trail
//! can never mistake, an application's event for one of the SDK's (`auth.*`, `audit.*`,
//! `scim.*`, ...). The name itself is a closed, bounded shape: 1 to
//! [`AppAction::MAX_NAME_BYTES`] bytes of dot-separated segments, each a lowercase ASCII
//! letter followed by lowercase letters, digits or `_`, at least two segments
//! (`area.what`, as the SDK's own). The string form is stored in the hash chain and every
//! export, so a name must never change once released.

use std::fmt;

/// Why a string is not an application action name. Positions only: the name is never
/// echoed (names parsed from a stored chain or an imported file are untrusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppActionError {
    /// The name is empty.
    #[error("application action name is empty")]
    Empty,
    /// The name is longer than [`AppAction::MAX_NAME_BYTES`].
    #[error(
        "application action name is {len} bytes, the limit is {}",
        AppAction::MAX_NAME_BYTES
    )]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside `a-z`, `0-9`, `_` and `.`.
    #[error("application action name has a byte outside a-z 0-9 _ . at {at}")]
    InvalidByte {
        /// The byte's offset in the name.
        at: usize,
    },
    /// A segment is empty or does not start with a letter (`claim..created`, `.claim`,
    /// `claim.1st`).
    #[error("application action name has a segment not starting with a-z at {at}")]
    BadSegment {
        /// The segment's offset in the name.
        at: usize,
    },
    /// The name has one segment: it needs an area and what happened (`claim.created`).
    #[error("application action name needs at least two segments (area.what)")]
    NoArea,
}

/// A validated application action name, stored with its `app.` prefix.
///
/// `Copy` and fixed-size (no allocation), so [`Action`](crate::Action) stays `Copy`.
/// Build one in a `const` with [`app_action!`](crate::app_action) (a bad name does not
/// compile) or at run time with [`Action::app`](crate::Action::app) /
/// [`AppAction::new`] (a bad name is an [`AppActionError`]).
///
/// ```
/// use procuhelp_audit::{Action, AppAction, AppActionError};
///
/// const CLAIM_CREATED: Action = procuhelp_audit::app_action!("claim.created");
/// assert_eq!(CLAIM_CREATED.as_str(), "app.claim.created");
/// assert_eq!("app.claim.created".parse::<Action>(), Ok(CLAIM_CREATED));
///
/// let Action::App(app) = CLAIM_CREATED else { unreachable!() };
/// assert_eq!(app.name(), "claim.created");
/// assert_eq!(AppAction::new("Claim.created"), Err(AppActionError::InvalidByte { at: 0 }));
/// assert_eq!(Action::app("created"), Err(AppActionError::NoArea));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppAction {
    // `app.` + the name, zero-padded: the derived ordering is the strings' ordering
    // (every name byte is non-zero) and equal names have equal buffers.
    text: [u8; AppAction::CAPACITY],
    len: u8,
}

impl AppAction {
    /// The namespace every application action is recorded under.
    pub const PREFIX: &'static str = "app.";
    /// The longest name, in bytes (without the prefix).
    pub const MAX_NAME_BYTES: usize = 48;
    const CAPACITY: usize = AppAction::PREFIX.len() + AppAction::MAX_NAME_BYTES;

    /// The application action `name` (without the `app.` prefix), if it has the
    /// allowed shape. `const`: usable in a `const` item.
    pub const fn new(name: &str) -> Result<AppAction, AppActionError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(AppActionError::Empty);
        }
        if bytes.len() > AppAction::MAX_NAME_BYTES {
            return Err(AppActionError::TooLong { len: bytes.len() });
        }
        let prefix = AppAction::PREFIX.as_bytes();
        let mut text = [0u8; AppAction::CAPACITY];
        let mut i = 0;
        while i < prefix.len() {
            text[i] = prefix[i];
            i += 1;
        }
        let mut segments = 1;
        let mut at = 0;
        while at < bytes.len() {
            let b = bytes[at];
            let segment_start = at == 0 || bytes[at - 1] == b'.';
            if b == b'.' {
                if segment_start {
                    return Err(AppActionError::BadSegment { at });
                }
                segments += 1;
            } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(AppActionError::InvalidByte { at });
            } else if segment_start && !b.is_ascii_lowercase() {
                return Err(AppActionError::BadSegment { at });
            }
            text[prefix.len() + at] = b;
            at += 1;
        }
        if bytes[bytes.len() - 1] == b'.' {
            return Err(AppActionError::BadSegment { at: bytes.len() });
        }
        if segments < 2 {
            return Err(AppActionError::NoArea);
        }
        // At most CAPACITY (52) bytes: fits a u8.
        let len = (prefix.len() + bytes.len()) as u8;
        Ok(AppAction { text, len })
    }

    /// The stored form, with its prefix: `app.claim.created`.
    pub fn as_str(&self) -> &str {
        let text = self.text.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII is ever written (checked in `new`); the fallback is unreachable.
        std::str::from_utf8(text).unwrap_or_default()
    }

    /// The application's name, without the prefix: `claim.created`.
    pub fn name(&self) -> &str {
        self.as_str()
            .get(AppAction::PREFIX.len()..)
            .unwrap_or_default()
    }

    /// The application action stored as `text` (`app.` + a valid name), if it is one.
    pub(crate) fn from_stored(text: &str) -> Option<AppAction> {
        AppAction::new(text.strip_prefix(AppAction::PREFIX)?).ok()
    }
}

impl fmt::Debug for AppAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AppAction").field(&self.as_str()).finish()
    }
}

impl fmt::Display for AppAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An application audit action checked at compile time: a bad name does not compile.
///
/// Expands to a `const` [`Action::App`](crate::Action::App), so it can name a constant:
///
/// ```
/// use procuhelp_audit::Action;
/// const CLAIM_APPROVED: Action = procuhelp_audit::app_action!("claim.approved");
/// assert_eq!(CLAIM_APPROVED.to_string(), "app.claim.approved");
/// ```
///
/// ```compile_fail
/// const BAD: procuhelp_audit::Action = procuhelp_audit::app_action!("auth/login");
/// ```
#[macro_export]
macro_rules! app_action {
    ($name:expr) => {{
        const ACTION: $crate::Action = match $crate::Action::app($name) {
            ::core::result::Result::Ok(action) => action,
            ::core::result::Result::Err(_) => {
                ::core::panic!("not an application audit action name (see AppAction)")
            }
        };
        ACTION
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_the_documented_shape() {
        for ok in ["claim.created", "a.b", "claim_2.line_item.added", "x.y1_"] {
            let a = AppAction::new(ok);
            assert_eq!(a.map(|a| a.name().to_owned()), Ok(ok.to_owned()), "{ok}");
        }
        let longest = format!("a.{}", "b".repeat(AppAction::MAX_NAME_BYTES - 2));
        assert!(AppAction::new(&longest).is_ok());
        let too_long = format!("{longest}c");
        assert_eq!(
            AppAction::new(&too_long),
            Err(AppActionError::TooLong { len: 49 })
        );
        for (bad, err) in [
            ("", AppActionError::Empty),
            ("created", AppActionError::NoArea),
            ("claim.", AppActionError::BadSegment { at: 6 }),
            (".claim", AppActionError::BadSegment { at: 0 }),
            ("claim..created", AppActionError::BadSegment { at: 6 }),
            ("claim.1st", AppActionError::BadSegment { at: 6 }),
            ("claim._x", AppActionError::BadSegment { at: 6 }),
            ("Claim.created", AppActionError::InvalidByte { at: 0 }),
            ("claim.créé", AppActionError::InvalidByte { at: 8 }),
            ("claim created", AppActionError::InvalidByte { at: 5 }),
            ("claim.created\n", AppActionError::InvalidByte { at: 13 }),
            ("claim\0.x", AppActionError::InvalidByte { at: 5 }),
        ] {
            assert_eq!(AppAction::new(bad), Err(err), "{bad:?}");
        }
    }

    #[test]
    fn stored_forms_need_the_prefix_and_a_valid_name() {
        let a = AppAction::from_stored("app.claim.created");
        assert_eq!(a.map(|a| a.to_string()), Some("app.claim.created".into()));
        assert_eq!(format!("{a:?}"), r#"Some(AppAction("app.claim.created"))"#);
        for s in [
            "claim.created",
            "app.",
            "app.claim",
            "APP.claim.x",
            "app.app.",
        ] {
            assert_eq!(AppAction::from_stored(s), None, "{s}");
        }
    }

    #[test]
    fn ordering_is_the_strings() {
        let names = ["a.b", "a.b.c", "a.ba", "b.a", "claim.created"];
        for w in names.windows(2) {
            let (x, y) = (AppAction::new(w[0]), AppAction::new(w[1]));
            assert!(matches!((x, y), (Ok(x), Ok(y)) if x < y), "{w:?}");
        }
    }
}
