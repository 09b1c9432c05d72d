//! The entries of the tables and the keys they are found by, laid out for
//! memory (a session is one 64-byte cache line, a binding 40 bytes).

use super::chain_index::{Chained, Link};
use crate::TcpState;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use xlat64_packet::L4Proto;

/// A client's IPv6 transport address (the BIB key on the IPv6 side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BindKey {
    pub(crate) proto: L4Proto,
    pub(crate) addr: Ipv6Addr,
    /// Port, or ICMP identifier.
    pub(crate) port: u16,
}

/// A session as seen from the IPv6 side: binding plus IPv4 server transport
/// address. For ICMP the server has no port of its own (the identifier is
/// the binding's), so `server_port` is 0 and there is one session per
/// (binding, server address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionKey {
    pub(crate) bind: BindKey,
    pub(crate) server: Ipv4Addr,
    pub(crate) server_port: u16,
}

impl SessionKey {
    /// ICMP query sessions have no server port: the identifier is the
    /// binding's (RFC 6146 §3.5.3).
    pub(crate) fn server_port(proto: L4Proto, port: u16) -> u16 {
        if proto == L4Proto::Icmp {
            0
        } else {
            port
        }
    }
}

/// The chains a session is on, each of its own index.
pub(super) mod session_chain {
    /// By the IPv6-side key ([`super::SessionKey`]): outbound packets.
    pub(in super::super) const V6: usize = 0;
    /// By pool4 transport address plus server transport address: inbound.
    pub(in super::super) const V4: usize = 1;
}

/// The chains a binding is on.
pub(super) mod binding_chain {
    /// By the client's transport address.
    pub(in super::super) const V6: usize = 0;
    /// By the pool4 transport address.
    pub(in super::super) const V4: usize = 1;
}

/// The hash of an IPv6-side session key.
pub(super) fn v6_hash(state: &FixedState, k: &SessionKey) -> u64 {
    state.hash_one(k)
}

/// The hash of an IPv4-side session key: protocol, pool4 transport address,
/// server transport address (port 0 for ICMP).
pub(super) fn v4_hash(
    state: &FixedState,
    proto: L4Proto,
    local: SocketAddrV4,
    server: SocketAddrV4,
) -> u64 {
    state.hash_one((proto, local, server))
}

/// The hash of a filtering key: protocol, pool4 transport address, server address.
pub(super) fn server_hash(
    state: &FixedState,
    proto: L4Proto,
    local: SocketAddrV4,
    server: Ipv4Addr,
) -> u64 {
    state.hash_one((proto, local, server))
}

/// The hash of a client transport address.
pub(super) fn bind_hash(state: &FixedState, k: &BindKey) -> u64 {
    state.hash_one(k)
}

/// The hash of a pool4 transport address.
pub(super) fn local_hash(state: &FixedState, proto: L4Proto, local: SocketAddrV4) -> u64 {
    state.hash_one((proto, local))
}

/// Which lifetime a session lives by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimerClass {
    Udp,
    Icmp,
    /// TCP in V6 INIT, TRANS, V4 FIN + V6 FIN RCV.
    TcpTransitory,
    /// TCP established, or closing from one side.
    TcpEstablished,
    /// TCP in V4 INIT (RFC 6146 §4 TCP_INCOMING_SYN).
    TcpIncomingSyn,
}

/// One session (RFC 6146 §3.2).
#[derive(Debug)]
#[repr(align(64))]
pub(super) struct Session {
    pub(super) client: Ipv6Addr,
    pub(super) server: Ipv4Addr,
    /// Pool4 address of the session's binding.
    pub(super) local: Ipv4Addr,
    pub(super) client_port: u16,
    /// 0 for ICMP (see [`SessionKey`]).
    pub(super) server_port: u16,
    pub(super) local_port: u16,
    pub(super) proto: L4Proto,
    pub(super) tcp: Option<TcpState>,
    /// Opened by a packet from the IPv4 side (through the binding).
    pub(super) inbound: bool,
    /// The clock tick of the last packet (see `expiry_wheel`).
    pub(super) tick: u32,
    /// The tick of the expiry wheel slot the session waits in.
    pub(super) due: u32,
    /// Links on the chains of [`session_chain`].
    pub(super) links: [Link; 2],
    /// Neighbours in the wheel slot's list.
    pub(super) prev: Link,
    pub(super) next: Link,
}

impl Session {
    pub(super) fn key(&self) -> SessionKey {
        SessionKey {
            bind: self.bind_key(),
            server: self.server,
            server_port: self.server_port,
        }
    }

    pub(super) fn bind_key(&self) -> BindKey {
        BindKey {
            proto: self.proto,
            addr: self.client,
            port: self.client_port,
        }
    }

    pub(super) fn local(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.local, self.local_port)
    }

    pub(super) fn server(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.server, self.server_port)
    }

    pub(super) fn timer_class(&self) -> TimerClass {
        Self::class_of(self.proto, self.tcp)
    }

    /// The lifetime class of a session of `proto` in TCP state `tcp`.
    pub(super) fn class_of(proto: L4Proto, tcp: Option<TcpState>) -> TimerClass {
        match (proto, tcp) {
            (L4Proto::Udp, _) => TimerClass::Udp,
            (L4Proto::Icmp, _) => TimerClass::Icmp,
            (L4Proto::Tcp, Some(TcpState::V4Init)) => TimerClass::TcpIncomingSyn,
            (L4Proto::Tcp, Some(t)) if t.is_established() => TimerClass::TcpEstablished,
            (L4Proto::Tcp, _) => TimerClass::TcpTransitory,
        }
    }
}

impl Chained for Session {
    fn link(&self, chain: usize) -> Link {
        self.links[chain]
    }

    fn set_link(&mut self, chain: usize, link: Link) {
        self.links[chain] = link;
    }

    fn key_hash(&self, chain: usize, state: &FixedState) -> u64 {
        match chain {
            session_chain::V6 => v6_hash(state, &self.key()),
            _ => v4_hash(state, self.proto, self.local(), self.server()),
        }
    }
}

/// How many sessions a binding has with one server address: what
/// address-dependent filtering asks. One entry per (binding, server
/// address), so that its index never holds a long chain of equal keys (a
/// client scanning one host from one port would otherwise make every
/// removal walk them all).
#[derive(Debug)]
pub(super) struct ServerUse {
    pub(super) local: SocketAddrV4,
    pub(super) server: Ipv4Addr,
    pub(super) proto: L4Proto,
    pub(super) sessions: u32,
    pub(super) link: Link,
}

impl Chained for ServerUse {
    fn link(&self, _: usize) -> Link {
        self.link
    }

    fn set_link(&mut self, _: usize, link: Link) {
        self.link = link;
    }

    fn key_hash(&self, _: usize, state: &FixedState) -> u64 {
        server_hash(state, self.proto, self.local, self.server)
    }
}

/// What one client (`shard::client_of`) holds: the per-client limits count
/// it. Kept only while it holds something.
#[derive(Debug, Default)]
pub(super) struct ClientUse {
    pub(super) client: u128,
    /// Sessions the client opened, those of static bindings aside.
    pub(super) sessions: u32,
    /// Sessions opened from the IPv4 side through its bindings.
    pub(super) inbound: u32,
    /// Dynamic bindings by protocol (TCP, UDP, ICMP).
    pub(super) ports: [u32; 3],
    /// The tick the current one-second window of new bindings began at,
    /// and the bindings created in it (RFC 6888 REQ-4 c).
    pub(super) window: u32,
    pub(super) created: u32,
    /// The pool4 address (index) of its latest dynamic binding: where its
    /// next one goes (paired pooling, RFC 6888 REQ-2), also after a reload
    /// added addresses.
    pub(super) pool_index: u16,
    pub(super) link: Link,
}

impl ClientUse {
    pub(super) fn is_empty(&self) -> bool {
        self.sessions == 0 && self.inbound == 0 && self.ports == [0; 3]
    }
}

/// The hash of a client.
pub(super) fn client_hash(state: &FixedState, client: u128) -> u64 {
    state.hash_one(client)
}

impl Chained for ClientUse {
    fn link(&self, _: usize) -> Link {
        self.link
    }

    fn set_link(&mut self, _: usize, link: Link) {
        self.link = link;
    }

    fn key_hash(&self, _: usize, state: &FixedState) -> u64 {
        client_hash(state, self.client)
    }
}

/// One binding (RFC 6146 §3.1).
#[derive(Debug)]
pub(super) struct Binding {
    pub(super) client: Ipv6Addr,
    pub(super) local: Ipv4Addr,
    pub(super) client_port: u16,
    pub(super) local_port: u16,
    /// Index of `local` in the pool (a pool has at most 65,536 addresses).
    pub(super) pool_index: u16,
    pub(super) proto: L4Proto,
    pub(super) is_static: bool,
    pub(super) sessions: u32,
    /// Links on the chains of [`binding_chain`].
    pub(super) links: [Link; 2],
}

impl Binding {
    pub(super) fn key(&self) -> BindKey {
        BindKey {
            proto: self.proto,
            addr: self.client,
            port: self.client_port,
        }
    }

    pub(super) fn local(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.local, self.local_port)
    }
}

impl Chained for Binding {
    fn link(&self, chain: usize) -> Link {
        self.links[chain]
    }

    fn set_link(&mut self, chain: usize, link: Link) {
        self.links[chain] = link;
    }

    fn key_hash(&self, chain: usize, state: &FixedState) -> u64 {
        match chain {
            binding_chain::V6 => bind_hash(state, &self.key()),
            _ => local_hash(state, self.proto, self.local()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_one_cache_line_and_a_binding_40_bytes() {
        assert_eq!(std::mem::size_of::<Session>(), 64);
        assert!(std::mem::size_of::<Binding>() <= 40);
    }
}
