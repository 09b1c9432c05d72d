//! Choosing a pool4 port for a new binding (RFC 6146 §3.5.1.1, RFC 6056).
//!
//! The client's own port is kept when it is free and inside the range. Else
//! the port is searched from a pseudo-random start (RFC 6056 §3.3.3,
//! algorithm 3: a keyed hash of the client plus a counter), first among
//! ports of the same range class (0-1023 or 1024-65535) and parity as the
//! client's port, then among the rest, as RFC 6146 §3.5.1.1 asks ("if
//! possible").
//!
//! Free ports are kept as bits ([`PortBits`]), 64 ports per word, so that a
//! search looks at a whole word of candidates at once: finding a free port
//! in a nearly full address costs at most 1024 word reads, never a table
//! lookup per candidate.

use std::ops::RangeInclusive;

/// The boundary between the well-known/system ports and the others.
const LOW_CLASS_END: u16 = 1023;

/// Words of 64 ports.
const WORDS: usize = 65536 / 64;

/// One bit per port (or ICMP identifier).
#[derive(Debug, Clone)]
pub(crate) struct PortBits {
    words: Box<[u64]>,
}

impl PortBits {
    /// No port set.
    pub(crate) fn empty() -> Self {
        PortBits {
            words: vec![0; WORDS].into_boxed_slice(),
        }
    }

    /// The ports of `shard`: runs of ports dealt round-robin (pairs, or
    /// port blocks; `crate::shard::owner_of_port`).
    pub(crate) fn of_shard(shard: &crate::shard::Shard) -> Self {
        PortBits::from_fn(|port| shard.owns(port))
    }

    /// The ports `owns` says yes to.
    pub(crate) fn from_fn(owns: impl Fn(u16) -> bool) -> Self {
        let mut bits = PortBits::empty();
        for port in 0..=u16::MAX {
            if owns(port) {
                bits.set(port);
            }
        }
        bits
    }

    pub(crate) fn set(&mut self, port: u16) {
        self.words[usize::from(port) / 64] |= 1 << (port % 64);
    }

    pub(crate) fn clear(&mut self, port: u16) {
        self.words[usize::from(port) / 64] &= !(1 << (port % 64));
    }

    /// Whether `port` is set.
    pub(crate) fn is_set(&self, port: u16) -> bool {
        self.words[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Word `w`: ports `64 * w .. 64 * w + 64`.
    pub(crate) fn word(&self, w: usize) -> u64 {
        self.words[w]
    }
}

/// Ports at most kept as a list before [`TakenPorts`] turns to bits: 256
/// bytes, against 8 KiB of bits.
const FEW: usize = 128;

/// The ports of one pool4 address and protocol that bindings hold: a
/// sorted list while they are few (a large pool spreads its clients thin:
/// 65,536 addresses with a handful of bindings each would otherwise cost
/// 8 KiB per address, protocol and worker), bits once they are many (the
/// search of a nearly full address reads whole words). Counts per range
/// class let a search skip a class that is full.
#[derive(Debug, Clone, Default)]
pub(crate) struct TakenPorts {
    held: Held,
    len: usize,
    /// Held ports of the well-known class (0-1023).
    low: usize,
}

#[derive(Debug, Clone)]
enum Held {
    /// Sorted, at most [`FEW`] ports.
    Few(Vec<u16>),
    /// One bit per port.
    Many(PortBits),
}

impl Default for Held {
    fn default() -> Self {
        Held::Few(Vec::new())
    }
}

impl TakenPorts {
    /// Marks `port` held.
    pub(crate) fn set(&mut self, port: u16) {
        let added = match &mut self.held {
            Held::Few(list) => match list.binary_search(&port) {
                Ok(_) => false,
                Err(at) => {
                    list.insert(at, port);
                    true
                }
            },
            Held::Many(bits) => {
                !bits.is_set(port) && {
                    bits.set(port);
                    true
                }
            }
        };
        if added {
            self.len += 1;
            self.low += usize::from(port <= LOW_CLASS_END);
        }
        if let Held::Few(list) = &self.held {
            if list.len() > FEW {
                let mut bits = PortBits::empty();
                list.iter().for_each(|&p| bits.set(p));
                self.held = Held::Many(bits);
            }
        }
    }

    /// Marks `port` free; back to a list (and its memory) when few are left.
    pub(crate) fn clear(&mut self, port: u16) {
        let removed = match &mut self.held {
            Held::Few(list) => match list.binary_search(&port) {
                Ok(at) => {
                    list.remove(at);
                    true
                }
                Err(_) => false,
            },
            Held::Many(bits) => {
                bits.is_set(port) && {
                    bits.clear(port);
                    true
                }
            }
        };
        if removed {
            self.len -= 1;
            self.low -= usize::from(port <= LOW_CLASS_END);
        }
        match &mut self.held {
            Held::Few(list) if list.is_empty() => *list = Vec::new(),
            Held::Many(bits) if self.len <= FEW / 4 => {
                let list = (0..=u16::MAX).filter(|&p| bits.is_set(p)).collect();
                self.held = Held::Few(list);
            }
            _ => {}
        }
    }

    /// How many ports are held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many ports of the well-known class (0-1023) are held.
    pub(crate) fn low(&self) -> usize {
        self.low
    }

    /// Word `w` of the held ports: ports `64 * w .. 64 * w + 64`.
    pub(crate) fn word(&self, w: usize) -> u64 {
        match &self.held {
            Held::Few(list) => {
                let first = list.partition_point(|&p| usize::from(p) < 64 * w);
                list[first..]
                    .iter()
                    .take_while(|&&p| usize::from(p) < 64 * (w + 1))
                    .fold(0, |word, &p| word | 1 << (p % 64))
            }
            Held::Many(bits) => bits.word(w),
        }
    }

    /// Whether the ports are kept as bits (tests).
    #[cfg(test)]
    fn is_bits(&self) -> bool {
        matches!(self.held, Held::Many(_))
    }
}

/// The boundary between the well-known range class and the other, for
/// [`TakenPorts::low`] and the capacity per class.
pub(crate) const LOW_CLASS: std::ops::RangeInclusive<u16> = 0..=LOW_CLASS_END;

/// A free port in `range` for a client that uses `client_port`, or `None`
/// when every port in `range` is taken. `free(w)` gives the free ports of
/// word `w` as bits; `start` is a pseudo-random value that decides where
/// the search begins.
pub(crate) fn pick_port(
    range: RangeInclusive<u16>,
    client_port: u16,
    start: u64,
    free: impl Fn(usize) -> u64,
) -> Option<u16> {
    let is_free = |p: u16| free(usize::from(p) / 64) & (1 << (p % 64)) != 0;
    if range.contains(&client_port) && is_free(client_port) {
        return Some(client_port);
    }
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let low = (lo, hi.min(u32::from(LOW_CLASS_END)));
    let high = (lo.max(u32::from(LOW_CLASS_END) + 1), hi);
    let (same_class, other_class) = if client_port <= LOW_CLASS_END {
        (low, high)
    } else {
        (high, low)
    };
    let parity = u32::from(client_port & 1);
    [
        (same_class, parity),
        (same_class, parity ^ 1),
        (other_class, parity),
        (other_class, parity ^ 1),
    ]
    .into_iter()
    .find_map(|(sub, parity)| search(sub, parity, start, &free))
}

/// The ports of one parity in a word: even ports are bits 0, 2, 4...
const PARITY: [u64; 2] = [0x5555_5555_5555_5555, 0xaaaa_aaaa_aaaa_aaaa];

/// Bits of word `w` for ports in `lo..=hi`.
fn range_mask(w: u32, lo: u32, hi: u32) -> u64 {
    let (first, last) = (w * 64, w * 64 + 63);
    let from = lo.max(first) - first;
    let to = hi.min(last) - first;
    (u64::MAX << from) & (u64::MAX >> (63 - to))
}

/// Walks the words of `lo..=hi` once, from an offset given by `start`, and
/// returns the first free port of `parity`.
fn search(
    (lo, hi): (u32, u32),
    parity: u32,
    start: u64,
    free: &impl Fn(usize) -> u64,
) -> Option<u16> {
    if lo > hi {
        return None;
    }
    let (first_word, last_word) = (lo / 64, hi / 64);
    let words = last_word - first_word + 1;
    let span = hi - lo + 1;
    let begin = lo + (start % u64::from(span)) as u32;
    let begin_word = begin / 64 - first_word;
    let begin_bit = begin % 64;
    // Word `begin_word` twice: its bits from `begin_bit` first, the ones
    // below at the end, so that every port is seen once.
    (0..=words).find_map(|k| {
        let w = first_word + (begin_word + k) % words;
        let mut mask = free(w as usize) & PARITY[parity as usize] & range_mask(w, lo, hi);
        if k == 0 {
            mask &= u64::MAX << begin_bit;
        } else if k == words {
            mask &= !(u64::MAX << begin_bit);
        }
        (mask != 0).then(|| (w * 64 + mask.trailing_zeros()) as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `free` from a per-port predicate.
    fn by_port(is_free: impl Fn(u16) -> bool) -> impl Fn(usize) -> u64 {
        let bits = PortBits::from_fn(is_free);
        move |w| bits.word(w)
    }

    #[test]
    fn shard_bits_are_the_shards_ports() {
        for count in [1u16, 2, 3, 7] {
            for index in 0..count {
                let bits = PortBits::of_shard(&crate::shard::Shard::new(index, count).unwrap());
                let reference =
                    PortBits::from_fn(|p| crate::shard::owner_of_port(p, count, 1) == index);
                assert!(
                    (0..WORDS).all(|w| bits.word(w) == reference.word(w)),
                    "{index}/{count}"
                );
            }
        }
    }

    /// The list and the bits say the same, through growth and shrinking.
    #[test]
    fn taken_ports_turn_to_bits_and_back() {
        let mut taken = TakenPorts::default();
        let ports: Vec<u16> = (0..400u32).map(|i| (i * 163 % 65536) as u16).collect();
        for (i, &p) in ports.iter().enumerate() {
            taken.set(p);
            assert_eq!(taken.len(), i + 1);
        }
        assert!(taken.is_bits());
        let word = |t: &TakenPorts, p: u16| t.word(usize::from(p) / 64) & (1 << (p % 64)) != 0;
        assert!(ports.iter().all(|&p| word(&taken, p)));
        for &p in &ports[..380] {
            taken.clear(p);
        }
        assert!(!taken.is_bits());
        assert_eq!(taken.len(), 20);
        assert_eq!(
            taken.low(),
            ports[380..].iter().filter(|&&p| p <= 1023).count()
        );
        assert!(ports[380..].iter().all(|&p| word(&taken, p)));
        assert!(!word(&taken, ports[0]));
    }

    #[test]
    fn keeps_the_client_port_when_free() {
        assert_eq!(
            pick_port(1024..=65535, 40000, 7, by_port(|_| true)),
            Some(40000)
        );
    }

    #[test]
    fn keeps_parity_and_class() {
        let not_40001 = by_port(|p| p != 40001);
        let not_80 = by_port(|p| p != 80);
        for start in 0..200u64 {
            let p = pick_port(1024..=65535, 40001, start, &not_40001).unwrap();
            assert_eq!(p & 1, 1);
            assert!(p >= 1024);
            let p = pick_port(0..=65535, 80, start, &not_80).unwrap();
            assert_eq!(p & 1, 0);
            assert!(p <= 1023);
        }
    }

    #[test]
    fn falls_back_to_other_parity_then_class() {
        // Only even ports free: an odd client port gets an even one.
        assert_eq!(
            pick_port(2000..=2003, 2001, 0, by_port(|p| p == 2002)),
            Some(2002)
        );
        // A low client port outside the range gets a port of the range.
        assert_eq!(
            pick_port(1024..=1025, 80, 5, by_port(|p| p == 1025)),
            Some(1025)
        );
        assert_eq!(pick_port(1024..=1025, 80, 5, by_port(|_| false)), None);
    }

    #[test]
    fn start_spreads_the_choice() {
        let free = by_port(|p| p != 5000);
        let picks: std::collections::HashSet<u16> = (0..50u64)
            .map(|s| pick_port(1024..=65535, 5000, s * 7919, &free).unwrap())
            .collect();
        assert!(picks.len() > 40);
    }

    #[test]
    fn every_port_reachable_in_a_tiny_range() {
        let mut taken = std::collections::HashSet::new();
        loop {
            let t = taken.clone();
            let Some(p) = pick_port(10..=14, 12, 3, by_port(move |p| !t.contains(&p))) else {
                break;
            };
            taken.insert(p);
        }
        assert_eq!(taken.len(), 5);
    }

    /// The one free port of a nearly full range is found from any start,
    /// including a start inside its own word after it.
    #[test]
    fn the_last_free_port_is_found_from_anywhere() {
        for last in [1024u16, 1025, 1100, 30001, 65534, 65535] {
            let free = by_port(move |p| p == last);
            for start in [0u64, 1, 63, 64, 1000, 64511, u64::MAX] {
                assert_eq!(
                    pick_port(1024..=65535, 40000, start, &free),
                    Some(last),
                    "{last} {start}"
                );
            }
        }
    }
}
