//! Byte-exact RFC 7915 translations checked against packets built by
//! etherparse, and one malformed packet per drop reason.

mod common;

use common::{build, check_checksums, fix_v4_header_checksum, tcp, v4_header, v6_header, L4};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xlat64_packet::{
    parse_v4, parse_v6, translate_4to6, translate_6to4, DropReason, L4Proto, Prefix6052,
};

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);
const POOL4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

fn server6() -> Ipv6Addr {
    Prefix6052::WELL_KNOWN.embed(SERVER4)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Translates `v6` from the client to the server (RFC 7915 §5) with the NAT
/// choosing `pool_port`, and returns the IPv4 bytes.
fn six_to_four(v6: &[u8], pool_port: u16, server_port: u16, id: u16) -> Vec<u8> {
    let parsed = parse_v6(v6).expect("parse_v6");
    let mut out = [0u8; 2048];
    let n = translate_6to4(
        v6,
        &parsed,
        SocketAddrV4::new(POOL4, pool_port),
        SocketAddrV4::new(SERVER4, server_port),
        id,
        &mut out,
    )
    .expect("translate_6to4");
    out[..n].to_vec()
}

/// Translates `v4` from the server back to the client (RFC 7915 §4).
fn four_to_six(v4: &[u8], server_port: u16, client_port: u16) -> Vec<u8> {
    let parsed = parse_v4(v4).expect("parse_v4");
    let mut out = [0u8; 2048];
    let n = translate_4to6(
        v4,
        &parsed,
        SocketAddrV6::new(server6(), server_port, 0, 0),
        SocketAddrV6::new(CLIENT6, client_port, 0, 0),
        &mut out,
    )
    .expect("translate_4to6");
    out[..n].to_vec()
}

fn assert_same(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual.len(), expected.len(), "length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(
            a, e,
            "byte {i} differs: {actual:02x?}\nexpected {expected:02x?}"
        );
    }
    check_checksums(actual).unwrap();
}

// ---- RFC 7915 §5.1 / §5.5: IPv6 -> IPv4 ----

#[test]
fn rfc7915_5_1_tcp_6to4_byte_exact() {
    let data = payload(100);
    let v6 = build(
        v6_header(CLIENT6, server6(), 64, 0xb9, 0x12345),
        &tcp(40000, 443),
        &data,
    );
    let v4 = six_to_four(&v6, 61000, 443, 0x1234);
    let expected = build(
        v4_header(POOL4, SERVER4, 65, 0xb9, 0x1234, false),
        &tcp(61000, 443),
        &data,
    );
    assert_same(&v4, &expected);
}

#[test]
fn rfc7915_5_1_udp_6to4_byte_exact() {
    let data = payload(33);
    let v6 = build(
        v6_header(CLIENT6, server6(), 2, 0, 0),
        &L4::Udp { src: 5353, dst: 53 },
        &data,
    );
    let v4 = six_to_four(&v6, 1024, 53, 7);
    let expected = build(
        v4_header(POOL4, SERVER4, 3, 0, 7, false),
        &L4::Udp { src: 1024, dst: 53 },
        &data,
    );
    assert_same(&v4, &expected);
}

/// RFC 7915 §5.2: Echo Request 128 -> 8, identifier from the NAT, checksum
/// recomputed without pseudo-header.
#[test]
fn rfc7915_5_2_echo_request_6to4_byte_exact() {
    let data = payload(57);
    let echo = L4::Echo {
        request: true,
        id: 0x0bad,
        seq: 9,
    };
    let v6 = build(v6_header(CLIENT6, server6(), 255, 0x10, 0), &echo, &data);
    let v4 = six_to_four(&v6, 0x7777, 0x7777, 0xffff);
    let expected = build(
        v4_header(POOL4, SERVER4, 255, 0x10, 0xffff, false),
        &L4::Echo {
            request: true,
            id: 0x7777,
            seq: 9,
        },
        &data,
    );
    assert_same(&v4, &expected);
}

/// RFC 7915 §5.1: DF is zero up to 1260 bytes of IPv4 and one above.
#[test]
fn rfc7915_5_1_df_threshold_1260() {
    for (l4_payload, df) in [(1240 - 8, false), (1241 - 8, true), (1400, true)] {
        let data = payload(l4_payload);
        let v6 = build(
            v6_header(CLIENT6, server6(), 64, 0, 0),
            &L4::Udp { src: 1, dst: 2 },
            &data,
        );
        let v4 = six_to_four(&v6, 3, 2, 99);
        let expected = build(
            v4_header(POOL4, SERVER4, 65, 0, 99, df),
            &L4::Udp { src: 3, dst: 2 },
            &data,
        );
        assert_same(&v4, &expected);
        assert_eq!(v4[6] & 0x40 != 0, df, "DF for {} bytes", v4.len());
    }
}

/// RFC 8200 §3: bytes beyond the payload length (e.g. link padding) are ignored.
#[test]
fn trailing_bytes_after_ipv6_payload_ignored() {
    let data = payload(10);
    let mut v6 = build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &L4::Udp { src: 1, dst: 2 },
        &data,
    );
    v6.extend_from_slice(&[0xee; 13]);
    let parsed = parse_v6(&v6).unwrap();
    assert_eq!(parsed.total_len, v6.len() - 13);
    let v4 = six_to_four(&v6, 1, 2, 0);
    let expected = build(
        v4_header(POOL4, SERVER4, 65, 0, 0, false),
        &L4::Udp { src: 1, dst: 2 },
        &data,
    );
    assert_same(&v4, &expected);
}

// ---- RFC 7915 §4.1 / §4.5: IPv4 -> IPv6 ----

#[test]
fn rfc7915_4_1_tcp_4to6_byte_exact() {
    let data = payload(1000);
    let v4 = build(
        v4_header(SERVER4, POOL4, 50, 0x2e, 4321, true),
        &tcp(443, 61000),
        &data,
    );
    let v6 = four_to_six(&v4, 443, 40000);
    let expected = build(
        v6_header(server6(), CLIENT6, 51, 0x2e, 0),
        &tcp(443, 40000),
        &data,
    );
    assert_same(&v6, &expected);
}

#[test]
fn rfc7915_4_1_udp_4to6_byte_exact() {
    let data = payload(1);
    let v4 = build(
        v4_header(SERVER4, POOL4, 2, 0xff, 0, false),
        &L4::Udp { src: 53, dst: 1024 },
        &data,
    );
    let v6 = four_to_six(&v4, 53, 5353);
    let expected = build(
        v6_header(server6(), CLIENT6, 3, 0xff, 0),
        &L4::Udp { src: 53, dst: 5353 },
        &data,
    );
    assert_same(&v6, &expected);
}

/// RFC 7915 §4.5, RFC 6146 §3.4: a zero UDP checksum is computed in full.
#[test]
fn rfc7915_4_5_udp_zero_checksum_computed() {
    let data = payload(77);
    let mut v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &L4::Udp { src: 53, dst: 1024 },
        &data,
    );
    v4[26] = 0;
    v4[27] = 0;
    let v6 = four_to_six(&v4, 53, 5353);
    let expected = build(
        v6_header(server6(), CLIENT6, 65, 0, 0),
        &L4::Udp { src: 53, dst: 5353 },
        &data,
    );
    assert_same(&v6, &expected);
}

/// RFC 7915 §4.2: Echo Reply 0 -> 129, identifier restored, checksum with the
/// IPv6 pseudo-header.
#[test]
fn rfc7915_4_2_echo_reply_4to6_byte_exact() {
    let data = payload(56);
    let v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 1, false),
        &L4::Echo {
            request: false,
            id: 0x7777,
            seq: 3,
        },
        &data,
    );
    let v6 = four_to_six(&v4, 0x0bad, 0x0bad);
    let expected = build(
        v6_header(server6(), CLIENT6, 65, 0, 0),
        &L4::Echo {
            request: false,
            id: 0x0bad,
            seq: 3,
        },
        &data,
    );
    assert_same(&v6, &expected);
}

/// RFC 7915 §4.2 with RFC 6146 §3.5.3: an IPv4 host's Echo Request (8) to a
/// client's binding becomes an ICMPv6 Echo Request (128) for the client.
#[test]
fn rfc7915_4_2_echo_request_4to6_byte_exact() {
    let data = payload(24);
    let request = |id| L4::Echo {
        request: true,
        id,
        seq: 5,
    };
    let v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 1, false),
        &request(0x7777),
        &data,
    );
    let v6 = four_to_six(&v4, 0x0bad, 0x0bad);
    let expected = build(
        v6_header(server6(), CLIENT6, 65, 0, 0),
        &request(0x0bad),
        &data,
    );
    assert_same(&v6, &expected);
}

/// RFC 7915 §5.2 with RFC 6146 §3.5.3: the client's Echo Reply (129) goes
/// back to the IPv4 host as an Echo Reply (0).
#[test]
fn rfc7915_5_2_echo_reply_6to4_byte_exact() {
    let data = payload(24);
    let reply = |id| L4::Echo {
        request: false,
        id,
        seq: 5,
    };
    let v6 = build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &reply(0x0bad),
        &data,
    );
    let v4 = six_to_four(&v6, 0x7777, 0x7777, 0x1234);
    let expected = build(
        v4_header(POOL4, SERVER4, 65, 0, 0x1234, false),
        &reply(0x7777),
        &data,
    );
    assert_same(&v4, &expected);
}

/// RFC 7915 §4.1: options other than source route are ignored, not translated.
#[test]
fn rfc7915_4_1_options_ignored() {
    let data = payload(20);
    let etherparse::IpHeaders::Ipv4(mut h, e) = v4_header(SERVER4, POOL4, 64, 0, 0, false) else {
        unreachable!()
    };
    // NOP, Record Route (7, len 7, ptr 4, one empty slot), expired LSRR
    // (131, len 7, ptr 8), End.
    h.options = [1u8, 7, 7, 4, 0, 0, 0, 0, 131, 7, 8, 1, 2, 3, 4, 0][..]
        .try_into()
        .unwrap();
    let v4 = build(
        etherparse::IpHeaders::Ipv4(h, e),
        &L4::Udp { src: 53, dst: 1024 },
        &data,
    );
    assert_eq!(v4[0], 0x49);
    let parsed = parse_v4(&v4).unwrap();
    assert_eq!(parsed.l4_offset, 36);
    let v6 = four_to_six(&v4, 53, 5353);
    let expected = build(
        v6_header(server6(), CLIENT6, 65, 0, 0),
        &L4::Udp { src: 53, dst: 5353 },
        &data,
    );
    assert_same(&v6, &expected);
}

#[test]
fn trailing_bytes_after_ipv4_total_length_ignored() {
    let data = payload(4);
    let mut v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &L4::Udp { src: 53, dst: 1024 },
        &data,
    );
    v4.extend_from_slice(&[0; 18]);
    let v6 = four_to_six(&v4, 53, 5353);
    let expected = build(
        v6_header(server6(), CLIENT6, 65, 0, 0),
        &L4::Udp { src: 53, dst: 5353 },
        &data,
    );
    assert_same(&v6, &expected);
}

// ---- Flows ----

#[test]
fn flows_carry_ports_flags_and_echo_id() {
    let v6 = build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &tcp(40000, 443),
        &[],
    );
    let f = parse_v6(&v6).unwrap().flow;
    assert_eq!((f.proto, f.src, f.dst), (L4Proto::Tcp, CLIENT6, server6()));
    assert_eq!((f.src_port, f.dst_port, f.tcp_flags), (40000, 443, 0x18));

    let echo = L4::Echo {
        request: true,
        id: 0x4242,
        seq: 1,
    };
    let v6 = build(v6_header(CLIENT6, server6(), 64, 0, 0), &echo, &[]);
    let f = parse_v6(&v6).unwrap().flow;
    assert_eq!(
        (f.proto, f.src_port, f.dst_port, f.tcp_flags),
        (L4Proto::Icmp, 0x4242, 0x4242, 0)
    );

    let v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &L4::Udp { src: 53, dst: 999 },
        &[],
    );
    let p = parse_v4(&v4).unwrap();
    let f = p.flow;
    assert_eq!((f.proto, f.src, f.dst), (L4Proto::Udp, SERVER4, POOL4));
    assert_eq!((f.src_port, f.dst_port, f.tcp_flags), (53, 999, 0));
    assert_eq!((p.l4_offset, p.total_len), (20, v4.len()));

    let echo = L4::Echo {
        request: false,
        id: 0x1111,
        seq: 1,
    };
    let v4 = build(v4_header(SERVER4, POOL4, 64, 0, 0, false), &echo, &[]);
    let f = parse_v4(&v4).unwrap().flow;
    assert_eq!(
        (f.proto, f.src_port, f.dst_port),
        (L4Proto::Icmp, 0x1111, 0x1111)
    );
}

// ---- Every DropReason ----

fn good_v6_udp() -> Vec<u8> {
    build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &L4::Udp { src: 1, dst: 2 },
        &payload(8),
    )
}

fn good_v4_udp() -> Vec<u8> {
    build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &L4::Udp { src: 1, dst: 2 },
        &payload(8),
    )
}

fn v6_with(f: impl FnOnce(&mut Vec<u8>)) -> Result<(), DropReason> {
    let mut p = good_v6_udp();
    f(&mut p);
    parse_v6(&p).map(|_| ())
}

fn v4_with(f: impl FnOnce(&mut Vec<u8>)) -> Result<(), DropReason> {
    let mut p = good_v4_udp();
    f(&mut p);
    fix_v4_header_checksum(&mut p);
    parse_v4(&p).map(|_| ())
}

#[test]
fn drop_truncated() {
    assert_eq!(parse_v6(&[]), Err(DropReason::Truncated));
    assert_eq!(parse_v4(&[]), Err(DropReason::Truncated));
    let v6 = good_v6_udp();
    assert_eq!(parse_v6(&v6[..39]), Err(DropReason::Truncated));
    assert_eq!(parse_v6(&v6[..v6.len() - 1]), Err(DropReason::Truncated));
    let v4 = good_v4_udp();
    assert_eq!(parse_v4(&v4[..19]), Err(DropReason::Truncated));
    assert_eq!(parse_v4(&v4[..v4.len() - 1]), Err(DropReason::Truncated));
}

#[test]
fn drop_bad_version() {
    assert_eq!(parse_v6(&good_v4_udp()), Err(DropReason::BadVersion));
    assert_eq!(parse_v4(&good_v6_udp()), Err(DropReason::BadVersion));
    assert_eq!(v6_with(|p| p[0] = 0x00), Err(DropReason::BadVersion));
}

#[test]
fn drop_bad_header_length() {
    assert_eq!(v4_with(|p| p[0] = 0x44), Err(DropReason::BadHeaderLength));
    // Total length 16 below the 20-byte header.
    assert_eq!(
        v4_with(|p| p[2..4].copy_from_slice(&16u16.to_be_bytes())),
        Err(DropReason::BadHeaderLength)
    );
    // IHL 15 (60 bytes) beyond a 36-byte total length.
    assert_eq!(v4_with(|p| p[0] = 0x4f), Err(DropReason::BadHeaderLength));
}

#[test]
fn drop_bad_ipv4_checksum() {
    let mut p = good_v4_udp();
    p[10] ^= 1;
    assert_eq!(parse_v4(&p), Err(DropReason::BadIpv4Checksum));
}

/// ICMP checksums are recomputed on translation, so they are verified.
#[test]
fn drop_bad_transport_checksum() {
    let echo = L4::Echo {
        request: true,
        id: 1,
        seq: 1,
    };
    let mut v6 = build(v6_header(CLIENT6, server6(), 64, 0, 0), &echo, &payload(5));
    *v6.last_mut().unwrap() ^= 0x80;
    assert_eq!(parse_v6(&v6), Err(DropReason::BadTransportChecksum));

    let echo = L4::Echo {
        request: false,
        id: 1,
        seq: 1,
    };
    let mut v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &echo,
        &payload(5),
    );
    v4[22] ^= 0x01;
    assert_eq!(parse_v4(&v4), Err(DropReason::BadTransportChecksum));
}

#[test]
fn drop_truncated_transport() {
    // UDP length field beyond the IP payload.
    assert_eq!(
        v6_with(|p| p[44..46].copy_from_slice(&100u16.to_be_bytes())),
        Err(DropReason::TruncatedTransport)
    );
    assert_eq!(
        v4_with(|p| p[24..26].copy_from_slice(&7u16.to_be_bytes())),
        Err(DropReason::TruncatedTransport)
    );
    // UDP header cut to 4 bytes by the payload length.
    assert_eq!(
        v6_with(|p| {
            p[4..6].copy_from_slice(&4u16.to_be_bytes());
            p.truncate(44)
        }),
        Err(DropReason::TruncatedTransport)
    );
    // TCP: data offset 4, and data offset past the segment.
    let tcp6 = build(v6_header(CLIENT6, server6(), 64, 0, 0), &tcp(1, 2), &[]);
    let mut bad = tcp6.clone();
    bad[40 + 12] = 0x40;
    assert_eq!(parse_v6(&bad), Err(DropReason::TruncatedTransport));
    let mut bad = tcp6.clone();
    bad[40 + 12] = 0xf0;
    assert_eq!(parse_v6(&bad), Err(DropReason::TruncatedTransport));
    let mut short = tcp6[..40 + 19].to_vec();
    short[4..6].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(parse_v6(&short), Err(DropReason::TruncatedTransport));
    // ICMP shorter than 8 bytes.
    let mut icmp4 = good_v4_udp()[..20 + 4].to_vec();
    icmp4[9] = 1;
    icmp4[2..4].copy_from_slice(&24u16.to_be_bytes());
    fix_v4_header_checksum(&mut icmp4);
    assert_eq!(parse_v4(&icmp4), Err(DropReason::TruncatedTransport));
    let mut icmp6 = good_v6_udp()[..44].to_vec();
    icmp6[6] = 58;
    icmp6[4..6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(parse_v6(&icmp6), Err(DropReason::TruncatedTransport));
}

#[test]
fn drop_unknown_protocol() {
    for nh in [59u8, 132, 4, 41] {
        assert_eq!(
            v6_with(|p| p[6] = nh),
            Err(DropReason::UnknownProtocol),
            "next header {nh}"
        );
    }
    for proto in [132u8, 2, 58] {
        assert_eq!(
            v4_with(|p| p[9] = proto),
            Err(DropReason::UnknownProtocol),
            "protocol {proto}"
        );
    }
}

/// RFC 7915 §5.1: AH, ESP, Mobility and the like cannot be translated.
#[test]
fn drop_extension_header() {
    for nh in [50u8, 51, 135, 139, 140, 253, 254] {
        assert_eq!(
            v6_with(|p| p[6] = nh),
            Err(DropReason::ExtensionHeader),
            "next header {nh}"
        );
    }
}

/// Inserts the extension header `ext` (next header 17 in its first byte is
/// kept) after the fixed header of the good UDP packet, named by `nh`.
fn v6_with_ext(nh: u8, ext: &[u8]) -> Vec<u8> {
    let mut p = good_v6_udp();
    let old_nh = p[6];
    p[6] = nh;
    p.splice(40..40, ext.iter().copied());
    p[40] = old_nh;
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p
}

/// RFC 8200 §4: a chain cut short or with two Fragment headers.
#[test]
fn drop_bad_extension_header() {
    // Hop-by-Hop claiming 64 bytes in a short packet.
    let p = v6_with_ext(0, &[0, 7, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse_v6(&p), Err(DropReason::BadExtensionHeader));
    // Two atomic Fragment headers.
    let mut p = v6_with_ext(44, &[0, 0, 0, 0, 0, 0, 0, 1]);
    p.splice(40..40, [44u8, 0, 0, 0, 0, 0, 0, 2]);
    p[6] = 44;
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(parse_v6(&p), Err(DropReason::BadExtensionHeader));
}

/// RFC 7915 §5.1: a Routing header with Segments Left > 0 is not translated;
/// Segments Left 0 is skipped like the option headers.
#[test]
fn drop_routing_header() {
    let p = v6_with_ext(43, &[0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(parse_v6(&p), Err(DropReason::RoutingHeader));
    assert_eq!(xlat64_packet::ipv6_ext::segments_left_pointer(&p), Some(43));
    let p = v6_with_ext(43, &[0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(parse_v6(&p).is_ok());
}

#[test]
fn drop_fragment() {
    let p = v6_with_ext(44, &[0, 0, 0, 1, 0, 0, 0, 9]);
    assert_eq!(parse_v6(&p), Err(DropReason::Fragment), "M set");
    let p = v6_with_ext(44, &[0, 0, 0, 8, 0, 0, 0, 9]);
    assert_eq!(parse_v6(&p), Err(DropReason::Fragment), "offset 1");
    let p = v6_with_ext(44, &[0, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(parse_v6(&p).map(|p| p.fragment_id), Ok(Some(9)), "atomic");
    assert_eq!(v4_with(|p| p[6] = 0x20), Err(DropReason::Fragment), "MF");
    assert_eq!(
        v4_with(|p| p[7] = 0x01),
        Err(DropReason::Fragment),
        "offset"
    );
    assert_eq!(v4_with(|p| p[6] = 0x40), Ok(()), "DF alone is fine");
}

/// Inserts IPv4 options (a multiple of 4 bytes) into the good UDP packet.
fn v4_with_options(opts: &[u8]) -> Result<(), DropReason> {
    v4_with(|p| {
        let total = p.len() + opts.len();
        p.splice(20..20, opts.iter().copied());
        p[0] = 0x45 + (opts.len() / 4) as u8;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    })
}

/// RFC 7915 §4.1: an unexpired source route option means discard.
#[test]
fn drop_source_route() {
    // LSRR, len 7, pointer 4 (first hop still to visit), then End.
    assert_eq!(
        v4_with_options(&[131, 7, 4, 10, 0, 0, 1, 0]),
        Err(DropReason::SourceRoute)
    );
    // SSRR after a NOP.
    assert_eq!(
        v4_with_options(&[1, 137, 7, 4, 10, 0, 0, 1]),
        Err(DropReason::SourceRoute)
    );
    // Expired (pointer past the option): ignored like any other option.
    assert_eq!(v4_with_options(&[131, 7, 8, 10, 0, 0, 1, 0]), Ok(()));
    // After End of Option List nothing counts.
    assert_eq!(v4_with_options(&[0, 131, 7, 4, 10, 0, 0, 1]), Ok(()));
}

#[test]
fn drop_bad_ipv4_options() {
    // Length 1.
    assert_eq!(
        v4_with_options(&[7, 1, 0, 0]),
        Err(DropReason::BadIpv4Options)
    );
    // Length past the header.
    assert_eq!(
        v4_with_options(&[1, 1, 7, 9]),
        Err(DropReason::BadIpv4Options)
    );
    // Kind with no room for its length byte.
    assert_eq!(
        v4_with_options(&[1, 1, 1, 68]),
        Err(DropReason::BadIpv4Options)
    );
    // Source route too short to hold a pointer.
    assert_eq!(
        v4_with_options(&[131, 2, 1, 1]),
        Err(DropReason::BadIpv4Options)
    );
}

/// RFC 7915 §4.1 / §5.1: the kernel's forwarding already decremented the
/// TTL / hop limit on the way into the translator; only 0 has expired.
#[test]
fn drop_hop_limit_exceeded() {
    assert_eq!(v6_with(|p| p[7] = 0), Err(DropReason::HopLimitExceeded));
    assert_eq!(v6_with(|p| p[7] = 1), Ok(()));
    assert_eq!(v4_with(|p| p[8] = 0), Err(DropReason::HopLimitExceeded));
    assert_eq!(v4_with(|p| p[8] = 1), Ok(()));
}

#[test]
fn drop_icmpv6_type_unsupported() {
    let reply = L4::Echo {
        request: false,
        id: 1,
        seq: 1,
    };
    let v6 = build(v6_header(CLIENT6, server6(), 64, 0, 0), &reply, &[]);
    // An echo reply is translated (to an IPv4 host's request, RFC 6146
    // §3.5.3); informational types other than echo are not (RFC 7915 §5.2).
    let parsed = parse_v6(&v6).expect("echo reply");
    assert_eq!(
        (parsed.flow.proto, parsed.flow.src_port),
        (L4Proto::Icmp, 1)
    );
    for t in [130u8, 133, 134, 135, 136, 137, 200] {
        let mut other = v6.clone();
        other[40] = t;
        assert_eq!(
            parse_v6(&other),
            Err(DropReason::Icmpv6TypeUnsupported),
            "type {t}"
        );
    }
}

#[test]
fn drop_icmpv4_type_unsupported() {
    let request = L4::Echo {
        request: true,
        id: 1,
        seq: 1,
    };
    let v4 = build(v4_header(SERVER4, POOL4, 64, 0, 0, false), &request, &[]);
    // An echo request is translated (to a client's binding, RFC 6146
    // §3.5.3); other query types are not (RFC 7915 §4.2).
    let parsed = parse_v4(&v4).expect("echo request");
    assert_eq!(
        (parsed.flow.proto, parsed.flow.dst_port),
        (L4Proto::Icmp, 1)
    );
    for t in [4u8, 5, 9, 10, 13, 14, 15, 17] {
        let mut other = v4.clone();
        other[20] = t;
        assert_eq!(
            parse_v4(&other),
            Err(DropReason::Icmpv4TypeUnsupported),
            "type {t}"
        );
    }
}

#[test]
fn drop_bad_address() {
    let set6 =
        |at: usize, a: Ipv6Addr| move |p: &mut Vec<u8>| p[at..at + 16].copy_from_slice(&a.octets());
    for a in [
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::LOCALHOST,
        "ff02::1".parse().unwrap(),
    ] {
        assert_eq!(v6_with(set6(8, a)), Err(DropReason::BadAddress), "src {a}");
        assert_eq!(v6_with(set6(24, a)), Err(DropReason::BadAddress), "dst {a}");
    }
    let set4 =
        |at: usize, a: Ipv4Addr| move |p: &mut Vec<u8>| p[at..at + 4].copy_from_slice(&a.octets());
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "224.0.0.1",
        "239.1.1.1",
        "255.255.255.255",
    ] {
        let a: Ipv4Addr = a.parse().unwrap();
        assert_eq!(v4_with(set4(12, a)), Err(DropReason::BadAddress), "src {a}");
        assert_eq!(v4_with(set4(16, a)), Err(DropReason::BadAddress), "dst {a}");
    }
}

/// RFC 8200 §8.1: IPv6 UDP with a zero checksum is discarded.
#[test]
fn drop_udp_zero_checksum() {
    assert_eq!(
        v6_with(|p| {
            p[46] = 0;
            p[47] = 0
        }),
        Err(DropReason::UdpZeroChecksum)
    );
}

#[test]
fn drop_too_big_for_ipv4() {
    let data = vec![0u8; 65535 - 8];
    let v6 = build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &L4::Udp { src: 1, dst: 2 },
        &data,
    );
    assert_eq!(v6.len(), 40 + 65535);
    let parsed = parse_v6(&v6).unwrap();
    let mut out = vec![0u8; 70_000];
    let r = translate_6to4(
        &v6,
        &parsed,
        SocketAddrV4::new(POOL4, 1),
        SocketAddrV4::new(SERVER4, 2),
        0,
        &mut out,
    );
    assert_eq!(r, Err(DropReason::TooBigForIpv4));
}

#[test]
fn drop_output_too_small() {
    let v6 = good_v6_udp();
    let parsed = parse_v6(&v6).unwrap();
    let need = v6.len() - 20;
    let mut out = vec![0u8; need];
    let (s, d) = (SocketAddrV4::new(POOL4, 1), SocketAddrV4::new(SERVER4, 2));
    assert_eq!(
        translate_6to4(&v6, &parsed, s, d, 0, &mut out[..need - 1]),
        Err(DropReason::OutputTooSmall)
    );
    assert_eq!(translate_6to4(&v6, &parsed, s, d, 0, &mut out), Ok(need));

    let v4 = good_v4_udp();
    let parsed = parse_v4(&v4).unwrap();
    let need = v4.len() + 20;
    let mut out = vec![0u8; need];
    let (s, d) = (
        SocketAddrV6::new(server6(), 1, 0, 0),
        SocketAddrV6::new(CLIENT6, 2, 0, 0),
    );
    assert_eq!(
        translate_4to6(&v4, &parsed, s, d, &mut out[..need - 1]),
        Err(DropReason::OutputTooSmall)
    );
    assert_eq!(translate_4to6(&v4, &parsed, s, d, &mut out), Ok(need));
}

/// A `Parsed*` that does not belong to the packet gives a drop, not a panic.
#[test]
fn mismatched_parsed_does_not_panic() {
    let v6 = good_v6_udp();
    let mut parsed = parse_v6(&v6).unwrap();
    parsed.total_len = 10_000;
    let mut out = [0u8; 2048];
    let (s, d) = (SocketAddrV4::new(POOL4, 1), SocketAddrV4::new(SERVER4, 2));
    assert_eq!(
        translate_6to4(&v6, &parsed, s, d, 0, &mut out),
        Err(DropReason::Truncated)
    );
    parsed.total_len = 42;
    parsed.flow.proto = L4Proto::Tcp;
    assert_eq!(
        translate_6to4(&v6, &parsed, s, d, 0, &mut out),
        Err(DropReason::TruncatedTransport)
    );
    let v4 = good_v4_udp();
    let mut parsed = parse_v4(&v4).unwrap();
    parsed.l4_offset = 30;
    parsed.total_len = 29;
    let (s, d) = (
        SocketAddrV6::new(server6(), 1, 0, 0),
        SocketAddrV6::new(CLIENT6, 2, 0, 0),
    );
    assert_eq!(
        translate_4to6(&v4, &parsed, s, d, &mut out),
        Err(DropReason::Truncated)
    );
}

/// Every variant is produced by one of the tests above or, where marked, in
/// another test file; this keeps the list honest when a variant is added.
#[test]
fn every_drop_reason_is_covered_here() {
    let covered = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeaderLength,
        DropReason::BadIpv4Checksum,
        DropReason::BadTransportChecksum,
        DropReason::TruncatedTransport,
        DropReason::UnknownProtocol,
        DropReason::ExtensionHeader,
        DropReason::Fragment,
        DropReason::SourceRoute,
        DropReason::BadIpv4Options,
        DropReason::HopLimitExceeded,
        DropReason::Icmpv6TypeUnsupported,
        DropReason::Icmpv4TypeUnsupported,
        // In tests/icmp_error.rs (rfc7915_4_2_untranslatable_icmpv4_dropped,
        // rfc7915_4_3_*_refused, rfc7915_5_3_untranslatable_quotes_refused):
        DropReason::IcmpUntranslatable,
        DropReason::IcmpQuoteUntranslatable,
        // Here again:
        DropReason::RoutingHeader,
        DropReason::BadExtensionHeader,
        DropReason::BadAddress,
        DropReason::UdpZeroChecksum,
        DropReason::TooBigForIpv4,
        // In tests/fragment.rs (rfc8200_4_5_mtu_without_room_is_too_big_for_ipv6):
        DropReason::TooBigForIpv6,
        // Here (drop_output_too_small) and in tests/fragment.rs:
        DropReason::OutputTooSmall,
    ];
    assert_eq!(covered, DropReason::ALL);
}

/// RFC 768: a UDP checksum that computes to zero is sent as 0xffff. The
/// payload's first word is chosen so that the translated checksum is zero.
#[test]
fn rfc768_udp_checksum_zero_sent_as_ffff() {
    let udp = L4::Udp { src: 1000, dst: 53 };
    // IPv6 -> IPv4.
    let probe = build(
        v4_header(POOL4, SERVER4, 65, 0, 5, false),
        &udp,
        &[0, 0, 9, 9],
    );
    let c = [probe[26], probe[27]];
    let data = [c[0], c[1], 9, 9];
    let v6 = build(
        v6_header(CLIENT6, server6(), 64, 0, 0),
        &L4::Udp { src: 4242, dst: 53 },
        &data,
    );
    let v4 = six_to_four(&v6, 1000, 53, 5);
    assert_eq!(&v4[26..28], &[0xff, 0xff]);
    assert_same(
        &v4,
        &build(v4_header(POOL4, SERVER4, 65, 0, 5, false), &udp, &data),
    );

    // IPv4 -> IPv6.
    let udp = L4::Udp { src: 53, dst: 4242 };
    let probe = build(v6_header(server6(), CLIENT6, 65, 0, 0), &udp, &[0, 0, 9, 9]);
    let c = [probe[46], probe[47]];
    let data = [c[0], c[1], 9, 9];
    let v4 = build(
        v4_header(SERVER4, POOL4, 64, 0, 0, false),
        &L4::Udp { src: 53, dst: 1000 },
        &data,
    );
    let v6 = four_to_six(&v4, 53, 4242);
    assert_eq!(&v6[46..48], &[0xff, 0xff]);
    assert_same(
        &v6,
        &build(v6_header(server6(), CLIENT6, 65, 0, 0), &udp, &data),
    );
}
