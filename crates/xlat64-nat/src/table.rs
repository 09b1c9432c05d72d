//! Binding Information Base and session table entries (RFC 6146 §3.1, §3.2),
//! as the control socket shows them.

use std::net::{SocketAddrV4, SocketAddrV6};
use std::time::Instant;
use xlat64_packet::L4Proto;

/// TCP session state (simplified tracking; RFC 6146 §3.5.2 in full is a later step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// SYN seen from the IPv6 side, no answer yet.
    V6SynRcv,
    /// Both sides have sent SYN.
    Established,
    /// FIN seen from one side.
    FinRcv,
    /// RST seen, or both FINs: waiting out the transitory timer.
    Closing,
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
