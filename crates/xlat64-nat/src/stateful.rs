//! The stateful translator: prefix + tables + RFC 7915 translation.

use crate::session_table::SessionTable;
use crate::{BibEntry, Pool4, SessionEntry, Timeouts};
use std::hash::{BuildHasher, RandomState};
use std::net::{SocketAddrV4, SocketAddrV6};
use std::time::Instant;
use xlat64_packet::special::allowed_under_well_known;
use xlat64_packet::{
    parse_v4, parse_v6, translate_4to6, translate_6to4, DropReason, L4Proto, Prefix6052,
};

/// Static configuration of a stateful NAT64.
#[derive(Debug, Clone)]
pub struct Nat64Config {
    /// Translation prefix (RFC 6052).
    pub prefix: Prefix6052,
    /// IPv4 pool (with its port and ICMP identifier ranges).
    pub pool4: Pool4,
    /// Session lifetimes.
    pub timeouts: Timeouts,
}

/// Why the NAT dropped a packet that parsed fine, or the translator's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatDrop {
    /// The packet itself could not be translated.
    Packet(DropReason),
    /// IPv6 destination is not under the translation prefix.
    NotInPrefix,
    /// Non-global IPv4 under the well-known prefix (RFC 6052 §3.1).
    NonGlobalUnderWellKnown,
    /// IPv4 destination is not a pool4 address.
    NotInPool4,
    /// IPv4 packet matches no binding/session (RFC 6146 §3.5: unsolicited).
    NoBinding,
    /// A TCP segment other than SYN with no session (RFC 6146 §3.5.2).
    TcpNoSession,
    /// No free port/identifier left in pool4.
    PoolExhausted,
    /// IPv4 packet for an existing binding from a server address the client
    /// has no session with (address-dependent filtering, RFC 4787 §5).
    Filtered,
    /// IPv4 TCP SYN for an existing binding without a session (RFC 6146
    /// §3.5.2.2 simultaneous open is not handled yet).
    TcpInboundSyn,
    /// IPv6 packet to a pool4 address under the prefix (RFC 6146 §3.8
    /// hairpinning is not handled yet).
    Hairpinning,
}

impl NatDrop {
    /// The NAT-specific reasons (the packet ones are `DropReason::ALL`).
    pub const NAT_ONLY: [NatDrop; 9] = [
        NatDrop::NotInPrefix,
        NatDrop::NonGlobalUnderWellKnown,
        NatDrop::NotInPool4,
        NatDrop::NoBinding,
        NatDrop::TcpNoSession,
        NatDrop::PoolExhausted,
        NatDrop::Filtered,
        NatDrop::TcpInboundSyn,
        NatDrop::Hairpinning,
    ];

    /// Counter name for `xlat64 stats`.
    pub const fn counter_name(self) -> &'static str {
        match self {
            NatDrop::Packet(r) => r.counter_name(),
            NatDrop::NotInPrefix => "drop_not_in_prefix",
            NatDrop::NonGlobalUnderWellKnown => "drop_non_global_under_well_known_prefix",
            NatDrop::NotInPool4 => "drop_not_in_pool4",
            NatDrop::NoBinding => "drop_no_binding",
            NatDrop::TcpNoSession => "drop_tcp_no_session",
            NatDrop::PoolExhausted => "drop_pool4_exhausted",
            NatDrop::Filtered => "drop_filtered",
            NatDrop::TcpInboundSyn => "drop_tcp_inbound_syn",
            NatDrop::Hairpinning => "drop_hairpinning",
        }
    }
}

impl From<DropReason> for NatDrop {
    fn from(r: DropReason) -> Self {
        NatDrop::Packet(r)
    }
}

/// What to do with a packet handed to [`Nat64`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Send `out[..len]` (an IPv4 packet after `handle_v6`, IPv6 after `handle_v4`).
    Forward(usize),
    /// Drop, and count the reason.
    Drop(NatDrop),
}

/// Stateful NAT64 core.
///
/// Mapping is endpoint-independent (RFC 6146 §3.5.1.1); filtering is
/// address-dependent: an IPv4 packet gets in only when the client has a
/// session with the packet's source address (an endpoint-independent
/// filtering option is for later).
#[derive(Debug)]
pub struct Nat64 {
    config: Nat64Config,
    table: SessionTable,
    /// Identification of the next IPv4 packet (RFC 7915 §5.1).
    next_ipv4_id: u16,
}

impl Nat64 {
    /// A NAT64 with empty tables and a fresh random secret for port
    /// allocation (drawn once, from the OS, through std's `RandomState`).
    pub fn new(config: Nat64Config) -> Self {
        Self::with_seed(config, RandomState::new().hash_one(0x6146u32))
    }

    /// A NAT64 whose port allocation and IPv4 identifications follow from
    /// `seed` (deterministic, for tests and reproducible runs).
    pub fn with_seed(config: Nat64Config, seed: u64) -> Self {
        let table = SessionTable::new(config.pool4.clone(), config.timeouts, seed);
        Nat64 {
            config,
            table,
            next_ipv4_id: (seed >> 48) as u16,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Nat64Config {
        &self.config
    }

    /// An IPv6 packet from a client (RFC 6146 §3.5, IPv6 -> IPv4): finds or
    /// creates the binding and session, writes the IPv4 packet into `out`.
    pub fn handle_v6(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        match self.outbound(now, pkt, out) {
            Ok(len) => Verdict::Forward(len),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn outbound(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Result<usize, NatDrop> {
        let parsed = parse_v6(pkt)?;
        let flow = parsed.flow;
        let prefix = self.config.prefix;
        let server = prefix.extract(&flow.dst).ok_or(NatDrop::NotInPrefix)?;
        if prefix.is_well_known() && !allowed_under_well_known(server) {
            return Err(NatDrop::NonGlobalUnderWellKnown);
        }
        if self.config.pool4.contains(server) {
            return Err(NatDrop::Hairpinning);
        }
        let plan = self.table.plan_outbound(&flow, server)?;
        let src = plan.v4_local;
        let dst_port = match flow.proto {
            L4Proto::Icmp => src.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.dst_port,
        };
        let dst = SocketAddrV4::new(server, dst_port);
        let len = translate_6to4(pkt, &parsed, src, dst, self.next_ipv4_id, out)?;
        self.next_ipv4_id = self.next_ipv4_id.wrapping_add(1);
        self.table.commit_outbound(now, plan, flow.tcp_flags);
        Ok(len)
    }

    /// An IPv4 packet from the IPv4 side (RFC 6146 §3.5, IPv4 -> IPv6): only
    /// packets matching a session are let in; writes the IPv6 packet into `out`.
    ///
    /// UDP and ICMP packets from a server address the client already has a
    /// session with open a new session (address-dependent filtering); TCP
    /// only passes through an existing session.
    pub fn handle_v4(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        match self.inbound(now, pkt, out) {
            Ok(len) => Verdict::Forward(len),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn inbound(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Result<usize, NatDrop> {
        let parsed = parse_v4(pkt)?;
        let flow = parsed.flow;
        if !self.config.pool4.contains(flow.dst) {
            return Err(NatDrop::NotInPool4);
        }
        let plan = self.table.plan_inbound(&flow)?;
        let client = plan.v6_client();
        let src_port = match flow.proto {
            L4Proto::Icmp => client.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.src_port,
        };
        let src = SocketAddrV6::new(self.config.prefix.embed(flow.src), src_port, 0, 0);
        let len = translate_4to6(pkt, &parsed, src, client, out)?;
        self.table.commit_inbound(now, plan, flow.tcp_flags);
        Ok(len)
    }

    /// The earliest time a session may expire, if any. It may be earlier than
    /// any real expiry (a refreshed session is re-checked then), never later.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.poll_timeout()
    }

    /// Removes sessions (and bindings left without sessions) that expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.handle_timeout(now);
    }

    /// Snapshot of the session table, sorted by protocol, client and server.
    pub fn sessions(&self) -> Vec<SessionEntry> {
        let prefix = self.config.prefix;
        self.table.sessions(|v4| prefix.embed(v4))
    }

    /// Snapshot of the BIB, sorted by protocol and client.
    pub fn bib(&self) -> Vec<BibEntry> {
        self.table.bib()
    }

    /// Number of sessions (without building a snapshot).
    pub fn session_count(&self) -> usize {
        self.table.session_count()
    }

    /// Number of BIB entries (without building a snapshot).
    pub fn bib_count(&self) -> usize {
        self.table.bib_count()
    }

    /// Sessions created since start.
    pub fn sessions_created(&self) -> u64 {
        self.table.sessions_created()
    }

    /// Sessions removed by expiry since start.
    pub fn sessions_expired(&self) -> u64 {
        self.table.sessions_expired()
    }
}
