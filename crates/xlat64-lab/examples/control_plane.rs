//! The control plane against a large session table, on the namespace lab:
//! fills the gateway with about a million UDP sessions (raw frames from the
//! client namespace, one new source port or address per frame), then
//! measures the round-trip time of a fast ping through the gateway without
//! and with `xlat64 sessions --json` running, how long that listing takes,
//! and the daemon's resident memory idle, full, and after the sessions
//! expired (UDP timeout 120 s, so the run takes about three minutes).
//!
//! Usage (root): `bench/control-plane.sh [--sessions N]`. Uses the release
//! binary next to this example, or `$XLAT64_BIN`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use xlat64_lab::{self as lab, Lab, LabOptions, CLIENT_V6};

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The MAC address of `dev` in namespace `ns`.
fn mac(lab: &Lab, ns: &str, dev: &str) -> Result<[u8; 6], String> {
    let out = lab
        .run_in(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    bytes
        .try_into()
        .map_err(|_| format!("no MAC for {dev}: {text}"))
}

/// Ones' complement sum.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// An Ethernet frame with an IPv6 UDP packet from `src`:`sport` to the
/// server under the lab prefix, port 9.
fn frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 16], sport: u16) -> Vec<u8> {
    let dst = lab::server_via_nat64().octets();
    let payload = b"session";
    let udp_len = 8 + payload.len() as u16;
    let mut f = Vec::with_capacity(14 + 40 + udp_len as usize);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&9u16.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc += u32::from(udp_len) + 17;
    acc = sum(&udp, acc);
    let check = match !fold(acc) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&check.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// Sends `count` frames of new flows on `c0` in the current namespace, at
/// most `rate` per second: 50,000 source ports per source address.
fn flood(dst_mac: [u8; 6], src_mac: [u8; 6], count: u32, rate: u32) -> std::io::Result<()> {
    let name = std::ffi::CString::new("c0").expect("no NUL");
    // SAFETY: plain socket calls with valid arguments; the descriptor is
    // owned from here on and the address is fully initialized.
    let fd = unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        if libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        fd
    };
    let start = Instant::now();
    for i in 0..count {
        let mut src = CLIENT_V6.octets();
        let host = 0x1000 + i / 50_000;
        src[12..16].copy_from_slice(&host.to_be_bytes());
        let sport = 10_000 + (i % 50_000) as u16;
        let f = frame(dst_mac, src_mac, src, sport);
        // SAFETY: `f` is valid for its length.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                f.as_ptr() as *const libc::c_void,
                f.len(),
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            return Err(e);
        }
        if i % 1000 == 999 {
            let due = start + Duration::from_secs_f64(f64::from(i + 1) / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(())
}

/// Round-trip times (ms) of `count` pings at 2 ms intervals through the gateway.
fn ping_rtts(lab: &Lab, count: u32) -> Vec<f64> {
    let server = lab::server_via_nat64().to_string();
    let out = lab
        .run_in_timeout(
            lab.client(),
            &[
                "ping",
                "-6",
                "-n",
                "-i",
                "0.002",
                "-c",
                &count.to_string(),
                &server,
            ],
            Duration::from_secs(60),
        )
        .expect("ping");
    let mut rtts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts
}

fn describe(rtts: &[f64], count: u32) -> String {
    if rtts.is_empty() {
        return "no replies".into();
    }
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    format!(
        "{} of {count} replies, median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        rtts.len(),
        at(0.5),
        at(0.99),
        rtts[rtts.len() - 1]
    )
}

fn run(sessions: u32) -> Result<(), String> {
    let exe = lab::xlat64_binary()?;
    let lab = Lab::create_with("ctlbench", LabOptions::default()).map_err(|e| e.to_string())?;
    // Each worker holds at most its share of the limit, and clients are not
    // spread evenly: room for twice the flood.
    let max = 2 * sessions + 10_000;
    // 16 pool4 addresses: room for a million UDP sessions (65535 ports each).
    let config = lab
        .gateway_config()
        .replacen("pool4 = [\"192.0.2.1\"]", "pool4 = [\"192.0.2.0/28\"]", 1)
        .replacen(
            "[dns64]\n",
            &format!(
                "[nat64.timeouts]\nudp = 120\n\n[nat64.limits]\nmax-sessions = {max}\n\
                 max-sessions-per-client = 0\nmax-ports-per-client = 0\n\n[dns64]\n"
            ),
            1,
        );
    let gateway = lab
        .start_gateway_with(&exe, &config)
        .map_err(|e| e.to_string())?;
    let pid = gateway.pid();
    let warm = ping_rtts(&lab, 50);
    let idle = rss_kib(pid);
    println!(
        "xlat64 {} (pid {pid}), target {sessions} UDP sessions",
        exe.display()
    );
    println!(
        "idle: RSS {idle} KiB; warm-up ping: {}",
        describe(&warm, 50)
    );

    let dst_mac = mac(&lab, lab.gateway(), "g0")?;
    let src_mac = mac(&lab, lab.client(), "c0")?;
    let started = Instant::now();
    lab.in_netns(lab.client(), || flood(dst_mac, src_mac, sessions, 60_000))
        .map_err(|e| format!("flood: {e}"))?;
    let count = |name: &str| -> u64 {
        gateway
            .cli(&["stats", "--json"])
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v.get(name).and_then(serde_json::Value::as_u64))
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_secs(2));
    let held = count("nat64_sessions");
    println!(
        "flood: {sessions} frames in {:.1} s; sessions held {held}; RSS {} KiB",
        started.elapsed().as_secs_f64(),
        rss_kib(pid)
    );

    if let Some(stats) = gateway
        .cli(&["stats", "--json"])
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    {
        let interesting: Vec<String> = stats
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| {
                (k.starts_with("drop_") || k.starts_with("worker_") || k.contains("error"))
                    && v.as_u64() != Some(0)
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("counters: {}", interesting.join(" "));
    }
    for dev in ["g0", "nat64"] {
        let out = lab
            .run_in(lab.gateway(), &["ip", "-s", "-o", "link", "show", dev])
            .map_err(|e| e.to_string())?;
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    }
    let quiet = ping_rtts(&lab, 1500);
    println!("ping, table full, no listing: {}", describe(&quiet, 1500));
    let cli_exe = exe.clone();
    let config_path = gateway.config_path().to_path_buf();
    let lister = std::thread::spawn(move || {
        let mut times = Vec::new();
        let mut listed = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let out = Command::new(&cli_exe)
                .args(["sessions", "--json", "--config"])
                .arg(&config_path)
                .output();
            times.push(t.elapsed().as_secs_f64());
            if let Ok(out) = out {
                listed = out.stdout.iter().filter(|&&b| b == b'{').count();
            }
        }
        (times, listed)
    });
    let busy = ping_rtts(&lab, 1500);
    let (times, listed) = lister.join().map_err(|_| "lister thread")?;
    println!(
        "ping while `sessions --json` runs: {}",
        describe(&busy, 1500)
    );
    println!(
        "`sessions --json`: {listed} sessions listed; wall times {}",
        times
            .iter()
            .map(|t| format!("{t:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("RSS after listing: {} KiB", rss_kib(pid));

    println!("waiting for the sessions to expire (UDP timeout 120 s)...");
    let deadline = Instant::now() + Duration::from_secs(200);
    while Instant::now() < deadline && count("nat64_sessions") > 1000 {
        std::thread::sleep(Duration::from_secs(5));
    }
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "after expiry: sessions {}; RSS {} KiB (idle was {idle} KiB)",
        count("nat64_sessions"),
        rss_kib(pid)
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut sessions = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--sessions", Some(n)) => sessions = n.parse().unwrap_or(sessions),
            _ => {
                eprintln!("usage: control_plane [--sessions N]");
                return ExitCode::from(2);
            }
        }
    }
    match run(sessions) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
