//! DNS64 end to end: dig in the IPv6-only client asks xlat64 at
//! 2001:db8:1::1, which forwards to NSD in the IPv4-only server namespace.

mod common;

use common::{lines, World};
use xlat64_lab::{server_via_nat64, GATEWAY_V6, SERVER_V4};

const TOOLS: &[&str] = &["dig"];

fn dig(world: &World, extra: &[&str], qtype: &str, name: &str) -> String {
    let server = format!("@{GATEWAY_V6}");
    let mut args = vec!["dig", "+time=2", "+tries=2", server.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[qtype, name]);
    world.client_ok(&args)
}

fn status(full: &str) -> &str {
    full.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
}

#[test]
fn aaaa_for_a_v4_only_name_is_synthesized_over_udp_and_tcp() {
    let Some(world) = common::world("dnsv4", TOOLS) else {
        return;
    };
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&world, &[transport, "+short"], "AAAA", "v4only.xlat64.test");
        assert_eq!(
            lines(&out),
            vec![server_via_nat64().to_string()],
            "{transport}: AAAA v4only.xlat64.test; gateway log:\n{}",
            world.gateway.log()
        );
    }
}

#[test]
fn synthesized_aaaa_ttl_is_at_most_the_a_ttl() {
    let Some(world) = common::world("dnsttl", TOOLS) else {
        return;
    };
    let out = dig(&world, &["+noall", "+answer"], "AAAA", "v4only.xlat64.test");
    // v4only.xlat64.test. 3600 IN AAAA 2001:db8:64::c633:6402
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "one AAAA answer expected:\n{out}");
    let ttl: u32 = fields[1].parse().expect("TTL");
    assert!(
        ttl <= common::RECORD_TTL,
        "RFC 6147 §5.1.7: synthesized TTL {ttl} exceeds the A record's {}",
        common::RECORD_TTL
    );
}

#[test]
fn aaaa_for_a_dual_stack_name_is_only_the_real_one() {
    let Some(world) = common::world("dnsdual", TOOLS) else {
        return;
    };
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&world, &[transport, "+short"], "AAAA", "dual.xlat64.test");
        assert_eq!(
            lines(&out),
            vec!["2001:db8:2::2".to_string()],
            "{transport}: AAAA dual.xlat64.test"
        );
    }
}

#[test]
fn nonexistent_name_is_nxdomain_and_a_queries_pass_through() {
    let Some(world) = common::world("dnsnx", TOOLS) else {
        return;
    };
    let out = dig(&world, &[], "AAAA", "nosuch.xlat64.test");
    assert_eq!(status(&out), "NXDOMAIN", "AAAA nosuch.xlat64.test:\n{out}");
    assert!(
        out.contains("SOA"),
        "NXDOMAIN carries the zone's SOA:\n{out}"
    );

    let out = dig(&world, &["+short"], "A", "v4only.xlat64.test");
    assert_eq!(
        lines(&out),
        vec![SERVER_V4.to_string()],
        "A v4only.xlat64.test"
    );
    let out = dig(&world, &["+short", "+tcp"], "A", "dual.xlat64.test");
    assert_eq!(
        lines(&out),
        vec![SERVER_V4.to_string()],
        "A dual.xlat64.test over TCP"
    );
}

/// `xlat64 flush-cache` empties the running daemon's DNS64 cache.
#[test]
fn flush_cache_empties_the_running_cache() {
    let Some(world) = common::world("dnsflush", TOOLS) else {
        return;
    };
    dig(&world, &["+short"], "AAAA", "v4only.xlat64.test");
    assert!(world.counter("dns64_cache_entries") >= 1);
    let out = world.gateway.cli(&["flush-cache"]).expect("flush-cache");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("flushed "), "{text}");
    assert_eq!(world.counter("dns64_cache_entries"), 0);
    let hits = world.counter("dns64_cache_hits");
    dig(&world, &["+short"], "AAAA", "v4only.xlat64.test");
    assert_eq!(
        world.counter("dns64_cache_hits"),
        hits,
        "not from the cache"
    );
}
