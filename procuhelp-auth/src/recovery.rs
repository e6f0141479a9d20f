//! MFA recovery codes: ten single-use codes, shown once, stored only as hashes.
//!
//! Each code carries 80 random bits (16 Crockford base32 characters, shown as
//! `XXXX-XXXX-XXXX-XXXX`), so a plain SHA-256 is enough to store it: 2^80 guesses is out
//! of reach even offline. Input is normalised (case, `-`, spaces, and the Crockford
//! look-alikes O→0, I/L→1) before hashing.
//!
//! ```
//! use procuhelp_auth::recovery::{RecoveryCodes, find_code};
//! let issued = RecoveryCodes::generate()?;
//! assert_eq!(issued.codes.len(), 10);
//! let typed = issued.codes[3].expose().to_lowercase().replace('-', " ");
//! assert_eq!(find_code(&typed, &issued.hashes), Some(3));
//! # Ok::<(), procuhelp_auth::recovery::RecoveryError>(())
//! ```

use procuhelp_core::SecretText;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHARS: usize = 16;
const COUNT: usize = 10;

/// Codes could not be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("recovery codes could not be generated")]
pub struct RecoveryError;

/// Freshly issued codes: show `codes` once, store `hashes`.
#[derive(Debug)]
pub struct RecoveryCodes {
    /// The codes, for the user's eyes only.
    pub codes: Vec<SecretText>,
    /// What to store.
    pub hashes: Vec<[u8; 32]>,
}

impl RecoveryCodes {
    /// Ten new codes.
    pub fn generate() -> Result<Self, RecoveryError> {
        let mut codes = Vec::with_capacity(COUNT);
        let mut hashes = Vec::with_capacity(COUNT);
        for _ in 0..COUNT {
            // 10 random bytes = 80 bits = 16 base32 symbols.
            let mut raw = zeroize::Zeroizing::new([0u8; 10]);
            getrandom::fill(raw.as_mut()).map_err(|_| RecoveryError)?;
            let mut symbols = String::with_capacity(CHARS);
            let mut acc: u128 = 0;
            for b in raw.iter() {
                acc = (acc << 8) | u128::from(*b);
            }
            for i in (0..CHARS).rev() {
                symbols.push(char::from(ALPHABET[((acc >> (i * 5)) & 31) as usize]));
            }
            hashes.push(hash(&symbols));
            let shown = format!(
                "{}-{}-{}-{}",
                &symbols[0..4],
                &symbols[4..8],
                &symbols[8..12],
                &symbols[12..16]
            );
            codes.push(SecretText::new(shown));
        }
        Ok(Self { codes, hashes })
    }
}

fn hash(normalised: &str) -> [u8; 32] {
    Sha256::digest(normalised.as_bytes()).into()
}

fn normalise(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let mut out = String::with_capacity(CHARS);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == CHARS).then_some(out)
}

/// The index of the stored hash that `input` matches, comparing against every hash in
/// constant time. The caller deletes that hash (single use).
pub fn find_code(input: &str, hashes: &[[u8; 32]]) -> Option<usize> {
    let candidate = hash(&normalise(input)?);
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        if bool::from(stored.ct_eq(&candidate)) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_formatted_and_match_only_themselves() {
        let issued = RecoveryCodes::generate().unwrap();
        let mut seen = std::collections::HashSet::new();
        for (i, code) in issued.codes.iter().enumerate() {
            assert_eq!(code.expose().len(), 19);
            assert!(seen.insert(code.expose().to_owned()));
            assert_eq!(find_code(code.expose(), &issued.hashes), Some(i));
        }
        let other = RecoveryCodes::generate().unwrap();
        assert_eq!(find_code(other.codes[0].expose(), &issued.hashes), None);
    }

    #[test]
    fn lookalikes_and_formatting_are_forgiven_garbage_is_not() {
        let issued = RecoveryCodes::generate().unwrap();
        let code = issued.codes[0]
            .expose()
            .replace('0', "o")
            .replace('1', "l")
            .to_lowercase();
        assert_eq!(find_code(&code, &issued.hashes), Some(0));
        for bad in [
            "",
            "ABCD",
            "ABCD-ABCD-ABCD-ABCU",
            &"A".repeat(1000),
            "ÄBCD-ABCD-ABCD-ABCD",
        ] {
            assert_eq!(find_code(bad, &issued.hashes), None, "{bad:.20}");
        }
    }
}
