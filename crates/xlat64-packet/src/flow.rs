//! The transport identity of a packet, as the NAT state tables need it.

use std::net::{Ipv4Addr, Ipv6Addr};

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

/// A validated IPv6 packet: its flow plus the offsets translation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed6 {
    /// The transport tuple.
    pub flow: Flow6,
    /// Offset of the transport header (40 until extension headers are handled).
    pub l4_offset: usize,
    /// Total packet length (40 + payload length); trailing bytes beyond it are ignored.
    pub total_len: usize,
}

/// A validated IPv4 packet: its flow plus the offsets translation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed4 {
    /// The transport tuple.
    pub flow: Flow4,
    /// Offset of the transport header (IHL * 4).
    pub l4_offset: usize,
    /// Total packet length from the header; trailing bytes beyond it are ignored.
    pub total_len: usize,
}
