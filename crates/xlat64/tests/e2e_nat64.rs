//! NAT64 end to end: ICMP, TCP and UDP from the IPv6-only client to the
//! IPv4-only server through xlat64, and what the control socket reports.

mod common;

use common::{lines, World};
use serde_json::Value;
use std::net::UdpSocket;
use std::time::Duration;
use xlat64_lab::{server_via_nat64, CLIENT_V6, POOL4, SERVER_V4};

/// `2001:db8:64::198.51.100.2`, the server as the client reaches it.
fn server6() -> String {
    server_via_nat64().to_string()
}

fn ping(world: &World, count: &str) {
    world.client_ok(&[
        "ping",
        "-6",
        "-c",
        count,
        "-i",
        "0.2",
        "-W",
        "2",
        &server6(),
    ]);
}

fn curl_page(world: &World) -> String {
    world.client_ok(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "http://v4only.xlat64.test/",
    ])
}

fn dig_through_nat64(world: &World, transport: &str) -> Vec<String> {
    let at = format!("@{}", server6());
    lines(&world.client_ok(&[
        "dig",
        "+short",
        "+time=2",
        "+tries=2",
        transport,
        &at,
        "v4only.xlat64.test",
        "A",
    ]))
}

#[test]
fn ping_reaches_the_ipv4_server() {
    let Some(world) = common::world("ping", &["ping"]) else {
        return;
    };
    ping(&world, "3");
}

#[test]
fn curl_by_name_fetches_the_page() {
    let Some(world) = common::world("curl", &["curl"]) else {
        return;
    };
    assert_eq!(curl_page(&world), common::INDEX_HTML);
}

#[test]
fn dns_over_udp_and_tcp_crosses_nat64() {
    let Some(world) = common::world("dnsnat", &["dig"]) else {
        return;
    };
    assert_eq!(
        dig_through_nat64(&world, "+notcp"),
        vec![SERVER_V4.to_string()],
        "UDP"
    );
    assert_eq!(
        dig_through_nat64(&world, "+tcp"),
        vec![SERVER_V4.to_string()],
        "TCP"
    );
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

#[test]
fn sessions_bib_and_stats_show_the_traffic() {
    let Some(world) = common::world("table", &["ping", "curl", "dig"]) else {
        return;
    };
    ping(&world, "1");
    assert_eq!(curl_page(&world), common::INDEX_HTML);
    assert_eq!(
        dig_through_nat64(&world, "+notcp"),
        vec![SERVER_V4.to_string()]
    );

    let sessions = world.json(&["sessions"]);
    let sessions = sessions
        .as_array()
        .unwrap_or_else(|| panic!("sessions --json is not an array: {sessions}"));
    let client_prefix = format!("[{CLIENT_V6}]:");
    let pool_prefix = format!("{POOL4}:");
    for (protocol, server_port) in [("tcp", Some(80)), ("udp", Some(53)), ("icmp", None)] {
        let found: Vec<&Value> = sessions
            .iter()
            .filter(|s| field(s, "protocol") == protocol)
            .collect();
        assert!(!found.is_empty(), "no {protocol} session in {sessions:#?}");
        let s = found[0];
        assert!(
            field(s, "v6_client").starts_with(&client_prefix),
            "{protocol}: v6_client in {s}"
        );
        assert!(
            field(s, "v4_local").starts_with(&pool_prefix),
            "{protocol}: v4_local in {s}"
        );
        let v4_server = field(s, "v4_server");
        let v6_server = field(s, "v6_server");
        match server_port {
            Some(port) => {
                assert_eq!(
                    v4_server,
                    format!("{SERVER_V4}:{port}"),
                    "{protocol}: v4_server in {s}"
                );
                assert_eq!(
                    v6_server,
                    format!("[{}]:{port}", server6()),
                    "{protocol}: v6_server in {s}"
                );
            }
            None => {
                assert!(
                    v4_server.starts_with(&format!("{SERVER_V4}:")),
                    "icmp: v4_server in {s}"
                );
                assert!(
                    v6_server.starts_with(&format!("[{}]:", server6())),
                    "icmp: v6_server in {s}"
                );
            }
        }
        assert!(s.get("state").is_some(), "{protocol}: no state in {s}");
        assert!(
            s.get("expires_in_s").and_then(Value::as_u64).is_some(),
            "{protocol}: expires_in_s in {s}"
        );
    }

    let bib = world.json(&["bib"]);
    let bib = bib
        .as_array()
        .unwrap_or_else(|| panic!("bib --json is not an array: {bib}"));
    for protocol in ["tcp", "udp", "icmp"] {
        let b = bib
            .iter()
            .find(|b| field(b, "protocol") == protocol)
            .unwrap_or_else(|| panic!("no {protocol} binding in {bib:#?}"));
        assert!(field(b, "v6_client").starts_with(&client_prefix), "{b}");
        assert!(field(b, "v4_local").starts_with(&pool_prefix), "{b}");
        assert!(b.get("static").and_then(Value::as_bool).is_some(), "{b}");
        assert!(
            b.get("sessions")
                .and_then(Value::as_u64)
                .is_some_and(|n| n >= 1),
            "{b}"
        );
    }

    let stats = world.json(&["stats"]);
    let stats = stats
        .as_object()
        .unwrap_or_else(|| panic!("stats --json is not an object: {stats}"));
    assert!(
        stats.values().all(Value::is_u64),
        "every counter is an integer: {stats:?}"
    );
    for name in ["translated_v6_to_v4_packets", "translated_v4_to_v6_packets"] {
        let n = stats.get(name).and_then(Value::as_u64).unwrap_or(0);
        assert!(n > 0, "{name} = {n}; stats: {stats:?}");
    }
}

/// Udp6InDatagrams + Udp6NoPorts of the client namespace: every UDP datagram
/// that reached the client, whether or not something listened.
fn client_udp_in(world: &World) -> u64 {
    let out = world.client_ok(&["cat", "/proc/net/snmp6"]);
    out.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(k, _)| *k == "Udp6InDatagrams" || *k == "Udp6NoPorts")
        .map(|(_, v)| v.trim().parse::<u64>().unwrap_or(0))
        .sum()
}

#[test]
fn unsolicited_ipv4_is_dropped_without_binding() {
    let Some(world) = common::world("unsol", &[]) else {
        return;
    };
    let before = world.counter("drop_no_binding");
    let v4_to_v6_before = world.counter("translated_v4_to_v6_packets");
    let client_before = client_udp_in(&world);
    world
        .lab
        .in_netns(world.lab.server(), || {
            let s = UdpSocket::bind((SERVER_V4, 0))?;
            for _ in 0..3 {
                s.send_to(b"unsolicited", (POOL4, 40000))?;
            }
            Ok(())
        })
        .expect("send from the server namespace");
    xlat64_lab::wait_until(Duration::from_secs(5), || {
        Ok(world.counter("drop_no_binding") >= before + 3)
    })
    .unwrap_or_else(|e| {
        panic!(
            "drop_no_binding stayed at {} (was {before}): {e}",
            world.counter("drop_no_binding")
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        world.counter("translated_v4_to_v6_packets"),
        v4_to_v6_before,
        "nothing is translated"
    );
    assert_eq!(
        client_udp_in(&world),
        client_before,
        "nothing reaches the client"
    );
}
