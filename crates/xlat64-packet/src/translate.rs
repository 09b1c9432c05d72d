//! The RFC 7915 IP/ICMP translation algorithm (the common case: TCP, UDP and
//! ICMP echo, no fragments, no options or extension headers yet).

use crate::{DropReason, Parsed4, Parsed6};
use std::net::{SocketAddrV4, SocketAddrV6};

/// Validates an IPv6 packet leaving the IPv6 side and extracts its flow.
///
/// Drops (with the reason) anything the translator cannot translate,
/// including a hop limit that would expire (RFC 7915 §5.1).
pub fn parse_v6(pkt: &[u8]) -> Result<Parsed6, DropReason> {
    todo!()
}

/// Validates an IPv4 packet arriving from the IPv4 side and extracts its flow.
pub fn parse_v4(pkt: &[u8]) -> Result<Parsed4, DropReason> {
    todo!()
}

/// Translates the IPv6 packet `pkt` (validated as `parsed`) into IPv4 in `out`
/// (RFC 7915 §5), with source transport address `src` and destination `dst`
/// (ports, or the ICMP identifier in `src.port()`), and returns its length.
pub fn translate_6to4(
    pkt: &[u8],
    parsed: &Parsed6,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    todo!()
}

/// Translates the IPv4 packet `pkt` (validated as `parsed`) into IPv6 in `out`
/// (RFC 7915 §4), with source `src` and destination `dst` (ports, or the ICMP
/// identifier in `dst.port()`), and returns its length.
pub fn translate_4to6(
    pkt: &[u8],
    parsed: &Parsed4,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    todo!()
}
