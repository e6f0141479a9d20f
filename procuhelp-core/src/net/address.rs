//! Which IP addresses are on the public internet.
//!
//! A fetch the server makes on a tenant's behalf must not reach the server's own network
//! (its vault on loopback, its database, the cloud metadata service). This module is the
//! one place that decides which addresses count as "public": everything not listed as
//! public is refused (fail closed), so a range we forgot is refused, not allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a globally routed unicast address: not loopback, unspecified, private
/// (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 — the metadata service
/// 169.254.169.254 — and fe80::/10), shared (CGNAT 100.64/10), multicast, broadcast,
/// reserved, benchmarking or documentation. An IPv6 address that embeds an IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`) is public only if the embedded address is; Teredo and the rest of
/// 2001::/23 are refused. Outside 2000::/3 no IPv6 address is public.
///
/// ```
/// use procuhelp_core::is_public_ip;
///
/// assert!(is_public_ip("93.184.215.14".parse().unwrap()));
/// assert!(!is_public_ip("169.254.169.254".parse().unwrap()));
/// assert!(!is_public_ip("::ffff:127.0.0.1".parse().unwrap()));
/// ```
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// Whether `ip` is this machine in its canonical spelling: 127.0.0.0/8 or `::1`. IPv4
/// addresses embedded in IPv6 (`::ffff:127.0.0.1`) are deliberately not included: no
/// legitimate peer is written that way, so they stay refused even where loopback is
/// allowed for tests.
pub fn is_canonical_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (DS-Lite, NAT64 discovery)
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    // Only global unicast (2000::/3) can be public.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let refused = match s[0] {
        // 2001::/23 (Teredo, benchmarking, ORCHID) and 2001:db8::/32 (documentation).
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 3fff::/20: documentation.
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !refused
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`, deprecated; `::` and `::1` excluded),
/// NAT64 well-known prefix (`64:ff9b::/96`) and 6to4 (`2002::/16`). The local-use NAT64
/// prefix `64:ff9b:1::/48` is not global unicast and so is refused anyway.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn internal_ranges_are_not_public() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "1::1",
            "4000::1",
        ] {
            assert!(!is_public_ip(ip(s)), "{s} counted as public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "20.190.128.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2620:1ec:c11::200",
            "2a01:111:f400::1",
            "2001:200::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "3ffe::1",
        ] {
            assert!(is_public_ip(ip(s)), "{s} refused");
        }
    }

    #[test]
    fn only_canonical_loopback_is_loopback() {
        assert!(is_canonical_loopback(ip("127.0.0.1")));
        assert!(is_canonical_loopback(ip("127.9.9.9")));
        assert!(is_canonical_loopback(ip("::1")));
        assert!(!is_canonical_loopback(ip("::ffff:127.0.0.1")));
        assert!(!is_canonical_loopback(ip("::127.0.0.1")));
        assert!(!is_canonical_loopback(ip("10.0.0.1")));
    }

    proptest! {
        /// Every IPv6 spelling that embeds an IPv4 address is judged by that address.
        #[test]
        fn embedded_ipv4_is_judged_as_ipv4(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            let [a, b, c, d] = v4.octets();
            let hi = u16::from_be_bytes([a, b]);
            let lo = u16::from_be_bytes([c, d]);
            let expected = is_public_v4(v4);
            prop_assert_eq!(is_public_ip(IpAddr::V6(v4.to_ipv6_mapped())), expected);
            prop_assert_eq!(is_public_ip(IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo))), expected);
            prop_assert_eq!(is_public_ip(IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1))), expected);
            if raw > 1 {
                prop_assert_eq!(is_public_ip(IpAddr::V6(v4.to_ipv6_compatible())), expected);
            }
        }

        /// Every private, loopback and link-local IPv4 address, in any of its IPv6
        /// spellings, is refused.
        #[test]
        fn internal_ipv4_is_refused_in_every_spelling(
            net in prop_oneof![Just([10u8, 0]), Just([127, 0]), Just([169, 254]), Just([192, 168]), Just([172, 16]), Just([100, 64])],
            rest in any::<[u8; 2]>(),
        ) {
            let v4 = Ipv4Addr::new(net[0], net[1], rest[0], rest[1]);
            prop_assert!(!is_public_ip(IpAddr::V4(v4)));
            prop_assert!(!is_public_ip(IpAddr::V6(v4.to_ipv6_mapped())));
            prop_assert!(!is_public_ip(IpAddr::V6(v4.to_ipv6_compatible())));
        }
    }
}
