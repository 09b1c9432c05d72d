//! The stateful translator: prefix + tables + RFC 7915 translation.

use crate::{BibEntry, Pool4, SessionEntry, Timeouts};
use std::time::Instant;
use xlat64_packet::{DropReason, Prefix6052};

/// Static configuration of a stateful NAT64.
#[derive(Debug, Clone)]
pub struct Nat64Config {
    /// Translation prefix (RFC 6052).
    pub prefix: Prefix6052,
    /// IPv4 pool.
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
}

impl NatDrop {
    /// The NAT-specific reasons (the packet ones are `DropReason::ALL`).
    pub const NAT_ONLY: [NatDrop; 6] = [
        NatDrop::NotInPrefix,
        NatDrop::NonGlobalUnderWellKnown,
        NatDrop::NotInPool4,
        NatDrop::NoBinding,
        NatDrop::TcpNoSession,
        NatDrop::PoolExhausted,
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
pub struct Nat64 {
    config: Nat64Config,
}

impl Nat64 {
    /// A NAT64 with empty tables.
    pub fn new(config: Nat64Config) -> Self {
        todo!()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Nat64Config {
        &self.config
    }

    /// An IPv6 packet from a client (RFC 6146 §3.5, IPv6 -> IPv4): finds or
    /// creates the binding and session, writes the IPv4 packet into `out`.
    pub fn handle_v6(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        todo!()
    }

    /// An IPv4 packet from the IPv4 side (RFC 6146 §3.5, IPv4 -> IPv6): only
    /// packets matching a session are let in; writes the IPv6 packet into `out`.
    pub fn handle_v4(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        todo!()
    }

    /// The earliest time a session may expire, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Removes sessions (and bindings left without sessions) that expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }

    /// Snapshot of the session table.
    pub fn sessions(&self) -> Vec<SessionEntry> {
        todo!()
    }

    /// Snapshot of the BIB.
    pub fn bib(&self) -> Vec<BibEntry> {
        todo!()
    }
}
