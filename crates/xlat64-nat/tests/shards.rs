//! Several NAT64 shards (one per packet worker) over one pool4: ports are
//! dealt out by [`xlat64_nat::shard`], replies name their owner, a datagram
//! reassembled by the wrong shard is handed over, and each shard keeps to
//! its share of the session limit. Virtual clock throughout.

use etherparse::{
    IpFragOffset, IpNumber, Ipv4Header, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::Instant;
use xlat64_nat::shard::{owner_of_client, owner_of_port, owner_of_v4, owner_of_v6};
use xlat64_nat::{Nat64, Nat64Config, NatDrop, Pool4, Shard, Timeouts, Verdict};
use xlat64_packet::Prefix6052;

const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

fn prefix() -> Prefix6052 {
    Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap()
}

fn shard_nat(index: u16, count: u16, max_sessions: usize) -> Nat64 {
    let pool4 = Pool4::new(&[POOL.into()]).unwrap();
    let mut config = Nat64Config::new(prefix(), pool4, Timeouts::default());
    config.shard = Shard::new(index, count).unwrap();
    config.max_sessions = max_sessions;
    Nat64::with_seed(config, 7 + u64::from(index))
}

fn client(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n)
}

fn v6_udp(c: Ipv6Addr, cport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(c.octets(), prefix().embed(SERVER).octets(), 64)
        .udp(cport, 53)
        .write(&mut v, b"query")
        .unwrap();
    v
}

fn translated_source(out: &[u8]) -> SocketAddrV4 {
    let p = SlicedPacket::from_ip(out).unwrap();
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (&p.net, &p.transport) else {
        panic!("not IPv4 UDP");
    };
    SocketAddrV4::new(ip.header().source_addr(), udp.source_port())
}

#[test]
fn each_shard_hands_out_only_its_own_ports_and_replies_name_it() {
    let count = 3;
    for index in 0..count {
        let mut nat = shard_nat(index, count, usize::MAX);
        let t0 = Instant::now();
        let mut out = vec![0u8; 2000];
        for cport in 40000..40060u16 {
            let pkt = v6_udp(client(1), cport);
            let Verdict::Forward(n) = nat.handle_v6(t0, &pkt, &mut out) else {
                panic!("not forwarded");
            };
            let local = translated_source(&out[..n]);
            assert_eq!(owner_of_port(local.port(), count, 1), index);
            // The client's own port is kept exactly when the shard owns it.
            assert_eq!(
                local.port() == cport,
                owner_of_port(cport, count, 1) == index
            );
            // The reply's owner, as the steering computes it, is this shard.
            let mut reply = Vec::new();
            PacketBuilder::ipv4(SERVER.octets(), local.ip().octets(), 64)
                .udp(53, local.port())
                .write(&mut reply, b"answer")
                .unwrap();
            assert_eq!(owner_of_v4(&reply, count, 1), Some(index));
            assert!(matches!(
                nat.handle_v4(t0, &reply, &mut out),
                Verdict::Forward(_)
            ));
        }
    }
}

#[test]
fn packets_of_a_client_and_errors_about_it_go_to_one_shard() {
    let pkt = v6_udp(client(9), 1000);
    assert_eq!(
        owner_of_v6(&pkt, 128, 4),
        Some(owner_of_client(&client(9).octets(), 128, 4))
    );
}

#[test]
fn a_datagram_reassembled_by_another_shard_is_handed_to_its_owner() {
    let t0 = Instant::now();
    let mut owner = shard_nat(1, 2, usize::MAX);
    let mut other = shard_nat(0, 2, usize::MAX);
    let mut out = vec![0u8; owner.max_output_len()];
    // A binding on shard 1.
    let Verdict::Forward(n) = owner.handle_v6(t0, &v6_udp(client(1), 40002), &mut out) else {
        panic!("not forwarded");
    };
    let local = translated_source(&out[..n]);
    assert_eq!(owner_of_port(local.port(), 2, 1), 1);
    // A 3000-byte answer in two fragments whose identification steers them
    // to shard 0.
    let mut whole = Vec::new();
    let mut ip =
        Ipv4Header::new(0, 64, IpNumber::UDP, SERVER.octets(), local.ip().octets()).unwrap();
    ip.identification = 2;
    ip.dont_fragment = false;
    PacketBuilder::ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(53, local.port())
        .write(&mut whole, &[0x5a; 3000])
        .unwrap();
    let fragment = |start: usize, end: usize, more: bool| {
        let (mut h, rest) = Ipv4Header::from_slice(&whole).unwrap();
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new((start / 8) as u16).unwrap();
        h.total_len = (20 + end - start) as u16;
        h.header_checksum = h.calc_header_checksum();
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(&rest[start..end]);
        p
    };
    let payload = whole.len() - 20;
    let (first, last) = (fragment(0, 1480, true), fragment(1480, payload, false));
    assert_eq!(owner_of_v4(&first, 2, 1), Some(0));
    assert_eq!(owner_of_v4(&last, 2, 1), Some(0));
    assert_eq!(other.handle_v4(t0, &first, &mut out), Verdict::Held);
    let Verdict::Elsewhere { owner: 1, len } = other.handle_v4(t0, &last, &mut out) else {
        panic!("not handed over");
    };
    let datagram = out[..len].to_vec();
    assert_eq!(owner_of_v4(&datagram, 2, 1), Some(1));
    let verdict = owner.handle_v4(t0, &datagram, &mut out);
    let Verdict::Forward(n) = verdict else {
        panic!("the owner did not translate the handed-over datagram: {verdict:?}");
    };
    // Left as IPv6 fragments, all to the client.
    let frags: Vec<_> = xlat64_packet::fragment::packets(&out[..n]).collect();
    assert!(frags.len() >= 3, "{}", frags.len());
    assert!(frags.iter().all(|f| f[24..40] == client(1).octets()));
}

#[test]
fn a_full_table_refuses_new_flows_with_address_unreachable_and_keeps_old_ones() {
    let t0 = Instant::now();
    let mut nat = shard_nat(0, 1, 2);
    let mut out = vec![0u8; 2000];
    for port in [5000, 5001] {
        assert!(matches!(
            nat.handle_v6(t0, &v6_udp(client(1), port), &mut out),
            Verdict::Forward(_)
        ));
    }
    let refused = v6_udp(client(2), 5000);
    let Verdict::Reject(NatDrop::SessionLimit, n) = nat.handle_v6(t0, &refused, &mut out) else {
        panic!("a third session was not refused");
    };
    let error = out[..n].to_vec();
    let err = SlicedPacket::from_ip(&error).unwrap();
    let Some(TransportSlice::Icmpv6(icmp)) = &err.transport else {
        panic!("not ICMPv6");
    };
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Address
        )
    );
    assert_eq!(icmp.payload(), &refused[..]);
    // The existing flows keep working.
    assert!(matches!(
        nat.handle_v6(t0, &v6_udp(client(1), 5001), &mut out),
        Verdict::Forward(_)
    ));
    assert_eq!(nat.session_count(), 2);
}

/// An ICMPv6 error behind a Destination Options header: the steering
/// program only looks right after the fixed header, so it steers such an
/// error by its outer source; the shard that gets it hands it to the
/// session's owner, which translates it.
#[test]
fn an_icmpv6_error_behind_extension_headers_reaches_the_sessions_owner() {
    let count = 2;
    let c = (1..)
        .map(client)
        .find(|c| owner_of_client(&c.octets(), 128, count) == 1)
        .unwrap();
    let mut owner = shard_nat(1, count, usize::MAX);
    let mut other = shard_nat(0, count, usize::MAX);
    let t0 = Instant::now();
    let mut out = vec![0u8; 2000];
    let Verdict::Forward(n) = owner.handle_v6(t0, &v6_udp(c, 5000), &mut out) else {
        panic!("not forwarded");
    };
    assert_eq!(translated_source(&out[..n]).ip(), &POOL);
    // The server's reply as the client would have got it, quoted in a Port
    // Unreachable the client sends back towards the server.
    let server6 = prefix().embed(SERVER);
    let mut quoted = Vec::new();
    PacketBuilder::ipv6(server6.octets(), c.octets(), 64)
        .udp(53, 5000)
        .write(&mut quoted, b"answer")
        .unwrap();
    let mut error = Vec::new();
    PacketBuilder::ipv6(c.octets(), server6.octets(), 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut error, &quoted)
        .unwrap();
    // Insert an empty Destination Options header (PadN) before the ICMPv6
    // header; the ICMPv6 checksum does not cover it.
    error[6] = 60;
    error.splice(40..40, [58, 0, 1, 4, 0, 0, 0, 0]);
    let payload_len = u16::from_be_bytes([error[4], error[5]]) + 8;
    error[4..6].copy_from_slice(&payload_len.to_be_bytes());
    match other.handle_v6(t0, &error, &mut out) {
        Verdict::Elsewhere { owner: 1, len } => assert_eq!(out[..len], error[..]),
        v => panic!("not handed over: {v:?}"),
    }
    let Verdict::Forward(n) = owner.handle_v6(t0, &error, &mut out) else {
        panic!("the owner does not translate it");
    };
    let p = SlicedPacket::from_ip(&out[..n]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4");
    };
    assert_eq!(ip.header().protocol(), IpNumber::ICMP);
    assert_eq!(ip.header().destination_addr(), SERVER);
}

/// A static binding lives in the shard owning its pool4 port; its server's
/// packets, steered by the server's address to any shard, are handed there.
#[test]
fn a_static_bindings_server_is_handed_to_the_shard_of_its_port() {
    let count = 2;
    let port = (8000..).find(|&p| owner_of_port(p, count, 1) == 1).unwrap();
    let server = client(77);
    let statics = vec![xlat64_nat::StaticBinding {
        proto: xlat64_packet::L4Proto::Udp,
        v6: std::net::SocketAddrV6::new(server, 53, 0, 0),
        v4: SocketAddrV4::new(POOL, port),
    }];
    let nat_of = |index| {
        let pool4 = Pool4::new(&[POOL.into()]).unwrap();
        let mut config = Nat64Config::new(prefix(), pool4, Timeouts::default());
        config.shard = Shard::new(index, count).unwrap();
        config.statics = statics.clone();
        Nat64::with_seed(config, 1)
    };
    let (mut other, mut owner) = (nat_of(0), nat_of(1));
    assert_eq!(other.bib_count(), 0);
    assert_eq!(owner.bib_count(), 1);
    let t0 = Instant::now();
    let mut out = vec![0u8; 2000];
    let pkt = v6_udp(server, 53);
    assert!(matches!(
        other.handle_v6(t0, &pkt, &mut out),
        Verdict::Elsewhere { owner: 1, .. }
    ));
    let Verdict::Forward(n) = owner.handle_v6(t0, &pkt, &mut out) else {
        panic!("the owner translates it");
    };
    assert_eq!(translated_source(&out[..n]), SocketAddrV4::new(POOL, port));
}

/// RFC 7422 port blocks over shards: a shard owns whole blocks
/// (`(port >> 9) % count` with blocks of 512), so a client's block is all
/// its shard's, and the replies to any port of it reach that shard.
#[test]
fn rfc7422_port_blocks_are_dealt_whole_to_shards() {
    let count = 3;
    for index in 0..count {
        let pool4 = Pool4::new(&[POOL.into()]).unwrap();
        let mut config = Nat64Config::new(prefix(), pool4, Timeouts::default());
        config.shard = Shard::new(index, count).unwrap();
        config.port_block = 512;
        let mut nat = Nat64::with_seed(config, 3);
        let t0 = Instant::now();
        let mut out = vec![0u8; 2000];
        let mut blocks = std::collections::HashSet::new();
        for cport in 40000..40100u16 {
            let Verdict::Forward(n) = nat.handle_v6(t0, &v6_udp(client(1), cport), &mut out) else {
                panic!("not forwarded");
            };
            let local = translated_source(&out[..n]);
            assert_eq!(owner_of_port(local.port(), count, 9), index);
            blocks.insert(local.port() >> 9);
        }
        // A hundred ports fit in the client's one block.
        assert_eq!(blocks.len(), 1);
        assert_eq!(nat.port_block_count(), 1);
    }
}

/// RFC 7422 §2 over shards: a deterministic client lives on the shard that
/// owns its block, whatever the worker count, and gets ports of that block.
#[test]
fn rfc7422_2_a_deterministic_client_lives_where_its_block_is() {
    let range = u128::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap());
    let d = xlat64_nat::Deterministic::new(range, 113, 120, 1024..=65535, 256, 1).unwrap();
    for count in [1u16, 2, 3] {
        for n in [1u16, 0x102, 0x305, 0x7f0] {
            let c = client(n);
            let base = Shard::new(0, count).unwrap().with_client_prefix(120);
            let probe = Shard {
                deterministic: Some(d),
                ..base
            };
            let owner = probe.client_owner(&c.octets());
            let index = d.index_of(&c.octets()).unwrap();
            assert_eq!(owner, d.owner(index, count));
            let pool4 = Pool4::new(&[POOL.into()]).unwrap();
            let mut config = Nat64Config::new(prefix(), pool4, Timeouts::default());
            config.shard = Shard {
                index: owner,
                ..probe
            };
            config.port_block = 256;
            let mut nat = Nat64::with_seed(config, 5);
            let mut out = vec![0u8; 2000];
            let Verdict::Forward(len) = nat.handle_v6(Instant::now(), &v6_udp(c, 5000), &mut out)
            else {
                panic!("client {c} refused on its shard {owner} of {count}");
            };
            let local = translated_source(&out[..len]);
            let (_, number) = d.block_of(index);
            assert!(d.ports(number).contains(&local.port()), "{c}: {local}");
            assert_eq!(owner_of_port(local.port(), count, 8), owner);
        }
    }
}
