//! `xlat64 reload` (and SIGHUP) on a running gateway: what may change while
//! running is applied without losing a session (NAT64) or the cache
//! (DNS64); a change to anything else, or an invalid file, is refused,
//! naming the key, and changes nothing.

mod common;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use serde_json::Value;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xlat64_lab::{self as lab, embed_v4, Gateway, Lab, CLIENT_V6, POOL4, SERVER_V4};

fn sessions(gateway: &Gateway) -> Vec<Value> {
    let out = gateway.cli(&["sessions", "--json"]).expect("sessions");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn reload(gateway: &Gateway) -> std::process::Output {
    gateway.cli(&["reload"]).expect("xlat64 reload")
}

#[test]
fn reload_applies_live_keys_and_refuses_the_rest() {
    if !common::can_run("reload", &["ip"]) {
        return;
    }
    let lab = Lab::create("reload").expect("lab");
    let base = lab.gateway_config();
    let gateway = lab
        .start_gateway_with(&common::exe(), &base)
        .expect("start the gateway");
    let write = |text: &str| std::fs::write(gateway.config_path(), text).expect("write config");
    lab.in_netns(lab.client(), || {
        UdpSocket::bind((CLIENT_V6, 45000))?.send_to(b"x", (embed_v4(SERVER_V4), 9999))
    })
    .expect("send");
    lab::wait_until(Duration::from_secs(5), || Ok(sessions(&gateway).len() == 1))
        .expect("a UDP session");
    let before = sessions(&gateway)[0]["expires_in_s"].as_u64().unwrap();
    assert!(before > 200, "default UDP timeout: {before}");

    // Live keys: applied, the session kept, its new lifetime in force.
    write(
        &base
            .replacen(
                "[nat64]\n",
                "[nat64]\nfiltering = \"address-dependent\"\n",
                1,
            )
            .replacen("[dns64]\n", "[nat64.timeouts]\nudp = 120\n\n[dns64]\n", 1),
    );
    let out = reload(&gateway);
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "applied: nat64.filtering, nat64.timeouts.udp",
        "{text}"
    );
    let now = sessions(&gateway);
    assert_eq!(now.len(), 1, "the session stays");
    assert!(now[0]["expires_in_s"].as_u64().unwrap() <= 120, "{now:?}");
    // Again: nothing to change.
    let out = reload(&gateway);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration unchanged"
    );

    // A key that cannot change while running: refused by name, nothing
    // applied (the UDP timeout of the same file is not taken either).
    let applied = std::fs::read_to_string(gateway.config_path()).unwrap();
    write(
        &applied
            .replace("udp = 120", "udp = 150")
            .replace("tun = \"nat64\"", "tun = \"other\""),
    );
    let out = reload(&gateway);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nat64.tun") && err.contains("restart"),
        "{err}"
    );
    assert!(sessions(&gateway)[0]["expires_in_s"].as_u64().unwrap() <= 120);

    // An invalid file: refused, the running configuration untouched.
    write(&applied.replace("[nat64]\n", "[nat64]\nmtu = \"big\"\n"));
    let out = reload(&gateway);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nat64.mtu"),
        "{out:?}"
    );
    write(&applied);
    assert_eq!(sessions(&gateway).len(), 1);

    // SIGHUP reloads too: an invalid file is refused in the log...
    let hup = |gateway: &Gateway| {
        // SAFETY: kill(2) on the gateway's pid, which this test started.
        assert_eq!(unsafe { libc::kill(gateway.pid() as i32, libc::SIGHUP) }, 0);
    };
    write(&applied.replace("[nat64]\n", "[nat64]\nmtu = \"big\"\n"));
    hup(&gateway);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(gateway.log().contains("SIGHUP: nat64.mtu"))
    })
    .unwrap_or_else(|_| panic!("no refusal on SIGHUP:\n{}", gateway.log()));
    // ...and a valid one applied.
    write(&applied.replace("udp = 120", "udp = 150"));
    hup(&gateway);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(gateway.log().contains("SIGHUP: configuration reloaded"))
    })
    .unwrap_or_else(|_| panic!("no reload on SIGHUP:\n{}", gateway.log()));
    assert_eq!(sessions(&gateway).len(), 1);
}

/// A reload while an iperf3 TCP transfer and an iperf3 UDP flow run
/// through the gateway: both complete, the UDP one without losses to speak
/// of, and the new timeout is in force afterwards.
#[test]
fn reload_during_a_tcp_transfer_and_a_udp_flow_interrupts_neither() {
    if !common::can_run("reloadtraffic", &["ip", "iperf3"]) {
        return;
    }
    let lab = Lab::create("reloadtraffic").expect("lab");
    let base = lab.gateway_config();
    let gateway = lab
        .start_gateway_with(&common::exe(), &base)
        .expect("start the gateway");
    let server = SERVER_V4.to_string();
    let _tcp_server = lab
        .spawn_in(lab.server(), &["iperf3", "-s", "-B", &server, "-p", "5201"])
        .expect("iperf3 server");
    let _udp_server = lab
        .spawn_in(lab.server(), &["iperf3", "-s", "-B", &server, "-p", "5202"])
        .expect("iperf3 server");
    lab.wait_listening(lab.server(), "tcp", 5201, Duration::from_secs(10))
        .and_then(|()| lab.wait_listening(lab.server(), "tcp", 5202, Duration::from_secs(10)))
        .expect("iperf3 listening");
    let to = xlat64_lab::server_via_nat64().to_string();
    let mut tcp = lab
        .spawn_in(
            lab.client(),
            &["iperf3", "-c", &to, "-p", "5201", "-t", "4", "--json"],
        )
        .expect("iperf3 TCP client");
    let mut udp = lab
        .spawn_in(
            lab.client(),
            &[
                "iperf3", "-c", &to, "-p", "5202", "-u", "-b", "20M", "-t", "4", "--json",
            ],
        )
        .expect("iperf3 UDP client");
    // Reload twice while both run: a shorter UDP timeout, then a longer.
    std::thread::sleep(Duration::from_millis(1500));
    for udp_timeout in [150, 200] {
        std::fs::write(
            gateway.config_path(),
            base.replacen(
                "[dns64]\n",
                &format!("[nat64.timeouts]\nudp = {udp_timeout}\n\n[dns64]\n"),
                1,
            ),
        )
        .expect("write config");
        let out = gateway.cli(&["reload"]).expect("xlat64 reload");
        assert!(out.status.success(), "{out:?}\n{}", gateway.log());
        std::thread::sleep(Duration::from_millis(700));
    }
    for (what, run) in [("TCP", &mut tcp), ("UDP", &mut udp)] {
        let status = run
            .wait_timeout(Duration::from_secs(20))
            .expect("wait")
            .unwrap_or_else(|| panic!("iperf3 {what} still running"));
        assert!(status.success(), "iperf3 {what}: {}", run.log());
        let report: Value = serde_json::from_str(&run.log()).expect("iperf3 JSON");
        let end = &report["end"];
        // For the record (`--nocapture`): what each flow got across the reloads.
        eprintln!(
            "iperf3 {what} across two reloads: {}",
            if what == "TCP" {
                format!(
                    "{:.2} Gbit/s received, {} retransmits",
                    end["sum_received"]["bits_per_second"]
                        .as_f64()
                        .unwrap_or(0.0)
                        / 1e9,
                    end["sum_sent"]["retransmits"]
                )
            } else {
                format!(
                    "{:.1} Mbit/s, {} of {} datagrams lost ({}%)",
                    end["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6,
                    end["sum"]["lost_packets"],
                    end["sum"]["packets"],
                    end["sum"]["lost_percent"]
                )
            }
        );
        if what == "TCP" {
            let bytes = end["sum_received"]["bytes"].as_u64().unwrap_or(0);
            assert!(bytes > 1 << 20, "TCP received {bytes} bytes: {}", run.log());
        } else {
            let lost = end["sum"]["lost_percent"].as_f64().unwrap_or(100.0);
            assert!(lost < 5.0, "UDP lost {lost}%: {}", run.log());
        }
    }
    // The last reload's UDP timeout is in force for the UDP session.
    let udp_sessions: Vec<Value> = sessions(&gateway)
        .into_iter()
        .filter(|s| s["protocol"] == "udp")
        .collect();
    assert!(!udp_sessions.is_empty());
    assert!(udp_sessions
        .iter()
        .all(|s| s["expires_in_s"].as_u64().unwrap() <= 200));
}

/// A reload that changes pool4 and the binding log's file: the added
/// address is routed and serves new flows (both ways), the removed one
/// drains (its ICMP binding keeps working, its route stays) until its last
/// binding expires, then its route goes; new bindings are logged to the
/// new file. A changed port range of a pool4 address is refused by key.
#[test]
fn reload_adds_and_drains_pool4_addresses_and_moves_the_binding_log() {
    if !common::can_run("reloadpool", &["ip", "ping"]) {
        return;
    }
    let lab = Lab::create("reloadpool").expect("lab");
    let (log1, log2) = (lab.dir().join("b1.jsonl"), lab.dir().join("b2.jsonl"));
    let with = |pool: &str, log: &std::path::Path| {
        lab.gateway_config()
            .replace(
                &format!("pool4 = [\"{POOL4}\"]"),
                &format!("pool4 = [{pool}]"),
            )
            .replacen(
                "[dns64]\n",
                &format!(
                    "[nat64.timeouts]\nicmp = 4\n\n[nat64.log]\nbindings = \"{}\"\n\n[dns64]\n",
                    log.display()
                ),
                1,
            )
    };
    let gateway = lab
        .start_gateway_with(&common::exe(), &with(&format!("\"{POOL4}\""), &log1))
        .expect("start the gateway");
    let server = xlat64_lab::server_via_nat64().to_string();
    let ping = || {
        lab.run_in(lab.client(), &["ping", "-6", "-c", "1", "-W", "2", &server])
            .expect("ping")
    };
    let routes = || {
        let out = lab
            .run_in(
                lab.gateway(),
                &["ip", "-4", "route", "show", "dev", "nat64"],
            )
            .expect("ip route");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let local_of = |proto: &str| -> Vec<String> {
        sessions(&gateway)
            .iter()
            .filter(|s| s["protocol"] == proto)
            .map(|s| s["v4_local"].as_str().unwrap_or("").to_string())
            .collect()
    };
    // A ping running across the reload: one echo identifier, one binding.
    let mut long_ping = lab
        .spawn_in(
            lab.client(),
            &["ping", "-6", "-c", "15", "-i", "0.2", "-W", "2", &server],
        )
        .expect("ping");
    lab::wait_until(Duration::from_secs(5), || Ok(!local_of("icmp").is_empty()))
        .expect("an ICMP session");
    assert!(local_of("icmp")[0].starts_with(&format!("{POOL4}:")));

    let added = "192.0.2.9";
    std::fs::write(gateway.config_path(), with(&format!("\"{added}\""), &log2)).unwrap();
    let out = reload(&gateway);
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "applied: nat64.log.bindings, nat64.pool4"
    );
    let table = routes();
    assert!(
        table.contains(added) && table.contains(&POOL4.to_string()),
        "{table}"
    );
    // The draining binding still works both ways: every echo answered.
    let status = long_ping
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("ping ends");
    assert!(status.success(), "{}", long_ping.log());
    assert!(
        long_ping.log().contains(" 0% packet loss"),
        "{}",
        long_ping.log()
    );
    // A new flow takes the added address, and its replies come back.
    assert!(ping().status.success(), "ping through {added}");
    assert!(
        local_of("icmp")
            .iter()
            .any(|l| l.starts_with(&format!("{added}:"))),
        "{:?}",
        sessions(&gateway)
    );
    lab::wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(&log2).is_ok_and(|t| t.contains(added)))
    })
    .unwrap_or_else(|_| panic!("no binding logged to the new file:\n{}", gateway.log()));
    // The old binding expires (4 s ICMP timeout): the route goes.
    lab::wait_until(Duration::from_secs(15), || {
        Ok(!routes().contains(&POOL4.to_string()))
    })
    .unwrap_or_else(|_| panic!("the drained route stays:\n{}\n{}", routes(), gateway.log()));
    assert!(
        gateway.log().contains("pool4 entry drained"),
        "{}",
        gateway.log()
    );
    assert!(routes().contains(added));

    // Another port range for an address in use: refused, naming the key.
    std::fs::write(
        gateway.config_path(),
        with(&format!("\"{added}:2000-3000\""), &log2),
    )
    .unwrap();
    let out = reload(&gateway);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nat64.pool4") && err.contains(added), "{err}");
    assert!(ping().status.success(), "still translating");
}

/// `runtime.log-level` changes while running: a DNS64 query is logged at
/// debug level only after a reload to `debug`.
#[test]
fn reload_changes_the_log_level() {
    if !common::can_run("reloadlog", &["ip"]) {
        return;
    }
    let lab = Lab::create("reloadlog").expect("lab");
    let base = lab.gateway_config();
    let gateway = lab
        .start_gateway_with(&common::exe(), &base)
        .expect("start the gateway");
    // A DNS query for "a." type A, id 0x1234 (RFC 1035 §4.1).
    let query = |id: u16| {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1]);
        lab.in_netns(lab.client(), || {
            UdpSocket::bind((CLIENT_V6, 0))?.send_to(&q, (lab::GATEWAY_V6, 53))
        })
        .expect("send a query");
    };
    query(0x1234);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !gateway.log().contains("query id 4660"),
        "{}",
        gateway.log()
    );
    // The lab may have a [runtime] table already (XLAT64_LAB_WORKERS).
    let debug = match base.contains("[runtime]\n") {
        true => base.replacen("[runtime]\n", "[runtime]\nlog-level = \"debug\"\n", 1),
        false => format!("{base}\n[runtime]\nlog-level = \"debug\"\n"),
    };
    std::fs::write(gateway.config_path(), debug).expect("write config");
    let out = reload(&gateway);
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "applied: runtime.log-level"
    );
    query(0x1235);
    lab::wait_until(Duration::from_secs(5), || {
        Ok(gateway.log().contains("query id 4661"))
    })
    .unwrap_or_else(|_| panic!("no debug line after the reload:\n{}", gateway.log()));
}

/// Where the second upstream of the DNS64 reload test answers (in the
/// server namespace, beside NSD on port 53).
const SECOND_UPSTREAM_PORT: u16 = 5353;
/// The address the second upstream gives every A query.
const SECOND_A: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 77);

/// A second upstream: every A query gets [`SECOND_A`], everything else an
/// empty NOERROR (so AAAA queries are synthesized from it). Counts what it
/// answered; stops when dropped.
struct SecondUpstream {
    answered: Arc<AtomicUsize>,
    _server: common::UdpResponder,
}

impl SecondUpstream {
    fn start(lab: &Lab) -> SecondUpstream {
        let socket = lab
            .in_netns(lab.server(), || {
                UdpSocket::bind((SERVER_V4, SECOND_UPSTREAM_PORT))
            })
            .expect("bind the second upstream");
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        let server = common::UdpResponder::start(socket, move |query| {
            let q = query.queries()[0].clone();
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true)
                .add_query(q.clone());
            if q.query_type() == RecordType::A {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A(SECOND_A)),
                ));
            }
            count.fetch_add(1, Ordering::Relaxed);
            Some(reply)
        })
        .expect("start the second upstream");
        SecondUpstream {
            answered,
            _server: server,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

/// `v4` under the /96 `prefix` (RFC 6052 §2.2).
fn under(prefix: &str, v4: std::net::Ipv4Addr) -> String {
    let base: std::net::Ipv6Addr = prefix.split('/').next().unwrap().parse().unwrap();
    let mut o = base.octets();
    o[12..].copy_from_slice(&v4.octets());
    std::net::Ipv6Addr::from(o).to_string()
}

/// DNS64 settings reload while running: a new upstream and a new `allow`
/// keep the cache (a cached answer is still served from it), a new name
/// goes through the new upstream, and a new prefix empties the cache (the
/// log says how many replies were dropped and why).
#[test]
fn reload_switches_dns64_upstream_and_allow_keeping_the_cache() {
    let Some(world) = common::world("reloaddns", &["dig"]) else {
        return;
    };
    let gateway = &world.gateway;
    let second = SecondUpstream::start(&world.lab);
    let dig = |name: &str| {
        let server = format!("@{}", xlat64_lab::GATEWAY_V6);
        common::lines(&world.client_ok(&[
            "dig", "+time=2", "+tries=2", &server, "+short", "AAAA", name,
        ]))
    };
    let base = world.lab.gateway_config();
    let nat64_prefix = xlat64_lab::NAT64_PREFIX;
    // Answered (through NSD) and cached.
    assert_eq!(
        dig("v4only.xlat64.test"),
        vec![under(nat64_prefix, SERVER_V4)]
    );
    assert!(world.counter("dns64_cache_entries") >= 1);

    // Another upstream and another allow list: applied, the cache kept.
    let second_addr = format!("{SERVER_V4}:{SECOND_UPSTREAM_PORT}");
    let switched = base
        .replace(
            &format!("\"{SERVER_V4}:53\""),
            &format!("\"{second_addr}\""),
        )
        .replace(
            "allow = [\"2001:db8::/32\"]",
            "allow = [\"2001:db8:1::/64\"]",
        );
    assert_ne!(switched, base);
    std::fs::write(gateway.config_path(), &switched).expect("write config");
    let out = reload(gateway);
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "applied: dns64.allow, dns64.upstream"
    );
    assert!(
        gateway.log().contains("DNS64 cache kept"),
        "{}",
        gateway.log()
    );
    let hits = world.counter("dns64_cache_hits");
    assert_eq!(
        dig("v4only.xlat64.test"),
        vec![under(nat64_prefix, SERVER_V4)],
        "the answer cached before the reload"
    );
    assert_eq!(world.counter("dns64_cache_hits"), hits + 1);
    assert_eq!(second.answered(), 0);
    // A new name: through the new upstream (NSD does not know it).
    assert_eq!(
        dig("fresh.xlat64.test"),
        vec![under(nat64_prefix, SECOND_A)]
    );
    assert!(
        second.answered() >= 2,
        "AAAA and A asked of the second upstream"
    );

    // Another prefix: every synthesized reply would change, so the cache
    // is emptied, and the log says how many replies and why.
    let other_prefix = "2001:db8:46::/96";
    let moved = switched.replace(
        &format!("upstream = [\"{second_addr}\"]"),
        &format!("upstream = [\"{second_addr}\"]\nprefix = \"{other_prefix}\""),
    );
    std::fs::write(gateway.config_path(), &moved).expect("write config");
    let cached = world.counter("dns64_cache_entries");
    assert!(cached >= 2, "v4only and fresh cached: {cached}");
    let out = reload(gateway);
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "applied: dns64.prefix"
    );
    let log = gateway.log();
    assert!(
        log.contains(&format!(
            "DNS64 cache emptied: {cached} replies dropped, as dns64.prefix changed"
        )),
        "{log}"
    );
    assert_eq!(world.counter("dns64_cache_entries"), 0);
    assert_eq!(
        dig("v4only.xlat64.test"),
        vec![under(other_prefix, SECOND_A)]
    );

    // listen cannot change while running: refused, naming the key.
    std::fs::write(
        gateway.config_path(),
        moved.replace(":53\"]\nupstream", ":5300\"]\nupstream"),
    )
    .expect("write config");
    let out = reload(gateway);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dns64.listen") && err.contains("port 53"),
        "{err}"
    );
}
