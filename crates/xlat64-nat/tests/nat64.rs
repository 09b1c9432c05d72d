//! Byte-level tests: packets built with etherparse go through `Nat64` and the
//! real translator; the output is checked with etherparse and an independent
//! checksum computation. Virtual clock throughout.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};
use xlat64_nat::{
    BindingChange, Filtering, Held, Nat64, Nat64Config, NatDrop, Pool4, StaticBinding, TcpState,
    Timeouts, Verdict, EXPIRY_RESOLUTION,
};
use xlat64_packet::{DropReason, L4Proto, Prefix6052};

const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const SERVER2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn nsp() -> Prefix6052 {
    Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap()
}

/// The tests' configuration: one pool4 address, the network-specific prefix.
fn config() -> Nat64Config {
    let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap()]).unwrap();
    Nat64Config::new(nsp(), pool4, Timeouts::default())
}

fn nat_with(prefix: Prefix6052) -> Nat64 {
    Nat64::with_seed(Nat64Config { prefix, ..config() }, 99)
}

fn new_nat() -> Nat64 {
    nat_with(nsp())
}

/// A NAT64 with address-dependent filtering.
fn adf_nat() -> Nat64 {
    let mut config = config();
    config.filtering = Filtering::AddressDependent;
    Nat64::with_seed(config, 99)
}

fn client(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n)
}

#[derive(Clone, Copy)]
enum Tcp {
    Syn,
    SynAck,
    Ack,
    Fin,
    Rst,
}

fn tcp_step(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, f: Tcp) -> Vec<u8> {
    let b = match f {
        Tcp::Syn => b.syn(),
        Tcp::SynAck => b.syn().ack(1),
        Tcp::Ack => b.ack(1),
        Tcp::Fin => b.fin().ack(1),
        Tcp::Rst => b.rst(),
    };
    let mut v = Vec::new();
    b.write(&mut v, b"tcp").unwrap();
    v
}

fn v6_udp(prefix: Prefix6052, c: Ipv6Addr, cport: u16, s: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(c.octets(), prefix.embed(s).octets(), 64)
        .udp(cport, sport)
        .write(&mut v, b"hello v4")
        .unwrap();
    v
}

fn v4_udp(s: Ipv4Addr, sport: u16, local: SocketAddrV4) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(s.octets(), local.ip().octets(), 64)
        .udp(sport, local.port())
        .write(&mut v, b"hello v6")
        .unwrap();
    v
}

fn v6_tcp(c: Ipv6Addr, cport: u16, s: Ipv4Addr, sport: u16, f: Tcp) -> Vec<u8> {
    let b =
        PacketBuilder::ipv6(c.octets(), nsp().embed(s).octets(), 64).tcp(cport, sport, 1000, 8192);
    tcp_step(b, f)
}

fn v4_tcp(s: Ipv4Addr, sport: u16, local: SocketAddrV4, f: Tcp) -> Vec<u8> {
    let b = PacketBuilder::ipv4(s.octets(), local.ip().octets(), 64).tcp(
        sport,
        local.port(),
        5000,
        8192,
    );
    tcp_step(b, f)
}

fn v6_echo(c: Ipv6Addr, id: u16, s: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(c.octets(), nsp().embed(s).octets(), 64)
        .icmpv6_echo_request(id, 1)
        .write(&mut v, b"ping")
        .unwrap();
    v
}

fn v4_echo_reply(s: Ipv4Addr, local: SocketAddrV4) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(s.octets(), local.ip().octets(), 64)
        .icmpv4_echo_reply(local.port(), 1)
        .write(&mut v, b"ping")
        .unwrap();
    v
}

fn ones_sum(data: &[u8], mut acc: u64) -> u64 {
    for c in data.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn folds_to_ffff(mut acc: u64) -> bool {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

/// What a translated packet says, after checking all its checksums.
#[derive(Debug, PartialEq, Eq)]
struct Seen<A> {
    src: A,
    dst: A,
    proto: L4Proto,
    /// Ports, or (identifier, identifier) for ICMP.
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
}

fn seen_v4(pkt: &[u8]) -> Seen<Ipv4Addr> {
    let p = SlicedPacket::from_ip(pkt).expect("valid IPv4");
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header();
    assert!(
        folds_to_ffff(ones_sum(h.slice(), 0)),
        "IPv4 header checksum"
    );
    let l4 = &pkt[h.slice().len()..usize::from(h.total_len())];
    let (src, dst) = (h.source_addr(), h.destination_addr());
    let pseudo = |proto: u8| {
        let mut acc = ones_sum(&src.octets(), 0);
        acc = ones_sum(&dst.octets(), acc);
        acc + u64::from(proto) + l4.len() as u64
    };
    let (proto, sport, dport, payload) = match p.transport.expect("transport") {
        TransportSlice::Udp(u) => {
            assert!(folds_to_ffff(ones_sum(l4, pseudo(17))), "UDP checksum");
            (
                L4Proto::Udp,
                u.source_port(),
                u.destination_port(),
                u.payload().to_vec(),
            )
        }
        TransportSlice::Tcp(t) => {
            assert!(folds_to_ffff(ones_sum(l4, pseudo(6))), "TCP checksum");
            (
                L4Proto::Tcp,
                t.source_port(),
                t.destination_port(),
                t.payload().to_vec(),
            )
        }
        TransportSlice::Icmpv4(i) => {
            assert!(folds_to_ffff(ones_sum(l4, 0)), "ICMPv4 checksum");
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            (L4Proto::Icmp, id, id, i.payload().to_vec())
        }
        other => panic!("unexpected {other:?}"),
    };
    Seen {
        src,
        dst,
        proto,
        sport,
        dport,
        payload,
    }
}

fn seen_v6(pkt: &[u8]) -> Seen<Ipv6Addr> {
    let p = SlicedPacket::from_ip(pkt).expect("valid IPv6");
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6")
    };
    let h = ip.header();
    let l4 = &pkt[40..40 + usize::from(h.payload_length())];
    let (src, dst) = (h.source_addr(), h.destination_addr());
    let pseudo = |proto: u8| {
        let mut acc = ones_sum(&src.octets(), 0);
        acc = ones_sum(&dst.octets(), acc);
        acc + u64::from(proto) + l4.len() as u64
    };
    let (proto, sport, dport, payload) = match p.transport.expect("transport") {
        TransportSlice::Udp(u) => {
            assert!(folds_to_ffff(ones_sum(l4, pseudo(17))), "UDP checksum");
            (
                L4Proto::Udp,
                u.source_port(),
                u.destination_port(),
                u.payload().to_vec(),
            )
        }
        TransportSlice::Tcp(t) => {
            assert!(folds_to_ffff(ones_sum(l4, pseudo(6))), "TCP checksum");
            (
                L4Proto::Tcp,
                t.source_port(),
                t.destination_port(),
                t.payload().to_vec(),
            )
        }
        TransportSlice::Icmpv6(i) => {
            assert!(folds_to_ffff(ones_sum(l4, pseudo(58))), "ICMPv6 checksum");
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            (L4Proto::Icmp, id, id, i.payload().to_vec())
        }
        other => panic!("unexpected {other:?}"),
    };
    Seen {
        src,
        dst,
        proto,
        sport,
        dport,
        payload,
    }
}

fn forward(v: Verdict) -> usize {
    match v {
        Verdict::Forward(n) => n,
        other => panic!("not forwarded: {other:?}"),
    }
}

#[test]
fn udp_round_trip() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER, 53), &mut out));
    let s4 = seen_v4(&out[..n]);
    assert_eq!(
        s4,
        Seen {
            src: POOL,
            dst: SERVER,
            proto: L4Proto::Udp,
            sport: 40000,
            dport: 53,
            payload: b"hello v4".to_vec()
        }
    );
    let local = SocketAddrV4::new(POOL, 40000);
    let n = forward(nat.handle_v4(t0, &v4_udp(SERVER, 53, local), &mut out));
    let s6 = seen_v6(&out[..n]);
    assert_eq!(
        s6,
        Seen {
            src: nsp().embed(SERVER),
            dst: client(1),
            proto: L4Proto::Udp,
            sport: 53,
            dport: 40000,
            payload: b"hello v6".to_vec()
        }
    );
    let sessions = nat.sessions();
    assert_eq!(sessions.len(), 1);
    let s = sessions[0];
    assert_eq!(s.v6_client, SocketAddrV6::new(client(1), 40000, 0, 0));
    assert_eq!(
        s.v6_server,
        SocketAddrV6::new(nsp().embed(SERVER), 53, 0, 0)
    );
    assert_eq!(s.v4_local, local);
    assert_eq!(s.v4_server, SocketAddrV4::new(SERVER, 53));
    assert_eq!(s.tcp_state, None);
    // Five minutes after the last packet, give or take the resolution.
    let lifetime_end = t0 + Duration::from_secs(300);
    assert!(s.expires >= lifetime_end && s.expires <= lifetime_end + EXPIRY_RESOLUTION);
    assert_eq!(nat.bib()[0].sessions, 1);
    assert_eq!(nat.session_count(), 1);
    assert_eq!(nat.bib_count(), 1);

    // Expiry, then the same reply is unsolicited.
    let end = t0 + Duration::from_secs(300) + EXPIRY_RESOLUTION;
    assert!(nat.poll_timeout().is_some_and(|t| t <= end));
    nat.handle_timeout(t0 + Duration::from_secs(300));
    assert_eq!(nat.session_count(), 1, "never before the lifetime");
    nat.handle_timeout(end);
    assert_eq!(nat.session_count(), 0);
    assert_eq!(
        nat.handle_v4(
            t0 + Duration::from_secs(300),
            &v4_udp(SERVER, 53, local),
            &mut out
        ),
        Verdict::Drop(NatDrop::NoBinding)
    );
}

#[test]
fn endpoint_independent_mapping_over_packets() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    let a = seen_v4(&out[..n]);
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER2, 123), &mut out));
    let b = seen_v4(&out[..n]);
    assert_eq!((a.src, a.sport), (b.src, b.sport));
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(2), 5000, SERVER, 53), &mut out));
    let c = seen_v4(&out[..n]);
    assert_ne!(c.sport, a.sport);
}

#[test]
fn tcp_handshake_and_rst() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    assert_eq!(
        nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Ack), &mut out),
        Verdict::Drop(NatDrop::TcpNoSession)
    );
    let n = forward(nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Syn), &mut out));
    let s = seen_v4(&out[..n]);
    assert_eq!(
        (s.proto, s.src, s.dst, s.dport),
        (L4Proto::Tcp, POOL, SERVER, 80)
    );
    let local = SocketAddrV4::new(POOL, s.sport);
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::V6Init));
    // A SYN from the IPv4 side to the binding from another port: through
    // the binding (endpoint-independent filtering), in V4 INIT.
    forward(nat.handle_v4(t0, &v4_tcp(SERVER, 81, local, Tcp::Syn), &mut out));
    assert_eq!(nat.sessions()[1].tcp_state, Some(TcpState::V4Init));
    let n = forward(nat.handle_v4(t0, &v4_tcp(SERVER, 80, local, Tcp::SynAck), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (nsp().embed(SERVER), client(1), 80, 5000)
    );
    assert_eq!(s.payload, b"tcp");
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Established));
    forward(nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Ack), &mut out));
    forward(nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Fin), &mut out));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::V6FinRcv));
    let t1 = t0 + Duration::from_secs(1);
    forward(nat.handle_v4(t1, &v4_tcp(SERVER, 80, local, Tcp::Rst), &mut out));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Trans));
    let end = t1 + Duration::from_secs(240) + EXPIRY_RESOLUTION;
    assert!(nat.poll_timeout().unwrap() <= end);
    nat.handle_timeout(end);
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.bib_count(), 0);
}

#[test]
fn icmp_echo_round_trip() {
    let t0 = Instant::now();
    let mut nat = adf_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_echo(client(1), 0x1234, SERVER), &mut out));
    let s = seen_v4(&out[..n]);
    assert_eq!((s.proto, s.src, s.dst), (L4Proto::Icmp, POOL, SERVER));
    assert_eq!(s.payload, b"ping");
    let local = SocketAddrV4::new(POOL, s.sport);
    assert_eq!(nat.bib()[0].v4_local, local);
    let n = forward(nat.handle_v4(t0, &v4_echo_reply(SERVER, local), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!(
        (s.proto, s.src, s.dst, s.sport),
        (L4Proto::Icmp, nsp().embed(SERVER), client(1), 0x1234)
    );
    // From another server: filtered.
    assert_eq!(
        nat.handle_v4(t0, &v4_echo_reply(SERVER2, local), &mut out),
        Verdict::Drop(NatDrop::Filtered)
    );
    nat.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(nat.session_count(), 1);
    nat.handle_timeout(t0 + Duration::from_secs(60) + EXPIRY_RESOLUTION);
    assert_eq!(nat.session_count(), 0);
}

#[test]
fn unsolicited_and_filtered_ipv4() {
    let t0 = Instant::now();
    let mut nat = adf_nat();
    let mut out = [0u8; 1500];
    let local = SocketAddrV4::new(POOL, 40000);
    assert_eq!(
        nat.handle_v4(t0, &v4_udp(SERVER, 53, local), &mut out),
        Verdict::Drop(NatDrop::NoBinding)
    );
    assert_eq!(
        nat.handle_v4(
            t0,
            &v4_udp(
                SERVER,
                53,
                SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 40000)
            ),
            &mut out
        ),
        Verdict::Drop(NatDrop::NotInPool4)
    );
    forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER, 53), &mut out));
    assert_eq!(
        nat.handle_v4(t0, &v4_udp(SERVER2, 53, local), &mut out),
        Verdict::Drop(NatDrop::Filtered)
    );
    // Known server address, new port: let in, new session.
    forward(nat.handle_v4(t0, &v4_udp(SERVER, 5353, local), &mut out));
    assert_eq!(nat.session_count(), 2);
    assert_eq!(nat.sessions_created(), 2);
    // Endpoint-independent filtering lets any server in through the binding,
    // but still nothing without one.
    let mut nat = new_nat();
    forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER, 53), &mut out));
    forward(nat.handle_v4(t0, &v4_udp(SERVER2, 53, local), &mut out));
    assert_eq!(
        nat.handle_v4(
            t0,
            &v4_udp(SERVER2, 53, SocketAddrV4::new(POOL, 40002)),
            &mut out
        ),
        Verdict::Drop(NatDrop::NoBinding)
    );
}

#[test]
fn prefix_rules() {
    let t0 = Instant::now();
    let mut out = [0u8; 1500];
    let wkp = Prefix6052::WELL_KNOWN;
    let mut nat = nat_with(wkp);
    assert_eq!(
        nat.handle_v6(
            t0,
            &v6_udp(wkp, client(1), 5000, Ipv4Addr::new(10, 0, 0, 1), 53),
            &mut out
        ),
        Verdict::Drop(NatDrop::NonGlobalUnderWellKnown)
    );
    assert_eq!(
        nat.handle_v6(t0, &v6_udp(wkp, client(1), 5000, SERVER, 53), &mut out),
        Verdict::Drop(NatDrop::NonGlobalUnderWellKnown)
    );
    let n = forward(nat.handle_v6(
        t0,
        &v6_udp(wkp, client(1), 5000, Ipv4Addr::new(1, 1, 1, 1), 53),
        &mut out,
    ));
    assert_eq!(seen_v4(&out[..n]).dst, Ipv4Addr::new(1, 1, 1, 1));
    // Not under the configured prefix.
    assert_eq!(
        nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out),
        Verdict::Drop(NatDrop::NotInPrefix)
    );
    // A network-specific prefix carries private IPv4 too; the pool itself is
    // hairpinning, here to a port nobody holds.
    let mut nat = new_nat();
    forward(nat.handle_v6(
        t0,
        &v6_udp(nsp(), client(1), 5000, Ipv4Addr::new(10, 0, 0, 1), 53),
        &mut out,
    ));
    assert_eq!(
        nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, POOL, 53), &mut out),
        Verdict::Drop(NatDrop::NoBinding)
    );
}

#[test]
fn translator_drops_pass_through_and_leave_no_state() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    assert_eq!(
        nat.handle_v6(t0, &[0x60, 0, 0], &mut out),
        Verdict::Drop(NatDrop::Packet(DropReason::Truncated))
    );
    let pkt = v6_udp(nsp(), client(1), 5000, SERVER, 53);
    let mut tiny = [0u8; 10];
    assert_eq!(
        nat.handle_v6(t0, &pkt, &mut tiny),
        Verdict::Drop(NatDrop::Packet(DropReason::OutputTooSmall))
    );
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.bib_count(), 0);
}

#[test]
fn pool_exhaustion_over_packets() {
    let t0 = Instant::now();
    let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap()])
        .unwrap()
        .with_port_range(3000..=3000)
        .unwrap();
    let mut nat = Nat64::with_seed(Nat64Config::new(nsp(), pool4, Timeouts::default()), 5);
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    assert_eq!(seen_v4(&out[..n]).sport, 3000);
    // RFC 6146 §3.5.1.1: ICMPv6 Destination Unreachable, Address
    // Unreachable, back to the client, quoting its packet.
    let offending = v6_udp(nsp(), client(2), 5000, SERVER, 53);
    let Verdict::Reject(NatDrop::PoolExhausted, n) = nat.handle_v6(t0, &offending, &mut out) else {
        panic!("expected an ICMPv6 error");
    };
    let err = etherparse::SlicedPacket::from_ip(&out[..n]).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = &err.net else {
        panic!("not IPv6");
    };
    assert_eq!(ip.header().destination_addr(), client(2));
    let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &err.transport else {
        panic!("not ICMPv6");
    };
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Address
        )
    );
    assert_eq!(icmp.payload(), &offending[..]);
    assert_eq!(nat.counters().icmp_errors_sent, 1);
}

#[test]
fn counter_names_cover_nat_only() {
    let names: std::collections::HashSet<_> =
        NatDrop::NAT_ONLY.iter().map(|d| d.counter_name()).collect();
    assert_eq!(names.len(), NatDrop::NAT_ONLY.len());
    assert!(names.iter().all(|n| n.starts_with("drop_")));
    assert!(names.contains("drop_filtered"));
}

/// RFC 6146 §3.5.2.2: a SYN from the IPv4 side that no binding lets in is
/// held 6 s; without the client's own SYN the sender then gets ICMP Port
/// Unreachable (Type 3, Code 3) quoting it.
#[test]
fn rfc6146_3_5_2_2_unanswered_inbound_syn_gets_port_unreachable_after_6_s() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let local = SocketAddrV4::new(POOL, 40000);
    let syn = v4_tcp(SERVER, 80, local, Tcp::Syn);
    assert_eq!(nat.handle_v4(t0, &syn, &mut out), Verdict::SynHeld);
    assert_eq!(nat.counters().tcp_syns_held, 1);
    assert_eq!(nat.session_count(), 0);
    let due = nat.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(6));
    nat.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(
        nat.poll_transmit(due - Duration::from_millis(1), &mut out),
        None
    );
    nat.handle_timeout(due);
    let n = nat.poll_transmit(due, &mut out).expect("an ICMP error");
    let error = out[..n].to_vec();
    let p = SlicedPacket::from_ip(&error).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4");
    };
    assert_eq!(ip.header().source_addr(), POOL);
    assert_eq!(ip.header().destination_addr(), SERVER);
    let icmp = &error[20..];
    assert_eq!((icmp[0], icmp[1]), (3, 3));
    assert_eq!(&icmp[8..8 + syn.len()], &syn[..], "the SYN quoted whole");
    assert_eq!(nat.poll_transmit(due, &mut out), None);
    assert_eq!(nat.poll_timeout(), None);
    assert_eq!(nat.counters().tcp_syns_unanswered, 1);
}

/// RFC 6146 §3.5.2.2 simultaneous open: the client's SYN for the held
/// connection drops the held SYN silently, and the server's next SYN
/// establishes the session.
#[test]
fn rfc6146_3_5_2_2_simultaneous_open() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let local = SocketAddrV4::new(POOL, 40000);
    let syn = v4_tcp(SERVER, 80, local, Tcp::Syn);
    assert_eq!(nat.handle_v4(t0, &syn, &mut out), Verdict::SynHeld);
    // The client opens from port 40000 (kept: free) to the server's port.
    let n = forward(nat.handle_v6(
        t0 + Duration::from_secs(1),
        &v6_tcp(client(1), 40000, SERVER, 80, Tcp::Syn),
        &mut out,
    ));
    assert_eq!(seen_v4(&out[..n]).sport, 40000);
    assert_eq!(nat.counters().tcp_simultaneous_opens, 1);
    let t6 = t0 + Duration::from_secs(6);
    nat.handle_timeout(t6);
    assert_eq!(
        nat.poll_transmit(t6, &mut out),
        None,
        "no error for an answered SYN"
    );
    forward(nat.handle_v4(t6, &syn, &mut out));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Established));
}

/// The store of held SYNs is bounded: a SYN flood takes no more.
#[test]
fn held_syns_are_bounded() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_simultaneous_opens = 2;
    let mut nat = Nat64::with_seed(config, 1);
    let mut out = [0u8; 1500];
    for (port, expected) in [
        (40000, Verdict::SynHeld),
        (40001, Verdict::SynHeld),
        (40002, Verdict::Drop(NatDrop::TcpInboundSyn)),
    ] {
        let syn = v4_tcp(SERVER, 80, SocketAddrV4::new(POOL, port), Tcp::Syn);
        assert_eq!(nat.handle_v4(t0, &syn, &mut out), expected);
    }
}

/// `drop-externally-initiated-tcp`: SYNs from the IPv4 side are neither
/// let in nor held.
#[test]
fn rfc6146_3_5_2_2_externally_initiated_tcp_dropped_by_policy() {
    let t0 = Instant::now();
    let mut config = config();
    config.drop_external_tcp = true;
    let mut nat = Nat64::with_seed(config, 1);
    let mut out = [0u8; 1500];
    let syn = v4_tcp(SERVER, 80, SocketAddrV4::new(POOL, 40000), Tcp::Syn);
    assert_eq!(
        nat.handle_v4(t0, &syn, &mut out),
        Verdict::Drop(NatDrop::TcpExternallyInitiated)
    );
    assert_eq!(nat.poll_timeout(), None);
}

/// A static binding (port forwarding): IPv4 hosts reach an IPv6 server at
/// a pool4 transport address, whatever the filtering and even when
/// external TCP is refused otherwise; it stays when its sessions expire.
#[test]
fn rfc6146_3_1_static_binding_publishes_an_ipv6_server() {
    let t0 = Instant::now();
    let mut config = config();
    config.filtering = Filtering::AddressDependent;
    config.drop_external_tcp = true;
    let published = SocketAddrV4::new(POOL, 8080);
    config.statics = vec![StaticBinding {
        proto: L4Proto::Tcp,
        v6: SocketAddrV6::new(client(5), 80, 0, 0),
        v4: published,
    }];
    let mut nat = Nat64::with_seed(config, 3);
    let mut out = [0u8; 1500];
    let bib = nat.bib();
    assert_eq!(bib.len(), 1);
    assert!(bib[0].is_static);
    let n = forward(nat.handle_v4(t0, &v4_tcp(SERVER, 40000, published, Tcp::Syn), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!((s.dst, s.dport, s.sport), (client(5), 80, 40000));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::V4Init));
    let n = forward(nat.handle_v6(
        t0,
        &v6_tcp(client(5), 80, SERVER, 40000, Tcp::SynAck),
        &mut out,
    ));
    let s = seen_v4(&out[..n]);
    assert_eq!((s.src, s.sport), (POOL, 8080));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Established));
    assert_eq!(nat.bib()[0].sessions, 1);
    // Other ports of the pool are still closed to the outside.
    assert_eq!(
        nat.handle_v4(
            t0,
            &v4_tcp(SERVER, 40000, SocketAddrV4::new(POOL, 8081), Tcp::Syn),
            &mut out
        ),
        Verdict::Drop(NatDrop::TcpExternallyInitiated)
    );
    // Idle: probed (RFC 6146 §3.5.2.2), then gone after TCP_TRANS.
    nat.handle_timeout(t0 + Duration::from_secs(3 * 3600));
    nat.handle_timeout(t0 + Duration::from_secs(3 * 3600 + 300));
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.bib_count(), 1, "a static binding stays");
    // Dynamic allocation never hands out the published port.
    for port in 30000..30100 {
        let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), port, SERVER, 53), &mut out));
        assert_ne!(seen_v4(&out[..n]).sport, 8080);
    }
}

/// The binding log's events: one when a dynamic binding is created, one
/// when it goes with its last session; none when the log is off.
#[test]
fn rfc6888_req_12_binding_events_for_the_log() {
    let t0 = Instant::now();
    let mut out = [0u8; 1500];
    let mut quiet = new_nat();
    forward(quiet.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER, 53), &mut out));
    assert_eq!(quiet.poll_binding_event(), None);

    let mut config = config();
    config.log_bindings = true;
    let mut nat = Nat64::with_seed(config, 1);
    forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER, 53), &mut out));
    forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 40000, SERVER2, 53), &mut out));
    let created = nat.poll_binding_event().expect("one event per binding");
    assert_eq!(created.change, BindingChange::Created);
    assert_eq!(
        created.held,
        Held::Binding {
            proto: L4Proto::Udp,
            v6_client: SocketAddrV6::new(client(1), 40000, 0, 0),
            v4_local: SocketAddrV4::new(POOL, 40000),
        }
    );
    assert_eq!(created.at, t0);
    assert_eq!(
        nat.poll_binding_event(),
        None,
        "a second session is no new binding"
    );
    let later = t0 + Duration::from_secs(400);
    nat.handle_timeout(later);
    let removed = nat.poll_binding_event().expect("removed with its sessions");
    assert_eq!(removed.change, BindingChange::Removed);
    assert_eq!(removed.held, created.held);
    assert_eq!(removed.at, later);
    assert_eq!(nat.poll_binding_event(), None);
}

/// A pool4 address the gateway host holds itself (its uplink address,
/// shared by port range): the kernel steers every ICMP message to it into
/// the NAT, which keeps what its bindings claim and gives back the rest
/// unchanged; TCP and UDP without a binding are dropped as always; and a
/// client reaches another client through it (RFC 6146 §3.8).
#[test]
fn pool4_address_shared_with_the_host_gives_back_unclaimed_icmp() {
    let t0 = Instant::now();
    let mut config = config();
    config.local_v4 = vec!["192.0.2.1/24".parse().unwrap()];
    let mut nat = Nat64::with_seed(config, 99);
    let mut out = [0u8; 1500];
    // A ping to the host itself: given back as it came.
    let mut ping = Vec::new();
    PacketBuilder::ipv4(SERVER.octets(), POOL.octets(), 64)
        .icmpv4_echo_request(0x4242, 1)
        .write(&mut ping, b"host?")
        .unwrap();
    let verdict = nat.handle_v4(t0, &ping, &mut out);
    assert_eq!(verdict, Verdict::ToHost(ping.len()));
    assert_eq!(&out[..ping.len()], &ping[..]);
    // A reply to the host's own ping: the same.
    let reply = v4_echo_reply(SERVER, SocketAddrV4::new(POOL, 0x4243));
    assert_eq!(
        nat.handle_v4(t0, &reply, &mut out),
        Verdict::ToHost(reply.len())
    );
    // A client's ping: its reply is the NAT's.
    let n = forward(nat.handle_v6(t0, &v6_echo(client(1), 7, SERVER), &mut out));
    let local = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    let n = forward(nat.handle_v4(t0, &v4_echo_reply(SERVER, local), &mut out));
    assert_eq!(seen_v6(&out[..n]).dst, client(1));
    // TCP and UDP to the address without a binding: not the host's (its
    // port range is the NAT's; the kernel routes only that range here).
    assert_eq!(
        nat.handle_v4(
            t0,
            &v4_udp(SERVER, 53, SocketAddrV4::new(POOL, 40000)),
            &mut out
        ),
        Verdict::Drop(NatDrop::NoBinding)
    );
    // Hairpinning through the shared address: client 2 reaches client 1's
    // UDP binding, rather than being refused as the gateway's own address.
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    let b1 = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    let n = forward(nat.handle_v6(
        t0,
        &v6_udp(nsp(), client(2), 6000, POOL, b1.port()),
        &mut out,
    ));
    let s = seen_v6(&out[..n]);
    assert_eq!((s.dst, s.dport), (client(1), 5000));
    assert_eq!(nat.counters().icmp_to_host, 2);
}

fn v4_echo_request(s: Ipv4Addr, local: SocketAddrV4) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(s.octets(), local.ip().octets(), 64)
        .icmpv4_echo_request(local.port(), 3)
        .write(&mut v, b"are you there")
        .unwrap();
    v
}

fn v6_echo_reply(c: Ipv6Addr, id: u16, s: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(c.octets(), nsp().embed(s).octets(), 64)
        .icmpv6_echo_reply(id, 3)
        .write(&mut v, b"are you there")
        .unwrap();
    v
}

/// RFC 6146 §3.5.3: an IPv4 Echo Request to a client's existing ICMP
/// binding reaches the client (filtering as for UDP), and the client's
/// Echo Reply goes back; a reply with no session opens nothing, and a
/// request with no binding stays out.
#[test]
fn rfc6146_3_5_3_echo_request_through_an_icmp_binding() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    assert_eq!(
        nat.handle_v6(t0, &v6_echo_reply(client(1), 7, SERVER), &mut out),
        Verdict::Drop(NatDrop::EchoReplyNoSession)
    );
    assert_eq!(nat.bib_count(), 0);
    let n = forward(nat.handle_v6(t0, &v6_echo(client(1), 7, SERVER), &mut out));
    let local = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    // Another IPv4 host pings the binding: endpoint-independent filtering
    // lets it in, as an ICMPv6 Echo Request with the client's identifier.
    let n = forward(nat.handle_v4(t0, &v4_echo_request(SERVER2, local), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!(
        (s.src, s.dst, s.dport),
        (nsp().embed(SERVER2), client(1), 7)
    );
    assert_eq!(out[40], 128, "ICMPv6 Echo Request");
    // The client answers: an Echo Reply from the pool4 identifier.
    let n = forward(nat.handle_v6(t0, &v6_echo_reply(client(1), 7, SERVER2), &mut out));
    let s = seen_v4(&out[..n]);
    assert_eq!((s.src, s.dst, s.sport), (POOL, SERVER2, local.port()));
    assert_eq!(out[20], 0, "ICMPv4 Echo Reply");
    assert_eq!(nat.session_count(), 2);
    // No binding: out.
    let other = SocketAddrV4::new(POOL, local.port().wrapping_add(1));
    assert_eq!(
        nat.handle_v4(t0, &v4_echo_request(SERVER2, other), &mut out),
        Verdict::Drop(NatDrop::NoBinding)
    );
    // Address-dependent filtering: only a server the client pinged.
    let mut nat = adf_nat();
    let n = forward(nat.handle_v6(t0, &v6_echo(client(1), 7, SERVER), &mut out));
    let local = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    assert_eq!(
        nat.handle_v4(t0, &v4_echo_request(SERVER2, local), &mut out),
        Verdict::Drop(NatDrop::Filtered)
    );
    forward(nat.handle_v4(t0, &v4_echo_request(SERVER, local), &mut out));
}

/// RFC 6146 §3.8 for ICMP: the echo identifier is both ends' "port", so a
/// ping to a pool4 address goes back in through the sender's own binding:
/// the sender gets the request (and its stack answers it), and the answer
/// comes back as the reply, both hairpinned.
#[test]
fn rfc6146_3_8_ping_of_a_pool4_address_is_hairpinned() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_echo(client(2), 9, POOL), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!(
        (s.src, s.dst, s.dport, out[40]),
        (nsp().embed(POOL), client(2), 9, 128)
    );
    let n = forward(nat.handle_v6(t0, &v6_echo_reply(client(2), 9, POOL), &mut out));
    let s = seen_v6(&out[..n]);
    assert_eq!(
        (s.src, s.dst, s.dport, out[40]),
        (nsp().embed(POOL), client(2), 9, 129)
    );
    assert_eq!(nat.counters().hairpinned, 2);
}

/// RFC 6146 §3.5.2.2: when an established session's lifetime runs out, the
/// NAT64 probes the client (a TCP segment, no data, sequence and
/// acknowledgment numbers zero, only ACK set) and moves the session to
/// TRANS; the client's answer brings it back to ESTABLISHED; without one it
/// goes after TCP_TRANS.
#[test]
fn rfc6146_3_5_2_2_an_idle_established_session_is_probed() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Syn), &mut out));
    let local = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    forward(nat.handle_v4(t0, &v4_tcp(SERVER, 80, local, Tcp::SynAck), &mut out));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Established));
    assert_eq!(nat.poll_transmit(t0, &mut out), None);
    let idle = t0 + Duration::from_secs(7440) + EXPIRY_RESOLUTION;
    nat.handle_timeout(idle);
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Trans));
    let n = nat.poll_transmit(idle, &mut out).expect("a probe");
    assert_eq!(nat.poll_transmit(idle, &mut out), None, "one probe");
    let probe = etherparse::PacketHeaders::from_ip_slice(&out[..n]).unwrap();
    let Some(etherparse::NetHeaders::Ipv6(ip, _)) = &probe.net else {
        panic!("not IPv6");
    };
    assert_eq!(ip.source, nsp().embed(SERVER).octets());
    assert_eq!(ip.destination, client(1).octets());
    let Some(etherparse::TransportHeader::Tcp(tcp)) = &probe.transport else {
        panic!("not TCP");
    };
    assert_eq!((tcp.source_port, tcp.destination_port), (80, 5000));
    assert_eq!((tcp.sequence_number, tcp.acknowledgment_number), (0, 0));
    assert!(tcp.ack && !tcp.syn && !tcp.fin && !tcp.rst && !tcp.psh);
    assert!(probe.payload.slice().is_empty());
    assert_eq!(tcp.checksum, tcp.calc_checksum_ipv6(ip, &[]).unwrap());
    assert_eq!(nat.counters().tcp_probes_sent, 1);
    // The client answers: established again, for another full lifetime.
    let t1 = idle + Duration::from_secs(1);
    forward(nat.handle_v6(t1, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Ack), &mut out));
    assert_eq!(nat.sessions()[0].tcp_state, Some(TcpState::Established));
    nat.handle_timeout(t1 + Duration::from_secs(7000));
    assert_eq!(nat.session_count(), 1);
    // Idle again: probed, unanswered, gone after TCP_TRANS.
    let idle = t1 + Duration::from_secs(7440) + EXPIRY_RESOLUTION;
    nat.handle_timeout(idle);
    assert!(nat.poll_transmit(idle, &mut out).is_some());
    nat.handle_timeout(idle + Duration::from_secs(240) + EXPIRY_RESOLUTION);
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.bib_count(), 0);
}

/// RFC 6888 REQ-6: destinations the operator denies are not translated;
/// the client gets ICMPv6 Administratively Prohibited, and no state is
/// created.
#[test]
fn rfc6888_req_6_denied_destinations_are_refused() {
    let t0 = Instant::now();
    let mut config = config();
    config.denied = vec![
        xlat64_nat::DeniedDestination {
            net: "203.0.113.0/24".parse().unwrap(),
            port: Some(25),
        },
        xlat64_nat::DeniedDestination {
            net: "198.51.100.7/32".parse().unwrap(),
            port: None,
        },
    ];
    let mut nat = Nat64::with_seed(config, 1);
    let mut out = [0u8; 1500];
    let Verdict::Reject(NatDrop::DestinationDenied, n) =
        nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 25), &mut out)
    else {
        panic!("port 25 of 203.0.113.0/24 not refused");
    };
    // ICMPv6 Destination Unreachable, code 1 (administratively prohibited).
    assert_eq!((out[6], out[40], out[41]), (58, 1, 1), "{:02x?}", &out[..n]);
    assert_eq!(nat.bib_count(), 0);
    forward(nat.handle_v6(t0, &v6_tcp(client(1), 5000, SERVER, 80, Tcp::Syn), &mut out));
    assert!(matches!(
        nat.handle_v6(t0, &v6_echo(client(1), 3, SERVER2), &mut out),
        Verdict::Reject(NatDrop::DestinationDenied, _)
    ));
    assert_eq!(nat.bib_count(), 1);
}

/// A reload: new timeouts apply to existing sessions at once (a shorter
/// one ends them sooner), and new filtering to the next packet; the
/// sessions themselves stay.
#[test]
fn reconfigure_applies_timeouts_and_filtering_to_a_running_nat() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    let local = SocketAddrV4::new(POOL, seen_v4(&out[..n]).sport);
    forward(nat.handle_v4(t0, &v4_udp(SERVER2, 53, local), &mut out));
    let mut changed = config();
    changed.timeouts.udp = Duration::from_secs(120);
    changed.filtering = Filtering::AddressDependent;
    nat.reconfigure(&changed);
    assert_eq!(nat.session_count(), 2, "sessions stay");
    // Address-dependent now: a third server is kept out.
    let third = Ipv4Addr::new(203, 0, 113, 77);
    assert_eq!(
        nat.handle_v4(t0, &v4_udp(third, 53, local), &mut out),
        Verdict::Drop(NatDrop::Filtered)
    );
    // 120 s, not 300.
    let t1 = t0 + Duration::from_secs(120) + EXPIRY_RESOLUTION;
    assert!(nat.poll_timeout().unwrap() <= t1);
    nat.handle_timeout(t1);
    assert_eq!(nat.session_count(), 0);
}

/// A reload that changes pool4 (RFC 6146 §3.5.1.1, RFC 6888 REQ-2): the
/// retired address drains (its binding keeps working both ways, no new
/// binding takes it), the added one serves new bindings, and a client
/// keeps one address for all its new flows.
#[test]
fn reconfigure_pool4_drains_a_retired_address_and_uses_an_added_one() {
    let t0 = Instant::now();
    let mut nat = new_nat();
    let mut out = [0u8; 1500];
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    let first = seen_v4(&out[..n]);
    assert_eq!(first.src, POOL);
    let added = Ipv4Addr::new(192, 0, 2, 9);
    let mut changed = config();
    let new_pool = Pool4::new(&["192.0.2.9/32".parse().unwrap()]).unwrap();
    changed.pool4 = config().pool4.updated(&new_pool).unwrap();
    nat.reconfigure(&changed);
    // The existing binding still translates, both ways.
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 5000, SERVER, 53), &mut out));
    assert_eq!(seen_v4(&out[..n]).src, POOL, "the draining binding stays");
    let local = SocketAddrV4::new(POOL, first.sport);
    forward(nat.handle_v4(t0, &v4_udp(SERVER, 53, local), &mut out));
    // New bindings, of this client and of another, take the added address.
    for c in [client(1), client(2)] {
        let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), c, 6000, SERVER, 53), &mut out));
        assert_eq!(seen_v4(&out[..n]).src, added, "{c}");
    }
    // The client keeps the added address for its next flows (paired).
    let n = forward(nat.handle_v6(t0, &v6_udp(nsp(), client(1), 6001, SERVER2, 53), &mut out));
    assert_eq!(seen_v4(&out[..n]).src, added);
    // The retired address comes back: new clients may get it again.
    let back = config().pool4.updated(
        &Pool4::new(&[
            "192.0.2.1/32".parse().unwrap(),
            "192.0.2.9/32".parse().unwrap(),
        ])
        .unwrap(),
    );
    changed.pool4 = changed.pool4.updated(&back.unwrap()).unwrap();
    nat.reconfigure(&changed);
    let sources: std::collections::BTreeSet<Ipv4Addr> = (10..60)
        .map(|i| {
            let n =
                forward(nat.handle_v6(t0, &v6_udp(nsp(), client(i), 7000, SERVER, 53), &mut out));
            seen_v4(&out[..n]).src
        })
        .collect();
    assert_eq!(sources, [POOL, added].into(), "both addresses serve again");
}
