//! The IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates), as
//! RFC 6052 §3.1 needs it: which IPv4 addresses are not global.
//!
//! RFC 6052 §3.1: "The Well-Known Prefix MUST NOT be used to represent
//! non-global IPv4 addresses, such as those defined in \[RFC1918\] or listed in
//! Section 3 of \[RFC5735\]. Address translators MUST NOT translate packets in
//! which an address is composed of the Well-Known Prefix and a non-global
//! IPv4 address; they MUST drop these packets."
//!
//! Source: IANA "IPv4 Special-Purpose Address Registry"
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>),
//! "Globally Reachable" column, as established by RFC 6890 §2.2.2 and updated
//! by RFC 7526 (6to4 relay deprecated), RFC 7723 (PCP anycast), RFC 8155
//! (TURN anycast), RFC 7535 (AS112-v4), RFC 7450 (AMT) and RFC 7050/8880
//! (ipv4only.arpa). Entries whose "Globally Reachable" is False:
//!
//! | block | name | RFC |
//! |---|---|---|
//! | 0.0.0.0/8 | "This network" | RFC 791 §3.2 |
//! | 10.0.0.0/8 | Private-Use | RFC 1918 |
//! | 100.64.0.0/10 | Shared Address Space | RFC 6598 |
//! | 127.0.0.0/8 | Loopback | RFC 1122 §3.2.1.3 |
//! | 169.254.0.0/16 | Link Local | RFC 3927 |
//! | 172.16.0.0/12 | Private-Use | RFC 1918 |
//! | 192.0.0.0/24 | IETF Protocol Assignments (incl. /29 DS-Lite, .8 dummy, .170/.171 NAT64 discovery) | RFC 6890 |
//! | 192.0.2.0/24 | Documentation (TEST-NET-1) | RFC 5737 |
//! | 192.88.99.0/24 | Deprecated (6to4 Relay Anycast) | RFC 7526 |
//! | 192.168.0.0/16 | Private-Use | RFC 1918 |
//! | 198.18.0.0/15 | Benchmarking | RFC 2544 |
//! | 198.51.100.0/24 | Documentation (TEST-NET-2) | RFC 5737 |
//! | 203.0.113.0/24 | Documentation (TEST-NET-3) | RFC 5737 |
//! | 240.0.0.0/4 | Reserved | RFC 1112 §4 |
//! | 255.255.255.255/32 | Limited Broadcast | RFC 8190, RFC 919 §7 |
//!
//! Globally reachable (True) inside the blocks above or on their own, hence
//! allowed: 192.0.0.9/32 (PCP anycast, RFC 7723), 192.0.0.10/32 (TURN
//! anycast, RFC 8155), 192.31.196.0/24 (AS112-v4, RFC 7535),
//! 192.52.193.0/24 (AMT, RFC 7450), 192.175.48.0/24 (Direct Delegation AS112,
//! RFC 7534).
//!
//! 192.88.99.0/24: the registry keeps the row only as "Deprecated" (RFC 7526
//! §5, no longer a valid anycast service); it is treated as not global.
//!
//! Not in the registry but excluded too: 224.0.0.0/4 multicast (RFC 5771),
//! which is not a unicast address to translate to.
//!
//! Exception: 192.0.0.170 and 192.0.0.171 are not global, yet DNS64 and the
//! translator must use them with every prefix, the well-known one included
//! (RFC 7050 §2.2, RFC 8880 §7.2).

use std::net::Ipv4Addr;

/// Blocks that are not globally reachable, as (network, prefix length).
const NOT_GLOBAL: [(Ipv4Addr, u8); 16] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
    (Ipv4Addr::new(255, 255, 255, 255), 32),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
];

/// Globally reachable addresses carved out of a block in [`NOT_GLOBAL`],
/// plus the RFC 7050 / RFC 8880 discovery addresses.
const ALLOWED_EXCEPTIONS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(192, 0, 0, 9),
    Ipv4Addr::new(192, 0, 0, 10),
    Ipv4Addr::new(192, 0, 0, 170),
    Ipv4Addr::new(192, 0, 0, 171),
];

fn in_block(addr: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(addr) & mask == u32::from(net) & mask
}

/// True when `addr` may be embedded under the well-known prefix: it is
/// globally reachable per the IANA special-purpose registry, or it is
/// 192.0.0.170 / 192.0.0.171 (RFC 7050 §2.2, RFC 8880).
pub fn allowed_under_well_known(addr: Ipv4Addr) -> bool {
    if ALLOWED_EXCEPTIONS.contains(&addr) {
        return true;
    }
    !NOT_GLOBAL
        .iter()
        .any(|&(net, len)| in_block(addr, net, len))
}

/// Whether `addr` names no single unicast host anywhere (RFC 1122 §3.2.1.3,
/// RFC 5771, RFC 1112 §4): "this network" (0.0.0.0/8), loopback
/// (127.0.0.0/8), multicast (224.0.0.0/4), reserved class E (240.0.0.0/4)
/// and the limited broadcast (255.255.255.255, inside class E). Such an
/// address is never translated to or from, and never answered.
pub fn never_a_host(addr: Ipv4Addr) -> bool {
    let first = addr.octets()[0];
    first == 0 || first == 127 || first >= 224
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn not_global_blocks_rejected() {
        for s in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.1",
            "192.0.0.8",
            "192.0.0.255",
            "192.0.2.33",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!allowed_under_well_known(a(s)), "{s} must be rejected");
        }
    }

    #[test]
    fn global_addresses_allowed() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "192.175.48.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(allowed_under_well_known(a(s)), "{s} must be allowed");
        }
    }

    /// Registry: 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN anycast) are global.
    #[test]
    fn anycast_exceptions_in_192_0_0_0_24() {
        assert!(allowed_under_well_known(a("192.0.0.9")));
        assert!(allowed_under_well_known(a("192.0.0.10")));
    }

    /// RFC 7050 §2.2 / RFC 8880: ipv4only.arpa addresses are always allowed.
    #[test]
    fn ipv4only_arpa_allowed() {
        assert!(allowed_under_well_known(a("192.0.0.170")));
        assert!(allowed_under_well_known(a("192.0.0.171")));
        assert!(!allowed_under_well_known(a("192.0.0.172")));
    }
}
