//! Which address a request comes from, behind load balancers too.
//!
//! The address feeds the sign-in throttle (per-address limits) and the audit trail, so a
//! client must not be able to choose it. `X-Forwarded-For` is a list that every proxy
//! appends the peer it saw to; everything left of the last entry a proxy *we* trust wrote
//! is whatever the client sent. So the header is read only when the TCP peer itself is a
//! trusted proxy, and then from the right: the first entry that is not a trusted proxy is
//! the client. With no trusted proxy configured, forwarded headers are ignored entirely.
//! (`Forwarded`, RFC 7239, is not read: a proxy that writes only that is not supported.)

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::http::HeaderMap;

/// The header proxies append the client's address to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// At most this many `X-Forwarded-For` entries are looked at (from the right): a chain of
/// trusted proxies is short, and the header's length is the client's to choose.
const MAX_HOPS: usize = 16;

/// An address range such as `10.0.0.0/8` or `fd00::/8`; a bare address is a range of one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a range could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("not an address range (expected e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.7)")]
pub struct BadCidr;

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| BadCidr)?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `+8` and ` 8` are not prefixes.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| BadCidr)?
            }
            Some(_) => return Err(BadCidr),
            None => max,
        };
        if prefix > max {
            return Err(BadCidr);
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Cidr {
    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` entries are believed (`serve --trusted-proxy`).
/// Empty by default: then forwarded headers are ignored.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[Cidr]>);

impl TrustedProxies {
    /// Trusts the given ranges.
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges.into())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address for a request that arrived from `peer`.
///
/// `peer` unless it is a trusted proxy; then the right-most `X-Forwarded-For` entry that
/// is not a trusted proxy. If the chain holds nothing usable (no header, an entry that is
/// not an address, only trusted proxies), the last trusted hop is answered: never an
/// address the client could have made up.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.trusts(client) {
        return client;
    }
    // Several header lines are one comma-separated list, in order. Split the raw bytes:
    // a client's non-ASCII junk at the left of a line must not blank out the entries the
    // proxies appended to its right (each entry is judged on its own below).
    let entries: Vec<&[u8]> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .collect();
    for entry in entries.iter().rev().take(MAX_HOPS) {
        // An entry this trusted hop wrote that is not an address: nothing further left is
        // believable either.
        let Some(hop) = parse_entry(entry) else {
            return client;
        };
        client = hop;
        if !trusted.trusts(hop) {
            return hop;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.7:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(FORWARDED_FOR, v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_forwarded_headers_are_ignored() {
        let headers = xff(&["198.51.100.9"]);
        let none = TrustedProxies::default();
        assert_eq!(
            client_addr(ip("203.0.113.5"), &headers, &none),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let headers = xff(&["198.51.100.9"]);
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_addr(ip("203.0.113.5"), &headers, &t),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        // The client claimed 1.1.1.1; the load balancer appended what it saw.
        let headers = xff(&["1.1.1.1, 198.51.100.9"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers, &t),
            ip("198.51.100.9")
        );
        // Two trusted hops; several header lines are one list.
        let headers = xff(&["1.1.1.1", "198.51.100.9, 10.1.2.3"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers, &t),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn unusable_chains_answer_the_last_trusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &xff(&[]), &t), ip("10.0.0.2"));
        // Garbage where the trusted hop's entry should be: not believed, nor anything left.
        let headers = xff(&["198.51.100.9, not-an-ip"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &headers, &t), ip("10.0.0.2"));
        let headers = xff(&["198.51.100.9, unknown, 10.4.4.4"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &headers, &t), ip("10.4.4.4"));
        // Only trusted hops: the furthest one seen.
        let headers = xff(&["10.9.9.9, 10.4.4.4"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &headers, &t), ip("10.9.9.9"));
        // A header that is not text.
        let mut headers = HeaderMap::new();
        headers.insert(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"\xff198.51.100.9").unwrap(),
        );
        assert_eq!(client_addr(ip("10.0.0.2"), &headers, &t), ip("10.0.0.2"));
        // The client's non-text junk on the line the proxy appended to: the proxy's entry
        // still names the client (not the proxy, which would throttle everyone behind it).
        let mut headers = HeaderMap::new();
        headers.insert(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"\xff, 198.51.100.9").unwrap(),
        );
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers, &t),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn a_long_chain_is_not_walked_past_the_hop_limit() {
        let t = trusted(&["10.0.0.0/8"]);
        let mut chain = vec!["198.51.100.9"];
        chain.extend(std::iter::repeat_n("10.1.1.1", MAX_HOPS));
        let headers = xff(&[chain.join(",").as_str()]);
        assert_eq!(client_addr(ip("10.0.0.2"), &headers, &t), ip("10.1.1.1"));
    }

    #[test]
    fn ports_ipv6_and_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8", "fd00::/8"]);
        let headers = xff(&["[2001:db8::7]:4711"]);
        assert_eq!(client_addr(ip("fd00::1"), &headers, &t), ip("2001:db8::7"));
        let headers = xff(&["198.51.100.9:4711"]);
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6.
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.2"), &headers, &t),
            ip("198.51.100.9")
        );
        let headers = xff(&["::ffff:198.51.100.9"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers, &t),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn ranges_parse_strictly_and_match_by_prefix() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "10/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let r: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(r.contains(ip("192.0.2.255")) && !r.contains(ip("192.0.3.0")));
        assert!(r.contains(ip("::ffff:192.0.2.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("2001:db8::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fdff::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!(one.to_string(), "192.0.2.7/32");
    }
}
