//! Sets of client addresses: who may query (`allow`) and who gets
//! synthesized answers (`synthesize-for`, RFC 6147 §5.1); and who counts
//! as one client for per-client limits ([`ClientId`]).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default of `allow`: loopback, link-local, unique local (RFC 4193)
/// and private IPv4 (RFC 1918) sources, never the open Internet (an open
/// resolver is an amplifier for anyone).
pub const DEFAULT_ALLOW: [IpNet; 8] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
    )),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
    )),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16)),
];

/// Every address, IPv4 and IPv6: the default of `synthesize-for`.
pub const EVERYONE: [IpNet; 2] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0)),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0)),
];

/// A set of client networks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientSet {
    nets: Vec<IpNet>,
}

impl ClientSet {
    /// The set of these networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        ClientSet {
            nets: nets.into_iter().collect(),
        }
    }

    /// True when `addr` is in one of the networks. An IPv4-mapped IPv6
    /// address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
    /// IPv4 client) is matched as the IPv4 address it carries.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&addr))
    }
}

/// The default length of the IPv6 prefix that counts as one client for
/// per-client limits: a /64 is one subscriber's LAN (RFC 6177) or one
/// phone (RFC 7278), and a host picks new addresses inside it at will
/// (RFC 8981), so a per-address limit would be no limit.
pub const DEFAULT_CLIENT_PREFIX_V6: u8 = 64;

/// One client, for per-client limits (TCP connections, query rate): an
/// IPv4 address, or an IPv6 address's first `prefix` bits. An IPv4-mapped
/// IPv6 address counts as the IPv4 address it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(IpAddr);

impl ClientId {
    /// The client `addr` belongs to, IPv6 addresses grouped by their first
    /// `v6_prefix` bits (at most 128).
    pub fn new(addr: IpAddr, v6_prefix: u8) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u32::from(v6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
                }
            },
            v4 => v4,
        };
        ClientId(addr)
    }

    /// The client's address or network address, as the key of a table.
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_allow_is_local_networks_only() {
        let allow = ClientSet::new(DEFAULT_ALLOW);
        for ok in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "fd00::1",
            "10.1.1.1",
            "172.31.0.1",
            "192.168.1.1",
        ] {
            assert!(allow.contains(ip(ok)), "{ok}");
        }
        for no in ["8.8.8.8", "2001:db8::1", "2a00::1", "172.32.0.1", "::"] {
            assert!(!allow.contains(ip(no)), "{no}");
        }
    }

    #[test]
    fn ipv4_mapped_source_matched_as_ipv4() {
        let allow = ClientSet::new(DEFAULT_ALLOW);
        assert!(allow.contains(ip("::ffff:192.168.1.1")));
        assert!(allow.contains(ip("::ffff:127.0.0.1")));
        assert!(!allow.contains(ip("::ffff:8.8.8.8")));
        let only_v6 = ClientSet::new(["::/0".parse().unwrap()]);
        assert!(!only_v6.contains(ip("::ffff:10.0.0.1")));
        assert!(ClientSet::new(EVERYONE).contains(ip("::ffff:8.8.8.8")));
    }

    #[test]
    fn client_id_groups_ipv6_by_prefix_and_keeps_ipv4_whole() {
        let id = |a: &str, p: u8| ClientId::new(ip(a), p);
        assert_eq!(id("2001:db8:1:2::1", 64), id("2001:db8:1:2:ffff::9", 64));
        assert_ne!(id("2001:db8:1:2::1", 64), id("2001:db8:1:3::1", 64));
        assert_ne!(id("2001:db8:1:2::1", 128), id("2001:db8:1:2::2", 128));
        assert_eq!(id("2001:db8::1", 0), id("fd00::1", 0));
        assert_eq!(id("2001:db8::1", 200), id("2001:db8::1", 128));
        assert_ne!(id("192.0.2.1", 64), id("192.0.2.2", 64));
        assert_eq!(id("::ffff:192.0.2.1", 64), id("192.0.2.1", 8));
        assert_eq!(id("2001:db8:1:2::1", 64).addr(), ip("2001:db8:1:2::"));
    }
}
