//! Expiry of sessions: one queue per [`TimerClass`], in the order the
//! sessions expire, linked through the sessions (8 bytes each).
//!
//! Sessions of one class share a lifetime, so a queue ordered by "last
//! packet" is ordered by expiry: the due sessions are at the heads, and
//! nothing is sorted or searched. Time is kept in ticks of [`TICK`]: a packet
//! moves its session to the tail of its queue only when the tick changed
//! since the last move (or its class did), so a busy flow touches its
//! neighbours a few times per second, not on every packet. A session
//! expires at the end of its tick plus the lifetime: never earlier than
//! the lifetime after its last packet, at most one tick later.

use super::chain_index::{link_to, Link};
use super::entries::{Session, TimerClass};
use super::slab::Slab;
use std::time::{Duration, Instant};

/// The clock's resolution: a u32 of ticks lasts 34 years of uptime.
pub(super) const TICK: Duration = crate::EXPIRY_RESOLUTION;

/// Ticks since the first packet, never going back.
#[derive(Debug, Default)]
pub(super) struct Clock {
    epoch: Option<Instant>,
    latest: u32,
}

impl Clock {
    /// The tick of `now` (the latest tick seen, if `now` is earlier).
    pub(super) fn tick(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        let ticks = now.saturating_duration_since(epoch).as_nanos() / TICK.as_nanos();
        self.latest = self.latest.max(u32::try_from(ticks).unwrap_or(u32::MAX));
        self.latest
    }

    /// When a session last moved at `tick` expires with `lifetime`; a
    /// deadline beyond what `Instant` holds is the latest it can hold.
    /// `None` before the first tick (no session can exist then).
    pub(super) fn deadline(&self, tick: u32, lifetime: Duration) -> Option<Instant> {
        let end_of_tick = TICK * tick + TICK;
        Some(far_future(
            self.epoch?,
            end_of_tick.saturating_add(lifetime),
        ))
    }
}

/// `from + d`, or the latest instant the clock can hold: a lifetime too long
/// for `Instant` means "never", not a panic.
pub(super) fn far_future(from: Instant, d: Duration) -> Instant {
    from.checked_add(d).unwrap_or_else(|| {
        // Halve until it fits: the result is still centuries away.
        let mut d = d;
        loop {
            d /= 2;
            if let Some(t) = from.checked_add(d) {
                return t;
            }
        }
    })
}

#[derive(Debug, Default, Clone, Copy)]
struct Queue {
    head: Link,
    tail: Link,
}

/// The queues of every class.
#[derive(Debug, Default)]
pub(super) struct ExpiryQueues {
    queues: [Queue; 4],
}

impl ExpiryQueues {
    /// The session that expires first in `class`.
    pub(super) fn head(&self, class: TimerClass) -> Option<u32> {
        self.queues[class.index()].head.checked_sub(1)
    }

    /// Puts `slot` at the tail of its class's queue.
    pub(super) fn push(&mut self, slab: &mut Slab<Session>, slot: u32) {
        let s = slab.get_mut(slot);
        let q = &mut self.queues[s.timer_class().index()];
        s.prev = q.tail;
        s.next = 0;
        if q.tail == 0 {
            q.head = link_to(slot);
        } else {
            slab.get_mut(q.tail - 1).next = link_to(slot);
        }
        q.tail = link_to(slot);
    }

    /// Takes `slot` out of the queue of `class` (its class when queued).
    pub(super) fn unlink(&mut self, slab: &mut Slab<Session>, slot: u32, class: TimerClass) {
        let q = &mut self.queues[class.index()];
        let s = slab.get(slot);
        let (prev, next) = (s.prev, s.next);
        if prev == 0 {
            q.head = next;
        } else {
            slab.get_mut(prev - 1).next = next;
        }
        if next == 0 {
            q.tail = prev;
        } else {
            slab.get_mut(next - 1).prev = prev;
        }
    }

    /// Before the slab moves the session in `from` to `to`: its neighbours
    /// (or the queue's ends) point to `to`.
    pub(super) fn relocate(&mut self, slab: &mut Slab<Session>, from: u32, to: u32) {
        let s = slab.get(from);
        let (prev, next) = (s.prev, s.next);
        let q = &mut self.queues[s.timer_class().index()];
        if prev == 0 {
            q.head = link_to(to);
        } else {
            slab.get_mut(prev - 1).next = link_to(to);
        }
        if next == 0 {
            q.tail = link_to(to);
        } else {
            slab.get_mut(next - 1).prev = link_to(to);
        }
    }
}
