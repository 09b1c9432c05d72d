//! One packet worker: a thread that owns a TUN queue and a NAT64 shard
//! outright. It waits on its queue (and its mailbox's doorbell), translates
//! what it reads through its packet I/O ([`PacketIo`]: one packet per
//! syscall, or GSO superpackets with offloads), serves its mailbox between
//! batches, and runs its shard's timers. Nothing it touches per packet is
//! shared: not the NAT state, not its counters' cache lines.

use super::counters::PacketCounters;
use super::mailbox::{Mailbox, NatFigures, Posted, Request, PAGE};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tun_rs::{InterruptEvent, SyncDevice};
use xlat64_nat::{Nat64, NatDrop, Verdict};
use xlat64_packet::fragment::packets;
use xlat64_packet::{DropReason, L4Proto};

/// Longest wait between two looks at the session timers.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Mailbox requests served between two batches of packets at most.
const REQUESTS_PER_WAKE: usize = 16;

/// Which way a packet was translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// IPv6 client -> IPv4 server.
    V6ToV4,
    /// IPv4 server -> IPv6 client.
    V4ToV6,
}

/// What a worker's packet I/O works with.
pub(crate) struct Shard {
    pub(crate) nat: Nat64,
    pub(crate) counters: Arc<PacketCounters>,
    /// Every worker's mailbox, by worker index (for hand-offs).
    pub(crate) peers: Arc<[Mailbox]>,
    /// Where binding events go (`[nat64.log] bindings`), if anywhere.
    pub(crate) binding_log: Option<crate::binding_log::Handle>,
    /// A running `xlat64 trace`, if any.
    pub(crate) tracer: Option<super::trace::Tracer>,
}

impl Shard {
    /// Translates one packet into `out`, by its IP version.
    pub(crate) fn translate(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> (Verdict, Direction) {
        match packet.first().map(|b| b >> 4) {
            Some(6) => (self.nat.handle_v6(now, packet, out), Direction::V6ToV4),
            Some(4) => (self.nat.handle_v4(now, packet, out), Direction::V4ToV6),
            Some(_) => (
                Verdict::Drop(NatDrop::Packet(DropReason::BadVersion)),
                Direction::V4ToV6,
            ),
            None => (
                Verdict::Drop(NatDrop::Packet(DropReason::Truncated)),
                Direction::V4ToV6,
            ),
        }
    }

    /// Counts a verdict that writes nothing here (a drop under its reason, a
    /// fragment held for reassembly, a datagram handed to its owner, which
    /// is posted now) or the drop behind an ICMP error; returns, for a
    /// verdict that writes, the length written and whether it is a
    /// translation (else an ICMP error the gateway sends).
    pub(crate) fn output_of(
        &self,
        verdict: Verdict,
        in_len: usize,
        out: &[u8],
    ) -> Option<(usize, bool)> {
        let counters = &*self.counters;
        match verdict {
            Verdict::Forward(len) => Some((len, true)),
            Verdict::Reject(reason, len) => {
                counters.drop(reason);
                tracing::trace!(
                    reason = reason.counter_name(),
                    len = in_len,
                    "packet dropped, ICMP error sent"
                );
                Some((len, false))
            }
            Verdict::Drop(reason) => {
                counters.drop(reason);
                tracing::trace!(
                    reason = reason.counter_name(),
                    len = in_len,
                    "packet dropped"
                );
                None
            }
            Verdict::Held => {
                counters.bump(&counters.fragments_held, 1);
                None
            }
            // Counted by the NAT (`tcp_syns_held`).
            Verdict::SynHeld => None,
            // Counted by the NAT (`icmp_to_host`); written back unchanged.
            Verdict::ToHost(len) => Some((len, false)),
            Verdict::Elsewhere { owner, len } => {
                let posted = self.peers.get(usize::from(owner)).is_some_and(|peer| {
                    peer.try_post(Request::HandOff(out[..len].to_vec())) == Posted::Sent
                });
                if posted {
                    counters.bump(&counters.handed_off, 1);
                } else {
                    counters.bump(&counters.handoffs_dropped, 1);
                }
                None
            }
        }
    }

    /// The copying path of one packet: translates `packet` into `out` and
    /// hands each resulting packet (several for a train of IPv6 fragments)
    /// to `send`, counting what was written and what failed.
    pub(crate) fn translate_and_send(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
        mut send: impl FnMut(&[u8]) -> io::Result<usize>,
    ) {
        let (verdict, direction) = self.translate(now, packet, out);
        if let Some(tracer) = &mut self.tracer {
            tracer.offer(now, packet, direction, &verdict);
            if tracer.is_closed() {
                self.tracer = None;
            }
        }
        let Some((len, translated)) = self.output_of(verdict, packet.len(), out) else {
            return;
        };
        for p in packets(&out[..len]) {
            match send(p) {
                Ok(_) if translated => self.count_translated(direction, 1, p.len() as u64),
                Ok(_) => {}
                Err(e) => {
                    self.counters.bump(&self.counters.tun_tx_errors, 1);
                    tracing::debug!(error = %e, "TUN write failed");
                }
            }
        }
    }

    /// Writes, through `send`, the packets the NAT sends by itself at `now`
    /// (ICMP errors for held SYNs that timed out), built in `out`.
    pub(crate) fn send_own(
        &mut self,
        now: Instant,
        out: &mut [u8],
        mut send: impl FnMut(&[u8]) -> io::Result<usize>,
    ) {
        while let Some(n) = self.nat.poll_transmit(now, out) {
            if let Err(e) = send(&out[..n]) {
                self.counters.bump(&self.counters.tun_tx_errors, 1);
                tracing::debug!(error = %e, "TUN write failed");
            }
        }
    }

    /// Hands the NAT's binding events to the binding log (never waiting).
    fn log_bindings(&mut self) {
        let Some(log) = &self.binding_log else {
            return;
        };
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        while let Some(event) = self.nat.poll_binding_event() {
            log.send(event, now, wall);
        }
    }

    /// Counts `packets` translated packets of `bytes` bytes written in `direction`.
    pub(crate) fn count_translated(&self, direction: Direction, packets: u64, bytes: u64) {
        let c = &*self.counters;
        let (p, b) = match direction {
            Direction::V6ToV4 => (&c.v6_to_v4_packets, &c.v6_to_v4_bytes),
            Direction::V4ToV6 => (&c.v4_to_v6_packets, &c.v4_to_v6_bytes),
        };
        c.bump(p, packets);
        c.bump(b, bytes);
    }
}

/// Moving packets between a TUN queue and a shard: the two ways (with and
/// without offloads) implement it, and the worker loop drives either.
pub(crate) trait PacketIo {
    /// Reads what the queue has (a bounded number of reads), translates it
    /// through `shard`, and writes the results.
    fn drain(&mut self, dev: &SyncDevice, shard: &mut Shard) -> io::Result<()>;

    /// Translates `packet`, which was not read from the queue (a datagram
    /// handed over by another worker), and writes the result.
    fn inject(&mut self, dev: &SyncDevice, shard: &mut Shard, packet: &[u8]);

    /// Writes what the NAT sends by itself at `now` ([`Shard::send_own`]).
    fn send_own(&mut self, dev: &SyncDevice, shard: &mut Shard, now: Instant);
}

/// Runs a worker until `stop` is set: see the module documentation.
pub(crate) fn run(
    dev: &SyncDevice,
    io: &mut impl PacketIo,
    shard: &mut Shard,
    mailbox: &Receiver<Request>,
    doorbell: &InterruptEvent,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut peak = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let wait = shard
            .nat
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        match dev.wait_readable_intr_timeout(doorbell, Some(wait)) {
            Ok(()) => io.drain(dev, shard)?,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                // Reset before reading the mailbox: a request posted after
                // this rings again.
                doorbell.reset()?;
            }
            Err(e) => return Err(e),
        }
        serve(dev, io, shard, mailbox);
        shard.log_bindings();
        let now = Instant::now();
        if shard.nat.poll_timeout().is_some_and(|t| t <= now) {
            shard.nat.handle_timeout(now);
            io.send_own(dev, shard, now);
            shard.log_bindings();
            let sessions = shard.nat.session_count();
            peak = peak.max(sessions);
            // After a flood expired (the tables have shrunk): give the
            // memory back once, not on every expiry.
            if peak >= TRIM_AFTER && sessions < peak / 4 {
                crate::sys::memory::release_free_memory();
                peak = sessions;
            }
        }
    }
}

/// Sessions a worker must have held before it trims the heap once most of
/// them have expired.
const TRIM_AFTER: usize = 65_536;

/// Serves at most [`REQUESTS_PER_WAKE`] mailbox requests.
fn serve(dev: &SyncDevice, io: &mut impl PacketIo, shard: &mut Shard, mailbox: &Receiver<Request>) {
    for request in mailbox.try_iter().take(REQUESTS_PER_WAKE) {
        match request {
            Request::HandOff(datagram) => io.inject(dev, shard, &datagram),
            Request::Figures(reply) => {
                let nat = &shard.nat;
                let (in_progress, bytes) = nat.fragments_in_progress();
                let mut pool4_use = Vec::new();
                nat.pool4_use(&mut pool4_use);
                let _ = reply.send(NatFigures {
                    sessions: nat.session_count() as u64,
                    bindings: nat.bib_count() as u64,
                    port_blocks: nat.port_block_count() as u64,
                    pool4_use,
                    sessions_created: nat.sessions_created(),
                    sessions_expired: nat.sessions_expired(),
                    sessions_by_protocol: [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp]
                        .map(|p| nat.sessions_of(p)),
                    counters: nat.counters(),
                    fragments_in_progress: in_progress as u64,
                    fragments_bytes_held: bytes as u64,
                });
            }
            Request::Sessions(start, reply) => {
                let mut page = Vec::with_capacity(PAGE);
                shard.nat.sessions_page(start, PAGE, &mut page);
                let _ = reply.send(page);
            }
            Request::Trace(tracer, reply) => {
                shard.tracer = tracer;
                let _ = reply.send(());
            }
            Request::Reconfigure(config, reply) => {
                shard.nat.reconfigure(&config);
                let _ = reply.send(());
            }
            Request::Bib(start, reply) => {
                let mut page = Vec::with_capacity(PAGE);
                shard.nat.bib_page(start, PAGE, &mut page);
                let _ = reply.send(page);
            }
        }
    }
}
