//! The packet loop with TUN offloads: every read may carry a GSO superpacket
//! (up to 64 KiB of one TCP or UDP flow behind one virtio-net header), which
//! tun-rs splits into MTU-sized packets; each is translated by the NAT64 core
//! into a batch, and the batch is written with GRO coalescing, so that the
//! kernel again gets superpackets (as in wireguard-go's `tun_linux.go`).
//!
//! Segment sizes stay consistent because translation never touches the
//! transport payload: a coalesced superpacket keeps the payload size of its
//! segments as `gso_size`, and only the IP header differs (IPv6 40 bytes,
//! IPv4 20 without options). The kernel re-segments it into packets 20 bytes
//! shorter (IPv6 -> IPv4) or longer (IPv4 -> IPv6) than the ones it handed
//! over, exactly the packets the one-packet path writes; forwarding then
//! checks each segment against the egress MTU as for any packet.
//!
//! Buffers are allocated once, when the loop starts; split packets are sized
//! by the device MTU read then (a packet larger than that, after raising the
//! MTU under a running daemon, is lost and counted in `tun_rx_gso_errors`).
//! Batch buffers never grow past one superpacket: a packet whose output may
//! be larger (a fragment completing a datagram of up to 64 KiB, then maybe
//! cut into IPv6 fragments) is translated into a scratch buffer and its
//! packets copied into the batch one by one.

use crate::stats::PacketCounters;
use crate::tun::{count_translated, output_of, run_timers, translate, wait_for_timers, Direction};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;
use tun_rs::{GROTable, InterruptEvent, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};
use xlat64_nat::Nat64;
use xlat64_packet::fragment::packets;

/// Packets a batch holds, and segments one read may be split into. A 64 KiB
/// TCP superpacket of 536-byte segments (the smallest default MSS) has 123.
const BATCH: usize = IDEAL_BATCH_SIZE;
/// Where a packet starts in a batch buffer: the virtio-net header goes before it.
const OFFSET: usize = VIRTIO_NET_HDR_LEN;
/// Largest packet the kernel writes or reads through a TUN device with GSO.
const MAX_SUPERPACKET: usize = 65535;
/// Reads between two looks at the stop event and the session timers.
const MAX_READS_PER_WAKE: usize = 64;
/// Capacity of a batch buffer: a superpacket behind the virtio-net header,
/// with room for GRO's own header copy.
const BUF_CAPACITY: usize = 2 * OFFSET + MAX_SUPERPACKET;
/// `virtio_net_hdr.gso_type` of a packet that is not a superpacket.
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;

/// Translated packets waiting to be written with one [`SyncDevice::send_multiple`].
struct Batch {
    /// Each holds `OFFSET` bytes of room for the virtio-net header, then a
    /// packet; capacity for a whole superpacket, since GRO appends the
    /// payload of later packets of a flow to the first one.
    bufs: Vec<Vec<u8>>,
    /// Buffers in use, from the start.
    used: usize,
    /// Per direction: packets and bytes in the batch, counted once written.
    v6_to_v4: (u64, u64),
    v4_to_v6: (u64, u64),
    gro: GROTable,
    /// Packets after the first of a fragment train, before they get buffers.
    spill: Vec<u8>,
    /// Output of packets that may complete a reassembled datagram (sized on
    /// first use to the NAT's largest output, then kept).
    scratch: Vec<u8>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            // GRO only appends while `2 * OFFSET + coalesced length` fits the
            // capacity, so this capacity bounds a superpacket at MAX_SUPERPACKET.
            bufs: (0..BATCH)
                .map(|_| Vec::with_capacity(BUF_CAPACITY))
                .collect(),
            used: 0,
            v6_to_v4: (0, 0),
            v4_to_v6: (0, 0),
            gro: GROTable::new(),
            spill: Vec::with_capacity(2 * MAX_SUPERPACKET),
            scratch: Vec::new(),
        }
    }

    fn free(&self) -> usize {
        BATCH - self.used
    }

    /// Translates `packet` into the next free buffer; a dropped packet is
    /// counted and takes no buffer. The caller makes sure one is free.
    fn translate(
        &mut self,
        dev: &SyncDevice,
        nat: &mut Nat64,
        now: Instant,
        packet: &[u8],
        counters: &PacketCounters,
    ) {
        if self.free() == 0 {
            self.flush(dev, counters);
        }
        let bound = nat.output_bound(packet);
        if OFFSET + bound > BUF_CAPACITY {
            let mut scratch = std::mem::take(&mut self.scratch);
            if scratch.len() < bound {
                scratch.resize(nat.max_output_len().max(bound), 0);
            }
            let (verdict, direction) = translate(nat, now, packet, &mut scratch);
            if let Some((len, translated)) = output_of(counters, verdict, packet.len()) {
                self.push_copies(dev, counters, &scratch[..len], direction, translated);
            }
            self.scratch = scratch;
            return;
        }
        let buf = &mut self.bufs[self.used];
        buf.resize(OFFSET + bound, 0);
        let (verdict, direction) = translate(nat, now, packet, &mut buf[OFFSET..]);
        let Some((len, translated)) = output_of(counters, verdict, packet.len()) else {
            return;
        };
        buf.truncate(OFFSET + len);
        let first_len = packets(&buf[OFFSET..]).next().map_or(0, <[u8]>::len);
        // A train of IPv6 fragments: one buffer per packet. Rare, so the
        // rest goes through a spill buffer rather than clever borrows.
        self.spill.clear();
        if first_len < len {
            self.spill.extend_from_slice(&buf[OFFSET + first_len..]);
            buf.truncate(OFFSET + first_len);
        }
        self.push(direction, first_len, translated);
        let spill = std::mem::take(&mut self.spill);
        self.push_copies(dev, counters, &spill, direction, translated);
        self.spill = spill;
    }

    /// Copies each packet of `out` into a buffer of its own, flushing when
    /// the batch is full.
    fn push_copies(
        &mut self,
        dev: &SyncDevice,
        counters: &PacketCounters,
        out: &[u8],
        direction: Direction,
        translated: bool,
    ) {
        for packet in packets(out) {
            if self.free() == 0 {
                self.flush(dev, counters);
            }
            let buf = &mut self.bufs[self.used];
            buf.clear();
            buf.resize(OFFSET, 0);
            buf.extend_from_slice(packet);
            self.push(direction, packet.len(), translated);
        }
    }

    /// Takes the current buffer into the batch; counts it when translated.
    fn push(&mut self, direction: Direction, len: usize, translated: bool) {
        self.used += 1;
        if !translated {
            return;
        }
        let tally = match direction {
            Direction::V6ToV4 => &mut self.v6_to_v4,
            Direction::V4ToV6 => &mut self.v4_to_v6,
        };
        tally.0 += 1;
        tally.1 += len as u64;
    }

    fn flush(&mut self, dev: &SyncDevice, counters: &PacketCounters) {
        if self.used == 0 {
            return;
        }
        let bufs = &mut self.bufs[..self.used];
        // GRO writes a header in front of every packet it sends, none in
        // front of those it appended elsewhere; cleared headers make the
        // superpackets countable afterwards.
        for buf in bufs.iter_mut() {
            buf[..OFFSET].fill(0);
        }
        let packets = self.used as u64;
        match dev.send_multiple(&mut self.gro, bufs, OFFSET) {
            Ok(_) => {
                count_translated(
                    counters,
                    Direction::V6ToV4,
                    self.v6_to_v4.0,
                    self.v6_to_v4.1,
                );
                count_translated(
                    counters,
                    Direction::V4ToV6,
                    self.v4_to_v6.0,
                    self.v4_to_v6.1,
                );
                let (superpackets, segments) = superpackets(bufs);
                counters
                    .tun_tx_gro_superpackets
                    .fetch_add(superpackets, Ordering::Relaxed);
                counters
                    .tun_tx_gro_segments
                    .fetch_add(segments, Ordering::Relaxed);
            }
            Err(e) => {
                // send_multiple goes on after a failed write and reports the
                // last error, not which packets were lost: count them all.
                counters.tun_tx_errors.fetch_add(packets, Ordering::Relaxed);
                tracing::debug!(error = %e, packets, "TUN batched write failed");
            }
        }
        self.used = 0;
        self.v6_to_v4 = (0, 0);
        self.v4_to_v6 = (0, 0);
    }
}

/// The superpackets among written buffers and the packets coalesced into
/// them, from the virtio-net headers GRO wrote (`struct virtio_net_hdr`,
/// native byte order as TUN uses without TUNSETVNETBE/LE: flags, gso_type,
/// hdr_len, gso_size, csum_start, csum_offset).
fn superpackets(bufs: &[Vec<u8>]) -> (u64, u64) {
    let (mut superpackets, mut segments) = (0, 0);
    for buf in bufs {
        if buf.len() < OFFSET || buf[1] == VIRTIO_NET_HDR_GSO_NONE {
            continue;
        }
        let hdr_len = usize::from(u16::from_ne_bytes([buf[2], buf[3]]));
        let gso_size = usize::from(u16::from_ne_bytes([buf[4], buf[5]]));
        let payload = (buf.len() - OFFSET).saturating_sub(hdr_len);
        if gso_size > 0 && payload > 0 {
            superpackets += 1;
            segments += payload.div_ceil(gso_size) as u64;
        }
    }
    (superpackets, segments)
}

/// Buffers for reads: the raw read (header and superpacket) and the packets
/// it is split into.
struct Reads {
    raw: Vec<u8>,
    split: Vec<Vec<u8>>,
    sizes: Vec<usize>,
}

impl Reads {
    /// `mtu` bounds each split packet: the kernel only hands the device
    /// segments that fit its MTU.
    fn new(mtu: usize) -> Reads {
        Reads {
            raw: vec![0u8; OFFSET + MAX_SUPERPACKET + 1],
            split: (0..BATCH).map(|_| vec![0u8; mtu]).collect(),
            sizes: vec![0; BATCH],
        }
    }
}

/// The packet loop with offloads; see the module documentation.
pub(crate) fn packet_loop(
    dev: &SyncDevice,
    nat: &Mutex<Nat64>,
    counters: &PacketCounters,
    stop: &InterruptEvent,
) -> io::Result<()> {
    let mtu = match dev.mtu() {
        Ok(mtu) => usize::from(mtu).max(1280),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the TUN MTU; split buffers sized for 64 KiB");
            MAX_SUPERPACKET
        }
    };
    let mut reads = Reads::new(mtu);
    let mut batch = Batch::new();
    loop {
        let wait = wait_for_timers(nat);
        match dev.wait_readable_intr_timeout(stop, Some(wait)) {
            Ok(()) => drain(dev, nat, counters, &mut reads, &mut batch)?,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                if stop.is_trigger() {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        run_timers(&mut nat.lock().expect("NAT lock poisoned"), now);
    }
}

/// Reads what the device has (at most [`MAX_READS_PER_WAKE`] reads),
/// translates it, and writes it in batches.
fn drain(
    dev: &SyncDevice,
    nat: &Mutex<Nat64>,
    counters: &PacketCounters,
    reads: &mut Reads,
    batch: &mut Batch,
) -> io::Result<()> {
    for _ in 0..MAX_READS_PER_WAKE {
        let n = match dev.recv_multiple(&mut reads.raw, &mut reads.split, &mut reads.sizes, 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Not from the read itself: tun-rs could not decode or split what
            // was read. The superpacket is lost; count it and go on.
            Err(e) if e.raw_os_error().is_none() => {
                counters.tun_rx_gso_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "TUN read dropped: cannot split the superpacket");
                continue;
            }
            Err(e) => {
                batch.flush(dev, counters);
                return Err(e);
            }
        };
        counters
            .tun_rx_packets
            .fetch_add(n as u64, Ordering::Relaxed);
        if n > 1 {
            counters
                .tun_rx_gso_superpackets
                .fetch_add(1, Ordering::Relaxed);
            counters
                .tun_rx_gso_segments
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        if batch.free() < n {
            batch.flush(dev, counters);
        }
        let now = Instant::now();
        let mut nat = nat.lock().expect("NAT lock poisoned");
        for (buf, &size) in reads.split.iter().zip(&reads.sizes).take(n) {
            batch.translate(dev, &mut nat, now, &buf[..size], counters);
        }
    }
    batch.flush(dev, counters);
    Ok(())
}
