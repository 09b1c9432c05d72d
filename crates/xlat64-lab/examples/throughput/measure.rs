//! The measurements: iperf3 TCP runs, the small-packet sender and the
//! server's receive counter, ping round trips, a process's CPU time.

use serde_json::Value;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use xlat64_lab::{Lab, CLIENT_V6};

use crate::interrupted;

/// The interface of the server namespace whose receive counter is read.
const SERVER_IF: &str = "s0";
/// Payload of each small datagram: 18 bytes, so that the IPv4 packet at the
/// server is 46 bytes, a minimum-size Ethernet frame.
pub(crate) const SMALL_PAYLOAD: usize = 18;
/// Datagrams per `sendmmsg` call.
const BATCH: usize = 64;
/// How long the small-packet sender runs before counting starts.
const PPS_WARMUP: Duration = Duration::from_millis(500);

/// What one iperf3 run moved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Iperf {
    /// Bits per second at the receiver.
    pub(crate) bps: f64,
    /// Bytes the receiver got.
    pub(crate) bytes: f64,
}

/// One `iperf3 -c target -p port <extra>` from the client namespace; the
/// receiver's figures (the client's with `-R`).
pub(crate) fn iperf(
    lab: &Lab,
    target: Ipv6Addr,
    port: u16,
    seconds: u32,
    extra: &[&str],
) -> Result<Iperf, String> {
    let target = target.to_string();
    let port_s = port.to_string();
    let seconds_s = seconds.to_string();
    let mut args = vec![
        "iperf3",
        "-c",
        &target,
        "-p",
        &port_s,
        "-t",
        &seconds_s,
        "-J",
        "--connect-timeout",
        "3000",
    ];
    args.extend_from_slice(extra);
    let what = args.join(" ");
    let out = lab
        .run_in_timeout(
            lab.client(),
            &args,
            Duration::from_secs(u64::from(seconds) + 20),
        )
        .map_err(|e| format!("{what}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{what}: no JSON ({e}): {text}"))?;
    if let Some(err) = json.get("error").and_then(Value::as_str) {
        return Err(format!("{what}: {err}"));
    }
    let field = |name: &str| {
        json.pointer(&format!("/end/sum_received/{name}"))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{what}: no end.sum_received.{name} in the output"))
    };
    Ok(Iperf {
        bps: field("bits_per_second")?,
        bytes: field("bytes")?,
    })
}

/// Several iperf3 clients at once, `(port, extra arguments)` each; the sum of
/// their receivers' bits per second.
pub(crate) fn iperf_parallel(
    lab: &Lab,
    target: Ipv6Addr,
    seconds: u32,
    clients: &[(u16, Vec<String>)],
) -> Result<f64, String> {
    let results: Vec<Result<Iperf, String>> = thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|(port, extra)| {
                scope.spawn(move || {
                    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                    iperf(lab, target, *port, seconds, &extra)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("iperf3 thread panicked".into()))
            })
            .collect()
    });
    let mut sum = 0.0;
    for r in results {
        sum += r?.bps;
    }
    Ok(sum)
}

/// Packets per second of the small-packet measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pps {
    /// Received by the server's interface.
    pub(crate) delivered: f64,
    /// Accepted by the client's kernel from the sender.
    pub(crate) offered: f64,
}

/// Sends 18-byte UDP datagrams from the client namespace to `target` as fast
/// as one thread can (`sendmmsg`, `flows` sockets with their own source
/// ports, round robin) and counts the packets the server's interface
/// receives over `seconds`, after a short warm-up.
pub(crate) fn small_packets(
    lab: &Lab,
    target: SocketAddr,
    flows: usize,
    seconds: u32,
) -> Result<Pps, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    // The sockets are made in the client namespace by the sending thread
    // itself; it reports readiness (or why not) through the first message.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        lab.spawn_thread_in(lab.client(), move || {
            let sockets = match open_flows(target, flows) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            send_loop(&sockets, &stop, &sent);
            Ok(())
        })
    };
    let result = (|| {
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("small-packet sender: {e}")),
            Err(_) => return Err("small-packet sender did not start".into()),
        }
        thread::sleep(PPS_WARMUP);
        let (rx0, sent0, t0) = (
            server_rx_packets(lab)?,
            sent.load(Ordering::Relaxed),
            Instant::now(),
        );
        let deadline = t0 + Duration::from_secs(u64::from(seconds));
        while Instant::now() < deadline && !interrupted() {
            thread::sleep(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
        let (rx1, sent1, t1) = (
            server_rx_packets(lab)?,
            sent.load(Ordering::Relaxed),
            Instant::now(),
        );
        let elapsed = (t1 - t0).as_secs_f64();
        Ok(Pps {
            delivered: rx1.saturating_sub(rx0) as f64 / elapsed,
            offered: sent1.saturating_sub(sent0) as f64 / elapsed,
        })
    })();
    stop.store(true, Ordering::Relaxed);
    match sender.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) if result.is_ok() => return Err(format!("small-packet sender: {e}")),
        Ok(Err(_)) => {}
        Err(_) => return Err("small-packet sender panicked".into()),
    }
    result
}

/// `flows` connected, non-blocking UDP sockets from [`CLIENT_V6`] (each its
/// own ephemeral source port) to `target`.
fn open_flows(target: SocketAddr, flows: usize) -> io::Result<Vec<UdpSocket>> {
    (0..flows)
        .map(|_| {
            let socket = UdpSocket::bind(SocketAddr::new(CLIENT_V6.into(), 0))?;
            socket.connect(target)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect()
}

/// Batches of [`BATCH`] datagrams to each socket in turn until `stop`;
/// counts what the kernel accepted in `sent`. Errors (a full queue, an ICMP
/// error reported on the socket) are ignored: the count is what matters.
fn send_loop(sockets: &[UdpSocket], stop: &AtomicBool, sent: &AtomicU64) {
    let payload = [0x5au8; SMALL_PAYLOAD];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let iov_ptr: *mut libc::iovec = &mut iov;
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov_ptr;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut local = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for socket in sockets {
            // SAFETY: the headers point at `iov` and `payload`, which live
            // until the end of this function; the sockets are connected, so
            // no address is needed; the kernel only reads the payload.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                local += n as u64;
            }
        }
        sent.store(local, Ordering::Relaxed);
    }
}

/// Packets received so far by the server's interface, from
/// `/proc/thread-self/net/dev` read by a thread inside the server namespace.
pub(crate) fn server_rx_packets(lab: &Lab) -> Result<u64, String> {
    let text = lab
        .in_netns(lab.server(), || {
            std::fs::read_to_string("/proc/thread-self/net/dev")
        })
        .map_err(|e| format!("reading the counters of {SERVER_IF}: {e}"))?;
    text.lines()
        .find_map(|line| {
            let (name, rest) = line.split_once(':')?;
            if name.trim() != SERVER_IF {
                return None;
            }
            // Receive: bytes packets errs drop ...
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .ok_or_else(|| format!("no rx packets of {SERVER_IF} in /proc/net/dev"))
}

/// `ping -6 -c count -i 0.01` from the client; the median round trip in
/// microseconds and how many replies came.
pub(crate) fn ping_rtt(lab: &Lab, target: Ipv6Addr, count: u32) -> Result<(f64, usize), String> {
    let target = target.to_string();
    let count_s = count.to_string();
    let args = [
        "ping", "-6", "-n", "-c", &count_s, "-i", "0.01", "-W", "1", &target,
    ];
    let out = lab
        .run_in_timeout(
            lab.client(),
            &args,
            Duration::from_secs(u64::from(count) / 10 + 15),
        )
        .map_err(|e| format!("ping {target}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            l.split_once("time=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .map(|ms: f64| ms * 1000.0)
        .collect();
    if times.is_empty() {
        return Err(format!(
            "ping {target}: no reply ({}): {}{}",
            xlat64_lab::describe_status(out.status),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((crate::median(&times), times.len()))
}

/// Whether one ping from the client to `target` gets an answer, trying for
/// at most `timeout`.
pub(crate) fn reachable(lab: &Lab, target: Ipv6Addr, timeout: Duration) -> Result<(), String> {
    let target_s = target.to_string();
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match lab.run_in(
            lab.client(),
            &["ping", "-6", "-n", "-c", "1", "-W", "1", &target_s],
        ) {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                last = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            }
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "no ping reply from {target} within {} s: {last}",
        timeout.as_secs()
    ))
}

/// CPU seconds (user + system, all threads) process `pid` used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // pid (comm) state ppid ...: utime and stime are fields 14 and 15, the
    // 12th and 13th after the command name (which may hold spaces).
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64)
            .ok_or_else(|| format!("{path}: no field {}", i + 3))
    };
    // SAFETY: plain libc call without side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// The command name of process `pid` (`/proc/<pid>/comm`).
pub(crate) fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
