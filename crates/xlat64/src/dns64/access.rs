//! Access control before resources: who may use the server is decided
//! before anything is spent on a message or a connection.
//!
//! - UDP ([`UdpGate`]): a client outside `allow` is answered REFUSED from
//!   the query's own bytes ([`wire::short_reply`]), or not at all when the
//!   datagram is not a well-formed query (`refused_malformed`); an allowed
//!   client is then held to `queries-per-second-per-client`
//!   ([`ClientRateLimiter`]); both before the cache lookup.
//! - TCP ([`TcpClients`]): a connection from outside `allow` is closed at
//!   accept, and a client holds at most `tcp-connections-per-client`
//!   connections at once (RFC 7766 §6.2.2: servers may limit concurrent
//!   connections per client), so that nobody takes the listener's whole
//!   share.
//!
//! A client is an IPv4 address or an IPv6 `client-prefix` ([`ClientId`]).

use super::engine::Engine;
use super::Dns64Counters;
use crate::config::Dns64Section;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use xlat64_dns64::{wire, ClientId, ClientRateLimiter, RateLimit, RateVerdict, DEFAULT_BUCKETS};

/// RCODE REFUSED (RFC 1035 §4.1.1).
const RCODE_REFUSED: u8 = 5;

/// The access keys of `[dns64]`, part of the engine's settings (so a
/// reload changes them with the rest).
pub(super) struct AccessSettings {
    /// `client-prefix`: IPv6 clients are counted per prefix this long.
    pub(super) client_prefix: u8,
    /// `tcp-connections-per-client`.
    pub(super) tcp_per_client: usize,
    /// `tcp-idle-timeout-ms`.
    pub(super) tcp_idle: Duration,
    /// `queries-per-second-per-client`, `queries-burst-per-client`,
    /// `rate-limit-slip`.
    pub(super) rate: RateLimit,
}

impl AccessSettings {
    pub(super) fn from_section(section: &Dns64Section) -> Self {
        AccessSettings {
            client_prefix: section.client_prefix,
            tcp_per_client: section.tcp_connections_per_client,
            tcp_idle: Duration::from_millis(section.tcp_idle_timeout_ms),
            rate: RateLimit {
                per_second: section.queries_per_second_per_client,
                burst: section.queries_burst_per_client,
                slip: section.rate_limit_slip,
            },
        }
    }

    /// The client `addr` counts as.
    pub(super) fn client(&self, addr: IpAddr) -> ClientId {
        ClientId::new(addr, self.client_prefix)
    }
}

/// What the UDP receive loop does with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Go on: the cache, then the engine.
    Pass,
    /// Send what was written into the reply buffer (REFUSED, or TC=1 for
    /// a rate-limited client); counted.
    Reply,
    /// Drop it, no reply; counted.
    Drop,
}

/// The checks every datagram passes before the cache: `allow`, then the
/// client's rate. One for the whole server, shared by every UDP socket and
/// thread (the buckets are atomics), so that a client gets its configured
/// rate however the kernel spreads its datagrams over the sockets of an
/// address (`io-threads`) or over several addresses.
pub(super) struct UdpGate {
    limiter: ClientRateLimiter,
}

impl UdpGate {
    pub(super) fn new() -> Self {
        UdpGate {
            limiter: ClientRateLimiter::new(
                DEFAULT_BUCKETS,
                RandomState::new().hash_one(0x7766_u32),
                Instant::now(),
            ),
        }
    }

    /// Checks `query` from `peer` at `now`; for [`Admission::Reply`] the
    /// reply is in `out`.
    pub(super) fn admit(
        &self,
        engine: &Engine,
        query: &[u8],
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Admission {
        let c = &engine.counters;
        let s = engine.settings();
        if !s.allow.contains(peer) {
            return match wire::short_reply(query, RCODE_REFUSED, false, out) {
                Ok(()) => {
                    Dns64Counters::inc(&c.queries);
                    Dns64Counters::inc(&c.refused);
                    Admission::Reply
                }
                Err(_) => {
                    Dns64Counters::inc(&c.refused_malformed);
                    Admission::Drop
                }
            };
        }
        let access = &s.access;
        match self.limiter.check(access.client(peer), access.rate, now) {
            RateVerdict::Pass => Admission::Pass,
            RateVerdict::Slip if wire::short_reply(query, 0, true, out).is_ok() => {
                Dns64Counters::inc(&c.rate_limited_slipped);
                Admission::Reply
            }
            RateVerdict::Slip | RateVerdict::Drop => {
                Dns64Counters::inc(&c.dropped_rate_limited);
                Admission::Drop
            }
        }
    }
}

/// The TCP connections each client holds open, shared by a listener and
/// its connections: a connection takes a [`TcpSlot`] at accept and gives
/// it back when it ends, however it ends.
#[derive(Default)]
pub(super) struct TcpClients {
    open: Mutex<HashMap<ClientId, usize>>,
}

/// One open connection of `client`; dropping it gives the slot back.
pub(super) struct TcpSlot {
    clients: Arc<TcpClients>,
    client: ClientId,
}

impl TcpClients {
    /// A slot for one more connection of `client`, or `None` when it holds
    /// `limit` already. The table holds only clients with connections
    /// open: at most the listener's connection limit.
    pub(super) fn take(self: &Arc<Self>, client: ClientId, limit: usize) -> Option<TcpSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(&client).is_some_and(|&n| n >= limit) || limit == 0 {
            return None;
        }
        *open.entry(client).or_insert(0) += 1;
        Some(TcpSlot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        let mut open = self
            .clients
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}
