//! RFC 6147 end to end: `dig` in the client namespace asks DNS64-only xlat64
//! instances in the gateway namespace, which forward to NSD (the test zones
//! of `common/dns64_world.rs`) or to a broken authoritative server in the
//! server namespace. Every check is on exact answers: rcodes, flags,
//! address sets, TTLs and counters.

mod common;
#[path = "common/dns64_world.rs"]
mod dns64_world;

use dns64_world::*;
use std::net::Ipv4Addr;
use xlat64_lab::SERVER_V4;

/// `name. ttl IN AAAA addr` under [`PREFIX`] for 198.51.100.`last`.
fn synth(last: u8) -> String {
    embed(PREFIX, v4(last))
}

fn assert_no_ad(d: &Dig, what: &str) {
    assert!(
        !d.has_flag("ad"),
        "{what}: AD set on a DNS64 answer:\n{}",
        d.text
    );
}

#[test]
fn rfc6147_5_1_synthesis_rules_over_udp_and_tcp() {
    let Some(mut w) = Dns64World::new("r61", &[]) else {
        return;
    };
    let x = w.start_xlat64("cache-size = 0\n");
    for transport in ["+notcp", "+tcp"] {
        // §5.1.6: A-only name, synthesized from the A record.
        let d = w.ask(x, &[transport, "AAAA", "v4only.xlat64.test"]);
        assert_eq!(d.status, "NOERROR", "{transport}: {}", d.text);
        assert_eq!(d.rdata("AAAA"), vec![synth(10)], "{transport}:\n{}", d.text);
        assert_eq!(d.answer.len(), 1, "{transport}:\n{}", d.text);
        assert_eq!(d.answer[0].name, "v4only.xlat64.test.");
        assert_no_ad(&d, transport);

        // §5.1.1: real AAAA wins, never mixed with synthesized ones.
        let d = w.ask(x, &[transport, "AAAA", "dual.xlat64.test"]);
        assert_eq!(d.status, "NOERROR");
        assert_eq!(
            d.rdata("AAAA"),
            vec!["2001:db8:2::10".to_string()],
            "{}",
            d.text
        );
        assert_eq!(d.answer.len(), 1, "{}", d.text);

        // §5.1.3: a two-hop CNAME chain into an A-only name is kept, the
        // AAAA synthesized for the chain's target.
        let d = w.ask(x, &[transport, "AAAA", "cname1.xlat64.test"]);
        assert_eq!(d.status, "NOERROR");
        let keys: Vec<String> = d.answer.iter().map(Rr::key).collect();
        assert_eq!(
            keys,
            vec![
                "cname1.xlat64.test. CNAME cname2.xlat64.test.".to_string(),
                "cname2.xlat64.test. CNAME v4only.xlat64.test.".to_string(),
                format!("v4only.xlat64.test. AAAA {}", synth(10)),
            ],
            "{transport}:\n{}",
            d.text
        );

        // §5.1.4: AAAA records in ::ffff:0:0/96 count as absent.
        let d = w.ask(x, &[transport, "AAAA", "mapped.xlat64.test"]);
        assert_eq!(d.status, "NOERROR");
        assert_eq!(d.rdata("AAAA"), vec![synth(12)], "{transport}:\n{}", d.text);

        // §5.1.4: beside a real AAAA, an excluded one never reaches the
        // client; the real one comes alone, no synthesis.
        let d = w.ask(x, &[transport, "AAAA", "mixedaaaa.xlat64.test"]);
        assert_eq!(d.status, "NOERROR");
        assert_eq!(
            d.rdata("AAAA"),
            vec!["2001:db8:2::16".to_string()],
            "{transport}:\n{}",
            d.text
        );

        // NODATA for AAAA and for A: the negative answer passes, SOA included.
        let d = w.ask(x, &[transport, "AAAA", "txtonly.xlat64.test"]);
        assert_eq!(d.status, "NOERROR");
        assert!(d.answer.is_empty(), "{}", d.text);
        assert_eq!(d.authority.len(), 1, "{}", d.text);
        assert_eq!(d.authority[0].rtype, "SOA");
        assert_eq!(d.authority[0].name, "xlat64.test.");

        // §5.1.2: NXDOMAIN passes through, no synthesis.
        let d = w.ask(x, &[transport, "AAAA", "nosuch.xlat64.test"]);
        assert_eq!(d.status, "NXDOMAIN", "{}", d.text);
        assert!(d.answer.is_empty(), "{}", d.text);
        assert_eq!(d.authority.len(), 1, "{}", d.text);
        assert_eq!(d.authority[0].rtype, "SOA");

        // Other types pass through unchanged.
        let d = w.ask(x, &[transport, "A", "v4only.xlat64.test"]);
        assert_eq!(d.rdata("A"), vec!["198.51.100.10".to_string()]);
        assert!(d.has_flag("aa"), "NSD's AA flag relayed:\n{}", d.text);
        let d = w.ask(x, &[transport, "TXT", "txtonly.xlat64.test"]);
        assert_eq!(d.rdata("TXT"), vec!["\"no address here\"".to_string()]);
    }
    let inst = &w.instances[x];
    let stats = inst.stats();
    let n = |k: &str| stats[k].as_u64().unwrap_or_else(|| panic!("{k}: {stats}"));
    // Per transport: 8 AAAA/A/TXT queries... 9 in all.
    assert_eq!(n("dns64_queries"), 18, "{stats}");
    assert_eq!(n("dns64_queries_udp"), 9, "{stats}");
    assert_eq!(n("dns64_queries_tcp"), 9, "{stats}");
    assert_eq!(
        n("dns64_synthesized"),
        6,
        "v4only, cname1, mapped twice: {stats}"
    );
    assert_eq!(
        n("dns64_real_aaaa"),
        4,
        "dual and mixedaaaa, twice: {stats}"
    );
    assert_eq!(
        n("dns64_excluded_aaaa_removed"),
        2,
        "mixedaaaa twice: {stats}"
    );
    assert_eq!(n("dns64_nxdomain"), 2, "{stats}");
    assert_eq!(n("dns64_cache_hits"), 0, "cache-size = 0: {stats}");
    assert_eq!(n("dns64_servfail_sent"), 0, "{stats}");
}

#[test]
fn rfc6147_5_1_7_ttl_is_min_of_a_ttl_and_negative_soa_ttl_and_cache_counts_down() {
    let Some(mut w) = Dns64World::new("r62", &[]) else {
        return;
    };
    let x = w.start_xlat64("");
    let ttl = |name: &str| {
        let d = w.ask(x, &["AAAA", name]);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        d
    };
    // A TTL 300, SOA of the NODATA answer 30 (its MINIMUM): 30.
    let d = ttl("v4only.xlat64.test");
    assert_eq!(d.ttls("AAAA"), [NEG_TTL].into(), "{}", d.text);
    // A TTL 5 < 30: 5.
    let d = ttl("short.xlat64.test");
    assert_eq!(d.ttls("AAAA"), [SHORT_TTL].into(), "{}", d.text);
    assert_eq!(d.rdata("AAAA"), vec![synth(14)]);
    // The AAAA answer held only an excluded record, no SOA: min(A TTL, 600).
    let d = ttl("mapped.xlat64.test");
    assert_eq!(d.ttls("AAAA"), [ZONE_TTL].into(), "{}", d.text);
    // The chain's CNAMEs keep their own TTLs.
    let d = ttl("cname1.xlat64.test");
    assert_eq!(d.ttls("CNAME"), [ZONE_TTL].into(), "{}", d.text);
    assert_eq!(d.ttls("AAAA"), [NEG_TTL].into(), "{}", d.text);

    let inst = &w.instances[x];
    let before = inst.stats();
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    assert_eq!(n(&before, "dns64_synthesized"), 4, "{before}");
    assert_eq!(n(&before, "dns64_cache_hits"), 0, "{before}");
    assert_eq!(n(&before, "dns64_cache_inserts"), 4, "{before}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // From the cache: same answer, TTL counted down, no upstream query.
    let d = ttl("v4only.xlat64.test");
    assert_eq!(d.rdata("AAAA"), vec![synth(10)]);
    let t = *d.ttls("AAAA").iter().next().unwrap();
    assert!(
        (NEG_TTL - 3..NEG_TTL).contains(&t),
        "cached TTL {t}:\n{}",
        d.text
    );
    let after = inst.stats();
    assert_eq!(n(&after, "dns64_cache_hits"), 1, "{after}");
    assert_eq!(n(&after, "dns64_synthesized"), 4, "{after}");
    assert_eq!(
        n(&after, "dns64_upstream_queries"),
        n(&before, "dns64_upstream_queries"),
        "a cache hit asks no upstream: {after}"
    );
}

#[test]
fn answers_over_1232_bytes_truncate_over_udp_and_come_whole_over_tcp() {
    let Some(mut w) = Dns64World::new("r63", &[]) else {
        return;
    };
    let x = w.start_xlat64("");
    let all_aaaa: Vec<String> = {
        let mut v: Vec<String> = (0..BIG_COUNT).map(|i| synth(100 + i)).collect();
        v.sort();
        v
    };
    let all_a: Vec<String> = {
        let mut v: Vec<String> = (0..BIG_COUNT).map(|i| v4(100 + i).to_string()).collect();
        v.sort();
        v
    };
    // Over UDP, whatever the EDNS size asked for (the limit is 1232), TC=1.
    for bufsize in ["+bufsize=1232", "+bufsize=4096", "+noedns"] {
        let d = w.ask(
            x,
            &["+notcp", "+ignore", bufsize, "AAAA", "big.xlat64.test"],
        );
        assert!(d.has_flag("tc"), "{bufsize}: no TC:\n{}", d.text);
        assert!(
            d.answer.len() < usize::from(BIG_COUNT),
            "{bufsize}:\n{}",
            d.text
        );
    }
    let d = w.ask(x, &["+tcp", "AAAA", "big.xlat64.test"]);
    assert!(!d.has_flag("tc"), "{}", d.text);
    assert_eq!(d.rdata("AAAA"), all_aaaa, "TCP: every synthesized record");
    assert_eq!(d.ttls("AAAA"), [NEG_TTL].into());
    // dig's default: retry over TCP after TC.
    let d = w.ask(x, &["AAAA", "big.xlat64.test"]);
    assert_eq!(d.rdata("AAAA"), all_aaaa);

    let d = w.ask(x, &["+notcp", "+ignore", "A", "big.xlat64.test"]);
    assert!(d.has_flag("tc"), "{}", d.text);
    let d = w.ask(x, &["+tcp", "A", "big.xlat64.test"]);
    assert_eq!(d.rdata("A"), all_a);

    let inst = &w.instances[x];
    assert_eq!(inst.counter("dns64_truncated_udp"), 5);
    // NSD's A answer (80 * 16 bytes) does not fit 1232 bytes either: the
    // upstream exchange went on over TCP.
    assert!(inst.counter("dns64_upstream_tcp_retries") >= 1);
}

#[test]
fn rfc6147_5_3_1_ptr_under_the_prefix_is_a_cname_to_in_addr_arpa() {
    let Some(mut w) = Dns64World::new("r64", &[]) else {
        return;
    };
    let x = w.start_xlat64("");
    let name = ip6_arpa(&synth(2));
    for transport in ["+notcp", "+tcp"] {
        let d = w.ask(x, &[transport, "PTR", &name]);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        let got: Vec<(String, u32)> = d.answer.iter().map(|r| (r.key(), r.ttl)).collect();
        assert_eq!(
            got,
            vec![
                (format!("{name} CNAME 2.100.51.198.in-addr.arpa."), 600),
                (
                    "2.100.51.198.in-addr.arpa. PTR ns.xlat64.test.".to_string(),
                    ZONE_TTL
                ),
            ],
            "{transport}:\n{}",
            d.text
        );
        assert_no_ad(&d, "PTR");
    }
    // No PTR for the IPv4 address: the CNAME with the upstream's NXDOMAIN
    // (RFC 6604: the rcode is that of the last name of the chain).
    let name99 = ip6_arpa(&synth(99));
    let d = w.ask(x, &["PTR", &name99]);
    assert_eq!(d.status, "NXDOMAIN", "{}", d.text);
    assert_eq!(
        d.answer_set(),
        [format!("{name99} CNAME 99.100.51.198.in-addr.arpa.")].into(),
        "{}",
        d.text
    );
    // in-addr.arpa PTR passes through.
    let d = w.ask(x, &["PTR", "10.100.51.198.in-addr.arpa"]);
    assert_eq!(d.rdata("PTR"), vec!["v4only.xlat64.test.".to_string()]);
    // An ip6.arpa name outside the prefix is forwarded as it is; NSD holds
    // no ip6.arpa zone and refuses it.
    let d = w.ask(x, &["PTR", &ip6_arpa("2001:db8:2::10")]);
    assert_eq!(d.status, "REFUSED", "{}", d.text);
    assert!(d.answer.is_empty());
    // The +tcp repeat came from the cache.
    assert_eq!(w.instances[x].counter("dns64_reverse_mapped"), 2);
}

#[test]
fn rfc8880_ipv4only_arpa_is_answered_locally_under_every_prefix() {
    let Some(mut w) = Dns64World::new("r65", &[]) else {
        return;
    };
    let one = w.start_xlat64("");
    let two = w.start_xlat64(&format!(
        "[[dns64.prefixes]]\nprefix = \"{PREFIX2}\"\nipv4 = [\"203.0.113.0/24\"]\n"
    ));
    let wka = |p: &str| {
        let mut v = vec![
            embed(p, Ipv4Addr::new(192, 0, 0, 170)),
            embed(p, Ipv4Addr::new(192, 0, 0, 171)),
        ];
        v.sort();
        v
    };
    for transport in ["+notcp", "+tcp"] {
        let d = w.ask(one, &[transport, "AAAA", "ipv4only.arpa"]);
        assert_eq!(d.status, "NOERROR");
        assert_eq!(d.rdata("AAAA"), wka(PREFIX), "{}", d.text);
        let d = w.ask(one, &[transport, "A", "ipv4only.arpa"]);
        assert_eq!(
            d.rdata("A"),
            vec!["192.0.0.170".to_string(), "192.0.0.171".to_string()]
        );
        let d = w.ask(two, &[transport, "AAAA", "IPv4only.ARPA"]);
        let mut both = wka(PREFIX);
        both.extend(wka(PREFIX2));
        both.sort();
        assert_eq!(d.rdata("AAAA"), both, "{}", d.text);
    }
    for i in [one, two] {
        let s = w.instances[i].stats();
        assert_eq!(s["dns64_upstream_queries"], 0, "no upstream involved: {s}");
    }
    assert_eq!(w.instances[one].counter("dns64_local_answers"), 4);
}

#[test]
fn allow_refuses_strangers_and_synthesize_for_leaves_dual_stack_clients_alone() {
    let Some(mut w) = Dns64World::new("r66", &[]) else {
        return;
    };
    let x = w.start_xlat64(&format!(
        "allow = [\"{CLIENT_SYNTH}\", \"{CLIENT_PLAIN}\"]\nsynthesize-for = [\"{CLIENT_SYNTH}\"]\ncache-size = 0\n"
    ));
    let at = w.instances[x].listen;
    for transport in ["+notcp", "+tcp"] {
        for qtype in ["AAAA", "A"] {
            let d = w.dig(
                at,
                CLIENT_STRANGER,
                &[transport, qtype, "v4only.xlat64.test"],
            );
            assert_eq!(d.status, "REFUSED", "{transport} {qtype}:\n{}", d.text);
            assert!(d.answer.is_empty());
        }
        // Allowed, not in synthesize-for: a plain forwarder's answers.
        let d = w.dig(at, CLIENT_PLAIN, &[transport, "AAAA", "v4only.xlat64.test"]);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        assert!(
            d.answer.is_empty(),
            "no synthesis for {CLIENT_PLAIN}:\n{}",
            d.text
        );
        assert_eq!(d.authority.len(), 1);
        let d = w.dig(at, CLIENT_PLAIN, &[transport, "AAAA", "dual.xlat64.test"]);
        assert_eq!(d.rdata("AAAA"), vec!["2001:db8:2::10".to_string()]);
        // ... ipv4only.arpa included: asked upstream (NSD serves the zone:
        // A records only, so NODATA).
        let d = w.dig(at, CLIENT_PLAIN, &[transport, "AAAA", "ipv4only.arpa"]);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        assert!(d.answer.is_empty(), "{}", d.text);
        // The synthesizing client.
        let d = w.dig(at, CLIENT_SYNTH, &[transport, "AAAA", "v4only.xlat64.test"]);
        assert_eq!(d.rdata("AAAA"), vec![synth(10)], "{}", d.text);
    }
    let inst = &w.instances[x];
    let s = inst.stats();
    assert_eq!(s["dns64_refused"], 4, "{s}");
    assert_eq!(
        s["dns64_client_not_in_synthesize_for"], 6,
        "3 AAAA queries per transport: {s}"
    );
}

#[test]
fn mapped_exclude_mapped_and_a_second_prefix_for_an_ipv4_range() {
    let Some(mut w) = Dns64World::new("r67", &[]) else {
        return;
    };
    let x = w.start_xlat64(&format!(
        "mapped = [\"198.51.100.0/24\", \"203.0.113.0/24\", \"10.0.0.0/8\"]\n\
         exclude-mapped = [\"10.1.2.3/32\"]\n\
         [[dns64.prefixes]]\nprefix = \"{PREFIX2}\"\nipv4 = [\"203.0.113.0/24\"]\n"
    ));
    let second = embed(PREFIX2, Ipv4Addr::new(203, 0, 113, 5));
    // One A record per range: each under its own prefix.
    let d = w.ask(x, &["AAAA", "multi.xlat64.test"]);
    let mut want = vec![synth(11), second.clone()];
    want.sort();
    assert_eq!(d.rdata("AAAA"), want, "{}", d.text);
    // 10.1.2.4 is mapped, 198.51.100.15 too.
    let d = w.ask(x, &["AAAA", "mixed.xlat64.test"]);
    let mut want = vec![synth(15), embed(PREFIX, Ipv4Addr::new(10, 1, 2, 4))];
    want.sort();
    assert_eq!(d.rdata("AAAA"), want, "{}", d.text);
    // 10.1.2.3 is excluded, 192.0.2.99 not mapped: nothing to synthesize,
    // the NODATA answer goes to the client.
    for name in ["private.xlat64.test", "outside.xlat64.test"] {
        let d = w.ask(x, &["AAAA", name]);
        assert_eq!(d.status, "NOERROR", "{name}:\n{}", d.text);
        assert!(d.answer.is_empty(), "{name}:\n{}", d.text);
        assert_eq!(d.authority.len(), 1, "{name}: the SOA:\n{}", d.text);
    }
    // Reverse mapping under the second prefix.
    let name = ip6_arpa(&second);
    let d = w.ask(x, &["PTR", &name]);
    assert_eq!(
        d.answer_set(),
        [
            format!("{name} CNAME 5.113.0.203.in-addr.arpa."),
            "5.113.0.203.in-addr.arpa. PTR multi.xlat64.test.".to_string(),
        ]
        .into(),
        "{}",
        d.text
    );
    // 203.0.113.5 under the first prefix is not an address this DNS64
    // would give out: not mapped back, passed to NSD, which refuses it.
    let d = w.ask(
        x,
        &[
            "PTR",
            &ip6_arpa(&embed(PREFIX, Ipv4Addr::new(203, 0, 113, 5))),
        ],
    );
    assert_eq!(d.status, "REFUSED", "{}", d.text);
    let s = w.instances[x].stats();
    assert_eq!(s["dns64_synthesized"], 2, "{s}");
    assert_eq!(s["dns64_nothing_to_synthesize"], 2, "{s}");
}

#[test]
fn rfc6147_5_1_2_servfail_policy_upstream_failover_and_ad_bit() {
    let Some(mut w) = Dns64World::new("r68", &[]) else {
        return;
    };
    w.start_broken();
    let broken = format!("upstream = [\"{BROKEN_V4}:53\"]\nupstream-timeout-ms = 300\n");
    let synth_on_error = w.start_xlat64(&broken);
    let pass = w.start_xlat64(&format!("{broken}servfail = \"pass\"\n"));
    let nsd_pass = w.start_xlat64("servfail = \"pass\"\n");
    let nsd_synth = w.start_xlat64("");
    let failover = w.start_xlat64(&format!(
        "upstream = [\"{DEAD_V4}:53\", \"{}:53\"]\nupstream-timeout-ms = 300\ncache-size = 0\n",
        SERVER_V4
    ));
    let broken_synth = embed(PREFIX, BROKEN_A);

    // The AAAA query fails (SERVFAIL, or no answer at all), the A query works.
    for name in ["servfail-1.broken.test", "drop-1.broken.test"] {
        let d = w.ask(synth_on_error, &["AAAA", name]);
        assert_eq!(d.status, "NOERROR", "{name}:\n{}", d.text);
        assert_eq!(
            d.rdata("AAAA"),
            vec![broken_synth.clone()],
            "{name}:\n{}",
            d.text
        );
        // No SOA: min(A TTL 60, 600).
        assert_eq!(d.ttls("AAAA"), [60].into());
        // The upstream set AD; synthesized data is never authenticated.
        assert_no_ad(&d, name);
        let d = w.ask(pass, &["AAAA", name]);
        assert_eq!(
            d.status, "SERVFAIL",
            "{name} with servfail = pass:\n{}",
            d.text
        );
        assert!(d.answer.is_empty());
    }
    // A passes through with the upstream's AD bit.
    let d = w.ask(synth_on_error, &["A", "servfail-1.broken.test"]);
    assert_eq!(d.rdata("A"), vec![BROKEN_A.to_string()]);
    assert!(d.has_flag("ad"), "AD of a relayed answer kept:\n{}", d.text);
    let s = w.instances[synth_on_error].stats();
    assert_eq!(s["dns64_synthesized_on_error"], 2, "{s}");
    assert_eq!(s["dns64_upstream_timeouts"], 1, "{s}");
    let s = w.instances[pass].stats();
    assert_eq!(s["dns64_error_passed"], 2, "{s}");

    // A zone NSD cannot serve: A fails too, so SERVFAIL under both policies.
    for i in [nsd_pass, nsd_synth] {
        for transport in ["+notcp", "+tcp"] {
            let d = w.ask(i, &[transport, "AAAA", "www.servfail.test"]);
            assert_eq!(d.status, "SERVFAIL", "{transport}:\n{}", d.text);
            assert!(d.answer.is_empty());
        }
    }

    // The first upstream does not exist: each question times out there
    // once, then NSD answers.
    let d = w.ask(failover, &["AAAA", "v4only.xlat64.test"]);
    assert_eq!(d.rdata("AAAA"), vec![synth(10)], "{}", d.text);
    let s = w.instances[failover].stats();
    assert_eq!(s["dns64_upstream_timeouts"], 2, "AAAA and A: {s}");
    assert_eq!(s["dns64_upstream_failures"], 0, "{s}");
}

#[test]
fn rfc6147_5_5_dnssec_do_and_cd_bits() {
    let Some(mut w) = Dns64World::new("r69", &[]) else {
        return;
    };
    let x = w.start_xlat64("cache-size = 0\n");
    for transport in ["+notcp", "+tcp"] {
        // DO=1 CD=1: NSD's answer unchanged (NODATA, its flags, the SOA):
        // the same as NSD's own answer to the same query.
        let args = [transport, "+dnssec", "+cd", "AAAA", "v4only.xlat64.test"];
        let d = w.ask(x, &args);
        let direct = w.dig_in(w.lab.gateway(), &SERVER_V4.to_string(), &args);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        assert!(d.answer.is_empty(), "no synthesis with DO+CD:\n{}", d.text);
        assert_eq!(d.authority.len(), 1);
        assert_eq!(
            (&d.status, &d.flags, &d.edns_flags, &d.answer, &d.authority),
            (
                &direct.status,
                &direct.flags,
                &direct.edns_flags,
                &direct.answer,
                &direct.authority
            ),
            "DO+CD: xlat64 vs NSD itself:\n{}\n{}",
            d.text,
            direct.text
        );
        assert_eq!(
            d.edns_flags,
            Some(["do".to_string()].into()),
            "DO echoed:\n{}",
            d.text
        );
        let d = w.ask(
            x,
            &[transport, "+dnssec", "+cd", "AAAA", "dual.xlat64.test"],
        );
        assert_eq!(d.rdata("AAAA"), vec!["2001:db8:2::10".to_string()]);
        // DO alone, CD alone, AD asked for: synthesis, AD clear.
        for flags in [
            &["+dnssec"][..],
            &["+cd"],
            &["+adflag"],
            &["+dnssec", "+adflag"],
        ] {
            let mut args = vec![transport];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["AAAA", "v4only.xlat64.test"]);
            let d = w.ask(x, &args);
            assert_eq!(d.rdata("AAAA"), vec![synth(10)], "{flags:?}:\n{}", d.text);
            assert_no_ad(&d, &format!("{flags:?}"));
            if flags.contains(&"+dnssec") {
                assert_eq!(d.edns_flags, Some(["do".to_string()].into()), "{}", d.text);
            }
        }
    }
    let s = w.instances[x].stats();
    assert_eq!(s["dns64_dnssec_cd"], 4, "{s}");
}
