//! Choosing a pool4 port for a new binding (RFC 6146 §3.5.1.1, RFC 6056).
//!
//! The client's own port is kept when it is free and inside the range. Else
//! the port is searched from a pseudo-random start (RFC 6056 §3.3.3 style:
//! a keyed hash of the client plus a counter), first among ports of the same
//! range class (0-1023 or 1024-65535) and parity as the client's port, then
//! among the rest, as RFC 6146 §3.5.1.1 asks ("if possible").

use std::ops::RangeInclusive;

/// The boundary between the well-known/system ports and the others.
const LOW_CLASS_END: u16 = 1023;

/// A free port in `range` for a client that uses `client_port`, or `None`
/// when every port in `range` is taken. `start` is a pseudo-random value that
/// decides where the search begins.
pub(crate) fn pick_port(
    range: RangeInclusive<u16>,
    client_port: u16,
    start: u64,
    is_free: impl Fn(u16) -> bool,
) -> Option<u16> {
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
    .find_map(|(sub, parity)| search(sub, parity, start, &is_free))
}

/// Walks the ports of `parity` in `lo..=hi` once, from an offset given by `start`.
fn search(
    (lo, hi): (u32, u32),
    parity: u32,
    start: u64,
    is_free: &impl Fn(u16) -> bool,
) -> Option<u16> {
    let first = if lo & 1 == parity { lo } else { lo + 1 };
    if first > hi {
        return None;
    }
    let count = (hi - first) / 2 + 1;
    let offset = (start % u64::from(count)) as u32;
    (0..count)
        .map(|i| first + 2 * ((offset + i) % count))
        .map(|p| p as u16)
        .find(|&p| is_free(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_client_port_when_free() {
        assert_eq!(pick_port(1024..=65535, 40000, 7, |_| true), Some(40000));
    }

    #[test]
    fn keeps_parity_and_class() {
        for start in 0..200u64 {
            let p = pick_port(1024..=65535, 40001, start, |p| p != 40001).unwrap();
            assert_eq!(p & 1, 1);
            assert!(p >= 1024);
            let p = pick_port(0..=65535, 80, start, |p| p != 80).unwrap();
            assert_eq!(p & 1, 0);
            assert!(p <= 1023);
        }
    }

    #[test]
    fn falls_back_to_other_parity_then_class() {
        // Only even ports free: an odd client port gets an even one.
        assert_eq!(pick_port(2000..=2003, 2001, 0, |p| p == 2002), Some(2002));
        // A low client port outside the range gets a port of the range.
        assert_eq!(pick_port(1024..=1025, 80, 5, |p| p == 1025), Some(1025));
        assert_eq!(pick_port(1024..=1025, 80, 5, |_| false), None);
    }

    #[test]
    fn start_spreads_the_choice() {
        let picks: std::collections::HashSet<u16> = (0..50u64)
            .map(|s| pick_port(1024..=65535, 5000, s * 7919, |p| p != 5000).unwrap())
            .collect();
        assert!(picks.len() > 40);
    }

    #[test]
    fn every_port_reachable_in_a_tiny_range() {
        let mut taken = std::collections::HashSet::new();
        while let Some(p) = pick_port(10..=14, 12, 3, |p| !taken.contains(&p)) {
            taken.insert(p);
        }
        assert_eq!(taken.len(), 5);
    }
}
