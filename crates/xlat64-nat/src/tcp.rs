//! The TCP state machine of RFC 6146 §3.5.2.2, as a function of the state
//! and one segment. CLOSED is the absence of a session: a SYN from the IPv6
//! side opens one in V6 INIT, a SYN from the IPv4 side (to an existing
//! binding that filtering lets through) in V4 INIT; the session table does
//! that, and the simultaneous-open wait for SYNs without a binding is in
//! `syn_store`.
//!
//! Lifetimes (RFC 6146 §4): V4 INIT lives TCP_INCOMING_SYN (6 s); V6 INIT,
//! TRANS and V4 FIN + V6 FIN RCV live TCP_TRANS (default 4 min); the others
//! TCP_EST (default 2 h 4 min).
//!
//! One deliberate addition: a RST in V4 FIN RCV or V6 FIN RCV moves the
//! session to TRANS as it does in ESTABLISHED (the RFC only lists the FIN
//! there, which would keep a reset connection's port for two hours).
//! Probing an idle established session before it expires (§3.5.2.2, a MAY)
//! is not done: it simply expires.

use crate::TcpState;
use xlat64_packet::flow::tcp_flags::{FIN, RST, SYN};

/// Which side a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// From the IPv6 client.
    V6,
    /// From the IPv4 server.
    V4,
}

/// A SYN that opens or answers a connection (a RST with it is no opening).
pub(crate) fn is_syn(flags: u8) -> bool {
    flags & SYN != 0 && flags & RST == 0
}

impl TcpState {
    /// The state after a segment with `flags` from `side`, and whether the
    /// session's lifetime starts again from this packet (RFC 6146
    /// §3.5.2.2; the new state's lifetime applies).
    pub(crate) fn on_segment(self, side: Side, flags: u8) -> (TcpState, bool) {
        use Side::{V4, V6};
        use TcpState::*;
        let (syn, fin, rst) = (is_syn(flags), flags & FIN != 0, flags & RST != 0);
        match (self, side) {
            (V4Init, V6) if syn => (Established, true),
            (V6Init, V4) if syn => (Established, true),
            (V6Init, V6) if syn => (V6Init, true),
            (V4Init | V6Init, _) => (self, false),
            (Established | V4FinRcv | V6FinRcv, _) if rst => (Trans, true),
            (Established, V4) if fin => (V4FinRcv, true),
            (Established, V6) if fin => (V6FinRcv, true),
            (V4FinRcv, V6) | (V6FinRcv, V4) if fin => (V4FinV6FinRcv, true),
            (Established | V4FinRcv | V6FinRcv, _) => (self, true),
            (V4FinV6FinRcv, _) => (self, false),
            (Trans, _) if rst => (Trans, false),
            (Trans, _) => (Established, true),
        }
    }

    /// Whether the session lives by TCP_EST (else TCP_TRANS, or
    /// TCP_INCOMING_SYN in V4 INIT).
    pub(crate) fn is_established(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::V4FinRcv | TcpState::V6FinRcv
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xlat64_packet::flow::tcp_flags::ACK;
    use Side::{V4, V6};
    use TcpState::*;

    /// Runs `segments` from `start`; returns the states and restarts seen.
    fn run(start: TcpState, segments: &[(Side, u8)]) -> Vec<(TcpState, bool)> {
        let mut s = start;
        segments
            .iter()
            .map(|&(side, flags)| {
                let (next, restart) = s.on_segment(side, flags);
                s = next;
                (next, restart)
            })
            .collect()
    }

    #[test]
    fn rfc6146_3_5_2_2_v6_init_to_established_by_the_servers_syn() {
        let seen = run(V6Init, &[(V6, SYN), (V6, ACK), (V4, SYN | ACK)]);
        assert_eq!(seen, [(V6Init, true), (V6Init, false), (Established, true)]);
    }

    #[test]
    fn rfc6146_3_5_2_2_v4_init_to_established_by_the_clients_syn() {
        let seen = run(V4Init, &[(V4, SYN), (V4, ACK), (V6, SYN | ACK)]);
        assert_eq!(
            seen,
            [(V4Init, false), (V4Init, false), (Established, true)]
        );
    }

    #[test]
    fn rfc6146_3_5_2_2_fins_from_both_sides_in_either_order() {
        let seen = run(
            Established,
            &[(V4, FIN | ACK), (V4, ACK), (V6, FIN | ACK), (V4, ACK)],
        );
        assert_eq!(
            seen,
            [
                (V4FinRcv, true),
                (V4FinRcv, true),
                (V4FinV6FinRcv, true),
                (V4FinV6FinRcv, false)
            ]
        );
        let seen = run(Established, &[(V6, FIN), (V6, FIN), (V4, FIN)]);
        assert_eq!(
            seen,
            [(V6FinRcv, true), (V6FinRcv, true), (V4FinV6FinRcv, true)]
        );
    }

    #[test]
    fn rfc6146_3_5_2_2_rst_to_trans_and_back_to_established_on_traffic() {
        for side in [V6, V4] {
            let seen = run(Established, &[(side, RST), (V4, RST), (V6, ACK)]);
            assert_eq!(seen, [(Trans, true), (Trans, false), (Established, true)]);
        }
        // After one FIN too (see the module documentation).
        assert_eq!(run(V4FinRcv, &[(V6, RST | ACK)]), [(Trans, true)]);
        // A closed connection stays closed.
        assert_eq!(run(V4FinV6FinRcv, &[(V6, RST)]), [(V4FinV6FinRcv, false)]);
    }

    #[test]
    fn rfc6146_3_5_2_2_a_syn_with_rst_opens_nothing() {
        assert_eq!(run(V6Init, &[(V4, SYN | RST)]), [(V6Init, false)]);
        assert!(!is_syn(SYN | RST));
        assert!(is_syn(SYN | ACK));
    }

    #[test]
    fn lifetimes_by_state() {
        assert!(Established.is_established() && V4FinRcv.is_established());
        assert!(!Trans.is_established() && !V4FinV6FinRcv.is_established());
        assert!(!V6Init.is_established() && !V4Init.is_established());
    }
}
