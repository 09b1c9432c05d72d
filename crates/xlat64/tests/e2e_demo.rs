//! `xlat64 demo` as a user runs it: exit 0, every step printed, nothing left.

mod common;

use std::process::Command;
use std::time::Duration;

fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("x64-demo-"))
        .map(String::from)
        .collect()
}

#[test]
fn demo_resolves_fetches_and_cleans_up() {
    if !common::can_run("demo_resolves_fetches_and_cleans_up", &[]) {
        return;
    }
    let out = xlat64_lab::run_with_timeout(
        Command::new(common::exe()).arg("demo"),
        Duration::from_secs(60),
    )
    .expect("xlat64 demo finishes within 60 s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in [
        "[1/5] lab built",
        "[2/5] gateway started",
        "[3/5] client asked AAAA www.demo.test from DNS64 at 2001:db8:1::1 -> 2001:db8:64::c633:6402 (synthesized from A 198.51.100.2)",
        "[4/5] client fetched http://[2001:db8:64::c633:6402]/ -> 200",
        "server saw the request from 192.0.2.1:",
        "[5/5] session table",
        "lab removed",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}\nstderr:\n{stderr}");
    }
    // The namespaces named in step 1 are gone, with their /etc/netns files.
    let mut built: Vec<&str> = stdout
        .split_whitespace()
        .map(|w| w.trim_end_matches([':', ',']))
        .filter(|w| w.starts_with("x64-demo-"))
        .collect();
    built.sort();
    built.dedup();
    assert_eq!(built.len(), 3, "step 1 names three namespaces:\n{stdout}");
    for ns in built {
        assert!(
            !lab_namespaces().iter().any(|n| n == ns),
            "{ns} left behind"
        );
        assert!(
            !std::path::Path::new("/etc/netns").join(ns).exists(),
            "/etc/netns/{ns} left behind"
        );
    }
}
