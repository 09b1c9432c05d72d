//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Written by hand: it is a dozen lines, and the translator needs the
//! incremental form over address changes, which no small crate offers.
//!
//! Partial sums are plain `u32` values: add them with [`combine`], turn them
//! into a header field with [`finish`]. A partial sum is the ones' complement
//! sum of big-endian 16-bit words, kept unfolded until the end.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones' complement sum of `data` as big-endian 16-bit words, an odd last byte
/// padded with zero (RFC 1071 §4.1). The result is folded to 16 bits.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // Fits in 16 bits after the loop.
    acc as u32
}

/// Adds two partial sums (ones' complement addition, RFC 1071 §2(A)).
pub fn combine(a: u32, b: u32) -> u32 {
    fold64(u64::from(a) + u64::from(b))
}

/// Folds a partial sum to 16 bits without complementing it.
pub fn fold(sum: u32) -> u16 {
    // fold64 of a u32 is <= 0xffff.
    fold64(u64::from(sum)) as u16
}

/// The checksum field value for a partial sum: its folded ones' complement.
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// True when `sum`, taken over data that includes its checksum field, verifies
/// (RFC 1071 §1: the sum of everything is all ones).
pub fn is_valid(sum: u32) -> bool {
    fold(sum) == 0xffff
}

/// Sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768).
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        len,
    ];
    fold64(words.iter().map(|&w| u64::from(w)).sum())
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc: u64 = 0;
    for w in src.segments().iter().chain(dst.segments().iter()) {
        acc += u64::from(*w);
    }
    acc += u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header);
    fold64(acc)
}

/// Incremental update of checksum field `check` when data summing to
/// `old_sum` is replaced by data summing to `new_sum`
/// (RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')`).
pub fn update(check: u16, old_sum: u32, new_sum: u32) -> u16 {
    let not_hc = u64::from(!check);
    let not_m = u64::from(!fold(old_sum));
    !(fold64(not_hc + not_m + u64::from(new_sum)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    #[test]
    fn rfc1071_section3_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn empty_sum_is_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn large_input_does_not_overflow() {
        let data = [0xffu8; 70_000];
        assert_eq!(sum(&data), 0xffff);
    }

    /// RFC 1624 §4 example: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives 0x0000.
    #[test]
    fn rfc1624_section4_example() {
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    /// IPv4 header example commonly used for RFC 1071 (checksum b861).
    #[test]
    fn ipv4_header_checksum() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&hdr)), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(is_valid(sum(&hdr)));
    }

    #[test]
    fn update_matches_full_recompute() {
        let mut data = [0u8; 32];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let check = finish(sum(&data));
        let old = sum(&data[4..8]);
        data[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let new = sum(&data[4..8]);
        let updated = update(check, old, new);
        let full = finish(sum(&data));
        // 0x0000 and 0xffff are the same value in ones' complement.
        assert!(
            updated == full || (updated, full) == (0, 0xffff) || (updated, full) == (0xffff, 0)
        );
    }

    #[test]
    fn pseudo_headers_sum_their_fields() {
        let v4 = pseudo_v4(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 6, 20);
        assert_eq!(v4, 0x0102 + 0x0304 + 0x0506 + 0x0708 + 6 + 20);
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let v6 = pseudo_v6(&a, &b, 17, 0x1_0008);
        assert_eq!(
            v6,
            combine(0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 2, 17 + 1 + 8)
        );
    }
}
