//! The BIB and the session table (RFC 6146 §3.1, §3.2) with their expiry
//! timers and address-dependent filtering, independent of packet bytes.
//!
//! Lookups, one hash index each (see `chain_index` for why the indexes are
//! hand-written: they resize a few buckets at a time):
//! - outbound: session by (proto, client IPv6 transport address, IPv4
//!   server transport address), else binding by the client address;
//! - inbound: session by (proto, pool4 transport address, server transport
//!   address), else binding by the pool4 transport address, and for
//!   filtering any session of that binding with the server's address.
//!
//! Every packet call is split in two: `plan_*` decides (and may fail with a
//! [`NatDrop`]) without touching the tables, `commit_*` records the result
//! once the packet has been translated, so that a packet dropped by the
//! translator leaves no state behind. A plan carries the slot it found, so
//! the commit does not look up again.
//!
//! Memory: a session is one 64-byte line plus 4-8 bytes of buckets in each
//! of its three indexes, a binding 40 bytes plus two indexes; entries live
//! in chunked slabs that grow and shrink a chunk at a time. Expiry walks a
//! timing wheel (see `expiry_wheel`), a bounded number of sessions per
//! wake-up.

mod chain_index;
mod entries;
mod expiry_wheel;
mod indexed;
mod port_blocks;
mod slab;

pub(crate) use entries::{BindKey, SessionKey};

use crate::binding_log::{BindingChange, BindingEvent, BindingEvents, Held};
use crate::port_alloc::{pick_port, PortBits, TakenPorts, LOW_CLASS};
use crate::shard::{self, Shard};
use crate::tcp::{is_syn, Side};
use crate::{BibEntry, Filtering, NatDrop, Pool4, SessionEntry, TcpState, Timeouts};
use entries::{
    bind_hash, binding_chain, client_hash, local_hash, server_hash, session_chain, v4_hash,
    v6_hash, Binding, ClientUse, ServerUse, Session, TimerClass,
};
use expiry_wheel::{due_tick, Clock, ExpiryWheel, TICKS_PER_SECOND};
use foldhash::fast::FixedState;
use indexed::Indexed;
use port_blocks::{BlockChange, PortBlocks};
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};
use xlat64_packet::{Flow4, Flow6, L4Proto};

/// Sessions removed per [`SessionTable::handle_timeout`] call at most: after
/// a flood, expiry is spread over several wake-ups between packets (a
/// removal touches a few cache lines: well under a millisecond per call).
const EXPIRY_BUDGET: usize = 256;

/// Entries moved per index and wake-up while an index resizes: each is a
/// cache miss or two at a million entries, so five indexes take about a
/// quarter of a millisecond.
const RESIZE_BUDGET: usize = 256;

/// RFC 6146 §4 TCP_INCOMING_SYN: how long a session opened by a SYN from
/// the IPv4 side waits for the client's SYN.
const TCP_INCOMING_SYN: Duration = Duration::from_secs(6);

/// What an outbound packet maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboundPlan {
    key: SessionKey,
    /// Pool4 transport address (source of the IPv4 packet).
    pub(crate) v4_local: SocketAddrV4,
    found: Found,
}

impl OutboundPlan {
    /// Whether committing it creates a session.
    pub(crate) fn creates_session(&self) -> bool {
        !matches!(self.found, Found::Session(_))
    }
}

/// What a plan found in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The session, in this slot.
    Session(u32),
    /// The binding, in this slot; the session is to be created.
    Binding(u32),
    /// Neither: a binding to this pool address (index) and a session.
    Nothing(u16),
}

/// What an inbound packet maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundPlan {
    key: SessionKey,
    v4_local: SocketAddrV4,
    /// `Session` or `Binding`.
    found: Found,
}

impl InboundPlan {
    /// The client's transport address (destination of the IPv6 packet; for
    /// ICMP the port is the client's echo identifier).
    pub(crate) fn v6_client(&self) -> SocketAddrV6 {
        SocketAddrV6::new(self.key.bind.addr, self.key.bind.port, 0, 0)
    }
}

/// BIB, sessions, filtering state and timers of one NAT64.
#[derive(Debug)]
pub(crate) struct SessionTable {
    pool4: Pool4,
    timeouts: Timeouts,
    /// Which pool4 ports are this table's (the others are other shards').
    shard: Shard,
    /// Sessions this table holds at most; a new flow beyond is refused.
    max_sessions: usize,
    policy: TablePolicy,
    /// What each client holds, by client (`shard::client_of`); only
    /// clients that hold something.
    clients: Indexed<ClientUse, 1>,
    /// Sessions per (binding, server address), with address-dependent
    /// filtering only.
    servers: Indexed<ServerUse, 1>,
    sessions: Indexed<Session, 2>,
    bindings: Indexed<Binding, 2>,
    wheel: ExpiryWheel,
    clock: Clock,
    /// Dynamic bindings per pool address and protocol, to skip full addresses.
    used: Vec<[u32; 3]>,
    /// Ports of this shard in each address's range, per protocol and range
    /// class (0-1023, 1024-65535): what `used` is compared with, and what
    /// tells a search that a class is full.
    capacity: Vec<[[u32; 2]; 3]>,
    /// The pool4 ports this shard hands out.
    owned: PortBits,
    /// Ports held by bindings (and cooling), per pool address and protocol.
    taken: Vec<[TakenPorts; 3]>,
    /// With `port-block`: the blocks clients hold (RFC 7422).
    blocks: Option<PortBlocks>,
    /// Secret for address choice and port randomization.
    seed: u64,
    allocations: u64,
    /// Sessions created and expired, by protocol (TCP, UDP, ICMP).
    created: [u64; 3],
    expired: [u64; 3],
    /// When the last wake-up left an index resizing (more work is due).
    resize_due: Option<Instant>,
    /// Binding events for the operator's log.
    pub(crate) events: BindingEvents,
    /// Probes to send for established sessions whose lifetime ran out
    /// (RFC 6146 §3.5.2.2), at most [`PROBE_QUEUE`].
    probes: VecDeque<Probe>,
    /// Ports of removed bindings, held until the tick they may be handed
    /// out again (RFC 6888 REQ-8), oldest first.
    cooling: VecDeque<Cooling>,
}

/// A port of a removed binding, not handed out again before `until`.
#[derive(Debug, Clone, Copy)]
struct Cooling {
    until: u32,
    pool_index: u16,
    port: u16,
    proto: L4Proto,
}

/// Probes queued between two drains at most; an idle established session
/// that finds the queue full ends without one.
const PROBE_QUEUE: usize = 1024;

/// A TCP probe for an idle established session: to the client, from the
/// server (RFC 6146 §3.5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The client's transport address.
    pub(crate) client: SocketAddrV6,
    /// The IPv4 server's transport address.
    pub(crate) server: SocketAddrV4,
}

/// The ports of `shard` in the range of pool address `idx`, per protocol
/// and range class (0-1023, 1024-65535).
fn capacity_of(pool4: &Pool4, idx: usize, shard: &Shard) -> [[u32; 2]; 3] {
    [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp].map(|p| {
        let (lo, hi) = pool4.port_range_of(idx, p).into_inner();
        let low_end = *LOW_CLASS.end();
        [
            shard.owned_in(lo, hi.min(low_end)),
            shard.owned_in(lo.max(low_end + 1), hi),
        ]
    })
}

fn proto_index(p: L4Proto) -> usize {
    match p {
        L4Proto::Tcp => 0,
        L4Proto::Udp => 1,
        L4Proto::Icmp => 2,
    }
}

/// How a [`SessionTable`] treats traffic from the IPv4 side, and what one
/// client may hold (RFC 6888 REQ-4, REQ-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TablePolicy {
    pub(crate) filtering: Filtering,
    pub(crate) drop_external_tcp: bool,
    /// What one client is: an IPv6 address (128) or a subscriber prefix.
    pub(crate) client_prefix: u8,
    /// Sessions one client holds at most.
    pub(crate) max_sessions_per_client: u32,
    /// Pool4 ports (bindings) one client holds at most, per protocol.
    pub(crate) max_ports_per_client: u32,
    /// Ports per block (RFC 7422), a power of two; 0: ports one by one.
    pub(crate) port_block: u16,
    /// New bindings one client may create per second (RFC 6888 REQ-4 c).
    pub(crate) max_new_bindings_per_second: u32,
    /// How long a removed binding's port stays out of use (RFC 6888
    /// REQ-8: 120 s).
    pub(crate) port_reuse_delay: Duration,
}

impl TablePolicy {
    /// Endpoint-independent filtering, clients by address, no per-client limits.
    #[cfg(test)]
    pub(crate) const DEFAULT: TablePolicy = TablePolicy {
        filtering: Filtering::EndpointIndependent,
        drop_external_tcp: false,
        client_prefix: 128,
        max_sessions_per_client: u32::MAX,
        max_ports_per_client: u32::MAX,
        port_block: 0,
        max_new_bindings_per_second: u32::MAX,
        port_reuse_delay: Duration::ZERO,
    };
}

impl SessionTable {
    pub(crate) fn new(
        pool4: Pool4,
        timeouts: Timeouts,
        seed: u64,
        shard: Shard,
        max_sessions: usize,
        policy: TablePolicy,
    ) -> Self {
        let addrs = pool4.addrs().len();
        let used = vec![[0; 3]; addrs];
        let taken = vec![Default::default(); pool4.addrs().len()];
        let owned = PortBits::of_shard(&shard);
        let capacity = (0..addrs)
            .map(|idx| capacity_of(&pool4, idx, &shard))
            .collect();
        // Keys carry attacker-chosen ports and addresses, so the hash must
        // be keyed: foldhash with the table's secret seed.
        let state = FixedState::with_seed(seed);
        SessionTable {
            pool4,
            timeouts,
            shard,
            // Slots and links are u32.
            max_sessions: max_sessions.min(u32::MAX as usize / 2),
            policy,
            clients: Indexed::new(FixedState::with_seed(seed ^ 0xc11e)),
            servers: Indexed::new(FixedState::with_seed(seed ^ 0x5e7e)),
            sessions: Indexed::new(state.clone()),
            bindings: Indexed::new(state),
            wheel: ExpiryWheel::default(),
            clock: Clock::default(),
            used,
            capacity,
            owned,
            taken,
            blocks: (policy.port_block >= 2).then(|| {
                PortBlocks::new(
                    policy.port_block,
                    addrs,
                    FixedState::with_seed(seed ^ 0xb10c),
                )
            }),
            seed,
            allocations: 0,
            created: [0; 3],
            expired: [0; 3],
            resize_due: None,
            events: BindingEvents::new(false),
            probes: VecDeque::new(),
            cooling: VecDeque::new(),
        }
    }

    /// Adds a static binding (RFC 6146 §3.1: port forwarding to an IPv6
    /// server): never removed, lets any IPv4 host in whatever the
    /// filtering. `false` when either side is taken already.
    pub(crate) fn add_static(
        &mut self,
        proto: L4Proto,
        v6: SocketAddrV6,
        v4: SocketAddrV4,
    ) -> bool {
        let bind = BindKey {
            proto,
            addr: *v6.ip(),
            port: v6.port(),
        };
        let Some(pool_index) = self
            .pool4
            .index_of(*v4.ip())
            .and_then(|i| u16::try_from(i).ok())
        else {
            return false;
        };
        let in_range = self
            .pool4
            .port_range_of(usize::from(pool_index), proto)
            .contains(&v4.port());
        if !in_range
            || self.find_binding_v6(&bind).is_some()
            || self.find_binding_v4(proto, v4).is_some()
        {
            return false;
        }
        self.bindings.insert(Binding {
            client: bind.addr,
            local: *v4.ip(),
            client_port: bind.port,
            local_port: v4.port(),
            pool_index,
            proto,
            is_static: true,
            sessions: 0,
            links: [0; 2],
        });
        self.mark_taken(usize::from(pool_index), proto, v4.port());
        true
    }

    /// The session of IPv6-side key `key`.
    fn find_session_v6(&self, key: &SessionKey) -> Option<u32> {
        let hash = v6_hash(self.sessions.state(), key);
        self.sessions.find(session_chain::V6, hash, |s| {
            s.client == key.bind.addr
                && s.client_port == key.bind.port
                && s.server == key.server
                && s.server_port == key.server_port
                && s.proto == key.bind.proto
        })
    }

    /// The session an inbound `flow` belongs to.
    fn find_session_v4(&self, flow: &Flow4) -> Option<u32> {
        let local = SocketAddrV4::new(flow.dst, flow.dst_port);
        let server_port = SessionKey::server_port(flow.proto, flow.src_port);
        let server = SocketAddrV4::new(flow.src, server_port);
        let hash = v4_hash(self.sessions.state(), flow.proto, local, server);
        self.sessions.find(session_chain::V4, hash, |s| {
            s.local == flow.dst
                && s.local_port == flow.dst_port
                && s.server == flow.src
                && s.server_port == server_port
                && s.proto == flow.proto
        })
    }

    /// The binding of a client transport address.
    fn find_binding_v6(&self, key: &BindKey) -> Option<u32> {
        let hash = bind_hash(self.bindings.state(), key);
        self.bindings.find(binding_chain::V6, hash, |b| {
            b.client == key.addr && b.client_port == key.port && b.proto == key.proto
        })
    }

    /// The binding of a pool4 transport address.
    fn find_binding_v4(&self, proto: L4Proto, local: SocketAddrV4) -> Option<u32> {
        let hash = local_hash(self.bindings.state(), proto, local);
        self.bindings.find(binding_chain::V4, hash, |b| {
            b.local == *local.ip() && b.local_port == local.port() && b.proto == proto
        })
    }

    /// RFC 6146 §3.5.1-§3.5.3, IPv6 -> IPv4: the session for `flow` (whose
    /// destination carries IPv4 `server`), or what to create for it.
    pub(crate) fn plan_outbound(
        &mut self,
        now: Instant,
        flow: &Flow6,
        server: Ipv4Addr,
    ) -> Result<OutboundPlan, NatDrop> {
        let key = outbound_key(flow, server);
        if let Some(slot) = self.find_session_v6(&key) {
            return Ok(OutboundPlan {
                key,
                v4_local: self.sessions.slab.get(slot).local(),
                found: Found::Session(slot),
            });
        }
        if flow.proto == L4Proto::Tcp && !is_syn(flow.tcp_flags) {
            return Err(NatDrop::TcpNoSession);
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(NatDrop::SessionLimit);
        }
        let (sessions, _, ports) = self.client_use(&flow.src);
        let binding = self.find_binding_v6(&key.bind);
        let is_static = binding.is_some_and(|b| self.bindings.slab.get(b).is_static);
        if sessions >= self.policy.max_sessions_per_client && !is_static {
            return Err(NatDrop::ClientSessionLimit);
        }
        let (v4_local, found) = match binding {
            Some(slot) => (self.bindings.slab.get(slot).local(), Found::Binding(slot)),
            None => {
                if ports[proto_index(flow.proto)] >= self.policy.max_ports_per_client {
                    return Err(NatDrop::ClientPortLimit);
                }
                let tick = self.clock.tick(now);
                if self.over_binding_rate(&flow.src, tick) {
                    return Err(NatDrop::ClientRateLimit);
                }
                let (idx, v4) = self.allocate(key.bind)?;
                (v4, Found::Nothing(idx))
            }
        };
        Ok(OutboundPlan {
            key,
            v4_local,
            found,
        })
    }

    /// The pool4 transport address of the existing session that `flow`
    /// (seen from the IPv6 side, to IPv4 `server`) belongs to, without
    /// creating or refreshing anything: how an ICMP error from the IPv6 side
    /// finds its session (RFC 6146 §3.4, §3.5).
    pub(crate) fn find_outbound(&self, flow: &Flow6, server: Ipv4Addr) -> Option<SocketAddrV4> {
        let slot = self.find_session_v6(&outbound_key(flow, server))?;
        Some(self.sessions.slab.get(slot).local())
    }

    /// The client transport address of the existing session that `flow`
    /// (seen from the IPv4 side) belongs to, without creating or refreshing
    /// anything: how an ICMP error from the IPv4 side finds its session.
    pub(crate) fn find_inbound(&self, flow: &Flow4) -> Option<SocketAddrV6> {
        let s = self.sessions.slab.get(self.find_session_v4(flow)?);
        Some(SocketAddrV6::new(s.client, s.client_port, 0, 0))
    }

    /// Records an outbound packet that was translated as `plan` says.
    pub(crate) fn commit_outbound(&mut self, now: Instant, plan: OutboundPlan, tcp_flags: u8) {
        let tick = self.clock.tick(now);
        let bind = plan.key.bind;
        let found = match plan.found {
            Found::Nothing(pool_index) => {
                let slot = self.bindings.insert(Binding {
                    client: bind.addr,
                    local: *plan.v4_local.ip(),
                    client_port: bind.port,
                    local_port: plan.v4_local.port(),
                    pool_index,
                    proto: bind.proto,
                    is_static: false,
                    sessions: 0,
                    links: [0; 2],
                });
                self.used[usize::from(pool_index)][proto_index(bind.proto)] += 1;
                self.allocations = self.allocations.wrapping_add(1);
                self.mark_taken(usize::from(pool_index), bind.proto, plan.v4_local.port());
                let c = self.client_entry(&bind.addr);
                c.ports[proto_index(bind.proto)] += 1;
                c.pool_index = pool_index;
                if tick.wrapping_sub(c.window) >= TICKS_PER_SECOND as u32 {
                    (c.window, c.created) = (tick, 0);
                }
                c.created += 1;
                let held = Held::Binding {
                    proto: bind.proto,
                    v6_client: SocketAddrV6::new(bind.addr, bind.port, 0, 0),
                    v4_local: plan.v4_local,
                };
                let client = shard::client_of(&bind.addr, self.policy.client_prefix);
                match &mut self.blocks {
                    // One event per block, not per binding in it.
                    Some(blocks) => {
                        if let Some(block) = blocks.bind(client, pool_index, plan.v4_local.port()) {
                            self.push_block(now, BindingChange::Created, block);
                        }
                    }
                    None => self.events.push(BindingEvent {
                        at: now,
                        change: BindingChange::Created,
                        held,
                    }),
                }
                Found::Binding(slot)
            }
            found => found,
        };
        match found {
            Found::Session(slot) => self.refresh(tick, slot, Side::V6, tcp_flags),
            Found::Binding(binding) => {
                let tcp = (bind.proto == L4Proto::Tcp).then_some(TcpState::V6Init);
                self.create_session(tick, plan.key, plan.v4_local, binding, tcp, false);
            }
            Found::Nothing(_) => {}
        }
    }

    /// RFC 6146 §3.5, IPv4 -> IPv6: the session of `flow`, or the session
    /// to create for it when its binding exists and filtering lets it in
    /// (endpoint-independent: any server; address-dependent: a server
    /// address the client already has a session with, RFC 4787 §5).
    ///
    /// A TCP SYN without a session opens one (V4 INIT) only through a
    /// binding that filtering lets it in by; without, it is
    /// [`NatDrop::TcpInboundSyn`], which the caller may hold for a
    /// simultaneous open (RFC 6146 §3.5.2.2).
    pub(crate) fn plan_inbound(&self, flow: &Flow4) -> Result<InboundPlan, NatDrop> {
        if let Some(slot) = self.find_session_v4(flow) {
            let s = self.sessions.slab.get(slot);
            return Ok(InboundPlan {
                key: s.key(),
                v4_local: s.local(),
                found: Found::Session(slot),
            });
        }
        let tcp = flow.proto == L4Proto::Tcp;
        let syn = tcp && is_syn(flow.tcp_flags);
        let local = SocketAddrV4::new(flow.dst, flow.dst_port);
        let binding = self.find_binding_v4(flow.proto, local);
        // A static binding is published on purpose: filtering and the
        // refusal of external TCP do not apply to it.
        let is_static = binding.is_some_and(|b| self.bindings.slab.get(b).is_static);
        if syn && self.policy.drop_external_tcp && !is_static {
            return Err(NatDrop::TcpExternallyInitiated);
        }
        let Some(binding) = binding else {
            return Err(if syn {
                NatDrop::TcpInboundSyn
            } else {
                NatDrop::NoBinding
            });
        };
        if tcp && !syn {
            return Err(NatDrop::TcpNoSession);
        }
        if !is_static && !self.lets_in(flow.proto, local, flow.src) {
            return Err(if syn {
                NatDrop::TcpInboundSyn
            } else {
                NatDrop::Filtered
            });
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(NatDrop::SessionLimit);
        }
        let b = self.bindings.slab.get(binding);
        // Sessions opened from outside have a budget of their own, half the
        // client's: with endpoint-independent filtering anyone may open
        // them, and must not use up what the client needs for its own.
        let inbound_cap = self.policy.max_sessions_per_client.div_ceil(2);
        if !b.is_static && self.client_use(&b.client).1 >= inbound_cap {
            return Err(NatDrop::ClientSessionLimit);
        }
        Ok(InboundPlan {
            key: SessionKey {
                bind: b.key(),
                server: flow.src,
                server_port: SessionKey::server_port(flow.proto, flow.src_port),
            },
            v4_local: local,
            found: Found::Binding(binding),
        })
    }

    /// Whether filtering lets a packet from `server` in through the binding
    /// of pool4 transport address `local` (RFC 6146 §3.5.1, §3.5.2.2,
    /// §3.5.3).
    fn lets_in(&self, proto: L4Proto, local: SocketAddrV4, server: Ipv4Addr) -> bool {
        match self.policy.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => self.find_server(proto, local, server).is_some(),
        }
    }

    /// Records an inbound packet that was translated as `plan` says.
    pub(crate) fn commit_inbound(&mut self, now: Instant, plan: InboundPlan, tcp_flags: u8) {
        let tick = self.clock.tick(now);
        match plan.found {
            Found::Session(slot) => self.refresh(tick, slot, Side::V4, tcp_flags),
            Found::Binding(binding) => {
                let tcp = (plan.key.bind.proto == L4Proto::Tcp).then_some(TcpState::V4Init);
                self.create_session(tick, plan.key, plan.v4_local, binding, tcp, true);
            }
            Found::Nothing(_) => {}
        }
    }

    fn create_session(
        &mut self,
        tick: u32,
        key: SessionKey,
        local: SocketAddrV4,
        binding: u32,
        tcp: Option<TcpState>,
        inbound: bool,
    ) {
        let due = due_tick(tick, self.lifetime(Session::class_of(key.bind.proto, tcp)));
        let slot = self.sessions.insert(Session {
            client: key.bind.addr,
            server: key.server,
            local: *local.ip(),
            client_port: key.bind.port,
            server_port: key.server_port,
            local_port: local.port(),
            proto: key.bind.proto,
            tcp,
            inbound,
            tick,
            due,
            links: [0; 2],
            prev: 0,
            next: 0,
        });
        self.wheel.schedule(&mut self.sessions.slab, slot, due);
        let b = self.bindings.slab.get_mut(binding);
        b.sessions += 1;
        // A published server is not limited as a client.
        if !b.is_static {
            let c = self.client_entry(&key.bind.addr);
            if inbound {
                c.inbound += 1;
            } else {
                c.sessions += 1;
            }
        }
        if self.policy.filtering == Filtering::AddressDependent {
            match self.find_server(key.bind.proto, local, key.server) {
                Some(s) => self.servers.slab.get_mut(s).sessions += 1,
                None => {
                    self.servers.insert(ServerUse {
                        local,
                        server: key.server,
                        proto: key.bind.proto,
                        sessions: 1,
                        link: 0,
                    });
                }
            }
        }
        self.created[proto_index(key.bind.proto)] += 1;
    }

    /// A packet from `side` on the session in `slot`: its TCP state
    /// (RFC 6146 §3.5.2.2) and, when its lifetime starts again, its tick.
    /// The session moves in the wheel only when it is now due earlier
    /// (a RST, both FINs); later expiry is found lazily.
    fn refresh(&mut self, tick: u32, slot: u32, side: Side, tcp_flags: u8) {
        let s = self.sessions.slab.get_mut(slot);
        let Some(state) = s.tcp else {
            s.tick = tick;
            return;
        };
        let (next, restart) = state.on_segment(side, tcp_flags);
        s.tcp = Some(next);
        if restart {
            s.tick = tick;
        }
        if next == state && !restart {
            return;
        }
        let (last, class, queued) = (s.tick, s.timer_class(), s.due);
        let due = due_tick(last, self.lifetime(class));
        if due < queued {
            self.wheel.unlink(&mut self.sessions.slab, slot);
            self.wheel.schedule(&mut self.sessions.slab, slot, due);
        }
    }

    /// A keyed hash of `v`: unpredictable without the seed, stable with it.
    fn keyed_hash(&self, v: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        self.seed.hash(&mut h);
        v.hash(&mut h);
        h.finish()
    }

    /// A free pool4 transport address for a new binding (RFC 6146 §3.5.1.1).
    ///
    /// The address is chosen by a keyed hash of the client (its IPv6 address
    /// or subscriber prefix), so all bindings of one client share one IPv4
    /// address ("paired" pooling, RFC 6888 REQ-2)
    /// until that address runs out of ports for the protocol; then the next
    /// addresses are tried.
    ///
    /// Only ports of this table's shard are handed out; the client's own
    /// port is kept when the shard owns it. With port blocks, only ports of
    /// the client's blocks, or of a new one ([`Self::allocate_in_blocks`]).
    fn allocate(&self, bind: BindKey) -> Result<(u16, SocketAddrV4), NatDrop> {
        if self.blocks.is_some() {
            return self.allocate_in_blocks(bind);
        }
        let n = self.pool4.addrs().len();
        // Paired pooling per client: a subscriber prefix's addresses too.
        // A client holding bindings keeps their address; else a keyed hash
        // of the client chooses.
        let client = shard::client_of(&bind.addr, self.policy.client_prefix);
        let preferred = self
            .find_client(client)
            .map(|slot| self.clients.slab.get(slot))
            .filter(|c| c.ports != [0; 3])
            .map(|c| usize::from(c.pool_index))
            .unwrap_or_else(|| (self.keyed_hash(&client) % n as u64) as usize);
        let start = self.allocation_start(bind);
        let p = proto_index(bind.proto);
        (0..n)
            .map(|j| (preferred + j) % n)
            .find_map(|idx| {
                if self.pool4.is_draining(idx) {
                    return None;
                }
                let [low, high] = self.capacity[idx][p];
                if self.used[idx][p] >= low + high {
                    return None;
                }
                let range = self.without_full_class(
                    idx,
                    bind.proto,
                    self.pool4.port_range_of(idx, bind.proto),
                )?;
                let idx = u16::try_from(idx).ok()?;
                self.pick_in(idx, bind, range, start)
            })
            .ok_or(NatDrop::PoolExhausted)
    }

    /// Where a port search for `bind` starts: a keyed hash of the binding
    /// and a counter (RFC 6056 algorithm 3). The counter moves when a
    /// binding is committed, not here: a plan made twice (the in-place path
    /// falling back to the copying one) picks the same port.
    fn allocation_start(&self, bind: BindKey) -> u64 {
        self.keyed_hash(&(bind, self.allocations))
    }

    /// `range` without a range class in which every port of this shard is
    /// taken (bindings, statics, ports in their reuse delay), so that a
    /// search does not read a full class word by word; `None` when both
    /// are full. (Every taken port lies in its address's range: statics
    /// outside it are refused.)
    fn without_full_class(
        &self,
        idx: usize,
        proto: L4Proto,
        range: std::ops::RangeInclusive<u16>,
    ) -> Option<std::ops::RangeInclusive<u16>> {
        let p = proto_index(proto);
        let taken = &self.taken[idx][p];
        let [low, high] = self.capacity[idx][p];
        let low_free = low as usize > taken.low();
        let high_free = high as usize > taken.len() - taken.low();
        let (lo, hi) = range.into_inner();
        let low_end = *LOW_CLASS.end();
        match (low_free, high_free) {
            (true, true) => Some(lo..=hi),
            (true, false) => Some(lo..=hi.min(low_end)),
            (false, true) => Some(lo.max(low_end + 1)..=hi),
            (false, false) => None,
        }
    }

    /// A free port for `bind` in `range` of address `idx`, among this
    /// shard's ports.
    fn pick_in(
        &self,
        idx: u16,
        bind: BindKey,
        range: std::ops::RangeInclusive<u16>,
        start: u64,
    ) -> Option<(u16, SocketAddrV4)> {
        let i = usize::from(idx);
        let addr = *self.pool4.addrs().get(i)?;
        let taken = &self.taken[i][proto_index(bind.proto)];
        let free = |w| self.owned.word(w) & !taken.word(w);
        pick_port(range, bind.port, start, free).map(|port| (idx, SocketAddrV4::new(addr, port)))
    }

    /// RFC 7422 port blocks: a free port in one of the client's blocks, or
    /// in a free block of this shard (on the address of the client's other
    /// blocks first: paired pooling), unless the client holds as many
    /// blocks as its port limit allows.
    fn allocate_in_blocks(&self, bind: BindKey) -> Result<(u16, SocketAddrV4), NatDrop> {
        let blocks = self.blocks.as_ref().expect("port blocks on");
        let client = shard::client_of(&bind.addr, self.policy.client_prefix);
        let start = self.allocation_start(bind);
        let in_block = |idx: u16, number: u16| {
            if self.pool4.is_draining(usize::from(idx)) {
                return None;
            }
            let range = self.pool4.port_range_of(usize::from(idx), bind.proto);
            let ports = blocks.ports(number);
            let lo = (*ports.start()).max(*range.start());
            let hi = (*ports.end()).min(*range.end());
            (lo <= hi)
                .then(|| self.pick_in(idx, bind, lo..=hi, start))
                .flatten()
        };
        if let Some(d) = self.shard.deterministic {
            // RFC 7422 §2: the client's one block, from the configuration.
            let index = d
                .index_of(&bind.addr.octets())
                .ok_or(NatDrop::OutsideDeterministicRange)?;
            let (idx, number) = d.block_of(index);
            let idx = u16::try_from(idx).map_err(|_| NatDrop::PoolExhausted)?;
            return in_block(idx, number).ok_or(NatDrop::ClientPortLimit);
        }
        if let Some((idx, port)) =
            blocks.in_held(client, |idx, n| in_block(idx, n).map(|f| f.1.port()))
        {
            let addr = self.pool4.addrs()[usize::from(idx)];
            return Ok((idx, SocketAddrV4::new(addr, port)));
        }
        let max_blocks = self
            .policy
            .max_ports_per_client
            .div_ceil(blocks.size())
            .max(1);
        if blocks.count_of(client) >= max_blocks {
            return Err(NatDrop::ClientPortLimit);
        }
        let n = self.pool4.addrs().len();
        let preferred = match blocks.address_of(client) {
            Some(idx) => usize::from(idx),
            None => (self.keyed_hash(&client) % n as u64) as usize,
        };
        (0..n)
            .map(|j| (preferred + j) % n)
            .filter(|&i| !self.pool4.is_draining(i))
            .find_map(|i| {
                let idx = u16::try_from(i).ok()?;
                let numbers = blocks.numbers_in(&self.block_span(i))?;
                let count = numbers.end() - numbers.start() + 1;
                let offset = (start % u64::from(count)) as u32;
                (0..count)
                    .map(|k| numbers.start() + (offset + k) % count)
                    .filter_map(|number| u16::try_from(number).ok())
                    .filter(|&number| {
                        self.shard.owns(*blocks.ports(number).start())
                            && !blocks.is_held(idx, number)
                    })
                    .find_map(|number| in_block(idx, number))
            })
            .ok_or(NatDrop::PoolExhausted)
    }

    /// The ports of address `idx` that every protocol may use: blocks are
    /// taken only inside it, so that a block serves TCP, UDP and ICMP.
    fn block_span(&self, idx: usize) -> std::ops::RangeInclusive<u16> {
        let ranges =
            [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp].map(|p| self.pool4.port_range_of(idx, p));
        let lo = ranges.iter().map(|r| *r.start()).max().unwrap_or(0);
        let hi = ranges.iter().map(|r| *r.end()).min().unwrap_or(0);
        lo..=hi
    }

    /// Queues the log event of a block handed out or taken back; none for
    /// deterministic blocks, which the configuration tells.
    fn push_block(&mut self, now: Instant, change: BindingChange, block: BlockChange) {
        if self.shard.deterministic.is_some() {
            return;
        }
        let Some(&v4) = self.pool4.addrs().get(usize::from(block.pool_index)) else {
            return;
        };
        self.events.push(BindingEvent {
            at: now,
            change,
            held: Held::Block {
                client: Ipv6Addr::from(block.client),
                client_prefix: self.policy.client_prefix,
                v4,
                first: block.first,
                last: block.last,
            },
        });
    }

    fn lifetime(&self, class: TimerClass) -> Duration {
        let t = &self.timeouts;
        match class {
            TimerClass::Udp => t.udp,
            TimerClass::Icmp => t.icmp,
            TimerClass::TcpTransitory => t.tcp_transitory,
            TimerClass::TcpEstablished => t.tcp_established,
            TimerClass::TcpIncomingSyn => TCP_INCOMING_SYN,
        }
    }

    /// The tick the session is due at unless a packet comes.
    fn due(&self, s: &Session) -> u32 {
        due_tick(s.tick, self.lifetime(s.timer_class()))
    }

    /// When the session expires unless a packet comes.
    fn expires(&self, s: &Session) -> Option<Instant> {
        self.clock.instant(self.due(s))
    }

    /// When the next wheel slot is due (sessions may have been refreshed
    /// since, so nothing need expire then; never later than the earliest
    /// expiry), or the last wake-up when it left work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let next = self.wheel.next_tick().and_then(|t| self.clock.instant(t));
        let cooled = self
            .cooling
            .front()
            .and_then(|c| self.clock.instant(c.until));
        next.into_iter().chain(cooled).chain(self.resize_due).min()
    }

    /// Walks the wheel up to `now`: removes sessions whose expiry has come,
    /// and the dynamic bindings left without sessions, moves refreshed ones
    /// to the slot they are due at; at most [`EXPIRY_BUDGET`] sessions per
    /// call, so that a wake-up after a flood does bounded work (the rest
    /// stay due, and [`Self::poll_timeout`] says so). Indexes resize a
    /// bounded number of entries per call; sparse ones shrink.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let now_tick = self.clock.tick(now);
        self.free_cooled(now_tick);
        let mut budget = EXPIRY_BUDGET;
        let mut left = false;
        while let Some(slot) = self.wheel.next_due(&self.sessions.slab, now_tick) {
            let s = self.sessions.slab.get(slot);
            let (queued, due) = (s.due, self.due(s));
            let idle_established = s.tcp == Some(TcpState::Established);
            if due <= now_tick && idle_established && self.probes.len() < PROBE_QUEUE {
                // RFC 6146 §3.5.2.2: probe the client and move to TRANS; an
                // answer (any segment) brings the session back.
                let s = self.sessions.slab.get_mut(slot);
                s.tcp = Some(TcpState::Trans);
                s.tick = now_tick;
                let probe = Probe {
                    client: SocketAddrV6::new(s.client, s.client_port, 0, 0),
                    server: SocketAddrV4::new(s.server, s.server_port),
                };
                self.probes.push_back(probe);
                let due = due_tick(now_tick, self.timeouts.tcp_transitory);
                self.wheel.unlink(&mut self.sessions.slab, slot);
                self.wheel.schedule(&mut self.sessions.slab, slot, due);
            } else if due <= now_tick {
                self.remove_session(now, slot);
            } else if due != queued {
                self.wheel.unlink(&mut self.sessions.slab, slot);
                self.wheel.schedule(&mut self.sessions.slab, slot, due);
            }
            // Else a later turn of the wheel: it stays.
            budget -= 1;
            if budget == 0 {
                left = true;
                break;
            }
        }
        let sessions = self.sessions.maintain(RESIZE_BUDGET);
        let bindings = self.bindings.maintain(RESIZE_BUDGET);
        let clients = self.clients.maintain(RESIZE_BUDGET);
        let servers = self.servers.maintain(RESIZE_BUDGET);
        let blocks = self
            .blocks
            .as_mut()
            .is_some_and(|b| b.maintain(RESIZE_BUDGET));
        self.resize_due =
            (left || sessions || bindings || clients || servers || blocks).then_some(now);
    }

    fn remove_session(&mut self, now: Instant, slot: u32) {
        self.wheel.unlink(&mut self.sessions.slab, slot);
        let wheel = &mut self.wheel;
        let s = self
            .sessions
            .remove(slot, |slab, from, to| wheel.relocate(slab, from, to));
        self.expired[proto_index(s.proto)] += 1;
        if self.policy.filtering == Filtering::AddressDependent {
            if let Some(slot) = self.find_server(s.proto, s.local(), s.server) {
                let use_ = self.servers.slab.get_mut(slot);
                use_.sessions -= 1;
                if use_.sessions == 0 {
                    self.servers.remove(slot, |_, _, _| {});
                }
            }
        }
        let mut sessions_released = 0;
        let mut port_released = false;
        if let Some(binding) = self.find_binding_v6(&s.bind_key()) {
            let b = self.bindings.slab.get_mut(binding);
            b.sessions -= 1;
            sessions_released = u32::from(!b.is_static);
            if b.sessions == 0 && !b.is_static {
                let pool_index = usize::from(b.pool_index);
                let v4_local = b.local();
                let removed = self.bindings.remove(binding, |_, _, _| {});
                match &mut self.blocks {
                    Some(blocks) => {
                        if let Some(block) = blocks.unbind(removed.pool_index, v4_local.port()) {
                            self.push_block(now, BindingChange::Removed, block);
                        }
                    }
                    None => self.events.push(BindingEvent {
                        at: now,
                        change: BindingChange::Removed,
                        held: Held::Binding {
                            proto: removed.proto,
                            v6_client: SocketAddrV6::new(removed.client, removed.client_port, 0, 0),
                            v4_local,
                        },
                    }),
                }
                self.used[pool_index][proto_index(s.proto)] -= 1;
                self.cool(now, pool_index, s.proto, v4_local.port());
                port_released = true;
            }
        }
        let client = shard::client_of(&s.client, self.policy.client_prefix);
        if let Some(slot) = self.find_client(client) {
            let usage = self.clients.slab.get_mut(slot);
            let count = if s.inbound {
                &mut usage.inbound
            } else {
                &mut usage.sessions
            };
            *count = count.saturating_sub(sessions_released);
            if port_released {
                let ports = &mut usage.ports[proto_index(s.proto)];
                *ports = ports.saturating_sub(1);
            }
            if usage.is_empty() {
                self.clients.remove(slot, |_, _, _| {});
            }
        }
    }

    /// The filtering entry of (binding at `local`, `server`).
    fn find_server(&self, proto: L4Proto, local: SocketAddrV4, server: Ipv4Addr) -> Option<u32> {
        let hash = server_hash(self.servers.state(), proto, local, server);
        self.servers.find(0, hash, |s| {
            s.server == server && s.local == local && s.proto == proto
        })
    }

    /// The entry of `client`.
    fn find_client(&self, client: u128) -> Option<u32> {
        let hash = client_hash(self.clients.state(), client);
        self.clients.find(0, hash, |c| c.client == client)
    }

    /// Marks `port` of pool address `idx` held by a binding of `proto`.
    fn mark_taken(&mut self, idx: usize, proto: L4Proto, port: u16) {
        if let Some(slot) = self.taken.get_mut(idx) {
            slot[proto_index(proto)].set(port);
        }
    }

    /// A removed binding's port: free again after the reuse delay (RFC
    /// 6888 REQ-8), so that a new client does not get what the old one's
    /// peers still send.
    fn cool(&mut self, now: Instant, idx: usize, proto: L4Proto, port: u16) {
        if self.policy.port_reuse_delay.is_zero() {
            return self.mark_free(idx, proto, port);
        }
        let until = due_tick(self.clock.tick(now), self.policy.port_reuse_delay);
        self.cooling.push_back(Cooling {
            until,
            pool_index: idx as u16,
            port,
            proto,
        });
    }

    /// Frees the ports whose reuse delay is over by `tick`, at most
    /// [`EXPIRY_BUDGET`] times four per call (the rest stay due, and
    /// [`Self::poll_timeout`] says so).
    fn free_cooled(&mut self, tick: u32) {
        for _ in 0..EXPIRY_BUDGET * 4 {
            let Some(c) = self.cooling.front().copied().filter(|c| c.until <= tick) else {
                return;
            };
            self.cooling.pop_front();
            self.mark_free(usize::from(c.pool_index), c.proto, c.port);
            // After a flood, the queue's memory goes back too.
            if self.cooling.is_empty() && self.cooling.capacity() > 4096 {
                self.cooling = VecDeque::new();
            }
        }
    }

    /// Marks `port` free again.
    fn mark_free(&mut self, idx: usize, proto: L4Proto, port: u16) {
        if let Some(slot) = self.taken.get_mut(idx) {
            slot[proto_index(proto)].clear(port);
        }
    }

    /// Whether the client of `addr` created as many bindings as it may in
    /// the second before `tick` (RFC 6888 REQ-4 c: a client creating
    /// mappings at a high rate cannot take the workers' time).
    fn over_binding_rate(&self, addr: &Ipv6Addr, tick: u32) -> bool {
        let limit = self.policy.max_new_bindings_per_second;
        if limit == u32::MAX {
            return false;
        }
        let client = shard::client_of(addr, self.policy.client_prefix);
        self.find_client(client).is_some_and(|slot| {
            let c = self.clients.slab.get(slot);
            tick.wrapping_sub(c.window) < TICKS_PER_SECOND as u32 && c.created >= limit
        })
    }

    /// What the client of IPv6 address `addr` holds: sessions it opened,
    /// sessions opened from the IPv4 side, ports.
    fn client_use(&self, addr: &Ipv6Addr) -> (u32, u32, [u32; 3]) {
        let client = shard::client_of(addr, self.policy.client_prefix);
        self.find_client(client).map_or((0, 0, [0; 3]), |slot| {
            let c = self.clients.slab.get(slot);
            (c.sessions, c.inbound, c.ports)
        })
    }

    /// The entry of the client of `addr`, made if missing.
    fn client_entry(&mut self, addr: &Ipv6Addr) -> &mut ClientUse {
        let client = shard::client_of(addr, self.policy.client_prefix);
        let slot = match self.find_client(client) {
            Some(slot) => slot,
            None => self.clients.insert(ClientUse {
                client,
                ..ClientUse::default()
            }),
        };
        self.clients.slab.get_mut(slot)
    }

    /// A changed pool4 (a reload, [`Pool4::updated`]): the same addresses
    /// at the same indexes, some now draining, maybe more after them, whose
    /// bookkeeping starts empty.
    pub(crate) fn set_pool4(&mut self, pool4: Pool4) {
        let (old, new) = (self.pool4.addrs().len(), pool4.addrs().len());
        debug_assert!(new >= old && pool4.addrs()[..old] == *self.pool4.addrs());
        for idx in old..new {
            self.used.push([0; 3]);
            self.capacity.push(capacity_of(&pool4, idx, &self.shard));
            self.taken.push(Default::default());
        }
        if let Some(blocks) = &mut self.blocks {
            blocks.grow_to(new);
        }
        self.pool4 = pool4;
    }

    /// New limits, filtering and lifetimes (a reload). Sessions whose
    /// lifetime is now shorter are rescheduled at once, so that none
    /// outlives the new timeout: a walk of the whole table, on a reload
    /// only.
    pub(crate) fn reconfigure(
        &mut self,
        policy: TablePolicy,
        timeouts: Timeouts,
        max_sessions: usize,
    ) {
        let shorter = timeouts.udp < self.timeouts.udp
            || timeouts.icmp < self.timeouts.icmp
            || timeouts.tcp_established < self.timeouts.tcp_established
            || timeouts.tcp_transitory < self.timeouts.tcp_transitory;
        // What is fixed at start stays: the client prefix and port blocks
        // shape the shards and the tables.
        self.policy = TablePolicy {
            client_prefix: self.policy.client_prefix,
            port_block: self.policy.port_block,
            ..policy
        };
        self.timeouts = timeouts;
        self.max_sessions = max_sessions.min(u32::MAX as usize / 2);
        if shorter {
            for slot in 0..self.sessions.len() as u32 {
                let s = self.sessions.slab.get(slot);
                let due = self.due(s);
                if due < s.due {
                    self.wheel.unlink(&mut self.sessions.slab, slot);
                    self.wheel.schedule(&mut self.sessions.slab, slot, due);
                }
            }
        }
    }

    /// The next probe to send, if any.
    pub(crate) fn pop_probe(&mut self) -> Option<Probe> {
        self.probes.pop_front()
    }

    /// Dynamic bindings per pool4 address (in use only) and protocol
    /// (TCP, UDP, ICMP).
    pub(crate) fn pool4_use(&self, out: &mut Vec<(Ipv4Addr, [u32; 3])>) {
        out.extend(
            self.used
                .iter()
                .zip(self.pool4.addrs())
                .filter(|(u, _)| **u != [0; 3])
                .map(|(u, a)| (*a, *u)),
        );
    }

    pub(crate) fn port_block_count(&self) -> usize {
        self.blocks.as_ref().map_or(0, PortBlocks::len)
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn bib_count(&self) -> usize {
        self.bindings.len()
    }

    pub(crate) fn sessions_created(&self) -> u64 {
        self.created.iter().sum()
    }

    pub(crate) fn sessions_expired(&self) -> u64 {
        self.expired.iter().sum()
    }

    /// Sessions created and expired of `proto`.
    pub(crate) fn sessions_of(&self, proto: L4Proto) -> (u64, u64) {
        let i = proto_index(proto);
        (self.created[i], self.expired[i])
    }

    /// The sessions at positions `start..start + limit` of the table, in
    /// its own (unsorted) order; `embed` maps an IPv4 server to the IPv6
    /// address clients see. Paging through a table that changes in between
    /// lists every session that lives throughout exactly once, except one
    /// moved in front of the cursor by a removal (a removal fills its hole
    /// with the last entry).
    pub(crate) fn sessions_page(
        &self,
        start: usize,
        limit: usize,
        embed: impl Fn(Ipv4Addr) -> Ipv6Addr,
        out: &mut Vec<SessionEntry>,
    ) {
        let end = start.saturating_add(limit);
        out.extend(self.sessions.slab.range(start, end).filter_map(|s| {
            let icmp = s.proto == L4Proto::Icmp;
            let v6_server_port = if icmp { s.client_port } else { s.server_port };
            let v4_server_port = if icmp { s.local_port } else { s.server_port };
            Some(SessionEntry {
                proto: s.proto,
                v6_client: SocketAddrV6::new(s.client, s.client_port, 0, 0),
                v6_server: SocketAddrV6::new(embed(s.server), v6_server_port, 0, 0),
                v4_local: s.local(),
                v4_server: SocketAddrV4::new(s.server, v4_server_port),
                tcp_state: s.tcp,
                expires: self.expires(s)?,
            })
        }));
    }

    /// The bindings at positions `start..start + limit`, as [`Self::sessions_page`].
    pub(crate) fn bib_page(&self, start: usize, limit: usize, out: &mut Vec<BibEntry>) {
        let end = start.saturating_add(limit);
        out.extend(self.bindings.slab.range(start, end).map(|b| BibEntry {
            proto: b.proto,
            v6_client: SocketAddrV6::new(b.client, b.client_port, 0, 0),
            v4_local: b.local(),
            is_static: b.is_static,
            sessions: b.sessions as usize,
        }));
    }
}

/// The IPv6-side key of an outbound packet to IPv4 `server`.
fn outbound_key(flow: &Flow6, server: Ipv4Addr) -> SessionKey {
    SessionKey {
        bind: BindKey {
            proto: flow.proto,
            addr: flow.src,
            port: flow.src_port,
        },
        server,
        server_port: SessionKey::server_port(flow.proto, flow.dst_port),
    }
}

#[cfg(test)]
mod tests;
