//! The token and the credential a client presents: `<org id>.<token>`, 256 bits of OS
//! randomness, stored only as a SHA-256 hash; and the anti-CSRF token derived from it.

use base64::Engine as _;
use procuhelp_core::SecretText;
use sha2::{Digest, Sha256};

use super::SessionError;

pub(super) const TOKEN_CHARS: usize = 43; // 32 bytes, base64url without padding

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
