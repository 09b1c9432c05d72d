//! Opening the TUN device: one queue per worker, with or without offloads,
//! and the steering program that sends each packet to its owner's queue.

use std::io;
use tun_rs::{DeviceBuilder, SyncDevice};

/// Packets each queue of the device holds for its worker (the kernel's
/// default for TUN is 500): room for a burst of new flows arriving while a
/// worker grows its tables, instead of drops in the kernel.
const QUEUE_LEN: u32 = 4096;

/// The device's queues, one per worker, in queue order.
pub struct Queues {
    /// Queue `i` is worker `i`'s.
    pub queues: Vec<SyncDevice>,
    /// Whether the queues carry the virtio-net header (offloads on).
    pub offload: bool,
}

/// Opens (or creates) the TUN device `name` with `workers` queues, sets its
/// MTU and brings it up. No packet-information header. With `offload`, asks
/// for the virtio-net header and TSO (and USO where the kernel has it, Linux
/// 6.2+); if that is refused, opens the device again without offloads. With
/// several workers, attaches the steering program; if the kernel refuses it
/// (no BPF), falls back to one queue and one worker, and says so. Logs what
/// it got. `split` says how clients and ports are dealt to workers (its
/// index and count aside).
pub fn open(
    name: &str,
    mtu: u16,
    offload: bool,
    workers: usize,
    split: xlat64_nat::Shard,
) -> io::Result<Queues> {
    let workers = workers.max(1);
    let (first, offload) = open_first(name, mtu, offload, workers > 1)?;
    if let Err(e) = first.set_tx_queue_len(QUEUE_LEN) {
        tracing::warn!(tun = name, error = %e, "cannot lengthen the TUN queues; bursts may be dropped by the kernel");
    }
    let mut queues = vec![first];
    if workers == 1 {
        return Ok(Queues { queues, offload });
    }
    let steered = super::steering::load(&xlat64_nat::Shard {
        count: workers as u16,
        ..split
    })
    .and_then(|prog| crate::sys::bpf::attach_steering(&queues[0], &prog));
    if let Err(e) = steered {
        tracing::warn!(
            tun = name,
            error = %e,
            "cannot attach the queue-steering program; running one packet worker instead of {workers}"
        );
        drop(queues);
        let (first, offload) = open_first(name, mtu, offload, false)?;
        return Ok(Queues {
            queues: vec![first],
            offload,
        });
    }
    for _ in 1..workers {
        queues.push(queues[0].try_clone()?);
    }
    tracing::info!(
        tun = name,
        workers,
        "TUN queues steered by owner: a client's packets and the replies to its ports reach the same worker"
    );
    Ok(Queues { queues, offload })
}

/// The first queue, with offloads if asked and granted.
fn open_first(
    name: &str,
    mtu: u16,
    offload: bool,
    multi_queue: bool,
) -> io::Result<(SyncDevice, bool)> {
    if offload {
        match build(name, mtu, true, multi_queue) {
            Ok(dev) if dev.tcp_gso() => {
                tracing::info!(
                    tun = name,
                    mtu,
                    udp_gso = dev.udp_gso(),
                    "TUN offloads on: GSO superpackets split on read, GRO coalescing on write"
                );
                return Ok((dev, true));
            }
            Ok(dev) => {
                tracing::warn!(
                    tun = name,
                    "TUN offloads not granted (no virtio-net header); one packet per read and write"
                );
                drop(dev);
            }
            Err(e) => tracing::warn!(
                tun = name,
                error = %e,
                errno = e.raw_os_error().unwrap_or(0),
                "TUN offloads refused; one packet per read and write"
            ),
        }
    } else {
        tracing::info!(
            tun = name,
            mtu,
            "TUN offloads off (nat64.offload = false); one packet per read and write"
        );
    }
    Ok((build(name, mtu, false, multi_queue)?, false))
}

fn build(name: &str, mtu: u16, offload: bool, multi_queue: bool) -> io::Result<SyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .packet_information(false)
        .offload(offload)
        .multi_queue(multi_queue)
        .enable(true)
        .build_sync()
}
