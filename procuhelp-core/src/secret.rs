//! Secret values: redacted in `Debug`, never `Serialize`, zeroized on drop, compared in
//! constant time.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq;

/// Secret bytes (a key, a token, a password).
///
/// ```
/// use procuhelp_core::SecretBytes;
/// let a = SecretBytes::new(b"hunter2hunter2".to_vec());
/// assert_eq!(format!("{a:?}"), "SecretBytes([redacted, 14 bytes])");
/// assert!(a.ct_eq(&SecretBytes::new(b"hunter2hunter2".to_vec())));
/// ```
pub struct SecretBytes(SecretBox<[u8]>);

impl SecretBytes {
    /// Takes ownership of `bytes` (which are zeroized when this value drops).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(bytes.into_boxed_slice()))
    }

    /// The bytes. Every call site is a place a secret is used: keep them few.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Constant-time equality (the length is not hidden).
    pub fn ct_eq(&self, other: &SecretBytes) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::new(self.expose().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted, {} bytes])", self.len())
    }
}

/// A secret string (a password, an API token).
pub struct SecretText(SecretString);

impl SecretText {
    /// Takes ownership of `text`.
    pub fn new(text: String) -> Self {
        Self(SecretString::from(text))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Constant-time equality (the length is not hidden).
    pub fn ct_eq(&self, other: &SecretText) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let b = SecretBytes::new(b"s3cr3t-value".to_vec());
        let t = SecretText::new("s3cr3t-value".to_owned());
        for shown in [
            format!("{b:?}"),
            format!("{t:?}"),
            format!("{t}"),
            format!("{b:#?}"),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn equality_is_by_value() {
        let a = SecretText::new("abc".into());
        assert!(a.ct_eq(&SecretText::new("abc".into())));
        assert!(!a.ct_eq(&SecretText::new("abd".into())));
        assert!(!a.ct_eq(&SecretText::new("abcd".into())));
    }
}
