//! ICMP errors the gateway sends itself: Time Exceeded, Packet Too Big /
//! Fragmentation Needed, Destination Unreachable, Parameter Problem, quoting
//! as much of the offending packet as fits in 1280 bytes (ICMPv6, RFC 4443
//! §2.4(c)) or 576 bytes (ICMPv4, RFC 1812 §4.3.2.3).
//!
//! [`may_answer_v6`] and [`may_answer_v4`] say whether a packet may be
//! answered with an error at all (RFC 4443 §2.4(e), RFC 1122 §3.2.2): never
//! an error about an error, a non-first fragment, or a packet from or to an
//! address that is not one host.

use crate::bytes::{get16, set16, set32, set8};
use crate::checksum::{combine, finish, pseudo_v6, sum};
use crate::icmp_error::{
    write_ipv4_header, write_ipv6_header, Ipv4Header, MAX_ICMPV4_ERROR, MAX_ICMPV6_ERROR,
};
use crate::icmp_map::{v4 as icmp4, v6 as icmp6};
use crate::ipv6_ext;
use crate::special::never_a_host;
use crate::translate::{
    proto, ICMP_HEADER_LEN, IPV4_FRAG_OFFSET, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};
use crate::DropReason;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Hop limit / TTL of the errors the gateway sends (RFC 1700's default).
const ERROR_HOP_LIMIT: u8 = 64;

/// An ICMP error to send: type, code and the 32-bit field after the checksum
/// (pointer, MTU or zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Bytes 4..8 (Parameter Problem pointer, MTU, or 0).
    pub param: u32,
}

/// Writes into `out` an ICMPv6 error from `src` to `dst` quoting `offending`
/// (cut to fit 1280 bytes); returns its length.
pub fn icmpv6_error(
    out: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    error: IcmpError,
    offending: &[u8],
) -> Result<usize, DropReason> {
    let quote = cut(
        offending,
        MAX_ICMPV6_ERROR - IPV6_HEADER_LEN - ICMP_HEADER_LEN,
    );
    let icmp_len = ICMP_HEADER_LEN + quote.len();
    let total = IPV6_HEADER_LEN + icmp_len;
    let out = out.get_mut(..total).ok_or(DropReason::OutputTooSmall)?;
    write_ipv6_header(
        out,
        0,
        icmp_len as u16,
        proto::ICMPV6,
        ERROR_HOP_LIMIT,
        src,
        dst,
    )?;
    let icmp = out
        .get_mut(IPV6_HEADER_LEN..)
        .ok_or(DropReason::OutputTooSmall)?;
    write_icmp(icmp, error, quote)?;
    let s = combine(
        pseudo_v6(src, dst, proto::ICMPV6, icmp_len as u32),
        sum(icmp),
    );
    set16(icmp, 2, finish(s))?;
    Ok(total)
}

/// Writes into `out` an ICMPv4 error from `src` to `dst` with identification
/// `id`, quoting `offending` (cut to fit 576 bytes); returns its length.
pub fn icmpv4_error(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    error: IcmpError,
    offending: &[u8],
) -> Result<usize, DropReason> {
    let quote = cut(
        offending,
        MAX_ICMPV4_ERROR - IPV4_HEADER_LEN - ICMP_HEADER_LEN,
    );
    let total = IPV4_HEADER_LEN + ICMP_HEADER_LEN + quote.len();
    let out = out.get_mut(..total).ok_or(DropReason::OutputTooSmall)?;
    write_ipv4_header(
        out,
        Ipv4Header {
            tos: 0,
            total_len: total as u16,
            id,
            dont_fragment: false,
            more_fragments: false,
            ttl: ERROR_HOP_LIMIT,
            protocol: proto::ICMP,
            src,
            dst,
        },
    )?;
    let icmp = out
        .get_mut(IPV4_HEADER_LEN..)
        .ok_or(DropReason::OutputTooSmall)?;
    write_icmp(icmp, error, quote)?;
    let check = finish(sum(icmp));
    set16(icmp, 2, check)?;
    Ok(total)
}

/// The first `max` bytes of `b` (all of it when shorter).
fn cut(b: &[u8], max: usize) -> &[u8] {
    b.get(..max).unwrap_or(b)
}

/// Writes the ICMP header of `error` (checksum zero, for the caller) and
/// the quote after it, into `icmp`, which is exactly that long.
fn write_icmp(icmp: &mut [u8], error: IcmpError, quote: &[u8]) -> Result<(), DropReason> {
    set8(icmp, 0, error.icmp_type)?;
    set8(icmp, 1, error.code)?;
    set16(icmp, 2, 0)?;
    set32(icmp, 4, error.param)?;
    icmp.get_mut(ICMP_HEADER_LEN..)
        .ok_or(DropReason::OutputTooSmall)?
        .copy_from_slice(quote);
    Ok(())
}

/// Whether the IPv6 packet `pkt` may be answered with an ICMPv6 error
/// (RFC 4443 §2.4(e)): its source is one host, and it is neither an ICMPv6
/// error nor a fragment other than the first.
pub fn may_answer_v6(pkt: &[u8]) -> bool {
    let Some(hdr) = pkt.first_chunk::<IPV6_HEADER_LEN>() else {
        return false;
    };
    let mut s = [0u8; 16];
    s.copy_from_slice(&hdr[8..24]);
    let src = Ipv6Addr::from(s);
    if src.is_multicast() || src.is_unspecified() || src.is_loopback() || hdr[24] == 0xff {
        return false;
    }
    let total = IPV6_HEADER_LEN + usize::from(get16(hdr, 4));
    match ipv6_ext::walk(pkt, total, false) {
        Ok(chain) => {
            if chain.fragment.is_some_and(|f| f.offset != 0) {
                return false;
            }
            // ICMPv6 errors are types 0-127 (RFC 4443 §2.1).
            !(chain.proto == proto::ICMPV6 && pkt.get(chain.l4_offset).is_none_or(|&t| t < 128))
        }
        // A chain that cannot be walked: answer only about the fixed header.
        Err(_) => hdr[6] != proto::ICMPV6,
    }
}

/// Whether the IPv4 packet `pkt` may be answered with an ICMPv4 error
/// (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7): its source is one host, its
/// destination not a broadcast or multicast, and it is neither an ICMP error
/// nor a fragment other than the first.
pub fn may_answer_v4(pkt: &[u8]) -> bool {
    let Some(hdr) = pkt.first_chunk::<IPV4_HEADER_LEN>() else {
        return false;
    };
    let src = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
    let dst = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
    // RFC 1122 §3.2.2: the source must define a single host, which "this
    // network" (0/8), loopback, multicast and class E (240/4, broadcast
    // included) addresses do not.
    if never_a_host(src) || dst.is_multicast() || dst.is_broadcast() {
        return false;
    }
    if get16(hdr, 6) & IPV4_FRAG_OFFSET != 0 {
        return false;
    }
    if hdr[9] == proto::ICMP {
        let l4_at = usize::from(hdr[0] & 0x0f) * 4;
        return matches!(
            pkt.get(l4_at),
            Some(&(icmp4::ECHO_REQUEST | icmp4::ECHO_REPLY | 13..=18))
        );
    }
    true
}

/// ICMPv6 Time Exceeded, hop limit exceeded in transit (RFC 4443 §3.3).
pub const TIME_EXCEEDED_V6: IcmpError = IcmpError {
    icmp_type: icmp6::TIME_EXCEEDED,
    code: 0,
    param: 0,
};

/// ICMPv4 Time Exceeded, TTL exceeded in transit (RFC 792).
pub const TIME_EXCEEDED_V4: IcmpError = IcmpError {
    icmp_type: icmp4::TIME_EXCEEDED,
    code: 0,
    param: 0,
};
