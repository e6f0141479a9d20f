//! Small network facts shared by the crates' URL policies, and (feature `outbound`) the
//! policy every fetch to a configured destination goes through.

use std::net::IpAddr;

mod address;
#[cfg(feature = "outbound")]
pub mod outbound;

pub use address::{is_canonical_loopback, is_public_ip};

/// Whether `host` (a URL's host as written: a name, an IPv4 address or a bracketed IPv6
/// address) names this machine: `localhost`, 127.0.0.0/8 or `::1`. The one exception to
/// "https only" in our URL policies (test peers and receivers on loopback).
///
/// ```
/// use procuhelp_core::is_loopback_host;
///
/// assert!(is_loopback_host("127.0.0.1") && is_loopback_host("[::1]") && is_loopback_host("LocalHost"));
/// assert!(!is_loopback_host("10.0.0.1") && !is_loopback_host("localhost.example"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match unbracketed.parse::<IpAddr>() {
        Ok(ip) => is_canonical_loopback(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}
