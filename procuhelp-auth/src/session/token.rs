//! Session tokens: 256-bit random, opaque to clients, stored only as a SHA-256 hash; idle
//! and absolute expiry checked against an injected clock; a `__Host-` cookie.
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

use base64::Engine as _;
use procuhelp_core::SecretText;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The session cookie's name. `__Host-` makes browsers require Secure, Path=/ and no
/// Domain, so no subdomain can set or read it.
pub const COOKIE_NAME: &str = "__Host-procuhelp-session";
const TOKEN_CHARS: usize = 43; // 32 bytes, base64url without padding

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

/// An opaque session (or API) token. `Debug`/`Display` are redacted.
#[derive(Debug)]
pub struct SessionToken(SecretText);

impl SessionToken {
    /// A fresh 256-bit token.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| SessionError::Rng)?;
        Ok(Self(SecretText::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        )))
    }

    /// Accepts a presented token only if it has exactly our shape: anything else (too
    /// long, other characters) is refused before it is hashed or looked up.
    pub fn parse(presented: &str) -> Result<Self, SessionError> {
        let ok = presented.len() == TOKEN_CHARS
            && presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SessionError::Malformed);
        }
        Ok(Self(SecretText::new(presented.to_owned())))
    }

    /// The token, to hand to the client once (cookie or API response).
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// SHA-256 of the token: the only form stored. A 256-bit random token needs no salt or
    /// slow hash; a leaked table of hashes cannot be replayed as cookies.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose().as_bytes()).into()
    }
}

/// What a client presents: the organisation and a token, as `<org id>.<token>`.
///
/// The organisation is not secret: it says which tenant's session table to look the token
/// up in (row-level security scopes the lookup to it), so a forged organisation only
/// finds nothing. The tenant of a request always comes from here, after the lookup.
#[derive(Debug)]
pub struct Credential {
    /// The organisation the token was issued in.
    pub org: procuhelp_core::OrgId,
    /// The secret part.
    pub token: SessionToken,
}

impl Credential {
    /// A fresh credential for `org`.
    pub fn generate(org: procuhelp_core::OrgId) -> Result<Self, SessionError> {
        Ok(Self {
            org,
            token: SessionToken::generate()?,
        })
    }

    /// Parses `<org id>.<token>`; anything else is [`SessionError::Malformed`].
    pub fn parse(presented: &str) -> Result<Self, SessionError> {
        let (org, token) = presented.split_once('.').ok_or(SessionError::Malformed)?;
        Ok(Self {
            org: org.parse().map_err(|_| SessionError::Malformed)?,
            token: SessionToken::parse(token)?,
        })
    }

    /// The value handed to the client (cookie value or bearer token). Secret.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.org, self.token.expose())
    }

    /// The `Set-Cookie` value: `__Host-` prefix, Secure, HttpOnly, SameSite=Strict, Path=/.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
            self.expose()
        )
    }

    /// The anti-CSRF token of this session: SHA-256 over a domain label and the session
    /// token. The server recomputes it from the cookie, so nothing more is stored; it
    /// reveals nothing about the session token.
    pub fn csrf_token(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"procuhelp/csrf/v1\0")
            .chain_update(self.token.expose().as_bytes())
            .finalize();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    /// Whether `presented` is this session's anti-CSRF token (constant-time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.csrf_token()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Idle and absolute lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Longest gap between two requests.
    pub idle: Duration,
    /// Longest life of a session whatever its use.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

impl SessionPolicy {
    /// Whether a session created at `created` and last seen at `last_seen` is valid `now`.
    pub fn check(
        &self,
        created: OffsetDateTime,
        last_seen: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), SessionError> {
        if now - created >= self.absolute {
            return Err(SessionError::AbsoluteExpired);
        }
        if now - last_seen >= self.idle {
            return Err(SessionError::IdleExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procuhelp_core::{Clock, ManualClock};
    use time::macros::datetime;

    #[test]
    fn tokens_are_unique_well_formed_and_hash_stably() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert_eq!(SessionToken::parse(a.expose()).unwrap().hash(), a.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(42),
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &"ä".repeat(22),
            &"a".repeat(100_000),
        ] {
            assert_eq!(
                SessionToken::parse(bad).err(),
                Some(SessionError::Malformed),
                "{:.20}",
                bad
            );
        }
    }

    #[test]
    fn idle_and_absolute_expiry_with_an_injected_clock() {
        let clock = ManualClock::new(datetime!(2026-11-25 08:00 UTC));
        let policy = SessionPolicy::default();
        let created = clock.now();
        let mut last_seen = created;
        // Active use every 20 minutes keeps it alive... until the absolute limit.
        for _ in 0..35 {
            clock.advance(Duration::minutes(20));
            policy.check(created, last_seen, clock.now()).unwrap();
            last_seen = clock.now();
        }
        clock.advance(Duration::minutes(20));
        assert_eq!(
            policy.check(created, last_seen, clock.now()),
            Err(SessionError::AbsoluteExpired)
        );
        // Idle for 30 minutes: expired.
        let fresh = clock.now();
        clock.advance(Duration::minutes(30));
        assert_eq!(
            policy.check(fresh, fresh, clock.now()),
            Err(SessionError::IdleExpired)
        );
    }

    #[test]
    fn credentials_round_trip_and_csrf_is_bound_to_the_session() {
        let org = procuhelp_core::OrgId::new();
        let c = Credential::generate(org).unwrap();
        let parsed = Credential::parse(&c.expose()).unwrap();
        assert_eq!(parsed.org, org);
        assert_eq!(parsed.token.hash(), c.token.hash());
        assert!(c.csrf_matches(&c.csrf_token()));
        let other = Credential::generate(org).unwrap();
        assert!(!c.csrf_matches(&other.csrf_token()));
        assert!(!c.csrf_matches(""));
        assert!(!c.csrf_token().contains(c.token.expose()));
        for bad in [
            "",
            ".",
            "x.y",
            &format!("{org}"),
            &format!("{org}.short"),
            &format!("nil.{}", c.token.expose()),
        ] {
            assert!(Credential::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{c:?}").contains(c.token.expose()));
        assert!(c.set_cookie().starts_with("__Host-procuhelp-session="));
    }

    #[test]
    fn cookie_has_the_protective_attributes() {
        let c = Credential::generate(procuhelp_core::OrgId::new())
            .unwrap()
            .set_cookie();
        assert!(c.starts_with("__Host-procuhelp-session="));
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Domain"));
    }
}
