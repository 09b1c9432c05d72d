//! TCP MSS clamping on SYNs crossing the translator.
//!
//! Translation changes the IP header by 20 bytes, so segments sized for one
//! side may not fit the other: a server behind a 1500-byte IPv4 path
//! announces MSS 1460, and the client's 1460-byte segments become 1520-byte
//! IPv6 packets. Lowering the MSS option of SYNs in both directions to what
//! fits after translation (RFC 6146 leaves it to the implementation; it is
//! what IPv6 transition gateways do in practice, cf. RFC 7597 §8.3.4 and
//! RFC 4459 §3.2) spares path-MTU discovery a round trip per connection,
//! and keeps connections working where ICMP is filtered.

use crate::checksum::{sum, update};

/// TCP option kinds (RFC 9293 §3.1).
const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
/// The SYN flag.
const SYN: u8 = 0x02;

/// Lowers the MSS option of the TCP SYN segment `tcp` (header and payload)
/// to `max` if it is larger, updating the checksum incrementally; returns
/// whether it changed anything. Segments that are not SYNs, or without an
/// MSS option, are left alone.
pub fn clamp(tcp: &mut [u8], max: u16) -> bool {
    let Some(h) = tcp.first_chunk::<20>() else {
        return false;
    };
    if h[13] & SYN == 0 {
        return false;
    }
    let end = (usize::from(h[12] >> 4) * 4).min(tcp.len());
    let mut at = 20;
    while at < end {
        match tcp[at] {
            END => return false,
            NOP => at += 1,
            kind => {
                let Some(&len) = tcp.get(at + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || at + len > end {
                    return false;
                }
                if kind == MSS && len == 4 {
                    let old = [tcp[at + 2], tcp[at + 3]];
                    if u16::from_be_bytes(old) <= max {
                        return false;
                    }
                    let new = max.to_be_bytes();
                    tcp[at + 2..at + 4].copy_from_slice(&new);
                    // A value at an odd offset straddles two 16-bit words:
                    // its bytes count swapped in the sum (RFC 1071 §2(B)).
                    let word = |b: [u8; 2]| if (at + 2) % 2 == 0 { b } else { [b[1], b[0]] };
                    let check = u16::from_be_bytes([tcp[16], tcp[17]]);
                    let check = update(check, sum(&word(old)), sum(&word(new)));
                    tcp[16..18].copy_from_slice(&check.to_be_bytes());
                    return true;
                }
                at += len;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{combine, finish, is_valid};

    /// A SYN with options NOP, MSS 1460, SACK-permitted, and a checksum
    /// over header alone (a pseudo-header sum of 0 keeps the test small).
    fn syn(mss: u16) -> Vec<u8> {
        let mut t = vec![0u8; 28];
        t[12] = 7 << 4;
        t[13] = SYN;
        t[20..28].copy_from_slice(&[NOP, MSS, 4, 0, 0, 4, 2, 0]);
        t[23..25].copy_from_slice(&mss.to_be_bytes());
        let c = finish(sum(&t));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    #[test]
    fn rfc9293_3_7_1_mss_lowered_and_checksum_still_valid() {
        let mut t = syn(1460);
        assert!(clamp(&mut t, 1440));
        assert_eq!(u16::from_be_bytes([t[23], t[24]]), 1440);
        assert!(is_valid(combine(0, sum(&t))));
        // The usual layout: MSS first, its value at an even offset.
        let mut t = syn(1460);
        t[20..28].copy_from_slice(&[MSS, 4, 0x05, 0xb4, NOP, NOP, 4, 2]);
        t[16..18].fill(0);
        let c = finish(sum(&t));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        assert!(clamp(&mut t, 1380));
        assert_eq!(u16::from_be_bytes([t[22], t[23]]), 1380);
        assert!(is_valid(combine(0, sum(&t))));
    }

    #[test]
    fn smaller_mss_and_non_syn_are_untouched() {
        let mut t = syn(1200);
        let before = t.clone();
        assert!(!clamp(&mut t, 1440));
        assert_eq!(t, before);
        let mut t = syn(1460);
        t[13] = 0x10; // ACK only
        assert!(!clamp(&mut t, 1440));
    }

    #[test]
    fn malformed_options_are_left_alone() {
        let mut t = syn(1460);
        t[22] = 0; // MSS option of length 0
        assert!(!clamp(&mut t, 1440));
        let mut short = syn(1460);
        short.truncate(22);
        assert!(!clamp(&mut short, 1440));
    }
}
