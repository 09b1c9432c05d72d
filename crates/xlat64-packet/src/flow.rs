//! The transport identity of a packet, as the NAT state tables need it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Transport protocol of a flow. `Icmp` means an ICMP query (echo) flow whose
/// "port" is the ICMP identifier (RFC 6146 §3.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP / ICMPv6 echo (query) messages.
    Icmp,
}

impl L4Proto {
    /// Lower-case name: "tcp", "udp", "icmp".
    pub const fn as_str(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Icmp => "icmp",
        }
    }
}

/// TCP flag bits as they stand in byte 13 of the TCP header.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Transport tuple of an IPv6 packet. For ICMP both ports hold the echo identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow6 {
    /// Transport protocol.
    pub proto: L4Proto,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Source port (ICMP: identifier).
    pub src_port: u16,
    /// Destination port (ICMP: identifier).
    pub dst_port: u16,
    /// TCP flags (0 for UDP and ICMP).
    pub tcp_flags: u8,
}

/// Transport tuple of an IPv4 packet. For ICMP both ports hold the echo identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow4 {
    /// Transport protocol.
    pub proto: L4Proto,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port (ICMP: identifier).
    pub src_port: u16,
    /// Destination port (ICMP: identifier).
    pub dst_port: u16,
    /// TCP flags (0 for UDP and ICMP).
    pub tcp_flags: u8,
}

/// The packet quoted in an ICMP error (RFC 792, RFC 4443 §3), as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Type of the ICMP error.
    pub icmp_type: u8,
    /// Code of the ICMP error.
    pub code: u8,
    /// Offset of the quoted IP header in the packet.
    pub ip_offset: usize,
    /// Offset of the quoted transport header in the packet.
    pub l4_offset: usize,
    /// The quoted packet's upper-layer length, from its own header (the
    /// quote itself is usually cut short).
    pub l4_len: u16,
    /// Its protocol number as it stands (TCP, UDP, ICMP or ICMPv6).
    pub proto: u8,
    /// Its source address.
    pub src: IpAddr,
    /// Its destination address.
    pub dst: IpAddr,
    /// Its TTL / hop limit (copied, not decremented: RFC 7915 §4.3).
    pub hop_limit: u8,
    /// Its TOS / traffic class.
    pub traffic_class: u8,
    /// Set when it is a first fragment (later ones are refused).
    pub fragment: Option<QuotedFragment>,
}

/// A quoted first fragment's identity: IPv4 Identification (widened) or
/// IPv6 Fragment header Identification, and the more-fragments flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedFragment {
    /// Identification.
    pub id: u32,
    /// More fragments follow (MF / M).
    pub more: bool,
}

/// A validated IPv6 packet: its flow plus the offsets translation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed6 {
    /// The transport tuple. For an ICMP error, the quoted packet's tuple
    /// reversed: the session the error belongs to, seen from this side.
    pub flow: Flow6,
    /// Offset of the transport header (after any extension headers).
    pub l4_offset: usize,
    /// Total packet length (40 + payload length); trailing bytes beyond it are ignored.
    pub total_len: usize,
    /// Identification of an atomic fragment, or of a reassembled packet
    /// (set by the reassembler's caller): translated with DF clear (RFC 7915
    /// §5.1.1).
    pub fragment_id: Option<u32>,
    /// Set for ICMPv6 errors: the quoted packet.
    pub icmp_error: Option<Quoted>,
}

/// A validated IPv4 packet: its flow plus the offsets translation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed4 {
    /// The transport tuple. For an ICMP error, the quoted packet's tuple
    /// reversed: the session the error belongs to, seen from this side.
    pub flow: Flow4,
    /// Offset of the transport header (IHL * 4).
    pub l4_offset: usize,
    /// Total packet length from the header; trailing bytes beyond it are ignored.
    pub total_len: usize,
    /// The DF flag.
    pub dont_fragment: bool,
    /// The Identification field.
    pub ipv4_id: u16,
    /// Set for ICMPv4 errors: the quoted packet.
    pub icmp_error: Option<Quoted>,
}
