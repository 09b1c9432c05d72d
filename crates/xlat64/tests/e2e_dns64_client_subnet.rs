//! RFC 7871 EDNS Client Subnet through the DNS64, end to end: two clients
//! in different subnets (`dig +subnet=...`) ask for a name whose upstream
//! answer depends on the subnet (the broken authoritative server of
//! `common/dns64_world.rs` answers `ecs*` names by subnet, scope = source
//! prefix). With `client-subnet = "strip"` (the default) the upstream never
//! sees a subnet and both get the same answer; with `"pass"` each gets its
//! own, and an answer tailored to one subnet is never served from the cache
//! to the other (RFC 7871 §7.3.1).

mod common;
#[path = "common/dns64_world.rs"]
mod dns64_world;

use dns64_world::*;
use std::sync::atomic::Ordering;

const SUBNET_A: &str = "+subnet=2001:db8:a::/56";
const SUBNET_B: &str = "+subnet=2001:db8:b::/56";

fn synthesized(d: &Dig) -> Vec<String> {
    d.rdata("AAAA")
}

#[test]
fn rfc7871_client_subnet_stripped_by_default_or_passed_and_never_cached_across_subnets() {
    let Some(mut w) = Dns64World::new("ecs", &[]) else {
        return;
    };
    w.start_broken();
    let upstream = format!("upstream = [\"{BROKEN_V4}:53\"]\n");
    let strip = w.start_xlat64(&upstream);
    let pass = w.start_xlat64(&format!("{upstream}client-subnet = \"pass\"\n"));
    let seen = || w.broken.as_ref().unwrap().ecs_seen.load(Ordering::Relaxed);
    let a_of = |subnet: &str| {
        let addr = subnet
            .trim_start_matches("+subnet=")
            .split('/')
            .next()
            .unwrap();
        embed(PREFIX, ecs_a(addr.parse().unwrap()))
    };

    // Strip: the upstream never sees a subnet; both clients get the
    // everyone answer, the second from the cache.
    for subnet in [SUBNET_A, SUBNET_B] {
        let d = w.ask(strip, &[subnet, "AAAA", "ecs1.broken.test"]);
        assert_eq!(synthesized(&d), vec![embed(PREFIX, BROKEN_A)], "{}", d.text);
    }
    assert_eq!(seen(), 0, "a subnet went upstream");
    let inst = &w.instances[strip];
    assert_eq!(inst.counter("dns64_client_subnet_stripped"), 2);
    assert_eq!(inst.counter("dns64_cache_hits"), 1);

    // Pass: each subnet gets its own answer; B is not served A's.
    for subnet in [SUBNET_A, SUBNET_B, SUBNET_A] {
        let d = w.ask(pass, &[subnet, "AAAA", "ecs2.broken.test"]);
        assert_eq!(synthesized(&d), vec![a_of(subnet)], "{subnet}: {}", d.text);
    }
    assert!(seen() >= 3, "the subnets went upstream: {}", seen());
    let inst = &w.instances[pass];
    assert_eq!(
        inst.counter("dns64_cache_hits"),
        0,
        "answers to subnet queries are never cached"
    );
    assert_eq!(inst.counter("dns64_client_subnet_stripped"), 0);
    assert_eq!(inst.counter("dns64_client_subnet_not_cached"), 3);
    // Without a subnet: cached as usual.
    for _ in 0..2 {
        let d = w.ask(pass, &["AAAA", "ecs3.broken.test"]);
        assert_eq!(synthesized(&d), vec![embed(PREFIX, BROKEN_A)], "{}", d.text);
    }
    assert_eq!(w.instances[pass].counter("dns64_cache_hits"), 1);
}
