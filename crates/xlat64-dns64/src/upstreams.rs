//! Health and round-trip estimates of the upstream servers, shared by every
//! [`Resolution`](crate::Resolution): which server to ask first, which one
//! to probe again, and when one goes down or comes back.
//!
//! - Round trips are smoothed as RFC 6298 §2 does for TCP's retransmission
//!   timer (SRTT, RTTVAR, α = 1/8, β = 1/4), per server, as Unbound's
//!   infrastructure cache keeps them; a server never measured counts as
//!   [`UNKNOWN_RTT`] (Unbound's 376 ms), so the configured order holds
//!   until measurements say otherwise.
//! - A failed try (timeout, error) makes a server *suspect*: it is asked
//!   after every server without failures. [`DOWN_AFTER`] failures in a row
//!   make it *down* (one [`UpstreamEvent`]). A failure of a try sent before
//!   the server's previous failure says nothing new (the queries in flight
//!   when a server dies all time out together) and is not counted.
//! - A suspect or down server is probed again after a backoff that doubles
//!   with each failure, from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`] (RFC 6298
//!   §5.5's doubling): a resolution sends a copy of its query there besides
//!   the one to the best server ([`Upstreams::take_probe`]), so that the
//!   server comes back without a client waiting on it. Any answer brings a
//!   server back at once.
//! - The wait for one try stays `upstream-timeout-ms`; it is not cut to an
//!   RTO from SRTT as RFC 6298 §2 would for TCP: an upstream of a DNS64 is
//!   a recursive resolver, which answers from its cache in a millisecond
//!   and after a cold recursion in a second, so a timeout from its SRTT
//!   would fail over on every cold name and demote healthy servers.
//!   Ordering by health is what spares clients the dead server's timeout.
//!
//! Pure: every call takes `now`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The round trip assumed for a server never measured (Unbound's
/// `UNKNOWN_SERVER_NICENESS`).
pub const UNKNOWN_RTT: Duration = Duration::from_millis(376);
/// Consecutive failures after which a server is down.
pub const DOWN_AFTER: u32 = 2;
/// The wait before a failed server is probed for the first time.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two probes of a failed server.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A probe not reported for this long is taken as lost (its resolution was
/// dropped), so that the server is probed again.
const PROBE_LOST: Duration = Duration::from_secs(120);

/// One server's state.
#[derive(Debug, Clone)]
struct Upstream {
    addr: SocketAddr,
    srtt: Option<Duration>,
    rttvar: Duration,
    /// Consecutive counted failures; 0: healthy.
    failures: u32,
    /// The last counted failure.
    failed_at: Option<Instant>,
    /// When a probe may go out (with `failures > 0`).
    retry_at: Option<Instant>,
    /// A probe in flight since then.
    probing_since: Option<Instant>,
}

impl Upstream {
    fn new(addr: SocketAddr) -> Self {
        Upstream {
            addr,
            srtt: None,
            rttvar: Duration::ZERO,
            failures: 0,
            failed_at: None,
            retry_at: None,
            probing_since: None,
        }
    }

    fn is_down(&self) -> bool {
        self.failures >= DOWN_AFTER
    }

    /// RFC 6298 §2.2 (first measurement) and §2.3 (later ones).
    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + rtt / 8);
            }
        }
    }
}

/// A change of a server's state, one per transition: what the daemon logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// [`DOWN_AFTER`] failures in a row; probed again after `retry_in`.
    Down {
        /// The server.
        addr: SocketAddr,
        /// When it will be probed.
        retry_in: Duration,
    },
    /// A down server answered again.
    Up {
        /// The server.
        addr: SocketAddr,
    },
}

/// What `stats` shows of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The server.
    pub addr: SocketAddr,
    /// False after [`DOWN_AFTER`] failures in a row, until it answers.
    pub up: bool,
    /// Smoothed round trip (RFC 6298 SRTT); `None` before any answer.
    pub srtt: Option<Duration>,
    /// Round-trip variation (RFC 6298 RTTVAR).
    pub rttvar: Duration,
    /// Consecutive failures counted.
    pub failures: u32,
}

/// The upstream servers' health, shared by the resolutions.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    servers: Vec<Upstream>,
    events: VecDeque<UpstreamEvent>,
}

impl Upstreams {
    /// The servers, in their configured order, none measured yet.
    pub fn new(addrs: &[SocketAddr]) -> Self {
        Upstreams {
            servers: addrs.iter().copied().map(Upstream::new).collect(),
            events: VecDeque::new(),
        }
    }

    /// Changes the list (a reload): servers kept keep their state, new ones
    /// start unmeasured, in the new order.
    pub fn set_servers(&mut self, addrs: &[SocketAddr]) {
        let mut old = std::mem::take(&mut self.servers);
        self.servers = addrs
            .iter()
            .map(|&addr| match old.iter().position(|u| u.addr == addr) {
                Some(i) => old.swap_remove(i),
                None => Upstream::new(addr),
            })
            .collect();
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The order in which a question tries the servers: those without
    /// failures by SRTT, then suspect and down ones by their failures;
    /// ties in the configured order.
    pub fn order(&self) -> Vec<SocketAddr> {
        let mut order: Vec<(u32, Duration, usize)> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, u)| (u.failures, u.srtt.unwrap_or(UNKNOWN_RTT), i))
            .collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, _, i)| self.servers[i].addr)
            .collect()
    }

    /// A failed server other than `besides` whose backoff has passed and
    /// that no other resolution is probing: the caller sends it a copy of
    /// its query and reports the result with `probe` set.
    pub fn take_probe(&mut self, now: Instant, besides: SocketAddr) -> Option<SocketAddr> {
        let u = self.servers.iter_mut().find(|u| {
            u.addr != besides
                && u.failures > 0
                && u.retry_at.is_some_and(|t| t <= now)
                && u.probing_since
                    .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_LOST)
        })?;
        u.probing_since = Some(now);
        Some(u.addr)
    }

    /// An answer from `addr` after `rtt` (the try's probe flag in `probe`):
    /// the server is healthy.
    pub fn handle_answer(&mut self, addr: SocketAddr, rtt: Duration, probe: bool) {
        let Some(u) = self.servers.iter_mut().find(|u| u.addr == addr) else {
            return;
        };
        u.sample(rtt);
        if probe {
            u.probing_since = None;
        }
        if u.is_down() {
            self.events.push_back(UpstreamEvent::Up { addr });
        }
        u.failures = 0;
        u.failed_at = None;
        u.retry_at = None;
    }

    /// A try to `addr` sent at `sent` failed at `now` (timeout or error).
    pub fn handle_failure(&mut self, addr: SocketAddr, sent: Instant, now: Instant, probe: bool) {
        let Some(u) = self.servers.iter_mut().find(|u| u.addr == addr) else {
            return;
        };
        if probe {
            u.probing_since = None;
        }
        if u.failed_at.is_some_and(|t| sent < t) {
            return;
        }
        let was_down = u.is_down();
        u.failures = u.failures.saturating_add(1);
        u.failed_at = Some(now);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (u.failures - 1).min(16))
            .min(MAX_BACKOFF);
        u.retry_at = Some(now + backoff);
        if u.is_down() && !was_down {
            self.events.push_back(UpstreamEvent::Down {
                addr,
                retry_in: backoff,
            });
        }
    }

    /// A probe of `addr` ended without a result (its resolution gave it
    /// up): another resolution may probe.
    pub fn end_probe(&mut self, addr: SocketAddr) {
        if let Some(u) = self.servers.iter_mut().find(|u| u.addr == addr) {
            u.probing_since = None;
        }
    }

    /// The next state change, oldest first.
    pub fn poll_event(&mut self) -> Option<UpstreamEvent> {
        self.events.pop_front()
    }

    /// Every server's state, in the configured order.
    pub fn status(&self) -> impl Iterator<Item = UpstreamStatus> + '_ {
        self.servers.iter().map(|u| UpstreamStatus {
            addr: u.addr,
            up: !u.is_down(),
            srtt: u.srtt,
            rttvar: u.rttvar,
            failures: u.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, i], 53))
    }

    #[test]
    fn configured_order_until_measured_then_by_srtt() {
        let mut u = Upstreams::new(&[addr(1), addr(2)]);
        assert_eq!(u.order(), vec![addr(1), addr(2)]);
        u.handle_answer(addr(2), Duration::from_millis(5), false);
        assert_eq!(u.order(), vec![addr(2), addr(1)]);
        u.handle_answer(addr(1), Duration::from_millis(1), false);
        assert_eq!(u.order(), vec![addr(1), addr(2)]);
    }

    #[test]
    fn rfc6298_2_srtt_and_rttvar() {
        let mut u = Upstreams::new(&[addr(1)]);
        u.handle_answer(addr(1), Duration::from_millis(80), false);
        let s = u.status().next().unwrap();
        assert_eq!(s.srtt, Some(Duration::from_millis(80)));
        assert_eq!(s.rttvar, Duration::from_millis(40));
        u.handle_answer(addr(1), Duration::from_millis(160), false);
        let s = u.status().next().unwrap();
        // RTTVAR = 3/4 * 40 + 1/4 * |80 - 160| = 50; SRTT = 7/8 * 80 + 1/8 * 160 = 90.
        assert_eq!(s.rttvar, Duration::from_millis(50));
        assert_eq!(s.srtt, Some(Duration::from_millis(90)));
    }

    #[test]
    fn failures_demote_then_down_once_with_doubling_backoff() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut u = Upstreams::new(&[addr(1), addr(2)]);
        u.handle_answer(addr(1), Duration::from_millis(1), false);
        u.handle_failure(addr(1), t0, t0 + s(2), false);
        // Suspect: asked last, no event; tries sent before the failure
        // (in flight together) add nothing.
        assert_eq!(u.order(), vec![addr(2), addr(1)]);
        u.handle_failure(addr(1), t0, t0 + s(2), false);
        assert_eq!(u.status().next().unwrap().failures, 1);
        assert_eq!(u.poll_event(), None);
        // Probed after the first backoff, not before, and by one at a time.
        assert_eq!(u.take_probe(t0 + s(2), addr(2)), None);
        assert_eq!(u.take_probe(t0 + s(3), addr(2)), Some(addr(1)));
        assert_eq!(u.take_probe(t0 + s(3), addr(2)), None);
        u.handle_failure(addr(1), t0 + s(3), t0 + s(5), true);
        assert_eq!(
            u.poll_event(),
            Some(UpstreamEvent::Down {
                addr: addr(1),
                retry_in: s(2)
            })
        );
        assert!(!u.status().next().unwrap().up);
        assert_eq!(u.take_probe(t0 + s(6), addr(2)), None);
        assert_eq!(u.take_probe(t0 + s(7), addr(2)), Some(addr(1)));
        u.handle_failure(addr(1), t0 + s(7), t0 + s(9), true);
        assert_eq!(u.poll_event(), None, "one line per state change");
        assert_eq!(u.take_probe(t0 + s(12), addr(2)), None);
        assert_eq!(u.take_probe(t0 + s(13), addr(2)), Some(addr(1)));
        u.handle_answer(addr(1), Duration::from_millis(3), true);
        assert_eq!(u.poll_event(), Some(UpstreamEvent::Up { addr: addr(1) }));
        assert!(u.status().next().unwrap().up);
        assert_eq!(u.take_probe(t0 + s(100), addr(2)), None);
    }

    #[test]
    fn backoff_is_capped_and_a_lost_probe_is_retried() {
        let t0 = Instant::now();
        let mut u = Upstreams::new(&[addr(1), addr(2)]);
        let mut t = t0;
        for _ in 0..40 {
            u.handle_failure(addr(1), t, t, false);
            t += Duration::from_millis(1);
        }
        assert_eq!(
            u.take_probe(t + MAX_BACKOFF - Duration::from_millis(2), addr(2)),
            None
        );
        let due = t + MAX_BACKOFF;
        assert_eq!(u.take_probe(due, addr(2)), Some(addr(1)));
        assert_eq!(u.take_probe(due + PROBE_LOST / 2, addr(2)), None);
        assert_eq!(u.take_probe(due + PROBE_LOST, addr(2)), Some(addr(1)));
        u.end_probe(addr(1));
        assert_eq!(u.take_probe(due + PROBE_LOST, addr(2)), Some(addr(1)));
        // Never the server the query goes to anyway.
        assert_eq!(u.take_probe(due + PROBE_LOST * 3, addr(1)), None);
    }

    #[test]
    fn reload_keeps_known_servers() {
        let mut u = Upstreams::new(&[addr(1), addr(2)]);
        u.handle_answer(addr(2), Duration::from_millis(7), false);
        u.set_servers(&[addr(3), addr(2)]);
        let s: Vec<_> = u.status().collect();
        assert_eq!(s[0].addr, addr(3));
        assert_eq!(s[0].srtt, None);
        assert_eq!(s[1].srtt, Some(Duration::from_millis(7)));
        // Reports about servers no longer configured are ignored.
        u.handle_answer(addr(1), Duration::from_millis(1), false);
        assert_eq!(u.status().count(), 2);
    }
}
