//! Byte-exact RFC 7915 ICMP error translation (§4.2-§4.4, §5.2-§5.4) with
//! RFC 4884 extensions, checked against packets built by etherparse.
//!
//! The scene: the client 2001:db8::42 talks to the server 192.0.2.33 (seen
//! from IPv6 as 64:ff9b::192.0.2.33) through the pool address 198.51.100.1.
//! The packet an error quotes is the one the translator itself sent: in the
//! 4->6 tests the IPv4 translation of the client's packet, in the 6->4 tests
//! the IPv6 translation of the server's. A complete quote must therefore
//! come back as the original packet, byte for byte (hop limit / TTL as
//! quoted, flow label 0, IPv4 Identification 0): that proves the quoted
//! transport checksum was updated right.

mod common;

use common::{
    build, check_checksums, check_checksums_raw, fix_v4_header_checksum, ones_checksum, ones_sum,
    tcp, v4_header, v6_header, L4,
};
use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, PacketBuilder, TcpHeader};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xlat64_packet::icmp_error::{
    translate_error_4to6, translate_error_6to4, ErrorAddrs, MAX_ICMPV4_ERROR, MAX_ICMPV6_ERROR,
};
use xlat64_packet::{
    parse_v4, parse_v6, translate_4to6, translate_6to4, DropReason, Flow4, Flow6, L4Proto,
    Prefix6052,
};

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);
const POOL4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);
/// A router on the IPv4 side.
const ROUTER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// A router on the IPv6 side.
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);

const CLIENT_PORT: u16 = 5353;
const POOL_PORT: u16 = 61000;
const SERVER_PORT: u16 = 53;
const CLIENT_ID: u16 = 0x0bad;
const POOL_ID: u16 = 0x7777;
/// Traffic class / TOS of the quoted packets.
const TC: u8 = 0x28;
/// IPv4 Identification the NAT gives a translated ICMPv4 error.
const ERROR_ID: u16 = 0xe1e1;

fn server6() -> Ipv6Addr {
    Prefix6052::WELL_KNOWN.embed(SERVER4)
}

fn embed(a: Ipv4Addr) -> Ipv6Addr {
    Prefix6052::WELL_KNOWN.embed(a)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + 5) as u8).collect()
}

fn udp(src: u16, dst: u16) -> L4 {
    L4::Udp { src, dst }
}

/// A TCP SYN with MSS and window scale options.
fn tcp_syn(src: u16, dst: u16) -> L4 {
    let mut h = TcpHeader::new(src, dst, 0xdead_beef, 65535);
    h.syn = true;
    h.set_options(&[
        etherparse::TcpOptionElement::MaximumSegmentSize(1460),
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::WindowScale(7),
    ])
    .unwrap();
    L4::Tcp(h)
}

// ---- The packets the errors are about ----

/// Source and destination port of `l4` (echo: the identifier twice).
fn ports_of(l4: &L4) -> (u16, u16) {
    match l4 {
        L4::Tcp(h) => (h.source_port, h.destination_port),
        L4::Udp { src, dst } => (*src, *dst),
        L4::Echo { id, .. } => (*id, *id),
    }
}

/// The client's packet on the IPv6 side, with hop limit `hop`.
fn client6(l4: &L4, data: &[u8], hop: u8) -> Vec<u8> {
    build(v6_header(CLIENT6, server6(), hop, TC, 0), l4, data)
}

/// The translator's IPv4 version of the client's packet (RFC 7915 §5), as
/// it reaches a router with `ttl` left: what an ICMPv4 error quotes. `l4`
/// carries the ports (identifier) the NAT gave it.
fn client_as_v4(l4: &L4, data: &[u8], ttl: u8) -> Vec<u8> {
    let v6 = client6(l4, data, 64);
    let parsed = parse_v6(&v6).expect("parse_v6");
    let (src_port, dst_port) = ports_of(l4);
    let mut out = vec![0u8; 65536];
    let n = translate_6to4(
        &v6,
        &parsed,
        SocketAddrV4::new(POOL4, src_port),
        SocketAddrV4::new(SERVER4, dst_port),
        0x1234,
        &mut out,
    )
    .expect("translate_6to4");
    out.truncate(n);
    out[8] = ttl;
    fix_v4_header_checksum(&mut out);
    out
}

/// The server's packet on the IPv4 side.
fn server4(l4: &L4, data: &[u8], ttl: u8, id: u16, df: bool) -> Vec<u8> {
    build(v4_header(SERVER4, POOL4, ttl, TC, id, df), l4, data)
}

/// The translator's IPv6 version of the server's packet (RFC 7915 §4), as it
/// reaches a router with `hop` left: what an ICMPv6 error quotes. `l4`
/// carries the client's ports (identifier).
fn server_as_v6(l4: &L4, data: &[u8], hop: u8) -> Vec<u8> {
    let v4 = server4(l4, data, 64, 0x5555, true);
    let parsed = parse_v4(&v4).expect("parse_v4");
    let (src_port, dst_port) = ports_of(l4);
    let mut out = vec![0u8; 2048];
    let n = translate_4to6(
        &v4,
        &parsed,
        SocketAddrV6::new(server6(), src_port, 0, 0),
        SocketAddrV6::new(CLIENT6, dst_port, 0, 0),
        &mut out,
    )
    .expect("translate_4to6");
    out.truncate(n);
    out[7] = hop;
    out
}

// ---- The errors ----

/// An ICMPv4 error from `from` to the pool address quoting `quote`.
fn error4(from: Ipv4Addr, ttl: u8, icmp: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v4_header(from, POOL4, ttl, 0, 0x4242, false))
        .icmpv4(icmp)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// An ICMPv4 error with raw type, code and bytes 4..8.
fn error4_raw(from: Ipv4Addr, ttl: u8, t: u8, c: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v4_header(from, POOL4, ttl, 0, 0x4242, false))
        .icmpv4_raw(t, c, rest)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// An ICMPv6 error from `from` to the server's IPv6 address quoting `quote`.
fn error6(from: Ipv6Addr, hop: u8, icmp: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v6_header(from, server6(), hop, 0, 0))
        .icmpv6(icmp)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// An ICMPv6 error with raw type, code and bytes 4..8.
fn error6_raw(from: Ipv6Addr, hop: u8, t: u8, c: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v6_header(from, server6(), hop, 0, 0))
        .icmpv6_raw(t, c, rest)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// The translated ICMPv6 error expected at the client: from `from` with
/// hop limit `hop`.
fn expected6(from: Ipv6Addr, hop: u8, t: u8, c: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v6_header(from, CLIENT6, hop, 0, 0))
        .icmpv6_raw(t, c, rest)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// The translated ICMPv4 error expected at the server: from the pool
/// address with TTL `ttl`.
fn expected4(ttl: u8, t: u8, c: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ip(v4_header(POOL4, SERVER4, ttl, 0, ERROR_ID, false))
        .icmpv4_raw(t, c, rest)
        .write(&mut out, quote)
        .unwrap();
    out
}

// ---- The translator, with the addresses the NAT's session gives ----

/// RFC 7915 §4.2-§4.4: translates an ICMPv4 error for the client's session.
/// `client_port` is the client's port (echo: its identifier), `server_port`
/// the server's (echo: the identifier again).
fn xlat_4to6(
    err: &[u8],
    client_port: u16,
    server_port: u16,
    ipv6_mtu: u32,
) -> Result<Vec<u8>, DropReason> {
    let parsed = parse_v4(err)?;
    let sender = Ipv4Addr::new(err[12], err[13], err[14], err[15]);
    let addrs = ErrorAddrs {
        outer_src: embed(sender),
        inner_src: SocketAddrV6::new(CLIENT6, client_port, 0, 0),
        inner_dst: SocketAddrV6::new(server6(), server_port, 0, 0),
    };
    let mut out = vec![0u8; 2048];
    let n = translate_error_4to6(err, &parsed, &addrs, ipv6_mtu, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// RFC 7915 §5.2-§5.4: translates an ICMPv6 error for the server's session.
fn xlat_6to4(
    err: &[u8],
    pool_port: u16,
    server_port: u16,
    ipv6_mtu: u32,
) -> Result<Vec<u8>, DropReason> {
    let parsed = parse_v6(err)?;
    let addrs = ErrorAddrs {
        outer_src: POOL4,
        inner_src: SocketAddrV4::new(SERVER4, server_port),
        inner_dst: SocketAddrV4::new(POOL4, pool_port),
    };
    let mut out = vec![0u8; 2048];
    let n = translate_error_6to4(err, &parsed, &addrs, ERROR_ID, ipv6_mtu, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn xlat_udp_4to6(err: &[u8]) -> Result<Vec<u8>, DropReason> {
    xlat_4to6(err, CLIENT_PORT, SERVER_PORT, 1500)
}

fn xlat_udp_6to4(err: &[u8]) -> Result<Vec<u8>, DropReason> {
    xlat_6to4(err, POOL_PORT, SERVER_PORT, 1500)
}

/// Byte equality with the offset of the first difference, then every
/// checksum, from etherparse and from the raw bytes.
fn assert_same(actual: &[u8], expected: &[u8]) {
    let first_diff = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .or((actual.len() != expected.len()).then_some(actual.len().min(expected.len())));
    if let Some(i) = first_diff {
        panic!(
            "differs at byte {i} (lengths {} / {})\n  actual {:02x?}\nexpected {:02x?}",
            actual.len(),
            expected.len(),
            &actual[i.saturating_sub(8)..actual.len().min(i + 24)],
            &expected[i.saturating_sub(8)..expected.len().min(i + 24)],
        );
    }
    check_checksums_raw(actual).unwrap();
    // etherparse's typed ICMP headers drop bytes 4..8 of Destination
    // Unreachable and Time Exceeded: skip it when they carry an RFC 4884
    // length attribute.
    let icmp_at = if actual[0] >> 4 == 4 { 20 } else { 40 };
    if actual[icmp_at + 4..icmp_at + 6] == [0, 0] || actual[icmp_at] == 12 || actual[icmp_at] == 4 {
        check_checksums(actual).unwrap();
    }
}

/// The quote inside a translated error (after the outer IP and ICMP headers).
fn quote_of(pkt: &[u8]) -> &[u8] {
    if pkt[0] >> 4 == 4 {
        &pkt[28..]
    } else {
        &pkt[48..]
    }
}

// ======================= RFC 7915 §4: IPv4 -> IPv6 =======================

/// RFC 7915 §4.2: Destination Unreachable code 3 (port) becomes ICMPv6
/// Destination Unreachable code 4; the quoted UDP packet comes back as the
/// client sent it.
#[test]
fn rfc7915_4_2_port_unreachable_udp_quote_4to6_byte_exact() {
    let data = payload(100);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 60);
    let err = error4(
        SERVER4,
        50,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
        &quote,
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let expected = expected6(
        server6(),
        51,
        1,
        4,
        [0; 4],
        &client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 60),
    );
    assert_same(&v6, &expected);
    check_checksums(quote_of(&v6)).unwrap();
}

/// RFC 7915 §4.2: Time Exceeded keeps its code; the quoted TCP SYN (options
/// and all) comes back as the client sent it, checksum included.
#[test]
fn rfc7915_4_2_time_exceeded_tcp_syn_quote_4to6_byte_exact() {
    let quote = client_as_v4(&tcp_syn(POOL_PORT, 443), &[], 1);
    for code in [
        icmpv4::TimeExceededCode::TtlExceededInTransit,
        icmpv4::TimeExceededCode::FragmentReassemblyTimeExceeded,
    ] {
        let err = error4(ROUTER4, 254, Icmpv4Type::TimeExceeded(code), &quote);
        let v6 = xlat_4to6(&err, 40000, 443, 1500).unwrap();
        let expected = expected6(
            embed(ROUTER4),
            255,
            3,
            code as u8,
            [0; 4],
            &client6(&tcp_syn(40000, 443), &[], 1),
        );
        assert_same(&v6, &expected);
        check_checksums(quote_of(&v6)).unwrap();
    }
}

/// RFC 7915 §4.3 with RFC 792: a router quoting only the IP header and 8
/// bytes gives a quote of the IPv6 header and the same 8 bytes, ports
/// rewritten; the TCP checksum is not in the quote and nothing else changes.
/// The Payload Length is the original packet's.
#[test]
fn rfc7915_4_3_rfc792_short_tcp_quote_4to6_byte_exact() {
    let data = payload(300);
    let quote = client_as_v4(&tcp(POOL_PORT, 443), &data, 7);
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &quote[..28],
    );
    let v6 = xlat_4to6(&err, 40000, 443, 1500).unwrap();
    let full = client6(&tcp(40000, 443), &data, 7);
    let expected = expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &full[..48]);
    assert_same(&v6, &expected);
}

/// RFC 7915 §4.2: Fragmentation Needed becomes Packet Too Big with
/// min(MTU + 20, IPv6 MTU), never below 1280; a zero MTU is estimated from
/// the quoted Total Length with the RFC 1191 plateaus.
#[test]
fn rfc7915_4_2_fragmentation_needed_is_packet_too_big() {
    // (IPv6 packet length, Next-Hop MTU, IPv6 MTU, expected PTB MTU)
    let cases = [
        (1520, 1400, 1500, 1420),
        (1520, 1480, 1500, 1500),
        (1520, 1000, 1500, 1280),
        (1520, 0, 1500, 1500), // plateau 1492 + 20, capped at 1500
        (1520, 0, 9000, 1512), // plateau 1492 + 20
        (4020, 0, 9000, 2022), // plateau 2002 + 20
        (9020, 0, 9000, 8186), // plateau 8166 + 20
        (1420, 0, 1500, 1280), // plateau 1006 + 20, floored at 1280
        (9020, 9000, 9000, 9000),
    ];
    for (len6, mtu4, ipv6_mtu, ptb) in cases {
        let data = payload(len6 - 40 - 36);
        let quote = client_as_v4(&tcp(POOL_PORT, 443), &data, 9);
        assert_eq!(quote.len(), len6 - 20);
        let cut = quote.len().min(548);
        let err = error4(
            ROUTER4,
            30,
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu4 },
            ),
            &quote[..cut],
        );
        let v6 = xlat_4to6(&err, 40000, 443, ipv6_mtu).unwrap();
        let full = client6(&tcp(40000, 443), &data, 9);
        let mut expected = Vec::new();
        PacketBuilder::ip(v6_header(embed(ROUTER4), CLIENT6, 31, 0, 0))
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: ptb })
            .write(&mut expected, &full[..cut + 20])
            .unwrap();
        assert_same(&v6, &expected);
        assert_eq!(
            u32::from_be_bytes(v6[44..48].try_into().unwrap()),
            ptb,
            "{len6} {mtu4} {ipv6_mtu}"
        );
    }
}

/// RFC 7915 §4.2: Protocol Unreachable becomes Parameter Problem code 1
/// (unrecognized Next Header) pointing at the Next Header field (6).
#[test]
fn rfc7915_4_2_protocol_unreachable_is_parameter_problem_pointer_6() {
    let data = payload(20);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 3);
    let err = error4(
        SERVER4,
        64,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Protocol),
        &quote,
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let mut expected = Vec::new();
    PacketBuilder::ip(v6_header(server6(), CLIENT6, 65, 0, 0))
        .icmpv6(Icmpv6Type::ParameterProblem(
            icmpv6::ParameterProblemHeader {
                code: icmpv6::ParameterProblemCode::UnrecognizedNextHeader,
                pointer: 6,
            },
        ))
        .write(
            &mut expected,
            &client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 3),
        )
        .unwrap();
    assert_same(&v6, &expected);
}

/// RFC 7915 §4.2 Figure 3: Parameter Problem codes 0 and 2 become code 0
/// with the pointer moved to the same field of the IPv6 header; fields
/// IPv6 does not have, and code 1 (missing option), are dropped.
#[test]
fn rfc7915_4_2_parameter_problem_pointer_mapping_4to6() {
    let data = payload(8);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 3);
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 3);
    let mapped = [
        (0u8, 0u32),
        (1, 1),
        (2, 4),
        (3, 4),
        (8, 7),
        (9, 6),
        (12, 8),
        (13, 8),
        (15, 8),
        (16, 24),
        (19, 24),
    ];
    for code in [0u8, 2] {
        for (p4, p6) in mapped {
            let err = error4_raw(ROUTER4, 64, 12, code, [p4, 0, 0, 0], &quote);
            let v6 = xlat_udp_4to6(&err).unwrap();
            let mut expected = Vec::new();
            PacketBuilder::ip(v6_header(embed(ROUTER4), CLIENT6, 65, 0, 0))
                .icmpv6(Icmpv6Type::ParameterProblem(
                    icmpv6::ParameterProblemHeader {
                        code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                        pointer: p6,
                    },
                ))
                .write(&mut expected, &inner)
                .unwrap();
            assert_same(&v6, &expected);
        }
        for p4 in [4u8, 5, 6, 7, 10, 11, 20, 40, 255] {
            let err = error4_raw(ROUTER4, 64, 12, code, [p4, 0, 0, 0], &quote);
            assert_eq!(
                xlat_udp_4to6(&err),
                Err(DropReason::IcmpUntranslatable),
                "code {code} pointer {p4}"
            );
        }
    }
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::MissingRequiredOption),
        &quote,
    );
    assert_eq!(xlat_udp_4to6(&err), Err(DropReason::IcmpUntranslatable));
}

/// RFC 7915 §4.2: the whole Destination Unreachable code table.
#[test]
fn rfc7915_4_2_destination_unreachable_codes_4to6() {
    let data = payload(8);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 3);
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 3);
    for code in 0u8..=20 {
        let expect: Option<(u8, u8, [u8; 4])> = match code {
            0 | 1 | 5 | 6 | 7 | 8 | 11 | 12 => Some((1, 0, [0; 4])),
            2 => Some((4, 1, [0, 0, 0, 6])),
            3 => Some((1, 4, [0; 4])),
            4 => None, // Packet Too Big: tested above
            9 | 10 | 13 | 15 => Some((1, 1, [0; 4])),
            _ => None,
        };
        let err = error4_raw(ROUTER4, 64, 3, code, [0, 0, 0x05, 0xdc], &quote);
        let got = xlat_udp_4to6(&err);
        match expect {
            Some((t, c, rest)) => {
                assert_same(
                    &got.unwrap(),
                    &expected6(embed(ROUTER4), 65, t, c, rest, &inner),
                );
            }
            None if code == 4 => assert!(got.is_ok()),
            None => assert_eq!(got, Err(DropReason::IcmpUntranslatable), "code {code}"),
        }
    }
}

/// RFC 7915 §4.2: an error quoting an echo request: type 8 becomes 128,
/// the identifier is the client's again and the quoted checksum, updated
/// incrementally with the IPv6 pseudo-header, verifies.
#[test]
fn rfc7915_4_2_echo_request_quote_4to6_byte_exact() {
    let data = payload(56);
    let echo = |id| L4::Echo {
        request: true,
        id,
        seq: 0x0102,
    };
    let quote = client_as_v4(&echo(POOL_ID), &data, 1);
    assert_eq!(quote[20], 8);
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &quote,
    );
    let parsed = parse_v4(&err).unwrap();
    assert_eq!(parsed.flow.proto, L4Proto::Icmp);
    assert_eq!(
        (parsed.flow.src_port, parsed.flow.dst_port),
        (POOL_ID, POOL_ID)
    );
    let v6 = xlat_4to6(&err, CLIENT_ID, CLIENT_ID, 1500).unwrap();
    let inner = client6(&echo(CLIENT_ID), &data, 1);
    assert_eq!(inner[40], 128);
    assert_same(&v6, &expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &inner));
    check_checksums(quote_of(&v6)).unwrap();
}

/// RFC 7915 §4.4, RFC 4443 §2.4(c): an ICMPv4 error quoting more than an
/// ICMPv6 error may carry is cut to exactly 1280 bytes; the quoted UDP
/// checksum (in the first 8 bytes) is still updated.
#[test]
fn rfc7915_4_4_quote_truncated_to_1280_4to6() {
    let data = payload(1400);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 5);
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &quote,
    );
    assert_eq!(err.len(), 20 + 8 + 20 + 8 + 1400);
    let v6 = xlat_udp_4to6(&err).unwrap();
    assert_eq!(v6.len(), MAX_ICMPV6_ERROR);
    let full = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 5);
    let expected = expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &full[..1280 - 48]);
    assert_same(&v6, &expected);
    // Just below the limit nothing is cut.
    let data = payload(1280 - 48 - 48);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 5);
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &quote,
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let full = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 5);
    assert_same(&v6, &expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &full));
    assert_eq!(v6.len(), 1280);
    check_checksums(quote_of(&v6)).unwrap();
}

/// An RFC 4884 extension structure (§7: version 2, checksum over the
/// structure) holding one MPLS label stack object (RFC 4950, class 1,
/// C-Type 1), `extra` bytes of object data longer than usual.
fn extension(extra: usize) -> Vec<u8> {
    let obj_len = 8 + extra;
    let mut e = vec![0x20, 0, 0, 0];
    e.extend_from_slice(&(obj_len as u16).to_be_bytes());
    e.extend_from_slice(&[1, 1, 0x00, 0x01, 0x41, 0xff]);
    e.extend((0..extra).map(|i| i as u8 | 0x80));
    let c = ones_checksum(0, &e);
    e[2..4].copy_from_slice(&c.to_be_bytes());
    e
}

/// `original` zero-padded to `len` bytes, then `ext`.
fn padded(original: &[u8], len: usize, ext: &[u8]) -> Vec<u8> {
    let mut v = original.to_vec();
    v.resize(len, 0);
    v.extend_from_slice(ext);
    v
}

/// RFC 7915 §4.4 with RFC 4884 §4-5: an ICMPv4 Time Exceeded whose length
/// attribute (32-bit words) marks a 128-byte original datagram followed by
/// an extension becomes an ICMPv6 Time Exceeded whose length attribute
/// (64-bit words) covers the translated original datagram, zero-padded to a
/// multiple of 8 and at least 128 bytes, with the extension unchanged after
/// it.
#[test]
fn rfc4884_time_exceeded_extension_4to6_byte_exact() {
    let data = payload(12);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 1);
    assert_eq!(quote.len(), 40);
    let ext = extension(0);
    let err = error4_raw(
        ROUTER4,
        64,
        11,
        0,
        [0, 128 / 4, 0, 0],
        &padded(&quote, 128, &ext),
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    // 40-byte IPv6 header + 108 transport bytes (20 real, 88 padding) = 148,
    // padded to 152 = 19 units of 8.
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 1);
    let expected = expected6(
        embed(ROUTER4),
        65,
        3,
        0,
        [152 / 8, 0, 0, 0],
        &padded(&inner, 152, &ext),
    );
    assert_same(&v6, &expected);
    assert_eq!(&v6[v6.len() - ext.len()..], &ext[..]);
    // The quoted UDP checksum verifies over the real datagram.
    check_checksums_raw(&v6[48..48 + inner.len()]).unwrap();

    // A longer original datagram: 200 bytes, padded to 8.
    let data = payload(152);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 1);
    assert_eq!(quote.len(), 180);
    let err = error4_raw(
        ROUTER4,
        64,
        3,
        3,
        [0, 180 / 4, 0, 0],
        &padded(&quote, 180, &ext),
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 1);
    assert_eq!(inner.len(), 200);
    let expected = expected6(
        embed(ROUTER4),
        65,
        1,
        4,
        [200 / 8, 0, 0, 0],
        &padded(&inner, 200, &ext),
    );
    assert_same(&v6, &expected);
}

/// RFC 4884 §4: an extension that leaves no room for 128 bytes of original
/// datagram within 1280 bytes is dropped, and the length attribute with it.
#[test]
fn rfc4884_extension_too_big_is_dropped_4to6() {
    let data = payload(100);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 1);
    let ext = extension(1160);
    let err = error4_raw(
        ROUTER4,
        64,
        11,
        0,
        [0, 128 / 4, 0, 0],
        &padded(&quote, 128, &ext),
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 1);
    assert_same(
        &v6,
        &expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &padded(&inner, 148, &[])),
    );
}

/// RFC 4884 §4: an extended message carries at least 128 bytes of original
/// datagram. A length attribute below that (here: the quoted header alone)
/// is a non-compliant sender's: the whole quote is taken as the datagram.
#[test]
fn rfc4884_short_length_attribute_treated_as_absent_4to6() {
    let data = payload(100);
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 1);
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 1);
    for words in [1u8, 5, 7, 31] {
        let err = error4_raw(ROUTER4, 64, 11, 0, [0, words, 0, 0], &quote);
        let v6 = xlat_udp_4to6(&err).unwrap();
        assert_same(&v6, &expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &inner));
    }
    // Pointing past the message: absent too.
    let err = error4_raw(ROUTER4, 64, 11, 0, [0, 255, 0, 0], &quote);
    let v6 = xlat_udp_4to6(&err).unwrap();
    assert_same(&v6, &expected6(embed(ROUTER4), 65, 3, 0, [0; 4], &inner));
}

/// RFC 7915 §4.2: ICMPv4 messages with no ICMPv6 counterpart are dropped:
/// redirect, source quench, timestamps, information and address mask
/// requests, router discovery (unknown to the parser), and the codes and
/// types the table leaves out (host precedence violation...).
#[test]
fn rfc7915_4_2_untranslatable_icmpv4_dropped() {
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    for t in [4u8, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18, 30, 40, 255] {
        let err = error4_raw(ROUTER4, 64, t, 0, [0; 4], &quote);
        assert_eq!(
            parse_v4(&err).map(|_| ()),
            Err(DropReason::Icmpv4TypeUnsupported),
            "type {t}"
        );
    }
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::Redirect(icmpv4::RedirectHeader {
            code: icmpv4::RedirectCode::RedirectForHost,
            gateway_internet_address: [192, 0, 2, 1],
        }),
        &quote,
    );
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::Icmpv4TypeUnsupported)
    );
    let untranslatable = [
        (3u8, 14u8), // host precedence violation
        (3, 16),
        (3, 255),
        (11, 2),
        (12, 1), // missing a required option
        (12, 3),
    ];
    for (t, c) in untranslatable {
        let err = error4_raw(ROUTER4, 64, t, c, [0; 4], &quote);
        assert!(parse_v4(&err).unwrap().icmp_error.is_some());
        assert_eq!(
            xlat_udp_4to6(&err),
            Err(DropReason::IcmpUntranslatable),
            "type {t} code {c}"
        );
    }
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::HostPrecedenceViolation),
        &quote,
    );
    assert_eq!(xlat_udp_4to6(&err), Err(DropReason::IcmpUntranslatable));
}

/// RFC 7915 §4.3, RFC 1122 §3.2.2: an error quoting an ICMP error (or any
/// ICMP message but echo) is refused.
#[test]
fn rfc7915_4_3_error_quoting_error_refused() {
    let inner = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    // An error the pool address sent about the server's packet, quoted back.
    let mut first = Vec::new();
    PacketBuilder::ip(v4_header(POOL4, SERVER4, 64, 0, 0, false))
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut first, &inner)
        .unwrap();
    let err = error4(
        ROUTER4,
        64,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &first,
    );
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::IcmpQuoteUntranslatable)
    );
    // Timestamp request quoted.
    let mut ts = Vec::new();
    PacketBuilder::ip(v4_header(POOL4, SERVER4, 64, 0, 0, false))
        .icmpv4_raw(13, 0, [0, 1, 0, 1])
        .write(&mut ts, &[0; 12])
        .unwrap();
    let err = error4_raw(ROUTER4, 64, 3, 1, [0; 4], &ts);
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::IcmpQuoteUntranslatable)
    );
    // A protocol the translator does not carry (GRE, 47).
    let mut gre = inner.clone();
    gre[9] = 47;
    fix_v4_header_checksum(&mut gre);
    let err = error4_raw(ROUTER4, 64, 3, 1, [0; 4], &gre);
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::IcmpQuoteUntranslatable)
    );
}

/// RFC 7915 §4.3: a quote needs the ports (or echo identifier), the first
/// 8 transport bytes; a shorter one, or one cut inside the IP header, is
/// refused.
#[test]
fn rfc7915_4_3_quote_shorter_than_8_transport_bytes_refused() {
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    for cut in [0usize, 1, 19, 20, 21, 24, 27] {
        let err = error4_raw(ROUTER4, 64, 3, 1, [0; 4], &quote[..cut]);
        assert_eq!(
            parse_v4(&err).map(|_| ()),
            Err(DropReason::IcmpQuoteUntranslatable),
            "cut at {cut}"
        );
    }
    let err = error4_raw(ROUTER4, 64, 3, 1, [0; 4], &quote[..28]);
    assert!(parse_v4(&err).is_ok());
}

/// RFC 7915 §4.3: the quoted packet must have come from the address the
/// error goes to; otherwise it belongs to no session of this destination.
#[test]
fn rfc7915_4_3_quote_not_from_error_destination_refused() {
    let mut quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    quote[12..16].copy_from_slice(&[198, 51, 100, 2]);
    fix_v4_header_checksum(&mut quote);
    let err = error4_raw(ROUTER4, 64, 3, 3, [0; 4], &quote);
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::IcmpQuoteUntranslatable)
    );
}

/// RFC 7915 §4.3: only the first fragment carries the ports; a quoted
/// non-first fragment is refused, a quoted first fragment translated.
#[test]
fn rfc7915_4_3_quoted_non_first_fragment_refused() {
    let mut quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    quote[6] = 0x00;
    quote[7] = 0xb9; // offset 185 * 8
    fix_v4_header_checksum(&mut quote);
    let err = error4_raw(ROUTER4, 64, 11, 1, [0; 4], &quote);
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::IcmpQuoteUntranslatable)
    );
    quote[6] = 0x20; // MF, offset 0
    quote[7] = 0;
    fix_v4_header_checksum(&mut quote);
    let err = error4_raw(ROUTER4, 64, 11, 1, [0; 4], &quote);
    assert!(xlat_udp_4to6(&err).is_ok());
}

/// RFC 1122 §3.2.2 / RFC 7915 §4.1: an ICMPv4 error with a wrong checksum
/// would leave with a right one: refused.
#[test]
fn rfc7915_4_2_bad_icmpv4_checksum_refused() {
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    let mut err = error4_raw(ROUTER4, 64, 3, 3, [0; 4], &quote);
    err[22] ^= 0x01;
    assert_eq!(
        parse_v4(&err).map(|_| ()),
        Err(DropReason::BadTransportChecksum)
    );
}

/// RFC 6146 §3.4: the flow of an ICMP error is the quoted packet's flow
/// reversed, the session as seen from the side the error arrives on.
#[test]
fn rfc6146_3_4_error_flow_is_quoted_flow_reversed() {
    let quote = client_as_v4(&tcp(POOL_PORT, 443), &payload(8), 3);
    let err = error4_raw(ROUTER4, 64, 3, 3, [0; 4], &quote);
    let p = parse_v4(&err).unwrap();
    assert_eq!(
        p.flow,
        Flow4 {
            proto: L4Proto::Tcp,
            src: SERVER4,
            dst: POOL4,
            src_port: 443,
            dst_port: POOL_PORT,
            tcp_flags: 0,
        }
    );
    let q = p.icmp_error.unwrap();
    assert_eq!((q.icmp_type, q.code, q.proto, q.hop_limit), (3, 3, 6, 3));
    assert_eq!((q.ip_offset, q.l4_offset, q.l4_len), (28, 48, 36 + 8));

    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &payload(8), 9);
    let err = error6(
        ROUTER6,
        64,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Address),
        &quote,
    );
    let p = parse_v6(&err).unwrap();
    assert_eq!(
        p.flow,
        Flow6 {
            proto: L4Proto::Udp,
            src: CLIENT6,
            dst: server6(),
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            tcp_flags: 0,
        }
    );
    let q = p.icmp_error.unwrap();
    assert_eq!((q.icmp_type, q.code, q.proto, q.hop_limit), (1, 3, 17, 9));
    assert_eq!((q.ip_offset, q.l4_offset, q.l4_len), (48, 88, 16));
}

/// The output buffer must hold the whole translated error.
#[test]
fn output_too_small_for_translated_error() {
    let quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &payload(8), 3);
    let err = error4_raw(ROUTER4, 64, 3, 3, [0; 4], &quote);
    let parsed = parse_v4(&err).unwrap();
    let addrs = ErrorAddrs {
        outer_src: embed(ROUTER4),
        inner_src: SocketAddrV6::new(CLIENT6, CLIENT_PORT, 0, 0),
        inner_dst: SocketAddrV6::new(server6(), SERVER_PORT, 0, 0),
    };
    let need = 48 + 40 + 16;
    let mut out = vec![0u8; need - 1];
    assert_eq!(
        translate_error_4to6(&err, &parsed, &addrs, 1500, &mut out),
        Err(DropReason::OutputTooSmall)
    );
    let mut out = vec![0u8; need];
    assert_eq!(
        translate_error_4to6(&err, &parsed, &addrs, 1500, &mut out),
        Ok(need)
    );
}

// ======================= RFC 7915 §5: IPv6 -> IPv4 =======================

/// RFC 7915 §5.2: the Destination Unreachable code table; the quoted UDP
/// packet comes back as the server sent it (TTL as quoted, ID 0).
#[test]
fn rfc7915_5_2_destination_unreachable_codes_6to4_byte_exact() {
    let data = payload(100);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 60);
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 60, 0, false);
    for code in 0u8..=8 {
        let expect = match code {
            0 | 2 | 3 => Some(1u8),
            1 => Some(10),
            4 => Some(3),
            _ => None,
        };
        let err = error6_raw(ROUTER6, 50, 1, code, [0; 4], &quote);
        match expect {
            Some(c) => {
                let v4 = xlat_udp_6to4(&err).unwrap();
                assert_same(&v4, &expected4(51, 3, c, [0; 4], &inner));
                check_checksums(quote_of(&v4)).unwrap();
            }
            None => assert_eq!(
                xlat_udp_6to4(&err),
                Err(DropReason::IcmpUntranslatable),
                "code {code}"
            ),
        }
    }
    // The same with etherparse's names for the codes.
    let err = error6(
        ROUTER6,
        50,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
        &quote,
    );
    let mut expected = Vec::new();
    PacketBuilder::ip(v4_header(POOL4, SERVER4, 51, 0, ERROR_ID, false))
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut expected, &inner)
        .unwrap();
    assert_same(&xlat_udp_6to4(&err).unwrap(), &expected);
}

/// RFC 7915 §5.2: Packet Too Big becomes Fragmentation Needed with
/// min(MTU, IPv6 MTU) - 20; a quote of 1232 bytes is cut to exactly 576.
/// The quoted packet, over 1260 bytes, has DF set (§5.1).
#[test]
fn rfc7915_5_2_packet_too_big_is_fragmentation_needed() {
    let data = payload(1400);
    let quote = server_as_v6(&tcp(443, CLIENT_PORT), &data, 17);
    assert_eq!(quote.len(), 40 + 36 + 1400);
    let inner = server4(&tcp(443, POOL_PORT), &data, 17, 0, true);
    for (mtu6, ipv6_mtu, mtu4) in [
        (1280u32, 1500u32, 1260u16),
        (1500, 1400, 1380),
        (1500, 1500, 1480),
    ] {
        let err = error6(
            ROUTER6,
            64,
            Icmpv6Type::PacketTooBig { mtu: mtu6 },
            &quote[..1280 - 48],
        );
        let v4 = xlat_6to4(&err, POOL_PORT, 443, ipv6_mtu).unwrap();
        assert_eq!(v4.len(), MAX_ICMPV4_ERROR);
        let mut expected = Vec::new();
        PacketBuilder::ip(v4_header(POOL4, SERVER4, 65, 0, ERROR_ID, false))
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu4 },
            ))
            .write(&mut expected, &inner[..576 - 28])
            .unwrap();
        assert_same(&v4, &expected);
    }
}

/// RFC 7915 §5.2: Time Exceeded keeps its code; a quoted TCP SYN comes back
/// whole, checksum verified.
#[test]
fn rfc7915_5_2_time_exceeded_tcp_syn_6to4_byte_exact() {
    let quote = server_as_v6(&tcp_syn(443, CLIENT_PORT), &[], 1);
    let inner = server4(&tcp_syn(443, POOL_PORT), &[], 1, 0, false);
    for code in [0u8, 1] {
        let err = error6_raw(ROUTER6, 200, 3, code, [0; 4], &quote);
        let v4 = xlat_6to4(&err, POOL_PORT, 443, 1500).unwrap();
        assert_same(&v4, &expected4(201, 11, code, [0; 4], &inner));
        check_checksums(quote_of(&v4)).unwrap();
    }
    // RFC 4443 §3: a 8-byte cut quote.
    let err = error6_raw(ROUTER6, 200, 3, 0, [0; 4], &quote[..48]);
    let v4 = xlat_6to4(&err, POOL_PORT, 443, 1500).unwrap();
    assert_same(&v4, &expected4(201, 11, 0, [0; 4], &inner[..28]));
}

/// RFC 7915 §5.2 Figure 6: Parameter Problem code 0 with the pointer moved
/// to the same IPv4 field; fields IPv4 does not have are dropped; code 1
/// (unrecognized Next Header) becomes Protocol Unreachable; code 2 dropped.
#[test]
fn rfc7915_5_2_parameter_problem_6to4() {
    let data = payload(8);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 3);
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 3, 0, false);
    let mapped = [
        (0u32, 0u8),
        (1, 1),
        (4, 2),
        (5, 2),
        (6, 9),
        (7, 8),
        (8, 12),
        (23, 12),
        (24, 16),
        (39, 16),
    ];
    for (p6, p4) in mapped {
        let err = error6(
            ROUTER6,
            64,
            Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
                code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                pointer: p6,
            }),
            &quote,
        );
        let v4 = xlat_udp_6to4(&err).unwrap();
        let mut expected = Vec::new();
        PacketBuilder::ip(v4_header(POOL4, SERVER4, 65, 0, ERROR_ID, false))
            .icmpv4(Icmpv4Type::ParameterProblem(
                icmpv4::ParameterProblemHeader::PointerIndicatesError(p4),
            ))
            .write(&mut expected, &inner)
            .unwrap();
        assert_same(&v4, &expected);
    }
    for p6 in [2u32, 3, 40, 41, 1000, 0x0100_0000] {
        let err = error6_raw(ROUTER6, 64, 4, 0, p6.to_be_bytes(), &quote);
        assert_eq!(
            xlat_udp_6to4(&err),
            Err(DropReason::IcmpUntranslatable),
            "pointer {p6}"
        );
    }
    let err = error6(
        ROUTER6,
        64,
        Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
            code: icmpv6::ParameterProblemCode::UnrecognizedNextHeader,
            pointer: 6,
        }),
        &quote,
    );
    let mut expected = Vec::new();
    PacketBuilder::ip(v4_header(POOL4, SERVER4, 65, 0, ERROR_ID, false))
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Protocol,
        ))
        .write(&mut expected, &inner)
        .unwrap();
    assert_same(&xlat_udp_6to4(&err).unwrap(), &expected);
    for code in [2u8, 3, 10] {
        let err = error6_raw(ROUTER6, 64, 4, code, [0, 0, 0, 6], &quote);
        assert_eq!(
            xlat_udp_6to4(&err),
            Err(DropReason::IcmpUntranslatable),
            "code {code}"
        );
    }
}

/// RFC 7915 §5.4, RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes;
/// the quoted UDP checksum (in the first 8 bytes) is still updated.
#[test]
fn rfc7915_5_4_quote_truncated_to_576_6to4() {
    let data = payload(1000);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 5);
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 5, 0, false);
    let err = error6_raw(ROUTER6, 64, 3, 0, [0; 4], &quote);
    let v4 = xlat_udp_6to4(&err).unwrap();
    assert_eq!(v4.len(), MAX_ICMPV4_ERROR);
    assert_same(&v4, &expected4(65, 11, 0, [0; 4], &inner[..548]));
    // 548 bytes of IPv4 quote: exactly fits, nothing cut.
    let data = payload(548 - 28);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 5);
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 5, 0, false);
    let err = error6_raw(ROUTER6, 64, 3, 0, [0; 4], &quote);
    let v4 = xlat_udp_6to4(&err).unwrap();
    assert_eq!(v4.len(), 576);
    assert_same(&v4, &expected4(65, 11, 0, [0; 4], &inner));
    check_checksums(quote_of(&v4)).unwrap();
}

/// RFC 7915 §5.2: an error quoting an echo reply: type 129 becomes 0, the
/// identifier the pool's again, the quoted checksum (now without
/// pseudo-header) verifies.
#[test]
fn rfc7915_5_2_echo_reply_quote_6to4_byte_exact() {
    let data = payload(33);
    let echo = |id| L4::Echo {
        request: false,
        id,
        seq: 77,
    };
    let quote = server_as_v6(&echo(CLIENT_ID), &data, 4);
    assert_eq!(
        (quote[40], &quote[44..46]),
        (129, &CLIENT_ID.to_be_bytes()[..])
    );
    let err = error6_raw(ROUTER6, 64, 1, 0, [0; 4], &quote);
    let p = parse_v6(&err).unwrap();
    assert_eq!(p.flow.proto, L4Proto::Icmp);
    assert_eq!((p.flow.src_port, p.flow.dst_port), (CLIENT_ID, CLIENT_ID));
    let v4 = xlat_6to4(&err, POOL_ID, POOL_ID, 1500).unwrap();
    let inner = server4(&echo(POOL_ID), &data, 4, 0, false);
    assert_same(&v4, &expected4(65, 3, 1, [0; 4], &inner));
    check_checksums(quote_of(&v4)).unwrap();
}

/// RFC 7915 §5.4 with RFC 4884: an ICMPv6 Destination Unreachable whose
/// length attribute (64-bit words) marks a 128-byte original datagram and
/// an extension becomes an ICMPv4 one with the length attribute in 32-bit
/// words in byte 5, the original padded to 128 bytes, the extension after.
#[test]
fn rfc4884_destination_unreachable_extension_6to4_byte_exact() {
    let data = payload(32);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 1);
    assert_eq!(quote.len(), 80);
    let ext = extension(4);
    let err = error6_raw(
        ROUTER6,
        64,
        1,
        3,
        [128 / 8, 0, 0, 0],
        &padded(&quote, 128, &ext),
    );
    let v4 = xlat_udp_6to4(&err).unwrap();
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 1, 0, false);
    assert_eq!(inner.len(), 60);
    let expected = expected4(65, 3, 1, [0, 128 / 4, 0, 0], &padded(&inner, 128, &ext));
    assert_same(&v4, &expected);
    check_checksums_raw(&v4[28..28 + 60]).unwrap();

    // Time Exceeded with a long original datagram: the error is cut to
    // 576 bytes, in the original datagram, and the extension is kept.
    let data = payload(1000);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 1);
    let err = error6_raw(
        ROUTER6,
        64,
        3,
        0,
        [131, 0, 0, 0],
        &padded(&quote, 1048, &ext),
    );
    let v4 = xlat_udp_6to4(&err).unwrap();
    assert_eq!(v4.len(), 576);
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 1, 0, false);
    let original = 576 - 28 - ext.len();
    let expected = expected4(
        65,
        11,
        0,
        [0, (original / 4) as u8, 0, 0],
        &padded(&inner[..original], original, &ext),
    );
    assert_same(&v4, &expected);
}

/// RFC 4884 on a type without a length attribute (Packet Too Big): the
/// bytes after the quote are quoted bytes, cut to fit.
#[test]
fn rfc4884_no_length_attribute_in_packet_too_big_6to4() {
    let data = payload(32);
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 1);
    let ext = extension(0);
    let err = error6_raw(
        ROUTER6,
        64,
        2,
        0,
        1280u32.to_be_bytes(),
        &padded(&quote, 128, &ext),
    );
    let v4 = xlat_udp_6to4(&err).unwrap();
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 1, 0, false);
    let expected = expected4(65, 3, 4, [0, 0, 0x04, 0xec], &padded(&inner, 108, &ext));
    assert_same(&v4, &expected);
}

/// RFC 4443 §2.3: an ICMPv6 error with a wrong checksum is refused (the
/// ICMPv4 checksum would otherwise be computed anew over corrupt data).
#[test]
fn rfc4443_2_3_bad_icmpv6_checksum_refused() {
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &payload(8), 3);
    let mut err = error6_raw(ROUTER6, 64, 1, 4, [0; 4], &quote);
    assert!(parse_v6(&err).is_ok());
    err[42] ^= 0x80;
    assert_eq!(
        parse_v6(&err).map(|_| ()),
        Err(DropReason::BadTransportChecksum)
    );
    // A flipped bit in the quote, same.
    let mut err = error6_raw(ROUTER6, 64, 1, 4, [0; 4], &quote);
    let last = err.len() - 1;
    err[last] ^= 0x01;
    assert_eq!(
        parse_v6(&err).map(|_| ()),
        Err(DropReason::BadTransportChecksum)
    );
}

/// RFC 7915 §5.3: refused quotes from the IPv6 side: an error quoting an
/// error, a quote shorter than 8 transport bytes, a quote not from the
/// error's destination, a quoted non-first fragment.
#[test]
fn rfc7915_5_3_untranslatable_quotes_refused() {
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &payload(8), 3);
    let refused = |q: &[u8]| {
        let err = error6_raw(ROUTER6, 64, 1, 4, [0; 4], q);
        assert_eq!(
            parse_v6(&err).map(|_| ()),
            Err(DropReason::IcmpQuoteUntranslatable),
            "{q:02x?}"
        );
    };
    // An error quoting an error.
    let mut first = Vec::new();
    PacketBuilder::ip(v6_header(server6(), CLIENT6, 64, 0, 0))
        .icmpv6_raw(3, 0, [0; 4])
        .write(&mut first, &quote)
        .unwrap();
    refused(&first);
    // Neighbor solicitation quoted.
    let mut ns = first.clone();
    ns[40] = 135;
    refused(&ns);
    // Cut before the ports are complete.
    for cut in [0usize, 20, 39, 40, 44, 47] {
        refused(&quote[..cut]);
    }
    // Not from the error's destination.
    let mut other = quote.clone();
    other[23] ^= 1;
    refused(&other);
    // Non-first fragment: a Fragment header with offset 8.
    let mut frag = quote[..40].to_vec();
    frag[6] = 44;
    frag[5] += 8;
    frag.extend_from_slice(&[17, 0, 0, 8 << 3, 0, 0, 0, 1]);
    frag.extend_from_slice(&quote[40..]);
    refused(&frag);
    // First fragment: fine, the fragment header is dropped.
    frag[43] = 1;
    let err = error6_raw(ROUTER6, 64, 1, 4, [0; 4], &frag);
    assert!(xlat_udp_6to4(&err).is_ok());
    // Untranslatable extension header (ESP).
    let mut esp = quote.clone();
    esp[6] = 50;
    refused(&esp);
    let err = error6_raw(ROUTER6, 64, 1, 4, [0; 4], &quote[..48]);
    assert!(parse_v6(&err).is_ok());
}

/// RFC 7915 §5.2: ICMPv6 types the translator does not carry, and the
/// error types' untranslatable codes.
#[test]
fn rfc7915_5_2_untranslatable_icmpv6_dropped() {
    let quote = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &payload(8), 3);
    for t in [
        0u8, 5, 100, 127, 130, 131, 133, 134, 135, 136, 137, 143, 200,
    ] {
        let err = error6_raw(ROUTER6, 64, t, 0, [0; 4], &quote);
        assert_eq!(
            parse_v6(&err).map(|_| ()),
            Err(DropReason::Icmpv6TypeUnsupported),
            "type {t}"
        );
    }
    for (t, c) in [(1u8, 5u8), (1, 6), (1, 7), (2, 1), (3, 2), (4, 2), (4, 3)] {
        let err = error6_raw(ROUTER6, 64, t, c, [0; 4], &quote);
        assert_eq!(
            xlat_udp_6to4(&err),
            Err(DropReason::IcmpUntranslatable),
            "type {t} code {c}"
        );
    }
}

/// RFC 7915 §4.1, §4.3: IPv4 options are not translated, neither in the
/// error's own header nor in the quoted one; the outer TOS becomes the
/// Traffic Class.
#[test]
fn rfc7915_4_1_options_in_error_and_quote_dropped_4to6() {
    let data = payload(24);
    let plain = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 6);
    // The quote with a Record Route option (7, length 7, pointer 4) and End.
    let opts = [7u8, 7, 4, 0, 0, 0, 0, 0];
    let mut quote = plain[..20].to_vec();
    quote[0] = 0x47;
    quote[2..4].copy_from_slice(&((plain.len() + 8) as u16).to_be_bytes());
    quote.extend_from_slice(&opts);
    quote.extend_from_slice(&plain[20..]);
    fix_v4_header_checksum(&mut quote);
    // The error's own header with the same option and TOS 0xc0.
    let err = error4_raw(ROUTER4, 64, 3, 3, [0; 4], &quote);
    let mut with_opts = err[..20].to_vec();
    with_opts[0] = 0x47;
    with_opts[1] = 0xc0;
    with_opts[2..4].copy_from_slice(&((err.len() + 8) as u16).to_be_bytes());
    with_opts.extend_from_slice(&opts);
    with_opts.extend_from_slice(&err[20..]);
    fix_v4_header_checksum(&mut with_opts);
    let p = parse_v4(&with_opts).unwrap();
    assert_eq!(p.icmp_error.unwrap().ip_offset, 36);
    assert_eq!(p.icmp_error.unwrap().l4_offset, 64);
    let v6 = xlat_udp_4to6(&with_opts).unwrap();
    let inner = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 6);
    let mut expected = Vec::new();
    PacketBuilder::ip(v6_header(embed(ROUTER4), CLIENT6, 65, 0xc0, 0))
        .icmpv6_raw(1, 4, [0; 4])
        .write(&mut expected, &inner)
        .unwrap();
    assert_same(&v6, &expected);
}

/// RFC 7915 §5.1, §5.3: extension headers are not translated, neither the
/// error's own (here Hop-by-Hop) nor the quote's (Destination Options); the
/// quoted Total Length counts the upper layer only.
#[test]
fn rfc7915_5_1_extension_headers_in_error_and_quote_dropped_6to4() {
    let data = payload(24);
    let plain = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 6);
    // Options header of 8 bytes: next header, length 0, PadN of 4.
    let with_ext = |pkt: &[u8], kind: u8| {
        let mut v = pkt[..40].to_vec();
        let nh = v[6];
        v[6] = kind;
        let len = u16::from_be_bytes([v[4], v[5]]) + 8;
        v[4..6].copy_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&pkt[40..]);
        v
    };
    let quote = with_ext(&plain, 60);
    let err = with_ext(&error6_raw(ROUTER6, 64, 1, 4, [0; 4], &quote), 0);
    // The ICMPv6 checksum does not cover the extension header.
    let p = parse_v6(&err).unwrap();
    assert_eq!(p.l4_offset, 48);
    let q = p.icmp_error.unwrap();
    assert_eq!((q.ip_offset, q.l4_offset, q.l4_len), (56, 104, 32));
    let v4 = xlat_udp_6to4(&err).unwrap();
    let inner = server4(&udp(SERVER_PORT, POOL_PORT), &data, 6, 0, false);
    assert_same(&v4, &expected4(65, 3, 3, [0; 4], &inner));
    check_checksums(quote_of(&v4)).unwrap();
}

/// RFC 7915 §5.3 with §5.1.1: an error about the first of the IPv6
/// fragments the translator made of a DF-clear IPv4 packet quotes it as an
/// IPv4 first fragment: MF set, DF clear, the fragment identification (the
/// original IPv4 Identification) and the fragment's length.
#[test]
fn rfc7915_5_3_quoted_first_fragment_keeps_mf_and_id_6to4() {
    use xlat64_packet::fragment::{fragment_v6_in_place, packets};
    let data = payload(2000);
    let original = server4(&udp(SERVER_PORT, POOL_PORT), &data, 64, 0x5555, false);
    let whole = server_as_v6(&udp(SERVER_PORT, CLIENT_PORT), &data, 64);
    let mut buf = vec![0u8; 4096];
    buf[..whole.len()].copy_from_slice(&whole);
    let n = fragment_v6_in_place(&mut buf, whole.len(), 1280, 0x5555).unwrap();
    let first = packets(&buf[..n]).next().unwrap().to_vec();
    assert_eq!(first.len(), 1280);
    let mut quote = first[..1232].to_vec();
    quote[7] = 3;
    let err = error6_raw(ROUTER6, 64, 3, 0, [0; 4], &quote);
    let v4 = xlat_udp_6to4(&err).unwrap();
    assert_eq!(v4.len(), 576);
    // By hand: the original header with the fragment's length, MF and TTL 3.
    let mut inner = original[..548].to_vec();
    inner[2..4].copy_from_slice(&(20u16 + 1232).to_be_bytes());
    inner[6] = 0x20;
    inner[8] = 3;
    fix_v4_header_checksum(&mut inner);
    assert_same(&v4, &expected4(65, 11, 0, [0; 4], &inner));
}

// ============================ Properties ============================

/// Transport headers for quoted packets: TCP with options, UDP, echo.
fn l4_strategy() -> impl Strategy<Value = u8> {
    0u8..3
}

fn l4_of(kind: u8, src: u16, dst: u16) -> L4 {
    match kind {
        0 => tcp(src, dst),
        1 => udp(src, dst),
        // Echo: `src` is the identifier, `dst` unused.
        _ => L4::Echo {
            request: true,
            id: src,
            seq: 0x0506,
        },
    }
}

/// Compares a translated quote with the packet it should be: byte for byte,
/// but for the transport checksum, where 0x0000 and 0xffff are the same
/// value when the cut quote does not allow to tell.
fn assert_quote_matches(actual: &[u8], expected: &[u8], checksum_at: usize) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if i == checksum_at || i == checksum_at + 1 {
            continue;
        }
        assert_eq!(
            a,
            e,
            "byte {i}: {:02x?}\n{:02x?}",
            &actual[..actual.len().min(64)],
            &expected[..expected.len().min(64)]
        );
    }
    if let (Some(a), Some(e)) = (
        actual.get(checksum_at..checksum_at + 2),
        expected.get(checksum_at..checksum_at + 2),
    ) {
        assert!(
            a == e || (a, e) == ([0, 0].as_slice(), [0xff, 0xff].as_slice()),
            "checksum {a:02x?} / {e:02x?}"
        );
    }
}

/// The same transport with an echo request turned into a reply (what the
/// IPv4 server sends).
fn as_reply(l4: L4) -> L4 {
    l4.echo(false)
}

fn checksum_offset(kind: u8) -> usize {
    match kind {
        0 => 16,
        1 => 6,
        _ => 2,
    }
}

/// Recomputes the outer checksums of an error after its bytes were changed
/// (IPv4 header and ICMPv4, or ICMPv6 with its pseudo-header).
fn fix_outer_checksums(pkt: &mut [u8]) {
    if pkt[0] >> 4 == 4 {
        fix_v4_header_checksum(pkt);
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]])).min(pkt.len());
        if total >= ihl + 4 {
            pkt[ihl + 2] = 0;
            pkt[ihl + 3] = 0;
            let c = ones_checksum(0, &pkt[ihl..total]);
            pkt[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
        }
    } else if pkt.len() >= 44 {
        let total = (40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]))).min(pkt.len());
        pkt[42] = 0;
        pkt[43] = 0;
        let len = (total - 40) as u32;
        let pseudo = ones_sum(&[&pkt[8..40], &len.to_be_bytes()[..], &[0, 0, 0, 58]].concat());
        let c = ones_checksum(pseudo, &pkt[40..total]);
        pkt[42..44].copy_from_slice(&c.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// RFC 7915 §4.2-§4.4: ICMPv4 errors quoting random TCP, UDP and echo
    /// packets, cut anywhere after the ports: the ICMPv6 error is at most
    /// 1280 bytes, every checksum right, and the quote the client's packet
    /// (cut where the 1280 bytes end or the router cut it).
    #[test]
    fn prop_4to6_error_quoting_random_packet(
        kind in l4_strategy(),
        len in 0usize..1600,
        cut_frac in 0.0f64..=1.0,
        whole in any::<bool>(),
        ttl in 1u8..=255,
        (t, c) in prop_oneof![Just((3u8, 3u8)), Just((3, 1)), Just((11, 0)), Just((3, 13)), Just((3, 4)), Just((12, 0))],
        mtu in any::<u16>(),
        client_port in any::<u16>(),
    ) {
        let data = payload(len);
        let (pool_port, server_port) = if kind == 2 { (POOL_ID, POOL_ID) } else { (POOL_PORT, 443) };
        let (client_port, server_port6) = if kind == 2 { (client_port, client_port) } else { (client_port, 443) };
        let quote = client_as_v4(&l4_of(kind, pool_port, server_port), &data, ttl);
        let min = 28;
        let cut = if whole { quote.len() } else {
            min + ((quote.len() - min) as f64 * cut_frac) as usize
        };
        let rest = match (t, c) {
            (3, 4) => [0, 0, (mtu >> 8) as u8, mtu as u8],
            (12, 0) => [9, 0, 0, 0],
            _ => [0; 4],
        };
        let err = error4_raw(ROUTER4, 64, t, c, rest, &quote[..cut]);
        let v6 = xlat_4to6(&err, client_port, server_port6, 1500).unwrap();
        prop_assert!(v6.len() <= MAX_ICMPV6_ERROR);
        check_checksums_raw(&v6).unwrap();
        let full = client6(&l4_of(kind, client_port, server_port6), &data, ttl);
        let kept = (cut + 20).min(MAX_ICMPV6_ERROR - 48);
        prop_assert_eq!(v6.len(), 48 + kept);
        assert_quote_matches(&v6[48..], &full[..kept], 40 + checksum_offset(kind));
        if kept == full.len() {
            check_checksums_raw(&v6[48..]).unwrap();
            check_checksums(&v6[48..]).unwrap();
            if kind != 2 {
                // The normal RFC 7915 §4 translation of the quoted packet
                // is the same but for the hop limit (TTL + 1 there).
                let normal = normal_4to6(&quote, client_port, server_port6);
                prop_assert_eq!(&v6[48..55], &normal[..7]);
                prop_assert_eq!(&v6[56..], &normal[8..]);
                prop_assert_eq!(normal[7], ttl.saturating_add(1));
            }
        }
    }

    /// RFC 7915 §5.2-§5.4: ICMPv6 errors quoting random packets: the ICMPv4
    /// error is at most 576 bytes, every checksum right, the quote the
    /// server's packet.
    #[test]
    fn prop_6to4_error_quoting_random_packet(
        kind in l4_strategy(),
        len in 0usize..1500,
        cut_frac in 0.0f64..=1.0,
        whole in any::<bool>(),
        hop in 1u8..=255,
        (t, c) in prop_oneof![Just((1u8, 4u8)), Just((1, 0)), Just((3, 0)), Just((2, 0)), Just((4, 0)), Just((4, 1))],
        mtu in any::<u32>(),
        pool_port in any::<u16>(),
    ) {
        let data = payload(len);
        let server_port = if kind == 2 { pool_port } else { 443 };
        let (client_port, server_port6) = if kind == 2 { (CLIENT_ID, CLIENT_ID) } else { (CLIENT_PORT, 443) };
        let l4 = as_reply(l4_of(kind, server_port6, client_port));
        let quote = server_as_v6(&l4, &data, hop);
        let min = 48;
        let cut = if whole { quote.len() } else {
            min + ((quote.len() - min) as f64 * cut_frac) as usize
        }.min(1280 - 48);
        let rest = match (t, c) {
            (2, 0) => mtu.to_be_bytes(),
            (4, _) => [0, 0, 0, 6],
            _ => [0; 4],
        };
        let err = error6_raw(ROUTER6, 64, t, c, rest, &quote[..cut]);
        let v4 = xlat_6to4(&err, pool_port, server_port, 1500).unwrap();
        prop_assert!(v4.len() <= MAX_ICMPV4_ERROR);
        check_checksums_raw(&v4).unwrap();
        let l4_4 = as_reply(l4_of(kind, server_port, pool_port));
        let full = server4(&l4_4, &data, hop, 0, 20 + if kind == 0 { 36 } else { 8 } + len > 1260);
        let kept = (cut - 20).min(MAX_ICMPV4_ERROR - 28);
        prop_assert_eq!(v4.len(), 28 + kept);
        assert_quote_matches(&v4[28..], &full[..kept], 20 + checksum_offset(kind));
        prop_assert_eq!(ones_sum(&v4[28..48]), 0xffff, "quoted IPv4 header checksum");
        if kept == full.len() {
            check_checksums_raw(&v4[28..]).unwrap();
            check_checksums(&v4[28..]).unwrap();
            if kind != 2 {
                // The normal RFC 7915 §5 translation of the quoted packet
                // (Identification 0) differs only in the TTL (hop + 1
                // there) and so the header checksum.
                let normal = normal_6to4(&quote, pool_port, server_port);
                prop_assert_eq!(&v4[28..36], &normal[..8]);
                prop_assert_eq!(&v4[37..38], &normal[9..10]);
                prop_assert_eq!(&v4[40..], &normal[12..]);
                prop_assert_eq!(normal[8], hop.saturating_add(1));
            }
        }
    }

    /// Arbitrary bytes: the parsers and the error translators never panic.
    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700), v6 in any::<bool>()) {
        let mut bytes = bytes;
        if let Some(b) = bytes.first_mut() {
            *b = (*b & 0x0f) | if v6 { 0x60 } else { 0x40 };
        }
        try_translate(&bytes);
    }

    /// Real errors with random bytes changed (outer checksums fixed up so
    /// that the parsers look further): never a panic, and what translates
    /// stays within the size limits with valid outer checksums.
    #[test]
    fn prop_mutated_errors_never_panic(
        v6 in any::<bool>(),
        kind in l4_strategy(),
        len in 0usize..600,
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        rfc4884 in any::<bool>(),
    ) {
        let data = payload(len);
        let mut err = if v6 {
            let quote = server_as_v6(&as_reply(l4_of(kind, 443, CLIENT_PORT)), &data, 9);
            let attr = if rfc4884 { [quote.len().div_ceil(8).min(255) as u8, 0, 0, 0] } else { [0; 4] };
            error6_raw(ROUTER6, 64, 1, 4, attr, &padded(&quote, quote.len().next_multiple_of(8).max(128), &extension(3)))
        } else {
            let quote = client_as_v4(&l4_of(kind, POOL_PORT, 443), &data, 9);
            let attr = if rfc4884 { [0, quote.len().div_ceil(4).min(255) as u8, 0, 0] } else { [0; 4] };
            error4_raw(ROUTER4, 64, 11, 0, attr, &padded(&quote, quote.len().next_multiple_of(4).max(128), &extension(3)))
        };
        for (at, v) in mutations {
            let i = at.index(err.len());
            err[i] = v;
        }
        fix_outer_checksums(&mut err);
        try_translate(&err);
    }
}

/// The plain RFC 7915 §4 translation of the client's packet as IPv4 (the
/// quote of a 4->6 error) back to the client.
fn normal_4to6(v4: &[u8], client_port: u16, server_port: u16) -> Vec<u8> {
    let parsed = parse_v4(v4).unwrap();
    let mut out = vec![0u8; 65536];
    let n = translate_4to6(
        v4,
        &parsed,
        SocketAddrV6::new(CLIENT6, client_port, 0, 0),
        SocketAddrV6::new(server6(), server_port, 0, 0),
        &mut out,
    )
    .unwrap();
    out.truncate(n);
    out
}

/// The plain RFC 7915 §5 translation of the server's packet as IPv6 (the
/// quote of a 6->4 error) back to the server, with Identification 0.
fn normal_6to4(v6: &[u8], pool_port: u16, server_port: u16) -> Vec<u8> {
    let parsed = parse_v6(v6).unwrap();
    let mut out = vec![0u8; 65536];
    let n = translate_6to4(
        v6,
        &parsed,
        SocketAddrV4::new(SERVER4, server_port),
        SocketAddrV4::new(POOL4, pool_port),
        0,
        &mut out,
    )
    .unwrap();
    out.truncate(n);
    out
}

/// Parses `bytes` and, if it is an ICMP error, translates it into output
/// buffers of several sizes; checks what comes out.
fn try_translate(bytes: &[u8]) {
    if let Ok(p) = parse_v6(bytes) {
        if p.icmp_error.is_some() {
            let addrs = ErrorAddrs {
                outer_src: POOL4,
                inner_src: SocketAddrV4::new(SERVER4, 1),
                inner_dst: SocketAddrV4::new(POOL4, 2),
            };
            for size in [0usize, 28, 100, 576, 2048] {
                let mut out = vec![0u8; size];
                if let Ok(n) = translate_error_6to4(bytes, &p, &addrs, 1, 1500, &mut out) {
                    assert!(n <= MAX_ICMPV4_ERROR);
                    check_checksums_raw(&out[..n]).unwrap();
                }
            }
        }
    }
    if let Ok(p) = parse_v4(bytes) {
        if p.icmp_error.is_some() {
            let addrs = ErrorAddrs {
                outer_src: ROUTER6,
                inner_src: SocketAddrV6::new(CLIENT6, 1, 0, 0),
                inner_dst: SocketAddrV6::new(server6(), 2, 0, 0),
            };
            for size in [0usize, 48, 100, 1280, 2048] {
                let mut out = vec![0u8; size];
                if let Ok(n) = translate_error_4to6(bytes, &p, &addrs, 1500, &mut out) {
                    assert!(n <= MAX_ICMPV6_ERROR);
                    check_checksums_raw(&out[..n]).unwrap();
                }
            }
        }
    }
}

/// RFC 7915 §4.3 with §4.1: an ICMPv4 error quoting a first fragment (MF
/// set, offset 0) quotes it in IPv6 with a Fragment header: offset 0, M set,
/// the IPv4 identification as identification; the Payload Length counts
/// the Fragment header. Built by hand: etherparse 0.19 misplaces the
/// Fragment header's offset and M bits.
#[test]
fn rfc7915_4_3_quoted_first_fragment_gets_fragment_header_4to6() {
    let data = payload(200);
    let mut quote = client_as_v4(&udp(POOL_PORT, SERVER_PORT), &data, 7);
    quote[4..6].copy_from_slice(&0xabcdu16.to_be_bytes());
    quote[6] = 0x20; // MF, offset 0
    fix_v4_header_checksum(&mut quote);
    let err = error4(
        ROUTER4,
        50,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &quote,
    );
    let v6 = xlat_udp_4to6(&err).unwrap();
    let inner = &v6[48..];
    assert_eq!(inner[6], 44, "quoted IPv6 header names a Fragment header");
    let udp_len = 8 + data.len();
    assert_eq!(
        u16::from_be_bytes([inner[4], inner[5]]) as usize,
        8 + udp_len,
        "payload length counts the Fragment header"
    );
    assert_eq!(&inner[40..48], &[17, 0, 0, 1, 0, 0, 0xab, 0xcd]);
    let expected_udp = client6(&udp(CLIENT_PORT, SERVER_PORT), &data, 7);
    assert_eq!(&inner[48..], &expected_udp[40..], "the quoted UDP datagram");
    assert_eq!(v6.len(), 48 + 48 + udp_len);
    check_checksums_raw(&v6).unwrap();
}
