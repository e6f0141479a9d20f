//! Passwords: Argon2id in PHC strings, NIST SP 800-63B length rules, a common-password
//! check, transparent rehashing of weaker hashes, and enumeration-resistant verification.
//!
//! ```
//! use procuhelp_auth::password::{PasswordHasher, PasswordPolicy};
//! use procuhelp_core::SecretText;
//!
//! let hasher = PasswordHasher::for_tests(); // PasswordHasher::default() in production
//! let pw = SecretText::new("correct horse battery staple 42".into());
//! PasswordPolicy::default().check(&pw)?;
//! let stored = hasher.hash(&pw)?;
//! assert!(stored.starts_with("$argon2id$v=19$"));
//! let outcome = hasher.verify(&pw, Some(&stored))?;
//! assert!(outcome.ok && !outcome.needs_rehash);
//! # Ok::<(), procuhelp_auth::password::PasswordError>(())
//! ```

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use procuhelp_core::SecretText;

/// Why a password or hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than the policy's minimum.
    #[error("password must have at least {0} characters")]
    TooShort(usize),
    /// Longer than the policy's maximum.
    #[error("password must have at most {0} characters")]
    TooLong(usize),
    /// On the list of common passwords.
    #[error("password is too common")]
    Common,
    /// A stored hash is not a PHC string we can use.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// Hashing failed (parameters, RNG).
    #[error("password hashing failed")]
    Hashing,
}

/// NIST SP 800-63B rules: a length window and a blocklist, no composition rules.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

const COMMON: &str = include_str!("../data/common-passwords.txt");

impl PasswordPolicy {
    /// Checks a new password.
    pub fn check(&self, password: &SecretText) -> Result<(), PasswordError> {
        let chars = password.expose().chars().count();
        if chars < self.min_chars {
            return Err(PasswordError::TooShort(self.min_chars));
        }
        if chars > self.max_chars {
            return Err(PasswordError::TooLong(self.max_chars));
        }
        let candidate = password.expose().trim().to_lowercase();
        let common = COMMON
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if common.into_iter().any(|c| c == candidate) {
            return Err(PasswordError::Common);
        }
        Ok(())
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matched.
    pub ok: bool,
    /// It matched a hash with weaker parameters than current: store a new hash.
    pub needs_rehash: bool,
}

/// Argon2id with configurable cost; OWASP's minimum (m = 19 MiB, t = 2, p = 1) by default.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy: String,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        // OWASP: m=19456 KiB, t=2, p=1. Params::new only fails on out-of-range values.
        Self::with_params(19 * 1024, 2, 1).unwrap_or_else(|_| Self::for_tests())
    }
}

impl PasswordHasher {
    /// A hasher with memory `m_kib`, `t` passes and `p` lanes.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Result<Self, PasswordError> {
        let params = Params::new(m_kib, t, p, None).map_err(|_| PasswordError::Hashing)?;
        let mut hasher = Self {
            params,
            dummy: String::new(),
        };
        // A real hash of a random password: unknown users are verified against it, so
        // they cost the same time as known users with a wrong password.
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(|_| PasswordError::Hashing)?;
        hasher.dummy = hasher.hash(&SecretText::new(hex_string(&random)))?;
        Ok(hasher)
    }

    /// Cheap parameters, for tests and doc examples only.
    pub fn for_tests() -> Self {
        let params = Params::new(256, 1, 1, None).unwrap_or_default();
        let mut hasher = Self {
            params,
            dummy: String::new(),
        };
        hasher.dummy = hasher
            .hash(&SecretText::new("dummy-password-for-tests".into()))
            .unwrap_or_default();
        hasher
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string for `password` with a fresh 128-bit salt. CPU-heavy: call it from
    /// `spawn_blocking` in async code.
    pub fn hash(&self, password: &SecretText) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hashing)
    }

    /// Verifies `password` against `stored`, or — for an unknown user, `None` — against a
    /// dummy hash, so both cases take the same time and give the same answer. CPU-heavy.
    pub fn verify(
        &self,
        password: &SecretText,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (self.dummy.as_str(), false),
        };
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(PasswordError::MalformedHash);
        }
        // Verify with the parameters in the hash (the crate reads them from it).
        let ok = Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
            && real;
        let needs_rehash = ok && self.is_weaker(&parsed);
        Ok(Verification { ok, needs_rehash })
    }

    fn is_weaker(&self, hash: &PasswordHash<'_>) -> bool {
        match Params::try_from(hash) {
            Ok(p) => {
                p.m_cost() < self.params.m_cost()
                    || p.t_cost() < self.params.t_cost()
                    || p.p_cost() < self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_follows_nist() {
        let p = PasswordPolicy::default();
        let s = |x: &str| SecretText::new(x.to_owned());
        assert_eq!(p.check(&s("short")), Err(PasswordError::TooShort(12)));
        assert_eq!(
            p.check(&s(&"x".repeat(129))),
            Err(PasswordError::TooLong(128))
        );
        assert_eq!(p.check(&s("Password1234")), Err(PasswordError::Common));
        // No composition rules: a long passphrase of lowercase words is fine.
        assert_eq!(p.check(&s("purple elephants dance slowly")), Ok(()));
        // Unicode counts characters, not bytes.
        assert_eq!(p.check(&s("ééééééééééé")), Err(PasswordError::TooShort(12)));
    }

    #[test]
    fn unknown_user_and_wrong_password_look_the_same() {
        let h = PasswordHasher::for_tests();
        let stored = h
            .hash(&SecretText::new("the right password".into()))
            .unwrap();
        let wrong = h
            .verify(&SecretText::new("the wrong password".into()), Some(&stored))
            .unwrap();
        let unknown = h
            .verify(&SecretText::new("the wrong password".into()), None)
            .unwrap();
        assert_eq!(wrong, unknown);
        assert!(!wrong.ok);
    }

    #[test]
    fn weaker_hash_is_flagged_for_rehash() {
        let weak = PasswordHasher::with_params(256, 1, 1).unwrap();
        let strong = PasswordHasher::with_params(512, 2, 1).unwrap();
        let pw = SecretText::new("a perfectly fine passphrase".into());
        let stored = weak.hash(&pw).unwrap();
        let v = strong.verify(&pw, Some(&stored)).unwrap();
        assert!(v.ok && v.needs_rehash);
        let v = strong
            .verify(&pw, Some(&strong.hash(&pw).unwrap()))
            .unwrap();
        assert!(v.ok && !v.needs_rehash);
    }

    #[test]
    fn malformed_and_foreign_hashes_are_errors_not_matches() {
        let h = PasswordHasher::for_tests();
        let pw = SecretText::new("whatever password".into());
        for bad in [
            "",
            "plaintext",
            "$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHQ$nf65EOgLrQMR",
            "$2b$12$abcdefghijklmnopqrstuu",
        ] {
            assert!(
                matches!(h.verify(&pw, Some(bad)), Err(PasswordError::MalformedHash)),
                "{bad}"
            );
        }
    }
}
