//! Fragment reassembly (RFC 6146 §3.4, RFC 791 §3.2, RFC 8200 §4.5,
//! RFC 5722): UDP datagrams built with etherparse, split by hand, fed in
//! various orders with a virtual clock; the output is compared with the
//! original bytes and parsed again with etherparse.

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6Header,
    Ipv6RawExtHeader, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};
use xlat64_nat::reassembly::{FragmentDrop, Reassembler, ReassemblyLimits};

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 7];
const SRC6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const DST6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 198, 51, 100, 7,
];
/// Next Header byte of the fixed IPv6 header.
const FIXED_NH: usize = 6;

fn reassembler() -> Reassembler {
    Reassembler::new(ReassemblyLimits::default(), 7)
}

fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

/// A UDP/IPv4 datagram with `len` bytes of UDP payload.
fn udp_v4(src: [u8; 4], id: u16, len: usize, options: &[u8], df: bool) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::UDP, src, DST4).unwrap();
    ip.identification = id;
    ip.dont_fragment = df;
    ip.options = Ipv4Options::try_from(options).unwrap();
    let b = PacketBuilder::ip(IpHeaders::Ipv4(ip, Default::default())).udp(5000, 53);
    let data = payload(len, id as u8);
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, &data).unwrap();
    out
}

/// The IPv4 fragment of `orig` carrying payload bytes `[start, end)`. Only
/// the first keeps the options, as when none has the copied flag (RFC 791
/// §3.1), so later fragments have a shorter header than the first.
fn frag_v4(orig: &[u8], start: usize, end: usize, more: bool) -> Vec<u8> {
    let (mut h, rest) = Ipv4Header::from_slice(orig).unwrap();
    if start != 0 {
        h.options = Ipv4Options::default();
    }
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new((start / 8) as u16).unwrap();
    h.total_len = (h.header_len() + end - start) as u16;
    h.header_checksum = h.calc_header_checksum();
    let mut p = h.to_bytes().to_vec();
    p.extend_from_slice(&rest[start..end]);
    p
}

/// Splits `len` bytes at the given 8-aligned cuts: (start, end, more).
fn spans(len: usize, cuts: &[usize]) -> Vec<(usize, usize, bool)> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c / 8 * 8)
        .filter(|&c| c > 0 && c < len)
        .collect();
    points.sort_unstable();
    points.dedup();
    points.insert(0, 0);
    points.push(len);
    points
        .windows(2)
        .map(|w| (w[0], w[1], w[1] != len))
        .collect()
}

fn ip4_payload_len(orig: &[u8]) -> usize {
    orig.len() - usize::from(orig[0] & 0x0f) * 4
}

fn fragments_v4(orig: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    spans(ip4_payload_len(orig), cuts)
        .into_iter()
        .map(|(s, e, m)| frag_v4(orig, s, e, m))
        .collect()
}

/// A UDP/IPv6 datagram; with `dest_opts`, a Destination Options header
/// (PadN) precedes the UDP header.
fn udp_v6(src: [u8; 16], len: usize, dest_opts: bool) -> Vec<u8> {
    let ip = Ipv6Header {
        hop_limit: 64,
        source: src,
        destination: DST6,
        ..Default::default()
    };
    let exts = Ipv6Extensions {
        destination_options: dest_opts
            .then(|| Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).unwrap()),
        ..Default::default()
    };
    let b = PacketBuilder::ip(IpHeaders::Ipv6(ip, exts)).udp(5000, 53);
    let data = payload(len, 0x66);
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, &data).unwrap();
    out
}

/// Where a Fragment header goes in an IPv6 packet: after `unfrag` bytes,
/// named by the Next Header byte at `nh_at`.
#[derive(Clone, Copy)]
struct Split6 {
    unfrag: usize,
    nh_at: usize,
}

/// The IPv6 fragment of `orig` carrying fragmentable bytes `[start, end)`,
/// with `next` as the Fragment header's Next Header.
fn frag_v6_nh(
    orig: &[u8],
    at: Split6,
    id: u32,
    start: usize,
    end: usize,
    more: bool,
    next: u8,
) -> Vec<u8> {
    let mut p = orig[..at.unfrag].to_vec();
    p[at.nh_at] = 44;
    let off = ((start / 8) as u16) << 3 | u16::from(more);
    p.extend_from_slice(&[next, 0]);
    p.extend_from_slice(&off.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&orig[at.unfrag + start..at.unfrag + end]);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p
}

fn frag_v6(orig: &[u8], at: Split6, id: u32, start: usize, end: usize, more: bool) -> Vec<u8> {
    frag_v6_nh(orig, at, id, start, end, more, orig[at.nh_at])
}

fn fragments_v6(orig: &[u8], at: Split6, id: u32, cuts: &[usize]) -> Vec<Vec<u8>> {
    spans(orig.len() - at.unfrag, cuts)
        .into_iter()
        .map(|(s, e, m)| frag_v6(orig, at, id, s, e, m))
        .collect()
}

const PLAIN6: Split6 = Split6 {
    unfrag: 40,
    nh_at: FIXED_NH,
};

/// The reassembled packet must parse as an unfragmented UDP datagram with a
/// good IPv4 header checksum and a good UDP checksum.
fn assert_parses(out: &[u8]) {
    let p = SlicedPacket::from_ip(out).expect("reassembled packet parses");
    let udp = match p.transport {
        Some(TransportSlice::Udp(u)) => u,
        other => panic!("not UDP: {other:?}"),
    };
    let want = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            assert!(!ip.is_payload_fragmented());
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            udp.to_header()
                .calc_checksum_ipv4_raw(h.source, h.destination, udp.payload())
                .unwrap()
        }
        Some(NetSlice::Ipv6(ip)) => {
            assert!(!ip.is_payload_fragmented());
            let h = ip.header().to_header();
            udp.to_header()
                .calc_checksum_ipv6_raw(h.source, h.destination, udp.payload())
                .unwrap()
        }
        other => panic!("not IP: {other:?}"),
    };
    assert_eq!(udp.checksum(), want);
}

/// Feeds IPv4 fragments at `now`; returns the reassembled packet if any.
fn feed_v4(r: &mut Reassembler, now: Instant, frags: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut done = None;
    for f in frags {
        if let Some(out) = r.add_v4(now, f).unwrap() {
            assert!(done.is_none(), "completed twice");
            done = Some(out.to_vec());
        }
    }
    done
}

#[test]
fn rfc791_3_2_in_order() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v4(SRC4, 1, 1400, &[], false);
    let frags = fragments_v4(&orig, &[512, 1024]);
    assert_eq!(frags.len(), 3);
    assert_eq!(r.add_v4(now, &frags[0]), Ok(None));
    assert_eq!(r.add_v4(now, &frags[1]), Ok(None));
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.bytes_held(), 20 + 1024);
    let out = r.add_v4(now, &frags[2]).unwrap().unwrap().to_vec();
    assert_eq!(out, orig);
    assert_parses(&out);
    assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
}

#[test]
fn rfc791_3_2_reverse_order_first_fragment_last() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v4(SRC4, 2, 3000, &[], false);
    let mut frags = fragments_v4(&orig, &[8, 800, 1600, 2400]);
    frags.reverse();
    let out = feed_v4(&mut r, now, &frags).expect("complete");
    assert_eq!(out, orig);
    assert_parses(&out);
}

#[test]
fn rfc791_3_1_first_fragment_options_and_df_kept() {
    let mut r = reassembler();
    let now = Instant::now();
    // Record Route (not copied into later fragments) with one empty slot,
    // then End of Option List.
    let options = [7, 7, 4, 0, 0, 0, 0, 0];
    let orig = udp_v4(SRC4, 3, 600, &options, true);
    assert_eq!(orig[0] & 0x0f, 7);
    let mut frags = fragments_v4(&orig, &[200, 400]);
    assert_eq!(frags[1][0] & 0x0f, 5, "later fragments without options");
    frags.rotate_left(1);
    let out = feed_v4(&mut r, now, &frags).expect("complete");
    assert_eq!(out, orig);
    assert_parses(&out);
    let (h, _) = Ipv4Header::from_slice(&out).unwrap();
    assert!(h.dont_fragment && !h.more_fragments);
    assert_eq!(h.options.as_slice(), &options);
}

#[test]
fn rfc791_3_2_trailing_link_padding_ignored() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v4(SRC4, 4, 100, &[], false);
    let mut frags = fragments_v4(&orig, &[56]);
    frags[0].extend_from_slice(&[0xee; 6]);
    assert_eq!(feed_v4(&mut r, now, &frags), Some(orig));
}

#[test]
fn rfc8200_4_5_in_order_and_reverse() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v6(SRC6, 2000, false);
    for (id, reverse) in [(1u32, false), (2, true)] {
        let mut frags = fragments_v6(&orig, PLAIN6, id, &[640, 1280]);
        if reverse {
            frags.reverse();
        }
        let mut out = None;
        for f in &frags {
            if let Some(o) = r.add_v6(now, f, 40, FIXED_NH).unwrap() {
                out = Some(o.to_vec());
            }
        }
        let out = out.expect("complete");
        assert_eq!(out, orig);
        assert_parses(&out);
    }
    assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
}

#[test]
fn rfc8200_4_5_destination_options_before_fragment_header() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v6(SRC6, 1500, true);
    assert_eq!(orig[FIXED_NH], 60);
    // Fragment header after the Destination Options header, named by its
    // Next Header byte (offset 40).
    let at = Split6 {
        unfrag: 48,
        nh_at: 40,
    };
    let frags = fragments_v6(&orig, at, 9, &[512, 1024]);
    let mut out = None;
    for f in frags.iter().rev() {
        assert_eq!(f[40], 44);
        if let Some(o) = r.add_v6(now, f, at.unfrag, at.nh_at).unwrap() {
            out = Some(o.to_vec());
        }
    }
    let out = out.expect("complete");
    assert_eq!(out, orig);
    assert_parses(&out);
}

#[test]
fn rfc8200_4_5_next_header_from_offset_zero_fragment_only() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v6(SRC6, 100, false);
    let a = frag_v6_nh(&orig, PLAIN6, 5, 0, 64, true, 17);
    let b = frag_v6_nh(&orig, PLAIN6, 5, 64, 108, false, 6);
    assert_eq!(r.add_v6(now, &b, 40, FIXED_NH), Ok(None));
    let out = r.add_v6(now, &a, 40, FIXED_NH).unwrap().unwrap();
    assert_eq!(out, &orig[..]);
}

#[test]
fn rfc6146_3_4_incomplete_datagram_times_out_from_first_fragment() {
    let mut r = reassembler();
    let t0 = Instant::now();
    let orig = udp_v4(SRC4, 10, 300, &[], false);
    let frags = fragments_v4(&orig, &[104, 208]);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.add_v4(t0, &frags[0]), Ok(None));
    let deadline = t0 + Duration::from_secs(2);
    assert_eq!(r.poll_timeout(), Some(deadline));
    // A later fragment does not push the deadline back.
    let t1 = t0 + Duration::from_millis(1500);
    assert_eq!(r.add_v4(t1, &frags[1]), Ok(None));
    assert_eq!(r.poll_timeout(), Some(deadline));
    assert_eq!(r.handle_timeout(deadline - Duration::from_micros(1)), 0);
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.handle_timeout(deadline), 1);
    assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
    assert_eq!(r.poll_timeout(), None);
    // The last fragment now starts a new datagram, which also times out.
    let t2 = deadline + Duration::from_millis(1);
    assert_eq!(r.add_v4(t2, &frags[2]), Ok(None));
    assert_eq!(r.poll_timeout(), Some(t2 + Duration::from_secs(2)));
    assert_eq!(r.handle_timeout(t2 + Duration::from_secs(3)), 1);
}

#[test]
fn rfc6146_3_4_expired_slots_freed_by_packets_counted_later() {
    let limits = ReassemblyLimits {
        max_datagrams: 2,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits, 1);
    let t0 = Instant::now();
    for id in 0..2 {
        let orig = udp_v4(SRC4, id, 100, &[], false);
        assert_eq!(r.add_v4(t0, &fragments_v4(&orig, &[64])[0]), Ok(None));
    }
    let orig = udp_v4(SRC4, 2, 100, &[], false);
    let frags = fragments_v4(&orig, &[64]);
    assert_eq!(r.add_v4(t0, &frags[0]), Err(FragmentDrop::TableFull));
    // No handle_timeout call: the packet call itself reclaims the slots.
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(feed_v4(&mut r, t1, &frags), Some(orig));
    assert_eq!(r.handle_timeout(t1), 2);
    assert_eq!(r.handle_timeout(t1), 0);
}

#[test]
fn per_source_limit_flood_cannot_stop_other_source() {
    let limits = ReassemblyLimits {
        max_datagrams: 8,
        max_per_source: 3,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits, 2);
    let now = Instant::now();
    let flooder = [203, 0, 113, 66];
    for id in 0..100u16 {
        let orig = udp_v4(flooder, id, 100, &[], false);
        let want = if id < 3 {
            Ok(None)
        } else {
            Err(FragmentDrop::SourceLimit)
        };
        assert_eq!(r.add_v4(now, &fragments_v4(&orig, &[64])[1]), want);
    }
    let orig = udp_v4(SRC4, 1, 100, &[], false);
    assert_eq!(
        feed_v4(&mut r, now, &fragments_v4(&orig, &[64])),
        Some(orig)
    );
    assert_eq!(r.in_progress(), 3);

    // IPv6: the quota is per /64, whatever the interface identifier.
    for iid in 0..4u8 {
        let mut src = SRC6;
        src[15] = iid;
        let orig = udp_v6(src, 100, false);
        let want = if iid < 3 {
            Ok(None)
        } else {
            Err(FragmentDrop::SourceLimit)
        };
        let f = frag_v6(&orig, PLAIN6, 1, 0, 64, true);
        assert_eq!(r.add_v6(now, &f, 40, FIXED_NH), want);
    }
    let mut other = SRC6;
    other[7] = 2;
    let orig = udp_v6(other, 100, false);
    let f = frag_v6(&orig, PLAIN6, 1, 0, 64, true);
    assert_eq!(r.add_v6(now, &f, 40, FIXED_NH), Ok(None));
}

#[test]
fn table_full_refuses_new_datagrams_keeps_old() {
    let limits = ReassemblyLimits {
        max_datagrams: 3,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits, 3);
    let now = Instant::now();
    let origs: Vec<_> = (0..4u8)
        .map(|i| udp_v4([10, 0, 0, i], 7, 100, &[], false))
        .collect();
    let frags: Vec<_> = origs.iter().map(|o| fragments_v4(o, &[64])).collect();
    for f in &frags[..3] {
        assert_eq!(r.add_v4(now, &f[0]), Ok(None));
    }
    assert_eq!(r.add_v4(now, &frags[3][0]), Err(FragmentDrop::TableFull));
    assert_eq!(r.in_progress(), 3);
    // Datagrams in progress still complete.
    let out = r.add_v4(now, &frags[1][1]).unwrap().map(<[u8]>::to_vec);
    assert_eq!(out.as_ref(), Some(&origs[1]));
    // And their slot is free for the refused one.
    assert_eq!(feed_v4(&mut r, now, &frags[3]), Some(origs[3].clone()));
}

#[test]
fn rfc1858_too_many_fragments_discards_datagram() {
    let limits = ReassemblyLimits {
        max_fragments: 4,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits, 4);
    let now = Instant::now();
    let orig = udp_v4(SRC4, 5, 200, &[], false);
    let frags = fragments_v4(&orig, &[8, 16, 24, 32, 40]);
    for f in &frags[..4] {
        assert_eq!(r.add_v4(now, f), Ok(None));
    }
    // A duplicate is not a new fragment.
    assert_eq!(r.add_v4(now, &frags[0]), Ok(None));
    assert_eq!(
        r.add_v4(now, &frags[4]),
        Err(FragmentDrop::TooManyFragments)
    );
    assert_eq!(r.bytes_held(), 0);
    // The rest of the train is refused too, until the slot times out.
    assert_eq!(
        r.add_v4(now, &frags[5]),
        Err(FragmentDrop::TooManyFragments)
    );
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.handle_timeout(now + Duration::from_secs(2)), 0);
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn rfc8200_4_5_too_large() {
    let mut r = reassembler();
    let now = Instant::now();
    // IPv4: offset 65528 + 16 bytes of data is beyond Total Length.
    let orig = udp_v4(SRC4, 6, 100, &[], false);
    let mut f = frag_v4(&orig, 0, 16, true);
    let (mut h, _) = Ipv4Header::from_slice(&f).unwrap();
    h.fragment_offset = IpFragOffset::try_new(8191).unwrap();
    h.header_checksum = h.calc_header_checksum();
    f[..20].copy_from_slice(&h.to_bytes());
    assert_eq!(r.add_v4(now, &f), Err(FragmentDrop::TooLarge));
    // 20 + 65512 + 8 = 65540: the header counts in Total Length.
    h.fragment_offset = IpFragOffset::try_new(8189).unwrap();
    h.more_fragments = false;
    h.total_len = 28;
    h.header_checksum = h.calc_header_checksum();
    let mut g = h.to_bytes().to_vec();
    g.extend_from_slice(&[0; 8]);
    assert_eq!(r.add_v4(now, &g), Err(FragmentDrop::TooLarge));
    // IPv6: offset 65528 + 16 bytes beyond Payload Length.
    let orig6 = udp_v6(SRC6, 100, false);
    let mut f6 = frag_v6(&orig6, PLAIN6, 1, 0, 16, true);
    f6[42..44].copy_from_slice(&((8191u16 << 3) | 1).to_be_bytes());
    assert_eq!(
        r.add_v6(now, &f6, 40, FIXED_NH),
        Err(FragmentDrop::TooLarge)
    );
    // Exactly 65535 bytes of payload is fine.
    f6[42..44].copy_from_slice(&(8190u16 << 3).to_be_bytes());
    f6.truncate(48 + 15);
    f6[4..6].copy_from_slice(&(8u16 + 15).to_be_bytes());
    assert_eq!(r.add_v6(now, &f6, 40, FIXED_NH), Ok(None));
    assert_eq!(r.in_progress(), 1);
}

#[test]
fn rfc8200_4_5_maximum_size_datagram_reassembles() {
    let mut r = reassembler();
    let now = Instant::now();
    // 65535 bytes of IPv4 Total Length: 20 + 8 + 65507.
    let orig = udp_v4(SRC4, 8, 65_507, &[], false);
    assert_eq!(orig.len(), 65_535);
    let cuts: Vec<usize> = (1..45).map(|i| i * 1480).collect();
    let mut frags = fragments_v4(&orig, &cuts);
    frags.swap(0, 20);
    assert_eq!(feed_v4(&mut r, now, &frags), Some(orig));
}

#[test]
fn rfc8200_4_5_malformed() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v4(SRC4, 11, 100, &[], false);
    // Non-last fragment whose length is not a multiple of 8.
    let f = frag_v4(&orig, 0, 60, true);
    assert_eq!(r.add_v4(now, &f), Err(FragmentDrop::Malformed));
    // Empty fragment.
    let f = frag_v4(&orig, 64, 64, false);
    assert_eq!(r.add_v4(now, &f), Err(FragmentDrop::Malformed));
    // Not a fragment at all.
    assert_eq!(r.add_v4(now, &orig), Err(FragmentDrop::Malformed));
    // Total Length beyond the packet, IHL below 5, empty input.
    let mut f = frag_v4(&orig, 0, 64, true);
    f.truncate(50);
    assert_eq!(r.add_v4(now, &f), Err(FragmentDrop::Malformed));
    let mut f = frag_v4(&orig, 0, 64, true);
    f[0] = 0x44;
    assert_eq!(r.add_v4(now, &f), Err(FragmentDrop::Malformed));
    assert_eq!(r.add_v4(now, &[]), Err(FragmentDrop::Malformed));

    let orig6 = udp_v6(SRC6, 100, false);
    let f = frag_v6(&orig6, PLAIN6, 1, 0, 60, true);
    assert_eq!(
        r.add_v6(now, &f, 40, FIXED_NH),
        Err(FragmentDrop::Malformed)
    );
    let f = frag_v6(&orig6, PLAIN6, 1, 0, 64, true);
    // Fragment header truncated / beyond the packet, offsets that lie.
    assert_eq!(
        r.add_v6(now, &f[..44], 40, FIXED_NH),
        Err(FragmentDrop::Malformed)
    );
    assert_eq!(
        r.add_v6(now, &f, 200, FIXED_NH),
        Err(FragmentDrop::Malformed)
    );
    assert_eq!(r.add_v6(now, &f, 40, 7), Err(FragmentDrop::Malformed));
    assert_eq!(
        r.add_v6(now, &f, 20, FIXED_NH),
        Err(FragmentDrop::Malformed)
    );
    assert_eq!(
        r.add_v6(now, &f, usize::MAX, usize::MAX),
        Err(FragmentDrop::Malformed)
    );
    // Atomic fragment: the caller's business.
    let f = frag_v6(&orig6, PLAIN6, 1, 0, 108, false);
    assert_eq!(
        r.add_v6(now, &f, 40, FIXED_NH),
        Err(FragmentDrop::Malformed)
    );
    assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
}

#[test]
fn rfc8200_4_5_inconsistent_ends() {
    let now = Instant::now();
    let orig = udp_v4(SRC4, 12, 200, &[], false);
    // Two last fragments with different ends.
    let mut r = reassembler();
    assert_eq!(r.add_v4(now, &frag_v4(&orig, 104, 208, false)), Ok(None));
    assert_eq!(
        r.add_v4(now, &frag_v4(&orig, 8, 100, false)),
        Err(FragmentDrop::Inconsistent)
    );
    assert_eq!(
        r.add_v4(now, &frag_v4(&orig, 0, 104, true)),
        Err(FragmentDrop::Inconsistent)
    );
    // Data beyond a known end.
    let mut r = reassembler();
    assert_eq!(r.add_v4(now, &frag_v4(&orig, 96, 104, false)), Ok(None));
    assert_eq!(
        r.add_v4(now, &frag_v4(&orig, 104, 200, true)),
        Err(FragmentDrop::Inconsistent)
    );
    // A last fragment ending before data already received.
    let mut r = reassembler();
    assert_eq!(r.add_v4(now, &frag_v4(&orig, 104, 200, true)), Ok(None));
    assert_eq!(
        r.add_v4(now, &frag_v4(&orig, 8, 100, false)),
        Err(FragmentDrop::Inconsistent)
    );
    assert_eq!(r.bytes_held(), 0);
}

#[test]
fn rfc5722_overlap_discards_whole_datagram_duplicates_ignored() {
    let mut r = reassembler();
    let now = Instant::now();
    let orig = udp_v6(SRC6, 300, false);
    let frags = fragments_v6(&orig, PLAIN6, 77, &[104, 208]);
    assert_eq!(r.add_v6(now, &frags[0], 40, FIXED_NH), Ok(None));
    // Exact duplicate: ignored.
    assert_eq!(r.add_v6(now, &frags[0], 40, FIXED_NH), Ok(None));
    assert_eq!(r.bytes_held(), 40 + 104);
    // Overlapping [96, 200): the datagram is gone, with what is to come.
    let x = frag_v6(&orig, PLAIN6, 77, 96, 200, true);
    assert_eq!(r.add_v6(now, &x, 40, FIXED_NH), Err(FragmentDrop::Overlap));
    assert_eq!(r.bytes_held(), 0);
    for f in &frags[1..] {
        assert_eq!(r.add_v6(now, f, 40, FIXED_NH), Err(FragmentDrop::Overlap));
    }
    // Once its time is up, the same key may start afresh.
    let later = now + Duration::from_secs(2);
    let mut out = None;
    for f in &frags {
        if let Some(o) = r.add_v6(later, f, 40, FIXED_NH).unwrap() {
            out = Some(o.to_vec());
        }
    }
    assert_eq!(out, Some(orig));
}

#[test]
fn slot_reused_after_completion() {
    let limits = ReassemblyLimits {
        max_datagrams: 1,
        max_per_source: 1,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits, 5);
    let now = Instant::now();
    for id in 0..200u16 {
        let orig = udp_v4(SRC4, id, 50 + usize::from(id) * 7, &[], id % 2 == 0);
        let mut frags = fragments_v4(&orig, &[48, 96, 400]);
        let k = usize::from(id) % frags.len();
        frags.rotate_left(k);
        let out = feed_v4(&mut r, now, &frags).expect("complete");
        assert_eq!(out, orig);
        assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
        assert_eq!(r.poll_timeout(), None);
    }
}

#[test]
fn keys_keep_datagrams_apart() {
    let mut r = reassembler();
    let now = Instant::now();
    // Same addresses and identification, different protocol (RFC 791 §3.2).
    let udp = udp_v4(SRC4, 13, 100, &[], false);
    let mut other = fragments_v4(&udp, &[64]);
    for f in &mut other {
        let (mut h, rest) = Ipv4Header::from_slice(f).unwrap();
        h.protocol = IpNumber(200);
        h.header_checksum = h.calc_header_checksum();
        let mut g = h.to_bytes().to_vec();
        g.extend_from_slice(rest);
        *f = g;
    }
    let frags = fragments_v4(&udp, &[64]);
    assert_eq!(r.add_v4(now, &frags[0]), Ok(None));
    assert_eq!(r.add_v4(now, &other[1]), Ok(None));
    assert_eq!(r.in_progress(), 2);
    assert_eq!(r.add_v4(now, &frags[1]).unwrap(), Some(&udp[..]));
}

/// Fragment order and duplicates: a permutation of the originals with some
/// repeated, as indices into the fragment list.
fn schedule(n: usize, order: &[usize], dups: &[(usize, usize)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for (i, &o) in order.iter().enumerate() {
        let i = i % n;
        idx.swap(i, o % n);
    }
    for &(which, at) in dups {
        idx.insert(at % (idx.len() + 1), which % n);
    }
    idx
}

/// Expected results without overlaps: the datagram completes when every
/// original fragment has been seen since the last completion.
fn expected_completions(n: usize, sched: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; n];
    sched
        .iter()
        .map(|&i| {
            seen[i] = true;
            let done = seen.iter().all(|&s| s);
            if done {
                seen.iter_mut().for_each(|s| *s = false);
            }
            done
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// RFC 791 §3.2 / RFC 8200 §4.5: any order, with exact duplicates,
    /// reassembles exactly once per full set, into the original bytes.
    #[test]
    fn any_order_with_duplicates_reassembles(
        len in 1usize..3000,
        v6 in any::<bool>(),
        cuts in prop::collection::vec(0usize..3000, 0..20),
        order in prop::collection::vec(any::<usize>(), 0..40),
        dups in prop::collection::vec((any::<usize>(), any::<usize>()), 0..8),
    ) {
        let mut r = reassembler();
        let now = Instant::now();
        let (orig, frags) = if v6 {
            let o = udp_v6(SRC6, len, false);
            let f = fragments_v6(&o, PLAIN6, 3, &cuts);
            (o, f)
        } else {
            let o = udp_v4(SRC4, 3, len, &[], false);
            let f = fragments_v4(&o, &cuts);
            (o, f)
        };
        prop_assume!(frags.len() > 1);
        let sched = schedule(frags.len(), &order, &dups);
        let want = expected_completions(frags.len(), &sched);
        for (&i, &complete) in sched.iter().zip(&want) {
            let got = if v6 {
                r.add_v6(now, &frags[i], 40, FIXED_NH)
            } else {
                r.add_v4(now, &frags[i])
            };
            match got {
                Ok(Some(out)) => {
                    prop_assert!(complete);
                    prop_assert_eq!(out, &orig[..]);
                    assert_parses(out);
                }
                Ok(None) => prop_assert!(!complete),
                Err(e) => prop_assert!(false, "dropped: {:?}", e),
            }
        }
        prop_assert!(r.in_progress() <= 1);
        prop_assert_eq!(r.in_progress() == 0, r.bytes_held() == 0);
    }

    /// RFC 5722 §4 (applied to IPv4 as well): one fragment overlapping, not
    /// duplicating, the others; from the moment both it and a fragment it
    /// overlaps have arrived, everything is dropped as an overlap, and
    /// nothing is ever output. Its bounds are chosen so that it can never
    /// be part of a complete set, so the outcome does not depend on order.
    #[test]
    fn rfc5722_any_overlap_discards(
        len in 16usize..2000,
        v6 in any::<bool>(),
        cuts in prop::collection::vec(0usize..2000, 1..12),
        order in prop::collection::vec(any::<usize>(), 0..30),
        dups in prop::collection::vec((any::<usize>(), any::<usize>()), 0..6),
        x_start in 0usize..2000,
        x_len in 1usize..2000,
        x_at in any::<usize>(),
    ) {
        let mut r = reassembler();
        let now = Instant::now();
        // The fragmentable part: UDP header and data.
        let total = len + 8;
        let sp = spans(total, &cuts);
        prop_assume!(sp.len() > 1);
        let bounds: Vec<usize> = sp.iter().map(|s| s.0).chain([total]).collect();
        // An 8-aligned non-last span with an end strictly inside the
        // datagram that is no fragment boundary.
        let xs = (x_start % total) / 8 * 8;
        let xe = (xs + x_len.div_ceil(8) * 8).min(total / 8 * 8);
        prop_assume!(xe > xs);
        let inner = |p: usize| p > 0 && p < total && !bounds.contains(&p);
        prop_assume!(inner(xs) || inner(xe));
        let (orig, frags, x) = if v6 {
            let o = udp_v6(SRC6, len, false);
            let f: Vec<_> = sp.iter().map(|&(s, e, m)| frag_v6(&o, PLAIN6, 3, s, e, m)).collect();
            let x = frag_v6(&o, PLAIN6, 3, xs, xe, true);
            (o, f, x)
        } else {
            let o = udp_v4(SRC4, 3, len, &[], false);
            let f: Vec<_> = sp.iter().map(|&(s, e, m)| frag_v4(&o, s, e, m)).collect();
            let x = frag_v4(&o, xs, xe, true);
            (o, f, x)
        };
        prop_assert_eq!(orig.len() - if v6 { 40 } else { 20 }, total);
        let n = frags.len();
        let mut sched = schedule(n, &order, &dups);
        // Before the fragment that would complete the originals, else they
        // complete and the overlapping one starts a datagram of its own.
        let completes = expected_completions(n, &sched);
        let c = completes.iter().position(|&d| d).unwrap_or(sched.len());
        sched.insert(x_at % (c + 1), n);
        let overlapped = |i: usize| sp[i].0 < xe && xs < sp[i].1;
        let mut x_seen = false;
        let mut hit_seen = false;
        for &i in &sched {
            if i == n { x_seen = true } else if overlapped(i) { hit_seen = true }
            let pkt = if i == n { &x } else { &frags[i] };
            let got = if v6 {
                r.add_v6(now, pkt, 40, FIXED_NH).map(|o| o.is_some())
            } else {
                r.add_v4(now, pkt).map(|o| o.is_some())
            };
            if x_seen && hit_seen {
                prop_assert_eq!(got, Err(FragmentDrop::Overlap));
            } else {
                prop_assert_eq!(got, Ok(false));
            }
        }
        prop_assert_eq!(r.bytes_held(), 0);
        prop_assert_eq!(r.in_progress(), 1);
    }

    /// Never panics, whatever the bytes and offsets; the gauges stay sane.
    #[test]
    fn arbitrary_input_never_panics(
        pkts in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..120), any::<bool>(), 0usize..130, 0usize..130, 0u64..3000),
            1..40,
        ),
    ) {
        let limits = ReassemblyLimits { max_datagrams: 4, max_per_source: 2, max_fragments: 3, ..Default::default() };
        let mut r = Reassembler::new(limits, 9);
        let base = Instant::now();
        for (mut bytes, v6, fo, nh, ms) in pkts {
            let now = base + Duration::from_millis(ms);
            // Make the version and lengths plausible often enough to get
            // past the first checks.
            if let Some(b) = bytes.first_mut() {
                *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x45 };
            }
            let n = bytes.len() as u16;
            if v6 && bytes.len() >= 40 {
                bytes[4..6].copy_from_slice(&(n - 40).to_be_bytes());
                bytes[FIXED_NH] = 44;
                let _ = r.add_v6(now, &bytes, 40, FIXED_NH);
                let _ = r.add_v6(now, &bytes, fo, nh);
            } else if !v6 && bytes.len() >= 20 {
                bytes[2..4].copy_from_slice(&n.to_be_bytes());
                let _ = r.add_v4(now, &bytes);
            } else {
                let _ = r.add_v4(now, &bytes);
                let _ = r.add_v6(now, &bytes, fo, nh);
            }
            prop_assert!(r.in_progress() <= 4);
            prop_assert!(r.bytes_held() <= 4 * (65_535 + 512));
            let _ = r.handle_timeout(now);
        }
    }
}
