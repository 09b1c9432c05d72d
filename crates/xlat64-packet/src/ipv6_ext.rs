//! The IPv6 extension header chain (RFC 8200 §4) as RFC 7915 §5.1 needs it.
//!
//! Hop-by-Hop Options, Destination Options and Routing headers with Segments
//! Left 0 are not translated (they are dropped with the IPv6 header); a
//! Routing header with Segments Left > 0 stops translation with an ICMPv6
//! Parameter Problem pointing at that field (RFC 7915 §5.1). A Fragment header
//! is reported to the caller; other extension headers (AH, ESP, Mobility,
//! HIP, Shim6, experimental) cannot be translated by a stateful NAT64.

use crate::bytes::{array_at, be16};
use crate::DropReason;

/// IANA "Assigned Internet Protocol Numbers" used in IPv6 chains.
pub(crate) mod nh {
    pub(crate) const HOP_BY_HOP: u8 = 0;
    pub(crate) const ROUTING: u8 = 43;
    pub(crate) const FRAGMENT: u8 = 44;
    pub(crate) const DESTINATION_OPTIONS: u8 = 60;
    /// ESP, AH, Mobility, HIP, Shim6 and the two experimental values.
    pub(crate) const UNTRANSLATABLE: [u8; 7] = [50, 51, 135, 139, 140, 253, 254];
}

/// Length of the Fragment header (RFC 8200 §4.5).
pub(crate) const FRAGMENT_HEADER_LEN: usize = 8;

/// More headers than this in one chain is treated as malformed (a chain of
/// tiny headers only costs the translator).
const MAX_HEADERS: usize = 8;

/// An IPv6 Fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Offset of the Fragment header in the packet.
    pub header_at: usize,
    /// Offset of the Next Header byte that names the Fragment header.
    pub next_header_at: usize,
    /// Fragment Offset, in 8-byte units.
    pub offset: u16,
    /// The M (more fragments) flag.
    pub more: bool,
    /// Identification.
    pub id: u32,
}

impl FragmentHeader {
    /// An atomic fragment (offset 0, M clear): a whole packet that carries a
    /// Fragment header, to be processed as if it had none (RFC 6946, RFC 8021).
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Where the chain of an IPv6 packet ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// Offset of the upper-layer header.
    pub l4_offset: usize,
    /// Its protocol number (the last Next Header).
    pub proto: u8,
    /// The Fragment header, if any.
    pub fragment: Option<FragmentHeader>,
}

/// Walks the extension headers of the IPv6 packet `pkt[..total_len]`.
///
/// With `outer` (a packet to translate, not one quoted in an ICMP error), a
/// Routing header with Segments Left > 0 is refused with
/// [`DropReason::RoutingHeader`] (RFC 7915 §5.1; [`segments_left_pointer`]
/// gives the Parameter Problem pointer). Quoted packets may be cut short: the
/// walk then needs only the headers, not the whole chain length.
pub fn walk(pkt: &[u8], total_len: usize, outer: bool) -> Result<Chain, DropReason> {
    let end = total_len.min(pkt.len());
    let mut next = *pkt.get(6).ok_or(DropReason::Truncated)?;
    let mut next_at = 6;
    let mut at = 40;
    let mut fragment = None;
    for _ in 0..MAX_HEADERS {
        match next {
            nh::HOP_BY_HOP | nh::ROUTING | nh::DESTINATION_OPTIONS => {
                let h: [u8; 4] = header_bytes(pkt, at, end)?;
                // RFC 8200 §4.3-4.6: Hdr Ext Len counts 8-octet units past the first 8.
                let len = (usize::from(h[1]) + 1) * 8;
                if at + len > end && outer {
                    return Err(DropReason::BadExtensionHeader);
                }
                if next == nh::ROUTING && h[3] != 0 && outer {
                    return Err(DropReason::RoutingHeader);
                }
                next_at = at;
                next = h[0];
                at += len;
            }
            nh::FRAGMENT => {
                if fragment.is_some() {
                    return Err(DropReason::BadExtensionHeader);
                }
                let h: [u8; 8] = header_bytes(pkt, at, end)?;
                let off = be16([h[2], h[3]]);
                fragment = Some(FragmentHeader {
                    header_at: at,
                    next_header_at: next_at,
                    offset: off >> 3,
                    more: off & 1 != 0,
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                });
                next_at = at;
                next = h[0];
                at += FRAGMENT_HEADER_LEN;
                // RFC 8200 §4.5: after the Fragment header of a fragment
                // other than the first comes fragment data, not headers.
                if off >> 3 != 0 {
                    return Ok(Chain {
                        l4_offset: at,
                        proto: next,
                        fragment,
                    });
                }
            }
            p if nh::UNTRANSLATABLE.contains(&p) => return Err(DropReason::ExtensionHeader),
            proto => {
                return Ok(Chain {
                    l4_offset: at,
                    proto,
                    fragment,
                })
            }
        }
    }
    Err(DropReason::BadExtensionHeader)
}

/// The first `N` bytes of the header at `at`, which must lie before `end`.
fn header_bytes<const N: usize>(pkt: &[u8], at: usize, end: usize) -> Result<[u8; N], DropReason> {
    if at + N > end {
        return Err(DropReason::BadExtensionHeader);
    }
    Ok(array_at::<N>(pkt, at))
}

/// The offset of the Segments Left byte of the first Routing header with
/// Segments Left > 0: the pointer of the ICMPv6 Parameter Problem that
/// RFC 7915 §5.1 asks for.
pub fn segments_left_pointer(pkt: &[u8]) -> Option<u32> {
    let mut next = *pkt.get(6)?;
    let mut at = 40usize;
    for _ in 0..MAX_HEADERS {
        match next {
            nh::HOP_BY_HOP | nh::ROUTING | nh::DESTINATION_OPTIONS => {
                let h = pkt.get(at..at + 4)?;
                if next == nh::ROUTING && h[3] != 0 {
                    return u32::try_from(at + 3).ok();
                }
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            nh::FRAGMENT => {
                let h = pkt.get(at..at + 4)?;
                // Past a non-first fragment's Fragment header is data.
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return None;
                }
                next = h[0];
                at += FRAGMENT_HEADER_LEN;
            }
            _ => return None,
        }
    }
    None
}
