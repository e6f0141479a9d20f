//! The one policy for requests the server makes to destinations it was told about:
//! OpenID Connect discovery, key sets and token endpoints a tenant admin configured, the
//! alert webhook an operator configured, and anything added later.
//!
//! Without it, the server is a port scanner for its own network: a tenant admin points a
//! URL at `127.0.0.1:8200` (the vault) or `169.254.169.254` (cloud metadata), an
//! unauthenticated endpoint makes the server fetch it, and the error tells open from
//! closed. So a request made through an [`OutboundClient`]:
//!
//! - goes only to a URL that [`OutboundPolicy::check_url`] accepts: `https`, no user
//!   info, and an address literal only if it is public ([`is_public_ip`]) — reqwest does
//!   not resolve address literals, so they are checked here, before the request;
//! - connects only to addresses that pass the same check *after DNS resolution* (the
//!   client's resolver drops nothing silently: one internal address refuses the whole
//!   name, so a name resolving to both a public and an internal address is refused);
//! - follows no redirect and uses no proxy (either would move the request elsewhere
//!   after the checks);
//! - fails with an [`OutboundError`] whose text is one of a few fixed reasons, never a
//!   status, address or connect error: those are what would tell a scanner something.
//!
//! Loopback (127.0.0.0/8, `::1`, `localhost`, also over plain `http`) is allowed only by
//! [`OutboundPolicy::dangerous_allow_loopback_for_tests`], an operator's decision for
//! test peers on the same machine. IPv4-mapped spellings (`[::ffff:127.0.0.1]`) stay
//! refused even then.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::{is_canonical_loopback, is_public_ip};

/// Where outbound requests may go. The default is [`OutboundPolicy::public_only`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow_loopback: bool,
}

/// Why an outbound request was not made or did not succeed. The `Display` text is a
/// fixed reason, safe to show to the tenant whose configuration caused the request; the
/// detail (status, connect error) is deliberately not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The URL is not a URL.
    #[error("invalid URL")]
    InvalidUrl,
    /// The destination is refused by the policy (scheme, address literal, or an address
    /// the name resolved to).
    #[error("destination not allowed")]
    NotAllowed,
    /// The request failed: no answer, timeout, TLS, a non-success status, a body too
    /// large or not the expected format. Which one is not said.
    #[error("fetch failed")]
    Failed,
}

impl OutboundError {
    /// The error of a failed reqwest request: [`OutboundError::NotAllowed`] when the
    /// policy's resolver refused the name, [`OutboundError::Failed`] otherwise.
    pub fn of(e: &reqwest::Error) -> Self {
        let mut cause: Option<&(dyn StdError + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(refused) = c.downcast_ref::<OutboundError>() {
                return *refused;
            }
            cause = c.source();
        }
        Self::Failed
    }
}

impl OutboundPolicy {
    /// Public destinations only: the production policy.
    pub const fn public_only() -> Self {
        Self {
            allow_loopback: false,
        }
    }

    /// Also allows loopback destinations (127.0.0.0/8, `::1`, `localhost`), over `http`
    /// too. **Dangerous**: with it, whoever configures a URL can reach every service
    /// listening on the server's own machine. For tests whose peers run on loopback,
    /// chosen by the operator (`serve --dangerous-allow-loopback-fetch`), never by a tenant.
    pub const fn dangerous_allow_loopback_for_tests() -> Self {
        Self {
            allow_loopback: true,
        }
    }

    /// Whether loopback destinations are allowed.
    pub const fn allows_loopback(self) -> bool {
        self.allow_loopback
    }

    /// Whether a request may connect to `ip`.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), OutboundError> {
        if is_public_ip(ip) || (self.allow_loopback && is_canonical_loopback(ip)) {
            Ok(())
        } else {
            Err(OutboundError::NotAllowed)
        }
    }

    /// The static half of the policy, for a URL before it is used (and when it is
    /// configured): `https` (plain `http` only to loopback, with loopback allowed), no
    /// user info, and an address literal only if [`OutboundPolicy::check_ip`] accepts
    /// it. Names are checked when they are resolved.
    ///
    /// ```
    /// use procuhelp_core::{OutboundError, OutboundPolicy};
    ///
    /// let policy = OutboundPolicy::public_only();
    /// assert!(policy.check_url("https://login.microsoftonline.com/x/v2.0").is_ok());
    /// for url in ["http://login.example/", "https://127.0.0.1/", "https://[::ffff:127.0.0.1]/",
    ///             "https://169.254.169.254/", "https://user:pw@login.example/"] {
    ///     assert_eq!(policy.check_url(url).unwrap_err(), OutboundError::NotAllowed, "{url}");
    /// }
    /// let tests = OutboundPolicy::dangerous_allow_loopback_for_tests();
    /// assert!(tests.check_url("http://127.0.0.1:8080/").is_ok());
    /// assert!(tests.check_url("http://[::ffff:127.0.0.1]:8080/").is_err());
    /// ```
    pub fn check_url(self, url: &str) -> Result<reqwest::Url, OutboundError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| OutboundError::InvalidUrl)?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundError::NotAllowed);
        }
        let host = parsed.host_str().ok_or(OutboundError::NotAllowed)?;
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        let loopback = match literal {
            Ok(ip) => {
                self.check_ip(ip)?;
                is_canonical_loopback(ip)
            }
            Err(_) => host.eq_ignore_ascii_case("localhost"),
        };
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.allow_loopback && loopback => Ok(parsed),
            _ => Err(OutboundError::NotAllowed),
        }
    }

    /// A client held to this policy. `configure` sets what is the caller's choice (TLS
    /// roots, timeouts); redirects, proxies, the resolver and `https_only` are set after
    /// it, so it cannot undo them.
    pub fn client(
        self,
        configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<OutboundClient, OutboundError> {
        let http = configure(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!self.allow_loopback)
            .dns_resolver(Arc::new(GuardedResolver { policy: self }))
            .build()
            .map_err(|_| OutboundError::Failed)?;
        Ok(OutboundClient { http, policy: self })
    }
}

/// A reqwest client whose every request passes [`OutboundPolicy`]: the URL is checked
/// before the request is built, and names are checked when they are resolved. The inner
/// client is not handed out, so no request can skip the URL check.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    policy: OutboundPolicy,
}

impl OutboundClient {
    /// The policy this client enforces.
    pub fn policy(&self) -> OutboundPolicy {
        self.policy
    }

    /// A request to `url`, refused if the policy refuses the URL.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let url = self.policy.check_url(url)?;
        Ok(self.http.request(method, url))
    }
}

/// The body of `response`, refused when it is longer than `max_bytes` (read no further).
pub async fn read_limited(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, OutboundError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| OutboundError::of(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(OutboundError::Failed);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Resolves with the system resolver, then refuses the name if any address it resolved
/// to is refused by the policy (the request then fails with
/// [`OutboundError::NotAllowed`] in its source chain).
#[derive(Debug)]
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| Box::new(OutboundError::Failed) as Box<dyn StdError + Send + Sync>)?
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(OutboundError::Failed) as Box<dyn StdError + Send + Sync>);
            }
            if addrs.iter().any(|a| policy.check_ip(a.ip()).is_err()) {
                return Err(Box::new(OutboundError::NotAllowed) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let strict = OutboundPolicy::public_only();
        let tests = OutboundPolicy::dangerous_allow_loopback_for_tests();
        assert_eq!(OutboundPolicy::default(), strict);
        for url in [
            "http://login.example/",
            "ftp://login.example/",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[::ffff:7f00:1]/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fd00:ec2::254]/",
            "https://u@login.example/",
            "file:///etc/passwd",
            "http://localhost/",
        ] {
            assert_eq!(
                strict.check_url(url),
                Err(OutboundError::NotAllowed),
                "{url}"
            );
        }
        assert_eq!(
            strict.check_url("not a url"),
            Err(OutboundError::InvalidUrl)
        );
        assert!(
            strict.check_url("https://localhost/").is_ok(),
            "names: checked at resolution"
        );
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
            "https://127.0.0.1/",
        ] {
            assert!(tests.check_url(url).is_ok(), "{url}");
        }
        for url in [
            "http://[::ffff:127.0.0.1]:1/",
            "http://10.0.0.1/",
            "http://login.example/",
        ] {
            assert_eq!(
                tests.check_url(url),
                Err(OutboundError::NotAllowed),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = OutboundPolicy::public_only()
            .client(|b| b.timeout(std::time::Duration::from_secs(5)))
            .unwrap();
        let err = client
            .request(reqwest::Method::GET, &format!("https://localhost:{port}/"))
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            OutboundError::of(&err),
            OutboundError::NotAllowed,
            "{err:?}"
        );
        // Nothing connected.
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "the client connected");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Ok((mut s, _))) =
                tokio::time::timeout(std::time::Duration::from_millis(500), listener.accept()).await
            {
                n += 1;
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nlocation: http://{addr}/again\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
            n
        });
        let client = OutboundPolicy::dangerous_allow_loopback_for_tests()
            .client(|b| b)
            .unwrap();
        let response = client
            .request(reqwest::Method::GET, &format!("http://{addr}/"))
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302);
        assert_eq!(served.await.unwrap(), 1, "the redirect was followed");
    }
}
