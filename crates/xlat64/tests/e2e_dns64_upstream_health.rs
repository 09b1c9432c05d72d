//! DNS64 upstream health end to end: the first upstream (a relay to NSD)
//! falls silent while queries flow. After the first timeout the second
//! upstream is asked first, so uncached answers stay fast; the log says once
//! that the first went down (not once per query), and once that it came
//! back when the relay answers again, found by a background probe.

mod common;
#[path = "common/dns64_world.rs"]
mod dns64_world;

use dns64_world::*;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xlat64_lab::{Lab, SERVER_V4};

/// Where the relay listens (server namespace).
const RELAY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 5);

/// A UDP relay to NSD that can be silenced (it then reads and drops every
/// query, so the DNS64 sees timeouts, not errors). Stops when dropped.
struct Relay {
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Adds [`RELAY_V4`] to the server namespace and starts the relay there.
    fn start(lab: &Lab) -> Relay {
        let out = lab
            .run_in(
                lab.server(),
                &["ip", "addr", "add", &format!("{RELAY_V4}/24"), "dev", "s0"],
            )
            .expect("ip addr add");
        assert!(out.status.success(), "{out:?}");
        let (front, back) = lab
            .in_netns(lab.server(), || {
                let front = UdpSocket::bind((RELAY_V4, 53))?;
                let back = UdpSocket::bind((RELAY_V4, 0))?;
                back.connect((SERVER_V4, 53))?;
                Ok((front, back))
            })
            .expect("bind the relay");
        front
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (quiet, halt) = (silent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !halt.load(Ordering::Relaxed) {
                let Ok((len, peer)) = front.recv_from(&mut buf) else {
                    continue;
                };
                if quiet.load(Ordering::Relaxed) || back.send(&buf[..len]).is_err() {
                    continue;
                }
                if let Ok(n) = back.recv(&mut buf) {
                    let _ = front.send_to(&buf[..n], peer);
                }
            }
        });
        Relay {
            silent,
            stop,
            thread: Some(thread),
        }
    }

    fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks instance `x` for the synthesized AAAA of `v4only.xlat64.test`
/// (uncached: `cache-size = 0`); returns how long it took.
fn ask_timed(w: &Dns64World, x: usize) -> Duration {
    let started = Instant::now();
    let d = w.ask(x, &["AAAA", "v4only.xlat64.test"]);
    let took = started.elapsed();
    assert_eq!(d.rdata("AAAA"), vec![embed(PREFIX, v4(10))], "{}", d.text);
    took
}

fn lines_with(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn first_upstream_silent_while_queries_flow_latency_stays_low_and_one_line_per_change() {
    let Some(mut w) = Dns64World::new("uph", &[]) else {
        return;
    };
    let relay = Relay::start(&w.lab);
    let x = w.start_xlat64(&format!(
        "upstream = [\"{RELAY_V4}:53\", \"{SERVER_V4}:53\"]\nupstream-timeout-ms = 2000\ncache-size = 0\n"
    ));
    // Both healthy: the first, in the configured order, answers.
    for _ in 0..3 {
        ask_timed(&w, x);
    }
    let s = w.instances[x].stats();
    assert_eq!(s["dns64_upstream_0_up"], 1, "{s}");
    assert_eq!(s["dns64_upstream_1_srtt_ms"], 0, "never asked: {s}");
    let down_line = format!("upstream {RELAY_V4}:53 down");
    let up_line = format!("upstream {RELAY_V4}:53 up again");

    relay.set_silent(true);
    // The first query after that waits for the timeout, then NSD answers.
    let first = ask_timed(&w, x);
    assert!(first >= Duration::from_secs(2), "{first:?}");
    // From then on the second upstream is asked first: every answer comes
    // well within the 2 s timeout, while probes of the relay time out in
    // the background until it is down.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    while started.elapsed() < Duration::from_secs(15) {
        slowest = slowest.max(ask_timed(&w, x));
        asked += 1;
        if lines_with(&w.instances[x].log(), &down_line) > 0 && asked >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = w.instances[x].log();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest of {asked} answers after the first failure: {slowest:?}\n{log}"
    );
    assert_eq!(lines_with(&log, &down_line), 1, "{log}");
    assert_eq!(lines_with(&log, "timed out"), 0, "no line per query: {log}");
    let s = w.instances[x].stats();
    assert_eq!(s["dns64_upstream_0_up"], 0, "{s}");
    assert_eq!(s["dns64_upstream_1_up"], 1, "{s}");
    assert!(
        s["dns64_upstream_0_failures_in_a_row"].as_u64().unwrap() >= 2,
        "{s}"
    );
    assert!(s["dns64_upstream_timeouts"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["dns64_servfail_sent"], 0, "{s}");
    eprintln!("{asked} answers after the first failure, slowest {slowest:?}");

    // The relay answers again: a probe (a copy of a client's query) finds
    // it, one line says so, and no client waited on it meanwhile.
    relay.set_silent(false);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(40)
        && lines_with(&w.instances[x].log(), &up_line) == 0
    {
        let took = ask_timed(&w, x);
        assert!(took < Duration::from_secs(1), "{took:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = w.instances[x].log();
    assert_eq!(lines_with(&log, &up_line), 1, "{log}");
    assert_eq!(lines_with(&log, &down_line), 1, "{log}");
    let s = w.instances[x].stats();
    assert_eq!(s["dns64_upstream_0_up"], 1, "{s}");
    assert_eq!(s["dns64_upstream_0_failures_in_a_row"], 0, "{s}");
}

/// RFC 8767 serve-stale: with `serve-stale` on, an answer whose TTL has
/// run out is still given (TTL 30) when its only upstream falls silent; a
/// name never cached gets SERVFAIL; and without `serve-stale` the same
/// expired answer is not given.
#[test]
fn rfc8767_expired_answer_served_stale_when_the_upstream_is_silent() {
    let Some(mut w) = Dns64World::new("stale", &[]) else {
        return;
    };
    let relay = Relay::start(&w.lab);
    let keys = format!("upstream = [\"{RELAY_V4}:53\"]\nupstream-timeout-ms = 500\n");
    let stale = w.start_xlat64(&format!("{keys}serve-stale = 3600\n"));
    let plain = w.start_xlat64(&keys);
    let expected = vec![embed(PREFIX, v4(14))];
    for x in [stale, plain] {
        let d = w.ask(x, &["AAAA", "short.xlat64.test"]);
        assert_eq!(d.rdata("AAAA"), expected, "{}", d.text);
        assert!(d.ttls("AAAA").iter().all(|&t| t <= SHORT_TTL), "{}", d.text);
    }
    relay.set_silent(true);
    // Past the answer's TTL.
    std::thread::sleep(Duration::from_secs(u64::from(SHORT_TTL) + 1));
    let d = w.ask(stale, &["AAAA", "short.xlat64.test"]);
    assert_eq!(d.status, "NOERROR", "{}", d.text);
    assert_eq!(d.rdata("AAAA"), expected, "{}", d.text);
    assert_eq!(
        d.ttls("AAAA"),
        [30].into(),
        "RFC 8767 §4: TTL 30\n{}",
        d.text
    );
    assert_eq!(w.instances[stale].counter("dns64_cache_stale_served"), 1);
    let d = w.ask(stale, &["AAAA", "v4only.xlat64.test"]);
    assert_eq!(d.status, "SERVFAIL", "never cached: {}", d.text);
    let d = w.ask(plain, &["AAAA", "short.xlat64.test"]);
    assert_eq!(d.status, "SERVFAIL", "serve-stale off: {}", d.text);
    assert_eq!(w.instances[plain].counter("dns64_cache_stale_served"), 0);
}
