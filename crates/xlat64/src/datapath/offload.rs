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

use super::worker::{Direction, PacketIo, Shard};
use std::io;
use std::time::Instant;
use tun_rs::{GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};
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
    fn translate(&mut self, dev: &SyncDevice, shard: &mut Shard, now: Instant, packet: &[u8]) {
        if self.free() == 0 {
            self.flush(dev, shard);
        }
        let bound = shard.nat.output_bound(packet);
        if OFFSET + bound > BUF_CAPACITY {
            let mut scratch = std::mem::take(&mut self.scratch);
            if scratch.len() < bound {
                scratch.resize(shard.nat.max_output_len().max(bound), 0);
            }
            let (verdict, direction) = shard.translate(now, packet, &mut scratch);
            if let Some((len, translated)) = shard.output_of(verdict, packet.len(), &scratch) {
                self.push_copies(dev, shard, &scratch[..len], direction, translated);
            }
            self.scratch = scratch;
            return;
        }
        let buf = &mut self.bufs[self.used];
        buf.resize(OFFSET + bound, 0);
        let (verdict, direction) = shard.translate(now, packet, &mut buf[OFFSET..]);
        let Some((len, translated)) = shard.output_of(verdict, packet.len(), &buf[OFFSET..]) else {
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
        self.push_copies(dev, shard, &spill, direction, translated);
        self.spill = spill;
    }

    /// Copies each packet of `out` into a buffer of its own, flushing when
    /// the batch is full.
    fn push_copies(
        &mut self,
        dev: &SyncDevice,
        shard: &Shard,
        out: &[u8],
        direction: Direction,
        translated: bool,
    ) {
        for packet in packets(out) {
            if self.free() == 0 {
                self.flush(dev, shard);
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

    fn flush(&mut self, dev: &SyncDevice, shard: &Shard) {
        let counters = &*shard.counters;
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
                shard.count_translated(Direction::V6ToV4, self.v6_to_v4.0, self.v6_to_v4.1);
                shard.count_translated(Direction::V4ToV6, self.v4_to_v6.0, self.v4_to_v6.1);
                let (superpackets, segments) = superpackets(bufs);
                counters.bump(&counters.tun_tx_gro_superpackets, superpackets);
                counters.bump(&counters.tun_tx_gro_segments, segments);
            }
            Err(e) => {
                // send_multiple goes on after a failed write and reports the
                // last error, not which packets were lost: count them all.
                counters.bump(&counters.tun_tx_errors, packets);
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

/// The packet I/O with offloads: buffers for reads (the raw read, header
/// and superpacket, and the packets it is split into) and the write batch.
pub(crate) struct Offload {
    raw: Vec<u8>,
    split: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    batch: Batch,
}

impl Offload {
    /// Buffers for `dev`: its MTU bounds each split packet (the kernel only
    /// hands the device segments that fit its MTU).
    pub(crate) fn new(dev: &SyncDevice) -> Offload {
        let mtu = match dev.mtu() {
            Ok(mtu) => usize::from(mtu).max(1280),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the TUN MTU; split buffers sized for 64 KiB");
                MAX_SUPERPACKET
            }
        };
        Offload {
            raw: vec![0u8; OFFSET + MAX_SUPERPACKET + 1],
            split: (0..BATCH).map(|_| vec![0u8; mtu]).collect(),
            sizes: vec![0; BATCH],
            batch: Batch::new(),
        }
    }
}

impl PacketIo for Offload {
    /// Reads what the device has (at most [`MAX_READS_PER_WAKE`] reads),
    /// translates it, and writes it in batches.
    fn drain(&mut self, dev: &SyncDevice, shard: &mut Shard) -> io::Result<()> {
        let counters = shard.counters.clone();
        for _ in 0..MAX_READS_PER_WAKE {
            let n = match dev.recv_multiple(&mut self.raw, &mut self.split, &mut self.sizes, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Not from the read itself: tun-rs could not decode or split what
                // was read. The superpacket is lost; count it and go on.
                Err(e) if e.raw_os_error().is_none() => {
                    counters.bump(&counters.tun_rx_gso_errors, 1);
                    tracing::debug!(error = %e, "TUN read dropped: cannot split the superpacket");
                    continue;
                }
                Err(e) => {
                    self.batch.flush(dev, shard);
                    return Err(e);
                }
            };
            counters.bump(&counters.tun_rx_packets, n as u64);
            if n > 1 {
                counters.bump(&counters.tun_rx_gso_superpackets, 1);
                counters.bump(&counters.tun_rx_gso_segments, n as u64);
            }
            if self.batch.free() < n {
                self.batch.flush(dev, shard);
            }
            let now = Instant::now();
            for (buf, &size) in self.split.iter().zip(&self.sizes).take(n) {
                self.batch.translate(dev, shard, now, &buf[..size]);
            }
        }
        self.batch.flush(dev, shard);
        Ok(())
    }

    fn inject(&mut self, dev: &SyncDevice, shard: &mut Shard, packet: &[u8]) {
        self.batch.translate(dev, shard, Instant::now(), packet);
        self.batch.flush(dev, shard);
    }
}
