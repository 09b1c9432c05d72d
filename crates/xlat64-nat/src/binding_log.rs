//! Binding events for the operator's log (RFC 6888 REQ-12, RFC 7422 §1:
//! who held which IPv4 transport address, and when): one event when a
//! dynamic binding (with port blocks: a block) is created and one when it
//! is removed. The NAT queues
//! them (bounded, allocated once) and the daemon drains them after each
//! batch of packets and writes them off the packet path.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;
use xlat64_packet::L4Proto;

/// Events queued at most between two drains; more are dropped and counted.
const QUEUE: usize = 4096;

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingChange {
    /// Created for a client's first flow from a transport address.
    Created,
    /// Removed with its last session.
    Removed,
}

impl BindingChange {
    /// `"create"` or `"delete"`, as the log writes it.
    pub const fn name(self) -> &'static str {
        match self {
            BindingChange::Created => "create",
            BindingChange::Removed => "delete",
        }
    }
}

/// What a client held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// One binding.
    Binding {
        /// The protocol.
        proto: L4Proto,
        /// The client's transport address.
        v6_client: SocketAddrV6,
        /// The pool4 transport address it held.
        v4_local: SocketAddrV4,
    },
    /// A port block (RFC 7422): ports `first..=last` of `v4`, for every
    /// protocol, held by a client (an address, or with a client prefix
    /// shorter than 128 a subscriber's prefix).
    Block {
        /// The client: its address, or its prefix's first address.
        client: Ipv6Addr,
        /// The client's prefix length (128: one address).
        client_prefix: u8,
        /// The pool4 address.
        v4: Ipv4Addr,
        /// The block's first port.
        first: u16,
        /// The block's last port.
        last: u16,
    },
}

/// One binding (or port block) event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingEvent {
    /// When.
    pub at: Instant,
    /// Created or removed.
    pub change: BindingChange,
    /// What was created or removed.
    pub held: Held,
}

/// The queue of events, or nothing when the log is off.
#[derive(Debug)]
pub(crate) struct BindingEvents {
    queue: Option<VecDeque<BindingEvent>>,
    dropped: u64,
}

impl BindingEvents {
    /// A queue when `enabled`, else nothing is kept.
    pub(crate) fn new(enabled: bool) -> Self {
        BindingEvents {
            queue: enabled.then(|| VecDeque::with_capacity(QUEUE)),
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, event: BindingEvent) {
        if let Some(q) = &mut self.queue {
            if q.len() < QUEUE {
                q.push_back(event);
            } else {
                self.dropped += 1;
            }
        }
    }

    pub(crate) fn pop(&mut self) -> Option<BindingEvent> {
        self.queue.as_mut()?.pop_front()
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}
