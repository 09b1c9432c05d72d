//! The lab itself, without xlat64: topology, kernel forwarding, servers,
//! clean-up. If these fail, the other e2e failures say nothing about xlat64.

mod common;

use std::path::Path;
use std::process::Command;
use xlat64_lab::{Lab, LabOptions, CLIENT_V6, GATEWAY_V4, GATEWAY_V6, SERVER_V4, SERVER_V6};

fn root_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    // Drop the counters and state; keep the names.
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    names.sort();
    names.join(" ")
}

#[test]
fn lab_links_namespaces_and_cleans_up() {
    if !common::can_run(
        "lab_links_namespaces_and_cleans_up",
        &["ping", "dig", "nsd", "curl", "python3", "ss"],
    ) {
        return;
    }
    let links_before = root_links();
    let lab = Lab::create("lab").expect("build the lab");
    let names = [
        lab.client().to_string(),
        lab.gateway().to_string(),
        lab.server().to_string(),
    ];
    assert_eq!(
        root_links(),
        links_before,
        "the root namespace must not change"
    );

    let ping6 = lab
        .run_in(
            lab.client(),
            &["ping", "-6", "-c", "1", "-W", "2", &GATEWAY_V6.to_string()],
        )
        .unwrap();
    assert!(ping6.status.success(), "client -> gateway: {ping6:?}");
    let ping4 = lab
        .run_in(
            lab.server(),
            &["ping", "-4", "-c", "1", "-W", "2", &GATEWAY_V4.to_string()],
        )
        .unwrap();
    assert!(ping4.status.success(), "server -> gateway: {ping4:?}");
    // The client has no IPv4 at all.
    let addrs = lab
        .run_in(
            lab.client(),
            &["ip", "-4", "-o", "addr", "show", "scope", "global"],
        )
        .unwrap();
    assert!(
        addrs.stdout.is_empty(),
        "client has IPv4: {}",
        String::from_utf8_lossy(&addrs.stdout)
    );
    let resolv = std::fs::read_to_string(
        Path::new("/etc/netns")
            .join(lab.client())
            .join("resolv.conf"),
    )
    .unwrap();
    assert_eq!(resolv.trim(), format!("nameserver {GATEWAY_V6}"));

    let nsd = common::start_nsd(&lab).expect("nsd");
    let dig = lab
        .run_in(
            lab.gateway(),
            &[
                "dig",
                "+short",
                "+time=2",
                "+tries=2",
                &format!("@{SERVER_V4}"),
                "A",
                "v4only.xlat64.test",
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).trim(),
        SERVER_V4.to_string(),
        "{dig:?}"
    );
    let http = common::start_http(&lab).expect("http");
    let curl = lab
        .run_in(
            lab.gateway(),
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{SERVER_V4}/"),
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        common::INDEX_HTML,
        "{curl:?}"
    );

    // A thread inside the client namespace sees the client's address.
    let bound = lab
        .in_netns(lab.client(), || {
            std::net::UdpSocket::bind((CLIENT_V6, 0)).map(|s| s.local_addr())
        })
        .unwrap();
    assert!(bound.is_ok(), "{bound:?}");

    drop(http);
    drop(nsd);
    drop(lab);
    for ns in &names {
        assert!(
            !Path::new("/var/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
        assert!(
            !Path::new("/etc/netns").join(ns).exists(),
            "/etc/netns/{ns} left behind"
        );
    }
    assert_eq!(root_links(), links_before);
}

#[test]
fn dual_stack_lab_forwards_ipv6_in_the_kernel() {
    if !common::can_run("dual_stack_lab_forwards_ipv6_in_the_kernel", &["ping"]) {
        return;
    }
    let lab = Lab::create_with(
        "dual",
        LabOptions {
            dual_stack_server: true,
            ..LabOptions::default()
        },
    )
    .expect("build the lab");
    let out = lab
        .run_in(
            lab.client(),
            &["ping", "-6", "-c", "1", "-W", "2", &SERVER_V6.to_string()],
        )
        .unwrap();
    assert!(out.status.success(), "client -> server over IPv6: {out:?}");
}

#[test]
fn lab_is_removed_when_a_test_panics() {
    if !common::can_run("lab_is_removed_when_a_test_panics", &[]) {
        return;
    }
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::create("panic").expect("build the lab");
        names = vec![
            lab.client().to_string(),
            lab.gateway().to_string(),
            lab.server().to_string(),
        ];
        let _sleeper = lab.spawn_in(lab.server(), &["sleep", "30"]).unwrap();
        panic!("on purpose");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 3);
    for ns in &names {
        assert!(
            !Path::new("/var/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
    }
}
