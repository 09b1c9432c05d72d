//! The RFC 7915 IP/ICMP translation algorithm (the common case: TCP, UDP and
//! ICMP echo, no fragments, no extension headers; IPv4 options are ignored).
//!
//! Panic rule: `parse_*` check every length once. The translators still reach
//! bytes only through `first_chunk`/`get`, so a `Parsed*` that does not match
//! its packet yields a drop reason, never a panic. Fixed-size headers are
//! handled as arrays so that constant indexes are checked by the compiler.

use crate::checksum::{combine, finish, is_valid, pseudo_v4, pseudo_v6, sum, update};
use crate::{DropReason, Flow4, Flow6, L4Proto, Parsed4, Parsed6};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

const IPV6_HEADER_LEN: usize = 40;
const IPV4_HEADER_LEN: usize = 20;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const ICMP_HEADER_LEN: usize = 8;

/// IANA protocol numbers used here.
mod proto {
    pub(super) const ICMP: u8 = 1;
    pub(super) const TCP: u8 = 6;
    pub(super) const UDP: u8 = 17;
    pub(super) const FRAGMENT: u8 = 44;
    pub(super) const ICMPV6: u8 = 58;
}

/// IPv6 extension headers other than Fragment (RFC 8200 §4, IANA "IPv6
/// Extension Header Types"): Hop-by-Hop, Routing, ESP, AH, Destination
/// Options, Mobility, HIP, Shim6 and the two experimental values.
const EXTENSION_HEADERS: [u8; 10] = [0, 43, 50, 51, 60, 135, 139, 140, 253, 254];

/// ICMP types handled (RFC 4443 §4, RFC 792).
mod icmp {
    pub(super) const V6_ECHO_REQUEST: u8 = 128;
    pub(super) const V6_ECHO_REPLY: u8 = 129;
    pub(super) const V4_ECHO_REPLY: u8 = 0;
    pub(super) const V4_ECHO_REQUEST: u8 = 8;
}

/// IPv4 options that RFC 7915 §4.1 says to act on (RFC 791 §3.1).
mod ipv4_option {
    pub(super) const END: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const LSRR: u8 = 131;
    pub(super) const SSRR: u8 = 137;
}

/// RFC 7915 §5.1: DF is set only on translated packets above this size.
const DF_THRESHOLD: usize = 1260;
const IPV4_FLAG_DF: u8 = 0x40;
const IPV4_FLAG_MF: u16 = 0x2000;
const IPV4_FRAG_OFFSET: u16 = 0x1fff;

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

fn put16(dst: &mut [u8; 2], v: u16) {
    *dst = v.to_be_bytes();
}

/// `N` bytes of `b` from `at` as an array. Called only with constant
/// offsets inside fixed-size headers; out of range would give zeros.
fn array_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..)
        .and_then(|b| b.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// True when the UDP header in `l4` carries a zero checksum.
fn udp_checksum_is_zero(l4: &[u8]) -> bool {
    l4.get(6..8) == Some(&[0u8, 0][..])
}

/// Stores `value` in the 16-bit checksum field at `offset` of `l4`.
fn set_checksum(l4: &mut [u8], offset: usize, value: u16) -> Result<(), DropReason> {
    let field = l4
        .get_mut(offset..)
        .and_then(field16)
        .ok_or(DropReason::TruncatedTransport)?;
    put16(field, value);
    Ok(())
}

/// The first two bytes of `b` as an array, for in-place 16-bit fields.
fn field16(b: &mut [u8]) -> Option<&mut [u8; 2]> {
    b.first_chunk_mut::<2>()
}

/// The transport header fields the flow needs, validated to be present in
/// full. Shared by both parsers: TCP and UDP are the same in both families.
fn parse_ports(proto: u8, l4: &[u8]) -> Result<(L4Proto, u16, u16, u8), DropReason> {
    match proto {
        proto::TCP => {
            let th = l4
                .first_chunk::<TCP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            // RFC 9293 §3.1: Data Offset counts 32-bit words, at least 5.
            let data_offset = usize::from(th[12] >> 4) * 4;
            if data_offset < TCP_HEADER_LEN || data_offset > l4.len() {
                return Err(DropReason::TruncatedTransport);
            }
            Ok((
                L4Proto::Tcp,
                be16([th[0], th[1]]),
                be16([th[2], th[3]]),
                th[13],
            ))
        }
        proto::UDP => {
            let uh = l4
                .first_chunk::<UDP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            // RFC 768: Length covers header and data.
            let udp_len = usize::from(be16([uh[4], uh[5]]));
            if udp_len < UDP_HEADER_LEN || udp_len > l4.len() {
                return Err(DropReason::TruncatedTransport);
            }
            Ok((L4Proto::Udp, be16([uh[0], uh[1]]), be16([uh[2], uh[3]]), 0))
        }
        _ => Err(DropReason::UnknownProtocol),
    }
}

fn bad_v6_address(src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
    src.is_multicast()
        || src.is_unspecified()
        || src.is_loopback()
        || dst.is_multicast()
        || dst.is_unspecified()
        || dst.is_loopback()
}

fn bad_v4_address(a: Ipv4Addr) -> bool {
    a.octets()[0] == 0 || a.is_loopback() || a.is_multicast() || a.is_broadcast()
}

/// Validates an IPv6 packet leaving the IPv6 side and extracts its flow.
///
/// Drops (with the reason) anything the translator cannot translate,
/// including a hop limit that would expire (RFC 7915 §5.1).
pub fn parse_v6(pkt: &[u8]) -> Result<Parsed6, DropReason> {
    let first = *pkt.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 6 {
        return Err(DropReason::BadVersion);
    }
    let hdr = pkt
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    // RFC 8200 §3: Payload Length counts everything after the fixed header.
    let total_len = IPV6_HEADER_LEN + usize::from(be16([hdr[4], hdr[5]]));
    let l4 = pkt
        .get(IPV6_HEADER_LEN..total_len)
        .ok_or(DropReason::Truncated)?;
    let next_header = hdr[6];
    let hop_limit = hdr[7];
    let src = Ipv6Addr::from(array_at::<16>(hdr, 8));
    let dst = Ipv6Addr::from(array_at::<16>(hdr, 24));
    if bad_v6_address(&src, &dst) {
        return Err(DropReason::BadAddress);
    }

    let (proto, src_port, dst_port, tcp_flags) = match next_header {
        proto::ICMPV6 => {
            let ih = l4
                .first_chunk::<ICMP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            // Only queries leave the IPv6 side; errors are a later step.
            if ih[0] != icmp::V6_ECHO_REQUEST {
                return Err(DropReason::Icmpv6TypeUnsupported);
            }
            // The ICMPv4 checksum is recomputed from scratch on translation,
            // so a corrupt message would otherwise leave with a valid one.
            let s = combine(
                pseudo_v6(&src, &dst, proto::ICMPV6, l4.len() as u32),
                sum(l4),
            );
            if !is_valid(s) {
                return Err(DropReason::BadTransportChecksum);
            }
            let id = be16([ih[4], ih[5]]);
            (L4Proto::Icmp, id, id, 0)
        }
        proto::FRAGMENT => return Err(DropReason::Fragment),
        nh if EXTENSION_HEADERS.contains(&nh) => return Err(DropReason::ExtensionHeader),
        nh => {
            let ports = parse_ports(nh, l4)?;
            // RFC 8200 §8.1: IPv6 receivers discard UDP with a zero checksum.
            if ports.0 == L4Proto::Udp && udp_checksum_is_zero(l4) {
                return Err(DropReason::UdpZeroChecksum);
            }
            ports
        }
    };

    // RFC 7915 §5.1: the hop limit is decremented and must not reach zero.
    if hop_limit <= 1 {
        return Err(DropReason::HopLimitExceeded);
    }

    Ok(Parsed6 {
        flow: Flow6 {
            proto,
            src,
            dst,
            src_port,
            dst_port,
            tcp_flags,
        },
        l4_offset: IPV6_HEADER_LEN,
        total_len,
    })
}

/// Walks the IPv4 options (RFC 791 §3.1). RFC 7915 §4.1: options are not
/// translated, but an unexpired source route option means the packet must be
/// discarded.
fn check_ipv4_options(mut opts: &[u8]) -> Result<(), DropReason> {
    while let Some((&kind, after_kind)) = opts.split_first() {
        match kind {
            ipv4_option::END => break,
            ipv4_option::NOP => opts = after_kind,
            _ => {
                let len = usize::from(*after_kind.first().ok_or(DropReason::BadIpv4Options)?);
                if len < 2 || len > opts.len() {
                    return Err(DropReason::BadIpv4Options);
                }
                if kind == ipv4_option::LSRR || kind == ipv4_option::SSRR {
                    // RFC 791: the 1-based pointer is past the option once
                    // the route is exhausted.
                    let pointer = match opts.get(2) {
                        Some(&p) if len >= 3 => usize::from(p),
                        _ => return Err(DropReason::BadIpv4Options),
                    };
                    if pointer <= len {
                        return Err(DropReason::SourceRoute);
                    }
                }
                opts = opts.get(len..).unwrap_or_default();
            }
        }
    }
    Ok(())
}

/// Validates an IPv4 packet arriving from the IPv4 side and extracts its flow.
///
/// RFC 7915 §4.1: options are ignored except an unexpired source route,
/// fragments are not handled yet, and a TTL that would expire is dropped.
pub fn parse_v4(pkt: &[u8]) -> Result<Parsed4, DropReason> {
    let first = *pkt.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 4 {
        return Err(DropReason::BadVersion);
    }
    let hdr = pkt
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    let header_len = usize::from(hdr[0] & 0x0f) * 4;
    let total_len = usize::from(be16([hdr[2], hdr[3]]));
    if header_len < IPV4_HEADER_LEN || total_len < header_len {
        return Err(DropReason::BadHeaderLength);
    }
    let pkt = pkt.get(..total_len).ok_or(DropReason::Truncated)?;
    let (header, l4) = pkt
        .split_at_checked(header_len)
        .ok_or(DropReason::Truncated)?;
    if !is_valid(sum(header)) {
        return Err(DropReason::BadIpv4Checksum);
    }
    let frag = be16([hdr[6], hdr[7]]);
    if frag & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET) != 0 {
        return Err(DropReason::Fragment);
    }
    check_ipv4_options(header.get(IPV4_HEADER_LEN..).unwrap_or_default())?;
    let ttl = hdr[8];
    let protocol = hdr[9];
    let src = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
    let dst = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
    if bad_v4_address(src) || bad_v4_address(dst) {
        return Err(DropReason::BadAddress);
    }

    let (proto, src_port, dst_port, tcp_flags) = match protocol {
        proto::ICMP => {
            let ih = l4
                .first_chunk::<ICMP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            // Only replies to IPv6-initiated queries; errors are a later step.
            if ih[0] != icmp::V4_ECHO_REPLY {
                return Err(DropReason::Icmpv4TypeUnsupported);
            }
            // Recomputed with a pseudo-header on translation: verify first.
            if !is_valid(sum(l4)) {
                return Err(DropReason::BadTransportChecksum);
            }
            let id = be16([ih[4], ih[5]]);
            (L4Proto::Icmp, id, id, 0)
        }
        p => parse_ports(p, l4)?,
    };

    // RFC 7915 §4.1: the TTL is decremented and must not reach zero.
    if ttl <= 1 {
        return Err(DropReason::HopLimitExceeded);
    }

    Ok(Parsed4 {
        flow: Flow4 {
            proto,
            src,
            dst,
            src_port,
            dst_port,
            tcp_flags,
        },
        l4_offset: header_len,
        total_len,
    })
}

/// Offset of the checksum field in a TCP or UDP header.
fn checksum_offset(proto: L4Proto) -> usize {
    match proto {
        L4Proto::Tcp => 16,
        L4Proto::Udp => 6,
        L4Proto::Icmp => 2,
    }
}

/// Rewrites the ports of a TCP or UDP header in place and updates its
/// checksum for the port change plus a pseudo-header change from
/// `old_pseudo` to `new_pseudo` (RFC 7915 §4.5 and §5.5, RFC 1624).
fn rewrite_ports(
    proto: L4Proto,
    l4: &mut [u8],
    old_pseudo: u32,
    new_pseudo: u32,
    src_port: u16,
    dst_port: u16,
) -> Result<(), DropReason> {
    let ports = l4
        .first_chunk_mut::<4>()
        .ok_or(DropReason::TruncatedTransport)?;
    let old = combine(old_pseudo, sum(ports));
    let [s0, s1] = src_port.to_be_bytes();
    let [d0, d1] = dst_port.to_be_bytes();
    *ports = [s0, s1, d0, d1];
    let new = combine(new_pseudo, sum(ports));
    let offset = checksum_offset(proto);
    let check = l4
        .get(offset..)
        .and_then(|b| b.first_chunk::<2>())
        .ok_or(DropReason::TruncatedTransport)?;
    let mut updated = update(be16(*check), old, new);
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    if proto == L4Proto::Udp && updated == 0 {
        updated = 0xffff;
    }
    set_checksum(l4, offset, updated)
}

/// Translates the IPv6 packet `pkt` (validated as `parsed`) into IPv4 in `out`
/// (RFC 7915 §5), with source transport address `src` and destination `dst`
/// (ports, or the ICMP identifier in `src.port()`) and IPv4 Identification
/// `ipv4_id`, and returns its length.
///
/// RFC 7915 §5.1 header mapping: TOS = Traffic Class, Identification from the
/// caller, DF set only above 1260 bytes, TTL = Hop Limit - 1, ICMPv6 becomes
/// ICMP. §5.2: Echo Request 128 becomes 8. §5.5: transport checksums are
/// updated for the pseudo-header.
pub fn translate_6to4(
    pkt: &[u8],
    parsed: &Parsed6,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ipv4_id: u16,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let ip6 = pkt
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    let l4_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    let total_len = IPV4_HEADER_LEN + l4_in.len();
    let total16 = u16::try_from(total_len).map_err(|_| DropReason::TooBigForIpv4)?;
    let (ip4, l4) = out
        .get_mut(..total_len)
        .and_then(|o| o.split_first_chunk_mut::<IPV4_HEADER_LEN>())
        .ok_or(DropReason::OutputTooSmall)?;
    // Same length by construction: both are total_len - 20.
    l4.copy_from_slice(l4_in);

    let flow = &parsed.flow;
    let traffic_class = (ip6[0] << 4) | (ip6[1] >> 4);
    let hop_limit = ip6[7];
    let protocol = match flow.proto {
        L4Proto::Tcp => proto::TCP,
        L4Proto::Udp => proto::UDP,
        L4Proto::Icmp => proto::ICMP,
    };
    let flags = if total_len > DF_THRESHOLD {
        IPV4_FLAG_DF
    } else {
        0
    };
    let [len0, len1] = total16.to_be_bytes();
    let [id0, id1] = ipv4_id.to_be_bytes();
    let [s0, s1, s2, s3] = src.ip().octets();
    let [d0, d1, d2, d3] = dst.ip().octets();
    *ip4 = [
        0x45,
        traffic_class,
        len0,
        len1,
        id0,
        id1,
        flags,
        0,
        hop_limit.saturating_sub(1),
        protocol,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ];
    let [c0, c1] = finish(sum(ip4)).to_be_bytes();
    ip4[10] = c0;
    ip4[11] = c1;

    match flow.proto {
        L4Proto::Tcp | L4Proto::Udp => {
            // Upper-layer length: the same value in both pseudo-headers.
            let l4_len = l4.len() as u16;
            let old = pseudo_v6(&flow.src, &flow.dst, protocol, u32::from(l4_len));
            let new = pseudo_v4(*src.ip(), *dst.ip(), protocol, l4_len);
            rewrite_ports(flow.proto, l4, old, new, src.port(), dst.port())?;
        }
        // ICMPv4 has no pseudo-header (RFC 792).
        L4Proto::Icmp => rewrite_echo(l4, icmp::V4_ECHO_REQUEST, src.port(), 0)?,
    }
    Ok(total_len)
}

/// Translates the IPv4 packet `pkt` (validated as `parsed`) into IPv6 in `out`
/// (RFC 7915 §4), with source `src` and destination `dst` (ports, or the ICMP
/// identifier in `dst.port()`), and returns its length.
///
/// RFC 7915 §4.1 header mapping: Traffic Class = TOS, Flow Label 0, Payload
/// Length = Total Length - header length (options dropped), Hop Limit =
/// TTL - 1, ICMP becomes ICMPv6. §4.2: Echo Reply 0 becomes 129, checksum
/// recomputed with the IPv6 pseudo-header. §4.5: TCP/UDP checksums updated
/// for the pseudo-header; a zero UDP checksum is computed (RFC 6146 §3.4).
pub fn translate_4to6(
    pkt: &[u8],
    parsed: &Parsed4,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let ip4 = pkt
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    let l4_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    // At most 65535 - 20: the IPv4 total length bounds it.
    let payload_len = u16::try_from(l4_in.len()).map_err(|_| DropReason::Truncated)?;
    let total_len = IPV6_HEADER_LEN + l4_in.len();
    let (ip6, l4) = out
        .get_mut(..total_len)
        .and_then(|o| o.split_first_chunk_mut::<IPV6_HEADER_LEN>())
        .ok_or(DropReason::OutputTooSmall)?;
    l4.copy_from_slice(l4_in);

    let flow = &parsed.flow;
    let tos = ip4[1];
    let ttl = ip4[8];
    let next_header = match flow.proto {
        L4Proto::Tcp => proto::TCP,
        L4Proto::Udp => proto::UDP,
        L4Proto::Icmp => proto::ICMPV6,
    };
    let [p0, p1] = payload_len.to_be_bytes();
    let fixed: [u8; 8] = [
        0x60 | (tos >> 4),
        tos << 4,
        0,
        0,
        p0,
        p1,
        next_header,
        ttl.saturating_sub(1),
    ];
    let mut addrs = [0u8; 32];
    addrs[..16].copy_from_slice(&src.ip().octets());
    addrs[16..].copy_from_slice(&dst.ip().octets());
    let (h_fixed, h_addrs) = ip6.split_at_mut(8);
    h_fixed.copy_from_slice(&fixed);
    h_addrs.copy_from_slice(&addrs);

    match flow.proto {
        L4Proto::Tcp | L4Proto::Udp => {
            if flow.proto == L4Proto::Udp && udp_checksum_is_zero(l4) {
                fill_udp_checksum(l4, src, dst)?;
            } else {
                let old = pseudo_v4(flow.src, flow.dst, next_header, payload_len);
                let new = pseudo_v6(src.ip(), dst.ip(), next_header, u32::from(payload_len));
                rewrite_ports(flow.proto, l4, old, new, src.port(), dst.port())?;
            }
        }
        L4Proto::Icmp => {
            let pseudo = pseudo_v6(src.ip(), dst.ip(), proto::ICMPV6, u32::from(payload_len));
            rewrite_echo(l4, icmp::V6_ECHO_REPLY, dst.port(), pseudo)?;
        }
    }
    Ok(total_len)
}

/// Sets the ports and computes a UDP checksum that arrived as zero over IPv4
/// (RFC 7915 §4.5, RFC 6146 §3.4: a stateful NAT64 computes it for
/// unfragmented packets), since IPv6 requires one (RFC 8200 §8.1).
fn fill_udp_checksum(
    l4: &mut [u8],
    src: SocketAddrV6,
    dst: SocketAddrV6,
) -> Result<(), DropReason> {
    let uh = l4
        .first_chunk_mut::<UDP_HEADER_LEN>()
        .ok_or(DropReason::TruncatedTransport)?;
    let [s0, s1] = src.port().to_be_bytes();
    let [d0, d1] = dst.port().to_be_bytes();
    let udp_len = be16([uh[4], uh[5]]);
    uh[0] = s0;
    uh[1] = s1;
    uh[2] = d0;
    uh[3] = d1;
    uh[6] = 0;
    uh[7] = 0;
    // RFC 768: the checksum covers the UDP length, not trailing bytes.
    let datagram = l4
        .get(..usize::from(udp_len))
        .ok_or(DropReason::TruncatedTransport)?;
    let s = combine(
        pseudo_v6(src.ip(), dst.ip(), proto::UDP, u32::from(udp_len)),
        sum(datagram),
    );
    let check = match finish(s) {
        0 => 0xffff,
        c => c,
    };
    set_checksum(l4, checksum_offset(L4Proto::Udp), check)
}

/// Turns an echo message into the other family's echo (RFC 7915 §4.2,
/// §5.2): new type, code 0, the identifier the NAT chose, and a checksum
/// recomputed over the message plus `pseudo` (zero for ICMPv4).
fn rewrite_echo(l4: &mut [u8], icmp_type: u8, id: u16, pseudo: u32) -> Result<(), DropReason> {
    let ih = l4
        .first_chunk_mut::<ICMP_HEADER_LEN>()
        .ok_or(DropReason::TruncatedTransport)?;
    let [i0, i1] = id.to_be_bytes();
    ih[0] = icmp_type;
    ih[1] = 0;
    ih[2] = 0;
    ih[3] = 0;
    ih[4] = i0;
    ih[5] = i1;
    let check = finish(combine(pseudo, sum(l4)));
    set_checksum(l4, checksum_offset(L4Proto::Icmp), check)
}
