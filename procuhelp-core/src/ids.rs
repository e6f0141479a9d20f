//! Typed identifiers.
//!
//! Every id is a UUID underneath, but the types keep an org id from being passed where a
//! user id is expected — the class of bug that turns into a cross-tenant read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string could not be parsed as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input was not a canonical hyphenated UUID.
    #[error(
        "malformed {kind} id (expected a hyphenated UUID of 36 characters, got {len} characters)"
    )]
    Malformed {
        /// Which kind of id was expected ("org", "user", ...).
        kind: &'static str,
        /// Length of the rejected input; the input itself is not echoed back.
        len: usize,
    },
    /// The nil UUID is never a valid identifier.
    #[error("the nil UUID is not a valid {kind} id")]
    Nil {
        /// Which kind of id was expected.
        kind: &'static str,
    },
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A new random (time-ordered, UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID; the nil UUID is refused.
            pub fn from_uuid(uuid: Uuid) -> Result<Self, IdError> {
                if uuid.is_nil() {
                    return Err(IdError::Nil { kind: $kind });
                }
                Ok(Self(uuid))
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            // Only the canonical 36-character hyphenated form is accepted: one spelling per
            // id keeps ids usable as map keys, log fields and URL segments without aliasing.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(IdError::Malformed { kind: $kind, len: s.len() });
                }
                let uuid = Uuid::try_parse(s)
                    .map_err(|_| IdError::Malformed { kind: $kind, len: s.len() })?;
                Self::from_uuid(uuid)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }
    };
}

typed_id!(
    /// The tenant: one customer organisation. Every tenant-scoped row carries one.
    OrgId,
    "org"
);
typed_id!(
    /// A person (or service account) inside an organisation.
    UserId,
    "user"
);
typed_id!(
    /// A supplier record of one organisation.
    SupplierId,
    "supplier"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_canonical_form() {
        let id = OrgId::new();
        assert_eq!(id.to_string().parse::<OrgId>(), Ok(id));
    }

    #[test]
    fn rejects_nil_and_non_canonical_forms() {
        assert_eq!(
            "00000000-0000-0000-0000-000000000000".parse::<OrgId>(),
            Err(IdError::Nil { kind: "org" })
        );
        // Simple (unhyphenated) and braced forms are valid UUIDs but not canonical ids.
        assert!(
            "0191d2a46c1e7a419c550d1b2f3e4a5b"
                .parse::<UserId>()
                .is_err()
        );
        assert!(
            "{0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b}"
                .parse::<UserId>()
                .is_err()
        );
        assert!("urn:uuid:0191d2a4-6c1e-7a41-9c".parse::<UserId>().is_err());
    }

    #[test]
    fn error_does_not_echo_input() {
        let err = "'; DROP TABLE suppliers; --".parse::<OrgId>().unwrap_err();
        assert!(!err.to_string().contains("DROP"));
    }

    #[test]
    fn serde_uses_the_same_parser() {
        let id = SupplierId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SupplierId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SupplierId>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_accepts_only_round_trippable_ids(s in "\\PC{0,64}") {
            if let Ok(id) = s.parse::<OrgId>() {
                prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
            }
        }

        #[test]
        fn every_non_nil_uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let uuid = Uuid::from_bytes(bytes);
            prop_assume!(!uuid.is_nil());
            let id = UserId::from_uuid(uuid).unwrap();
            prop_assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        }
    }
}
