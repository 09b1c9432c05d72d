//! Differential test: the same queries to xlat64 and to Unbound's dns64
//! module (Debian's `unbound`, `module-config: "dns64 iterator"`, the same
//! prefix), both resolving the test zones from the same NSD. Rcodes and
//! answer sections (as sorted sets of `name type rdata`, TTLs aside) must be
//! equal, except for the differences listed in [`CASES`] with their reason;
//! a listed difference that disappears fails the test too, so the list
//! stays true.

mod common;
#[path = "common/dns64_world.rs"]
mod dns64_world;

use dns64_world::*;

/// Which xlat64 instance answers: its upstream.
#[derive(Clone, Copy, PartialEq)]
enum Upstream {
    /// NSD (Unbound: stub zones to NSD).
    Nsd,
    /// The broken authoritative server (Unbound: stub zone `broken.test`).
    Broken,
}

struct Case {
    args: &'static [&'static str],
    name: fn() -> String,
    upstream: Upstream,
    /// `None`: rcode and answer section equal. `Some(reason)`: they differ,
    /// for this reason.
    differs: Option<&'static str>,
}

fn n(s: &'static str) -> fn() -> String {
    match s {
        "ptr2" => || ip6_arpa(&embed(PREFIX, v4(2))),
        "ptr99" => || ip6_arpa(&embed(PREFIX, v4(99))),
        "ptr-outside" => || ip6_arpa("2001:db8:2::10"),
        _ => unreachable!(),
    }
}

macro_rules! name {
    ($s:literal) => {
        || $s.to_string()
    };
}

const SAME: Option<&str> = None;

/// RFC 6147 §5.1.4: xlat64 treats AAAA records in `exclude` (default
/// ::ffff:0:0/96) as absent and synthesizes; Unbound 1.17 has no such list
/// (`dns64-ignore-aaaa` goes by name) and returns the ::ffff:198.51.100.12
/// record.
const MAPPED: &str = "::ffff:0:0/96 AAAA excluded by xlat64 (§5.1.4), returned by Unbound";
/// RFC 6147 §5.1.4: excluded AAAA records beside real ones never reach the
/// client from xlat64; Unbound 1.17 returns the whole AAAA answer.
const MIXED_AAAA: &str =
    "::ffff:0:0/96 AAAA removed by xlat64 beside a real one (§5.1.4), kept by Unbound";
/// RFC 6147 §5.3.1 allows both: xlat64 answers with a CNAME to the
/// in-addr.arpa name followed by the upstream's PTR (or its NXDOMAIN, the
/// CNAME kept); Unbound answers the PTR records under the ip6.arpa name
/// itself (no CNAME), and a bare NXDOMAIN.
const PTR_CNAME: &str = "§5.3.1 by CNAME (xlat64) vs PTR under the ip6.arpa name (Unbound)";
/// Not DNS64 at all: xlat64 forwards (here to NSD, which holds no ip6.arpa
/// zone and says REFUSED); Unbound iterates from the root (stubbed to the
/// same NSD in the lab), finds no server and says SERVFAIL.
const FORWARDER: &str = "forwarder relays NSD's REFUSED, iterator gives SERVFAIL";
/// RFC 6147 §5.5 stops synthesis only for CD=1 *with* DO=1; xlat64 follows
/// it and synthesizes for CD=1 DO=0. Unbound skips synthesis whenever CD=1.
const CD_ALONE: &str = "CD=1 without DO: xlat64 synthesizes (§5.5), Unbound does not";

fn cases() -> Vec<Case> {
    use Upstream::*;
    let c = |args: &'static [&'static str], name: fn() -> String, upstream, differs| Case {
        args,
        name,
        upstream,
        differs,
    };
    vec![
        c(&["AAAA"], name!("v4only.xlat64.test"), Nsd, SAME),
        c(&["+tcp", "AAAA"], name!("v4only.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("dual.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("cname1.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("mapped.xlat64.test"), Nsd, Some(MAPPED)),
        c(
            &["AAAA"],
            name!("mixedaaaa.xlat64.test"),
            Nsd,
            Some(MIXED_AAAA),
        ),
        c(&["AAAA"], name!("txtonly.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("nosuch.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("short.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("multi.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("private.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("mixed.xlat64.test"), Nsd, SAME),
        c(&["+tcp", "AAAA"], name!("big.xlat64.test"), Nsd, SAME),
        c(&["AAAA"], name!("www.servfail.test"), Nsd, SAME),
        // Same answers, different ways: xlat64 answers locally (RFC 8880
        // §7.2); Unbound 1.17 resolves the name, here from NSD's copy of
        // the real ipv4only.arpa zone (A 192.0.0.170, 192.0.0.171).
        c(&["AAAA"], name!("ipv4only.arpa"), Nsd, SAME),
        c(&["A"], name!("ipv4only.arpa"), Nsd, SAME),
        c(&["PTR"], n("ptr2"), Nsd, Some(PTR_CNAME)),
        c(&["PTR"], n("ptr99"), Nsd, Some(PTR_CNAME)),
        c(&["PTR"], n("ptr-outside"), Nsd, Some(FORWARDER)),
        c(&["PTR"], name!("10.100.51.198.in-addr.arpa"), Nsd, SAME),
        c(&["A"], name!("v4only.xlat64.test"), Nsd, SAME),
        c(&["TXT"], name!("txtonly.xlat64.test"), Nsd, SAME),
        c(
            &["+dnssec", "+cd", "AAAA"],
            name!("v4only.xlat64.test"),
            Nsd,
            SAME,
        ),
        c(&["+dnssec", "AAAA"], name!("v4only.xlat64.test"), Nsd, SAME),
        c(
            &["+cd", "AAAA"],
            name!("v4only.xlat64.test"),
            Nsd,
            Some(CD_ALONE),
        ),
        // SERVFAIL for AAAA, A fine: both synthesize (RFC 6147 §5.1.2).
        c(&["AAAA"], name!("servfail-1.broken.test"), Broken, SAME),
        c(&["A"], name!("servfail-1.broken.test"), Broken, SAME),
    ]
}

#[test]
fn same_answers_as_unbound_dns64_except_the_listed_differences() {
    let Some(mut w) = Dns64World::new("ubd", &["unbound"]) else {
        return;
    };
    w.start_broken();
    let nsd = w.start_xlat64("");
    let broken = w.start_xlat64(&format!(
        "upstream = [\"{BROKEN_V4}:53\"]\nupstream-timeout-ms = 500\n"
    ));
    w.start_unbound();
    let mut report = String::new();
    let mut wrong = 0;
    for case in cases() {
        let name = (case.name)();
        let mut args: Vec<&str> = case.args.to_vec();
        args.push(&name);
        let inst = match case.upstream {
            Upstream::Nsd => nsd,
            Upstream::Broken => broken,
        };
        let ours = w.ask(inst, &args);
        let theirs = w.dig(UNBOUND_V6, CLIENT_SYNTH, &args);
        let same = ours.status == theirs.status && ours.answer_set() == theirs.answer_set();
        let ok = same == case.differs.is_none();
        if !ok {
            wrong += 1;
        }
        let show = |d: &Dig| {
            let set = d.answer_set();
            if set.len() > 4 {
                format!("{} records", set.len())
            } else {
                format!("{set:?}")
            }
        };
        report.push_str(&format!(
            "{} {args:?}: xlat64 {} {} | unbound {} {}{}\n",
            if ok { "ok  " } else { "FAIL" },
            ours.status,
            show(&ours),
            theirs.status,
            show(&theirs),
            case.differs
                .map(|r| format!(" (expected difference: {r})"))
                .unwrap_or_default()
        ));
    }
    eprintln!("{report}");
    assert_eq!(wrong, 0, "xlat64 vs unbound:\n{report}");

    // TTLs (not compared above): RFC 6147 §5.1.7 makes the synthesized TTL
    // min(A TTL, TTL of the SOA of the negative AAAA answer); Unbound uses
    // the A record's TTL. A fresh name on both, so no cache counts down.
    let ours = w.ask(nsd, &["AAAA", "outside.xlat64.test"]);
    let theirs = w.dig(UNBOUND_V6, CLIENT_SYNTH, &["AAAA", "outside.xlat64.test"]);
    assert_eq!(ours.ttls("AAAA"), [NEG_TTL].into(), "{}", ours.text);
    let t = *theirs.ttls("AAAA").iter().next().expect("an AAAA");
    assert!(
        t <= ZONE_TTL && t > NEG_TTL,
        "Unbound's synthesized TTL {t} is no longer the A TTL {ZONE_TTL}: \
         update this note\n{}",
        theirs.text
    );
}
