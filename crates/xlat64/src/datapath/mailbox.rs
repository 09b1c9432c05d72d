//! What reaches a worker besides packets from its queue: requests of the
//! control socket, and datagrams handed over by other workers. Each worker
//! has a bounded channel and a doorbell that wakes it from its wait on the
//! device; it serves its mailbox between batches of packets, so that a
//! request never holds anything the packet path needs.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::oneshot;
use tun_rs::InterruptEvent;
use xlat64_nat::{BibEntry, Nat64Config, NatCounters, SessionEntry};

/// Requests a worker's mailbox holds at most; beyond, a hand-off is dropped
/// (counted) and a control request is retried.
pub(crate) const MAILBOX_DEPTH: usize = 256;

/// Entries in one page of a listing: a worker builds a page between two
/// batches of packets in well under a millisecond.
pub(crate) const PAGE: usize = 2048;

/// The NAT64 figures a worker reports on request.
#[derive(Debug, Default, Clone)]
pub struct NatFigures {
    /// Sessions held now.
    pub sessions: u64,
    /// Bindings held now.
    pub bindings: u64,
    /// Port blocks clients hold now (RFC 7422).
    pub port_blocks: u64,
    /// Dynamic bindings per pool4 address in use, by protocol (TCP, UDP, ICMP).
    pub pool4_use: Vec<(std::net::Ipv4Addr, [u32; 3])>,
    /// Sessions created since start.
    pub sessions_created: u64,
    /// Sessions expired since start.
    pub sessions_expired: u64,
    /// Sessions created and expired, by protocol: TCP, UDP, ICMP.
    pub sessions_by_protocol: [(u64, u64); 3],
    /// ICMP error, fragmentation and reassembly counters.
    pub counters: NatCounters,
    /// Datagrams being reassembled.
    pub fragments_in_progress: u64,
    /// Bytes held by them.
    pub fragments_bytes_held: u64,
}

/// One message to a worker.
pub(crate) enum Request {
    /// A datagram (reassembled elsewhere) this worker owns: translate it.
    HandOff(Vec<u8>),
    /// Report the NAT64 figures.
    Figures(oneshot::Sender<NatFigures>),
    /// The sessions at positions `start..start + PAGE`.
    Sessions(usize, oneshot::Sender<Vec<SessionEntry>>),
    /// The bindings at positions `start..start + PAGE`.
    Bib(usize, oneshot::Sender<Vec<BibEntry>>),
    /// Apply the live settings of this configuration (a reload).
    Reconfigure(Arc<Nat64Config>, oneshot::Sender<()>),
    /// Start (or with `None` stop) tracing packets.
    Trace(Option<super::trace::Tracer>, oneshot::Sender<()>),
}

/// What became of a posted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    /// In the mailbox; the worker has been woken.
    Sent,
    /// The mailbox is full.
    Full,
    /// The worker is gone.
    Gone,
}

/// The sending side of a worker's mailbox.
#[derive(Clone)]
pub(crate) struct Mailbox {
    sender: SyncSender<Request>,
    doorbell: Arc<InterruptEvent>,
}

impl Mailbox {
    /// A mailbox and its receiving side, woken through `doorbell`.
    pub(crate) fn new(doorbell: Arc<InterruptEvent>) -> (Mailbox, Receiver<Request>) {
        let (sender, receiver) = std::sync::mpsc::sync_channel(MAILBOX_DEPTH);
        (Mailbox { sender, doorbell }, receiver)
    }

    /// Posts `request` without waiting.
    pub(crate) fn try_post(&self, request: Request) -> Posted {
        match self.sender.try_send(request) {
            Ok(()) => {
                self.ring();
                Posted::Sent
            }
            Err(TrySendError::Full(_)) => Posted::Full,
            Err(TrySendError::Disconnected(_)) => Posted::Gone,
        }
    }

    /// Wakes the worker (to look at its mailbox or its stop flag).
    pub(crate) fn ring(&self) {
        if let Err(e) = self.doorbell.trigger() {
            tracing::debug!(error = %e, "cannot wake a packet worker");
        }
    }
}
