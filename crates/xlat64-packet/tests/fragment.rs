//! IPv6 fragmentation of translated packets (RFC 8200 §4.5, RFC 7915 §4):
//! fragments checked field by field, against hand-built expectations, and
//! reassembled.

mod common;

use common::{build, check_checksums, v6_header, L4};
use proptest::prelude::*;
use std::net::Ipv6Addr;
use xlat64_packet::fragment::{fragment_v6_in_place, fragmented_len, packets};
use xlat64_packet::DropReason;

const SRC: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);
const ID: u32 = 0x0000_abcd;

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

/// An IPv6 UDP packet of `len` bytes in all.
fn udp_packet(len: usize) -> Vec<u8> {
    let p = build(
        v6_header(SRC, DST, 63, 0xb8, 0),
        &L4::Udp { src: 53, dst: 5353 },
        &payload(len - 48),
    );
    assert_eq!(p.len(), len);
    p
}

/// Fragments `pkt` for `mtu` in a buffer of `room` bytes.
fn fragment(pkt: &[u8], mtu: usize, room: usize) -> Result<Vec<u8>, DropReason> {
    let mut buf = vec![0u8; room.max(pkt.len())];
    buf[..pkt.len()].copy_from_slice(pkt);
    let n = fragment_v6_in_place(&mut buf[..room.max(pkt.len())], pkt.len(), mtu, ID)?;
    buf.truncate(n);
    Ok(buf)
}

/// Reassembles `frags` as RFC 8200 §4.5 says (written here by hand:
/// etherparse 0.19 reads the Fragment header's offset and M flag from the
/// wrong bits, etherparse issue #150, fixed in 0.20): every fragment has the
/// same addresses, identification and next header, the data lands at its
/// offset, and the one fragment without M ends it. Returns the upper-layer
/// protocol and the payload.
fn reassemble(frags: &[&[u8]]) -> (u8, Vec<u8>) {
    let first = frags.first().expect("fragments");
    let mut data = vec![None::<u8>; 70_000];
    let mut end = None;
    for f in frags {
        assert_eq!(f[0] >> 4, 6);
        assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])) + 40, f.len());
        assert_eq!(f[6], 44, "fragment header follows the fixed header");
        assert_eq!(&f[8..40], &first[8..40], "addresses");
        assert_eq!(f[40], first[40], "next header");
        assert_eq!(&f[44..48], &first[44..48], "identification");
        let off_m = u16::from_be_bytes([f[42], f[43]]);
        let at = usize::from(off_m >> 3) * 8;
        let chunk = &f[48..];
        if off_m & 1 == 1 {
            assert_eq!(
                chunk.len() % 8,
                0,
                "RFC 8200: non-last fragments are 8-byte multiples"
            );
        } else {
            assert!(
                end.replace(at + chunk.len()).is_none(),
                "two last fragments"
            );
        }
        for (i, b) in chunk.iter().enumerate() {
            let slot = &mut data[at + i];
            assert!(slot.is_none(), "overlap at {}", at + i);
            *slot = Some(*b);
        }
    }
    let end = end.expect("a last fragment");
    let payload: Vec<u8> = data[..end].iter().map(|b| b.expect("a hole")).collect();
    assert!(data[end..].iter().all(Option::is_none), "data past the end");
    (first[40], payload)
}

/// RFC 8200 §4.5: a 3000-byte packet for MTU 1280 becomes three fragments
/// of at most 1280 bytes, offsets in multiples of 8 bytes, M set on all but
/// the last, one identification, the fixed header copied with Next Header
/// 44, and the payloads back to back give the original.
#[test]
fn rfc8200_4_5_fragment_3000_bytes_for_mtu_1280() {
    let pkt = udp_packet(3000);
    let expected_len = fragmented_len(3000, 1280);
    // 2960 bytes of payload in chunks of 1232: 1232 + 1232 + 496.
    assert_eq!(expected_len, 2960 + 3 * 48);
    let out = fragment(&pkt, 1280, 4000).unwrap();
    assert_eq!(out.len(), expected_len);

    let frags: Vec<&[u8]> = packets(&out).collect();
    assert_eq!(frags.len(), 3);
    let chunks = [1232usize, 1232, 496];
    let mut data = Vec::new();
    let mut offset = 0usize;
    for (i, (f, chunk)) in frags.iter().zip(chunks).enumerate() {
        assert!(f.len() <= 1280, "fragment {i}: {} bytes", f.len());
        assert_eq!(f.len(), 48 + chunk);
        // Fixed header: as the original but for Payload Length and Next Header.
        assert_eq!(&f[..4], &pkt[..4]);
        assert_eq!(
            usize::from(u16::from_be_bytes([f[4], f[5]])),
            8 + chunk,
            "payload length"
        );
        assert_eq!(f[6], 44, "next header: fragment");
        assert_eq!(f[7], pkt[7], "hop limit");
        assert_eq!(&f[8..40], &pkt[8..40], "addresses");
        // Fragment header.
        assert_eq!(f[40], 17, "next header in the fragment header");
        assert_eq!(f[41], 0, "reserved");
        let off_m = u16::from_be_bytes([f[42], f[43]]);
        assert_eq!(usize::from(off_m >> 3) * 8, offset, "offset");
        assert_eq!(off_m & 0b110, 0, "reserved bits");
        assert_eq!(off_m & 1 == 1, i < 2, "M flag");
        assert_eq!(u32::from_be_bytes(f[44..48].try_into().unwrap()), ID);
        if i < 2 {
            assert_eq!(chunk % 8, 0);
        }
        data.extend_from_slice(&f[48..]);
        offset += chunk;
    }
    assert_eq!(&data[..], &pkt[40..]);

    // Byte-exact against hand-built fragments.
    let mut expected = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let start = 40 + i * 1232;
        let mut h = pkt[..40].to_vec();
        h[4..6].copy_from_slice(&((8 + chunk) as u16).to_be_bytes());
        h[6] = 44;
        let off_m = ((i * 1232) as u16) | u16::from(i < 2);
        h.extend_from_slice(&[17, 0]);
        h.extend_from_slice(&off_m.to_be_bytes());
        h.extend_from_slice(&ID.to_be_bytes());
        h.extend_from_slice(&pkt[start..start + chunk]);
        expected.extend_from_slice(&h);
    }
    assert_eq!(out, expected);

    // Reassembled, they are the original UDP datagram, whose checksum
    // still verifies.
    let (proto, udp) = reassemble(&frags);
    assert_eq!(proto, 17);
    assert_eq!(&udp[..], &pkt[40..]);
    check_checksums(&pkt).unwrap();
}

/// The same, with fragments that arrive out of order.
#[test]
fn rfc8200_4_5_fragments_reassemble_in_any_order() {
    let pkt = udp_packet(5000);
    let out = fragment(&pkt, 1500, 6000).unwrap();
    let mut frags: Vec<&[u8]> = packets(&out).collect();
    assert_eq!(frags.len(), 4);
    frags.reverse();
    let (_, udp) = reassemble(&frags);
    assert_eq!(&udp[..], &pkt[40..]);
}

/// `packets` walks IPv6 and IPv4 packets laid back to back, each as long as
/// its header says.
#[test]
fn packets_walks_back_to_back_packets() {
    let a = udp_packet(100);
    let b = build(
        common::v4_header(
            std::net::Ipv4Addr::new(192, 0, 2, 1),
            std::net::Ipv4Addr::new(198, 51, 100, 1),
            64,
            0,
            1,
            false,
        ),
        &L4::Udp { src: 1, dst: 2 },
        &payload(33),
    );
    let c = udp_packet(49);
    let buf = [&a[..], &b[..], &c[..]].concat();
    let got: Vec<&[u8]> = packets(&buf).collect();
    assert_eq!(got, vec![&a[..], &b[..], &c[..]]);
    assert_eq!(packets(&[]).count(), 0);
    // Junk: one rest-of-buffer packet, never a panic.
    assert_eq!(packets(&[0x00, 1, 2]).count(), 1);
    // A header that claims more than there is: the rest of the buffer.
    let mut short = udp_packet(100);
    short.truncate(60);
    assert_eq!(packets(&short).collect::<Vec<_>>(), vec![&short[..]]);
}

/// A packet that fits the MTU is left as it is.
#[test]
fn rfc8200_4_5_packet_that_fits_is_untouched() {
    for len in [48usize, 1279, 1280] {
        let pkt = udp_packet(len);
        assert_eq!(fragmented_len(len, 1280), len);
        let out = fragment(&pkt, 1280, len).unwrap();
        assert_eq!(out, pkt);
    }
    let pkt = udp_packet(1281);
    assert_eq!(fragment(&pkt, 1280, 2000).unwrap().len(), 1241 + 2 * 48);
}

/// The buffer must hold every fragment: `OutputTooSmall` otherwise, with
/// the buffer left unchanged.
#[test]
fn fragment_output_too_small() {
    let pkt = udp_packet(3000);
    let need = fragmented_len(3000, 1280);
    let mut buf = vec![0u8; need - 1];
    buf[..3000].copy_from_slice(&pkt);
    let before = buf.clone();
    assert_eq!(
        fragment_v6_in_place(&mut buf, 3000, 1280, ID),
        Err(DropReason::OutputTooSmall)
    );
    assert_eq!(buf, before);
    assert!(fragment(&pkt, 1280, need).is_ok());
}

/// An MTU that leaves no room for 8 bytes of data after the IPv6 and
/// Fragment headers cannot be met: `TooBigForIpv6`.
#[test]
fn rfc8200_4_5_mtu_without_room_is_too_big_for_ipv6() {
    let pkt = udp_packet(200);
    for mtu in [0usize, 40, 48, 50, 55] {
        assert_eq!(
            fragment(&pkt, mtu, 10_000),
            Err(DropReason::TooBigForIpv6),
            "mtu {mtu}"
        );
    }
    // 56: one 8-byte chunk per fragment.
    let out = fragment(&pkt, 56, 10_000).unwrap();
    let frags: Vec<&[u8]> = packets(&out).collect();
    assert_eq!(frags.len(), 160usize.div_ceil(8));
    assert!(frags.iter().all(|f| f.len() <= 56));
    let (_, udp) = reassemble(&frags);
    assert_eq!(&udp[..], &pkt[40..]);
}

/// A packet whose payload would need fragment offsets beyond 13 bits
/// (more than 65535 bytes, a jumbogram) cannot be fragmented.
#[test]
fn rfc8200_4_5_payload_beyond_65535_refused() {
    let len = 40 + 70_000;
    let mut buf = vec![0u8; 2 * len];
    buf[0] = 0x60;
    buf[6] = 17;
    assert_eq!(
        fragment_v6_in_place(&mut buf, len, 1280, ID),
        Err(DropReason::TooBigForIpv6)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any length and MTU: the fragments fit the MTU, have offsets that are
    /// multiples of 8, take exactly `fragmented_len` bytes, and reassemble
    /// into the original payload.
    #[test]
    fn prop_fragments_reassemble(len in 48usize..9000, mtu in 56usize..2000) {
        let pkt = udp_packet(len);
        let out = fragment(&pkt, mtu, fragmented_len(len, mtu)).unwrap();
        prop_assert_eq!(out.len(), fragmented_len(len, mtu));
        if len <= mtu {
            prop_assert_eq!(&out, &pkt);
        } else {
            let frags: Vec<&[u8]> = packets(&out).collect();
            let mut next = 0usize;
            for (i, f) in frags.iter().enumerate() {
                prop_assert!(f.len() <= mtu);
                let off_m = u16::from_be_bytes([f[42], f[43]]);
                prop_assert_eq!(usize::from(off_m >> 3) * 8, next);
                prop_assert_eq!(off_m & 1 == 1, i + 1 < frags.len());
                if i + 1 < frags.len() {
                    prop_assert_eq!((f.len() - 48) % 8, 0);
                }
                next += f.len() - 48;
            }
            let (_, udp) = reassemble(&frags);
            prop_assert_eq!(&udp[..], &pkt[40..]);
        }
    }

    /// Arbitrary buffers, lengths and MTUs: never a panic.
    #[test]
    fn prop_fragment_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        len in 0usize..3500,
        mtu in 0usize..1600,
    ) {
        let mut buf = bytes;
        let _ = fragment_v6_in_place(&mut buf, len, mtu, 1);
        let _ = fragmented_len(len, mtu);
        for p in packets(&buf) {
            prop_assert!(!p.is_empty());
        }
    }
}
