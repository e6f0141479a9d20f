//! Email addresses as the directory stores and compares them.

use crate::{AuthError, AuthResult};

/// A normalised email address: trimmed, lower-case, one `@`, at most 254 bytes, no
/// whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> AuthResult<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = |problem| AuthError::Invalid {
            field: "email",
            problem,
        };
        if email.len() < 3 || email.len() > 254 {
            return Err(invalid("must be 3 to 254 bytes"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => return Err(invalid("must look like name@domain")),
        }
        if email.matches('@').count() != 1 {
            return Err(invalid("must look like name@domain"));
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "a",
            "no-at",
            "@x",
            "x@",
            "a@b@c",
            "a b@c",
            "a\u{0}@b",
            &format!("{}@x.io", "a".repeat(300)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
