//! TOTP (RFC 6238) second factor: 160-bit secrets, `otpauth://` enrolment URIs, ±1 step
//! of clock skew, and no time step accepted twice for a user.
//!
//! ```
//! use procuhelp_auth::totp::{Totp, TotpSecret};
//! use time::macros::datetime;
//!
//! let secret = TotpSecret::generate()?;
//! let totp = Totp::new("ProcuHelp");
//! let uri = totp.enrolment_uri(&secret, "ada@example.com")?;
//! assert!(uri.starts_with("otpauth://totp/ProcuHelp:ada%40example.com?"));
//! let now = datetime!(2026-11-25 10:00 UTC);
//! let code = totp.code_at(&secret, now)?;
//! let step = totp.verify(&secret, &code, now, None)?;          // accepted
//! assert!(totp.verify(&secret, &code, now, Some(step)).is_err()); // replay refused
//! # Ok::<(), procuhelp_auth::totp::TotpError>(())
//! ```

use procuhelp_core::SecretBytes;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use totp_rs::{Algorithm, TOTP};

const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
const SKEW_STEPS: u64 = 1;

/// Why a TOTP operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The code is wrong, too old, or was already used.
    #[error("invalid code")]
    InvalidCode,
    /// The code is not 6 ASCII digits.
    #[error("a code is 6 digits")]
    Malformed,
    /// The secret or parameters are unusable.
    #[error("TOTP configuration error")]
    Config,
}

/// A 160-bit TOTP secret (store it encrypted; it is shown once, at enrolment).
#[derive(Debug, Clone)]
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    /// A fresh random secret from the OS RNG.
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = vec![0u8; 20];
        getrandom::fill(&mut bytes).map_err(|_| TotpError::Config)?;
        Ok(Self(SecretBytes::new(bytes)))
    }

    /// A secret from stored bytes (at least 16).
    pub fn from_bytes(bytes: SecretBytes) -> Result<Self, TotpError> {
        if bytes.len() < 16 {
            return Err(TotpError::Config);
        }
        Ok(Self(bytes))
    }

    /// The raw bytes, for encrypted storage.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

/// TOTP with SHA-1, 6 digits, 30-second steps (what authenticator apps implement).
#[derive(Debug, Clone)]
pub struct Totp {
    issuer: String,
}

impl Totp {
    /// TOTP whose enrolment URIs name `issuer`.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
        }
    }

    fn engine(&self, secret: &TotpSecret, account: &str) -> Result<TOTP, TotpError> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            0,
            STEP_SECS,
            secret.expose().to_vec(),
            Some(self.issuer.clone()),
            account.to_owned(),
        )
        .map_err(|_| TotpError::Config)
    }

    /// The `otpauth://totp/...` URI to show as a QR code at enrolment.
    pub fn enrolment_uri(&self, secret: &TotpSecret, account: &str) -> Result<String, TotpError> {
        Ok(self.engine(secret, account)?.get_url())
    }

    /// The code for `at` (for tests and enrolment confirmation screens).
    pub fn code_at(&self, secret: &TotpSecret, at: OffsetDateTime) -> Result<String, TotpError> {
        Ok(self.engine(secret, "")?.generate(unix(at)?))
    }

    /// Accepts `code` if it matches the step of `now` or one step either side, and that
    /// step is later than `last_used_step` (the caller stores the returned step and passes
    /// it next time: a code is never accepted twice). Comparison is constant-time.
    pub fn verify(
        &self,
        secret: &TotpSecret,
        code: &str,
        now: OffsetDateTime,
        last_used_step: Option<u64>,
    ) -> Result<u64, TotpError> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let engine = self.engine(secret, "")?;
        let current = unix(now)? / STEP_SECS;
        let mut accepted = None;
        // Every candidate is computed and compared, so timing does not reveal which matched.
        for step in current.saturating_sub(SKEW_STEPS)..=current + SKEW_STEPS {
            let expected = engine.generate(step * STEP_SECS);
            let matches: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
            if matches && last_used_step.is_none_or(|last| step > last) {
                accepted = Some(step);
            }
        }
        accepted.ok_or(TotpError::InvalidCode)
    }
}

fn unix(at: OffsetDateTime) -> Result<u64, TotpError> {
    u64::try_from(at.unix_timestamp()).map_err(|_| TotpError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn skew_window_and_replay() {
        let t = Totp::new("ProcuHelp");
        let s = TotpSecret::generate().unwrap();
        let now = datetime!(2026-11-25 10:00:15 UTC);
        let prev = t.code_at(&s, now - Duration::seconds(30)).unwrap();
        let next = t.code_at(&s, now + Duration::seconds(30)).unwrap();
        let far = t.code_at(&s, now + Duration::seconds(90)).unwrap();
        let step = t.verify(&s, &prev, now, None).unwrap();
        // The previous step was used: the same code, and older steps, are refused...
        assert_eq!(
            t.verify(&s, &prev, now, Some(step)),
            Err(TotpError::InvalidCode)
        );
        // ...but a later step is fine.
        assert!(t.verify(&s, &next, now, Some(step)).is_ok());
        assert_eq!(t.verify(&s, &far, now, None), Err(TotpError::InvalidCode));
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                t.verify(&s, bad, now, None),
                Err(TotpError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TotpSecret::from_bytes(SecretBytes::new(vec![1; 10])).is_err());
    }
}
