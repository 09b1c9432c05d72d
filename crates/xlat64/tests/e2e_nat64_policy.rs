//! RFC 6146 policy end to end through the real binary: endpoint-independent
//! and address-dependent filtering, hairpinning between two clients, and an
//! unsolicited TCP SYN held for a simultaneous open and answered with ICMP
//! Port Unreachable.

mod common;

use serde_json::Value;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket,
};
use std::time::{Duration, Instant};
use xlat64_lab::{self as lab, embed_v4, Gateway, Lab, CLIENT_V6, POOL4, SERVER_V4};

/// A second address of the server, a host the client never talks to.
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
/// A second client on the client's link.
const CLIENT_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);

/// A lab whose gateway runs with `nat64_keys` added to `[nat64]`.
fn lab_with(tag: &str, nat64_keys: &str) -> Option<(Lab, Gateway)> {
    lab_with_sections(tag, nat64_keys, "")
}

/// [`lab_with`], and `sections` (whole tables) added before `[dns64]`.
fn lab_with_sections(tag: &str, nat64_keys: &str, sections: &str) -> Option<(Lab, Gateway)> {
    if !common::can_run(tag, &["ip"]) {
        return None;
    }
    let lab = Lab::create(tag).expect("build the lab");
    let config = lab
        .gateway_config()
        .replacen("[nat64]\n", &format!("[nat64]\n{nat64_keys}\n"), 1)
        .replacen("[dns64]\n", &format!("{sections}\n[dns64]\n"), 1);
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start the gateway: {e}"));
    Some((lab, gateway))
}

fn ip_ok(lab: &Lab, ns: &str, args: &[&str]) {
    let out = lab.run_in(ns, args).expect("ip");
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// Gives the client namespace the second client's address.
fn add_client_b(lab: &Lab) {
    let addr = format!("{CLIENT_B}/64");
    ip_ok(
        lab,
        lab.client(),
        &["ip", "addr", "add", &addr, "dev", "c0", "nodad"],
    );
}

fn json(gateway: &Gateway, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = gateway.cli(&all).expect("xlat64 cli");
    assert!(out.status.success(), "xlat64 {all:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn counter(gateway: &Gateway, name: &str) -> u64 {
    json(gateway, &["stats"])[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// The pool4 port of the UDP binding of `client` port `port`.
fn binding_port(gateway: &Gateway, client: SocketAddrV6) -> u16 {
    let bib = json(gateway, &["bib"]);
    let entry = bib
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["protocol"] == "udp" && b["v6_client"] == client.to_string())
        .unwrap_or_else(|| panic!("no binding for {client}: {bib}"));
    let local: SocketAddrV4 = entry["v4_local"].as_str().unwrap().parse().unwrap();
    assert_eq!(*local.ip(), POOL4);
    local.port()
}

/// Datagrams `socket` receives within `wait`, with their sources.
fn receive_all(socket: &UdpSocket, wait: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => got.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
    got
}

/// The client opens a UDP binding towards the server; then the server's
/// address from another port, and another IPv4 host, send to the binding.
/// Returns what the client received.
fn unsolicited_udp(lab: &Lab, gateway: &Gateway) -> Vec<Vec<u8>> {
    ip_ok(
        lab,
        lab.server(),
        &["ip", "addr", "add", &format!("{OTHER_V4}/24"), "dev", "s0"],
    );
    let client = lab
        .in_netns(lab.client(), || UdpSocket::bind((CLIENT_V6, 0)))
        .expect("client socket");
    let server6 = SocketAddr::from((embed_v4(SERVER_V4), 9999));
    client.send_to(b"open", server6).expect("send");
    let local = match client.local_addr().unwrap() {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(_) => unreachable!(),
    };
    lab::wait_until(Duration::from_secs(5), || {
        let bib = json(gateway, &["bib"]);
        Ok(bib.as_array().is_some_and(|b| !b.is_empty()))
    })
    .expect("binding created");
    let port = binding_port(gateway, local);
    lab.in_netns(lab.server(), || {
        for (from, text) in [(SERVER_V4, "same address"), (OTHER_V4, "other host")] {
            let s = UdpSocket::bind((from, 0))?;
            for _ in 0..3 {
                s.send_to(text.as_bytes(), (POOL4, port))?;
            }
        }
        Ok(())
    })
    .expect("send from the IPv4 side");
    let mut got: Vec<Vec<u8>> = receive_all(&client, Duration::from_secs(2))
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    got.sort();
    got.dedup();
    got
}

#[test]
fn rfc6146_endpoint_independent_filtering_lets_any_host_in_through_a_binding() {
    let Some((lab, gateway)) = lab_with("eif", "") else {
        return;
    };
    let got = unsolicited_udp(&lab, &gateway);
    assert_eq!(
        got,
        [b"other host".to_vec(), b"same address".to_vec()],
        "{}",
        gateway.log()
    );
}

#[test]
fn rfc6146_address_dependent_filtering_keeps_other_hosts_out() {
    let Some((lab, gateway)) = lab_with("adf", "filtering = \"address-dependent\"") else {
        return;
    };
    let got = unsolicited_udp(&lab, &gateway);
    assert_eq!(got, [b"same address".to_vec()], "{}", gateway.log());
    assert!(counter(&gateway, "drop_filtered") >= 1);
}

/// RFC 6146 §3.8: two clients reach each other through their pool4
/// transport addresses, both ways.
#[test]
fn rfc6146_3_8_hairpinning_between_two_clients_udp() {
    let Some((lab, gateway)) = lab_with("hairpin", "") else {
        return;
    };
    add_client_b(&lab);
    let (a, b) = lab
        .in_netns(lab.client(), || {
            Ok((
                UdpSocket::bind((CLIENT_V6, 0))?,
                UdpSocket::bind((CLIENT_B, 0))?,
            ))
        })
        .expect("client sockets");
    // A gets a binding by talking to the server.
    a.send_to(b"open", (embed_v4(SERVER_V4), 9999)).unwrap();
    let a_local = match a.local_addr().unwrap() {
        SocketAddr::V6(s) => s,
        SocketAddr::V4(_) => unreachable!(),
    };
    lab::wait_until(Duration::from_secs(5), || {
        Ok(json(&gateway, &["bib"])
            .as_array()
            .is_some_and(|b| !b.is_empty()))
    })
    .expect("binding created");
    let a_port = binding_port(&gateway, a_local);
    // B reaches A through the pool.
    b.send_to(b"to a", (embed_v4(POOL4), a_port)).unwrap();
    let got = receive_all(&a, Duration::from_secs(3));
    assert_eq!(got.len(), 1, "A got {got:?}\n{}", gateway.log());
    let (data, from) = &got[0];
    assert_eq!(data, b"to a");
    assert_eq!(
        from.ip(),
        IpAddr::V6(embed_v4(POOL4)),
        "from B's pool4 address"
    );
    // A answers to where it came from: B gets it from A's pool4 address.
    a.send_to(b"to b", from).unwrap();
    let got = receive_all(&b, Duration::from_secs(3));
    assert_eq!(got.len(), 1, "B got {got:?}\n{}", gateway.log());
    assert_eq!(got[0].0, b"to b");
    assert_eq!(got[0].1, SocketAddr::from((embed_v4(POOL4), a_port)));
    assert!(counter(&gateway, "hairpinned") >= 2);
    // A's session to the server and one each way through the pool.
    assert!(counter(&gateway, "nat64_sessions_created_udp") >= 3);
    assert_eq!(counter(&gateway, "nat64_sessions_created_tcp"), 0);

    // The operator's filters, applied by the daemon.
    let count = |args: &[&str]| json(&gateway, args).as_array().map_or(0, Vec::len);
    let all = count(&["sessions"]);
    let b_only = count(&["sessions", "--client", &CLIENT_B.to_string()]);
    assert!(b_only >= 1 && b_only < all, "B's {b_only} of {all}");
    assert_eq!(count(&["sessions", "--client", "2001:db8:1::/64"]), all);
    assert_eq!(count(&["sessions", "--client", "2001:db8:9::/48"]), 0);
    assert_eq!(count(&["sessions", "--protocol", "tcp"]), 0);
    assert_eq!(
        count(&["sessions", "--v4", &SERVER_V4.to_string()]),
        1,
        "only A talked to the server"
    );
    assert_eq!(count(&["bib", "--v4", &format!("{POOL4}:{a_port}")]), 1);
    let out = gateway.cli(&["sessions", "--protocol", "sctp"]).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp, udp or icmp"));
}

/// RFC 6146 §3.8 for TCP and ping: client B connects to a server client A
/// publishes at a pool4 transport address (a static binding), both
/// directions hairpinned; and a ping of the pool4 address comes back.
#[test]
fn rfc6146_3_8_hairpinning_tcp_and_ping() {
    let statics = format!(
        "[[nat64.static]]\nprotocol = \"tcp\"\nv6 = \"[{CLIENT_V6}]:8080\"\nv4 = \"{POOL4}:8080\"\n"
    );
    let Some((lab, gateway)) = lab_with_sections("hairtcp", "", &statics) else {
        return;
    };
    add_client_b(&lab);
    let listener = lab
        .in_netns(lab.client(), || {
            std::net::TcpListener::bind((CLIENT_V6, 8080))
        })
        .expect("A listens");
    let published = SocketAddr::from((embed_v4(POOL4), 8080));
    let mut b = lab
        .in_netns(lab.client(), move || {
            let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::from((CLIENT_B, 0)).into())?;
            s.connect_timeout(&published.into(), Duration::from_secs(5))?;
            Ok(TcpStream::from(s))
        })
        .unwrap_or_else(|e| panic!("B connects through the pool: {e}\n{}", gateway.log()));
    listener.set_nonblocking(false).unwrap();
    let (mut a, from) = listener.accept().expect("A accepts");
    // A sees B at B's pool4 transport address.
    assert_eq!(from.ip(), IpAddr::V6(embed_v4(POOL4)), "{from}");
    use std::io::{Read, Write};
    b.write_all(b"hello a").unwrap();
    let mut buf = [0u8; 7];
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello a");
    a.write_all(b"hello b").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello b");
    let tcp = json(&gateway, &["sessions", "--protocol", "tcp"]);
    let states: Vec<&str> = tcp
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["established", "established"], "{tcp}");
    assert!(counter(&gateway, "hairpinned") >= 4);
    drop((a, b));
    // A ping of the pool4 address goes out through the sender's binding
    // and back in to the sender, whose stack answers it.
    let out = lab
        .run_in(
            lab.client(),
            &[
                "ping",
                "-6",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                &embed_v4(POOL4).to_string(),
            ],
        )
        .expect("ping");
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
}

/// RFC 6146 §3.5.2.2: a SYN from the IPv4 side to a port nobody holds is
/// held 6 s, then answered with ICMP Port Unreachable (the connecting side
/// sees "connection refused", not a timeout).
#[test]
fn rfc6146_3_5_2_2_unanswered_syn_is_refused_after_six_seconds() {
    let Some((lab, gateway)) = lab_with("synheld", "") else {
        return;
    };
    let started = Instant::now();
    let result = lab
        .in_netns(lab.server(), || {
            Ok(TcpStream::connect_timeout(
                &SocketAddr::from((POOL4, 40000)),
                Duration::from_secs(20),
            ))
        })
        .expect("connect from the server");
    let waited = started.elapsed();
    match result {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!(
            "expected connection refused, got {other:?}\n{}",
            gateway.log()
        ),
    }
    assert!(
        waited >= Duration::from_secs(5),
        "refused after {waited:?}: not held"
    );
    assert!(
        counter(&gateway, "tcp_syns_held") >= 1,
        "retransmissions count too"
    );
    assert_eq!(counter(&gateway, "tcp_syns_unanswered"), 1);
}

/// RFC 6888 REQ-4: a client that takes all the ports it may is refused
/// more, and another client still connects.
#[test]
fn rfc6888_req_4_a_client_at_its_port_limit_does_not_starve_another() {
    let Some((lab, gateway)) =
        lab_with_sections("plimit", "", "[nat64.limits]\nmax-ports-per-client = 20\n")
    else {
        return;
    };
    add_client_b(&lab);
    let server6 = SocketAddr::from((embed_v4(SERVER_V4), 9999));
    lab.in_netns(lab.client(), || {
        for _ in 0..40 {
            UdpSocket::bind((CLIENT_V6, 0))?.send_to(b"flow", server6)?;
        }
        Ok(())
    })
    .expect("A's flows");
    // 40 flows against a limit of 20: refusals (a datagram may be lost on a
    // loaded machine, so not necessarily 20 of them), and A holds 20 ports.
    lab::wait_until(Duration::from_secs(5), || {
        Ok(counter(&gateway, "drop_client_port_limit") >= 10)
    })
    .unwrap_or_else(|_| panic!("no refusals: {}", json(&gateway, &["stats"])));
    let count = |client: Ipv6Addr| {
        json(&gateway, &["bib", "--client", &client.to_string()])
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count(CLIENT_V6), 20);
    lab.in_netns(lab.client(), || {
        UdpSocket::bind((CLIENT_B, 0))?.send_to(b"flow", server6)
    })
    .expect("B's flow");
    lab::wait_until(Duration::from_secs(5), || Ok(count(CLIENT_B) == 1))
        .unwrap_or_else(|_| panic!("B got no binding:\n{}", gateway.log()));
    // The refusals are logged once for the interval, with their number,
    // not once per packet.
    lab::wait_until(Duration::from_secs(15), || {
        Ok(gateway.log().contains("in the last 10 s: new flows refused: a client reached nat64.limits.max-ports-per-client"))
    })
    .unwrap_or_else(|_| panic!("no warning:\n{}", gateway.log()));
    let warnings = gateway
        .log()
        .matches("max-ports-per-client (drop_client_port_limit")
        .count();
    // (Two if the burst straddled two intervals; never one per refusal.)
    assert!((1..=2).contains(&warnings), "{}", gateway.log());
}

/// RFC 6146 §3.1 static binding: an IPv4 host reaches an IPv6 server of the
/// client side at a pool4 transport address (port forwarding).
#[test]
fn rfc6146_3_1_static_binding_reached_from_the_ipv4_side() {
    use std::io::{Read, Write};
    let statics = format!(
        "[[nat64.static]]\nprotocol = \"tcp\"\nv6 = \"[{CLIENT_V6}]:8080\"\nv4 = \"{POOL4}:8080\"\n"
    );
    // With address-dependent filtering and external TCP refused otherwise.
    let Some((lab, gateway)) = lab_with_sections(
        "static",
        "filtering = \"address-dependent\"\ndrop-externally-initiated-tcp = true",
        &statics,
    ) else {
        return;
    };
    let bib = json(&gateway, &["bib"]);
    assert_eq!(bib[0]["static"], true, "{bib}");
    let listener = lab
        .in_netns(lab.client(), || {
            std::net::TcpListener::bind((CLIENT_V6, 8080))
        })
        .expect("listen in the client namespace");
    let server = std::thread::spawn(move || -> io::Result<(String, SocketAddr)> {
        let (mut conn, from) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf)?;
        conn.write_all(b"pong")?;
        Ok((String::from_utf8_lossy(&buf).into_owned(), from))
    });
    let answer = lab
        .in_netns(lab.server(), || {
            let mut c = TcpStream::connect_timeout(
                &SocketAddr::from((POOL4, 8080)),
                Duration::from_secs(10),
            )?;
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            c.write_all(b"ping")?;
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        })
        .unwrap_or_else(|e| panic!("connect to the published port: {e}\n{}", gateway.log()));
    assert_eq!(answer, "pong");
    let (got, from) = server.join().unwrap().expect("the IPv6 server");
    assert_eq!(got, "ping");
    assert_eq!(
        from.ip(),
        IpAddr::V6(embed_v4(SERVER_V4)),
        "the IPv4 client under the prefix"
    );
    // Another pool4 port stays closed.
    let refused = lab
        .in_netns(lab.server(), || {
            Ok(
                TcpStream::connect_timeout(
                    &SocketAddr::from((POOL4, 8081)),
                    Duration::from_secs(2),
                )
                .is_err(),
            )
        })
        .unwrap();
    assert!(refused);
    assert!(counter(&gateway, "drop_tcp_externally_initiated") >= 1);
}

/// The TCP state of the client's session towards the server's `port`.
fn tcp_state(gateway: &Gateway, port: u16) -> Option<(String, u64)> {
    let sessions = json(gateway, &["sessions", "--protocol", "tcp"]);
    sessions.as_array()?.iter().find_map(|s| {
        let server: SocketAddrV4 = s["v4_server"].as_str()?.parse().ok()?;
        (server.port() == port).then(|| {
            (
                s["state"].as_str().unwrap_or_default().to_string(),
                s["expires_in_s"].as_u64().unwrap_or(0),
            )
        })
    })
}

/// RFC 6146 §3.5.2.2: a connection closed by FINs from both sides ends in
/// V4 FIN + V6 FIN RCV, one reset in TRANS, both on the transitory timer
/// (4 minutes here), not the established one.
#[test]
fn rfc6146_3_5_2_2_fin_and_rst_leave_the_sessions_in_their_states() {
    use std::io::{Read, Write};
    let Some((lab, gateway)) = lab_with("tcpstates", "") else {
        return;
    };
    let listener = lab
        .in_netns(lab.server(), || std::net::TcpListener::bind((SERVER_V4, 0)))
        .expect("listen in the server namespace");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || -> io::Result<()> {
        for _ in 0..2 {
            let (mut conn, _) = listener.accept()?;
            conn.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut buf = [0u8; 64];
            // Echo until the client closes, then close too.
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                conn.write_all(&buf[..n])?;
            }
        }
        Ok(())
    });
    let to = SocketAddr::from((embed_v4(SERVER_V4), port));
    let exchange = |reset: bool| {
        lab.in_netns(lab.client(), || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            c.write_all(b"hello")?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)?;
            if reset {
                socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO))?;
            } else {
                c.shutdown(std::net::Shutdown::Write)?;
                let _ = c.read(&mut buf)?; // the server's FIN
            }
            Ok(c.local_addr()?.port())
        })
        .expect("a connection through the gateway")
    };
    exchange(false);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(tcp_state(&gateway, port).is_some_and(|(s, _)| s == "v4_fin_v6_fin_rcv"))
    })
    .unwrap_or_else(|_| panic!("after FINs: {:?}", tcp_state(&gateway, port)));
    let (_, expires) = tcp_state(&gateway, port).unwrap();
    assert!(
        expires <= 240,
        "transitory timer, not established: {expires} s"
    );
    // The second connection from another client port: reset.
    exchange(true);
    lab::wait_until(Duration::from_secs(5), || {
        let sessions = json(&gateway, &["sessions", "--protocol", "tcp"]);
        Ok(sessions
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["state"] == "trans")))
    })
    .unwrap_or_else(|_| panic!("after RST: {}", json(&gateway, &["sessions"])));
    server.join().unwrap().expect("the echo server");
}

/// A session expires under a short configured timeout (ICMP, 2 s here),
/// and the binding with it.
#[test]
fn a_session_expires_under_a_short_configured_timeout() {
    let Some((lab, gateway)) = lab_with_sections("expiry", "", "[nat64.timeouts]\nicmp = 2\n")
    else {
        return;
    };
    let server6 = embed_v4(SERVER_V4).to_string();
    // The echo request leaves after `start`: never gone before 2 s from it.
    let start = Instant::now();
    let out = lab
        .run_in(
            lab.client(),
            &["ping", "-6", "-c", "1", "-W", "2", &server6],
        )
        .expect("ping");
    assert!(out.status.success(), "ping: {out:?}");
    assert_eq!(
        json(&gateway, &["sessions", "--protocol", "icmp"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    lab::wait_until(Duration::from_secs(10), || {
        Ok(json(&gateway, &["bib"])
            .as_array()
            .is_some_and(Vec::is_empty))
    })
    .expect("the ICMP session and binding expire");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "gone before its timeout"
    );
    assert!(counter(&gateway, "nat64_sessions_expired") >= 1);
}

/// RFC 6888 REQ-12: the binding log names each flow's client and IPv4
/// transport address; SIGHUP reopens it (logrotate) and the daemon goes on.
#[test]
fn rfc6888_req_12_binding_log_names_client_and_pool4_address() {
    let Some(lab) =
        common::can_run("bindlog", &["ip"]).then(|| Lab::create("bindlog").expect("lab"))
    else {
        return;
    };
    let path = lab.dir().join("bindings.jsonl");
    let config = lab.gateway_config().replacen(
        "[dns64]\n",
        &format!(
            "[nat64.log]\nbindings = \"{}\"\n\n[dns64]\n",
            path.display()
        ),
        1,
    );
    let mut gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start the gateway: {e}"));
    let send_from = |port: u16| {
        lab.in_netns(lab.client(), move || {
            UdpSocket::bind((CLIENT_V6, port))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))
        })
        .expect("send")
    };
    let lines_of = |p: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    send_from(41000);
    lab::wait_until(Duration::from_secs(5), || Ok(!lines_of(&path).is_empty()))
        .unwrap_or_else(|_| panic!("no binding log line:\n{}", gateway.log()));
    let line = &lines_of(&path)[0];
    assert_eq!(line["event"], "create");
    assert_eq!(line["protocol"], "udp");
    assert_eq!(line["v6_client"], format!("[{CLIENT_V6}]:41000"));
    let local: SocketAddrV4 = line["v4_local"].as_str().unwrap().parse().unwrap();
    assert_eq!(*local.ip(), POOL4);
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    // logrotate: move the file, SIGHUP, new lines go to a new file.
    let rotated = lab.dir().join("bindings.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    // SAFETY: kill(2) on the gateway's pid, which this test started.
    assert_eq!(unsafe { libc::kill(gateway.pid() as i32, libc::SIGHUP) }, 0);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(gateway.log().contains("reopening the binding log"))
    })
    .unwrap_or_else(|_| panic!("SIGHUP not seen:\n{}", gateway.log()));
    send_from(41001);
    lab::wait_until(Duration::from_secs(5), || Ok(!lines_of(&path).is_empty()))
        .unwrap_or_else(|_| panic!("nothing in the reopened log:\n{}", gateway.log()));
    assert_eq!(
        lines_of(&path)[0]["v6_client"],
        format!("[{CLIENT_V6}]:41001")
    );
    assert_eq!(lines_of(&rotated).len(), 1);
    assert!(
        gateway.is_running(),
        "SIGHUP stopped the daemon:\n{}",
        gateway.log()
    );
    // The abuse report: who held the first binding's address and port?
    let (rotated, path) = (rotated.display().to_string(), path.display().to_string());
    let v4 = local.to_string();
    let out = gateway
        .cli(&["lookup", &v4, "--log", &rotated, "--log", &path, "--json"])
        .expect("xlat64 lookup");
    assert!(out.status.success(), "{out:?}");
    let found: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        found[0]["v6_client"],
        format!("[{CLIENT_V6}]:41000"),
        "{found}"
    );
    assert_eq!(found[0]["until"], Value::Null);
}

/// RFC 7422 port blocks: a client's bindings share its block (one log line
/// for all of them), another client gets a block of its own, and `xlat64
/// lookup` names the client that held a port of a block at a time.
#[test]
fn rfc7422_port_blocks_log_one_line_per_block_and_lookup_names_the_client() {
    let Some(lab) = common::can_run("blocks", &["ip"]).then(|| Lab::create("blocks").expect("lab"))
    else {
        return;
    };
    add_client_b(&lab);
    let path = lab.dir().join("bindings.jsonl");
    let config = lab
        .gateway_config()
        .replacen("[nat64]\n", "[nat64]\nport-block = 64\n", 1)
        .replacen(
            "[dns64]\n",
            &format!(
                "[nat64.log]\nbindings = \"{}\"\n\n[dns64]\n",
                path.display()
            ),
            1,
        );
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start the gateway: {e}"));
    lab.in_netns(lab.client(), || {
        for port in 42000..42010u16 {
            UdpSocket::bind((CLIENT_V6, port))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))?;
        }
        UdpSocket::bind((CLIENT_B, 42000))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))
    })
    .expect("send");
    let bib = || json(&gateway, &["bib"]);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(bib().as_array().unwrap().len() == 11)
    })
    .unwrap_or_else(|_| panic!("bindings: {}", bib()));
    let ports_of = |client: Ipv6Addr| -> Vec<u16> {
        bib()
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| {
                b["v6_client"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("[{client}]"))
            })
            .map(|b| {
                let l: SocketAddrV4 = b["v4_local"].as_str().unwrap().parse().unwrap();
                l.port()
            })
            .collect()
    };
    let a = ports_of(CLIENT_V6);
    let b = ports_of(CLIENT_B);
    assert_eq!(a.len(), 10);
    let block = a[0] / 64;
    assert!(a.iter().all(|p| p / 64 == block), "{a:?}");
    assert!(b.iter().all(|p| p / 64 != block), "{b:?}");
    assert_eq!(counter(&gateway, "nat64_port_blocks"), 2);
    // Two lines, one per block.
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    lab::wait_until(Duration::from_secs(5), || Ok(lines().len() == 2))
        .unwrap_or_else(|_| panic!("log: {:?}", lines()));
    let mine = lines()
        .into_iter()
        .find(|l| l["v6_client"] == CLIENT_V6.to_string())
        .expect("client A's block");
    assert_eq!(mine["protocol"], "all");
    let first = block * 64;
    assert_eq!(mine["v4_block"], format!("{POOL4}:{first}-{}", first + 63));
    // Who held a port of that block, now? Client A, from the configured log.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let v4 = format!("{POOL4}:{}", first + 40);
    let out = gateway
        .cli(&["lookup", &v4, "--at", &now, "--protocol", "tcp"])
        .expect("xlat64 lookup");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&CLIENT_V6.to_string()), "{text}");
    assert!(!text.contains(&CLIENT_B.to_string()), "{text}");
    // Nobody held a port outside both blocks: no answer, exit status 1.
    let free = (1..=65535u16)
        .find(|p| p / 64 != block && b.iter().all(|q| q / 64 != p / 64))
        .unwrap();
    let out = gateway
        .cli(&["lookup", &format!("{POOL4}:{free}")])
        .expect("xlat64 lookup");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no holder"),
        "{out:?}"
    );
}

/// A pool4 entry with a port range of its own: the gateway hands out only
/// those ports of the address.
#[test]
fn a_pool4_entry_with_a_port_range_hands_out_only_its_ports() {
    let Some((lab, gateway)) = lab_with("prange", "") else {
        return;
    };
    drop(gateway);
    let config = lab.gateway_config().replacen(
        &format!("pool4 = [\"{POOL4}\"]"),
        &format!("pool4 = [\"{POOL4}:61000-61099\"]"),
        1,
    );
    assert!(config.contains("61000-61099"), "{config}");
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start the gateway: {e}"));
    lab.in_netns(lab.client(), || {
        for port in 42000..42010 {
            UdpSocket::bind((CLIENT_V6, port))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))?;
        }
        Ok(())
    })
    .expect("send");
    lab::wait_until(Duration::from_secs(5), || {
        Ok(json(&gateway, &["bib"]).as_array().map_or(0, Vec::len) == 10)
    })
    .unwrap_or_else(|_| panic!("bindings: {}", json(&gateway, &["bib"])));
    for b in json(&gateway, &["bib"]).as_array().unwrap() {
        let local: SocketAddrV4 = b["v4_local"].as_str().unwrap().parse().unwrap();
        assert!((61000..=61099).contains(&local.port()), "{b}");
    }
}

/// RFC 7422 §2 deterministic port blocks: the client's ports come from the
/// block the configuration gives it (client 2 of 2001:db8:1::/120 holds
/// block 1 + 2 = ports 384-511, block 0 not being whole in 1-65535), a
/// client outside the range gets none,
/// and `xlat64 lookup` answers from the configuration alone.
#[test]
fn rfc7422_2_deterministic_blocks_follow_the_configuration() {
    let Some((lab, gateway)) = lab_with_sections(
        "determ",
        "port-block = 128",
        "[nat64.deterministic]\nclients = \"2001:db8:1::/120\"\n",
    ) else {
        return;
    };
    add_client_b(&lab);
    lab.in_netns(lab.client(), || {
        UdpSocket::bind((CLIENT_V6, 43000))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))?;
        UdpSocket::bind((CLIENT_B, 43000))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))
    })
    .expect("send");
    lab::wait_until(Duration::from_secs(5), || {
        Ok(counter(&gateway, "drop_outside_deterministic_range") == 1)
    })
    .unwrap_or_else(|_| panic!("client B not refused: {}", json(&gateway, &["stats"])));
    let port = binding_port(&gateway, SocketAddrV6::new(CLIENT_V6, 43000, 0, 0));
    assert!((384..=511).contains(&port), "{port}");
    let out = gateway
        .cli(&["lookup", &format!("{POOL4}:400")])
        .expect("xlat64 lookup");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2001:db8:1::2/128 holds 192.0.2.1:384-511"),
        "{text}"
    );
}

/// RFC 6146 §3.5.2.2 simultaneous open end to end: the server's SYN to the
/// client's (future) pool4 port is held; the client's own SYN to the server
/// then opens the binding (keeping its port), the held SYN is dropped, and
/// both ends, each in SYN-SENT, complete one connection.
#[test]
fn rfc6146_3_5_2_2_simultaneous_open_end_to_end() {
    let Some((lab, gateway)) = lab_with("simopen", "") else {
        return;
    };
    use std::io::{Read, Write};
    use xlat64_nat::shard::{owner_of_client, owner_of_port};
    let workers = counter(&gateway, "workers") as u16;
    // A client port the client's worker owns, so that it is kept.
    let owner = owner_of_client(&CLIENT_V6.octets(), 128, workers);
    let port = (40000..)
        .find(|&p| owner_of_port(p, workers, 1) == owner)
        .unwrap();
    let server = SocketAddr::from((SERVER_V4, 7777));
    let pool = SocketAddr::from((POOL4, port));
    let server_socket = lab
        .in_netns(lab.server(), move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&server.into())?;
            s.set_nonblocking(true)?;
            match s.connect(&pool.into()) {
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                other => other.map(|()| s),
            }
        })
        .expect("the server's connect");
    lab::wait_until(Duration::from_secs(5), || {
        Ok(counter(&gateway, "tcp_syns_held") >= 1)
    })
    .unwrap_or_else(|_| panic!("no SYN held:\n{}", gateway.log()));
    let client_to = SocketAddr::from((embed_v4(SERVER_V4), 7777));
    let mut client = lab
        .in_netns(lab.client(), move || {
            let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::from((CLIENT_V6, port)).into())?;
            s.connect_timeout(&client_to.into(), Duration::from_secs(5))?;
            Ok(TcpStream::from(s))
        })
        .unwrap_or_else(|e| panic!("the client's connect: {e}\n{}", gateway.log()));
    // The server's connect completes too: one connection, both ends.
    server_socket.set_nonblocking(false).unwrap();
    let mut server_stream = TcpStream::from(server_socket);
    server_stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"hi server").unwrap();
    let mut buf = [0u8; 9];
    server_stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi server");
    assert_eq!(server_stream.peer_addr().unwrap(), pool);
    server_stream.write_all(b"hi client").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi client");
    assert_eq!(counter(&gateway, "tcp_simultaneous_opens"), 1);
    assert_eq!(counter(&gateway, "tcp_syns_unanswered"), 0);
    let tcp = json(&gateway, &["sessions", "--protocol", "tcp"]);
    assert_eq!(tcp[0]["state"], "established", "{tcp}");
    assert_eq!(tcp[0]["v4_local"], pool.to_string(), "{tcp}");
}

/// RFC 6888 REQ-6: a denied destination is refused with ICMPv6
/// administratively prohibited, which the client's stack reports at once
/// (EACCES on a connected socket); other ports of the host still work.
#[test]
fn rfc6888_req_6_a_denied_destination_is_refused() {
    let deny = format!("deny-destinations = [\"{SERVER_V4}:9999\"]");
    let Some((lab, gateway)) = lab_with("deny", &deny) else {
        return;
    };
    let err = lab
        .in_netns(lab.client(), || {
            let s = UdpSocket::bind((CLIENT_V6, 0))?;
            s.connect((embed_v4(SERVER_V4), 9999))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.send(b"denied?")?;
            let mut buf = [0u8; 16];
            Ok(s.recv(&mut buf).err())
        })
        .expect("client socket");
    assert_eq!(
        err.map(|e| e.kind()),
        Some(io::ErrorKind::PermissionDenied),
        "{}",
        gateway.log()
    );
    assert_eq!(counter(&gateway, "drop_destination_denied"), 1);
    assert_eq!(json(&gateway, &["bib"]).as_array().unwrap().len(), 0);
    // Another port of the same server is translated.
    lab.in_netns(lab.client(), || {
        UdpSocket::bind((CLIENT_V6, 0))?.send_to(b"fine", (embed_v4(SERVER_V4), 9998))
    })
    .expect("send");
    lab::wait_until(Duration::from_secs(5), || {
        Ok(json(&gateway, &["bib"]).as_array().unwrap().len() == 1)
    })
    .expect("a binding for the allowed port");
}
