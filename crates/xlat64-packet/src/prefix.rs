//! RFC 6052 IPv4-embedded IPv6 addresses.
//!
//! RFC 6052 §2.2: "Bits 64 to 71 of the address are reserved for
//! compatibility with the host identifier format defined in the IPv6
//! addressing architecture \[RFC4291\]. These bits MUST be set to zero."
//! The IPv4 address is split around those bits for prefixes shorter than /64,
//! and the suffix after it is zero on output and ignored on input.

use ipnet::Ipv6Net;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Byte index of bits 64..71, the u-octet (RFC 6052 §2.2).
const U_OCTET: usize = 8;

/// An RFC 6052 §2.2 translation prefix: /32, /40, /48, /56, /64 or /96.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix6052 {
    net: Ipv6Net,
}

/// Why an IPv6 prefix cannot be used as an RFC 6052 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Only /32, /40, /48, /56, /64 and /96 are defined (RFC 6052 §2.2).
    #[error(
        "prefix length /{0} is not one of /32, /40, /48, /56, /64, /96 (RFC 6052 section 2.2)"
    )]
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

    /// Validates `net` as a translation prefix (RFC 6052 §2.2: length and
    /// u-octet); host bits are cleared.
    pub fn new(net: Ipv6Net) -> Result<Self, PrefixError> {
        let len = net.prefix_len();
        if !matches!(len, 32 | 40 | 48 | 56 | 64 | 96) {
            return Err(PrefixError::BadLength(len));
        }
        let net = net.trunc();
        // Only a /96 keeps bits 64..71 after truncation; they must be zero.
        if net.addr().octets()[U_OCTET] != 0 {
            return Err(PrefixError::NonZeroUOctet);
        }
        Ok(Prefix6052 { net })
    }

    /// Byte offsets of the four IPv4 octets in the IPv6 address, skipping
    /// the u-octet (byte 8): the RFC 6052 §2.2 figure.
    fn layout(&self) -> [usize; 4] {
        match self.net.prefix_len() {
            32 => [4, 5, 6, 7],
            40 => [5, 6, 7, 9],
            48 => [6, 7, 9, 10],
            56 => [7, 9, 10, 11],
            64 => [9, 10, 11, 12],
            // 96, the only other length `new` admits.
            _ => [12, 13, 14, 15],
        }
    }

    /// The prefix as a network.
    pub fn net(&self) -> Ipv6Net {
        self.net
    }

    /// True for 64:ff9b::/96, which must not carry non-global IPv4 (RFC 6052 §3.1).
    pub fn is_well_known(&self) -> bool {
        *self == Self::WELL_KNOWN
    }

    /// Whether `addr` lies under this prefix (RFC 6052 §2.2). One masked
    /// 128-bit compare: it runs several times per packet.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.net.prefix_len()))
            .unwrap_or(0);
        u128::from(*addr) & mask == u128::from(self.net.network())
    }

    /// Embeds `v4` under the prefix (RFC 6052 §2.2); u-octet and suffix zero.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = self.net.network().octets();
        for (p, b) in self.layout().into_iter().zip(v4.octets()) {
            out[p] = b;
        }
        Ipv6Addr::from(out)
    }

    /// Extracts the embedded IPv4 address, or `None` when `addr` is not under
    /// the prefix. The u-octet and suffix are ignored (RFC 6052 §2.2).
    pub fn extract(&self, addr: &Ipv6Addr) -> Option<Ipv4Addr> {
        if !self.contains(addr) {
            return None;
        }
        let pos = self.layout();
        let o = addr.octets();
        Some(Ipv4Addr::new(o[pos[0]], o[pos[1]], o[pos[2]], o[pos[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix6052 {
        Prefix6052::new(s.parse().unwrap()).unwrap()
    }

    /// RFC 6052 §2.4, Table 1: 192.0.2.33 under each prefix length.
    #[test]
    fn rfc6052_section2_4_examples() {
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        let table = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ];
        for (prefix, expected) in table {
            let prefix = p(prefix);
            let expected: Ipv6Addr = expected.parse().unwrap();
            assert_eq!(prefix.embed(v4), expected, "embed under {prefix:?}");
            assert_eq!(
                prefix.extract(&expected),
                Some(v4),
                "extract under {prefix:?}"
            );
        }
    }

    #[test]
    fn well_known() {
        assert!(Prefix6052::WELL_KNOWN.is_well_known());
        assert!(p("64:ff9b::/96").is_well_known());
        assert!(!p("64:ff9b:1::/48").is_well_known());
        assert!(!p("2001:db8::/96").is_well_known());
        assert_eq!(
            Prefix6052::WELL_KNOWN.net(),
            "64:ff9b::/96".parse().unwrap()
        );
    }

    #[test]
    fn bad_lengths_rejected() {
        for len in (0..=128u8).filter(|l| ![32, 40, 48, 56, 64, 96].contains(l)) {
            let net = Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), len).unwrap();
            assert_eq!(Prefix6052::new(net), Err(PrefixError::BadLength(len)));
        }
    }

    /// RFC 6052 §2.2: bits 64..71 must be zero.
    #[test]
    fn u_octet_rejected() {
        let net: Ipv6Net = "2001:db8:0:0:100::/96".parse().unwrap();
        assert_eq!(Prefix6052::new(net), Err(PrefixError::NonZeroUOctet));
        let net: Ipv6Net = "2001:db8:0:0:ff00::/96".parse().unwrap();
        assert_eq!(Prefix6052::new(net), Err(PrefixError::NonZeroUOctet));
        // Bits 72.. of a /96 are not the u-octet.
        assert!(Prefix6052::new("2001:db8:0:0:ff::/96".parse().unwrap()).is_ok());
    }

    #[test]
    fn host_bits_cleared() {
        let prefix = p("2001:db8:1:2:3::/32");
        assert_eq!(prefix.net(), "2001:db8::/32".parse().unwrap());
        let prefix = p("2001:db8::ffff:1/64");
        assert_eq!(prefix.net(), "2001:db8::/64".parse().unwrap());
    }

    #[test]
    fn contains_and_extract_outside() {
        let prefix = p("2001:db8::/32");
        assert!(prefix.contains(&"2001:db8:ffff::1".parse().unwrap()));
        assert!(!prefix.contains(&"2001:db9::1".parse().unwrap()));
        assert_eq!(prefix.extract(&"2001:db9::1".parse().unwrap()), None);
    }

    const LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

    fn prefix_of(bits: u128, len: u8) -> Prefix6052 {
        // Clear the u-octet so every length is admissible.
        let bits = bits & !(0xffu128 << 56);
        Prefix6052::new(Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap()).unwrap()
    }

    proptest! {
        #[test]
        fn embed_extract_round_trip(bits: u128, li in 0..6usize, v4: u32) {
            let prefix = prefix_of(bits, LENGTHS[li]);
            let v4 = Ipv4Addr::from(v4);
            let addr = prefix.embed(v4);
            prop_assert!(prefix.contains(&addr));
            prop_assert_eq!(prefix.extract(&addr), Some(v4));
            // u-octet and suffix are zero on output.
            let o = addr.octets();
            prop_assert_eq!(o[8], 0);
            let end = match LENGTHS[li] { 32 => 8, 40 => 10, 48 => 11, 56 => 12, 64 => 13, _ => 16 };
            prop_assert!(o[end..].iter().all(|&b| b == 0));
        }

        /// RFC 6052 §2.2: the u-octet and suffix are ignored on input.
        #[test]
        fn suffix_and_u_octet_ignored(bits: u128, li in 0..6usize, v4: u32, noise: u128) {
            let len = LENGTHS[li];
            let prefix = prefix_of(bits, len);
            let v4 = Ipv4Addr::from(v4);
            let clean = u128::from(prefix.embed(v4));
            // Noise only where neither the prefix nor the IPv4 bytes are.
            let mut mask = [0u8; 16];
            if len != 96 {
                mask[8] = 0xff;
            }
            let end = match len { 32 => 8, 40 => 10, 48 => 11, 56 => 12, 64 => 13, _ => 16 };
            for b in &mut mask[end..] { *b = 0xff; }
            let noisy = Ipv6Addr::from(clean | (noise & u128::from_be_bytes(mask)));
            prop_assert_eq!(prefix.extract(&noisy), Some(v4));
        }
    }
}
