//! Session lifetimes (RFC 6146 §4).

use std::time::Duration;

/// How late a session may expire: never before its lifetime after its last
/// packet, at most this much after (two ticks of the session table's
/// clock: a packet records its tick, not its instant).
pub const EXPIRY_RESOLUTION: Duration = Duration::from_millis(250);

/// How long idle sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP (RFC 6146 §3.5.1: at least 2 min, default 5 min).
    pub udp: Duration,
    /// ICMP query (RFC 6146 §3.5.3: 60 s).
    pub icmp: Duration,
    /// TCP established (RFC 6146 §3.5.2.2: at least 2 h 4 min).
    pub tcp_established: Duration,
    /// TCP transitory (RFC 6146 §3.5.2.2: at least 4 min).
    pub tcp_transitory: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: Duration::from_secs(300),
            icmp: Duration::from_secs(60),
            tcp_established: Duration::from_secs(2 * 3600 + 4 * 60),
            tcp_transitory: Duration::from_secs(240),
        }
    }
}
