//! Counters of the packet path, one set per worker, summed on read. Every
//! drop reason of the cores has its own counter; `xlat64 stats` shows them
//! all, zeros included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use xlat64_nat::{FragmentDrop, NatDrop};
use xlat64_packet::DropReason;

const PACKET_REASONS: usize = DropReason::ALL.len();
const FRAGMENT_REASONS: usize = FragmentDrop::ALL.len();
const DROP_SLOTS: usize = PACKET_REASONS + FRAGMENT_REASONS + NatDrop::NAT_ONLY.len();

/// Counters written by one packet worker and read by the control socket.
///
/// Relaxed atomics with one writer: the worker adds with a plain load and
/// store (no locked instruction), readers see each counter grow. Aligned
/// so that two workers' counters never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub struct PacketCounters {
    drops: [AtomicU64; DROP_SLOTS],
    /// IPv6 packets translated to IPv4 and written to the TUN device.
    pub v6_to_v4_packets: AtomicU64,
    /// Bytes of those IPv4 packets.
    pub v6_to_v4_bytes: AtomicU64,
    /// IPv4 packets translated to IPv6 and written to the TUN device.
    pub v4_to_v6_packets: AtomicU64,
    /// Bytes of those IPv6 packets.
    pub v4_to_v6_bytes: AtomicU64,
    /// Fragments held for reassembly (not yet translated, not dropped).
    pub fragments_held: AtomicU64,
    /// Packets read from the TUN device (GSO superpackets counted after splitting).
    pub tun_rx_packets: AtomicU64,
    /// Translated packets lost because a write to the TUN device failed
    /// (with offloads, every packet of a failed batch counts).
    pub tun_tx_errors: AtomicU64,
    /// Reads that carried a GSO superpacket of several packets.
    pub tun_rx_gso_superpackets: AtomicU64,
    /// Packets split out of those superpackets (part of `tun_rx_packets`).
    pub tun_rx_gso_segments: AtomicU64,
    /// Reads dropped because their virtio-net header or GSO superpacket could
    /// not be split (malformed, or more segments than a batch holds); the
    /// packets in them are lost and not in `tun_rx_packets`.
    pub tun_rx_gso_errors: AtomicU64,
    /// Superpackets read that the copying path split into packets (what
    /// could not be translated in place: see `datapath::offload`).
    pub tun_rx_gso_split: AtomicU64,
    /// Writes that carried a translated superpacket of several segments.
    pub tun_tx_gso_superpackets: AtomicU64,
    /// Segments the kernel cuts those superpackets into.
    pub tun_tx_gso_segments: AtomicU64,
    /// Datagrams reassembled here and handed to the worker that owns them.
    pub handed_off: AtomicU64,
    /// Such datagrams lost because the owner's mailbox was full.
    pub handoffs_dropped: AtomicU64,
}

impl Default for PacketCounters {
    fn default() -> Self {
        PacketCounters {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            v6_to_v4_packets: AtomicU64::new(0),
            v6_to_v4_bytes: AtomicU64::new(0),
            v4_to_v6_packets: AtomicU64::new(0),
            v4_to_v6_bytes: AtomicU64::new(0),
            fragments_held: AtomicU64::new(0),
            tun_rx_packets: AtomicU64::new(0),
            tun_tx_errors: AtomicU64::new(0),
            tun_rx_gso_superpackets: AtomicU64::new(0),
            tun_rx_gso_segments: AtomicU64::new(0),
            tun_rx_gso_errors: AtomicU64::new(0),
            tun_rx_gso_split: AtomicU64::new(0),
            tun_tx_gso_superpackets: AtomicU64::new(0),
            tun_tx_gso_segments: AtomicU64::new(0),
            handed_off: AtomicU64::new(0),
            handoffs_dropped: AtomicU64::new(0),
        }
    }
}

fn slot(reason: NatDrop) -> usize {
    match reason {
        NatDrop::Packet(r) => r as usize,
        NatDrop::Fragment(r) => PACKET_REASONS + r as usize,
        other => {
            PACKET_REASONS
                + FRAGMENT_REASONS
                + NatDrop::NAT_ONLY
                    .iter()
                    .position(|n| *n == other)
                    .expect("NAT_ONLY lists every NAT drop reason")
        }
    }
}

fn reason_at(slot: usize) -> NatDrop {
    if slot < PACKET_REASONS {
        NatDrop::Packet(DropReason::ALL[slot])
    } else if slot < PACKET_REASONS + FRAGMENT_REASONS {
        NatDrop::Fragment(FragmentDrop::ALL[slot - PACKET_REASONS])
    } else {
        NatDrop::NAT_ONLY[slot - PACKET_REASONS - FRAGMENT_REASONS]
    }
}

impl PacketCounters {
    /// Adds `n` to `counter`, one of this set's: only its worker writes it.
    pub(crate) fn bump(&self, counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Counts one dropped packet.
    pub fn drop(&self, reason: NatDrop) {
        self.bump(&self.drops[slot(reason)], 1);
    }

    /// How many packets were dropped for `reason`.
    pub fn dropped(&self, reason: NatDrop) -> u64 {
        self.drops[slot(reason)].load(Ordering::Relaxed)
    }

    /// Adds every counter to the sum in `out` (several workers' sets add up).
    pub fn snapshot(&self, out: &mut BTreeMap<String, u64>) {
        for (i, c) in self.drops.iter().enumerate() {
            *out.entry(reason_at(i).counter_name().to_string())
                .or_default() += c.load(Ordering::Relaxed);
        }
        let named = [
            ("translated_v6_to_v4_packets", &self.v6_to_v4_packets),
            ("translated_v6_to_v4_bytes", &self.v6_to_v4_bytes),
            ("translated_v4_to_v6_packets", &self.v4_to_v6_packets),
            ("translated_v4_to_v6_bytes", &self.v4_to_v6_bytes),
            ("fragments_held", &self.fragments_held),
            ("tun_rx_packets", &self.tun_rx_packets),
            ("tun_tx_errors", &self.tun_tx_errors),
            ("tun_rx_gso_superpackets", &self.tun_rx_gso_superpackets),
            ("tun_rx_gso_segments", &self.tun_rx_gso_segments),
            ("tun_rx_gso_errors", &self.tun_rx_gso_errors),
            ("tun_rx_gso_split", &self.tun_rx_gso_split),
            ("tun_tx_gso_superpackets", &self.tun_tx_gso_superpackets),
            ("tun_tx_gso_segments", &self.tun_tx_gso_segments),
            ("handed_off", &self.handed_off),
            ("handoffs_dropped", &self.handoffs_dropped),
        ];
        for (name, c) in named {
            *out.entry(name.to_string()).or_default() += c.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_has_its_own_counter() {
        let c = PacketCounters::default();
        let all: Vec<NatDrop> = DropReason::ALL
            .iter()
            .map(|r| NatDrop::Packet(*r))
            .chain(FragmentDrop::ALL.iter().map(|r| NatDrop::Fragment(*r)))
            .chain(NatDrop::NAT_ONLY)
            .collect();
        for (i, r) in all.iter().enumerate() {
            for _ in 0..=i {
                c.drop(*r);
            }
        }
        let mut out = BTreeMap::new();
        c.snapshot(&mut out);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(out[r.counter_name()], i as u64 + 1, "{}", r.counter_name());
        }
        let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.counter_name()).collect();
        assert_eq!(names.len(), all.len(), "counter names are unique");
    }
}
