//! IPv6 fragmentation of translated packets (RFC 7915 §4, RFC 8200 §4.5):
//! an IPv4 packet with DF clear whose translation does not fit the IPv6 side
//! leaves as a train of IPv6 fragments, each at most the given MTU, with
//! the IPv4 Identification as fragment identification (RFC 7915 §4.1).

use crate::bytes::{get16, set16, set32, set8};
use crate::ipv6_ext::{nh, FRAGMENT_HEADER_LEN};
use crate::translate::IPV6_HEADER_LEN;
use crate::DropReason;

/// The length the fragments of an IPv6 packet of `len` bytes (a 40-byte
/// header and no extension headers) take, each at most `mtu` bytes; `len`
/// itself when it fits.
pub fn fragmented_len(len: usize, mtu: usize) -> usize {
    if len <= mtu {
        return len;
    }
    let chunk = chunk_len(mtu);
    let payload = len.saturating_sub(IPV6_HEADER_LEN);
    payload + payload.div_ceil(chunk.max(8)) * (IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN)
}

/// Fragment payload size for `mtu`: what is left after the headers, rounded
/// down to 8 bytes (RFC 8200 §4.5).
fn chunk_len(mtu: usize) -> usize {
    (mtu.saturating_sub(IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN) / 8) * 8
}

/// Splits the IPv6 packet in `buf[..len]` (a 40-byte header, no extension
/// headers) in place into fragments of at most `mtu` bytes with
/// identification `id`, laid out back to back in `buf`; returns their total
/// length (see [`fragmented_len`]). A packet that fits is left as it is.
pub fn fragment_v6_in_place(
    buf: &mut [u8],
    len: usize,
    mtu: usize,
    id: u32,
) -> Result<usize, DropReason> {
    if len <= mtu {
        return Ok(len);
    }
    let chunk = chunk_len(mtu);
    // No room for 8 bytes of data per fragment, or a payload whose offsets
    // do not fit the 13-bit Fragment Offset (more than 65535 bytes, which
    // only a jumbogram has; RFC 8200 §4.5).
    if chunk == 0 || len.saturating_sub(IPV6_HEADER_LEN) > usize::from(u16::MAX) {
        return Err(DropReason::TooBigForIpv6);
    }
    let total = fragmented_len(len, mtu);
    if buf.len() < total || len < IPV6_HEADER_LEN {
        return Err(DropReason::OutputTooSmall);
    }
    let mut header = [0u8; IPV6_HEADER_LEN];
    header.copy_from_slice(
        buf.get(..IPV6_HEADER_LEN)
            .ok_or(DropReason::OutputTooSmall)?,
    );
    let next_header = header[6];
    let payload = len - IPV6_HEADER_LEN;
    let count = payload.div_ceil(chunk);
    // Last fragment first: each moves to a place at or after where it is,
    // so no data is overwritten before it has moved.
    for i in (0..count).rev() {
        let from = IPV6_HEADER_LEN + i * chunk;
        let this = chunk.min(payload - i * chunk);
        let at = i * (IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN + chunk);
        let data_at = at + IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN;
        buf.copy_within(from..from + this, data_at);
        let hdr = buf.get_mut(at..data_at).ok_or(DropReason::OutputTooSmall)?;
        hdr[..IPV6_HEADER_LEN].copy_from_slice(&header);
        set16(hdr, 4, (FRAGMENT_HEADER_LEN + this) as u16)?;
        set8(hdr, 6, nh::FRAGMENT)?;
        let more = u16::from(i + 1 < count);
        let offset = ((i * chunk / 8) as u16) << 3;
        set8(hdr, IPV6_HEADER_LEN, next_header)?;
        set8(hdr, IPV6_HEADER_LEN + 1, 0)?;
        set16(hdr, IPV6_HEADER_LEN + 2, offset | more)?;
        set32(hdr, IPV6_HEADER_LEN + 4, id)?;
    }
    Ok(total)
}

/// The packets of a buffer holding several IP packets back to back (as
/// [`fragment_v6_in_place`] leaves them), each as long as its header says.
pub fn packets(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = match rest.first()? >> 4 {
            6 => IPV6_HEADER_LEN + usize::from(get16(rest, 4)),
            4 => usize::from(get16(rest, 2)),
            _ => rest.len(),
        };
        let len = len.clamp(1, rest.len());
        let (packet, tail) = rest.split_at(len);
        rest = tail;
        Some(packet)
    })
}
