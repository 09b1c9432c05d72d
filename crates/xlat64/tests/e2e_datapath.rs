//! The multi-worker data path through the real binary: several clients at
//! once over several workers, tables listed while traffic flows, the
//! session limit, and a gateway that dies rather than half-lives.

mod common;

use common::World;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
use xlat64_lab::{self as lab, Lab, LabOptions, NAT64_PREFIX, POOL4, SERVER_V4, TUN};

const UPLOAD_PORT: u16 = 8081;
const SIZE: usize = 2 << 20;

/// Client addresses beyond the lab's own, on the client's link.
fn extra_client(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100 + i)
}

fn add_client_addresses(world: &World, count: u16) {
    for i in 0..count {
        let addr = format!("{}/64", extra_client(i));
        let out = world
            .lab
            .run_in(
                world.lab.client(),
                &["ip", "addr", "add", &addr, "dev", "c0", "nodad"],
            )
            .expect("ip addr add");
        assert!(out.status.success(), "ip addr add {addr}: {out:?}");
    }
}

fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(SIZE);
    while data.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(SIZE);
    data
}

/// The lab's world with `sections` added to the gateway's configuration
/// (before `[dns64]`) and, if given, `workers` packet workers.
fn with_config(tag: &str, tools: &[&str], sections: &str, workers: Option<usize>) -> Option<World> {
    let mut needed = vec!["nsd", "python3", "ss", "curl"];
    needed.extend_from_slice(tools);
    if !common::can_run(tag, &needed) {
        return None;
    }
    let lab = Lab::create_with(tag, LabOptions::default()).expect("build the lab");
    let nsd = common::start_nsd(&lab).expect("start nsd");
    let http = common::start_http(&lab).expect("start the HTTP server");
    let mut config = lab.gateway_config();
    if let Some(w) = workers {
        config = config
            .lines()
            .filter(|l| !l.starts_with("workers = ") && *l != "[runtime]")
            .map(|l| format!("{l}\n"))
            .collect();
        config.push_str(&format!("\n[runtime]\nworkers = {w}\n"));
    }
    let config = config.replacen("[dns64]\n", &format!("{sections}\n[dns64]\n"), 1);
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start xlat64: {e}"));
    Some(World {
        gateway,
        nsd,
        http,
        lab,
    })
}

/// Four clients at once, two workers: each downloads and uploads 2 MiB,
/// every byte checked; both workers carry traffic.
#[test]
fn several_clients_through_several_workers_transfer_intact_both_ways() {
    let Some(world) = with_config("multi", &[], "", Some(2)) else {
        return;
    };
    const CLIENTS: u16 = 4;
    add_client_addresses(&world, CLIENTS);
    let www = world.lab.dir().join("www");
    let server = lab::server_via_nat64();
    let mut handles = Vec::new();
    for i in 0..CLIENTS {
        let data = payload(0x1000 + u64::from(i));
        std::fs::write(www.join(format!("f{i}.bin")), &data).expect("write a file");
        // Download with curl from this client's own address.
        let got = world.lab.dir().join(format!("got{i}.bin"));
        let url = format!("http://[{server}]/f{i}.bin");
        let args: Vec<String> = [
            "curl",
            "-sS",
            "--max-time",
            "60",
            "--interface",
            &extra_client(i).to_string(),
            "-o",
            &got.display().to_string(),
            &url,
        ]
        .map(String::from)
        .to_vec();
        let ns = world.lab.client().to_string();
        handles.push(std::thread::spawn(move || {
            let out = lab::run_with_timeout(
                std::process::Command::new("ip")
                    .args(["netns", "exec", &ns])
                    .args(&args),
                Duration::from_secs(70),
            );
            (i, out, got, data)
        }));
    }
    // Uploads: one sink per client on its own port.
    let mut sinks = Vec::new();
    for i in 0..CLIENTS {
        let bind = SocketAddr::from((SERVER_V4, UPLOAD_PORT + i));
        let listener = world
            .lab
            .in_netns(world.lab.server(), || TcpListener::bind(bind))
            .expect("listen in the server namespace");
        sinks.push(std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
            let (mut conn, _) = listener.accept()?;
            conn.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut got = Vec::with_capacity(SIZE);
            conn.read_to_end(&mut got)?;
            Ok(got)
        }));
    }
    let mut uploads = Vec::new();
    for i in 0..CLIENTS {
        let data = payload(0x2000 + u64::from(i));
        let to = SocketAddr::from((server, UPLOAD_PORT + i));
        let from = SocketAddr::from((extra_client(i), 0));
        uploads.push(world.lab.spawn_thread_in(world.lab.client(), move || {
            let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
            socket.bind(&from.into())?;
            socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
            let mut conn: TcpStream = socket.into();
            conn.set_write_timeout(Some(Duration::from_secs(60)))?;
            conn.write_all(&data)?;
            conn.shutdown(Shutdown::Write)?;
            Ok(data)
        }));
    }
    for h in handles {
        let (i, out, got, data) = h.join().expect("download thread");
        let out = out.expect("curl runs");
        assert!(
            out.status.success(),
            "client {i} download failed: {}\ngateway log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            world.gateway.log()
        );
        let received = std::fs::read(&got).expect("read the download");
        assert!(received == data, "client {i}: downloaded bytes differ");
    }
    for (i, (upload, sink)) in uploads.into_iter().zip(sinks).enumerate() {
        let sent = upload
            .join()
            .expect("upload thread")
            .unwrap_or_else(|e| panic!("client {i} upload: {e}\n{}", world.gateway.log()));
        let got = sink.join().expect("sink").expect("sink reads");
        assert!(
            got == sent,
            "client {i}: uploaded bytes differ ({} of {})",
            got.len(),
            sent.len()
        );
    }
    assert_eq!(world.counter("workers"), 2);
    for w in 0..2 {
        assert!(
            world.counter(&format!("worker_{w}_tun_rx_packets")) > 0,
            "worker {w} carried nothing: {}",
            world.json(&["stats"])
        );
    }
    // Sessions of all four clients, from both workers, in one listing.
    let sessions = world.json(&["sessions"]);
    for i in 0..CLIENTS {
        let client = extra_client(i).to_string();
        assert!(
            sessions
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["v6_client"].as_str().unwrap_or("").contains(&client)),
            "no session of {client}: {sessions}"
        );
    }
}

/// Sends one UDP datagram to the server from each of `count` source ports
/// of `from` (10000 and up), each a new session; paced, so that the TUN
/// device's queue never overflows.
fn udp_flood(world: &World, from: Ipv6Addr, count: u16) {
    let to = SocketAddr::from((lab::server_via_nat64(), 9));
    world
        .lab
        .in_netns(world.lab.client(), move || {
            for port in 10_000..10_000 + count {
                let s = UdpSocket::bind(SocketAddr::from((from, port)))?;
                s.send_to(b"flood", to)?;
                if port % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(())
        })
        .expect("send the flood");
}

/// A table of 10,000 sessions is listed whole while a ping runs through
/// the gateway; the ping loses nothing.
#[test]
fn sessions_are_listed_while_traffic_flows() {
    // One client with 10,000 flows: beyond the default per-client limits.
    let no_client_limits =
        "[nat64.limits]\nmax-sessions-per-client = 0\nmax-ports-per-client = 0\n";
    let Some(world) = with_config("list", &["ping"], no_client_limits, None) else {
        return;
    };
    add_client_addresses(&world, 1);
    udp_flood(&world, extra_client(0), 10_000);
    lab::wait_until(Duration::from_secs(10), || {
        Ok(world.counter("nat64_sessions") >= 9_900)
    })
    .unwrap_or_else(|_| panic!("sessions: {}", world.json(&["stats"])));
    let server = lab::server_via_nat64().to_string();
    let ns = world.lab.client().to_string();
    let ping = std::thread::spawn(move || {
        lab::run_with_timeout(
            std::process::Command::new("ip").args([
                "netns", "exec", &ns, "ping", "-6", "-c", "100", "-i", "0.02", "-W", "2", &server,
            ]),
            Duration::from_secs(30),
        )
    });
    for _ in 0..3 {
        let sessions = world.json(&["sessions"]);
        let n = sessions.as_array().map_or(0, Vec::len);
        assert!(n >= 9_900, "listed {n} sessions");
        let bib = world.json(&["bib"]);
        assert!(bib.as_array().map_or(0, Vec::len) >= 9_900);
    }
    let out = ping.join().expect("ping thread").expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping lost packets while the table was listed:\n{text}"
    );
}

/// `max-sessions = 200`: a flood of new flows from one client is refused
/// (counted, ICMPv6 errors back) while another client's ping, started
/// before, keeps going without loss.
#[test]
fn the_session_limit_refuses_a_flood_and_spares_existing_flows() {
    let Some(world) = with_config(
        "limit",
        &["ping"],
        "[nat64.limits]\nmax-sessions = 200\n",
        None,
    ) else {
        return;
    };
    add_client_addresses(&world, 1);
    let server = lab::server_via_nat64().to_string();
    let ns = world.lab.client().to_string();
    let ping = std::thread::spawn(move || {
        lab::run_with_timeout(
            std::process::Command::new("ip").args([
                "netns", "exec", &ns, "ping", "-6", "-c", "30", "-i", "0.1", "-W", "2", &server,
            ]),
            Duration::from_secs(30),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    udp_flood(&world, extra_client(0), 2_000);
    let out = ping.join().expect("ping thread").expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "the existing ping flow suffered from the flood:\n{text}\n{}",
        world.gateway.log()
    );
    let sessions = world.counter("nat64_sessions");
    assert!(sessions <= 200, "{sessions} sessions held, limit 200");
    assert!(world.counter("drop_session_limit") > 0, "nothing refused");
    assert!(
        world.counter("icmp_errors_sent") > 0,
        "no ICMPv6 error sent back"
    );
}

/// Deleting the TUN device under a running gateway: the workers' reads
/// fail, the daemon logs why, removes its routes and exits with status 1.
#[test]
fn a_dead_worker_stops_the_daemon_with_status_1_and_no_routes_left() {
    if !common::can_run("dead_worker", &[]) {
        return;
    }
    let lab = Lab::create("dead").expect("build the lab");
    let mut gateway = lab
        .start_gateway(&common::exe())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = lab
        .run_in(lab.gateway(), &["ip", "link", "del", TUN])
        .expect("ip link del");
    assert!(out.status.success(), "ip link del {TUN}: {out:?}");
    let status = gateway
        .wait_timeout(Duration::from_secs(10))
        .expect("wait for xlat64")
        .unwrap_or_else(|| {
            panic!(
                "xlat64 still runs without its TUN device:\n{}",
                gateway.log()
            )
        });
    assert_eq!(
        status.code(),
        Some(1),
        "{}\n{}",
        lab::describe_status(status),
        gateway.log()
    );
    let log = gateway.log();
    assert!(log.contains("packet worker"), "no line says why:\n{log}");
    let show = |args: &[&str]| {
        let out = lab.run_in(lab.gateway(), args).expect("ip");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(show(&["ip", "-6", "route", "show", NAT64_PREFIX]), "");
    assert_eq!(
        show(&["ip", "-4", "route", "show", &format!("{POOL4}/32")]),
        ""
    );
    assert!(!lab.control_socket().exists(), "control socket left behind");
}

/// A raw packet socket on `dev` in the current namespace: every frame
/// received there, as it came off the link.
fn capture_socket(dev: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(dev).expect("no NUL in a device name");
    // SAFETY: plain calls with valid arguments; the descriptor is owned
    // from here on, and `addr` is a fully initialized sockaddr_ll.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol));
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = index as i32;
        let r = libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Room for bursts (as root, beyond rmem_max).
        let size: libc::c_int = 16 << 20;
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &timeout as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        Ok(fd)
    }
}

/// Reads frames arriving on `fd` (not those the host sends) until `stop`,
/// and checks the TCP checksum of each IPv4 or IPv6 TCP packet; returns
/// the count checked and a description of each bad one.
fn check_captured(
    fd: std::os::fd::OwnedFd,
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, Vec<String>) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::os::fd::AsRawFd;
    let mut frame = vec![0u8; 70_000];
    let (mut checked, mut bad) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: `frame` and `from` are valid for the lengths given.
        let (n, from) = unsafe {
            let mut from: libc::sockaddr_ll = std::mem::zeroed();
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            let n = libc::recvfrom(
                fd.as_raw_fd(),
                frame.as_mut_ptr() as *mut libc::c_void,
                frame.len(),
                0,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut from_len,
            );
            (n, from)
        };
        if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let n = n as usize;
        let Ok(p) = SlicedPacket::from_ethernet(&frame[..n]) else {
            continue;
        };
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            continue;
        };
        let expected = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                tcp.calc_checksum_ipv4(h.source(), h.destination())
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                tcp.calc_checksum_ipv6(h.source(), h.destination())
            }
            _ => continue,
        };
        checked += 1;
        // Verified as a receiver does: 0x0000 and 0xffff are the same value
        // in ones' complement (RFC 1624 §3), and Linux's software checksum
        // (skb_checksum_help) writes a computed zero as 0xffff.
        let verifies = match expected {
            Ok(0) => matches!(tcp.checksum(), 0 | 0xffff),
            Ok(sum) => sum == tcp.checksum(),
            Err(_) => false,
        };
        if !verifies {
            bad.push(format!(
                "{expected:x?} expected, {:#06x} found: {} bytes, seq {}, ack {}, flags {:?}, first bytes {:02x?}",
                tcp.checksum(),
                n,
                tcp.sequence_number(),
                tcp.acknowledgment_number(),
                (tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst(), tcp.psh()),
                &frame[..n.min(80)],
            ));
        }
    }
    (checked, bad)
}

/// Superpackets translated in place leave with correct checksums: with
/// checksum offload off on the gateway's links (the kernel then computes
/// every checksum in software before sending), every TCP packet arriving
/// at the server (IPv4) and at the client (IPv6) during transfers both
/// ways verifies.
#[test]
fn superpackets_translated_in_place_have_correct_checksums_on_the_wire() {
    let Some(world) = with_config("wire", &["ethtool"], "", None) else {
        return;
    };
    let offload = world.counter("tun_offload");
    if offload == 0 {
        eprintln!(
            "note: TUN offloads refused by this kernel or configuration; checking the copying path"
        );
    }
    // The gateway's links only: client and server still send TSO
    // superpackets (which reach the TUN device as such), and what the
    // gateway sends is segmented and summed in software, as a real wire
    // would carry it.
    for (ns, dev) in [(world.lab.gateway(), "g0"), (world.lab.gateway(), "g1")] {
        let out = world
            .lab
            .run_in(ns, &["ethtool", "-K", dev, "tx", "off"])
            .expect("ethtool");
        assert!(out.status.success(), "ethtool -K {dev} tx off: {out:?}");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut captures = Vec::new();
    for (ns, dev) in [(world.lab.server(), "s0"), (world.lab.client(), "c0")] {
        let fd = world
            .lab
            .in_netns(ns, || capture_socket(dev))
            .expect("capture socket");
        let stop = stop.clone();
        captures.push(std::thread::spawn(move || check_captured(fd, &stop)));
    }
    // Download and upload, 2 MiB each.
    let data = payload(0x77);
    std::fs::write(world.lab.dir().join("www").join("w.bin"), &data).expect("write");
    let got = world.lab.dir().join("w.got");
    let url = format!("http://[{}]/w.bin", lab::server_via_nat64());
    world.client_ok(&[
        "curl",
        "-sS",
        "--max-time",
        "30",
        "-o",
        &got.display().to_string(),
        &url,
    ]);
    assert!(
        std::fs::read(&got).expect("read") == data,
        "download differs"
    );
    let bind = SocketAddr::from((SERVER_V4, UPLOAD_PORT));
    let listener = world
        .lab
        .in_netns(world.lab.server(), || TcpListener::bind(bind))
        .expect("listen");
    let sink = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        Ok(got)
    });
    let to = SocketAddr::from((lab::server_via_nat64(), UPLOAD_PORT));
    let sent = data.clone();
    world
        .lab
        .in_netns(world.lab.client(), move || {
            let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
            conn.write_all(&sent)?;
            conn.shutdown(Shutdown::Write)
        })
        .expect("upload");
    assert!(
        sink.join().expect("sink").expect("sink reads") == data,
        "upload differs"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (side, capture) in ["server (IPv4)", "client (IPv6)"].iter().zip(captures) {
        let (checked, bad) = capture.join().expect("capture thread");
        assert!(
            checked > 1000,
            "{side}: only {checked} TCP packets captured"
        );
        assert!(
            bad.is_empty(),
            "{side}: {} of {checked} TCP packets with a bad checksum: {bad:#?}",
            bad.len()
        );
    }
    if offload == 1 {
        assert!(
            world.counter("translated_in_place") > 0,
            "nothing translated in place"
        );
        assert!(
            world.counter("tun_tx_gso_superpackets") > 0,
            "no superpacket written"
        );
    }
}
