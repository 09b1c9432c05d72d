//! The TUN device and the packet thread that moves packets between it and the
//! NAT64 core.

use crate::stats::PacketCounters;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tun_rs::{DeviceBuilder, InterruptEvent, SyncDevice};
use xlat64_nat::{Nat64, NatDrop, Verdict};
use xlat64_packet::DropReason;

/// Longest wait between two looks at the session timers.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Largest packet the device hands us (no offloads, so at most one MTU; 64 KiB covers any).
const MAX_PACKET: usize = 65536;
/// Translation to IPv6 grows a packet by 20 bytes at most (IPv4 header without options -> IPv6).
const MAX_GROWTH: usize = 20;

/// Opens (or creates) the TUN device `name`, sets its MTU and brings it up.
/// No packet-information header, no offloads.
pub fn open(name: &str, mtu: u16) -> io::Result<SyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .packet_information(false)
        .enable(true)
        .build_sync()
}

/// Reads packets from `dev`, translates them through `nat`, writes the results
/// back, and runs the session timers, until `stop` is triggered.
pub fn packet_loop(
    dev: &SyncDevice,
    nat: &Mutex<Nat64>,
    counters: &PacketCounters,
    stop: &InterruptEvent,
) -> io::Result<()> {
    let mut input = vec![0u8; MAX_PACKET];
    let mut output = vec![0u8; MAX_PACKET + MAX_GROWTH];
    loop {
        let wait = {
            let nat = nat.lock().expect("NAT lock poisoned");
            nat.poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(MAX_IDLE)
                .min(MAX_IDLE)
        };
        let received = match dev.recv_intr_timeout(&mut input, stop, Some(wait)) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => None,
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                if stop.is_trigger() {
                    return Ok(());
                }
                None
            }
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let mut nat = nat.lock().expect("NAT lock poisoned");
        if let Some(n) = received {
            counters.tun_rx_packets.fetch_add(1, Ordering::Relaxed);
            let packet = &input[..n];
            let (verdict, to_v4) = match packet.first().map(|b| b >> 4) {
                Some(6) => (nat.handle_v6(now, packet, &mut output), true),
                Some(4) => (nat.handle_v4(now, packet, &mut output), false),
                Some(_) => (
                    Verdict::Drop(NatDrop::Packet(DropReason::BadVersion)),
                    false,
                ),
                None => (Verdict::Drop(NatDrop::Packet(DropReason::Truncated)), false),
            };
            match verdict {
                Verdict::Forward(len) => match dev.send(&output[..len]) {
                    Ok(_) => {
                        let (packets, bytes) = if to_v4 {
                            (&counters.v6_to_v4_packets, &counters.v6_to_v4_bytes)
                        } else {
                            (&counters.v4_to_v6_packets, &counters.v4_to_v6_bytes)
                        };
                        packets.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.tun_tx_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "TUN write failed");
                    }
                },
                Verdict::Drop(reason) => {
                    counters.drop(reason);
                    tracing::trace!(reason = reason.counter_name(), len = n, "packet dropped");
                }
            }
        }
        if nat.poll_timeout().is_some_and(|t| t <= now) {
            nat.handle_timeout(now);
        }
    }
}

/// Starts [`packet_loop`] on its own thread; the returned event stops it.
pub fn spawn_packet_thread(
    dev: Arc<SyncDevice>,
    nat: Arc<Mutex<Nat64>>,
    counters: Arc<PacketCounters>,
) -> io::Result<(std::thread::JoinHandle<io::Result<()>>, Arc<InterruptEvent>)> {
    dev.set_nonblocking(true)?;
    let stop = Arc::new(InterruptEvent::new()?);
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("xlat64-packets".into())
        .spawn(move || packet_loop(&dev, &nat, &counters, &thread_stop))?;
    Ok((handle, stop))
}
