//! A small site's one IPv4 address shared by the gateway and its clients
//! (pool4 `"198.51.100.1:61001-65535"`, the gateway's own uplink address):
//! the clients' TCP, UDP and pings go out from it, while the gateway's own
//! connections and pings, and pings to it, keep working; the policy rules
//! that make it so are gone after the daemon stops.

mod common;

use serde_json::Value;
use std::net::SocketAddrV4;
use xlat64_lab::{self as lab, server_via_nat64, Lab, GATEWAY_V4, POOL4, SERVER_V4};

/// The shared entry: the gateway's uplink address, above the kernel's
/// default local port range (32768-60999).
fn shared_entry() -> String {
    format!("{GATEWAY_V4}:61001-65535")
}

fn ok(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let out = lab
        .run_in(ns, args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} in {ns}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rules(lab: &Lab) -> String {
    ok(lab, lab.gateway(), &["ip", "-4", "rule", "show"])
}

#[test]
fn pool4_on_the_gateways_own_address_shares_it_by_port_range() {
    if !common::can_run("shared", &["curl", "ping", "python3", "ss"]) {
        return;
    }
    let lab = Lab::create("shared").expect("build the lab");
    let _http = common::start_http(&lab).expect("HTTP server");
    let before = rules(&lab);
    let config = lab.gateway_config().replacen(
        &format!("pool4 = [\"{POOL4}\"]"),
        &format!("pool4 = [\"{}\"]", shared_entry()),
        1,
    );
    assert!(config.contains(&shared_entry()), "{config}");
    let mut gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .expect("start the gateway");

    // Our rules come before the local table's (up to 65534: policy rules
    // cannot match port 65535).
    let installed = rules(&lab);
    let ours = installed
        .lines()
        .position(|l| l.contains("ipproto tcp") && l.contains("dport 61001-65534"))
        .unwrap_or_else(|| panic!("no steering rule:\n{installed}"));
    let local = installed
        .lines()
        .position(|l| l.trim_end().ends_with("lookup local") && !l.contains("iif"))
        .unwrap_or_else(|| panic!("no local rule:\n{installed}"));
    assert!(ours < local, "steering after local:\n{installed}");

    // The client's UDP, TCP and ping go out from the shared address.
    let echo = lab
        .spawn_in(
            lab.server(),
            &[
                "python3",
                "-c",
                &format!(
                    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{SERVER_V4}', 9999))\nd, a = s.recvfrom(100)\ns.sendto(d + b' back from ' + str(a).encode(), a)\n"
                ),
            ],
        )
        .expect("UDP echo");
    lab.wait_listening(
        lab.server(),
        "udp",
        9999,
        std::time::Duration::from_secs(10),
    )
    .expect("UDP echo listening");
    let reply = lab
        .in_netns(lab.client(), || {
            let s = std::net::UdpSocket::bind("[::]:0")?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            s.send_to(b"ping", (server_via_nat64(), 9999))?;
            let mut buf = [0u8; 200];
            let n = s.recv(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .unwrap_or_else(|e| panic!("UDP through the shared address: {e}\n{}", gateway.log()));
    assert!(
        reply.starts_with(&format!("ping back from ('{GATEWAY_V4}', 6")),
        "{reply}"
    );
    drop(echo);
    let url = format!("http://[{}]/", server_via_nat64());
    let page = ok(
        &lab,
        lab.client(),
        &["curl", "-sS", "-g", "--max-time", "10", &url],
    );
    assert_eq!(page, common::INDEX_HTML);
    let server6 = server_via_nat64().to_string();
    ok(
        &lab,
        lab.client(),
        &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &server6],
    );
    let bib: Value = serde_json::from_slice(&gateway.cli(&["bib", "--json"]).expect("bib").stdout)
        .expect("JSON");
    let locals: Vec<SocketAddrV4> = bib
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["v4_local"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(locals.len() >= 2, "{bib}");
    for l in &locals {
        assert_eq!(*l.ip(), GATEWAY_V4, "{bib}");
        assert!((61001..=65535).contains(&l.port()), "{bib}");
    }

    // The gateway itself: its own TCP connection and ping still work
    // (replies to its own ports, and ICMP the NAT gives back).
    let page = ok(
        &lab,
        lab.gateway(),
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            &format!("http://{SERVER_V4}/"),
        ],
    );
    assert_eq!(page, common::INDEX_HTML);
    let server4 = SERVER_V4.to_string();
    ok(
        &lab,
        lab.gateway(),
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", &server4],
    );
    // And the server still reaches the gateway's address.
    let gateway4 = GATEWAY_V4.to_string();
    ok(
        &lab,
        lab.server(),
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", &gateway4],
    );
    let stats: Value =
        serde_json::from_slice(&gateway.cli(&["stats", "--json"]).expect("stats").stdout)
            .expect("JSON");
    assert!(stats["icmp_to_host"].as_u64().unwrap() >= 4, "{stats}");

    // Stopped: the rules are as they were.
    let status = gateway.stop().expect("stop");
    assert!(status.success(), "{}", lab::describe_status(status));
    assert_eq!(rules(&lab), before);
}
