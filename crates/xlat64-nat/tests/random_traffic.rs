//! Property test: random outbound/inbound packets and time steps through
//! `Nat64` never panic, every forwarded inbound packet belongs to a session,
//! and the tables stay consistent.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};
use xlat64_nat::{Nat64, Nat64Config, Pool4, Timeouts, Verdict};
use xlat64_packet::{L4Proto, Prefix6052};

const SERVERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(203, 0, 113, 5),
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(8, 8, 8, 8),
];
const POOL: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];

fn prefix() -> Prefix6052 {
    Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Out {
        client: u16,
        cport: u16,
        server: usize,
        sport: u16,
        proto: u8,
        flags: u8,
    },
    In {
        server: usize,
        sport: u16,
        /// Index into the current BIB (modulo), or a guess when the BIB is empty.
        target: usize,
        guess_port: u16,
        proto: u8,
        flags: u8,
    },
    Wait(Duration),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..4u16, 1000..1004u16, 0..3usize, 53..55u16, 0..3u8, 0..6u8).prop_map(
            |(client, cport, server, sport, proto, flags)| Op::Out { client, cport, server, sport, proto, flags }
        ),
        4 => (0..3usize, 53..55u16, any::<usize>(), 1024..1028u16, 0..3u8, 0..6u8).prop_map(
            |(server, sport, target, guess_port, proto, flags)| Op::In { server, sport, target, guess_port, proto, flags }
        ),
        1 => (0..2_000u64).prop_map(|ms| Op::Wait(Duration::from_millis(ms))),
        1 => (0..600u64).prop_map(|s| Op::Wait(Duration::from_secs(s))),
        1 => (0..12_000u64).prop_map(|s| Op::Wait(Duration::from_secs(s))),
    ]
}

fn proto_of(p: u8) -> L4Proto {
    match p {
        0 => L4Proto::Tcp,
        1 => L4Proto::Udp,
        _ => L4Proto::Icmp,
    }
}

fn tcp(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, flags: u8) -> Vec<u8> {
    let b = match flags {
        0 => b.syn(),
        1 => b.syn().ack(1),
        2 => b.ack(1),
        3 => b.fin().ack(1),
        4 => b.rst(),
        _ => b.psh().ack(1),
    };
    let mut v = Vec::new();
    b.write(&mut v, b"x").unwrap();
    v
}

fn v6_packet(
    client: Ipv6Addr,
    cport: u16,
    server: Ipv4Addr,
    sport: u16,
    proto: L4Proto,
    flags: u8,
) -> Vec<u8> {
    let b = PacketBuilder::ipv6(client.octets(), prefix().embed(server).octets(), 64);
    let mut v = Vec::new();
    match proto {
        L4Proto::Tcp => return tcp(b.tcp(cport, sport, 1, 1000), flags),
        L4Proto::Udp => b.udp(cport, sport).write(&mut v, b"u").unwrap(),
        L4Proto::Icmp => b.icmpv6_echo_request(cport, 1).write(&mut v, b"i").unwrap(),
    }
    v
}

fn v4_packet(
    server: Ipv4Addr,
    sport: u16,
    local: SocketAddrV4,
    proto: L4Proto,
    flags: u8,
) -> Vec<u8> {
    let b = PacketBuilder::ipv4(server.octets(), local.ip().octets(), 64);
    let mut v = Vec::new();
    match proto {
        L4Proto::Tcp => return tcp(b.tcp(sport, local.port(), 1, 1000), flags),
        L4Proto::Udp => b.udp(sport, local.port()).write(&mut v, b"u").unwrap(),
        L4Proto::Icmp => b
            .icmpv4_echo_reply(local.port(), 1)
            .write(&mut v, b"i")
            .unwrap(),
    }
    v
}

/// (src, dst, src port, dst port) of a translated IPv6 packet (ICMP: identifier twice).
fn v6_tuple(pkt: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16) {
    let p = SlicedPacket::from_ip(pkt).expect("translated packet parses");
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6")
    };
    let (s, d) = (ip.header().source_addr(), ip.header().destination_addr());
    match p.transport.expect("transport") {
        TransportSlice::Udp(u) => (s, d, u.source_port(), u.destination_port()),
        TransportSlice::Tcp(t) => (s, d, t.source_port(), t.destination_port()),
        TransportSlice::Icmpv6(_) => {
            let l4 = &pkt[40..];
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            (s, d, id, id)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn check_tables(nat: &Nat64) {
    let sessions = nat.sessions();
    let bib = nat.bib();
    assert_eq!(sessions.len(), nat.session_count());
    assert_eq!(bib.len(), nat.bib_count());
    for b in &bib {
        let n = sessions
            .iter()
            .filter(|s| s.proto == b.proto && s.v6_client == b.v6_client)
            .count();
        assert_eq!(n, b.sessions);
        assert!(n > 0, "dynamic binding without session: {b:?}");
    }
    if let Some(earliest) = sessions.iter().map(|s| s.expires).min() {
        assert!(nat.poll_timeout().expect("deadline") <= earliest);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_traffic(ops in proptest::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap(), "192.0.2.2/32".parse().unwrap()])
            .unwrap()
            .with_port_range(1024..=1025)
            .unwrap()
            .with_icmp_id_range(0..=1)
            .unwrap();
        let mut nat = Nat64::with_seed(
            Nat64Config::new(prefix(), pool4, Timeouts::default()),
            seed,
        );
        let mut now = Instant::now();
        let mut out = [0u8; 1500];
        for op in ops {
            match op {
                Op::Out { client, cport, server, sport, proto, flags } => {
                    let c = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, client);
                    let pkt = v6_packet(c, cport, SERVERS[server], sport, proto_of(proto), flags);
                    let v = nat.handle_v6(now, &pkt, &mut out);
                    if let Verdict::Forward(n) = v {
                        let p = SlicedPacket::from_ip(&out[..n]).expect("IPv4 output parses");
                        let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
                        prop_assert!(POOL.contains(&ip.header().source_addr()));
                        prop_assert_eq!(ip.header().destination_addr(), SERVERS[server]);
                    }
                }
                Op::In { server, sport, target, guess_port, proto, flags } => {
                    let bib = nat.bib();
                    let local = if bib.is_empty() {
                        SocketAddrV4::new(POOL[target % 2], guess_port)
                    } else {
                        bib[target % bib.len()].v4_local
                    };
                    let proto = if bib.is_empty() { proto_of(proto) } else { bib[target % bib.len()].proto };
                    let pkt = v4_packet(SERVERS[server], sport, local, proto, flags);
                    let v = nat.handle_v4(now, &pkt, &mut out);
                    if let Verdict::Forward(n) = v {
                        let (src, dst, sp, dp) = v6_tuple(&out[..n]);
                        prop_assert_eq!(src, prefix().embed(SERVERS[server]));
                        let found = nat.sessions().into_iter().any(|s| {
                            s.proto == proto
                                && s.v4_local == local
                                && s.v6_client == SocketAddrV6::new(dst, dp, 0, 0)
                                && *s.v4_server.ip() == SERVERS[server]
                                && (proto == L4Proto::Icmp || s.v4_server.port() == sport)
                                && s.v6_server == SocketAddrV6::new(src, sp, 0, 0)
                        });
                        prop_assert!(found, "inbound packet forwarded without a session");
                    }
                }
                Op::Wait(step) => {
                    now += step;
                    // As the daemon does: only when the deadline has come.
                    if nat.poll_timeout().is_some_and(|t| t <= now) {
                        nat.handle_timeout(now);
                    }
                    for s in nat.sessions() {
                        prop_assert!(s.expires > now, "expired session kept: {s:?}");
                    }
                }
            }
            check_tables(&nat);
        }
    }
}
