//! The session cookie: `__Host-` prefixed, Secure, HttpOnly, SameSite=Strict, Path=/.

use super::Credential;

/// The session cookie's name. `__Host-` makes browsers require Secure, Path=/ and no
/// Domain, so no subdomain can set or read it.
pub const COOKIE_NAME: &str = "__Host-procuhelp-session";

impl Credential {
    /// The `Set-Cookie` value: `__Host-` prefix, Secure, HttpOnly, SameSite=Strict, Path=/.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
            self.expose()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_clearing_cookie_expires_the_same_name_at_once() {
        let c = clear_cookie();
        assert!(c.starts_with("__Host-procuhelp-session=;"));
        assert!(c.contains("Max-Age=0"));
    }
}
