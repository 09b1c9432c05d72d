//! Transport checksums left to offload (Linux `CHECKSUM_PARTIAL`, the
//! virtio-net header's `NEEDS_CSUM`): the checksum field holds only the
//! folded, uncomplemented sum of the pseudo-header, and whoever sends the
//! packet on sums the transport header and payload into it. A translated
//! packet keeps the arrangement: its field gets the sum of its own new
//! pseudo-header, computed from the header alone, with no pass over the
//! payload ([`set_pseudo_header_sum`]). A packet that cannot stay in that
//! form gets its checksum completed first ([`complete`]).

use crate::checksum::{combine, fold, pseudo_v4, pseudo_v6, sum};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Where the transport header of an IPv4 or IPv6 (no extension headers)
/// TCP or UDP packet starts, and the offset of its checksum field in it.
fn transport(packet: &[u8]) -> Option<(usize, usize, u32)> {
    let version = packet.first()? >> 4;
    let (at, proto, pseudo) = match version {
        4 => {
            let h = packet.first_chunk::<20>()?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let l4_len = u16::try_from(total.checked_sub(ihl)?).ok()?;
            let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            (ihl, h[9], pseudo_v4(src, dst, h[9], l4_len))
        }
        6 => {
            let h = packet.first_chunk::<40>()?;
            let l4_len = u32::from(u16::from_be_bytes([h[4], h[5]]));
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&h[24..40]).ok()?);
            (40, h[6], pseudo_v6(&src, &dst, h[6], l4_len))
        }
        _ => return None,
    };
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return None,
    };
    Some((at, field, pseudo))
}

/// Writes the pseudo-header sum of `packet` (IPv4, or IPv6 without
/// extension headers; TCP or UDP) into its transport checksum field and
/// returns where the transport header starts and the field's offset in it
/// (the virtio-net header's `csum_start` and `csum_offset`); `None` for
/// anything else.
pub fn set_pseudo_header_sum(packet: &mut [u8]) -> Option<(usize, usize)> {
    let (at, field, pseudo) = transport(packet)?;
    let bytes = packet.get_mut(at + field..at + field + 2)?;
    bytes.copy_from_slice(&fold(pseudo).to_be_bytes());
    Some((at, field))
}

/// Completes a checksum left to offload: sums `packet[start..]` (whose
/// field at `start + offset` holds the partial sum) and stores the
/// complemented result, as the device would have. `false` when the offsets
/// lie outside the packet.
pub fn complete(packet: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    let Some(field) = packet.get(at..at + 2) else {
        return false;
    };
    let initial = u32::from(u16::from_be_bytes([field[0], field[1]]));
    packet[at] = 0;
    packet[at + 1] = 0;
    let total = combine(initial, sum(&packet[start..]));
    let check = !fold(total);
    packet[at..at + 2].copy_from_slice(&check.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::is_valid;

    fn tcp_v4() -> Vec<u8> {
        let mut p = vec![0u8; 20 + 20 + 11];
        p[0] = 0x45;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 1]);
        p[16..20].copy_from_slice(&[198, 51, 100, 2]);
        p[20..22].copy_from_slice(&4000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = 5 << 4;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8 * 7;
        }
        p
    }

    /// What the device does with a partial sum gives the full checksum.
    #[test]
    fn rfc1071_partial_then_completed_verifies() {
        let mut p = tcp_v4();
        assert_eq!(set_pseudo_header_sum(&mut p), Some((20, 16)));
        assert!(complete(&mut p, 20, 16));
        let pseudo = pseudo_v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 2),
            6,
            31,
        );
        assert!(is_valid(combine(pseudo, sum(&p[20..]))));
    }

    #[test]
    fn other_protocols_and_garbage_are_refused() {
        let mut p = tcp_v4();
        p[9] = 1;
        assert_eq!(set_pseudo_header_sum(&mut p), None);
        assert_eq!(set_pseudo_header_sum(&mut [0x45, 0]), None);
        assert!(!complete(&mut [0u8; 4], 3, 16));
    }
}
