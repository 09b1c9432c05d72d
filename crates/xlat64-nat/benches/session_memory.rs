//! Heap memory of the NAT64 session table, through the public API (no
//! criterion: it prints figures).
//!
//! A counting global allocator (wrapping the system allocator) tracks the
//! bytes of live heap allocations, as requested by the program: allocator
//! overhead and RSS are not included. For each scenario, a fresh NAT is
//! filled with 1,000,000 UDP sessions by `handle_v6` (64-byte packets built
//! one at a time in a reused buffer, so the packets take no memory), then:
//!
//! - `memory: N sessions, X bytes live, B bytes/session`: the heap the filled
//!   NAT holds, and per session the growth over the empty NAT (whose own size
//!   is given too). `peak` is the most held during the fill (a hash table
//!   holds its old and its new storage while it grows).
//! - `largest allocations`: every live block of at least 1 MiB, largest
//!   first: each is the storage of one table (a hash table's buckets, an
//!   index map's entry vector, the timer heap), so the sizes tell which
//!   structure the memory goes to.
//! - `memory after expiry`: the clock moved past the UDP timeout and
//!   `handle_timeout` called until `poll_timeout` is in the future (each call
//!   expires a bounded number of sessions): the heap still held then, i.e.
//!   whether the memory is given back.
//!
//! Scenarios: one session per binding (1M client ports, one server each);
//! ten sessions per binding (100k client ports) to ten server addresses;
//! ten sessions per binding to one server address on ten ports. Comparing
//! them separates the per-binding tables (BIB both ways) and the
//! per-(binding, server address) filtering counts from the per-session ones.
//!
//! Run: `cargo bench -p xlat64-nat --bench session_memory`. Under
//! `cargo test` (no `--bench`) it runs with 10,000 sessions as a smoke test.

use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use xlat64_nat::{Nat64, Nat64Config, Pool4, Timeouts, Verdict};
use xlat64_packet::Prefix6052;

/// Counts live heap bytes, their peak, and remembers the big blocks.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Blocks at least this big are listed one by one.
const BIG: usize = 1 << 20;
const SLOTS: usize = 64;
static BIG_PTR: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static BIG_SIZE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

fn added(ptr: *mut u8, size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    if size >= BIG {
        let p = ptr as usize;
        if let Some(i) =
            (0..SLOTS).find(|&i| BIG_PTR[i].compare_exchange(0, p, Relaxed, Relaxed).is_ok())
        {
            BIG_SIZE[i].store(size, Relaxed);
        }
    }
}

fn removed(ptr: *mut u8, size: usize) {
    LIVE.fetch_sub(size, Relaxed);
    if size >= BIG {
        let p = ptr as usize;
        if let Some(i) = (0..SLOTS).find(|&i| BIG_PTR[i].load(Relaxed) == p) {
            BIG_PTR[i].store(0, Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// only reads the pointers and sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            added(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            added(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        removed(ptr, layout.size());
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            removed(ptr, layout.size());
            added(p, new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}

/// The live blocks of at least [`BIG`] bytes, largest first.
fn big_blocks() -> Vec<usize> {
    let mut v: Vec<usize> = (0..SLOTS)
        .filter(|&i| BIG_PTR[i].load(Relaxed) != 0)
        .map(|i| BIG_SIZE[i].load(Relaxed))
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn new_nat(pool: &str) -> Nat64 {
    let prefix = Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap();
    let pool4 = Pool4::new(&[pool.parse().unwrap()]).unwrap();
    Nat64::with_seed(Nat64Config::new(prefix, pool4, Timeouts::default()), 0x6146)
}

/// How the sessions of a scenario are spread.
struct Scenario {
    name: &'static str,
    /// Sessions per binding (client transport address).
    per_binding: usize,
    /// Whether the sessions of one binding go to distinct server addresses
    /// (else one address, distinct ports).
    distinct_servers: bool,
    /// The pool4 prefix: a /24 (256 addresses x 65,535 ports, room for 16M
    /// UDP bindings), or a /16 that spreads the clients thin.
    pool: &'static str,
}

/// Appends the packet of session `k` of binding `b` to `out`. Bindings:
/// client host `b / 8` in 2001:db8:1::/64, port 50000 + `b % 8`.
fn push_packet(s: &Scenario, b: usize, k: usize, out: &mut Vec<u8>) {
    let host = b as u32 / 8 + 1;
    let client = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (host >> 16) as u16, host as u16);
    let (server, server_port) = if s.distinct_servers {
        (1 + (b * s.per_binding + k) % 250, 443)
    } else {
        (1 + b % 250, 443 + k as u16)
    };
    let server = Ipv4Addr::new(203, 0, 113, server as u8).octets();
    let dst = Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x64,
        0,
        0,
        0,
        u16::from_be_bytes([server[0], server[1]]),
        u16::from_be_bytes([server[2], server[3]]),
    );
    PacketBuilder::ipv6(client.octets(), dst.octets(), 64)
        .udp(50_000 + (b % 8) as u16, server_port)
        .write(out, &[0x5a; 16])
        .unwrap();
}

fn run(s: &Scenario, sessions: usize) {
    let bindings = sessions / s.per_binding;
    let mut pkt = Vec::with_capacity(64);
    let mut out = vec![0u8; 2048];
    let base = live();
    let mut nat = new_nat(s.pool);
    let empty = live() - base;
    PEAK.store(live(), Relaxed);
    let now = Instant::now();
    let start = Instant::now();
    for k in 0..s.per_binding {
        for b in 0..bindings {
            pkt.clear();
            push_packet(s, b, k, &mut pkt);
            let v = nat.handle_v6(now, &pkt, &mut out);
            assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
        }
    }
    let fill = start.elapsed();
    assert_eq!(nat.session_count(), sessions);
    assert_eq!(nat.bib_count(), bindings);
    let filled = live() - base;
    let peak = PEAK.load(Relaxed) - base;
    println!("scenario: {}", s.name);
    println!(
        "memory: {sessions} sessions, {filled} bytes live, {:.1} bytes/session \
         ({bindings} bindings, {} sessions per binding; empty NAT {empty} bytes; \
         peak during fill {peak} bytes = {:.1} bytes/session; fill took {:.0} ms)",
        (filled - empty) as f64 / sessions as f64,
        s.per_binding,
        peak as f64 / sessions as f64,
        fill.as_secs_f64() * 1e3,
    );
    let blocks = big_blocks();
    let listed: usize = blocks.iter().sum();
    println!(
        "largest allocations (>= 1 MiB, {:.1} bytes/session together): {}",
        listed as f64 / sessions as f64,
        blocks
            .iter()
            .map(|b| format!(
                "{b} ({:.1} MiB, {:.1} B/session)",
                mib(*b),
                *b as f64 / sessions as f64
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let later = now + Timeouts::default().udp + Duration::from_secs(1);
    let start = Instant::now();
    let mut calls = 0;
    let mut times = Vec::new();
    while nat.poll_timeout().is_some_and(|t| t <= later) {
        let call = Instant::now();
        nat.handle_timeout(later);
        times.push(call.elapsed());
        calls += 1;
    }
    times.sort_unstable();
    let longest = times.last().copied().unwrap_or_default();
    let p99 = times
        .get(times.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let over_1ms = times.iter().filter(|t| t.as_micros() > 1000).count();
    let expiry = start.elapsed();
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.bib_count(), 0);
    let after = live() - base;
    println!(
        "memory after expiry: 0 sessions, {after} bytes live (empty NAT {empty} bytes; \
         {calls} handle_timeout calls, {:.0} ms in all, p99 {:.2} ms, the longest {:.1} ms, \
         {over_1ms} over 1 ms)",
        expiry.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
    );
    // The ports wait out their reuse delay (RFC 6888 REQ-8), then every
    // table is back to its empty size.
    let reusable = later + Duration::from_secs(121);
    while nat.poll_timeout().is_some_and(|t| t <= reusable) {
        nat.handle_timeout(reusable);
    }
    println!(
        "memory after the ports' reuse delay: {} bytes live",
        live() - base
    );
    drop(nat);
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let sessions = if full { 1_000_000 } else { 10_000 };
    let scenarios = [
        Scenario {
            name: "one session per binding",
            per_binding: 1,
            distinct_servers: true,
            pool: "192.0.2.0/24",
        },
        Scenario {
            name: "10 sessions per binding, to 10 server addresses",
            per_binding: 10,
            distinct_servers: true,
            pool: "192.0.2.0/24",
        },
        Scenario {
            name: "10 sessions per binding, to 1 server address (10 ports)",
            per_binding: 10,
            distinct_servers: false,
            pool: "192.0.2.0/24",
        },
        Scenario {
            name: "one session per binding, a /16 pool (65,536 addresses)",
            per_binding: 1,
            distinct_servers: true,
            pool: "10.64.0.0/16",
        },
    ];
    for s in &scenarios {
        run(s, sessions);
    }
}
