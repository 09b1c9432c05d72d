//! `xlat64 trace` on a running gateway: a dropped packet of the client
//! asked for shows with the right reason.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xlat64_lab::{embed_v4, Lab, CLIENT_V6, GATEWAY_V4};

#[test]
fn trace_shows_a_dropped_packet_of_the_client_with_its_reason() {
    if !common::can_run("trace", &["ip"]) {
        return;
    }
    let lab = Lab::create("trace").expect("lab");
    let gateway = lab
        .start_gateway(&common::exe())
        .expect("start the gateway");
    let client = CLIENT_V6.to_string();
    let mut trace = Command::new(common::exe())
        .args([
            "trace",
            "--client",
            &client,
            "--reason",
            "gateway_ipv4_destination",
            "--count",
            "1",
            "--config",
        ])
        .arg(gateway.config_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xlat64 trace");
    // The gateway's own IPv4 address is never translated to: each of these
    // is dropped as drop_gateway_ipv4_destination.
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        lab.in_netns(lab.client(), || {
            UdpSocket::bind((CLIENT_V6, 0))?.send_to(b"x", (embed_v4(GATEWAY_V4), 9999))
        })
        .expect("send");
        if let Some(status) = trace.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = trace.kill();
            panic!("no trace line:\n{}", gateway.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = trace.wait_with_output().expect("output");
    assert!(status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().expect("a line");
    assert!(
        line.contains(&format!("v6->v4 udp [{CLIENT_V6}]:"))
            && line.contains(&format!("-> [{}]:9999", embed_v4(GATEWAY_V4)))
            && line.ends_with("dropped drop_gateway_ipv4_destination"),
        "{line}"
    );
    // The workers stopped tracing: the daemon is as before.
    let stats = gateway.cli(&["stats", "--json"]).expect("stats");
    assert!(stats.status.success());
}
