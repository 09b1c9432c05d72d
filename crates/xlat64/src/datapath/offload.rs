//! Packet I/O with TUN offloads: every read carries a virtio-net header and
//! may be a GSO superpacket (up to 64 KiB of one TCP or UDP flow). A
//! superpacket is translated as one unit, in place: the NAT64 core rewrites
//! the IP header once and the transport header's ports (one session lookup),
//! the payload is neither copied nor summed, and the virtio-net header is
//! adjusted for the other family (GSO type TCPv6 <-> TCPv4, header length,
//! checksum start 20 bytes earlier or later, segment size kept: the core
//! checks that segments 20 bytes longer still fit the IPv6 MTU). The kernel
//! then cuts the translated superpacket into segments as it would for a
//! local sender, with correct checksums: a checksum left to offload
//! (`NEEDS_CSUM`) leaves with the new pseudo-header's sum in its field.
//!
//! What the core does not translate in place (fragments, ICMP errors,
//! packets to drop or answer, segments too big for the IPv6 side) goes the
//! copying way: a superpacket is split into packets with complete checksums
//! (tun-rs's `gso_split`, as wireguard-go does), a single packet gets its
//! checksum completed, and each is translated into a separate buffer and
//! written with an empty virtio-net header.
//!
//! Buffers are allocated once, when the worker starts.

use super::worker::{Direction, PacketIo, Shard};
use std::io::{self, IoSlice};
use std::time::Instant;
use tun_rs::{gso_split, SyncDevice, VirtioNetHdr, VIRTIO_NET_HDR_LEN};
use xlat64_nat::InPlace;
use xlat64_packet::partial_checksum;

/// Where a read starts in the frame buffer: room for the IPv6 header being
/// 20 bytes longer than the IPv4 one it replaces, and for the virtio-net
/// header in front of it.
const HEADROOM: usize = 64;
/// Size of the virtio-net header (no mergeable buffers).
const VNET: usize = VIRTIO_NET_HDR_LEN;
/// Largest packet the kernel reads or writes through a TUN device with GSO.
const MAX_SUPERPACKET: usize = 65535;
/// Reads between two looks at the mailbox and the session timers.
const MAX_READS_PER_WAKE: usize = 64;
/// Segments one superpacket may be split into on the copying path: a 64 KiB
/// TCP superpacket of 536-byte segments (the smallest default MSS) has 123.
const MAX_SEGMENTS: usize = 128;

/// `virtio_net_hdr.flags` and `gso_type` values (`linux/virtio_net.h`).
mod vnet {
    pub(super) const F_NEEDS_CSUM: u8 = 1;
    pub(super) const GSO_NONE: u8 = 0;
    pub(super) const GSO_TCPV4: u8 = 1;
    pub(super) const GSO_TCPV6: u8 = 4;
    pub(super) const GSO_UDP_L4: u8 = 5;
    pub(super) const GSO_ECN: u8 = 0x80;
}

/// The packet I/O with offloads; see the module documentation.
pub(crate) struct Offload {
    /// One read: headroom, virtio-net header, packet.
    frame: Vec<u8>,
    /// The copying path: a superpacket split into packets, and their sizes.
    split: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// The copying path's translation output.
    out: Vec<u8>,
}

impl Offload {
    /// Buffers for `dev`, whose MTU bounds each split packet, and for
    /// outputs up to `max_output` bytes (the NAT's bound).
    pub(crate) fn new(dev: &SyncDevice, max_output: usize) -> Offload {
        let mtu = match dev.mtu() {
            Ok(mtu) => usize::from(mtu).max(1280),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the TUN MTU; split buffers sized for 64 KiB");
                MAX_SUPERPACKET
            }
        };
        Offload {
            frame: vec![0u8; HEADROOM + VNET + MAX_SUPERPACKET + 1],
            split: (0..MAX_SEGMENTS).map(|_| vec![0u8; mtu]).collect(),
            sizes: vec![0; MAX_SEGMENTS],
            out: vec![0u8; max_output.max(MAX_SUPERPACKET + 160)],
        }
    }

    /// Translates the read at `frame[HEADROOM..HEADROOM + n]` (header and
    /// packet) and writes the result.
    fn handle_read(&mut self, dev: &SyncDevice, shard: &mut Shard, n: usize) {
        let counters = &*shard.counters;
        let Ok(hdr) = VirtioNetHdr::decode(&self.frame[HEADROOM..HEADROOM + n]) else {
            counters.bump(&counters.tun_rx_gso_errors, 1);
            return;
        };
        let start = HEADROOM + VNET;
        let len = n - VNET;
        let gso = hdr.gso_type & !vnet::GSO_ECN != vnet::GSO_NONE;
        let segments = if gso {
            superpacket_segments(&self.frame[start..start + len], &hdr)
        } else {
            1
        };
        counters.bump(&counters.tun_rx_packets, segments);
        if gso {
            counters.bump(&counters.tun_rx_gso_superpackets, 1);
            counters.bump(&counters.tun_rx_gso_segments, segments);
        }
        let gso_size = gso.then_some(hdr.gso_size);
        let now = Instant::now();
        match shard
            .nat
            .translate_in_place(now, &mut self.frame, start, len, gso_size)
        {
            InPlace::Translated { start, len } => {
                if let Some(tracer) = &mut shard.tracer {
                    let way = match self.frame.get(start).map(|b| b >> 4) {
                        Some(4) => Direction::V6ToV4,
                        _ => Direction::V4ToV6,
                    };
                    tracer.offer_translated(now, &self.frame[start..start + len], way);
                }
                self.send_in_place(dev, shard, &hdr, start, len, segments)
            }
            InPlace::Fallback if gso => self.split_and_copy(dev, shard, hdr, start, len),
            InPlace::Fallback => {
                let packet = &mut self.frame[start..start + len];
                if hdr.flags & vnet::F_NEEDS_CSUM != 0 {
                    let done = partial_checksum::complete(
                        packet,
                        usize::from(hdr.csum_start),
                        usize::from(hdr.csum_offset),
                    );
                    if !done {
                        shard.counters.bump(&shard.counters.tun_rx_gso_errors, 1);
                        return;
                    }
                }
                copy_translate(dev, shard, &mut self.out, now, packet);
            }
        }
    }

    /// Writes the packet translated in place at `frame[start..start + len]`
    /// behind a virtio-net header for its new family.
    fn send_in_place(
        &mut self,
        dev: &SyncDevice,
        shard: &Shard,
        hdr: &VirtioNetHdr,
        start: usize,
        len: usize,
        segments: u64,
    ) {
        let packet = &mut self.frame[start..start + len];
        let v6 = packet[0] >> 4 == 6;
        let mut out = VirtioNetHdr {
            flags: hdr.flags,
            gso_type: hdr.gso_type,
            hdr_len: 0,
            gso_size: hdr.gso_size,
            csum_start: 0,
            csum_offset: 0,
        };
        if hdr.flags & vnet::F_NEEDS_CSUM != 0 {
            match partial_checksum::set_pseudo_header_sum(packet) {
                Some((at, field)) => {
                    out.csum_start = at as u16;
                    out.csum_offset = field as u16;
                }
                // ICMP echo: the core computed its whole checksum.
                None => out.flags &= !vnet::F_NEEDS_CSUM,
            }
        }
        let ecn = hdr.gso_type & vnet::GSO_ECN;
        match hdr.gso_type & !vnet::GSO_ECN {
            vnet::GSO_TCPV4 | vnet::GSO_TCPV6 => {
                let ip_len = if v6 { 40 } else { 20 };
                let tcp_len = usize::from(packet.get(ip_len + 12).map_or(5, |b| b >> 4)) * 4;
                out.gso_type = ecn | if v6 { vnet::GSO_TCPV6 } else { vnet::GSO_TCPV4 };
                out.hdr_len = (ip_len + tcp_len) as u16;
            }
            vnet::GSO_UDP_L4 => out.hdr_len = (if v6 { 40 } else { 20 }) + 8,
            _ => {}
        }
        let header_at = start - VNET;
        if out.encode(&mut self.frame[header_at..start]).is_err() {
            shard.counters.bump(&shard.counters.tun_tx_errors, segments);
            return;
        }
        let direction = if v6 {
            Direction::V4ToV6
        } else {
            Direction::V6ToV4
        };
        match dev.send(&self.frame[header_at..start + len]) {
            Ok(_) => {
                shard.count_translated(direction, segments, len as u64);
                if segments > 1 {
                    let c = &shard.counters;
                    c.bump(&c.tun_tx_gso_superpackets, 1);
                    c.bump(&c.tun_tx_gso_segments, segments);
                }
            }
            Err(e) => {
                shard.counters.bump(&shard.counters.tun_tx_errors, segments);
                tracing::debug!(error = %e, "TUN write failed");
            }
        }
    }

    /// The copying path of a superpacket: split into packets with complete
    /// checksums, each translated on its own.
    fn split_and_copy(
        &mut self,
        dev: &SyncDevice,
        shard: &mut Shard,
        mut hdr: VirtioNetHdr,
        start: usize,
        len: usize,
    ) {
        let counters = shard.counters.clone();
        let input = &mut self.frame[start..start + len];
        let is_v6 = input[0] >> 4 == 6;
        // The kernel's hdr_len may cover a whole first segment on the
        // forwarding path: gso_split wants the headers' length.
        let Some(l4_len) = transport_header_len(input, &hdr) else {
            counters.bump(&counters.tun_rx_gso_errors, 1);
            return;
        };
        hdr.hdr_len = hdr.csum_start.saturating_add(l4_len as u16);
        let n = match gso_split(input, hdr, &mut self.split, &mut self.sizes, 0, is_v6) {
            Ok(n) => n,
            Err(e) => {
                counters.bump(&counters.tun_rx_gso_errors, 1);
                tracing::debug!(error = %e, "TUN read dropped: cannot split the superpacket");
                return;
            }
        };
        counters.bump(&counters.tun_rx_gso_split, 1);
        let now = Instant::now();
        for i in 0..n {
            let size = self.sizes[i];
            copy_translate(dev, shard, &mut self.out, now, &self.split[i][..size]);
        }
    }
}

/// The copying path of one packet with a complete checksum: each resulting
/// packet written behind an empty virtio-net header.
fn copy_translate(
    dev: &SyncDevice,
    shard: &mut Shard,
    out: &mut [u8],
    now: Instant,
    packet: &[u8],
) {
    let empty = [0u8; VNET];
    shard.translate_and_send(now, packet, out, |p| {
        dev.send_vectored(&[IoSlice::new(&empty), IoSlice::new(p)])
    });
}

/// The length of a superpacket's transport header, which starts at
/// `csum_start`: 8 for UDP, the data offset for TCP (`None` outside 20..=60).
fn transport_header_len(packet: &[u8], hdr: &VirtioNetHdr) -> Option<usize> {
    match hdr.gso_type & !vnet::GSO_ECN {
        vnet::GSO_UDP_L4 => Some(8),
        _ => packet
            .get(usize::from(hdr.csum_start) + 12)
            .map(|b| usize::from(b >> 4) * 4)
            .filter(|l| (20..=60).contains(l)),
    }
}

/// How many segments a superpacket will be cut into: its transport payload
/// over the segment size.
fn superpacket_segments(packet: &[u8], hdr: &VirtioNetHdr) -> u64 {
    let l4_at = usize::from(hdr.csum_start);
    let l4_len = transport_header_len(packet, hdr).unwrap_or(20);
    let payload = packet.len().saturating_sub(l4_at + l4_len);
    if hdr.gso_size == 0 {
        1
    } else {
        payload.div_ceil(usize::from(hdr.gso_size)).max(1) as u64
    }
}

impl PacketIo for Offload {
    fn drain(&mut self, dev: &SyncDevice, shard: &mut Shard) -> io::Result<()> {
        for _ in 0..MAX_READS_PER_WAKE {
            let n = match dev.recv(&mut self.frame[HEADROOM..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n <= VNET {
                shard.counters.bump(&shard.counters.tun_rx_gso_errors, 1);
                continue;
            }
            self.handle_read(dev, shard, n);
        }
        Ok(())
    }

    fn inject(&mut self, dev: &SyncDevice, shard: &mut Shard, packet: &[u8]) {
        copy_translate(dev, shard, &mut self.out, Instant::now(), packet);
    }

    fn send_own(&mut self, dev: &SyncDevice, shard: &mut Shard, now: Instant) {
        let empty = [0u8; VNET];
        shard.send_own(now, &mut self.out, |p| {
            dev.send_vectored(&[IoSlice::new(&empty), IoSlice::new(p)])
        });
    }
}
