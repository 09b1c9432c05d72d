//! Property tests: random TCP/UDP/ICMP packets translated both ways against
//! etherparse-built expectations, and the parsers fed arbitrary bytes.

mod common;

use common::{build, check_checksums, v4_header, v6_header, L4};
use etherparse::TcpHeader;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xlat64_packet::{parse_v4, parse_v6, translate_4to6, translate_6to4, DropReason, L4Proto};

/// Global unicast IPv6 (2000::/3), never loopback, multicast or unspecified.
fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(|b| Ipv6Addr::from((b & !(0b111u128 << 125)) | (0b001u128 << 125)))
}

/// Unicast IPv4 outside 0/8, 127/8 and 224/3.
fn v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<[u8; 3]>())
        .prop_filter("loopback", |(a, _)| *a != 127)
        .prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

fn l4_strategy() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            0usize..=3
        )
            .prop_map(|(s, d, seq, ack, win, flags, opt_words)| {
                let mut h = TcpHeader::new(s, d, seq, win);
                h.acknowledgment_number = ack;
                h.fin = flags & 1 != 0;
                h.syn = flags & 2 != 0;
                h.rst = flags & 4 != 0;
                h.psh = flags & 8 != 0;
                h.ack = flags & 16 != 0;
                h.urg = flags & 32 != 0;
                h.set_options_raw(&[1u8; 12][..opt_words * 4]).unwrap();
                L4::Tcp(h)
            }),
        (any::<u16>(), any::<u16>()).prop_map(|(src, dst)| L4::Udp { src, dst }),
        (any::<u16>(), any::<u16>()).prop_map(|(id, seq)| L4::Echo {
            request: true,
            id,
            seq
        }),
    ]
}

fn proto_of(l4: &L4) -> L4Proto {
    match l4 {
        L4::Tcp(_) => L4Proto::Tcp,
        L4::Udp { .. } => L4Proto::Udp,
        L4::Echo { .. } => L4Proto::Icmp,
    }
}

fn ports_of(l4: &L4) -> (u16, u16) {
    match l4 {
        L4::Tcp(h) => (h.source_port, h.destination_port),
        L4::Udp { src, dst } => (*src, *dst),
        L4::Echo { id, .. } => (*id, *id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// RFC 7915 §5 then §4: the IPv4 packet equals etherparse's, and the way
    /// back restores the IPv6 packet (hop limit + 2: the kernel's forwarding
    /// takes one on each side, so the translator gives one back; flow label 0). For echo
    /// the IPv4 host answers with a reply carrying the same data.
    #[test]
    fn round_trip_6to4_4to6(
        client in v6_addr(), server6 in v6_addr(),
        pool in v4_addr(), server4 in v4_addr(),
        l4 in l4_strategy(),
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        hop in 1u8..=253, tc: u8, flow in 0u32..(1 << 20),
        new_src_port: u16, ipv4_id: u16,
    ) {
        let v6 = build(v6_header(client, server6, hop, tc, flow), &l4, &data);
        let parsed6 = parse_v6(&v6).unwrap();
        prop_assert_eq!(parsed6.flow.proto, proto_of(&l4));
        let (sport, dport) = ports_of(&l4);
        prop_assert_eq!((parsed6.flow.src_port, parsed6.flow.dst_port), (sport, dport));

        let out_ports = match l4 { L4::Echo { .. } => (new_src_port, new_src_port), _ => (new_src_port, dport) };
        let mut buf4 = vec![0u8; 1600];
        let n4 = translate_6to4(
            &v6, &parsed6,
            SocketAddrV4::new(pool, out_ports.0), SocketAddrV4::new(server4, out_ports.1),
            ipv4_id, &mut buf4,
        ).unwrap();
        let v4 = &buf4[..n4];
        let df = v6.len() - 20 > 1260;
        let expected4 = build(
            v4_header(pool, server4, hop + 1, tc, ipv4_id, df),
            &l4.with_ports(out_ports.0, out_ports.1),
            &data,
        );
        prop_assert_eq!(v4, &expected4[..]);
        prop_assert_eq!(check_checksums(v4), Ok(()));

        // The way back.
        let back4 = match l4 {
            L4::Echo { .. } => build(
                v4_header(server4, pool, hop + 1, tc, ipv4_id, df),
                &l4.with_ports(out_ports.0, out_ports.1).echo(false),
                &data,
            ),
            _ => v4.to_vec(),
        };
        let parsed4 = parse_v4(&back4).unwrap();
        let mut buf6 = vec![0u8; 1600];
        let (src6, dst6) = match l4 {
            L4::Echo { .. } => ((server6, sport), (client, sport)),
            _ => ((client, sport), (server6, dport)),
        };
        let n6 = translate_4to6(
            &back4, &parsed4,
            SocketAddrV6::new(src6.0, src6.1, 0, 0), SocketAddrV6::new(dst6.0, dst6.1, 0, 0),
            &mut buf6,
        ).unwrap();
        let v6_back = &buf6[..n6];
        let expected6 = match l4 {
            L4::Echo { .. } => build(v6_header(server6, client, hop + 2, tc, 0), &l4.clone().echo(false), &data),
            _ => build(v6_header(client, server6, hop + 2, tc, 0), &l4, &data),
        };
        prop_assert_eq!(v6_back, &expected6[..]);
        prop_assert_eq!(check_checksums(v6_back), Ok(()));
    }

    /// The parsers never panic on arbitrary bytes.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_v6(&bytes);
        let _ = parse_v4(&bytes);
        let mut v6 = bytes.clone();
        if let Some(b) = v6.first_mut() { *b = 0x60 | (*b & 0x0f); }
        let _ = parse_v6(&v6);
        let mut v4 = bytes;
        if let Some(b) = v4.first_mut() { *b = 0x40 | (*b & 0x0f); }
        let _ = parse_v4(&v4);
    }

    /// Valid packets with random bytes overwritten: whatever parses translates
    /// without panicking, into any buffer size; with room it succeeds, and
    /// the output's IPv4 header and ICMP checksums are valid, and a TCP/UDP
    /// checksum is valid whenever the input's was (RFC 1624 preserves errors).
    #[test]
    fn mutated_packets_never_panic(
        client in v6_addr(), server6 in v6_addr(),
        a4 in v4_addr(), b4 in v4_addr(),
        l4 in l4_strategy(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        edits in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..4),
        out_len in 0usize..200,
        reply: bool,
    ) {
        let mut v6 = build(v6_header(client, server6, 64, 0, 0), &l4, &data);
        let l4_4 = l4.clone().echo(!reply);
        let mut v4 = build(v4_header(a4, b4, 64, 0, 0, false), &l4_4, &data);
        for &(at, val) in &edits {
            let i6 = usize::from(at) % v6.len();
            v6[i6] = val;
            let i4 = usize::from(at) % v4.len();
            v4[i4] = val;
        }
        let (s4, d4) = (SocketAddrV4::new(a4, 1), SocketAddrV4::new(b4, 2));
        let (s6, d6) = (SocketAddrV6::new(client, 1, 0, 0), SocketAddrV6::new(server6, 2, 0, 0));
        if let Ok(p) = parse_v6(&v6) {
            let mut small = vec![0u8; out_len];
            let _ = translate_6to4(&v6, &p, s4, d4, 7, &mut small);
            let mut big = vec![0u8; 2048];
            let n = translate_6to4(&v6, &p, s4, d4, 7, &mut big).unwrap();
            let valid_in = check_checksums(&v6[..p.total_len]).is_ok();
            if valid_in || p.flow.proto == L4Proto::Icmp {
                prop_assert_eq!(check_checksums(&big[..n]), Ok(()));
            }
        }
        if let Ok(p) = parse_v4(&v4) {
            let mut small = vec![0u8; out_len];
            let _ = translate_4to6(&v4, &p, s6, d6, &mut small);
            let mut big = vec![0u8; 2048];
            let n = translate_4to6(&v4, &p, s6, d6, &mut big).unwrap();
            let zero_udp = p.flow.proto == L4Proto::Udp && v4[p.l4_offset + 6..p.l4_offset + 8] == [0, 0];
            let valid_in = check_checksums(&v4[..p.total_len]).is_ok();
            if valid_in || zero_udp || p.flow.proto == L4Proto::Icmp {
                prop_assert_eq!(check_checksums(&big[..n]), Ok(()));
            }
        }
    }
}

/// Exhaustive-ish: every single-byte truncation of valid packets is either a
/// drop or a successful parse, never a panic, and translation agrees.
#[test]
fn every_truncation_is_handled() {
    let client: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let server: Ipv6Addr = "64:ff9b::c000:221".parse().unwrap();
    let a4 = Ipv4Addr::new(198, 51, 100, 1);
    let b4 = Ipv4Addr::new(192, 0, 2, 33);
    for l4 in [
        common::tcp(1, 2),
        L4::Udp { src: 1, dst: 2 },
        L4::Echo {
            request: true,
            id: 1,
            seq: 1,
        },
    ] {
        let v6 = build(v6_header(client, server, 64, 0, 0), &l4, &[1, 2, 3]);
        for n in 0..v6.len() {
            assert!(parse_v6(&v6[..n]).is_err(), "v6 cut at {n}");
        }
        let v4 = build(
            v4_header(a4, b4, 64, 0, 0, false),
            &l4.clone().echo(false),
            &[1, 2, 3],
        );
        for n in 0..v4.len() {
            assert_eq!(
                parse_v4(&v4[..n]).map(|_| ()),
                Err(DropReason::Truncated),
                "v4 cut at {n}"
            );
        }
    }
}
