//! ICMP type, code and parameter mapping between ICMPv4 and ICMPv6
//! (RFC 7915 §4.2 and §5.2), and the MTU arithmetic of path-MTU discovery.
//!
//! Each function returns `None` where the RFC says to drop the message
//! silently.

/// ICMPv4 types (RFC 792, RFC 1191, RFC 4884).
pub mod v4 {
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Destination Unreachable codes used by the gateway.
    pub mod code {
        /// Host Unreachable.
        pub const HOST_UNREACHABLE: u8 = 1;
        /// Protocol Unreachable.
        pub const PROTOCOL_UNREACHABLE: u8 = 2;
        /// Port Unreachable.
        pub const PORT_UNREACHABLE: u8 = 3;
        /// Fragmentation Needed and DF set (RFC 1191).
        pub const FRAGMENTATION_NEEDED: u8 = 4;
        /// Source Route Failed.
        pub const SOURCE_ROUTE_FAILED: u8 = 5;
        /// Communication with Destination Host is Administratively Prohibited.
        pub const HOST_ADMIN_PROHIBITED: u8 = 10;
    }
}

/// ICMPv6 types (RFC 4443).
pub mod v6 {
    /// Destination Unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet Too Big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem.
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Codes used by the gateway.
    pub mod code {
        /// Destination Unreachable: no route to destination.
        pub const NO_ROUTE: u8 = 0;
        /// Destination Unreachable: administratively prohibited.
        pub const ADMIN_PROHIBITED: u8 = 1;
        /// Destination Unreachable: address unreachable.
        pub const ADDRESS_UNREACHABLE: u8 = 3;
        /// Destination Unreachable: port unreachable.
        pub const PORT_UNREACHABLE: u8 = 4;
        /// Parameter Problem: erroneous header field.
        pub const ERRONEOUS_FIELD: u8 = 0;
        /// Parameter Problem: unrecognized Next Header.
        pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
    }
}

/// An ICMP error's type, code and the 32-bit field after the checksum
/// (pointer, MTU or unused), on the other side of the translator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// What the mapping says for bytes 4..8: `Pointer` and `Mtu` are
    /// computed here or by the caller, `Unused` is zero.
    pub param: Param,
}

/// Bytes 4..8 of a translated ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Zero (RFC 4884 may put a length attribute in it).
    Unused,
    /// A Parameter Problem pointer (already mapped).
    Pointer(u8),
    /// Packet Too Big / Fragmentation Needed: the MTU is for the caller.
    Mtu,
}

/// RFC 7915 §4.2: an ICMPv4 error (Destination Unreachable, Time Exceeded,
/// Parameter Problem with `pointer`) as ICMPv6, or `None` (silently dropped).
pub fn error_4to6(icmp_type: u8, code: u8, pointer: u8) -> Option<Mapped> {
    let m = |icmp_type, code, param| {
        Some(Mapped {
            icmp_type,
            code,
            param,
        })
    };
    match (icmp_type, code) {
        // Net/host unreachable, source route failed, unknown, isolated, TOS.
        (v4::DEST_UNREACHABLE, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => {
            m(v6::DEST_UNREACHABLE, v6::code::NO_ROUTE, Param::Unused)
        }
        // Protocol unreachable: Parameter Problem, unrecognized Next Header,
        // pointing at the Next Header field.
        (v4::DEST_UNREACHABLE, 2) => m(
            v6::PARAMETER_PROBLEM,
            v6::code::UNRECOGNIZED_NEXT_HEADER,
            Param::Pointer(6),
        ),
        (v4::DEST_UNREACHABLE, 3) => m(
            v6::DEST_UNREACHABLE,
            v6::code::PORT_UNREACHABLE,
            Param::Unused,
        ),
        (v4::DEST_UNREACHABLE, 4) => m(v6::PACKET_TOO_BIG, 0, Param::Mtu),
        // Administratively prohibited, precedence cutoff.
        (v4::DEST_UNREACHABLE, 9 | 10 | 13 | 15) => m(
            v6::DEST_UNREACHABLE,
            v6::code::ADMIN_PROHIBITED,
            Param::Unused,
        ),
        (v4::TIME_EXCEEDED, 0 | 1) => m(v6::TIME_EXCEEDED, code, Param::Unused),
        // Pointer indicates the error, bad length.
        (v4::PARAMETER_PROBLEM, 0 | 2) => m(
            v6::PARAMETER_PROBLEM,
            v6::code::ERRONEOUS_FIELD,
            Param::Pointer(pointer_4to6(pointer)?),
        ),
        // Host precedence violation (3/14), missing required option (12/1),
        // and every other code.
        _ => None,
    }
}

/// RFC 7915 §5.2: an ICMPv6 error as ICMPv4, or `None` (silently dropped).
pub fn error_6to4(icmp_type: u8, code: u8, pointer: u32) -> Option<Mapped> {
    let m = |icmp_type, code, param| {
        Some(Mapped {
            icmp_type,
            code,
            param,
        })
    };
    match (icmp_type, code) {
        // No route, beyond scope of source address, address unreachable.
        (v6::DEST_UNREACHABLE, 0 | 2 | 3) => m(
            v4::DEST_UNREACHABLE,
            v4::code::HOST_UNREACHABLE,
            Param::Unused,
        ),
        (v6::DEST_UNREACHABLE, 1) => m(
            v4::DEST_UNREACHABLE,
            v4::code::HOST_ADMIN_PROHIBITED,
            Param::Unused,
        ),
        (v6::DEST_UNREACHABLE, 4) => m(
            v4::DEST_UNREACHABLE,
            v4::code::PORT_UNREACHABLE,
            Param::Unused,
        ),
        (v6::PACKET_TOO_BIG, 0) => m(
            v4::DEST_UNREACHABLE,
            v4::code::FRAGMENTATION_NEEDED,
            Param::Mtu,
        ),
        (v6::TIME_EXCEEDED, 0 | 1) => m(v4::TIME_EXCEEDED, code, Param::Unused),
        (v6::PARAMETER_PROBLEM, 0) => m(
            v4::PARAMETER_PROBLEM,
            0,
            Param::Pointer(pointer_6to4(pointer)?),
        ),
        (v6::PARAMETER_PROBLEM, 1) => m(
            v4::DEST_UNREACHABLE,
            v4::code::PROTOCOL_UNREACHABLE,
            Param::Unused,
        ),
        _ => None,
    }
}

/// RFC 7915 §4.2 Figure 3: an IPv4 header offset as the IPv6 header offset
/// of the same field; `None` for fields IPv6 does not have.
pub fn pointer_4to6(p: u8) -> Option<u8> {
    match p {
        0 => Some(0),        // Version/IHL -> Version/Traffic Class
        1 => Some(1),        // Type of Service -> Traffic Class/Flow Label
        2 | 3 => Some(4),    // Total Length -> Payload Length
        8 => Some(7),        // Time to Live -> Hop Limit
        9 => Some(6),        // Protocol -> Next Header
        12..=15 => Some(8),  // Source Address
        16..=19 => Some(24), // Destination Address
        _ => None,           // Identification, Flags/Offset, Checksum, options
    }
}

/// RFC 7915 §5.2 Figure 6: an IPv6 header offset as the IPv4 header offset
/// of the same field; `None` for fields IPv4 does not have.
pub fn pointer_6to4(p: u32) -> Option<u8> {
    match p {
        0 => Some(0),        // Version/Traffic Class -> Version/IHL, Type of Service
        1 => Some(1),        // Traffic Class/Flow Label -> Type of Service
        4 | 5 => Some(2),    // Payload Length -> Total Length
        6 => Some(9),        // Next Header -> Protocol
        7 => Some(8),        // Hop Limit -> Time to Live
        8..=23 => Some(12),  // Source Address
        24..=39 => Some(16), // Destination Address
        _ => None,           // Flow Label, anything past the fixed header
    }
}

/// RFC 1191 §7 Table 7-1: the plateaus used to guess the MTU when a router
/// sends Fragmentation Needed with a zero Next-Hop MTU.
pub const MTU_PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// The IPv6 minimum MTU (RFC 8200 §5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// RFC 7915 §4.2: the Packet Too Big MTU for a Fragmentation Needed with
/// Next-Hop MTU `mtu4` (0: estimated from `quoted_total_len`, the Total
/// Length of the quoted packet, by the RFC 1191 plateaus), given the MTU of
/// the translator's own IPv6 side `ipv6_mtu`: the IPv4 MTU plus the 20 bytes
/// the larger header takes, never above the translator's IPv6 MTU, never
/// below 1280.
pub fn packet_too_big_mtu(mtu4: u16, quoted_total_len: u16, ipv6_mtu: u32) -> u32 {
    let mtu4 = if mtu4 == 0 {
        MTU_PLATEAUS
            .iter()
            .copied()
            .find(|&p| p < quoted_total_len)
            .unwrap_or(68)
    } else {
        mtu4
    };
    (u32::from(mtu4) + 20).min(ipv6_mtu).max(IPV6_MIN_MTU)
}

/// RFC 7915 §5.2: the Fragmentation Needed MTU for a Packet Too Big with
/// `mtu6`, given the MTU of the translator's IPv6 side `ipv6_mtu` (the IPv4
/// packets the translator can deliver there are 20 bytes smaller). No IPv6
/// link is below 1280 bytes (RFC 8200 §5), so a smaller `mtu6` is forged
/// or broken (RFC 8021 §2): it counts as 1280, else one client could lower
/// the path MTU the server keeps for the pool4 address every client shares.
pub fn fragmentation_needed_mtu(mtu6: u32, ipv6_mtu: u32) -> u16 {
    let m = mtu6
        .max(IPV6_MIN_MTU)
        .min(ipv6_mtu.max(IPV6_MIN_MTU))
        .saturating_sub(20)
        .min(65535);
    u16::try_from(m).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7915_4_2_pointer_table() {
        let expect: [Option<u8>; 21] = [
            Some(0),
            Some(1),
            Some(4),
            Some(4),
            None,
            None,
            None,
            None,
            Some(7),
            Some(6),
            None,
            None,
            Some(8),
            Some(8),
            Some(8),
            Some(8),
            Some(24),
            Some(24),
            Some(24),
            Some(24),
            None,
        ];
        for (p, e) in expect.iter().enumerate() {
            assert_eq!(pointer_4to6(p as u8), *e, "pointer {p}");
        }
    }

    #[test]
    fn rfc7915_5_2_pointer_table() {
        for p in 0..48u32 {
            let e = match p {
                0 => Some(0),
                1 => Some(1),
                2 | 3 => None,
                4 | 5 => Some(2),
                6 => Some(9),
                7 => Some(8),
                8..=23 => Some(12),
                24..=39 => Some(16),
                _ => None,
            };
            assert_eq!(pointer_6to4(p), e, "pointer {p}");
        }
    }

    #[test]
    fn rfc7915_4_2_type_code_table() {
        let du = |c| error_4to6(3, c, 0).map(|m| (m.icmp_type, m.code));
        for c in [0, 1, 5, 6, 7, 8, 11, 12] {
            assert_eq!(du(c), Some((1, 0)), "code {c}");
        }
        assert_eq!(du(2), Some((4, 1)));
        assert_eq!(
            error_4to6(3, 2, 0).map(|m| m.param),
            Some(Param::Pointer(6))
        );
        assert_eq!(du(3), Some((1, 4)));
        assert_eq!(du(4), Some((2, 0)));
        for c in [9, 10, 13, 15] {
            assert_eq!(du(c), Some((1, 1)), "code {c}");
        }
        assert_eq!(du(14), None);
        assert_eq!(du(16), None);
        assert_eq!(
            error_4to6(11, 1, 0).map(|m| (m.icmp_type, m.code)),
            Some((3, 1))
        );
        assert_eq!(
            error_4to6(12, 0, 9).map(|m| (m.icmp_type, m.code, m.param)),
            Some((4, 0, Param::Pointer(6)))
        );
        assert_eq!(error_4to6(12, 0, 10), None, "checksum has no IPv6 field");
        assert_eq!(error_4to6(12, 1, 0), None, "missing required option");
        for t in [4, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18, 42] {
            assert_eq!(error_4to6(t, 0, 0), None, "type {t}");
        }
    }

    #[test]
    fn rfc7915_5_2_type_code_table() {
        let du = |c| error_6to4(1, c, 0).map(|m| (m.icmp_type, m.code));
        assert_eq!(du(0), Some((3, 1)));
        assert_eq!(du(1), Some((3, 10)));
        assert_eq!(du(2), Some((3, 1)));
        assert_eq!(du(3), Some((3, 1)));
        assert_eq!(du(4), Some((3, 3)));
        assert_eq!(du(5), None);
        assert_eq!(
            error_6to4(2, 0, 0).map(|m| (m.icmp_type, m.code)),
            Some((3, 4))
        );
        assert_eq!(
            error_6to4(3, 1, 0).map(|m| (m.icmp_type, m.code)),
            Some((11, 1))
        );
        assert_eq!(
            error_6to4(4, 0, 7).map(|m| (m.icmp_type, m.code, m.param)),
            Some((12, 0, Param::Pointer(8)))
        );
        assert_eq!(error_6to4(4, 0, 2), None, "flow label has no IPv4 field");
        assert_eq!(
            error_6to4(4, 1, 0).map(|m| (m.icmp_type, m.code)),
            Some((3, 2))
        );
        assert_eq!(error_6to4(4, 2, 0), None);
        for t in [130, 131, 132, 133, 134, 135, 136, 137, 5, 100] {
            assert_eq!(error_6to4(t, 0, 0), None, "type {t}");
        }
    }

    #[test]
    fn rfc7915_4_2_packet_too_big_mtu() {
        assert_eq!(packet_too_big_mtu(1400, 1500, 1500), 1420);
        assert_eq!(
            packet_too_big_mtu(1480, 1500, 1500),
            1500,
            "capped by the IPv6 side"
        );
        assert_eq!(
            packet_too_big_mtu(576, 1500, 1500),
            1280,
            "never below 1280"
        );
        // RFC 1191 §7: MTU 0, the largest plateau below the quoted length.
        assert_eq!(packet_too_big_mtu(0, 1500, 9000), 1492 + 20);
        assert_eq!(packet_too_big_mtu(0, 1492, 9000), 1280);
        assert_eq!(packet_too_big_mtu(0, 4000, 9000), 2002 + 20);
    }

    #[test]
    fn rfc7915_5_2_fragmentation_needed_mtu() {
        assert_eq!(fragmentation_needed_mtu(1280, 1500), 1260);
        assert_eq!(fragmentation_needed_mtu(1500, 1400), 1380);
        assert_eq!(
            fragmentation_needed_mtu(0, 1500),
            1260,
            "RFC 8021: below 1280 is forged"
        );
        assert_eq!(fragmentation_needed_mtu(1000, 1500), 1260);
        assert_eq!(fragmentation_needed_mtu(u32::MAX, u32::MAX), 65535);
    }
}
