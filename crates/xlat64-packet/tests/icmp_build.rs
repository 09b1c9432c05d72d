//! ICMP errors the gateway sends itself (RFC 4443, RFC 792, RFC 1191),
//! byte-exact against etherparse, and the rules on when not to send one
//! (RFC 4443 §2.4(e), RFC 1122 §3.2.2).

mod common;

use common::{build, check_checksums, check_checksums_raw, tcp, v4_header, v6_header, L4};
use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, PacketBuilder};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use xlat64_packet::icmp_build::{
    icmpv4_error, icmpv6_error, may_answer_v4, may_answer_v6, IcmpError, TIME_EXCEEDED_V4,
    TIME_EXCEEDED_V6,
};
use xlat64_packet::ipv6_ext::segments_left_pointer;
use xlat64_packet::{parse_v6, DropReason};

/// The gateway's own addresses.
const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const GW4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221);
const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 11 + 1) as u8).collect()
}

fn offending6(data_len: usize) -> Vec<u8> {
    build(
        v6_header(CLIENT6, SERVER6, 1, 0, 0x12345),
        &L4::Udp { src: 5353, dst: 53 },
        &payload(data_len),
    )
}

fn offending4(data_len: usize) -> Vec<u8> {
    build(
        v4_header(SERVER4, GW4, 1, 0, 7, true),
        &tcp(443, 61000),
        &payload(data_len),
    )
}

fn v6_error(error: IcmpError, offending: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let n = icmpv6_error(&mut out, &GW6, &CLIENT6, error, offending).unwrap();
    out.truncate(n);
    out
}

fn v4_error(error: IcmpError, offending: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let n = icmpv4_error(&mut out, GW4, SERVER4, 0x0a0b, error, offending).unwrap();
    out.truncate(n);
    out
}

fn expected6(icmp: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v6_header(GW6, CLIENT6, 64, 0, 0))
        .icmpv6(icmp)
        .write(&mut out, quote)
        .unwrap();
    out
}

fn expected4(icmp: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v4_header(GW4, SERVER4, 64, 0, 0x0a0b, false))
        .icmpv4(icmp)
        .write(&mut out, quote)
        .unwrap();
    out
}

fn assert_same(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual, expected);
    check_checksums(actual).unwrap();
    check_checksums_raw(actual).unwrap();
}

/// RFC 4443 §3.3: Time Exceeded code 0 quoting the whole offending packet.
#[test]
fn rfc4443_3_3_time_exceeded_v6_byte_exact() {
    let off = offending6(100);
    assert_same(
        &v6_error(TIME_EXCEEDED_V6, &off),
        &expected6(
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
            &off,
        ),
    );
}

/// RFC 792: Time Exceeded code 0 (TTL exceeded in transit).
#[test]
fn rfc792_time_exceeded_v4_byte_exact() {
    let off = offending4(40);
    assert_same(
        &v4_error(TIME_EXCEEDED_V4, &off),
        &expected4(
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
            &off,
        ),
    );
}

/// RFC 4443 §3.2: Packet Too Big carries the MTU in bytes 4..8.
#[test]
fn rfc4443_3_2_packet_too_big_with_mtu() {
    let off = offending6(1400);
    let ptb = IcmpError {
        icmp_type: 2,
        code: 0,
        param: 1280,
    };
    assert_same(
        &v6_error(ptb, &off),
        &expected6(Icmpv6Type::PacketTooBig { mtu: 1280 }, &off[..1280 - 48]),
    );
}

/// RFC 1191 §4: Fragmentation Needed carries the next-hop MTU in bytes 6..8.
#[test]
fn rfc1191_4_fragmentation_needed_with_mtu() {
    let off = offending4(60);
    let frag_needed = IcmpError {
        icmp_type: 3,
        code: 4,
        param: 1480,
    };
    assert_same(
        &v4_error(frag_needed, &off),
        &expected4(
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 },
            ),
            &off,
        ),
    );
}

/// RFC 7915 §5.1: a Routing header with Segments Left > 0 is answered with
/// Parameter Problem code 0 pointing at the Segments Left field.
#[test]
fn rfc7915_5_1_routing_header_parameter_problem() {
    let udp = offending6(20);
    // Type 0 routing header, one address, Segments Left 1.
    let mut pkt = udp[..40].to_vec();
    pkt[6] = 43;
    let mut rh = vec![17u8, 2, 0, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&SERVER6.octets());
    pkt[4..6].copy_from_slice(&((udp.len() - 40 + rh.len()) as u16).to_be_bytes());
    pkt.extend_from_slice(&rh);
    pkt.extend_from_slice(&udp[40..]);
    assert_eq!(parse_v6(&pkt), Err(DropReason::RoutingHeader));
    let pointer = segments_left_pointer(&pkt).unwrap();
    assert_eq!(pointer, 43);
    let pp = IcmpError {
        icmp_type: 4,
        code: 0,
        param: pointer,
    };
    assert_same(
        &v6_error(pp, &pkt),
        &expected6(
            Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
                code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                pointer: 43,
            }),
            &pkt,
        ),
    );
    // Segments Left 0: nothing to point at.
    pkt[43] = 0;
    assert_eq!(segments_left_pointer(&pkt), None);
}

/// RFC 4443 §2.4(c), RFC 1812 §4.3.2.3: a big offending packet is quoted
/// only as far as the error stays within 1280 / 576 bytes.
#[test]
fn rfc4443_2_4_c_and_rfc1812_4_3_2_3_length_caps() {
    for len in [1232 - 48, 1232 - 48 + 1, 1400, 9000] {
        let off = offending6(len);
        let e = v6_error(TIME_EXCEEDED_V6, &off);
        assert_eq!(e.len(), (48 + off.len()).min(1280), "data {len}");
        assert_eq!(&e[48..], &off[..e.len() - 48]);
        check_checksums_raw(&e).unwrap();
    }
    for len in [548 - 56, 548 - 56 + 1, 1000, 3000] {
        let off = offending4(len);
        let e = v4_error(TIME_EXCEEDED_V4, &off);
        assert_eq!(e.len(), (28 + off.len()).min(576), "data {len}");
        assert_eq!(&e[28..], &off[..e.len() - 28]);
        check_checksums_raw(&e).unwrap();
        check_checksums(&e).unwrap();
    }
    let off = offending6(2000);
    assert_same(
        &v6_error(TIME_EXCEEDED_V6, &off),
        &expected6(
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
            &off[..1232],
        ),
    );
    let off = offending4(2000);
    assert_same(
        &v4_error(TIME_EXCEEDED_V4, &off),
        &expected4(
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
            &off[..548],
        ),
    );
}

/// The output buffer must hold the whole error.
#[test]
fn build_output_too_small() {
    let off = offending6(10);
    let mut out = vec![0u8; 48 + off.len() - 1];
    assert_eq!(
        icmpv6_error(&mut out, &GW6, &CLIENT6, TIME_EXCEEDED_V6, &off),
        Err(DropReason::OutputTooSmall)
    );
    let off = offending4(10);
    let mut out = vec![0u8; 28 + off.len() - 1];
    assert_eq!(
        icmpv4_error(&mut out, GW4, SERVER4, 1, TIME_EXCEEDED_V4, &off),
        Err(DropReason::OutputTooSmall)
    );
    assert!(icmpv4_error(&mut [], GW4, SERVER4, 1, TIME_EXCEEDED_V4, &[]).is_err());
}

/// RFC 4443 §2.4(e): no error about an ICMPv6 error, a non-first
/// fragment, a packet from an address that is not one host, or to a
/// multicast group; informational messages and first fragments are fine.
#[test]
fn rfc4443_2_4_e_may_answer_v6() {
    assert!(may_answer_v6(&offending6(10)));
    let echo = build(
        v6_header(CLIENT6, SERVER6, 1, 0, 0),
        &L4::Echo {
            request: true,
            id: 1,
            seq: 1,
        },
        &[1, 2, 3],
    );
    assert!(may_answer_v6(&echo));
    // ICMPv6 errors: types 0-127.
    for t in [1u8, 2, 3, 4, 100, 127] {
        let mut err = echo.clone();
        err[40] = t;
        assert!(!may_answer_v6(&err), "type {t}");
    }
    // ICMPv6 header missing: not answered.
    let mut cut = echo[..40].to_vec();
    cut[4] = 0;
    cut[5] = 0;
    assert!(!may_answer_v6(&cut));
    // Source not one host.
    for src in ["ff02::1", "::", "::1"] {
        let mut p = offending6(10);
        p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
        assert!(!may_answer_v6(&p), "{src}");
    }
    // Multicast destination.
    let mut p = offending6(10);
    p[24..40].copy_from_slice(&"ff0e::1".parse::<Ipv6Addr>().unwrap().octets());
    assert!(!may_answer_v6(&p));
    // Fragments: first yes, others no.
    let udp = offending6(16);
    let frag = |off_m: u16| {
        let mut p = udp[..40].to_vec();
        p[6] = 44;
        p[4..6].copy_from_slice(&((udp.len() - 40 + 8) as u16).to_be_bytes());
        p.extend_from_slice(&[17, 0]);
        p.extend_from_slice(&off_m.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9]);
        p.extend_from_slice(&udp[40..]);
        p
    };
    assert!(may_answer_v6(&frag(1)));
    assert!(!may_answer_v6(&frag(8 << 3 | 1)));
    assert!(!may_answer_v6(&frag(8 << 3)));
    // Too short to tell.
    assert!(!may_answer_v6(&udp[..39]));
    assert!(!may_answer_v6(&[]));
}

/// RFC 1122 §3.2.2, RFC 1812 §4.3.2.7: no error about an ICMP error, a
/// non-first fragment, a broadcast or multicast, or from an address that is
/// not one host.
#[test]
fn rfc1122_3_2_2_may_answer_v4() {
    assert!(may_answer_v4(&offending4(10)));
    let echo = build(
        v4_header(SERVER4, GW4, 1, 0, 0, false),
        &L4::Echo {
            request: true,
            id: 1,
            seq: 1,
        },
        &[1, 2, 3],
    );
    assert!(may_answer_v4(&echo));
    for (t, answer) in [
        (0u8, true),
        (8, true),
        (13, true),
        (3, false),
        (4, false),
        (5, false),
        (11, false),
        (12, false),
    ] {
        let mut p = echo.clone();
        p[20] = t;
        assert_eq!(may_answer_v4(&p), answer, "type {t}");
    }
    let with = |at: usize, bytes: &[u8]| {
        let mut p = offending4(10);
        p[at..at + bytes.len()].copy_from_slice(bytes);
        p
    };
    assert!(
        !may_answer_v4(&with(16, &[255, 255, 255, 255])),
        "broadcast"
    );
    assert!(!may_answer_v4(&with(16, &[224, 0, 0, 1])), "multicast");
    assert!(
        !may_answer_v4(&with(12, &[224, 0, 0, 1])),
        "multicast source"
    );
    assert!(
        !may_answer_v4(&with(12, &[0, 0, 0, 0])),
        "unspecified source"
    );
    assert!(
        !may_answer_v4(&with(12, &[127, 0, 0, 1])),
        "loopback source"
    );
    assert!(
        !may_answer_v4(&with(12, &[255, 255, 255, 255])),
        "broadcast source"
    );
    assert!(
        !may_answer_v4(&with(12, &[0, 1, 2, 3])),
        "this-network source"
    );
    assert!(!may_answer_v4(&with(12, &[240, 1, 2, 3])), "class E source");
    // Fragments: first yes (MF set), others no.
    assert!(may_answer_v4(&with(6, &[0x20, 0])));
    assert!(!may_answer_v4(&with(6, &[0x20, 0x10])));
    assert!(!may_answer_v4(&with(6, &[0x00, 0x01])));
    assert!(!may_answer_v4(&offending4(10)[..19]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any offending bytes and any error: the message is within its cap,
    /// quotes a prefix of the offending bytes, and has valid checksums.
    #[test]
    fn prop_built_errors_are_valid(
        off in proptest::collection::vec(any::<u8>(), 0..2000),
        t in any::<u8>(),
        c in any::<u8>(),
        param in any::<u32>(),
    ) {
        let e = IcmpError { icmp_type: t, code: c, param };
        let v6 = v6_error(e, &off);
        prop_assert!(v6.len() <= 1280);
        prop_assert_eq!(&v6[48..], &off[..v6.len() - 48]);
        check_checksums_raw(&v6).unwrap();
        let v4 = v4_error(e, &off);
        prop_assert!(v4.len() <= 576);
        prop_assert_eq!(&v4[28..], &off[..v4.len() - 28]);
        check_checksums_raw(&v4).unwrap();
        let _ = may_answer_v6(&off);
        let _ = may_answer_v4(&off);
    }
}
