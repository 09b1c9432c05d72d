//! Per-client query rate limiting: one token bucket per client (a
//! [`ClientId`]: an IPv4 address, an IPv6 /64 by default), so that a flood
//! from one client cannot take the server's time from the others.
//!
//! Bounded whatever arrives: the buckets are a fixed table, indexed by a
//! keyed hash of the client (a seed the caller draws at random, so that
//! nobody outside can pick addresses that land in a victim's bucket). A
//! spoofed flood from millions of addresses fills no memory; two clients
//! whose hashes meet share one bucket and so one rate. That is the price of
//! the bound, and small: with [`DEFAULT_BUCKETS`] buckets a client shares
//! its bucket with a flooding one with probability 1 in 16384 per flooder.
//!
//! Each bucket is the GCRA form of a token bucket (ITU-T I.371): one
//! number, the theoretical arrival time of the next query; a query passes
//! when that time is no further ahead than the burst allows. No clock is
//! read and nothing is allocated per query: `now` comes from the caller.
//!
//! One table serves every socket and thread of the server, so that a
//! client's rate is the configured one however the kernel spreads its
//! datagrams: each bucket is an atomic updated by compare-and-swap, with
//! no lock (contended only when two threads see the same client at once).
//!
//! Over the limit, a query is dropped, except that every `slip`-th one gets
//! a truncated reply (TC=1) instead, as BIND's response rate limiting does
//! (its `slip`), so that a real client behind a busy address is told to
//! retry over TCP (RFC 7766 §5), where a spoofed source cannot follow.

use crate::clients::ClientId;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The table size the server uses: 16384 buckets of 8 bytes.
pub const DEFAULT_BUCKETS: usize = 16384;

/// The limit each client is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Queries per second, sustained; 0 turns the limit off.
    pub per_second: u32,
    /// Queries a client that was quiet may send at once (at least 1).
    pub burst: u32,
    /// Every `slip`-th query over the limit gets a TC=1 reply instead of
    /// nothing; 0: all are dropped.
    pub slip: u32,
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum RateVerdict {
    /// Within the limit: answer it.
    Pass,
    /// Over the limit: drop it, no reply.
    Drop,
    /// Over the limit, but its turn to slip: a TC=1 reply, so that a real
    /// client retries over TCP.
    Slip,
}

/// The buckets of every client, a fixed table shared by every thread.
#[derive(Debug)]
pub struct ClientRateLimiter {
    /// Per bucket, the theoretical arrival time of its next query, in
    /// nanoseconds after `origin`; 0: unused (or long idle, the same).
    tat: Box<[AtomicU64]>,
    /// `tat.len() - 1`: the length is a power of two.
    mask: usize,
    hasher: FixedState,
    /// Times are kept as offsets from this one (the caller's `now` at
    /// creation).
    origin: Instant,
    /// Queries over the limit so far, for `slip`.
    over: AtomicU32,
}

impl ClientRateLimiter {
    /// A table of `buckets` buckets (rounded up to a power of two, at least
    /// 1), indexed by a hash keyed with `seed`, counting time from `now`.
    pub fn new(buckets: usize, seed: u64, now: Instant) -> Self {
        let n = buckets.max(1).next_power_of_two();
        ClientRateLimiter {
            tat: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            hasher: FixedState::with_seed(seed),
            origin: now,
            over: AtomicU32::new(0),
        }
    }

    /// Counts one query of `client` at `now` against `limit`.
    pub fn check(&self, client: ClientId, limit: RateLimit, now: Instant) -> RateVerdict {
        if limit.per_second == 0 {
            return RateVerdict::Pass;
        }
        // Offset by one interval so that 0 stays "unused"; saturating,
        // as the caller's clock may step back.
        let interval = 1_000_000_000 / u64::from(limit.per_second);
        let now_ns =
            duration_ns(now.saturating_duration_since(self.origin)).saturating_add(interval);
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let slot = &self.tat[(self.hasher.hash_one(client) as usize) & self.mask];
        let mut tat = slot.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_ns).saturating_add(interval);
            if next - now_ns > tolerance {
                break;
            }
            // Relaxed: the bucket is the only data; nothing else is
            // published through it.
            match slot.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return RateVerdict::Pass,
                Err(seen) => tat = seen,
            }
        }
        let over = self.over.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if limit.slip != 0 && over % limit.slip == 0 {
            RateVerdict::Slip
        } else {
            RateVerdict::Drop
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn client(s: &str) -> ClientId {
        ClientId::new(s.parse::<IpAddr>().unwrap(), 64)
    }

    const LIMIT: RateLimit = RateLimit {
        per_second: 100,
        burst: 10,
        slip: 0,
    };

    /// How many of `n` queries sent `every` apart pass.
    fn passed(l: &ClientRateLimiter, c: ClientId, start: Instant, n: u32, every: Duration) -> u32 {
        (0..n)
            .filter(|&i| l.check(c, LIMIT, start + every * i) == RateVerdict::Pass)
            .count() as u32
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let l = ClientRateLimiter::new(1024, 7, t0);
        let c = client("2001:db8:1::1");
        assert_eq!(passed(&l, c, t0, 50, Duration::ZERO), 10, "burst");
        // Quiet for 1 s, the bucket is full again: over the next 999 ms,
        // the burst and 99 at the rate.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            passed(&l, c, t1, 1000, Duration::from_micros(1000)),
            10 + 99
        );
        // Queries at the rate all pass.
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(passed(&l, c, t2, 500, Duration::from_millis(10)), 500);
    }

    #[test]
    fn one_flooding_client_does_not_limit_another() {
        let t0 = Instant::now();
        let l = ClientRateLimiter::new(DEFAULT_BUCKETS, 0x5eed, t0);
        let flood = client("2001:db8:1::1");
        let other = client("2001:db8:2::1");
        let mut others = 0;
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            let _ = l.check(flood, LIMIT, now);
            if i % 100 == 0 {
                others += u32::from(l.check(other, LIMIT, now) == RateVerdict::Pass);
            }
        }
        assert_eq!(others, 100, "100 queries at 100/s all pass");
        // The same /64 is the same client: its bucket is spent.
        let same = client("2001:db8:1::2");
        assert!(passed(&l, same, t0 + Duration::from_secs(1), 20, Duration::ZERO) <= 1);
    }

    /// Threads sharing the table share each client's bucket: four threads
    /// sending one client's queries at one instant pass its burst once,
    /// not four times.
    #[test]
    fn shared_by_threads_a_burst_is_not_multiplied() {
        let t0 = Instant::now();
        let l = ClientRateLimiter::new(DEFAULT_BUCKETS, 9, t0);
        let c = client("2001:db8:1::1");
        let passes: u32 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| passed(&l, c, t0, 1000, Duration::ZERO)))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(passes, LIMIT.burst);
    }

    #[test]
    fn slip_answers_every_nth_query_over_the_limit() {
        let t0 = Instant::now();
        let l = ClientRateLimiter::new(16, 1, t0);
        let c = client("192.0.2.1");
        let limit = RateLimit { slip: 3, ..LIMIT };
        let verdicts: Vec<_> = (0..19).map(|_| l.check(c, limit, t0)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == RateVerdict::Pass));
        let slipped = verdicts[10..]
            .iter()
            .filter(|v| **v == RateVerdict::Slip)
            .count();
        assert_eq!(slipped, 3, "{verdicts:?}");
    }

    #[test]
    fn off_passes_everything_and_a_step_back_in_time_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let l = ClientRateLimiter::new(0, 1, t0);
        let c = client("192.0.2.1");
        let off = RateLimit {
            per_second: 0,
            ..LIMIT
        };
        assert!((0..1000).all(|_| l.check(c, off, t0) == RateVerdict::Pass));
        assert_eq!(passed(&l, c, t0, 20, Duration::ZERO), 10);
        assert_eq!(
            l.check(c, LIMIT, t0 - Duration::from_secs(5)),
            RateVerdict::Drop
        );
        assert_eq!(
            l.check(c, LIMIT, t0 + Duration::from_secs(1)),
            RateVerdict::Pass
        );
    }

    proptest! {
        /// Over any window, no client passes more than burst + rate × time
        /// (+1 for the edges), whatever the arrival pattern; and the
        /// table never grows.
        #[test]
        fn never_more_than_burst_plus_rate(
            gaps in prop::collection::vec(0u64..20_000, 1..2000),
            clients in prop::collection::vec(0u8..8, 1..2000),
            per_second in 1u32..5000,
            burst in 1u32..50,
        ) {
            let limit = RateLimit { per_second, burst, slip: 0 };
            let t0 = Instant::now();
            let l = ClientRateLimiter::new(64, 3, t0);
            let mut now = t0;
            let mut passes = [0u64; 8];
            for (gap, &c) in gaps.iter().zip(clients.iter().cycle()) {
                now += Duration::from_micros(*gap);
                let id = ClientId::new(IpAddr::from([192, 0, 2, c]), 64);
                if l.check(id, limit, now) == RateVerdict::Pass {
                    passes[usize::from(c)] += 1;
                }
            }
            let elapsed = now.duration_since(t0).as_secs_f64();
            let bound = f64::from(burst) + f64::from(per_second) * elapsed + 1.0;
            // Clients sharing a bucket share one bound: each is within it.
            for p in passes {
                prop_assert!(p as f64 <= bound, "{p} > {bound}");
            }
            prop_assert_eq!(l.tat.len(), 64);
        }
    }
}
