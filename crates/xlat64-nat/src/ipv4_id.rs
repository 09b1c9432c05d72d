//! IPv4 Identification values for the packets the translator sends
//! (RFC 7915 §5.1, RFC 6864, RFC 7739).
//!
//! One global counter would let anyone on the IPv4 side read off how many
//! packets the gateway sends, and predict the next value to poison
//! reassembly (RFC 7739 §4). As RFC 7739 §5.3 recommends, each
//! (source, destination, protocol) hashes with a secret key into one of a
//! table of counters, and the value sent is that counter plus a per-tuple
//! secret offset: consecutive to one destination (so its reassembly never
//! sees a reuse soon), unrelated across destinations.

use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;

/// Counters in the table (RFC 7739 §5.3 suggests a few thousand).
const BUCKETS: usize = 4096;

/// Per-destination-bucket IPv4 identification generator.
#[derive(Debug)]
pub(crate) struct Ipv4Ids {
    counters: Box<[u16]>,
    key: FixedState,
}

impl Ipv4Ids {
    /// A generator whose hashes and offsets follow from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Ipv4Ids {
            counters: vec![0; BUCKETS].into_boxed_slice(),
            key: FixedState::with_seed(seed ^ 0x7739_7739_7739_7739),
        }
    }

    /// The identification for the next packet from `src` to `dst` with
    /// protocol `proto`.
    pub(crate) fn next(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> u16 {
        let id = self.peek(src, dst, proto);
        self.advance(src, dst, proto);
        id
    }

    /// What [`Self::next`] would give now, without taking it: for a packet
    /// whose translation may still fail ([`Self::advance`] once it is sent).
    pub(crate) fn peek(&self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> u16 {
        let h = self.key.hash_one((src, dst, proto));
        let counter = self.counters[(h as usize) % BUCKETS];
        counter.wrapping_add(1).wrapping_add((h >> 32) as u16)
    }

    /// Takes the identification [`Self::peek`] gave.
    pub(crate) fn advance(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) {
        let bucket = (self.key.hash_one((src, dst, proto)) as usize) % BUCKETS;
        self.counters[bucket] = self.counters[bucket].wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    const C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

    /// RFC 7739 §5.3: successive values to one destination do not repeat
    /// within 65536 packets.
    #[test]
    fn rfc7739_5_3_no_reuse_to_one_destination() {
        let mut ids = Ipv4Ids::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..65536 {
            assert!(seen.insert(ids.next(A, B, 17)));
        }
    }

    /// RFC 7739 §4: another destination's values say nothing about these.
    #[test]
    fn rfc7739_4_destinations_are_unrelated() {
        let mut ids = Ipv4Ids::new(7);
        let b1 = ids.next(A, B, 6);
        let c1 = ids.next(A, C, 6);
        let b2 = ids.next(A, B, 6);
        assert_eq!(b2, b1.wrapping_add(1));
        assert_ne!(c1, b1.wrapping_add(1), "not one global counter");
        let other_seed = Ipv4Ids::new(8).next(A, B, 6);
        assert_ne!(other_seed, b1, "the secret decides the offsets");
        // Peeking takes nothing.
        assert_eq!(ids.peek(A, B, 6), ids.peek(A, B, 6));
        assert_eq!(ids.peek(A, B, 6), ids.next(A, B, 6));
    }
}
