//! Expiry of sessions: a hashed timing wheel of [`SLOTS`] ticks, its lists
//! linked through the sessions (8 bytes each).
//!
//! A session waits in the slot of the tick it is due at ("due"). A packet
//! only records its tick in the session (a line the lookup has just read):
//! it never moves the session, so the packet path touches no other
//! session's memory. When the wheel reaches a session's slot, the session
//! expires if its real due tick (last packet plus lifetime) has come; if
//! packets came meanwhile it moves to the slot of its real due tick; if its
//! due tick is a later turn of the wheel (a lifetime beyond the wheel's
//! span) it stays. Each session is thus visited about once per lifetime
//! (long ones once per turn), and only a lifetime made shorter (a TCP RST or
//! closing FIN) moves a session at once.
//!
//! A session last active in tick `k` with lifetime `L` is due at tick
//! `k + 1 + ceil(L / TICK)`: never before `L` after its last packet, at
//! most two ticks ([`crate::EXPIRY_RESOLUTION`]) after.

use super::chain_index::{link_to, Link};
use super::entries::Session;
use super::slab::Slab;
use std::time::{Duration, Instant};

/// Ticks per second: the clock's resolution is 125 ms, and a u32 of ticks
/// lasts 17 years of uptime.
pub(super) const TICKS_PER_SECOND: u64 = 8;
const NANOS_PER_TICK: u32 = 1_000_000_000 / TICKS_PER_SECOND as u32;
/// One tick.
pub(super) const TICK: Duration = Duration::from_nanos(NANOS_PER_TICK as u64);

/// Whole ticks in `d`, rounded down or up; in u64, no 128-bit division on
/// the packet path.
fn ticks(d: Duration, round_up: bool) -> u64 {
    let whole = d.as_secs().saturating_mul(TICKS_PER_SECOND);
    let (part, rest) = (
        d.subsec_nanos() / NANOS_PER_TICK,
        d.subsec_nanos() % NANOS_PER_TICK,
    );
    whole.saturating_add(u64::from(part) + u64::from(round_up && rest != 0))
}

/// Slots of the wheel: one turn is 8 min 32 s.
const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;

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
        let ticks = ticks(now.saturating_duration_since(epoch), false);
        self.latest = self.latest.max(u32::try_from(ticks).unwrap_or(u32::MAX));
        self.latest
    }

    /// When tick `tick` begins; `None` before the first packet.
    pub(super) fn instant(&self, tick: u32) -> Option<Instant> {
        Some(self.epoch? + TICK * tick)
    }
}

/// The tick a session last active in `tick` is due at with `lifetime`
/// (`u32::MAX`, in 17 years, for lifetimes beyond that: "never").
pub(super) fn due_tick(tick: u32, lifetime: Duration) -> u32 {
    let due = u64::from(tick) + 1 + ticks(lifetime, true).min(u64::from(u32::MAX));
    u32::try_from(due).unwrap_or(u32::MAX)
}

/// The wheel, and where its walk stands.
#[derive(Debug)]
pub(super) struct ExpiryWheel {
    heads: Box<[Link]>,
    /// One bit per slot with a non-empty list.
    occupied: Box<[u64]>,
    /// Ticks below this are done; this one is being walked if `walking`.
    cursor: u32,
    walking: bool,
    /// The next session to look at in the slot being walked (0: the end).
    next: Link,
}

impl Default for ExpiryWheel {
    fn default() -> Self {
        ExpiryWheel {
            heads: vec![0; SLOTS].into_boxed_slice(),
            occupied: vec![0; WORDS].into_boxed_slice(),
            cursor: 0,
            walking: false,
            next: 0,
        }
    }
}

fn slot_of(tick: u32) -> usize {
    tick as usize % SLOTS
}

impl ExpiryWheel {
    /// Puts `slot` in the list of tick `due` (at its head).
    pub(super) fn schedule(&mut self, slab: &mut Slab<Session>, slot: u32, due: u32) {
        let i = slot_of(due);
        let head = self.heads[i];
        let s = slab.get_mut(slot);
        s.due = due;
        s.prev = 0;
        s.next = head;
        if head == 0 {
            self.occupied[i / 64] |= 1 << (i % 64);
        } else {
            slab.get_mut(head - 1).prev = link_to(slot);
        }
        self.heads[i] = link_to(slot);
    }

    /// Takes `slot` out of its list.
    pub(super) fn unlink(&mut self, slab: &mut Slab<Session>, slot: u32) {
        let s = slab.get(slot);
        let (prev, next, i) = (s.prev, s.next, slot_of(s.due));
        if prev == 0 {
            self.heads[i] = next;
            if next == 0 {
                self.occupied[i / 64] &= !(1 << (i % 64));
            }
        } else {
            slab.get_mut(prev - 1).next = next;
        }
        if next != 0 {
            slab.get_mut(next - 1).prev = prev;
        }
        if self.next == link_to(slot) {
            self.next = next;
        }
    }

    /// Before the slab moves the session in `from` to `to`: its neighbours,
    /// its list's head and the walk point to `to`.
    pub(super) fn relocate(&mut self, slab: &mut Slab<Session>, from: u32, to: u32) {
        let s = slab.get(from);
        let (prev, next, i) = (s.prev, s.next, slot_of(s.due));
        if prev == 0 {
            self.heads[i] = link_to(to);
        } else {
            slab.get_mut(prev - 1).next = link_to(to);
        }
        if next != 0 {
            slab.get_mut(next - 1).prev = link_to(to);
        }
        if self.next == link_to(from) {
            self.next = link_to(to);
        }
    }

    /// The next session to look at with the clock at `now` (ticks up to
    /// `now` are due), moving the walk past it; `None` when every due slot
    /// has been walked. The caller then leaves the session where it is (a
    /// later turn), reschedules it, or removes it.
    pub(super) fn next_due(&mut self, slab: &Slab<Session>, now: u32) -> Option<u32> {
        loop {
            if !self.walking {
                if self.cursor > now {
                    return None;
                }
                self.walking = true;
                self.next = self.heads[slot_of(self.cursor)];
            }
            if self.next != 0 {
                let slot = self.next - 1;
                self.next = slab.get(slot).next;
                return Some(slot);
            }
            self.walking = false;
            self.cursor = match self.first_occupied_after(self.cursor) {
                Some(t) if t <= now => t,
                _ => now.saturating_add(1),
            };
        }
    }

    /// The first tick after `tick` whose slot holds sessions.
    fn first_occupied_after(&self, tick: u32) -> Option<u32> {
        let start = slot_of(tick.wrapping_add(1));
        // Whole words, from the one holding `start`, once around.
        (0..=WORDS).find_map(|n| {
            let w = (start / 64 + n) % WORDS;
            let mut bits = self.occupied[w];
            if n == 0 {
                bits &= !0u64 << (start % 64);
            } else if n == WORDS {
                bits &= !(!0u64 << (start % 64));
            }
            (bits != 0).then(|| {
                let i = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (i + SLOTS - start) % SLOTS;
                tick.wrapping_add(1).saturating_add(ahead as u32)
            })
        })
    }

    /// Walks every list, checking links and slots; returns the sessions held.
    #[cfg(test)]
    pub(super) fn check(&self, slab: &Slab<Session>) -> usize {
        let mut n = 0;
        for (i, &head) in self.heads.iter().enumerate() {
            assert_eq!(head != 0, self.occupied[i / 64] & (1 << (i % 64)) != 0);
            let (mut prev, mut link) = (0, head);
            while link != 0 {
                let s = slab.get(link - 1);
                assert_eq!(slot_of(s.due), i);
                assert_eq!(s.prev, prev);
                (prev, link) = (link, s.next);
                n += 1;
            }
        }
        n
    }

    /// The tick of the next slot to walk: now when a walk is under way.
    pub(super) fn next_tick(&self) -> Option<u32> {
        if self.walking && self.next != 0 {
            return Some(self.cursor);
        }
        if !self.walking && self.heads[slot_of(self.cursor)] != 0 {
            return Some(self.cursor);
        }
        self.first_occupied_after(self.cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_ticks_are_the_advertised_resolution() {
        assert_eq!(2 * TICK, crate::EXPIRY_RESOLUTION);
    }

    #[test]
    fn due_tick_is_never_early_and_saturates() {
        // Last packet anywhere in tick 3, lifetime 1 s = 8 ticks: due at the
        // start of tick 12, at least 1 s after any instant of tick 3.
        assert_eq!(due_tick(3, Duration::from_secs(1)), 12);
        assert_eq!(due_tick(3, Duration::from_millis(1001)), 13);
        assert_eq!(due_tick(0, Duration::ZERO), 1);
        assert_eq!(due_tick(7, Duration::MAX), u32::MAX);
    }

    #[test]
    fn first_occupied_after_wraps_around_the_wheel() {
        let mut w = ExpiryWheel::default();
        let mut slab = Slab::new();
        assert_eq!(w.first_occupied_after(5), None);
        for due in [10u32, 4100] {
            let slot = slab.push(session());
            w.schedule(&mut slab, slot, due);
        }
        // Tick 4100 is slot 4; from tick 5 the next occupied slot is 10.
        assert_eq!(w.first_occupied_after(5), Some(10));
        assert_eq!(w.first_occupied_after(10), Some(4100));
        assert_eq!(w.first_occupied_after(4099), Some(4100));
        assert_eq!(w.first_occupied_after(4100), Some(4106));
        w.unlink(&mut slab, 0);
        assert_eq!(w.first_occupied_after(4100), Some(8196));
    }

    fn session() -> Session {
        Session {
            client: std::net::Ipv6Addr::LOCALHOST,
            server: std::net::Ipv4Addr::LOCALHOST,
            local: std::net::Ipv4Addr::LOCALHOST,
            client_port: 1,
            server_port: 2,
            local_port: 3,
            proto: xlat64_packet::L4Proto::Udp,
            tcp: None,
            inbound: false,
            tick: 0,
            due: 0,
            links: [0; 2],
            prev: 0,
            next: 0,
        }
    }
}
