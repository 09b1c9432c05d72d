//! TCP SYNs from the IPv4 side held for a simultaneous open (RFC 6146
//! §3.5.2.2): a SYN that no binding lets in is kept for 6 seconds. If the
//! client sends its own SYN for the connection meanwhile, the held one is
//! dropped silently (the server's retransmission then finds the session);
//! else the sender gets ICMP Port Unreachable (Type 3, Code 3) quoting it.
//!
//! The store is bounded (`max-simultaneous-opens`): a SYN beyond is dropped
//! and counted, so a SYN flood takes no more than the bound. Entries are
//! fixed-size and the storage is allocated once.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// RFC 6146 §3.5.2.2: how long a SYN is held.
pub(crate) const HOLD: Duration = Duration::from_secs(6);

/// Bytes of a held SYN kept for the ICMP error's quote: the IPv4 header
/// with options and the TCP header with options (RFC 1812 §4.3.2.3 asks
/// for at least the header plus 8 bytes).
pub(crate) const QUOTE: usize = 120;

#[derive(Debug, Clone)]
struct Held {
    /// The pool4 transport address the SYN was sent to.
    local: SocketAddrV4,
    /// The SYN's sender.
    remote: SocketAddrV4,
    until: Instant,
    len: usize,
    bytes: [u8; QUOTE],
}

/// The held SYNs, oldest first.
#[derive(Debug)]
pub(crate) struct SynStore {
    held: Vec<Held>,
    capacity: usize,
}

impl SynStore {
    /// Holds at most `capacity` SYNs from now on (those held beyond stay
    /// until they are answered or time out).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// A store for at most `capacity` SYNs.
    pub(crate) fn new(capacity: usize) -> Self {
        SynStore {
            held: Vec::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Holds the SYN `pkt` sent from `remote` to `local`; false when the
    /// store is full. A retransmission of a held SYN replaces it (the
    /// deadline stays the first one's).
    pub(crate) fn hold(
        &mut self,
        now: Instant,
        pkt: &[u8],
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> bool {
        let len = pkt.len().min(QUOTE);
        let mut bytes = [0; QUOTE];
        bytes[..len].copy_from_slice(&pkt[..len]);
        if let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.local == local && h.remote == remote)
        {
            (h.len, h.bytes) = (len, bytes);
            return true;
        }
        if self.held.len() >= self.capacity {
            return false;
        }
        self.held.push(Held {
            local,
            remote,
            until: now + HOLD,
            len,
            bytes,
        });
        true
    }

    /// The client sent its SYN for the connection `local` <-> `remote`:
    /// the held SYN, if any, is dropped. Returns whether one was.
    pub(crate) fn answered(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        match self
            .held
            .iter()
            .position(|h| h.local == local && h.remote == remote)
        {
            Some(i) => {
                self.held.remove(i);
                true
            }
            None => false,
        }
    }

    /// When the oldest held SYN is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.held.first().map(|h| h.until)
    }

    /// The oldest SYN whose hold has ended at `now`, copied into `out`
    /// (its length returned), and forgotten.
    pub(crate) fn expired(&mut self, now: Instant, out: &mut [u8; QUOTE]) -> Option<usize> {
        if self.held.first()?.until > now {
            return None;
        }
        let h = self.held.remove(0);
        out[..h.len].copy_from_slice(&h.bytes[..h.len]);
        Some(h.len)
    }

    /// SYNs held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

/// A buffer for [`SynStore::expired`].
pub(crate) type Quote = [u8; QUOTE];

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 1), port)
    }

    #[test]
    fn rfc6146_3_5_2_2_held_six_seconds_then_released_unless_answered() {
        let t0 = Instant::now();
        let mut s = SynStore::new(2);
        assert!(s.hold(t0, &[1; 60], addr(1000), addr(80)));
        assert!(s.hold(t0, &[2; 200], addr(1001), addr(80)));
        assert!(!s.hold(t0, &[3; 60], addr(1002), addr(80)), "bounded");
        // A retransmission takes no second place.
        assert!(s.hold(t0 + Duration::from_secs(1), &[4; 60], addr(1000), addr(80)));
        assert_eq!(s.len(), 2);
        assert!(s.answered(addr(1001), addr(80)));
        assert!(!s.answered(addr(1001), addr(80)));
        assert_eq!(s.poll_timeout(), Some(t0 + HOLD));
        let mut out = [0; QUOTE];
        assert_eq!(
            s.expired(t0 + HOLD - Duration::from_millis(1), &mut out),
            None
        );
        assert_eq!(s.expired(t0 + HOLD, &mut out), Some(60));
        assert_eq!(out[0], 4);
        assert_eq!(s.len(), 0);
        assert_eq!(s.poll_timeout(), None);
    }
}
