//! The TUN device and the packet thread that moves packets between it and the
//! NAT64 core.
//!
//! Two ways to move packets, chosen when the device is opened:
//!
//! - with offloads (`nat64.offload`, the default): the device carries a
//!   virtio-net header, the kernel hands over TCP/UDP GSO superpackets of up
//!   to 64 KiB, which are split into MTU-sized packets, translated one by one
//!   and coalesced again into GRO superpackets on the way back
//!   ([`crate::tun_offload`]);
//! - without: one packet per read and one per write, the fallback when the
//!   kernel or the device refuses offloads.

use crate::stats::PacketCounters;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tun_rs::{DeviceBuilder, InterruptEvent, SyncDevice};
use xlat64_nat::{Nat64, NatDrop, Verdict};
use xlat64_packet::fragment::packets;
use xlat64_packet::DropReason;

/// Longest wait between two looks at the session timers.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(1);
/// Largest packet the device hands us without offloads (at most one MTU; 64 KiB covers any).
const MAX_PACKET: usize = 65536;

/// Opens (or creates) the TUN device `name`, sets its MTU and brings it up.
/// No packet-information header. With `offload`, asks for the virtio-net
/// header and TSO (and USO where the kernel has it, Linux 6.2+); if that is
/// refused, opens the device again without offloads. Logs which mode it got.
pub fn open(name: &str, mtu: u16, offload: bool) -> io::Result<SyncDevice> {
    if offload {
        match build(name, mtu, true) {
            Ok(dev) if dev.tcp_gso() => {
                tracing::info!(
                    tun = name,
                    mtu,
                    udp_gso = dev.udp_gso(),
                    "TUN offloads on: GSO superpackets split on read, GRO coalescing on write"
                );
                return Ok(dev);
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
    build(name, mtu, false)
}

fn build(name: &str, mtu: u16, offload: bool) -> io::Result<SyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .packet_information(false)
        .offload(offload)
        .enable(true)
        .build_sync()
}

/// Which way a packet was translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// IPv6 client -> IPv4 server.
    V6ToV4,
    /// IPv4 server -> IPv6 client.
    V4ToV6,
}

/// Translates one packet read from the device into `out`, by its IP version.
pub(crate) fn translate(
    nat: &mut Nat64,
    now: Instant,
    packet: &[u8],
    out: &mut [u8],
) -> (Verdict, Direction) {
    match packet.first().map(|b| b >> 4) {
        Some(6) => (nat.handle_v6(now, packet, out), Direction::V6ToV4),
        Some(4) => (nat.handle_v4(now, packet, out), Direction::V4ToV6),
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

/// Counts a verdict that writes nothing (a drop under its reason, a
/// fragment held for reassembly) or the drop behind an ICMP error; returns,
/// for a verdict that writes, the length written and whether it is a
/// translation (else an ICMP error the gateway sends).
pub(crate) fn output_of(
    counters: &PacketCounters,
    verdict: Verdict,
    in_len: usize,
) -> Option<(usize, bool)> {
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
            counters.fragments_held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Counts `packets` translated packets of `bytes` bytes written in `direction`.
pub(crate) fn count_translated(
    counters: &PacketCounters,
    direction: Direction,
    packets: u64,
    bytes: u64,
) {
    let (p, b) = match direction {
        Direction::V6ToV4 => (&counters.v6_to_v4_packets, &counters.v6_to_v4_bytes),
        Direction::V4ToV6 => (&counters.v4_to_v6_packets, &counters.v4_to_v6_bytes),
    };
    p.fetch_add(packets, Ordering::Relaxed);
    b.fetch_add(bytes, Ordering::Relaxed);
}

/// How long the packet thread may wait for the device before the next
/// session expiry is due.
pub(crate) fn wait_for_timers(nat: &Mutex<Nat64>) -> Duration {
    let nat = nat.lock().expect("NAT lock poisoned");
    nat.poll_timeout()
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_IDLE)
        .min(MAX_IDLE)
}

/// Runs the session timers if one is due at `now`.
pub(crate) fn run_timers(nat: &mut Nat64, now: Instant) {
    if nat.poll_timeout().is_some_and(|t| t <= now) {
        nat.handle_timeout(now);
    }
}

/// Reads packets from `dev`, translates them through `nat`, writes the results
/// back, and runs the session timers, until `stop` is triggered. Batched with
/// offloads when `dev` was opened with them, else one packet at a time.
pub fn packet_loop(
    dev: &SyncDevice,
    nat: &Mutex<Nat64>,
    counters: &PacketCounters,
    stop: &InterruptEvent,
) -> io::Result<()> {
    if dev.tcp_gso() {
        counters.tun_offload.store(1, Ordering::Relaxed);
        crate::tun_offload::packet_loop(dev, nat, counters, stop)
    } else {
        counters.tun_offload.store(0, Ordering::Relaxed);
        packet_loop_single(dev, nat, counters, stop)
    }
}

/// One packet per read and per write (no offloads).
fn packet_loop_single(
    dev: &SyncDevice,
    nat: &Mutex<Nat64>,
    counters: &PacketCounters,
    stop: &InterruptEvent,
) -> io::Result<()> {
    let mut input = vec![0u8; MAX_PACKET];
    let bound = nat.lock().expect("NAT lock poisoned").max_output_len();
    let mut output = vec![0u8; bound.max(MAX_PACKET + 160)];
    loop {
        let wait = wait_for_timers(nat);
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
            let (verdict, direction) = translate(&mut nat, now, &input[..n], &mut output);
            let (len, translated) = output_of(counters, verdict, n).unwrap_or((0, false));
            for packet in packets(&output[..len]) {
                match dev.send(packet) {
                    Ok(_) if translated => {
                        count_translated(counters, direction, 1, packet.len() as u64)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        counters.tun_tx_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "TUN write failed");
                    }
                }
            }
        }
        run_timers(&mut nat, now);
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
