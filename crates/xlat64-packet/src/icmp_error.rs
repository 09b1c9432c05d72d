//! Translation of ICMP error messages (RFC 7915 §4.2-§4.4, §5.2-§5.4): the
//! type, code and parameter by the tables of [`crate::icmp_map`], the quoted
//! packet translated too (its addresses and ports as the caller's session
//! says, its length fields, its transport checksum updated for the change),
//! the whole cut to 576 bytes (ICMPv4, RFC 1812 §4.3.2.3) or 1280 bytes
//! (ICMPv6, RFC 4443 §2.4), and RFC 4884 extensions carried over with the
//! length attribute recomputed.
//!
//! The quoted transport checksum cannot be verified (the quote is cut short),
//! so it is updated incrementally (RFC 1624): a quote whose checksum was
//! right stays right. The outer ICMP checksum was verified by the parser and
//! is computed anew.

use crate::bytes::{array_at, get16, get32, set16, set32, set8};
use crate::checksum::{combine, finish, pseudo_v4, pseudo_v6, sum, update};
use crate::icmp_map::{
    error_4to6, error_6to4, fragmentation_needed_mtu, packet_too_big_mtu, v4 as icmp4, v6 as icmp6,
    Mapped, Param,
};
use crate::ipv6_ext::{nh, FRAGMENT_HEADER_LEN};
use crate::translate::{
    outgoing_hop_limit, proto, DF_THRESHOLD, ICMP_HEADER_LEN, IPV4_FLAG_DF, IPV4_FLAG_MF,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};
use crate::{DropReason, Parsed4, Parsed6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// Largest ICMPv4 error (RFC 1812 §4.3.2.3, RFC 7915 §5.4).
pub const MAX_ICMPV4_ERROR: usize = 576;
/// Largest ICMPv6 error: the IPv6 minimum MTU (RFC 4443 §2.4(c), RFC 7915 §4.4).
pub const MAX_ICMPV6_ERROR: usize = 1280;
/// RFC 4884 §4: with extensions, the original datagram is at least this long.
const RFC4884_MIN_ORIGINAL: usize = 128;

/// Where the translated error and its quoted packet go. The quoted packet is
/// the sender's own packet seen from the other side; the outer destination is
/// its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAddrs<A, S> {
    /// Source of the translated error.
    pub outer_src: A,
    /// Source of the quoted packet after translation (ICMP echo: the port
    /// is the identifier). The error is sent to its address.
    pub inner_src: S,
    /// Destination of the quoted packet after translation.
    pub inner_dst: S,
}

/// How the original datagram and an RFC 4884 extension split the quote.
struct Split<'a> {
    /// The quoted packet (possibly with the sender's zero padding).
    original: &'a [u8],
    /// The extension structure, empty without one.
    extension: &'a [u8],
}

/// RFC 4884 §5: a non-zero length attribute of `units` bytes each marks the
/// end of the original datagram. An extended message carries at least 128
/// bytes of it (RFC 4884 §4.1, §4.2), so an attribute below that (which
/// could cut the quote before its ports) or pointing past the message comes
/// from a non-compliant sender and is treated as absent.
fn split_rfc4884(quote: &[u8], length_attr: u8, unit: usize) -> Split<'_> {
    let original_len = usize::from(length_attr) * unit;
    match quote.split_at_checked(original_len) {
        Some((original, extension)) if original_len >= RFC4884_MIN_ORIGINAL => Split {
            original,
            extension,
        },
        _ => Split {
            original: quote,
            extension: &[],
        },
    }
}

/// Layout of the translated quote: how many transport bytes are kept, the
/// padded length of the original datagram and whether the extension stays.
struct Layout {
    l4_kept: usize,
    original_len: usize,
    keep_extension: bool,
}

/// Fits `header + quoted IP header + l4 bytes [+ padding + extension]` in
/// `max` bytes. `unit` is the target's length attribute unit; `None` when
/// the target message type has no length attribute.
fn layout(
    max: usize,
    outer_len: usize,
    ip_len: usize,
    l4_len: usize,
    extension_len: usize,
    unit: Option<usize>,
) -> Layout {
    let room = max.saturating_sub(outer_len + ip_len);
    if let (Some(unit), true) = (unit, extension_len > 0) {
        // Room for the padded original datagram in front of the extension.
        let room_original = max.saturating_sub(outer_len + extension_len);
        let room_original = room_original - room_original % unit;
        if room_original >= RFC4884_MIN_ORIGINAL && room_original >= ip_len {
            let l4_kept = l4_len.min(room_original - ip_len);
            let original_len = (ip_len + l4_kept)
                .next_multiple_of(unit)
                .max(RFC4884_MIN_ORIGINAL);
            return Layout {
                l4_kept,
                original_len,
                keep_extension: true,
            };
        }
    }
    let l4_kept = l4_len.min(room);
    Layout {
        l4_kept,
        original_len: ip_len + l4_kept,
        keep_extension: false,
    }
}

/// The size of a translated error: the layout of its quote and lengths.
struct Plan {
    lay: Layout,
    ext_len: usize,
    icmp_len: usize,
    total: usize,
}

/// Lays out a translated error whose outer IP header is `outer_ip_len`
/// bytes, quoting `split` (whose IP header of `quoted_ip_len` bytes becomes
/// `inner_ip_len`), in at most `max` bytes (RFC 7915 §4.4, §5.4).
fn plan(
    split: &Split<'_>,
    quoted_ip_len: usize,
    inner_ip_len: usize,
    outer_ip_len: usize,
    max: usize,
    target_unit: Option<usize>,
) -> Plan {
    let l4_avail = split.original.len().saturating_sub(quoted_ip_len);
    let lay = layout(
        max,
        outer_ip_len + ICMP_HEADER_LEN,
        inner_ip_len,
        l4_avail,
        split.extension.len(),
        target_unit,
    );
    let ext_len = if lay.keep_extension {
        split.extension.len()
    } else {
        0
    };
    let icmp_len = ICMP_HEADER_LEN + lay.original_len + ext_len;
    Plan {
        lay,
        ext_len,
        icmp_len,
        total: outer_ip_len + icmp_len,
    }
}

/// Rewrites the first bytes of a quoted transport header: ports (or the
/// echo type and identifier) and the checksum where the quote still holds
/// it, updated incrementally for the header and pseudo-header change.
/// `old_pseudo`/`new_pseudo` are the pseudo-header sums (0 for ICMPv4).
#[allow(clippy::too_many_arguments)]
fn rewrite_quoted_l4(
    l4: &mut [u8],
    proto_in: u8,
    echo_type_out: Option<u8>,
    src_port: u16,
    dst_port: u16,
    old_pseudo: u32,
    new_pseudo: u32,
) -> Result<(), DropReason> {
    let checksum_at = match proto_in {
        proto::TCP => 16,
        proto::UDP => 6,
        _ => 2,
    };
    // The first 8 bytes hold every field that changes (and, for UDP and
    // ICMP, the checksum itself, which then cancels out of the difference).
    let old_words = sum(&array_at::<8>(l4, 0));
    let zero_udp = proto_in == proto::UDP && get16(l4, 6) == 0;
    match echo_type_out {
        Some(t) => {
            set8(l4, 0, t)?;
            set16(l4, 4, src_port)?;
        }
        None => {
            set16(l4, 0, src_port)?;
            set16(l4, 2, dst_port)?;
        }
    }
    // A quote cut before its checksum, or UDP without one, keeps it as is.
    if l4.len() < checksum_at + 2 || zero_udp {
        return Ok(());
    }
    let new_words = sum(&array_at::<8>(l4, 0));
    let old = combine(old_pseudo, old_words);
    let new = combine(new_pseudo, new_words);
    let mut updated = update(get16(l4, checksum_at), old, new);
    if proto_in == proto::UDP && updated == 0 {
        updated = 0xffff;
    }
    set16(l4, checksum_at, updated)
}

/// RFC 7915 §5.2-§5.4: translates the ICMPv6 error `pkt` (validated as
/// `parsed`, whose `icmp_error` is set) into an ICMPv4 error in `out`.
/// `ipv6_mtu` is the MTU of the translator's IPv6 side (for Packet Too Big).
/// Returns the length written.
pub fn translate_error_6to4(
    pkt: &[u8],
    parsed: &Parsed6,
    addrs: &ErrorAddrs<Ipv4Addr, SocketAddrV4>,
    ipv4_id: u16,
    ipv6_mtu: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let q = parsed
        .icmp_error
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let icmp_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    let rest = get32(icmp_in, 4);
    let mapped = error_6to4(q.icmp_type, q.code, rest).ok_or(DropReason::IcmpUntranslatable)?;
    let param = match mapped.param {
        Param::Unused => 0,
        Param::Pointer(p) => u32::from(p) << 24,
        Param::Mtu => u32::from(fragmentation_needed_mtu(rest, ipv6_mtu)),
    };
    // RFC 4884: ICMPv6 Destination Unreachable and Time Exceeded carry the
    // length in 8-byte units in their first byte after the checksum.
    let has_length = matches!(q.icmp_type, icmp6::DEST_UNREACHABLE | icmp6::TIME_EXCEEDED);
    let quote = pkt.get(q.ip_offset..parsed.total_len).unwrap_or_default();
    let split = if has_length {
        split_rfc4884(quote, icmp_in.get(4).copied().unwrap_or(0), 8)
    } else {
        split_rfc4884(quote, 0, 8)
    };
    let target_unit = matches!(
        mapped.icmp_type,
        icmp4::DEST_UNREACHABLE | icmp4::TIME_EXCEEDED | icmp4::PARAMETER_PROBLEM
    )
    .then_some(4);
    let quoted_ip_len = q
        .l4_offset
        .checked_sub(q.ip_offset)
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let Plan {
        lay,
        ext_len,
        total,
        ..
    } = plan(
        &split,
        quoted_ip_len,
        IPV4_HEADER_LEN,
        IPV4_HEADER_LEN,
        MAX_ICMPV4_ERROR,
        target_unit,
    );
    let out = out.get_mut(..total).ok_or(DropReason::OutputTooSmall)?;
    out.fill(0);

    // Outer IPv4 header (RFC 7915 §5.1; at most 576 bytes: DF clear).
    let ip6 = pkt
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    let outer_dst = *addrs.inner_src.ip();
    write_ipv4_header(
        out,
        Ipv4Header {
            tos: (ip6[0] << 4) | (ip6[1] >> 4),
            total_len: total as u16,
            id: ipv4_id,
            dont_fragment: false,
            more_fragments: false,
            ttl: outgoing_hop_limit(ip6[7]),
            protocol: proto::ICMP,
            src: addrs.outer_src,
            dst: outer_dst,
        },
    )?;

    // ICMPv4 header.
    let icmp_at = IPV4_HEADER_LEN;
    set8(out, icmp_at, mapped.icmp_type)?;
    set8(out, icmp_at + 1, mapped.code)?;
    set32(out, icmp_at + 4, param)?;
    if lay.keep_extension {
        set8(out, icmp_at + 5, (lay.original_len / 4) as u8)?;
    }

    // The quoted packet, IPv6 -> IPv4 (RFC 7915 §5.3).
    let inner_at = icmp_at + ICMP_HEADER_LEN;
    let inner_proto = if q.proto == proto::ICMPV6 {
        proto::ICMP
    } else {
        q.proto
    };
    let inner_total = usize::from(q.l4_len) + IPV4_HEADER_LEN;
    // RFC 7915 §5.3 with §5.1.1: a quoted first fragment (the parser refuses
    // the others) keeps MF and the low 16 bits of its identification, DF
    // clear; that is the IPv4 packet the translator fragmented, when it
    // was the translator's own work.
    let (id, dont_fragment, more_fragments) = match q.fragment {
        Some(f) => (f.id as u16, false, f.more),
        None => (0, inner_total > DF_THRESHOLD, false),
    };
    write_ipv4_header(
        out.get_mut(inner_at..).ok_or(DropReason::OutputTooSmall)?,
        Ipv4Header {
            tos: q.traffic_class,
            total_len: u16::try_from(inner_total).unwrap_or(u16::MAX),
            id,
            dont_fragment,
            more_fragments,
            ttl: q.hop_limit,
            protocol: inner_proto,
            src: *addrs.inner_src.ip(),
            dst: *addrs.inner_dst.ip(),
        },
    )?;
    let l4_in = split
        .original
        .get(quoted_ip_len..quoted_ip_len.saturating_add(lay.l4_kept))
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let l4_at = inner_at + IPV4_HEADER_LEN;
    let l4_out = out
        .get_mut(l4_at..l4_at + lay.l4_kept)
        .ok_or(DropReason::OutputTooSmall)?;
    l4_out.copy_from_slice(l4_in);
    let (IpAddr::V6(qsrc), IpAddr::V6(qdst)) = (q.src, q.dst) else {
        return Err(DropReason::IcmpQuoteUntranslatable);
    };
    let (old_pseudo, new_pseudo, echo) = if q.proto == proto::ICMPV6 {
        let echo = match l4_in.first() {
            Some(&icmp6::ECHO_REQUEST) => icmp4::ECHO_REQUEST,
            _ => icmp4::ECHO_REPLY,
        };
        (
            pseudo_v6(&qsrc, &qdst, proto::ICMPV6, u32::from(q.l4_len)),
            0,
            Some(echo),
        )
    } else {
        (
            pseudo_v6(&qsrc, &qdst, q.proto, u32::from(q.l4_len)),
            pseudo_v4(
                *addrs.inner_src.ip(),
                *addrs.inner_dst.ip(),
                q.proto,
                q.l4_len,
            ),
            None,
        )
    };
    rewrite_quoted_l4(
        l4_out,
        q.proto,
        echo,
        addrs.inner_src.port(),
        addrs.inner_dst.port(),
        old_pseudo,
        new_pseudo,
    )?;

    if lay.keep_extension {
        let ext_at = inner_at + lay.original_len;
        out.get_mut(ext_at..ext_at + ext_len)
            .ok_or(DropReason::OutputTooSmall)?
            .copy_from_slice(split.extension);
    }
    let check = finish(sum(out.get(icmp_at..).unwrap_or_default()));
    set16(out, icmp_at + 2, check)?;
    Ok(total)
}

/// RFC 7915 §4.2-§4.4: translates the ICMPv4 error `pkt` (validated as
/// `parsed`, whose `icmp_error` is set) into an ICMPv6 error in `out`.
/// `ipv6_mtu` is the MTU of the translator's IPv6 side (for Packet Too Big).
/// Returns the length written.
pub fn translate_error_4to6(
    pkt: &[u8],
    parsed: &Parsed4,
    addrs: &ErrorAddrs<Ipv6Addr, SocketAddrV6>,
    ipv6_mtu: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let q = parsed
        .icmp_error
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let icmp_in = pkt
        .get(parsed.l4_offset..parsed.total_len)
        .ok_or(DropReason::Truncated)?;
    let pointer = icmp_in.get(4).copied().unwrap_or(0);
    let mapped: Mapped =
        error_4to6(q.icmp_type, q.code, pointer).ok_or(DropReason::IcmpUntranslatable)?;
    let quote = pkt.get(q.ip_offset..parsed.total_len).unwrap_or_default();
    let param = match mapped.param {
        Param::Unused => 0,
        Param::Pointer(p) => u32::from(p),
        Param::Mtu => packet_too_big_mtu(get16(icmp_in, 6), get16(quote, 2), ipv6_mtu),
    };
    // RFC 4884: ICMPv4 Destination Unreachable, Time Exceeded and Parameter
    // Problem carry the length in 4-byte units in their second byte.
    let split = split_rfc4884(quote, icmp_in.get(5).copied().unwrap_or(0), 4);
    let target_unit = matches!(
        mapped.icmp_type,
        icmp6::DEST_UNREACHABLE | icmp6::TIME_EXCEEDED
    )
    .then_some(8);
    let quoted_ip_len = q
        .l4_offset
        .checked_sub(q.ip_offset)
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    // RFC 7915 §4.3 with §4.1: a quoted first fragment (MF set; later
    // fragments were refused by the parser) is quoted with a Fragment header
    // carrying its identification, as the translated fragment would have.
    let quoted_fragment_id = q.fragment.map(|f| f.id);
    let inner_ip_len = IPV6_HEADER_LEN + quoted_fragment_id.map_or(0, |_| FRAGMENT_HEADER_LEN);
    let Plan {
        lay,
        ext_len,
        icmp_len,
        total,
    } = plan(
        &split,
        quoted_ip_len,
        inner_ip_len,
        IPV6_HEADER_LEN,
        MAX_ICMPV6_ERROR,
        target_unit,
    );
    let out = out.get_mut(..total).ok_or(DropReason::OutputTooSmall)?;
    out.fill(0);

    let ip4 = pkt
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::Truncated)?;
    let outer_dst = *addrs.inner_src.ip();
    write_ipv6_header(
        out,
        ip4[1],
        icmp_len as u16,
        proto::ICMPV6,
        outgoing_hop_limit(ip4[8]),
        &addrs.outer_src,
        &outer_dst,
    )?;

    let icmp_at = IPV6_HEADER_LEN;
    set8(out, icmp_at, mapped.icmp_type)?;
    set8(out, icmp_at + 1, mapped.code)?;
    set32(out, icmp_at + 4, param)?;
    if lay.keep_extension {
        set8(out, icmp_at + 4, (lay.original_len / 8) as u8)?;
    }

    // The quoted packet, IPv4 -> IPv6 (RFC 7915 §4.3).
    let inner_at = icmp_at + ICMP_HEADER_LEN;
    let inner_proto = if q.proto == proto::ICMP {
        proto::ICMPV6
    } else {
        q.proto
    };
    let (next_header, payload_len) = match quoted_fragment_id {
        Some(_) => (
            nh::FRAGMENT,
            q.l4_len.saturating_add(FRAGMENT_HEADER_LEN as u16),
        ),
        None => (inner_proto, q.l4_len),
    };
    write_ipv6_header(
        out.get_mut(inner_at..).ok_or(DropReason::OutputTooSmall)?,
        q.traffic_class,
        payload_len,
        next_header,
        q.hop_limit,
        addrs.inner_src.ip(),
        addrs.inner_dst.ip(),
    )?;
    if let Some(id) = quoted_fragment_id {
        let frag_at = inner_at + IPV6_HEADER_LEN;
        set8(out, frag_at, inner_proto)?;
        // Offset 0, M set (RFC 8200 §4.5).
        set16(out, frag_at + 2, 1)?;
        set32(out, frag_at + 4, id)?;
    }
    let l4_in = split
        .original
        .get(quoted_ip_len..quoted_ip_len.saturating_add(lay.l4_kept))
        .ok_or(DropReason::IcmpQuoteUntranslatable)?;
    let l4_at = inner_at + inner_ip_len;
    let l4_out = out
        .get_mut(l4_at..l4_at + lay.l4_kept)
        .ok_or(DropReason::OutputTooSmall)?;
    l4_out.copy_from_slice(l4_in);
    let (IpAddr::V4(qsrc), IpAddr::V4(qdst)) = (q.src, q.dst) else {
        return Err(DropReason::IcmpQuoteUntranslatable);
    };
    let (old_pseudo, new_pseudo, echo) = if q.proto == proto::ICMP {
        let echo = match l4_in.first() {
            Some(&icmp4::ECHO_REQUEST) => icmp6::ECHO_REQUEST,
            _ => icmp6::ECHO_REPLY,
        };
        (
            0,
            pseudo_v6(
                addrs.inner_src.ip(),
                addrs.inner_dst.ip(),
                proto::ICMPV6,
                u32::from(q.l4_len),
            ),
            Some(echo),
        )
    } else {
        (
            pseudo_v4(qsrc, qdst, q.proto, q.l4_len),
            pseudo_v6(
                addrs.inner_src.ip(),
                addrs.inner_dst.ip(),
                q.proto,
                u32::from(q.l4_len),
            ),
            None,
        )
    };
    rewrite_quoted_l4(
        l4_out,
        q.proto,
        echo,
        addrs.inner_src.port(),
        addrs.inner_dst.port(),
        old_pseudo,
        new_pseudo,
    )?;

    if lay.keep_extension {
        let ext_at = inner_at + lay.original_len;
        out.get_mut(ext_at..ext_at + ext_len)
            .ok_or(DropReason::OutputTooSmall)?
            .copy_from_slice(split.extension);
    }
    let icmp = out.get(icmp_at..).unwrap_or_default();
    let s = combine(
        pseudo_v6(&addrs.outer_src, &outer_dst, proto::ICMPV6, icmp_len as u32),
        sum(icmp),
    );
    set16(out, icmp_at + 2, finish(s))?;
    Ok(total)
}

/// The fields of an IPv4 header without options that the writers vary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipv4Header {
    pub(crate) tos: u8,
    pub(crate) total_len: u16,
    pub(crate) id: u16,
    pub(crate) dont_fragment: bool,
    /// MF, with a zero fragment offset: a first fragment.
    pub(crate) more_fragments: bool,
    pub(crate) ttl: u8,
    pub(crate) protocol: u8,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
}

/// Writes a 20-byte IPv4 header with its checksum at the start of `out`.
pub(crate) fn write_ipv4_header(out: &mut [u8], h: Ipv4Header) -> Result<(), DropReason> {
    let hdr = out
        .first_chunk_mut::<IPV4_HEADER_LEN>()
        .ok_or(DropReason::OutputTooSmall)?;
    let [l0, l1] = h.total_len.to_be_bytes();
    let [i0, i1] = h.id.to_be_bytes();
    let [s0, s1, s2, s3] = h.src.octets();
    let [d0, d1, d2, d3] = h.dst.octets();
    let flags = if h.dont_fragment { IPV4_FLAG_DF } else { 0 }
        | if h.more_fragments {
            (IPV4_FLAG_MF >> 8) as u8
        } else {
            0
        };
    *hdr = [
        0x45, h.tos, l0, l1, i0, i1, flags, 0, h.ttl, h.protocol, 0, 0, s0, s1, s2, s3, d0, d1, d2,
        d3,
    ];
    let [c0, c1] = finish(sum(hdr)).to_be_bytes();
    hdr[10] = c0;
    hdr[11] = c1;
    Ok(())
}

/// Writes a 40-byte IPv6 header (flow label 0) at the start of `out`.
pub(crate) fn write_ipv6_header(
    out: &mut [u8],
    traffic_class: u8,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
) -> Result<(), DropReason> {
    let hdr = out
        .first_chunk_mut::<IPV6_HEADER_LEN>()
        .ok_or(DropReason::OutputTooSmall)?;
    let [p0, p1] = payload_len.to_be_bytes();
    hdr[..8].copy_from_slice(&[
        0x60 | (traffic_class >> 4),
        traffic_class << 4,
        0,
        0,
        p0,
        p1,
        next_header,
        hop_limit,
    ]);
    hdr[8..24].copy_from_slice(&src.octets());
    hdr[24..].copy_from_slice(&dst.octets());
    Ok(())
}
