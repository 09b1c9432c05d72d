//! Table-level tests under a virtual clock: flows built by hand, no packet bytes.

use super::expiry_wheel::TICK;
use super::*;
use crate::{TcpState, EXPIRY_RESOLUTION};
use xlat64_packet::flow::tcp_flags::{ACK, FIN, RST, SYN};

/// Runs the timers until nothing is due at `now` (each call has a budget).
fn expire_all(t: &mut SessionTable, now: Instant) {
    for _ in 0..100_000 {
        if t.poll_timeout().is_none_or(|d| d > now) {
            return;
        }
        t.handle_timeout(now);
    }
    panic!("expiry never ends");
}

impl SessionTable {
    /// The whole table in one page, sorted as the NAT's snapshot.
    fn sessions(&self, embed: impl Fn(Ipv4Addr) -> Ipv6Addr) -> Vec<SessionEntry> {
        let mut all = Vec::new();
        self.sessions_page(0, usize::MAX, embed, &mut all);
        all.sort_unstable_by_key(|e| (e.proto, e.v6_client, e.v4_server));
        all
    }

    fn bib(&self) -> Vec<BibEntry> {
        let mut all = Vec::new();
        self.bib_page(0, usize::MAX, &mut all);
        all.sort_unstable_by_key(|e| (e.proto, e.v6_client));
        all
    }
}

const MIN: Duration = Duration::from_secs(60);
const EIF: TablePolicy = TablePolicy::DEFAULT;
const ADF: TablePolicy = TablePolicy {
    filtering: Filtering::AddressDependent,
    ..TablePolicy::DEFAULT
};
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const SERVER2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn client(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
}

fn pool(nets: &[&str]) -> Pool4 {
    let nets: Vec<_> = nets.iter().map(|n| n.parse().unwrap()).collect();
    Pool4::new(&nets).unwrap()
}

fn table() -> SessionTable {
    SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        42,
        Shard::ONE,
        usize::MAX,
        EIF,
    )
}

fn flow6(proto: L4Proto, c: u16, sport: u16, dport: u16, flags: u8) -> Flow6 {
    Flow6 {
        proto,
        src: client(c),
        dst: "64:ff9b::1".parse().unwrap(),
        src_port: sport,
        dst_port: dport,
        tcp_flags: flags,
    }
}

fn flow4(proto: L4Proto, server: Ipv4Addr, sport: u16, local: SocketAddrV4, flags: u8) -> Flow4 {
    Flow4 {
        proto,
        src: server,
        dst: *local.ip(),
        src_port: sport,
        dst_port: local.port(),
        tcp_flags: flags,
    }
}

/// Plans and commits an outbound packet; returns the pool4 address used.
fn out(
    t: &mut SessionTable,
    now: Instant,
    f: Flow6,
    server: Ipv4Addr,
) -> Result<SocketAddrV4, NatDrop> {
    let plan = t.plan_outbound(now, &f, server)?;
    t.commit_outbound(now, plan, f.tcp_flags);
    check_invariants(t);
    Ok(plan.v4_local)
}

fn inb(t: &mut SessionTable, now: Instant, f: Flow4) -> Result<SocketAddrV6, NatDrop> {
    let plan = t.plan_inbound(&f)?;
    t.commit_inbound(now, plan, f.tcp_flags);
    check_invariants(t);
    Ok(plan.v6_client())
}

fn embed(v4: Ipv4Addr) -> Ipv6Addr {
    let o = v4.octets();
    Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    )
}

/// BIB session counts match the sessions, no dynamic binding is empty,
/// every entry is found through each of its indexes, the expiry queues hold
/// every session in expiry order, and the next deadline is never later than
/// the earliest expiry.
pub(super) fn check_invariants(t: &SessionTable) {
    let sessions = t.sessions(embed);
    let mut per_binding = std::collections::HashMap::new();
    for s in &sessions {
        *per_binding
            .entry((s.proto, s.v6_client, s.v4_local))
            .or_insert(0) += 1;
    }
    let bib = t.bib();
    for b in &bib {
        let n = per_binding
            .remove(&(b.proto, b.v6_client, b.v4_local))
            .unwrap_or(0);
        assert_eq!(b.sessions, n, "{b:?}");
        assert!(b.is_static || n > 0);
    }
    assert!(per_binding.is_empty(), "sessions without binding");
    let earliest = sessions.iter().map(|s| s.expires).min();
    if let Some(e) = earliest {
        assert!(t.poll_timeout().unwrap() <= e);
    }
    for slot in 0..t.sessions.len() as u32 {
        let s = t.sessions.slab.get(slot);
        assert_eq!(t.find_session_v6(&s.key()), Some(slot));
        let reply = Flow4 {
            proto: s.proto,
            src: s.server,
            dst: s.local,
            src_port: if s.proto == L4Proto::Icmp {
                s.local_port
            } else {
                s.server_port
            },
            dst_port: s.local_port,
            tcp_flags: 0,
        };
        assert_eq!(t.find_session_v4(&reply), Some(slot));
        assert!(t.find_binding_v6(&s.bind_key()).is_some());
    }
    for slot in 0..t.bindings.len() as u32 {
        let b = t.bindings.slab.get(slot);
        assert_eq!(t.find_binding_v6(&b.key()), Some(slot));
        assert_eq!(t.find_binding_v4(b.proto, b.local()), Some(slot));
    }
    // The port bits are the bindings' pool4 ports, no more.
    let mut held: std::collections::HashMap<(usize, usize), u32> = Default::default();
    for slot in 0..t.bindings.len() as u32 {
        let b = t.bindings.slab.get(slot);
        let (idx, p) = (usize::from(b.pool_index), proto_index(b.proto));
        let bits = &t.taken[idx][p];
        let port = b.local_port;
        assert!(bits.word(usize::from(port) / 64) & (1 << (port % 64)) != 0);
        *held.entry((idx, p)).or_default() += 1;
    }
    // So are the ports of removed bindings in their reuse delay.
    for c in &t.cooling {
        *held
            .entry((usize::from(c.pool_index), proto_index(c.proto)))
            .or_default() += 1;
    }
    for (idx, per_proto) in t.taken.iter().enumerate() {
        for (p, bits) in per_proto.iter().enumerate() {
            let set: u32 = (0..1024).map(|w| bits.word(w).count_ones()).sum();
            assert_eq!(set, held.get(&(idx, p)).copied().unwrap_or(0));
            assert_eq!(bits.len(), set as usize);
            let low: u32 = (0..16).map(|w| bits.word(w).count_ones()).sum();
            assert_eq!(bits.low(), low as usize);
        }
    }
    // With port blocks: every dynamic binding's port is in a block its
    // client holds, and every block holds bindings (of its client only).
    if let Some(blocks) = &t.blocks {
        let mut per_block: std::collections::HashMap<(u16, u16), (u128, u32)> = Default::default();
        for slot in 0..t.bindings.len() as u32 {
            let b = t.bindings.slab.get(slot);
            if b.is_static {
                continue;
            }
            let client = shard::client_of(&b.client, t.policy.client_prefix);
            let key = (b.pool_index, blocks.number_of(b.local_port));
            let e = per_block.entry(key).or_insert((client, 0));
            assert_eq!(e.0, client, "a block shared by two clients");
            e.1 += 1;
            assert!(blocks.is_held(key.0, key.1));
            assert!(t.shard.owns(b.local_port));
        }
        assert_eq!(per_block.len(), blocks.len(), "blocks without bindings");
    }
    // The per-client counts are the tables' (static bindings aside), and so
    // are the filtering counts.
    let mut usage: std::collections::HashMap<u128, (u32, u32, [u32; 3])> = Default::default();
    let mut servers: std::collections::HashMap<(L4Proto, SocketAddrV4, Ipv4Addr), u32> =
        Default::default();
    for slot in 0..t.sessions.len() as u32 {
        let s = t.sessions.slab.get(slot);
        *servers.entry((s.proto, s.local(), s.server)).or_default() += 1;
        let binding = t.find_binding_v6(&s.bind_key()).unwrap();
        if !t.bindings.slab.get(binding).is_static {
            let u = usage
                .entry(shard::client_of(&s.client, t.policy.client_prefix))
                .or_default();
            if s.inbound {
                u.1 += 1;
            } else {
                u.0 += 1;
            }
        }
    }
    for slot in 0..t.bindings.len() as u32 {
        let b = t.bindings.slab.get(slot);
        if !b.is_static {
            usage
                .entry(shard::client_of(&b.client, t.policy.client_prefix))
                .or_default()
                .2[proto_index(b.proto)] += 1;
        }
    }
    assert_eq!(
        usage.len(),
        t.clients.len(),
        "clients holding nothing are forgotten"
    );
    for (client, (sessions, inbound, ports)) in usage {
        let u = t
            .clients
            .slab
            .get(t.find_client(client).expect("the client's entry"));
        assert_eq!((u.sessions, u.inbound, u.ports), (sessions, inbound, ports));
    }
    if t.policy.filtering == Filtering::AddressDependent {
        assert_eq!(servers.len(), t.servers.len());
        for ((proto, local, server), n) in servers {
            let slot = t
                .find_server(proto, local, server)
                .expect("the filtering entry");
            assert_eq!(t.servers.slab.get(slot).sessions, n);
        }
    } else {
        assert_eq!(t.servers.len(), 0);
    }
    // Every session waits in the wheel, never later than it is due.
    let queued = t.wheel.check(&t.sessions.slab);
    for slot in 0..t.sessions.len() as u32 {
        let s = t.sessions.slab.get(slot);
        assert!(s.due <= t.due(s));
    }
    assert_eq!(queued, t.sessions.len());
}

#[test]
fn udp_expires_after_five_minutes_idle_and_not_before() {
    let t0 = Instant::now();
    let mut t = table();
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    // Never before the lifetime; at most one tick after it.
    assert_eq!(t.poll_timeout(), Some(t0 + 5 * MIN + TICK));
    t.handle_timeout(t0 + 5 * MIN);
    assert_eq!(t.session_count(), 1);
    t.handle_timeout(t0 + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
    assert_eq!(t.bib_count(), 0);
    assert_eq!(t.poll_timeout(), None);
    assert_eq!((t.sessions_created(), t.sessions_expired()), (1, 1));
}

#[test]
fn refresh_extends_and_reorders_expiry() {
    let t0 = Instant::now();
    let mut t = table();
    let f = flow6(L4Proto::Udp, 1, 5000, 53, 0);
    let local = out(&mut t, t0, f, SERVER).unwrap();
    // A packet every millisecond for a second moves the session a few
    // times (once per tick), and it stays first in its queue.
    for i in 1..=1000u32 {
        out(&mut t, t0 + Duration::from_millis(i.into()), f, SERVER).unwrap();
    }
    let other = flow6(L4Proto::Udp, 2, 6000, 53, 0);
    out(&mut t, t0 + Duration::from_secs(2), other, SERVER).unwrap();
    // An inbound reply refreshes too: the first session now expires last.
    let at = t0 + 2 * MIN;
    inb(&mut t, at, flow4(L4Proto::Udp, SERVER, 53, local, 0)).unwrap();
    // Its old deadline comes first: a wake-up that moves it, nothing more.
    assert_eq!(t.poll_timeout(), Some(t0 + 5 * MIN + TICK));
    t.handle_timeout(t0 + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 2);
    check_invariants(&t);
    assert_eq!(
        t.poll_timeout(),
        Some(t0 + Duration::from_secs(2) + 5 * MIN + TICK)
    );
    t.handle_timeout(t0 + Duration::from_secs(2) + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 1);
    assert_eq!(t.sessions(embed)[0].v6_client.port(), 5000);
    assert_eq!(t.poll_timeout(), Some(at + 5 * MIN + TICK));
    t.handle_timeout(at + 5 * MIN);
    assert_eq!(t.session_count(), 1);
    t.handle_timeout(at + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
}

#[test]
fn icmp_lives_sixty_seconds() {
    let t0 = Instant::now();
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Icmp, 1, 77, 77, 0), SERVER).unwrap();
    // Reply: the identifier is the pool4 one, in both "ports".
    let reply = Flow4 {
        src_port: local.port(),
        ..flow4(L4Proto::Icmp, SERVER, 0, local, 0)
    };
    assert_eq!(
        inb(&mut t, t0, reply).unwrap(),
        SocketAddrV6::new(client(1), 77, 0, 0)
    );
    let s = t.sessions(embed)[0];
    assert_eq!(s.v6_server.port(), 77);
    assert_eq!(s.v4_server.port(), local.port());
    t.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(t.session_count(), 1);
    t.handle_timeout(t0 + Duration::from_secs(60) + TICK);
    assert_eq!(t.session_count(), 0);
}

#[test]
fn rfc6146_3_5_2_2_v6_init_lives_tcp_trans_refreshed_only_by_the_clients_syn() {
    let t0 = Instant::now();
    let mut t = table();
    out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    assert_eq!(t.sessions(embed)[0].tcp_state, Some(TcpState::V6Init));
    // A retransmitted SYN starts TCP_TRANS again; other segments do not.
    out(
        &mut t,
        t0 + MIN,
        flow6(L4Proto::Tcp, 1, 5000, 80, SYN),
        SERVER,
    )
    .unwrap();
    out(
        &mut t,
        t0 + 2 * MIN,
        flow6(L4Proto::Tcp, 1, 5000, 80, ACK),
        SERVER,
    )
    .unwrap();
    t.handle_timeout(t0 + 5 * MIN);
    assert_eq!(t.session_count(), 1);
    t.handle_timeout(t0 + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
    assert_eq!(t.bib_count(), 0);
}

#[test]
fn tcp_established_lives_two_hours_four_minutes_then_rst_four_minutes() {
    let t0 = Instant::now();
    let est = Duration::from_secs(2 * 3600 + 4 * 60);
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    let t1 = t0 + Duration::from_millis(20);
    inb(
        &mut t,
        t1,
        flow4(L4Proto::Tcp, SERVER, 80, local, SYN | ACK),
    )
    .unwrap();
    assert_eq!(t.sessions(embed)[0].tcp_state, Some(TcpState::Established));
    t.handle_timeout(t1 + est);
    assert_eq!(t.session_count(), 1);
    // Traffic at t2 keeps it another 2h4m.
    let t2 = t1 + est;
    out(&mut t, t2, flow6(L4Proto::Tcp, 1, 5000, 80, ACK), SERVER).unwrap();
    t.handle_timeout(t2 + est - MIN);
    assert_eq!(t.session_count(), 1);
    // RST shortens the lifetime to 4 minutes: the timer must come early enough.
    let t3 = t2 + est - MIN + Duration::from_secs(10);
    inb(&mut t, t3, flow4(L4Proto::Tcp, SERVER, 80, local, RST)).unwrap();
    assert_eq!(t.sessions(embed)[0].tcp_state, Some(TcpState::Trans));
    assert!(t.poll_timeout().unwrap() <= t3 + 4 * MIN + EXPIRY_RESOLUTION);
    t.handle_timeout(t3 + 4 * MIN);
    assert_eq!(t.session_count(), 1);
    t.handle_timeout(t3 + 4 * MIN + EXPIRY_RESOLUTION);
    assert_eq!(t.session_count(), 0);
    expire_all(&mut t, t3 + est * 2);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn tcp_fins_from_both_sides_close() {
    let t0 = Instant::now();
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    inb(
        &mut t,
        t0,
        flow4(L4Proto::Tcp, SERVER, 80, local, SYN | ACK),
    )
    .unwrap();
    out(
        &mut t,
        t0,
        flow6(L4Proto::Tcp, 1, 5000, 80, FIN | ACK),
        SERVER,
    )
    .unwrap();
    assert_eq!(t.sessions(embed)[0].tcp_state, Some(TcpState::V6FinRcv));
    assert_eq!(
        t.sessions(embed)[0].expires,
        t0 + TICK + Timeouts::default().tcp_established
    );
    inb(
        &mut t,
        t0,
        flow4(L4Proto::Tcp, SERVER, 80, local, FIN | ACK),
    )
    .unwrap();
    assert_eq!(
        t.sessions(embed)[0].tcp_state,
        Some(TcpState::V4FinV6FinRcv)
    );
    t.handle_timeout(t0 + 4 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
}

#[test]
fn binding_removed_with_its_last_session() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        42,
        Shard::ONE,
        usize::MAX,
        ADF,
    );
    let f = flow6(L4Proto::Udp, 1, 5000, 53, 0);
    let a = out(&mut t, t0, f, SERVER).unwrap();
    let b = out(&mut t, t0 + MIN, f, SERVER2).unwrap();
    assert_eq!(a, b, "endpoint-independent mapping");
    assert_eq!(t.bib()[0].sessions, 2);
    t.handle_timeout(t0 + 5 * MIN + TICK);
    assert_eq!(t.session_count(), 1);
    assert_eq!(t.bib()[0].sessions, 1);
    // The expired server is now filtered; the other still gets in.
    let err = inb(&mut t, t0 + 5 * MIN, flow4(L4Proto::Udp, SERVER, 53, a, 0));
    assert_eq!(err, Err(NatDrop::Filtered));
    t.handle_timeout(t0 + 6 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
    assert_eq!(t.bib_count(), 0);
    let err = inb(&mut t, t0 + 6 * MIN, flow4(L4Proto::Udp, SERVER2, 53, a, 0));
    assert_eq!(err, Err(NatDrop::NoBinding));
}

#[test]
fn mapping_is_endpoint_independent_and_keeps_the_client_port() {
    let t0 = Instant::now();
    let mut t = table();
    let a = out(&mut t, t0, flow6(L4Proto::Udp, 1, 40000, 53, 0), SERVER).unwrap();
    let b = out(&mut t, t0, flow6(L4Proto::Udp, 1, 40000, 123, 0), SERVER2).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.port(), 40000);
    // Another client with the same port gets another port, same parity.
    let c = out(&mut t, t0, flow6(L4Proto::Udp, 2, 40000, 53, 0), SERVER).unwrap();
    assert_ne!(c, a);
    assert_eq!(c.port() % 2, 0);
    assert!(c.port() >= 1024);
    // TCP and UDP bindings are separate: the same port is free for TCP.
    let d = out(&mut t, t0, flow6(L4Proto::Tcp, 2, 40000, 80, SYN), SERVER).unwrap();
    assert_eq!(d.port(), 40000);
}

#[test]
fn one_client_keeps_one_ipv4_address() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        pool(&["192.0.2.0/29"]),
        Timeouts::default(),
        7,
        Shard::ONE,
        usize::MAX,
        EIF,
    );
    for c in 1..12u16 {
        let mut addrs = std::collections::HashSet::new();
        for port in 1000..1020 {
            let proto = if port % 2 == 0 {
                L4Proto::Udp
            } else {
                L4Proto::Tcp
            };
            let flags = if proto == L4Proto::Tcp { SYN } else { 0 };
            addrs.insert(
                *out(&mut t, t0, flow6(proto, c, port, 80, flags), SERVER)
                    .unwrap()
                    .ip(),
            );
        }
        assert_eq!(addrs.len(), 1, "client {c} used {addrs:?}");
    }
    // Clients spread over the pool.
    let used: std::collections::HashSet<_> = t.bib().iter().map(|b| *b.v4_local.ip()).collect();
    assert!(used.len() > 3);
}

#[test]
fn tiny_pool_is_exhausted_then_freed_by_expiry() {
    let t0 = Instant::now();
    let p = pool(&["192.0.2.1/32"])
        .with_port_range(2000..=2001)
        .unwrap();
    let mut t = SessionTable::new(p, Timeouts::default(), 1, Shard::ONE, usize::MAX, EIF);
    let a = out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    let b = out(&mut t, t0, flow6(L4Proto::Udp, 2, 5000, 53, 0), SERVER).unwrap();
    assert_ne!(a, b);
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 3, 5000, 53, 0), SERVER),
        Err(NatDrop::PoolExhausted)
    );
    // An existing binding still opens new sessions.
    out(
        &mut t,
        t0 + MIN,
        flow6(L4Proto::Udp, 1, 5000, 53, 0),
        SERVER2,
    )
    .unwrap();
    t.handle_timeout(t0 + 5 * MIN + TICK);
    let c = out(
        &mut t,
        t0 + 5 * MIN,
        flow6(L4Proto::Udp, 3, 5000, 53, 0),
        SERVER,
    )
    .unwrap();
    assert_eq!(c, b);
}

#[test]
fn tiny_icmp_range_is_exhausted() {
    let t0 = Instant::now();
    let p = pool(&["192.0.2.1/32"]).with_icmp_id_range(7..=7).unwrap();
    let mut t = SessionTable::new(p, Timeouts::default(), 1, Shard::ONE, usize::MAX, EIF);
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Icmp, 1, 1, 1, 0), SERVER)
            .unwrap()
            .port(),
        7
    );
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Icmp, 2, 1, 1, 0), SERVER),
        Err(NatDrop::PoolExhausted)
    );
}

#[test]
fn rfc6146_3_5_1_address_dependent_filtering() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        42,
        Shard::ONE,
        usize::MAX,
        ADF,
    );
    let local = out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    let unbound = SocketAddrV4::new(*local.ip(), local.port() + 1);
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER, 53, unbound, 0)),
        Err(NatDrop::NoBinding)
    );
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER2, 53, local, 0)),
        Err(NatDrop::Filtered)
    );
    // Same server address, another port: address-dependent filtering lets it
    // in and a session is created for it.
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER, 5353, local, 0)),
        Ok(SocketAddrV6::new(client(1), 5000, 0, 0))
    );
    assert_eq!(t.session_count(), 2);
    assert_eq!(t.bib()[0].sessions, 2);
    // The protocol is part of the binding.
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER, 53, local, SYN)),
        Err(NatDrop::TcpInboundSyn)
    );
    // A TCP SYN from another address to a TCP binding: held, not let in.
    let tcp = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 6000, 80, SYN), SERVER).unwrap();
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER2, 80, tcp, SYN)),
        Err(NatDrop::TcpInboundSyn)
    );
}

#[test]
fn rfc6146_3_5_1_endpoint_independent_filtering() {
    let t0 = Instant::now();
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    let unbound = SocketAddrV4::new(*local.ip(), local.port() + 1);
    // Without a binding nothing gets in, whatever the filtering.
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER, 53, unbound, 0)),
        Err(NatDrop::NoBinding)
    );
    // Any server reaches the client through its binding: a new session.
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER2, 4444, local, 0)),
        Ok(SocketAddrV6::new(client(1), 5000, 0, 0))
    );
    assert_eq!(t.session_count(), 2);
    assert_eq!(t.bib()[0].sessions, 2);
}

#[test]
fn rfc6146_3_5_3_icmp_echo_request_to_an_existing_icmp_binding() {
    let t0 = Instant::now();
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Icmp, 1, 77, 77, 0), SERVER).unwrap();
    // An echo request from another host with the binding's identifier.
    let request = Flow4 {
        src_port: local.port(),
        ..flow4(L4Proto::Icmp, SERVER2, 0, local, 0)
    };
    assert_eq!(
        inb(&mut t, t0, request),
        Ok(SocketAddrV6::new(client(1), 77, 0, 0))
    );
    assert_eq!(t.session_count(), 2);
}

#[test]
fn rfc6146_3_5_2_2_tcp_needs_a_session_or_a_syn() {
    let t0 = Instant::now();
    let mut t = table();
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, ACK), SERVER),
        Err(NatDrop::TcpNoSession)
    );
    assert_eq!(
        out(
            &mut t,
            t0,
            flow6(L4Proto::Tcp, 1, 5000, 80, SYN | RST),
            SERVER
        ),
        Err(NatDrop::TcpNoSession)
    );
    assert_eq!(t.bib_count(), 0, "no binding for a dropped segment");
    let local = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    // Not a SYN: no session, whatever the filtering.
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER, 81, local, ACK)),
        Err(NatDrop::TcpNoSession)
    );
    // A SYN without a binding: for the caller to hold (simultaneous open).
    let unbound = SocketAddrV4::new(*local.ip(), local.port() + 2);
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER, 80, unbound, SYN)),
        Err(NatDrop::TcpInboundSyn)
    );
    assert_eq!(t.session_count(), 1);
}

#[test]
fn rfc6146_3_5_2_2_a_syn_through_a_binding_opens_v4_init_for_six_seconds() {
    let t0 = Instant::now();
    let mut t = table();
    let local = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    // Another server's SYN to the client's binding (endpoint-independent).
    inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER2, 8080, local, SYN)).unwrap();
    let v4_init = |t: &SessionTable| {
        t.sessions(embed)
            .into_iter()
            .find(|s| *s.v4_server.ip() == SERVER2)
            .map(|s| s.tcp_state)
    };
    assert_eq!(v4_init(&t), Some(Some(TcpState::V4Init)));
    // The client does not answer: gone after TCP_INCOMING_SYN.
    t.handle_timeout(t0 + Duration::from_secs(6));
    assert_eq!(v4_init(&t), Some(Some(TcpState::V4Init)));
    t.handle_timeout(t0 + Duration::from_secs(6) + EXPIRY_RESOLUTION);
    assert_eq!(v4_init(&t), None);
    // Again, and this time the client's SYN comes: established.
    inb(
        &mut t,
        t0 + MIN,
        flow4(L4Proto::Tcp, SERVER2, 8080, local, SYN),
    )
    .unwrap();
    let client_syn = Flow6 {
        dst_port: 8080,
        ..flow6(L4Proto::Tcp, 1, 5000, 8080, SYN | ACK)
    };
    out(&mut t, t0 + MIN, client_syn, SERVER2).unwrap();
    assert_eq!(v4_init(&t), Some(Some(TcpState::Established)));
}

#[test]
fn rfc6146_3_5_2_2_externally_initiated_tcp_can_be_refused() {
    let t0 = Instant::now();
    let policy = TablePolicy {
        drop_external_tcp: true,
        ..EIF
    };
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        1,
        Shard::ONE,
        usize::MAX,
        policy,
    );
    let local = out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5000, 80, SYN), SERVER).unwrap();
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Tcp, SERVER2, 80, local, SYN)),
        Err(NatDrop::TcpExternallyInitiated)
    );
    // The connection the client opened is unaffected.
    inb(
        &mut t,
        t0,
        flow4(L4Proto::Tcp, SERVER, 80, local, SYN | ACK),
    )
    .unwrap();
}

#[test]
fn a_hundred_thousand_sessions() {
    let t0 = Instant::now();
    let p = pool(&["192.0.2.0/30"]);
    let mut t = SessionTable::new(p, Timeouts::default(), 3, Shard::ONE, usize::MAX, EIF);
    for i in 0..100_000u32 {
        let f = flow6(
            L4Proto::Udp,
            (i % 1000) as u16,
            1024 + (i / 1000) as u16,
            53,
            0,
        );
        let plan = t.plan_outbound(t0, &f, SERVER).unwrap();
        t.commit_outbound(t0 + Duration::from_micros(i.into()), plan, 0);
    }
    assert_eq!(t.session_count(), 100_000);
    assert_eq!(t.bib_count(), 100_000);
    // Refresh half of them: they move to the tail of the queue.
    for i in (0..100_000u32).step_by(2) {
        let f = flow6(
            L4Proto::Udp,
            (i % 1000) as u16,
            1024 + (i / 1000) as u16,
            53,
            0,
        );
        let plan = t.plan_outbound(t0, &f, SERVER).unwrap();
        t.commit_outbound(t0 + MIN, plan, 0);
    }
    check_invariants(&t);
    // One wake-up expires a bounded number; the rest stay due.
    let at = t0 + 5 * MIN + Duration::from_secs(1);
    t.handle_timeout(at);
    let left = t.session_count();
    assert!((100_000 - EXPIRY_BUDGET..100_000).contains(&left), "{left}");
    assert!(t.poll_timeout().is_some_and(|d| d <= at));
    expire_all(&mut t, at);
    assert_eq!(t.session_count(), 50_000);
    check_invariants(&t);
    expire_all(&mut t, t0 + 6 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
    // The tables gave back the room the flood took: one spare chunk of
    // entries, indexes at their initial size.
    assert_eq!(t.poll_timeout(), None);
    assert!(
        t.sessions.slab.capacity() <= 4096,
        "{}",
        t.sessions.slab.capacity()
    );
    assert!(t.bindings.slab.capacity() <= 4096);
    assert_eq!(t.sessions.buckets(), 2 * 1024);
    assert_eq!(t.bindings.buckets(), 2 * 1024);
    assert_eq!(t.bib_count(), 0);
    assert!(t.used.iter().all(|u| *u == [0; 3]));
}

#[test]
fn short_connections_leave_nothing_behind() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        pool(&["192.0.2.0/30"]),
        Timeouts::default(),
        9,
        Shard::ONE,
        usize::MAX,
        EIF,
    );
    let mut now = t0;
    // Many short connections closed by RST: each moves from the transitory
    // queue to the established one and back.
    for i in 0..20_000u32 {
        let f = flow6(
            L4Proto::Tcp,
            (i % 100) as u16,
            1024 + (i / 100) as u16,
            80,
            SYN,
        );
        let plan = t.plan_outbound(t0, &f, SERVER).unwrap();
        t.commit_outbound(now, plan, SYN);
        for flags in [SYN | ACK, RST] {
            let plan = t
                .plan_inbound(&flow4(L4Proto::Tcp, SERVER, 80, plan.v4_local, flags))
                .unwrap();
            t.commit_inbound(now, plan, flags);
        }
        now += Duration::from_millis(50);
        if t.poll_timeout().is_some_and(|d| d <= now) {
            t.handle_timeout(now);
        }
    }
    check_invariants(&t);
    expire_all(&mut t, now + 4 * MIN + TICK);
    assert_eq!(t.session_count(), 0);
    expire_all(&mut t, now + 3 * 60 * MIN);
    assert_eq!(t.poll_timeout(), None);
}

/// A lifetime longer than the clock can hold means "never expires", not a
/// panic on the first packet (a timeout of 2^63 seconds once did that).
#[test]
fn huge_lifetime_never_expires_and_never_panics() {
    let huge = std::time::Duration::from_secs(u64::MAX);
    let timeouts = Timeouts {
        udp: huge,
        icmp: huge,
        tcp_established: huge,
        tcp_transitory: huge,
    };
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        timeouts,
        42,
        Shard::ONE,
        usize::MAX,
        EIF,
    );
    let t0 = Instant::now();
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    t.handle_timeout(t0 + std::time::Duration::from_secs(10 * 365 * 86400));
    assert_eq!(t.session_count(), 1);
}

mod expiry_timing {
    //! Random traffic against a model of when each session must go: never
    //! before its lifetime after its last packet, and gone by
    //! [`EXPIRY_RESOLUTION`] after that when the daemon wakes up as
    //! `poll_timeout` asks. Lifetimes span several turns of the wheel.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TIMEOUTS: Timeouts = Timeouts {
        udp: Duration::from_secs(3),
        icmp: Duration::from_millis(1500),
        tcp_established: Duration::from_secs(20 * 60),
        tcp_transitory: Duration::from_secs(30),
    };

    #[derive(Debug, Clone)]
    enum Op {
        /// A packet from client `c` (UDP, ICMP, or a TCP SYN opening).
        Out(u8, u16),
        /// The server answers session `n` (TCP: SYN|ACK establishes).
        Reply(usize),
        /// The server resets TCP session `n`.
        Rst(usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3, 0u16..6).prop_map(|(p, c)| Op::Out(p, c)),
            2 => any::<usize>().prop_map(Op::Reply),
            1 => any::<usize>().prop_map(Op::Rst),
            4 => prop_oneof![0u64..2_000, 0u64..600_000].prop_map(Op::Wait),
        ]
    }

    /// What the model knows of a session: its last packet and lifetime.
    #[derive(Debug, Clone, Copy)]
    struct Expect {
        last: Instant,
        lifetime: Duration,
        local: SocketAddrV4,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sessions_expire_within_the_resolution_never_early(
            ops in proptest::collection::vec(op(), 1..120),
            block in prop_oneof![Just(0u16), Just(64u16)],
        ) {
            let policy = TablePolicy { port_block: block, ..EIF };
            let shard = Shard::ONE.with_port_block(block);
            let mut t = SessionTable::new(pool(&["192.0.2.1/32"]), TIMEOUTS, 5, shard, usize::MAX, policy);
            let mut now = Instant::now();
            let mut model: HashMap<(L4Proto, u16), Expect> = HashMap::new();
            for op in ops {
                match op {
                    Op::Out(p, c) => {
                        let (proto, flags, lifetime) = match p {
                            0 => (L4Proto::Udp, 0, TIMEOUTS.udp),
                            1 => (L4Proto::Icmp, 0, TIMEOUTS.icmp),
                            _ => (L4Proto::Tcp, SYN, TIMEOUTS.tcp_transitory),
                        };
                        if model.contains_key(&(proto, c)) && proto == L4Proto::Tcp {
                            continue; // a second SYN would not change the model's class
                        }
                        let local = out(&mut t, now, flow6(proto, c, 5000, 80, flags), SERVER).unwrap();
                        model.insert((proto, c), Expect { last: now, lifetime, local });
                    }
                    Op::Reply(n) | Op::Rst(n) => {
                        let keys: Vec<_> = model.keys().copied().collect();
                        if keys.is_empty() {
                            continue;
                        }
                        let (proto, c) = keys[n % keys.len()];
                        let e = model[&(proto, c)];
                        let rst = matches!(op, Op::Rst(_));
                        if rst && proto != L4Proto::Tcp {
                            continue;
                        }
                        let flags = match (proto, rst) {
                            (L4Proto::Tcp, true) => RST,
                            (L4Proto::Tcp, false) => SYN | ACK,
                            _ => 0,
                        };
                        let sport = if proto == L4Proto::Icmp { e.local.port() } else { 80 };
                        let before = t
                            .sessions(embed)
                            .into_iter()
                            .find(|s| s.proto == proto && s.v6_client.ip() == &client(c))
                            .and_then(|s| s.tcp_state);
                        inb(&mut t, now, flow4(proto, SERVER, sport, e.local, flags)).unwrap();
                        let (lifetime, restart) = match before {
                            None => (e.lifetime, true),
                            Some(state) => {
                                let (next, restart) = state.on_segment(Side::V4, flags);
                                let lifetime = match next {
                                    TcpState::V4Init => Duration::from_secs(6),
                                    s if s.is_established() => TIMEOUTS.tcp_established,
                                    _ => TIMEOUTS.tcp_transitory,
                                };
                                (lifetime, restart)
                            }
                        };
                        let last = if restart { now } else { e.last };
                        model.insert((proto, c), Expect { last, lifetime, local: e.local });
                    }
                    Op::Wait(ms) => {
                        let end = now + Duration::from_millis(ms);
                        // Wake up as the daemon does, at every deadline on the way.
                        while let Some(d) = t.poll_timeout().filter(|&d| d <= end) {
                            now = now.max(d);
                            t.handle_timeout(now);
                            // RFC 6146 §3.5.2.2: an established session whose
                            // lifetime ran out is probed and lives on in TRANS.
                            for (k, e) in model.iter_mut() {
                                let state = t
                                    .sessions(embed)
                                    .into_iter()
                                    .find(|s| s.proto == k.0 && s.v6_client.ip() == &client(k.1))
                                    .and_then(|s| s.tcp_state);
                                if e.lifetime == TIMEOUTS.tcp_established
                                    && state == Some(TcpState::Trans)
                                    && now >= e.last + e.lifetime
                                {
                                    *e = Expect { last: now, lifetime: TIMEOUTS.tcp_transitory, local: e.local };
                                }
                            }
                            while t.pop_probe().is_some() {}
                            for (k, e) in &model {
                                let live = t.sessions(embed).iter().any(|s| s.proto == k.0 && s.v6_client.ip() == &client(k.1));
                                prop_assert!(live || now >= e.last + e.lifetime, "{k:?} expired early");
                            }
                            model.retain(|k, _| t.sessions(embed).iter().any(|s| s.proto == k.0 && s.v6_client.ip() == &client(k.1)));
                        }
                        now = end;
                    }
                }
                check_invariants(&t);
                for (k, e) in &model {
                    prop_assert!(now <= e.last + e.lifetime + EXPIRY_RESOLUTION, "{k:?} kept too long");
                }
                prop_assert_eq!(model.len(), t.session_count());
                check_invariants(&t);
            }
        }
    }
}

fn limited(
    max_sessions_per_client: u32,
    max_ports_per_client: u32,
    client_prefix: u8,
) -> SessionTable {
    let policy = TablePolicy {
        max_sessions_per_client,
        max_ports_per_client,
        client_prefix,
        ..EIF
    };
    SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        5,
        Shard::ONE,
        usize::MAX,
        policy,
    )
}

#[test]
fn rfc6888_req_4_b_ports_per_client_per_protocol() {
    let t0 = Instant::now();
    let mut t = limited(u32::MAX, 2, 128);
    for port in [5000, 5001] {
        out(&mut t, t0, flow6(L4Proto::Udp, 1, port, 53, 0), SERVER).unwrap();
    }
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 1, 5002, 53, 0), SERVER),
        Err(NatDrop::ClientPortLimit)
    );
    // An existing binding still opens sessions; other protocols and other
    // clients are unaffected.
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER2).unwrap();
    out(&mut t, t0, flow6(L4Proto::Tcp, 1, 5002, 80, SYN), SERVER).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 2, 5002, 53, 0), SERVER).unwrap();
    // Ports come back when the bindings expire.
    expire_all(&mut t, t0 + 5 * MIN + EXPIRY_RESOLUTION);
    assert_eq!(t.clients.len(), 0);
    out(
        &mut t,
        t0 + 6 * MIN,
        flow6(L4Proto::Udp, 1, 5002, 53, 0),
        SERVER,
    )
    .unwrap();
}

#[test]
fn rfc6888_req_5_sessions_per_client_both_ways() {
    let t0 = Instant::now();
    let mut t = limited(2, u32::MAX, 128);
    let local = out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER2).unwrap();
    let third = Ipv4Addr::new(203, 0, 113, 9);
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), third),
        Err(NatDrop::ClientSessionLimit)
    );
    // From the IPv4 side through the binding: a budget of its own, half
    // the client's, so that outsiders cannot use up the client's.
    inb(&mut t, t0, flow4(L4Proto::Udp, third, 53, local, 0)).unwrap();
    assert_eq!(
        inb(&mut t, t0, flow4(L4Proto::Udp, third, 54, local, 0)),
        Err(NatDrop::ClientSessionLimit)
    );
    // Existing sessions go on; another client is unaffected.
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 2, 5000, 53, 0), third).unwrap();
    expire_all(&mut t, t0 + 5 * MIN + EXPIRY_RESOLUTION);
    assert_eq!(t.clients.len(), 0, "nothing held, nothing kept");
}

#[test]
fn rfc6888_req_4_a_subscriber_prefix_is_one_client() {
    let t0 = Instant::now();
    let mut t = limited(u32::MAX, 1, 64);
    // client(1) and client(2) are in one /64.
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER).unwrap();
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 2, 5000, 53, 0), SERVER),
        Err(NatDrop::ClientPortLimit)
    );
    let other = Flow6 {
        src: "2001:db8:0:1::1".parse().unwrap(),
        ..flow6(L4Proto::Udp, 1, 5000, 53, 0)
    };
    out(&mut t, t0, other, SERVER).unwrap();
}

#[test]
fn a_pool4_entry_with_its_own_port_range_hands_out_only_those() {
    let t0 = Instant::now();
    let p = Pool4::with_entries(&[("192.0.2.1/32".parse().unwrap(), Some(61000..=61003))]).unwrap();
    let mut t = SessionTable::new(p, Timeouts::default(), 1, Shard::ONE, usize::MAX, EIF);
    let mut ports = Vec::new();
    for c in 1..=4 {
        ports.push(
            out(&mut t, t0, flow6(L4Proto::Udp, c, 5000, 53, 0), SERVER)
                .unwrap()
                .port(),
        );
    }
    ports.sort_unstable();
    assert_eq!(ports, [61000, 61001, 61002, 61003]);
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 5, 5000, 53, 0), SERVER),
        Err(NatDrop::PoolExhausted)
    );
    // ICMP identifiers come from the same range.
    let id = out(&mut t, t0, flow6(L4Proto::Icmp, 1, 7, 7, 0), SERVER)
        .unwrap()
        .port();
    assert!((61000..=61003).contains(&id));
}

/// A client that opens many sessions from one port to one server address
/// (a port scan) leaves one filtering entry, not a chain of equal keys:
/// their removal stays cheap (the entry counts them).
#[test]
fn many_sessions_to_one_server_keep_one_filtering_entry() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        3,
        Shard::ONE,
        usize::MAX,
        ADF,
    );
    for port in 1..=2000u16 {
        let f = Flow6 {
            dst_port: port,
            ..flow6(L4Proto::Udp, 1, 5000, port, 0)
        };
        let plan = t.plan_outbound(t0, &f, SERVER).unwrap();
        t.commit_outbound(t0, plan, 0);
    }
    assert_eq!(t.session_count(), 2000);
    assert_eq!(t.servers.len(), 1);
    check_invariants(&t);
    expire_all(&mut t, t0 + 5 * MIN + EXPIRY_RESOLUTION);
    assert_eq!(
        (t.session_count(), t.servers.len(), t.clients.len()),
        (0, 0, 0)
    );
}

/// Sessions through a static binding do not count against the server's
/// per-client session limit.
#[test]
fn a_static_bindings_sessions_are_not_limited_as_a_client() {
    let t0 = Instant::now();
    let mut t = limited(2, u32::MAX, 128);
    let published = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 8080);
    assert!(t.add_static(
        L4Proto::Udp,
        SocketAddrV6::new(client(9), 53, 0, 0),
        published
    ));
    for port in 1000..1005 {
        inb(&mut t, t0, flow4(L4Proto::Udp, SERVER, port, published, 0)).unwrap();
    }
    assert_eq!(t.session_count(), 5);
    assert_eq!(t.clients.len(), 0);
}

/// A table with port blocks of `size` over `nets`, clients by address.
fn block_table(nets: &[&str], size: u16, shard: Shard, max_ports: u32) -> SessionTable {
    let policy = TablePolicy {
        port_block: size,
        max_ports_per_client: max_ports,
        ..EIF
    };
    SessionTable::new(
        pool(nets),
        Timeouts::default(),
        9,
        shard.with_port_block(size),
        usize::MAX,
        policy,
    )
}

#[test]
fn rfc7422_a_clients_bindings_share_its_blocks() {
    let t0 = Instant::now();
    let mut t = block_table(&["192.0.2.0/30"], 64, Shard::ONE, u32::MAX);
    t.events = BindingEvents::new(true);
    let mut locals = Vec::new();
    for port in 0..100u16 {
        for proto in [L4Proto::Udp, L4Proto::Tcp] {
            let flags = if proto == L4Proto::Tcp { SYN } else { 0 };
            locals.push(out(&mut t, t0, flow6(proto, 1, 2000 + port, 53, flags), SERVER).unwrap());
        }
    }
    // 100 ports per protocol: two blocks of 64, on one address (paired).
    let blocks = t.blocks.as_ref().unwrap();
    assert_eq!(blocks.count_of(u128::from(client(1))), 2);
    let addr = *locals[0].ip();
    assert!(locals.iter().all(|l| *l.ip() == addr));
    let numbers: std::collections::HashSet<u16> = locals.iter().map(|l| l.port() / 64).collect();
    assert_eq!(numbers.len(), 2);
    // Another client gets blocks of its own.
    let other = out(&mut t, t0, flow6(L4Proto::Udp, 2, 2000, 53, 0), SERVER).unwrap();
    assert!(!numbers.contains(&(other.port() / 64)) || *other.ip() != addr);
    check_invariants(&t);
    // One event per block, not per binding.
    let mut created = Vec::new();
    while let Some(e) = t.events.pop() {
        created.push(e);
    }
    assert_eq!(created.len(), 3, "{created:?}");
    match created[0].held {
        Held::Block {
            client: c,
            client_prefix,
            v4,
            first,
            last,
        } => {
            assert_eq!((c, client_prefix, v4), (client(1), 128, addr));
            assert_eq!(last - first, 63);
            assert_eq!(first % 64, 0);
        }
        other => panic!("{other:?}"),
    }
    // Everything expires: the blocks go back, one event each.
    expire_all(&mut t, t0 + 3 * 60 * MIN);
    assert_eq!(t.blocks.as_ref().unwrap().len(), 0);
    let mut removed = 0;
    while let Some(e) = t.events.pop() {
        assert_eq!(e.change, BindingChange::Removed);
        removed += 1;
    }
    assert_eq!(removed, 3);
    check_invariants(&t);
}

#[test]
fn rfc7422_blocks_respect_the_port_limit_and_the_pool() {
    let t0 = Instant::now();
    // 128 ports per client: two blocks of 64.
    let mut t = block_table(&["192.0.2.1/32"], 64, Shard::ONE, 128);
    for port in 0..128u16 {
        out(
            &mut t,
            t0,
            flow6(L4Proto::Udp, 1, 2000 + port, 53, 0),
            SERVER,
        )
        .unwrap();
    }
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 1, 3000, 53, 0), SERVER),
        Err(NatDrop::ClientPortLimit)
    );
    // TCP of the same client still has room in its blocks.
    out(&mut t, t0, flow6(L4Proto::Tcp, 1, 3000, 80, SYN), SERVER).unwrap();
    // A tiny pool: one address with four whole blocks in 61001-61300?
    // None: 61001-61300 holds no aligned block of 512.
    let entries = [("192.0.2.1/32".parse().unwrap(), Some(61001..=61300))];
    let mut t = SessionTable::new(
        Pool4::with_entries(&entries).unwrap(),
        Timeouts::default(),
        9,
        Shard::ONE.with_port_block(512),
        usize::MAX,
        TablePolicy {
            port_block: 512,
            ..EIF
        },
    );
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 1, 2000, 53, 0), SERVER),
        Err(NatDrop::PoolExhausted)
    );
}

#[test]
fn rfc7422_blocks_are_the_shards_own() {
    let t0 = Instant::now();
    for index in 0..3u16 {
        let shard = Shard::new(index, 3).unwrap();
        let mut t = block_table(&["192.0.2.1/32"], 256, shard, u32::MAX);
        for c in 1..20u16 {
            let local = out(&mut t, t0, flow6(L4Proto::Udp, c, 2000, 53, 0), SERVER).unwrap();
            assert_eq!(crate::shard::owner_of_port(local.port(), 3, 8), index);
        }
        check_invariants(&t);
    }
}

#[test]
fn rfc7422_2_deterministic_blocks_come_from_the_configuration() {
    let t0 = Instant::now();
    let entries = [("192.0.2.0/31".parse().unwrap(), Some(61001..=65535))];
    let pool4 = Pool4::with_entries(&entries).unwrap();
    let range = u128::from("2001:db8:100::".parse::<Ipv6Addr>().unwrap());
    let d = crate::Deterministic::new(range, 54, 64, 61001..=65535, 8, 2).unwrap();
    let shard = Shard {
        deterministic: Some(d),
        ..Shard::ONE.with_client_prefix(64).with_port_block(8)
    };
    let policy = TablePolicy {
        port_block: 8,
        client_prefix: 64,
        ..EIF
    };
    let mut t = SessionTable::new(pool4, Timeouts::default(), 3, shard, usize::MAX, policy);
    t.events = BindingEvents::new(true);
    let subscriber = |n: u16, host: u16| Ipv6Addr::new(0x2001, 0xdb8, 0x100, n, 0, 0, 0, host);
    let flow = |c: Ipv6Addr, sport: u16| Flow6 {
        src: c,
        ..flow6(L4Proto::Udp, 1, sport, 53, 0)
    };
    // Subscriber 600 (index 600): block 600 % 566 = 34 of address 1.
    let (idx, number) = d.block_of(600);
    assert_eq!(idx, 1);
    for port in 0..8u16 {
        let local = out(
            &mut t,
            t0,
            flow(subscriber(600, port % 3 + 1), 5000 + port),
            SERVER,
        )
        .unwrap();
        assert_eq!(*local.ip(), Ipv4Addr::new(192, 0, 2, 1));
        assert!(d.ports(number).contains(&local.port()), "{local}");
        assert_eq!(
            d.client_at(idx, local.port()),
            Some(u128::from(subscriber(600, 0)))
        );
    }
    // Its block is full: the ninth flow is refused, others are not.
    assert_eq!(
        out(&mut t, t0, flow(subscriber(600, 1), 6000), SERVER),
        Err(NatDrop::ClientPortLimit)
    );
    out(&mut t, t0, flow(subscriber(601, 1), 6000), SERVER).unwrap();
    // Outside the range: no ports.
    let stranger = Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 1);
    assert_eq!(
        out(&mut t, t0, flow(stranger, 6000), SERVER),
        Err(NatDrop::OutsideDeterministicRange)
    );
    // No log: the configuration says who held what.
    assert_eq!(t.events.pop(), None);
    check_invariants(&t);
}

/// RFC 6146 §3.5.1.1: a client port of the well-known range is kept when
/// free, and otherwise matched by another port of that range, same parity.
#[test]
fn rfc6146_3_5_1_1_well_known_client_ports_stay_well_known() {
    let t0 = Instant::now();
    let mut t = table();
    let a = out(&mut t, t0, flow6(L4Proto::Udp, 1, 53, 53, 0), SERVER).unwrap();
    assert_eq!(a.port(), 53);
    let b = out(&mut t, t0, flow6(L4Proto::Udp, 2, 53, 53, 0), SERVER).unwrap();
    assert!(
        b.port() < 1024 && b.port() % 2 == 1 && b.port() != 53,
        "{b}"
    );
    check_invariants(&t);
}

/// RFC 6888 REQ-2 with subscriber prefixes: every address of a client's
/// /64 gets the same pool4 address.
#[test]
fn rfc6888_req_2_paired_pooling_per_subscriber_prefix() {
    let t0 = Instant::now();
    let policy = TablePolicy {
        client_prefix: 64,
        ..EIF
    };
    let mut t = SessionTable::new(
        pool(&["192.0.2.0/28"]),
        Timeouts::default(),
        11,
        Shard::ONE.with_client_prefix(64),
        usize::MAX,
        policy,
    );
    let addrs: std::collections::HashSet<Ipv4Addr> = (1..40u16)
        .map(|host| {
            *out(&mut t, t0, flow6(L4Proto::Udp, host, 5000, 53, 0), SERVER)
                .unwrap()
                .ip()
        })
        .collect();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
}

/// RFC 6888 REQ-4 c: a client creating bindings faster than its rate is
/// refused new ones for the rest of the second; its existing bindings and
/// other clients are unaffected.
#[test]
fn rfc6888_req_4_c_new_bindings_per_client_are_rate_limited() {
    let t0 = Instant::now();
    let policy = TablePolicy {
        max_new_bindings_per_second: 10,
        ..EIF
    };
    let mut t = SessionTable::new(
        pool(&["192.0.2.1/32"]),
        Timeouts::default(),
        4,
        Shard::ONE,
        usize::MAX,
        policy,
    );
    for port in 0..10u16 {
        out(
            &mut t,
            t0,
            flow6(L4Proto::Udp, 1, 5000 + port, 53, 0),
            SERVER,
        )
        .unwrap();
    }
    assert_eq!(
        out(&mut t, t0, flow6(L4Proto::Udp, 1, 6000, 53, 0), SERVER),
        Err(NatDrop::ClientRateLimit)
    );
    // A new session on an existing binding is no new binding.
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 5000, 53, 0), SERVER2).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 2, 6000, 53, 0), SERVER).unwrap();
    let later = t0 + Duration::from_millis(1000);
    out(&mut t, later, flow6(L4Proto::Udp, 1, 6000, 53, 0), SERVER).unwrap();
}

/// RFC 6888 REQ-8: the port of a removed binding is not handed out again
/// before 120 s have passed.
#[test]
fn rfc6888_req_8_a_released_port_waits_before_reuse() {
    let t0 = Instant::now();
    let policy = TablePolicy {
        port_reuse_delay: Duration::from_secs(120),
        ..EIF
    };
    let p = pool(&["192.0.2.1/32"])
        .with_port_range(2000..=2001)
        .unwrap();
    let mut t = SessionTable::new(p, Timeouts::default(), 8, Shard::ONE, usize::MAX, policy);
    out(&mut t, t0, flow6(L4Proto::Udp, 1, 2000, 53, 0), SERVER).unwrap();
    out(&mut t, t0, flow6(L4Proto::Udp, 2, 2001, 53, 0), SERVER).unwrap();
    let gone = t0 + Duration::from_secs(300) + EXPIRY_RESOLUTION;
    expire_all(&mut t, gone);
    assert_eq!(t.bib_count(), 0);
    assert_eq!(t.cooling.len(), 2);
    check_invariants(&t);
    assert_eq!(
        out(&mut t, gone, flow6(L4Proto::Udp, 3, 2000, 53, 0), SERVER),
        Err(NatDrop::PoolExhausted)
    );
    // The timer wakes up for them.
    let free = gone + Duration::from_secs(120) + EXPIRY_RESOLUTION;
    assert!(t.poll_timeout().unwrap() <= free);
    expire_all(&mut t, free);
    assert!(t.cooling.is_empty());
    out(&mut t, free, flow6(L4Proto::Udp, 3, 2000, 53, 0), SERVER).unwrap();
}

/// A static binding outside its address's port range is refused (the
/// range is what the pool hands out, and what a class count measures).
#[test]
fn a_static_binding_outside_the_range_is_refused() {
    let p = pool(&["192.0.2.1/32"])
        .with_port_range(2000..=2001)
        .unwrap();
    let mut t = SessionTable::new(p, Timeouts::default(), 8, Shard::ONE, usize::MAX, EIF);
    let v6 = SocketAddrV6::new(client(5), 80, 0, 0);
    assert!(!t.add_static(L4Proto::Tcp, v6, "192.0.2.1:8080".parse().unwrap()));
    assert!(t.add_static(L4Proto::Tcp, v6, "192.0.2.1:2000".parse().unwrap()));
    check_invariants(&t);
}

/// A pool4 change (a reload, `Pool4::updated`) with port blocks: a client
/// whose block is on a draining address gets its next port in a new block
/// on an added address, never a new port on the draining one; the old
/// binding stays until it expires.
#[test]
fn rfc7422_blocks_skip_a_draining_address_and_use_an_added_one() {
    let t0 = Instant::now();
    let mut t = block_table(&["192.0.2.1/32"], 64, Shard::ONE, u32::MAX);
    let first = out(&mut t, t0, flow6(L4Proto::Udp, 1, 2000, 53, 0), SERVER).unwrap();
    assert_eq!(*first.ip(), Ipv4Addr::new(192, 0, 2, 1));
    let updated = t.pool4.updated(&pool(&["192.0.2.7/32"])).unwrap();
    t.set_pool4(updated);
    check_invariants(&t);
    for port in 2001..2010 {
        let next = out(&mut t, t0, flow6(L4Proto::Udp, 1, port, 53, 0), SERVER).unwrap();
        assert_eq!(*next.ip(), Ipv4Addr::new(192, 0, 2, 7), "port {port}");
    }
    // The draining binding still answers from the IPv4 side.
    inb(&mut t, t0, flow4(L4Proto::Udp, SERVER, 53, first, 0)).unwrap();
    assert_eq!(
        t.blocks.as_ref().unwrap().count_of(u128::from(client(1))),
        2
    );
    check_invariants(&t);
    expire_all(&mut t, t0 + 3 * 60 * MIN);
    assert_eq!(t.blocks.as_ref().unwrap().len(), 0);
    check_invariants(&t);
}
