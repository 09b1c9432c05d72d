//! Packet I/O without offloads: one packet per read and one per write, the
//! fallback when the kernel or the device refuses the virtio-net header.

use super::worker::{PacketIo, Shard};
use std::io;
use std::time::Instant;
use tun_rs::SyncDevice;

/// Largest packet the device hands over without offloads (at most one MTU;
/// 64 KiB covers any).
const MAX_PACKET: usize = 65536;
/// Reads between two looks at the mailbox and the timers.
const MAX_READS_PER_WAKE: usize = 64;

/// Buffers of the one-packet path, allocated once.
pub(crate) struct Single {
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Single {
    /// Buffers for outputs up to `max_output` bytes (the NAT's bound).
    pub(crate) fn new(max_output: usize) -> Single {
        Single {
            input: vec![0u8; MAX_PACKET],
            output: vec![0u8; max_output.max(MAX_PACKET + 160)],
        }
    }

    fn translate_and_send(&mut self, dev: &SyncDevice, shard: &mut Shard, n: usize) {
        let now = Instant::now();
        shard.translate_and_send(now, &self.input[..n], &mut self.output, |p| dev.send(p));
    }
}

impl PacketIo for Single {
    fn drain(&mut self, dev: &SyncDevice, shard: &mut Shard) -> io::Result<()> {
        for _ in 0..MAX_READS_PER_WAKE {
            let n = match dev.recv(&mut self.input) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            shard.counters.bump(&shard.counters.tun_rx_packets, 1);
            self.translate_and_send(dev, shard, n);
        }
        Ok(())
    }

    fn inject(&mut self, dev: &SyncDevice, shard: &mut Shard, packet: &[u8]) {
        let n = packet.len().min(self.input.len());
        self.input[..n].copy_from_slice(&packet[..n]);
        self.translate_and_send(dev, shard, n);
    }

    fn send_own(&mut self, dev: &SyncDevice, shard: &mut Shard, now: Instant) {
        shard.send_own(now, &mut self.output, |p| dev.send(p));
    }
}
