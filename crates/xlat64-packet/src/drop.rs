//! Why a packet was not translated. Every variant is a counter in `xlat64 stats`.

/// The reason a packet was dropped by the parser or the translator.
///
/// Fieldless so that the daemon can keep one counter per variant in an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its IP header, or than the length its header claims.
    Truncated,
    /// The version nibble is neither 4 nor 6, or does not match the parser.
    BadVersion,
    /// IPv4 IHL below 5 or total length below the header length.
    BadHeaderLength,
    /// IPv4 header checksum is wrong.
    BadIpv4Checksum,
    /// Transport checksum (TCP, UDP, ICMP) is wrong.
    BadTransportChecksum,
    /// Transport header cut short.
    TruncatedTransport,
    /// Protocol / next header that the translator does not handle.
    UnknownProtocol,
    /// An IPv6 extension header a stateful NAT64 cannot translate (AH, ESP,
    /// Mobility, HIP, Shim6, experimental; RFC 7915 §5.1).
    ExtensionHeader,
    /// A fragment handed to the translator outside reassembly (reassembly
    /// has its own counters).
    Fragment,
    /// IPv4 packet with an unexpired Loose or Strict Source Route option
    /// (RFC 7915 §4.1: discard, ICMPv4 Source Route Failed back). Other
    /// options are ignored, as §4.1 says.
    SourceRoute,
    /// IPv4 options that cannot be walked: an option length below 2 or past
    /// the end of the header (RFC 791 §3.1).
    BadIpv4Options,
    /// Hop limit / TTL ran out at the translator (RFC 7915 §4.1, §5.1: ICMP
    /// Time Exceeded back).
    HopLimitExceeded,
    /// ICMPv6 informational type other than echo request leaving the IPv6
    /// side (RFC 7915 §5.2: MLD, ND and unknown types are single-hop or
    /// untranslatable), or an unknown error type.
    Icmpv6TypeUnsupported,
    /// ICMPv4 type other than echo reply and the translated errors arriving
    /// from the IPv4 side (RFC 7915 §4.2: timestamps, redirects, router
    /// discovery, source quench... are dropped).
    Icmpv4TypeUnsupported,
    /// An ICMP error whose code or pointer has no counterpart in the other
    /// family (RFC 7915 §4.2, §5.2: silently dropped).
    IcmpUntranslatable,
    /// The packet quoted in an ICMP error cannot be translated: cut before
    /// its ports, not TCP/UDP/echo (an error about an error), a non-first
    /// fragment, or not addressed from the error's destination (RFC 7915
    /// §4.3, §5.3).
    IcmpQuoteUntranslatable,
    /// IPv6 Routing header with Segments Left > 0 (RFC 7915 §5.1: ICMPv6
    /// Parameter Problem back, pointing at the field).
    RoutingHeader,
    /// An IPv6 extension header chain that cannot be walked: cut short, two
    /// Fragment headers, or too long (RFC 8200 §4).
    BadExtensionHeader,
    /// Source or destination address unusable (multicast, unspecified, loopback...).
    BadAddress,
    /// UDP over IPv6 with a zero checksum, which IPv6 receivers must discard
    /// (RFC 8200 §8.1). A zero checksum over IPv4 is not dropped: the
    /// translator computes it (RFC 6146 §3.4, RFC 7915 §4.5).
    UdpZeroChecksum,
    /// The translated IPv4 packet would exceed 65535 bytes (IPv4 total
    /// length, RFC 791 §3.1): only a reassembled IPv6 datagram can.
    TooBigForIpv4,
    /// An IPv4 packet with DF set whose translation does not fit the MTU of
    /// the IPv6 side (RFC 7915 §4: Fragmentation Needed back), or one that
    /// cannot be fragmented to it.
    TooBigForIpv6,
    /// The output buffer is smaller than the translated packet.
    OutputTooSmall,
}

impl DropReason {
    /// Every variant, in declaration order (index = `self as usize`).
    pub const ALL: [DropReason; 23] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeaderLength,
        DropReason::BadIpv4Checksum,
        DropReason::BadTransportChecksum,
        DropReason::TruncatedTransport,
        DropReason::UnknownProtocol,
        DropReason::ExtensionHeader,
        DropReason::Fragment,
        DropReason::SourceRoute,
        DropReason::BadIpv4Options,
        DropReason::HopLimitExceeded,
        DropReason::Icmpv6TypeUnsupported,
        DropReason::Icmpv4TypeUnsupported,
        DropReason::IcmpUntranslatable,
        DropReason::IcmpQuoteUntranslatable,
        DropReason::RoutingHeader,
        DropReason::BadExtensionHeader,
        DropReason::BadAddress,
        DropReason::UdpZeroChecksum,
        DropReason::TooBigForIpv4,
        DropReason::TooBigForIpv6,
        DropReason::OutputTooSmall,
    ];

    /// The counter name shown by `xlat64 stats` (snake case, prefixed `drop_`).
    pub const fn counter_name(self) -> &'static str {
        match self {
            DropReason::Truncated => "drop_truncated",
            DropReason::BadVersion => "drop_bad_version",
            DropReason::BadHeaderLength => "drop_bad_header_length",
            DropReason::BadIpv4Checksum => "drop_bad_ipv4_checksum",
            DropReason::BadTransportChecksum => "drop_bad_transport_checksum",
            DropReason::TruncatedTransport => "drop_truncated_transport",
            DropReason::UnknownProtocol => "drop_unknown_protocol",
            DropReason::ExtensionHeader => "drop_extension_header",
            DropReason::Fragment => "drop_fragment",
            DropReason::SourceRoute => "drop_source_route",
            DropReason::BadIpv4Options => "drop_bad_ipv4_options",
            DropReason::HopLimitExceeded => "drop_hop_limit_exceeded",
            DropReason::Icmpv6TypeUnsupported => "drop_icmpv6_type_unsupported",
            DropReason::Icmpv4TypeUnsupported => "drop_icmpv4_type_unsupported",
            DropReason::IcmpUntranslatable => "drop_icmp_untranslatable",
            DropReason::IcmpQuoteUntranslatable => "drop_icmp_quote_untranslatable",
            DropReason::RoutingHeader => "drop_routing_header",
            DropReason::BadExtensionHeader => "drop_bad_extension_header",
            DropReason::BadAddress => "drop_bad_address",
            DropReason::UdpZeroChecksum => "drop_udp_zero_checksum",
            DropReason::TooBigForIpv4 => "drop_too_big_for_ipv4",
            DropReason::TooBigForIpv6 => "drop_too_big_for_ipv6",
            DropReason::OutputTooSmall => "drop_output_too_small",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn counter_names_unique_and_prefixed() {
        let names: HashSet<_> = DropReason::ALL.iter().map(|r| r.counter_name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        for n in names {
            assert!(n.starts_with("drop_"), "{n}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{n}"
            );
        }
    }
}
