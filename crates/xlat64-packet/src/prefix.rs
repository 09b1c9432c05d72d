//! RFC 6052 IPv4-embedded IPv6 addresses.

use ipnet::Ipv6Net;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An RFC 6052 §2.2 translation prefix: /32, /40, /48, /56, /64 or /96.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix6052 {
    net: Ipv6Net,
}

/// Why an IPv6 prefix cannot be used as an RFC 6052 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Only /32, /40, /48, /56, /64 and /96 are defined (RFC 6052 §2.2).
    #[error("prefix length /{0} is not one of /32, /40, /48, /56, /64, /96 (RFC 6052 section 2.2)")]
    BadLength(u8),
    /// Bits 64..71 (the u-octet) must be zero (RFC 6052 §2.2).
    #[error("bits 64 to 71 (the u-octet) of the prefix must be zero (RFC 6052 section 2.2)")]
    NonZeroUOctet,
}

impl Prefix6052 {
    /// The well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
    pub const WELL_KNOWN: Prefix6052 = Prefix6052 {
        net: Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    };

    /// Validates `net` as a translation prefix; host bits are cleared.
    pub fn new(net: Ipv6Net) -> Result<Self, PrefixError> {
        todo!()
    }

    /// The prefix as a network.
    pub fn net(&self) -> Ipv6Net {
        self.net
    }

    /// True for 64:ff9b::/96, which must not carry non-global IPv4 (RFC 6052 §3.1).
    pub fn is_well_known(&self) -> bool {
        todo!()
    }

    /// Whether `addr` lies under this prefix.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        todo!()
    }

    /// Embeds `v4` under the prefix (RFC 6052 §2.2); u-octet and suffix zero.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        todo!()
    }

    /// Extracts the embedded IPv4 address, or `None` when `addr` is not under
    /// the prefix. The u-octet and suffix are ignored (RFC 6052 §2.2).
    pub fn extract(&self, addr: &Ipv6Addr) -> Option<Ipv4Addr> {
        todo!()
    }
}
