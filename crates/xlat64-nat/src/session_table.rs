//! The BIB and the session table (RFC 6146 §3.1, §3.2) with their expiry
//! timers and address-dependent filtering, independent of packet bytes.
//!
//! Lookups:
//! - outbound: session by (proto, client IPv6 transport address, IPv4
//!   server transport address), else binding by the client address;
//! - inbound: binding by the pool4 transport address, then session as above.
//!
//! Every packet call is split in two: `plan_*` decides (and may fail with a
//! [`NatDrop`]) without touching the tables, `commit_*` records the result
//! once the packet has been translated, so that a packet dropped by the
//! translator leaves no state behind.
//!
//! Expiry uses a min-heap of (deadline, session key) entries. An entry is
//! pushed when a session is created, and again only when its expiry moves
//! *earlier* than the deadline already queued (a TCP RST or closing FIN);
//! refreshing a session only moves its expiry later, which costs nothing: when
//! the queued deadline comes, the session is re-queued at its real expiry.
//! Each session remembers the deadline of its live entry (`scheduled`); heap
//! entries that do not match it are stale and skipped. Stale entries of
//! sessions already gone would otherwise linger until their (up to 2 h 4 min)
//! deadline, so the heap is rebuilt from the sessions, in O(n), whenever it
//! holds more than twice as many entries as there are sessions (plus slack).

use crate::port_alloc::pick_port;
use crate::shard::Shard;
use crate::tcp::{Side, TcpTrack};
use crate::{BibEntry, NatDrop, Pool4, SessionEntry, Timeouts};
use foldhash::fast::FixedState;
use indexmap::IndexMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Hash maps of the tables: foldhash keyed with the table's secret seed. Keys
/// carry attacker-chosen ports and addresses, so the hasher must be keyed;
/// std's SipHash is keyed too but costs about 6% of the packet path.
type Map<K, V> = HashMap<K, V, FixedState>;
/// The tables the control socket lists page by page: an index map keeps its
/// entries in a dense vector, so a page is a range of positions, found in
/// O(1) without sorting or walking the table (a listing never stalls the
/// packet path for long).
type Listed<K, V> = IndexMap<K, V, FixedState>;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;
use xlat64_packet::flow::tcp_flags::{RST, SYN};
use xlat64_packet::{Flow4, Flow6, L4Proto};

/// Initial capacity of the maps; they grow only when sessions are created.
const INITIAL_CAPACITY: usize = 1024;

/// Stale timer entries tolerated beyond one per session before a rebuild.
const TIMER_SLACK: usize = 1024;

/// Sessions removed per [`SessionTable::handle_timeout`] call at most: after
/// a flood, expiry is spread over several wake-ups between packets (a
/// removal touches five tables, a few microseconds with a million
/// sessions: about 2 ms per call at most).
const EXPIRY_BUDGET: usize = 512;

/// A table gives memory back once it holds less than 1/`SPARSE` of its
/// room: the rehash then moves few entries (a flood's table shrinks when
/// nearly all of it has expired, not halfway).
const SPARSE: usize = 32;

/// A client's IPv6 transport address (the BIB key on the IPv6 side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BindKey {
    pub(crate) proto: L4Proto,
    pub(crate) addr: Ipv6Addr,
    /// Port, or ICMP identifier.
    pub(crate) port: u16,
}

/// A pool4 transport address (the BIB key on the IPv4 side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct V4Key {
    proto: L4Proto,
    addr: Ipv4Addr,
    port: u16,
}

/// A session: binding plus IPv4 server transport address. For ICMP the
/// server has no port of its own (the identifier is the binding's), so
/// `server_port` is 0 and there is one session per (binding, server address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionKey {
    pub(crate) bind: BindKey,
    pub(crate) server: Ipv4Addr,
    server_port: u16,
}

impl V4Key {
    /// The pool4 transport address an inbound packet is sent to.
    fn inbound(flow: &Flow4) -> Self {
        V4Key {
            proto: flow.proto,
            addr: flow.dst,
            port: flow.dst_port,
        }
    }
}

impl SessionKey {
    /// The session of an outbound packet to IPv4 `server`.
    fn outbound(flow: &Flow6, server: Ipv4Addr) -> Self {
        SessionKey {
            bind: BindKey {
                proto: flow.proto,
                addr: flow.src,
                port: flow.src_port,
            },
            server,
            server_port: Self::server_port(flow.proto, flow.dst_port),
        }
    }

    /// The session of an inbound packet for binding `bind`.
    fn inbound(bind: BindKey, flow: &Flow4) -> Self {
        SessionKey {
            bind,
            server: flow.src,
            server_port: Self::server_port(flow.proto, flow.src_port),
        }
    }

    /// ICMP query sessions have no server port: the identifier is the
    /// binding's (RFC 6146 §3.5.3).
    fn server_port(proto: L4Proto, port: u16) -> u16 {
        if proto == L4Proto::Icmp {
            0
        } else {
            port
        }
    }
}

#[derive(Debug)]
struct Binding {
    v4: SocketAddrV4,
    /// Index of `v4`'s address in the pool.
    pool_index: usize,
    is_static: bool,
    sessions: usize,
}

#[derive(Debug)]
struct Session {
    v4_local: SocketAddrV4,
    expires: Instant,
    /// Deadline of this session's live entry in the timer heap; never later than `expires`.
    scheduled: Instant,
    tcp: Option<TcpTrack>,
}

/// What an outbound packet maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboundPlan {
    key: SessionKey,
    /// Pool4 transport address (source of the IPv4 packet).
    pub(crate) v4_local: SocketAddrV4,
    /// `Some(pool index)` when the binding must be created.
    new_binding: Option<usize>,
    new_session: bool,
}

/// What an inbound packet maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundPlan {
    key: SessionKey,
    new_session: bool,
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
    bib6: Listed<BindKey, Binding>,
    bib4: Map<V4Key, BindKey>,
    sessions: Listed<SessionKey, Session>,
    /// Sessions per (binding, IPv4 server address): address-dependent filtering.
    servers: Map<(BindKey, Ipv4Addr), u32>,
    timers: BinaryHeap<Reverse<(Instant, SessionKey)>>,
    /// Dynamic bindings per pool address and protocol, to skip full addresses.
    used: Vec<[u32; 3]>,
    /// Secret for address choice and port randomization.
    seed: u64,
    allocations: u64,
    created: u64,
    expired: u64,
    /// When the last expiry left a table to shrink (one per call).
    shrink_due: Option<Instant>,
}

fn proto_index(p: L4Proto) -> usize {
    match p {
        L4Proto::Tcp => 0,
        L4Proto::Udp => 1,
        L4Proto::Icmp => 2,
    }
}

fn is_tcp_syn(flags: u8) -> bool {
    flags & SYN != 0 && flags & RST == 0
}

impl SessionTable {
    pub(crate) fn new(
        pool4: Pool4,
        timeouts: Timeouts,
        seed: u64,
        shard: Shard,
        max_sessions: usize,
    ) -> Self {
        let used = vec![[0; 3]; pool4.addrs().len()];
        SessionTable {
            pool4,
            timeouts,
            shard,
            max_sessions,
            bib6: Listed::with_capacity_and_hasher(INITIAL_CAPACITY, FixedState::with_seed(seed)),
            bib4: Map::with_capacity_and_hasher(INITIAL_CAPACITY, FixedState::with_seed(seed)),
            sessions: Listed::with_capacity_and_hasher(
                INITIAL_CAPACITY,
                FixedState::with_seed(seed),
            ),
            servers: Map::with_capacity_and_hasher(INITIAL_CAPACITY, FixedState::with_seed(seed)),
            timers: BinaryHeap::with_capacity(INITIAL_CAPACITY),
            used,
            seed,
            allocations: 0,
            created: 0,
            expired: 0,
            shrink_due: None,
        }
    }

    /// RFC 6146 §3.5.1-§3.5.3, IPv6 -> IPv4: the session for `flow` (whose
    /// destination carries IPv4 `server`), or what to create for it.
    pub(crate) fn plan_outbound(
        &mut self,
        flow: &Flow6,
        server: Ipv4Addr,
    ) -> Result<OutboundPlan, NatDrop> {
        let key = SessionKey::outbound(flow, server);
        let bind = key.bind;
        if let Some(s) = self.sessions.get(&key) {
            return Ok(OutboundPlan {
                key,
                v4_local: s.v4_local,
                new_binding: None,
                new_session: false,
            });
        }
        if flow.proto == L4Proto::Tcp && !is_tcp_syn(flow.tcp_flags) {
            return Err(NatDrop::TcpNoSession);
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(NatDrop::SessionLimit);
        }
        let (v4_local, new_binding) = match self.bib6.get(&bind) {
            Some(b) => (b.v4, None),
            None => {
                let (idx, v4) = self.allocate(bind).ok_or(NatDrop::PoolExhausted)?;
                (v4, Some(idx))
            }
        };
        Ok(OutboundPlan {
            key,
            v4_local,
            new_binding,
            new_session: true,
        })
    }

    /// The pool4 transport address of the existing session that `flow`
    /// (seen from the IPv6 side, to IPv4 `server`) belongs to, without
    /// creating or refreshing anything: how an ICMP error from the IPv6 side
    /// finds its session (RFC 6146 §3.4, §3.5).
    pub(crate) fn find_outbound(&self, flow: &Flow6, server: Ipv4Addr) -> Option<SocketAddrV4> {
        self.sessions
            .get(&SessionKey::outbound(flow, server))
            .map(|s| s.v4_local)
    }

    /// The client transport address of the existing session that `flow`
    /// (seen from the IPv4 side) belongs to, without creating or refreshing
    /// anything: how an ICMP error from the IPv4 side finds its session.
    pub(crate) fn find_inbound(&self, flow: &Flow4) -> Option<SocketAddrV6> {
        let bind = *self.bib4.get(&V4Key::inbound(flow))?;
        let key = SessionKey::inbound(bind, flow);
        self.sessions
            .contains_key(&key)
            .then(|| SocketAddrV6::new(bind.addr, bind.port, 0, 0))
    }

    /// Records an outbound packet that was translated as `plan` says.
    pub(crate) fn commit_outbound(&mut self, now: Instant, plan: OutboundPlan, tcp_flags: u8) {
        let bind = plan.key.bind;
        if let Some(pool_index) = plan.new_binding {
            self.bib6.insert(
                bind,
                Binding {
                    v4: plan.v4_local,
                    pool_index,
                    is_static: false,
                    sessions: 0,
                },
            );
            let v4 = V4Key {
                proto: bind.proto,
                addr: *plan.v4_local.ip(),
                port: plan.v4_local.port(),
            };
            self.bib4.insert(v4, bind);
            self.used[pool_index][proto_index(bind.proto)] += 1;
        }
        if plan.new_session {
            let tcp = (bind.proto == L4Proto::Tcp).then(TcpTrack::opened_by_v6_syn);
            self.create_session(now, plan.key, plan.v4_local, tcp);
        } else {
            self.refresh(now, plan.key, Side::V6, tcp_flags);
        }
    }

    /// RFC 6146 §3.5, IPv4 -> IPv6, with address-dependent filtering: a
    /// packet is let in only when its binding has a session with the
    /// packet's source address. (Endpoint-independent filtering, the RFC's
    /// default for UDP, would be a configuration option; it is left for later
    /// because never letting unsolicited traffic in comes first.)
    pub(crate) fn plan_inbound(&self, flow: &Flow4) -> Result<InboundPlan, NatDrop> {
        let bind = *self
            .bib4
            .get(&V4Key::inbound(flow))
            .ok_or(NatDrop::NoBinding)?;
        let key = SessionKey::inbound(bind, flow);
        if self.sessions.contains_key(&key) {
            return Ok(InboundPlan {
                key,
                new_session: false,
            });
        }
        if flow.proto == L4Proto::Tcp {
            // RFC 6146 §3.5.2.2 simultaneous open (an IPv4 SYN for a binding
            // without session) is not handled yet.
            return Err(if is_tcp_syn(flow.tcp_flags) {
                NatDrop::TcpInboundSyn
            } else {
                NatDrop::TcpNoSession
            });
        }
        if !self.servers.contains_key(&(bind, flow.src)) {
            return Err(NatDrop::Filtered);
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(NatDrop::SessionLimit);
        }
        Ok(InboundPlan {
            key,
            new_session: true,
        })
    }

    /// Records an inbound packet that was translated as `plan` says.
    pub(crate) fn commit_inbound(&mut self, now: Instant, plan: InboundPlan, tcp_flags: u8) {
        if plan.new_session {
            let Some(binding) = self.bib6.get(&plan.key.bind) else {
                return;
            };
            let v4 = binding.v4;
            self.create_session(now, plan.key, v4, None);
        } else {
            self.refresh(now, plan.key, Side::V4, tcp_flags);
        }
    }

    fn create_session(
        &mut self,
        now: Instant,
        key: SessionKey,
        v4_local: SocketAddrV4,
        tcp: Option<TcpTrack>,
    ) {
        let expires = expiry(now, self.lifetime(key.bind.proto, tcp.as_ref()));
        self.sessions.insert(
            key,
            Session {
                v4_local,
                expires,
                scheduled: expires,
                tcp,
            },
        );
        self.timers.push(Reverse((expires, key)));
        *self.servers.entry((key.bind, key.server)).or_insert(0) += 1;
        if let Some(b) = self.bib6.get_mut(&key.bind) {
            b.sessions += 1;
        }
        self.created += 1;
    }

    fn refresh(&mut self, now: Instant, key: SessionKey, side: Side, tcp_flags: u8) {
        let timeouts = self.timeouts;
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(tcp) = s.tcp.as_mut() {
            tcp.on_segment(side, tcp_flags);
        }
        s.expires = expiry(now, lifetime(&timeouts, key.bind.proto, s.tcp.as_ref()));
        if s.expires < s.scheduled {
            s.scheduled = s.expires;
            self.timers.push(Reverse((s.expires, key)));
            self.compact_timers();
        }
    }

    /// Rebuilds the timer heap with one entry per session when stale entries
    /// dominate; amortized O(1) per stale entry, reusing the heap's memory.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.sessions.len() + TIMER_SLACK {
            return;
        }
        let mut entries = std::mem::take(&mut self.timers).into_vec();
        entries.clear();
        entries.extend(
            self.sessions
                .iter()
                .map(|(k, s)| Reverse((s.scheduled, *k))),
        );
        self.timers = BinaryHeap::from(entries);
    }

    fn lifetime(&self, proto: L4Proto, tcp: Option<&TcpTrack>) -> std::time::Duration {
        lifetime(&self.timeouts, proto, tcp)
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
    /// The address is chosen by a keyed hash of the client's IPv6 address, so
    /// all bindings of one client share one IPv4 address ("paired" pooling)
    /// until that address runs out of ports for the protocol; then the next
    /// addresses are tried.
    ///
    /// Only ports of this table's shard are handed out; the client's own
    /// port is kept when the shard owns it.
    fn allocate(&mut self, bind: BindKey) -> Option<(usize, SocketAddrV4)> {
        let n = self.pool4.addrs().len();
        let range = self.pool4.port_range(bind.proto);
        let size = self.shard.owned_in(*range.start(), *range.end());
        let preferred = (self.keyed_hash(&bind.addr) % n as u64) as usize;
        self.allocations = self.allocations.wrapping_add(1);
        let start = self.keyed_hash(&(bind, self.allocations));
        let p = proto_index(bind.proto);
        (0..n).map(|j| (preferred + j) % n).find_map(|idx| {
            if self.used[idx][p] >= size {
                return None;
            }
            let addr = self.pool4.addrs()[idx];
            let is_free = |port| {
                self.shard.owns(port)
                    && !self.bib4.contains_key(&V4Key {
                        proto: bind.proto,
                        addr,
                        port,
                    })
            };
            pick_port(range.clone(), bind.port, start, is_free)
                .map(|port| (idx, SocketAddrV4::new(addr, port)))
        })
    }

    /// The earliest deadline queued (possibly earlier than any real expiry),
    /// or now when a table is left to shrink.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.timers.peek().map(|Reverse((t, _))| *t);
        match (queued, self.shrink_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes sessions with expiry <= `now`, and the dynamic bindings left
    /// without sessions: at most [`EXPIRY_BUDGET`] of them, so that a wake-up
    /// after a flood does bounded work; the rest stay due, and
    /// [`Self::poll_timeout`] says so. Tables mostly emptied give their
    /// memory back.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut budget = EXPIRY_BUDGET;
        while let Some(&Reverse((deadline, key))) = self.timers.peek() {
            if deadline > now || budget == 0 {
                break;
            }
            self.timers.pop();
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            if s.scheduled != deadline {
                continue;
            }
            if s.expires > now {
                s.scheduled = s.expires;
                self.timers.push(Reverse((s.expires, key)));
                continue;
            }
            self.remove_session(&key);
            budget -= 1;
        }
        self.compact_timers();
        self.shrink_due = self.shrink_if_sparse().then_some(now);
    }

    /// Gives memory back once a table holds less than 1/[`SPARSE`] of what
    /// it has room for (after a flood expired), one table per call: the
    /// rehash moves only the few live entries.
    /// Returns whether another table is left to shrink.
    fn shrink_if_sparse(&mut self) -> bool {
        fn sparse(len: usize, capacity: usize) -> bool {
            capacity > 2 * INITIAL_CAPACITY && len < capacity / SPARSE
        }
        // Never below the initial room.
        let room = |len: usize| (2 * len).max(INITIAL_CAPACITY);
        let live = self.sessions.len();
        let mut todo = [
            sparse(live, self.sessions.capacity()),
            sparse(live, self.timers.capacity()),
            sparse(self.servers.len(), self.servers.capacity()),
            sparse(self.bib6.len(), self.bib6.capacity()),
            sparse(self.bib4.len(), self.bib4.capacity()),
        ];
        match todo.iter().position(|&t| t) {
            Some(0) => self.sessions.shrink_to(room(live)),
            Some(1) => self.timers.shrink_to(room(live) + TIMER_SLACK),
            Some(2) => self.servers.shrink_to(room(self.servers.len())),
            Some(3) => self.bib6.shrink_to(room(self.bib6.len())),
            Some(4) => self.bib4.shrink_to(room(self.bib4.len())),
            _ => return false,
        }
        if let Some(done) = todo.iter().position(|&t| t) {
            todo[done] = false;
        }
        todo.contains(&true)
    }

    fn remove_session(&mut self, key: &SessionKey) {
        if self.sessions.swap_remove(key).is_none() {
            return;
        }
        self.expired += 1;
        let server_key = (key.bind, key.server);
        if let Some(count) = self.servers.get_mut(&server_key) {
            *count -= 1;
            if *count == 0 {
                self.servers.remove(&server_key);
            }
        }
        let Some(b) = self.bib6.get_mut(&key.bind) else {
            return;
        };
        b.sessions -= 1;
        if b.sessions == 0 && !b.is_static {
            let (v4, pool_index) = (b.v4, b.pool_index);
            self.bib6.swap_remove(&key.bind);
            self.bib4.remove(&V4Key {
                proto: key.bind.proto,
                addr: *v4.ip(),
                port: v4.port(),
            });
            self.used[pool_index][proto_index(key.bind.proto)] -= 1;
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn bib_count(&self) -> usize {
        self.bib6.len()
    }

    pub(crate) fn sessions_created(&self) -> u64 {
        self.created
    }

    pub(crate) fn sessions_expired(&self) -> u64 {
        self.expired
    }

    /// The sessions at positions `start..start + limit` of the table, in
    /// its own (unsorted) order; `embed` maps an IPv4 server to the IPv6
    /// address clients see. Paging through a table that changes in between
    /// lists every session that lives throughout exactly once, except one
    /// moved in front of the cursor by a removal (an index map fills the
    /// hole a removal leaves with its last entry).
    pub(crate) fn sessions_page(
        &self,
        start: usize,
        limit: usize,
        embed: impl Fn(Ipv4Addr) -> Ipv6Addr,
        out: &mut Vec<SessionEntry>,
    ) {
        let end = start.saturating_add(limit).min(self.sessions.len());
        let Some(page) = self.sessions.get_range(start.min(end)..end) else {
            return;
        };
        out.extend(page.iter().map(|(k, s)| {
            let icmp = k.bind.proto == L4Proto::Icmp;
            let v6_server_port = if icmp { k.bind.port } else { k.server_port };
            let v4_server_port = if icmp {
                s.v4_local.port()
            } else {
                k.server_port
            };
            SessionEntry {
                proto: k.bind.proto,
                v6_client: SocketAddrV6::new(k.bind.addr, k.bind.port, 0, 0),
                v6_server: SocketAddrV6::new(embed(k.server), v6_server_port, 0, 0),
                v4_local: s.v4_local,
                v4_server: SocketAddrV4::new(k.server, v4_server_port),
                tcp_state: s.tcp.map(|t| t.state),
                expires: s.expires,
            }
        }));
    }

    /// The bindings at positions `start..start + limit`, as [`Self::sessions_page`].
    pub(crate) fn bib_page(&self, start: usize, limit: usize, out: &mut Vec<BibEntry>) {
        let end = start.saturating_add(limit).min(self.bib6.len());
        let Some(page) = self.bib6.get_range(start.min(end)..end) else {
            return;
        };
        out.extend(page.iter().map(|(k, b)| BibEntry {
            proto: k.proto,
            v6_client: SocketAddrV6::new(k.addr, k.port, 0, 0),
            v4_local: b.v4,
            is_static: b.is_static,
            sessions: b.sessions,
        }));
    }
}

/// `now + lifetime`, or the latest instant the clock can hold: a lifetime
/// too long for `Instant` means "never", not a panic.
fn expiry(now: Instant, lifetime: std::time::Duration) -> Instant {
    now.checked_add(lifetime).unwrap_or_else(|| {
        // Halve until it fits: the result is still centuries away.
        let mut d = lifetime;
        loop {
            d /= 2;
            if let Some(t) = now.checked_add(d) {
                return t;
            }
        }
    })
}

fn lifetime(t: &Timeouts, proto: L4Proto, tcp: Option<&TcpTrack>) -> std::time::Duration {
    match (proto, tcp) {
        (L4Proto::Udp, _) => t.udp,
        (L4Proto::Icmp, _) => t.icmp,
        (L4Proto::Tcp, Some(tcp)) => tcp.lifetime(t),
        (L4Proto::Tcp, None) => t.tcp_transitory,
    }
}

#[cfg(test)]
mod tests;
