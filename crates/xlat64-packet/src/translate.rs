//! The RFC 7915 IP/ICMP translation algorithm for packets that are not ICMP
//! errors: TCP, UDP and ICMP echo, with IPv6 extension headers skipped
//! (§5.1), IPv4 options ignored (§4.1), atomic fragments taken as whole
//! packets (RFC 6946) and reassembled packets carrying their fragment
//! identity (§5.1.1). ICMP errors are parsed here and translated by
//! [`crate::icmp_error`].
//!
//! Hop limit: the gateway runs the translator behind the kernel's forwarding
//! path, which already decrements the TTL / hop limit once when it routes a
//! packet into the TUN device (and answers Time Exceeded from the gateway's
//! own address when it runs out there) and again when it routes the
//! translated packet out. So that a packet crossing the gateway loses exactly
//! one, as across any router (RFC 7915 §4.1, §5.1), the translator gives the
//! second decrement back: the translated packet leaves with the hop limit it
//! arrived with plus one.
//!
//! Panic rule: `parse_*` check every length once. The translators still reach
//! bytes only through `first_chunk`/`get`, so a `Parsed*` that does not match
//! its packet yields a drop reason, never a panic. Fixed-size headers are
//! handled as arrays so that constant indexes are checked by the compiler.

use crate::bytes::{array_at, be16, get16};
use crate::checksum::{combine, finish, is_valid, pseudo_v4, pseudo_v6, sum, update};
use crate::flow::{Quoted, QuotedFragment};
use crate::icmp_map::{v4 as icmp4, v6 as icmp6};
use crate::ipv6_ext;
use crate::{DropReason, Flow4, Flow6, L4Proto, Parsed4, Parsed6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

pub(crate) const IPV6_HEADER_LEN: usize = 40;
pub(crate) const IPV4_HEADER_LEN: usize = 20;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
pub(crate) const ICMP_HEADER_LEN: usize = 8;

/// IANA protocol numbers used here.
pub(crate) mod proto {
    pub(crate) const ICMP: u8 = 1;
    pub(crate) const TCP: u8 = 6;
    pub(crate) const UDP: u8 = 17;
    pub(crate) const ICMPV6: u8 = 58;
}

/// IPv4 options that RFC 7915 §4.1 says to act on (RFC 791 §3.1).
mod ipv4_option {
    pub(super) const END: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const LSRR: u8 = 131;
    pub(super) const SSRR: u8 = 137;
}

/// RFC 7915 §5.1: DF is set only on translated packets above this size.
pub(crate) const DF_THRESHOLD: usize = 1260;
pub(crate) const IPV4_FLAG_DF: u8 = 0x40;
pub(crate) const IPV4_FLAG_MF: u16 = 0x2000;
pub(crate) const IPV4_FRAG_OFFSET: u16 = 0x1fff;

fn put16(dst: &mut [u8; 2], v: u16) {
    *dst = v.to_be_bytes();
}

/// The hop limit / TTL a translated packet leaves with (see the module doc).
pub(crate) fn outgoing_hop_limit(incoming: u8) -> u8 {
    incoming.saturating_add(1)
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
    crate::special::never_a_host(a)
}

/// Ports (or echo identifier) of a packet quoted in an ICMP error, which may
/// be cut short: only the first 8 transport bytes are needed (RFC 792, RFC
/// 4443 §3). `echo` is the pair of echo types of the quoted family; other
/// ICMP messages (an error quoting an error) are refused (RFC 7915 §4.3).
fn quoted_ports(
    proto: u8,
    l4: &[u8],
    icmp_proto: u8,
    echo: [u8; 2],
) -> Result<(L4Proto, u16, u16), DropReason> {
    let h = l4
        .first_chunk::<8>()
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    match proto {
        proto::TCP => Ok((L4Proto::Tcp, be16([h[0], h[1]]), be16([h[2], h[3]]))),
        proto::UDP => Ok((L4Proto::Udp, be16([h[0], h[1]]), be16([h[2], h[3]]))),
        p if p == icmp_proto && echo.contains(&h[0]) => {
            let id = be16([h[4], h[5]]);
            Ok((L4Proto::Icmp, id, id))
        }
        _ => Err(DropReason::IcmpQuoteUntranslatable),
    }
}

/// Checks the ICMPv6 checksum of `l4` (RFC 4443 §2.3): the ICMPv4 checksum
/// is computed anew on translation, so a corrupt message would otherwise
/// leave with a valid one.
fn check_icmpv6(src: &Ipv6Addr, dst: &Ipv6Addr, l4: &[u8]) -> Result<(), DropReason> {
    let s = combine(pseudo_v6(src, dst, proto::ICMPV6, l4.len() as u32), sum(l4));
    if is_valid(s) {
        Ok(())
    } else {
        Err(DropReason::BadTransportChecksum)
    }
}

/// Validates an IPv6 packet leaving the IPv6 side and extracts its flow.
///
/// Extension headers are walked (RFC 7915 §5.1); a packet with a Fragment
/// header that is not atomic is refused with [`DropReason::Fragment`]: the
/// caller reassembles fragments first. An ICMPv6 error is parsed together
/// with the packet it quotes, and its flow is that packet's flow reversed:
/// the flow of the session the error is about, as seen from this side
/// (RFC 6146 §3.4).
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
    if pkt.len() < total_len {
        return Err(DropReason::Truncated);
    }
    let hop_limit = hdr[7];
    let src = Ipv6Addr::from(array_at::<16>(hdr, 8));
    let dst = Ipv6Addr::from(array_at::<16>(hdr, 24));
    if bad_v6_address(&src, &dst) {
        return Err(DropReason::BadAddress);
    }
    let chain = ipv6_ext::walk(pkt, total_len, true)?;
    let fragment_id = match chain.fragment {
        Some(f) if !f.is_atomic() => return Err(DropReason::Fragment),
        Some(f) => Some(f.id),
        None => None,
    };
    let l4 = pkt
        .get(chain.l4_offset..total_len)
        .ok_or(DropReason::TruncatedTransport)?;

    let mut icmp_error = None;
    let mut reversed = None;
    let (proto, src_port, dst_port, tcp_flags) = match chain.proto {
        proto::ICMPV6 => {
            let ih = l4
                .first_chunk::<ICMP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            match ih[0] {
                // A reply: to an IPv4 host's request through the client's
                // binding (RFC 6146 §3.5.3).
                icmp6::ECHO_REQUEST | icmp6::ECHO_REPLY => {
                    check_icmpv6(&src, &dst, l4)?;
                    let id = be16([ih[4], ih[5]]);
                    (L4Proto::Icmp, id, id, 0)
                }
                icmp6::DEST_UNREACHABLE
                | icmp6::PACKET_TOO_BIG
                | icmp6::TIME_EXCEEDED
                | icmp6::PARAMETER_PROBLEM => {
                    check_icmpv6(&src, &dst, l4)?;
                    let inner_at = chain.l4_offset + ICMP_HEADER_LEN;
                    let q = parse_quoted_v6(pkt.get(inner_at..total_len).unwrap_or_default())?;
                    // The error must go to the quoted packet's sender.
                    if q.flow.src != dst {
                        return Err(DropReason::IcmpQuoteUntranslatable);
                    }
                    icmp_error = Some(q.quoted(ih[0], ih[1], inner_at));
                    let f = q.flow;
                    reversed = Some((f.dst, f.src));
                    (f.proto, f.dst_port, f.src_port, 0)
                }
                _ => return Err(DropReason::Icmpv6TypeUnsupported),
            }
        }
        nh => {
            let ports = parse_ports(nh, l4)?;
            // RFC 8200 §8.1: IPv6 receivers discard UDP with a zero checksum.
            if ports.0 == L4Proto::Udp && udp_checksum_is_zero(l4) {
                return Err(DropReason::UdpZeroChecksum);
            }
            ports
        }
    };

    // The kernel decremented the hop limit when it routed the packet here;
    // zero means it was sent from the gateway itself with no hops left.
    if hop_limit == 0 {
        return Err(DropReason::HopLimitExceeded);
    }

    let (src, dst) = reversed.unwrap_or((src, dst));
    let flow = Flow6 {
        proto,
        src,
        dst,
        src_port,
        dst_port,
        tcp_flags,
    };
    Ok(Parsed6 {
        flow,
        l4_offset: chain.l4_offset,
        total_len,
        fragment_id,
        icmp_error,
    })
}

/// What the translator needs of a packet quoted in an ICMP error.
struct QuotedParse<F> {
    flow: F,
    src: IpAddr,
    dst: IpAddr,
    /// Transport header offset from the quoted IP header.
    l4_offset: usize,
    /// Upper-layer length from the quoted header's length field.
    l4_len: u16,
    proto: u8,
    hop_limit: u8,
    traffic_class: u8,
    fragment: Option<QuotedFragment>,
}

impl<F> QuotedParse<F> {
    /// The quote of an ICMP error of `icmp_type`/`code` whose quoted IP
    /// header starts at `ip_offset` in the packet.
    fn quoted(&self, icmp_type: u8, code: u8, ip_offset: usize) -> Quoted {
        Quoted {
            icmp_type,
            code,
            ip_offset,
            l4_offset: ip_offset + self.l4_offset,
            l4_len: self.l4_len,
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            hop_limit: self.hop_limit,
            traffic_class: self.traffic_class,
            fragment: self.fragment,
        }
    }
}

/// The IPv6 packet quoted in an ICMPv6 error (RFC 4443 §3), possibly cut short.
fn parse_quoted_v6(q: &[u8]) -> Result<QuotedParse<Flow6>, DropReason> {
    let hdr = q
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    if hdr[0] >> 4 != 6 {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    let total_len = IPV6_HEADER_LEN + usize::from(be16([hdr[4], hdr[5]]));
    let chain =
        ipv6_ext::walk(q, total_len, false).map_err(|_| DropReason::IcmpQuoteUntranslatable)?;
    // Only the first fragment carries the ports.
    if chain.fragment.is_some_and(|f| f.offset != 0) {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    let l4 = q.get(chain.l4_offset..).unwrap_or_default();
    let (proto, src_port, dst_port) = quoted_ports(
        chain.proto,
        l4,
        proto::ICMPV6,
        [icmp6::ECHO_REQUEST, icmp6::ECHO_REPLY],
    )?;
    let l4_len = u16::try_from(total_len.saturating_sub(chain.l4_offset))
        .map_err(|_| DropReason::IcmpQuoteUntranslatable)?;
    let src = Ipv6Addr::from(array_at::<16>(hdr, 8));
    let dst = Ipv6Addr::from(array_at::<16>(hdr, 24));
    Ok(QuotedParse {
        flow: Flow6 {
            proto,
            src,
            dst,
            src_port,
            dst_port,
            tcp_flags: 0,
        },
        src: src.into(),
        dst: dst.into(),
        l4_offset: chain.l4_offset,
        l4_len,
        proto: chain.proto,
        hop_limit: hdr[7],
        traffic_class: (hdr[0] << 4) | (hdr[1] >> 4),
        fragment: chain.fragment.map(|f| QuotedFragment {
            id: f.id,
            more: f.more,
        }),
    })
}

/// The IPv4 packet quoted in an ICMPv4 error (RFC 792), possibly cut short.
fn parse_quoted_v4(q: &[u8]) -> Result<QuotedParse<Flow4>, DropReason> {
    let hdr = q
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let header_len = usize::from(hdr[0] & 0x0f) * 4;
    if hdr[0] >> 4 != 4 || header_len < IPV4_HEADER_LEN {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    if be16([hdr[6], hdr[7]]) & IPV4_FRAG_OFFSET != 0 {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    let l4 = q.get(header_len..).unwrap_or_default();
    let (proto, src_port, dst_port) = quoted_ports(
        hdr[9],
        l4,
        proto::ICMP,
        [icmp4::ECHO_REQUEST, icmp4::ECHO_REPLY],
    )?;
    let l4_len = usize::from(be16([hdr[2], hdr[3]]))
        .checked_sub(header_len)
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let src = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
    let dst = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
    let more = be16([hdr[6], hdr[7]]) & IPV4_FLAG_MF != 0;
    Ok(QuotedParse {
        flow: Flow4 {
            proto,
            src,
            dst,
            src_port,
            dst_port,
            tcp_flags: 0,
        },
        src: src.into(),
        dst: dst.into(),
        l4_offset: header_len,
        l4_len: l4_len as u16,
        proto: hdr[9],
        hop_limit: hdr[8],
        traffic_class: hdr[1],
        fragment: more.then(|| QuotedFragment {
            id: u32::from(be16([hdr[4], hdr[5]])),
            more,
        }),
    })
}

/// Walks the IPv4 options (RFC 791 §3.1). RFC 7915 §4.1: options are not
/// translated, but an unexpired source route option means the packet must be
/// discarded (with ICMPv4 Source Route Failed, sent by the caller).
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

/// Whether an IPv4 header (validated by the caller) is a fragment: More
/// Fragments set or a non-zero offset (RFC 791 §3.2).
pub fn is_fragment_v4(pkt: &[u8]) -> bool {
    get16(pkt, 6) & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET) != 0
}

/// Validates an IPv4 packet arriving from the IPv4 side and extracts its flow.
///
/// RFC 7915 §4.1: options are ignored except an unexpired source route;
/// fragments are refused with [`DropReason::Fragment`] (the caller
/// reassembles them first). An ICMPv4 error is parsed together with the
/// packet it quotes, and its flow is that packet's flow reversed (RFC 6146
/// §3.4).
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
    if is_fragment_v4(pkt) {
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

    let mut icmp_error = None;
    let mut reversed = None;
    let (proto, src_port, dst_port, tcp_flags) = match protocol {
        proto::ICMP => {
            let ih = l4
                .first_chunk::<ICMP_HEADER_LEN>()
                .ok_or(DropReason::TruncatedTransport)?;
            match ih[0] {
                // A request: to a client's binding (RFC 6146 §3.5.3).
                icmp4::ECHO_REPLY | icmp4::ECHO_REQUEST => {
                    // Recomputed with a pseudo-header on translation: verify first.
                    if !is_valid(sum(l4)) {
                        return Err(DropReason::BadTransportChecksum);
                    }
                    let id = be16([ih[4], ih[5]]);
                    (L4Proto::Icmp, id, id, 0)
                }
                icmp4::DEST_UNREACHABLE | icmp4::TIME_EXCEEDED | icmp4::PARAMETER_PROBLEM => {
                    if !is_valid(sum(l4)) {
                        return Err(DropReason::BadTransportChecksum);
                    }
                    let inner_at = header_len + ICMP_HEADER_LEN;
                    let q = parse_quoted_v4(pkt.get(inner_at..).unwrap_or_default())?;
                    if q.flow.src != dst {
                        return Err(DropReason::IcmpQuoteUntranslatable);
                    }
                    icmp_error = Some(q.quoted(ih[0], ih[1], inner_at));
                    let f = q.flow;
                    reversed = Some((f.dst, f.src));
                    (f.proto, f.dst_port, f.src_port, 0)
                }
                _ => return Err(DropReason::Icmpv4TypeUnsupported),
            }
        }
        p => parse_ports(p, l4)?,
    };

    // The kernel decremented the TTL when it routed the packet here.
    if ttl == 0 {
        return Err(DropReason::HopLimitExceeded);
    }

    let (src, dst) = reversed.unwrap_or((src, dst));
    let flow = Flow4 {
        proto,
        src,
        dst,
        src_port,
        dst_port,
        tcp_flags,
    };
    Ok(Parsed4 {
        flow,
        l4_offset: header_len,
        total_len,
        dont_fragment: hdr[6] & IPV4_FLAG_DF != 0,
        ipv4_id: be16([hdr[4], hdr[5]]),
        icmp_error,
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
/// caller, DF set only above 1260 bytes (what was a fragment: DF clear,
/// §5.1.1), TTL = Hop Limit + 1 (see the module
/// doc), extension headers dropped, ICMPv6 becomes ICMP. §5.2: Echo Request 128 becomes 8. §5.5: transport checksums are
/// updated for the pseudo-header.
pub fn translate_6to4(
    pkt: &[u8],
    parsed: &Parsed6,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ipv4_id: u16,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let fixed = fixed_v6(pkt, parsed)?;
    let l4_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    let total_len = IPV4_HEADER_LEN + l4_in.len();
    let (ip4, l4) = out
        .get_mut(..total_len)
        .and_then(|o| o.split_first_chunk_mut::<IPV4_HEADER_LEN>())
        .ok_or(DropReason::OutputTooSmall)?;
    // Same length by construction: both are total_len - 20.
    l4.copy_from_slice(l4_in);
    *ip4 = headers_6to4(fixed, parsed, src, dst, ipv4_id, l4)?;
    Ok(total_len)
}

/// [`translate_6to4`] without copying: the IPv6 packet at `buf[start..]`
/// becomes the IPv4 packet at `buf[new_start..]`, its transport header and
/// payload left where they are (the IPv4 header is written over the end of
/// the IPv6 headers). Returns `new_start`; the length is 20 plus the
/// transport length. What a superpacket from an offloading device needs:
/// no byte of payload is read or moved.
pub fn translate_6to4_in_place(
    buf: &mut [u8],
    start: usize,
    parsed: &Parsed6,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ipv4_id: u16,
) -> Result<usize, DropReason> {
    let fixed = fixed_v6(buf.get(start..).unwrap_or_default(), parsed)?;
    let l4_at = start + parsed.l4_offset;
    let new_start = l4_at - IPV4_HEADER_LEN;
    let (head, l4) = buf
        .get_mut(..start + parsed.total_len)
        .ok_or(DropReason::Truncated)?
        .split_at_mut(l4_at);
    let header = headers_6to4(fixed, parsed, src, dst, ipv4_id, l4)?;
    head[new_start..].copy_from_slice(&header);
    Ok(new_start)
}

/// The first 8 bytes of an IPv6 packet that is not an ICMP error (those go
/// through `icmp_error`, which translates the quote too).
fn fixed_v6(pkt: &[u8], parsed: &Parsed6) -> Result<[u8; 8], DropReason> {
    if parsed.icmp_error.is_some() {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    pkt.first_chunk::<8>().copied().ok_or(DropReason::Truncated)
}

/// Rewrites the transport header `l4` (ports, identifier, checksum) for
/// IPv4 and returns the IPv4 header (RFC 7915 §5.1, §5.2, §5.5); `fixed`
/// holds the first 8 bytes of the IPv6 header.
fn headers_6to4(
    fixed: [u8; 8],
    parsed: &Parsed6,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ipv4_id: u16,
    l4: &mut [u8],
) -> Result<[u8; IPV4_HEADER_LEN], DropReason> {
    let total_len = IPV4_HEADER_LEN + l4.len();
    let total16 = u16::try_from(total_len).map_err(|_| DropReason::TooBigForIpv4)?;
    let flow = &parsed.flow;
    let traffic_class = (fixed[0] << 4) | (fixed[1] >> 4);
    let hop_limit = fixed[7];
    let protocol = match flow.proto {
        L4Proto::Tcp => proto::TCP,
        L4Proto::Udp => proto::UDP,
        L4Proto::Icmp => proto::ICMP,
    };
    // RFC 7915 §5.1.1: what was a fragment (here: reassembled, or atomic)
    // leaves with DF clear, so that IPv4 routers may fragment it as its
    // sender allowed. Its identification is the caller's, not the low 16
    // bits of the IPv6 one: a stateful NAT64 sends it from a pool4 address
    // many clients share, where their identifications would collide
    // (RFC 6864 §4).
    let flags = match parsed.fragment_id {
        Some(_) => 0,
        None if total_len > DF_THRESHOLD => IPV4_FLAG_DF,
        None => 0,
    };
    let [len0, len1] = total16.to_be_bytes();
    let [id0, id1] = ipv4_id.to_be_bytes();
    let [s0, s1, s2, s3] = src.ip().octets();
    let [d0, d1, d2, d3] = dst.ip().octets();
    let mut ip4 = [
        0x45,
        traffic_class,
        len0,
        len1,
        id0,
        id1,
        flags,
        0,
        outgoing_hop_limit(hop_limit),
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
    let [c0, c1] = finish(sum(&ip4)).to_be_bytes();
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
        L4Proto::Icmp => {
            // RFC 7915 §5.2: echo request 128 -> 8, echo reply 129 -> 0.
            let icmp_type = match l4.first() {
                Some(&icmp6::ECHO_REPLY) => icmp4::ECHO_REPLY,
                _ => icmp4::ECHO_REQUEST,
            };
            rewrite_echo(l4, icmp_type, src.port(), 0)?
        }
    }
    Ok(ip4)
}

/// Translates the IPv4 packet `pkt` (validated as `parsed`) into IPv6 in `out`
/// (RFC 7915 §4), with source `src` and destination `dst` (ports, or the ICMP
/// identifier in `dst.port()`), and returns its length.
///
/// RFC 7915 §4.1 header mapping: Traffic Class = TOS, Flow Label 0, Payload
/// Length = Total Length - header length (options dropped), Hop Limit =
/// TTL + 1 (see the module doc), ICMP becomes ICMPv6. §4.2: Echo Reply 0 becomes 129, checksum
/// recomputed with the IPv6 pseudo-header. §4.5: TCP/UDP checksums updated
/// for the pseudo-header; a zero UDP checksum is computed (RFC 6146 §3.4).
pub fn translate_4to6(
    pkt: &[u8],
    parsed: &Parsed4,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let fixed = fixed_v4(pkt, parsed)?;
    let l4_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    let total_len = IPV6_HEADER_LEN + l4_in.len();
    let (ip6, l4) = out
        .get_mut(..total_len)
        .and_then(|o| o.split_first_chunk_mut::<IPV6_HEADER_LEN>())
        .ok_or(DropReason::OutputTooSmall)?;
    l4.copy_from_slice(l4_in);
    *ip6 = headers_4to6(fixed, parsed, src, dst, l4)?;
    Ok(total_len)
}

/// [`translate_4to6`] without copying: the IPv4 packet at `buf[start..]`
/// becomes the IPv6 packet at `buf[new_start..]`, 20 bytes before the
/// IPv4 header when it has no options (`start` must leave that room, else
/// `OutputTooSmall`). Returns `new_start`; the length is 40 plus the
/// transport length.
pub fn translate_4to6_in_place(
    buf: &mut [u8],
    start: usize,
    parsed: &Parsed4,
    src: SocketAddrV6,
    dst: SocketAddrV6,
) -> Result<usize, DropReason> {
    let fixed = fixed_v4(buf.get(start..).unwrap_or_default(), parsed)?;
    let l4_at = start + parsed.l4_offset;
    let new_start = l4_at
        .checked_sub(IPV6_HEADER_LEN)
        .ok_or(DropReason::OutputTooSmall)?;
    let (head, l4) = buf
        .get_mut(..start + parsed.total_len)
        .ok_or(DropReason::Truncated)?
        .split_at_mut(l4_at);
    let header = headers_4to6(fixed, parsed, src, dst, l4)?;
    head[new_start..].copy_from_slice(&header);
    Ok(new_start)
}

/// The TOS and TTL of an IPv4 packet that is not an ICMP error.
fn fixed_v4(pkt: &[u8], parsed: &Parsed4) -> Result<(u8, u8), DropReason> {
    if parsed.icmp_error.is_some() {
        return Err(DropReason::IcmpQuoteUntranslatable);
    }
    let ip4 = pkt
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    Ok((ip4[1], ip4[8]))
}

/// Rewrites the transport header `l4` for IPv6 and returns the IPv6 header
/// (RFC 7915 §4.1, §4.2, §4.5); `(tos, ttl)` come from the IPv4 header.
fn headers_4to6(
    (tos, ttl): (u8, u8),
    parsed: &Parsed4,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    l4: &mut [u8],
) -> Result<[u8; IPV6_HEADER_LEN], DropReason> {
    // At most 65535 - 20: the IPv4 total length bounds it.
    let payload_len = u16::try_from(l4.len()).map_err(|_| DropReason::Truncated)?;
    let flow = &parsed.flow;
    let next_header = match flow.proto {
        L4Proto::Tcp => proto::TCP,
        L4Proto::Udp => proto::UDP,
        L4Proto::Icmp => proto::ICMPV6,
    };
    let [p0, p1] = payload_len.to_be_bytes();
    let mut ip6 = [0u8; IPV6_HEADER_LEN];
    ip6[..8].copy_from_slice(&[
        0x60 | (tos >> 4),
        tos << 4,
        0,
        0,
        p0,
        p1,
        next_header,
        outgoing_hop_limit(ttl),
    ]);
    ip6[8..24].copy_from_slice(&src.ip().octets());
    ip6[24..].copy_from_slice(&dst.ip().octets());

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
            // RFC 7915 §4.2: echo request 8 -> 128, echo reply 0 -> 129.
            let icmp_type = match l4.first() {
                Some(&icmp4::ECHO_REQUEST) => icmp6::ECHO_REQUEST,
                _ => icmp6::ECHO_REPLY,
            };
            rewrite_echo(l4, icmp_type, dst.port(), pseudo)?;
        }
    }
    Ok(ip6)
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
