//! Binding Information Base and session table entries (RFC 6146 §3.1, §3.2),
//! as the control socket shows them.

use std::net::{SocketAddrV4, SocketAddrV6};
use std::time::Instant;
use xlat64_packet::L4Proto;

/// TCP session state (RFC 6146 §3.5.2.2; a session that does not exist is
/// in CLOSED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// A SYN came from the IPv4 side (an existing binding): waiting 6 s
    /// (TCP_INCOMING_SYN) for the client's SYN.
    V4Init,
    /// A SYN came from the IPv6 side: waiting for the server's.
    V6Init,
    /// Both sides have sent SYN.
    Established,
    /// The IPv4 side has sent FIN.
    V4FinRcv,
    /// The IPv6 side has sent FIN.
    V6FinRcv,
    /// Both sides have sent FIN: the transitory lifetime, not refreshed.
    V4FinV6FinRcv,
    /// A RST was seen: the transitory lifetime; any other segment returns
    /// the session to established.
    Trans,
}

impl TcpState {
    /// Lower-case name, as `sessions` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::V4Init => "v4_init",
            TcpState::V6Init => "v6_init",
            TcpState::Established => "established",
            TcpState::V4FinRcv => "v4_fin_rcv",
            TcpState::V6FinRcv => "v6_fin_rcv",
            TcpState::V4FinV6FinRcv => "v4_fin_v6_fin_rcv",
            TcpState::Trans => "trans",
        }
    }
}

/// One binding: an IPv6 transport address mapped to an IPv4 one (endpoint-independent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BibEntry {
    /// Protocol.
    pub proto: L4Proto,
    /// The client's IPv6 transport address.
    pub v6_client: SocketAddrV6,
    /// The pool4 transport address it was given.
    pub v4_local: SocketAddrV4,
    /// Set by static configuration (none yet).
    pub is_static: bool,
    /// Number of sessions using this binding.
    pub sessions: usize,
}

/// One session: a binding plus the remote endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    /// Protocol.
    pub proto: L4Proto,
    /// The client's IPv6 transport address.
    pub v6_client: SocketAddrV6,
    /// The server as the client sees it (prefix + IPv4).
    pub v6_server: SocketAddrV6,
    /// The pool4 transport address.
    pub v4_local: SocketAddrV4,
    /// The IPv4 server.
    pub v4_server: SocketAddrV4,
    /// TCP state, `None` for UDP and ICMP.
    pub tcp_state: Option<TcpState>,
    /// When the session expires unless traffic refreshes it.
    pub expires: Instant,
}
