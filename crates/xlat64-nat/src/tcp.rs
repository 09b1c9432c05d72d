//! Simplified TCP session tracking (RFC 6146 §3.5.2).
//!
//! What is tracked, and why it is enough for the timers:
//!
//! - A session is created only by a SYN from the IPv6 side
//!   ([`TcpState::V6SynRcv`], transitory timer).
//! - A SYN from the IPv4 side on that session means both sides have sent SYN:
//!   [`TcpState::Established`], established timer (2 h 4 min).
//! - A FIN from either side: [`TcpState::FinRcv`], still the established
//!   timer (the other direction may keep sending for a long time).
//! - FINs from both sides, or an RST from either: [`TcpState::Closing`],
//!   transitory timer (4 min).
//! - A SYN from the IPv6 side on a closing session reopens it as a new
//!   connection ([`TcpState::V6SynRcv`]).
//!
//! Not yet done (later issues): the full RFC 6146 §3.5.2.2 state machine
//! (V4 INIT, simultaneous open, the TRANS -> ESTABLISHED return on any
//! non-RST packet, probing idle established sessions).

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

/// TCP state of one session plus which sides have sent FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpTrack {
    pub(crate) state: TcpState,
    fin_v6: bool,
    fin_v4: bool,
}

impl TcpTrack {
    /// A session opened by a SYN from the IPv6 side.
    pub(crate) fn opened_by_v6_syn() -> Self {
        TcpTrack {
            state: TcpState::V6SynRcv,
            fin_v6: false,
            fin_v4: false,
        }
    }

    /// Updates the state for a segment with `flags` from `side`.
    pub(crate) fn on_segment(&mut self, side: Side, flags: u8) {
        if flags & RST != 0 {
            self.state = TcpState::Closing;
            return;
        }
        match self.state {
            TcpState::V6SynRcv => {
                if side == Side::V4 && flags & SYN != 0 {
                    self.state = TcpState::Established;
                }
            }
            TcpState::Established | TcpState::FinRcv => {
                if flags & FIN != 0 {
                    match side {
                        Side::V6 => self.fin_v6 = true,
                        Side::V4 => self.fin_v4 = true,
                    }
                    self.state = if self.fin_v6 && self.fin_v4 {
                        TcpState::Closing
                    } else {
                        TcpState::FinRcv
                    };
                }
            }
            TcpState::Closing => {
                if side == Side::V6 && flags & SYN != 0 {
                    *self = TcpTrack::opened_by_v6_syn();
                }
            }
        }
    }

    /// Whether the session lives by the established timer (both SYNs seen,
    /// not both FINs nor a RST); else by the transitory one.
    pub(crate) fn is_established(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::FinRcv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xlat64_packet::flow::tcp_flags::ACK;

    #[test]
    fn handshake_then_fins() {
        let mut s = TcpTrack::opened_by_v6_syn();
        assert!(!s.is_established());
        s.on_segment(Side::V6, ACK);
        assert_eq!(s.state, TcpState::V6SynRcv);
        s.on_segment(Side::V4, SYN | ACK);
        assert_eq!(s.state, TcpState::Established);
        assert!(s.is_established());
        s.on_segment(Side::V4, FIN | ACK);
        assert_eq!(s.state, TcpState::FinRcv);
        assert!(s.is_established());
        s.on_segment(Side::V4, FIN | ACK); // retransmitted: same side
        assert_eq!(s.state, TcpState::FinRcv);
        s.on_segment(Side::V6, FIN | ACK);
        assert_eq!(s.state, TcpState::Closing);
        assert!(!s.is_established());
        s.on_segment(Side::V6, SYN);
        assert_eq!(s.state, TcpState::V6SynRcv);
    }

    #[test]
    fn rst_closes_from_any_state() {
        for side in [Side::V6, Side::V4] {
            let mut s = TcpTrack::opened_by_v6_syn();
            s.on_segment(side, RST);
            assert_eq!(s.state, TcpState::Closing);
            let mut s = TcpTrack::opened_by_v6_syn();
            s.on_segment(Side::V4, SYN | ACK);
            s.on_segment(side, RST | ACK);
            assert_eq!(s.state, TcpState::Closing);
        }
    }
}
