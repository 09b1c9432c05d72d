//! Speed of the NAT64 session table, through the public API: every figure
//! is a whole `Nat64::handle_v6` / `handle_v4` call (parse, address checks,
//! table work, RFC 7915 translation into an output buffer) on 64-byte UDP
//! packets (44 bytes on the IPv4 side) built up front.
//!
//! - `create/udp_new_flow/<N>_per_nat`: every packet is a new flow (a new
//!   client port, so a new binding and a new session). A fresh NAT is filled
//!   with N flows per batch (not timed: building and dropping the NAT), so
//!   each figure is the mean cost of one creation while a table grows from
//!   empty to N sessions, resizes included. Throughput is creations per
//!   second (`elem/s`). With 10k flows the tables (about 5 MB) fit in the
//!   last-level cache: mostly the CPU cost of a creation, page faults of
//!   freshly grown tables included; with 100k and 1M most table accesses
//!   miss the caches, as on a busy gateway.
//! - `allocate/udp_new_binding/<P>pct_full`: a new binding in a one-address
//!   pool already P% full (client ports taken, so each allocation
//!   searches): the cost of port allocation as the pool fills.
//! - `lookup/v6_existing/<N>_sessions`: packets of flows that already have a
//!   session, in a precomputed random order, against a table of N sessions.
//!   Both table sizes read the same length of packet stream (1M packets, read
//!   sequentially, as from a ring), so the difference between the 1M and the
//!   1k figure is what the big table costs: the cache and TLB misses of the
//!   session (and binding) lookups. The 1k figure is the rest of the packet
//!   path with the tables in cache.
//! - `lookup/v4_reply/<N>_sessions`: the same for the replies (IPv4 server
//!   to pool4 address), which look up the IPv4 binding, then the session.
//!
//! After the criterion run, a `lookup summary` line repeats the lookup
//! figures from a plain timed loop (best of a few passes over the stream)
//! and prints the difference: the estimated cost of the table lookups in
//! the 1M table, as opposed to the full per-packet time.
//!
//! Run: `cargo bench -p xlat64-nat --bench sessions`. Under `cargo test`
//! (no `--bench`) the sizes are cut down so the run is a quick smoke test.
//! Memory per session is measured by the `session_memory` bench.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use etherparse::PacketBuilder;
use std::cell::RefCell;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use xlat64_nat::{Nat64, Nat64Config, Pool4, Timeouts, Verdict};
use xlat64_packet::Prefix6052;

/// Length of every IPv6 packet: 40 + 8 + 16 bytes of payload.
const V6_LEN: usize = 64;
/// Length of every IPv4 packet: 20 + 8 + 16.
const V4_LEN: usize = 44;
const PAYLOAD: [u8; 16] = [0x5a; 16];
const SERVER_PORT: u16 = 443;

/// How big the run is: real sizes under `cargo bench`, small ones under
/// `cargo test --benches` (debug build, one pass per benchmark).
struct Sizes {
    /// Flows per fresh NAT in the creation benchmarks, with the time to
    /// measure each.
    batches: [(usize, u64); 3],
    /// The big and the small table of the lookup benchmarks.
    tables: [usize; 2],
    /// Packets in a lookup stream.
    stream: usize,
    full: bool,
}

impl Sizes {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
        if full {
            Sizes {
                batches: [(10_000, 3), (100_000, 8), (1_000_000, 25)],
                tables: [1_000_000, 1_000],
                stream: 1_000_000,
                full,
            }
        } else {
            Sizes {
                batches: [(100, 1), (1_000, 1), (10_000, 1)],
                tables: [10_000, 100],
                stream: 10_000,
                full,
            }
        }
    }
}

fn new_nat() -> Nat64 {
    let prefix = Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap();
    // 256 addresses x 65535 ports: room for 16M UDP bindings.
    let pool4 = Pool4::new(&["192.0.2.0/24".parse().unwrap()]).unwrap();
    Nat64::with_seed(Nat64Config::new(prefix, pool4, Timeouts::default()), 0x6146)
}

/// Flow `i`: client host `i / 8` in 2001:db8:1::/64 (eight flows per host,
/// each from its own port, so each its own binding) to server
/// 203.0.113.(1 + i % 250):443 under the prefix 2001:db8:64::/96.
fn flow(i: usize) -> (Ipv6Addr, u16, Ipv4Addr) {
    let host = i as u32 / 8 + 1;
    let client = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (host >> 16) as u16, host as u16);
    let port = 50_000 + (i % 8) as u16;
    let server = Ipv4Addr::new(203, 0, 113, 1 + (i % 250) as u8);
    (client, port, server)
}

fn embed(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x64,
        0,
        0,
        0,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    )
}

/// Appends the IPv6 UDP packet of flow `i` (client to server) to `out`.
fn push_v6(i: usize, out: &mut Vec<u8>) {
    let (client, port, server) = flow(i);
    PacketBuilder::ipv6(client.octets(), embed(server).octets(), 64)
        .udp(port, SERVER_PORT)
        .write(out, &PAYLOAD)
        .unwrap();
}

/// Appends an IPv4 UDP reply from `server:443` to the pool4 address `local`.
fn push_v4(server: Ipv4Addr, local: std::net::SocketAddrV4, out: &mut Vec<u8>) {
    PacketBuilder::ipv4(server.octets(), local.ip().octets(), 64)
        .udp(SERVER_PORT, local.port())
        .write(out, &PAYLOAD)
        .unwrap();
}

/// A small deterministic PRNG (splitmix64), for the random orders.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` indices below `n`: shuffled permutations of `0..n` back to
    /// back, so every flow is hit equally often, in random order.
    fn order(&mut self, n: usize, len: usize) -> Vec<usize> {
        let mut all = Vec::with_capacity(len);
        let mut perm: Vec<usize> = (0..n).collect();
        while all.len() < len {
            for i in (1..n).rev() {
                perm.swap(i, (self.next() % (i as u64 + 1)) as usize);
            }
            all.extend_from_slice(&perm[..n.min(len - all.len())]);
        }
        all
    }
}

fn creation(c: &mut Criterion, sizes: &Sizes) {
    let mut g = c.benchmark_group("create");
    g.throughput(Throughput::Elements(1));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    for (batch, seconds) in sizes.batches {
        g.measurement_time(Duration::from_secs(seconds));
        let mut stream: Option<Vec<u8>> = None;
        let id = BenchmarkId::new("udp_new_flow", format!("{batch}_per_nat"));
        g.bench_function(id, |b| {
            let stream = stream.get_or_insert_with(|| {
                let mut s = Vec::with_capacity(batch * V6_LEN);
                (0..batch).for_each(|i| push_v6(i, &mut s));
                s
            });
            let mut out = vec![0u8; 2048];
            b.iter_custom(|iters| {
                // Whole batches only (each from an empty table), scaled
                // back to `iters` creations.
                let mut timed = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let mut nat = new_nat();
                    let now = Instant::now();
                    let start = Instant::now();
                    for pkt in stream.chunks_exact(V6_LEN) {
                        let _ = black_box(nat.handle_v6(now, pkt, &mut out));
                    }
                    timed += start.elapsed();
                    assert_eq!(nat.session_count(), batch, "every packet a new session");
                    done += batch as u64;
                    drop(nat);
                }
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    g.finish();
}

/// A one-address pool (65,535 UDP ports) filled to `taken` bindings, with
/// port blocks of `port_block` ports (0: none).
fn one_address_nat(taken: usize, port_block: u16, out: &mut [u8]) -> Nat64 {
    let prefix = Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap();
    let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap()]).unwrap();
    let mut config = Nat64Config::new(prefix, pool4, Timeouts::default());
    config.port_block = port_block;
    let mut nat = Nat64::with_seed(config, 7);
    let now = Instant::now();
    let mut pkt = Vec::with_capacity(V6_LEN);
    for i in 0..taken {
        pkt.clear();
        push_v6(i, &mut pkt);
        let _ = nat.handle_v6(now, &pkt, out);
    }
    assert_eq!(nat.bib_count(), taken);
    nat
}

/// Port allocation as the pool fills: a new binding (a new client port
/// whose own port number is taken: flows reuse client ports 50000-50007)
/// in a one-address pool already `pct`% full. RFC 6146 §3.5.1.1 keeps
/// parity and range, so near the end most candidates are taken; the
/// bitmap search looks at 64 ports per read.
///
/// With port blocks of 64 (RFC 7422), each host (eight flows) holds a
/// block: the pool's 1,023 blocks hold 8,184 such bindings, `pct`% of
/// which are taken; a new host's first flow searches a free block, the
/// other seven find room in it.
fn allocation(c: &mut Criterion, sizes: &Sizes) {
    let mut g = c.benchmark_group("allocate");
    g.throughput(Throughput::Elements(1));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(if sizes.full { 5 } else { 1 }));
    let fills: &[(u16, usize)] = if sizes.full {
        &[(0, 50), (0, 90), (0, 99), (64, 50), (64, 99)]
    } else {
        &[(0, 50), (64, 50)]
    };
    for &(port_block, pct) in fills {
        // Bindings the pool holds when full: every port, or with blocks
        // eight flows per block of 64 (1,023 whole blocks in 1-65535).
        let capacity = if port_block == 0 { 65_535 } else { 1_023 * 8 };
        // Whole hosts (eight flows each).
        let taken = capacity * pct / 100 / 8 * 8;
        // Bindings created per filled NAT before it is rebuilt.
        let room = ((capacity - taken) / 2).max(8) / 8 * 8;
        let name = match port_block {
            0 => "udp_new_binding".to_string(),
            n => format!("udp_new_binding_block_{n}"),
        };
        g.bench_function(BenchmarkId::new(name, format!("{pct}pct_full")), |b| {
            let mut out = vec![0u8; 2048];
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let mut nat = one_address_nat(taken, port_block, &mut out);
                    let mut stream = Vec::with_capacity(room * V6_LEN);
                    (taken..taken + room).for_each(|i| push_v6(i, &mut stream));
                    let now = Instant::now();
                    let start = Instant::now();
                    for pkt in stream.chunks_exact(V6_LEN) {
                        let _ = black_box(nat.handle_v6(now, pkt, &mut out));
                    }
                    timed += start.elapsed();
                    assert_eq!(nat.bib_count(), taken + room);
                    done += room as u64;
                }
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    g.finish();
}

/// A NAT holding `sessions` sessions and streams of packets of those flows,
/// both directions, in random order.
struct Lookup {
    nat: Nat64,
    now: Instant,
    v6: Vec<u8>,
    v4: Vec<u8>,
    pos6: usize,
    pos4: usize,
    out: Vec<u8>,
}

impl Lookup {
    fn new(sessions: usize, stream: usize) -> Self {
        let mut nat = new_nat();
        let now = Instant::now();
        let mut out = vec![0u8; 2048];
        let mut pkt = Vec::with_capacity(V6_LEN);
        for i in 0..sessions {
            pkt.clear();
            push_v6(i, &mut pkt);
            let v = nat.handle_v6(now, &pkt, &mut out);
            assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
        }
        assert_eq!(nat.session_count(), sessions);
        let mut rng = Rng(sessions as u64);
        let mut v6 = Vec::with_capacity(stream * V6_LEN);
        for i in rng.order(sessions, stream) {
            push_v6(i, &mut v6);
        }
        let entries = nat.sessions();
        let mut v4 = Vec::with_capacity(stream * V4_LEN);
        for i in rng.order(sessions, stream) {
            push_v4(*entries[i].v4_server.ip(), entries[i].v4_local, &mut v4);
        }
        drop(entries);
        let mut me = Lookup {
            nat,
            now,
            v6,
            v4,
            pos6: 0,
            pos4: 0,
            out,
        };
        // One pass each way: checks every packet is translated (and leaves
        // the table as warm as a busy gateway's).
        for _ in 0..stream {
            let v = me.next_v6();
            assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
            let v = me.next_v4();
            assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
        }
        assert_eq!(me.nat.session_count(), sessions);
        me
    }

    fn next_v6(&mut self) -> Verdict {
        let pkt = &self.v6[self.pos6..self.pos6 + V6_LEN];
        self.pos6 = (self.pos6 + V6_LEN) % self.v6.len();
        self.nat.handle_v6(self.now, pkt, &mut self.out)
    }

    fn next_v4(&mut self) -> Verdict {
        let pkt = &self.v4[self.pos4..self.pos4 + V4_LEN];
        self.pos4 = (self.pos4 + V4_LEN) % self.v4.len();
        self.nat.handle_v4(self.now, pkt, &mut self.out)
    }

    /// Nanoseconds per packet of the fastest of `passes` whole passes over
    /// the stream, one direction.
    fn best_ns(&mut self, passes: usize, v6: bool) -> f64 {
        let n = if v6 {
            self.v6.len() / V6_LEN
        } else {
            self.v4.len() / V4_LEN
        };
        (0..passes)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..n {
                    let _ = black_box(if v6 { self.next_v6() } else { self.next_v4() });
                }
                start.elapsed().as_nanos() as f64 / n as f64
            })
            .fold(f64::INFINITY, f64::min)
    }
}

fn lookups(c: &mut Criterion, sizes: &Sizes) {
    let states: [RefCell<Option<Lookup>>; 2] = Default::default();
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, v6) in [("v6_existing", true), ("v4_reply", false)] {
        for (table, state) in sizes.tables.iter().zip(&states) {
            let id = BenchmarkId::new(name, format!("{table}_sessions"));
            g.bench_function(id, |b| {
                let mut state = state.borrow_mut();
                let st = state.get_or_insert_with(|| Lookup::new(*table, sizes.stream));
                if v6 {
                    b.iter(|| st.next_v6());
                } else {
                    b.iter(|| st.next_v4());
                }
            });
        }
    }
    g.finish();
    if !sizes.full {
        return;
    }
    let [big, small] = states.map(RefCell::into_inner);
    let (Some(mut big), Some(mut small)) = (big, small) else {
        return; // filtered out
    };
    for (name, v6) in [
        ("handle_v6 (existing flow)", true),
        ("handle_v4 (reply)", false),
    ] {
        let b = big.best_ns(3, v6);
        let s = small.best_ns(3, v6);
        println!(
            "lookup summary: {name}: full per-packet time {b:.1} ns with {} sessions, \
             {s:.1} ns with {} sessions; estimated lookup cost of the big table \
             (difference) {:.1} ns",
            sizes.tables[0],
            sizes.tables[1],
            b - s
        );
    }
}

fn main() {
    let sizes = Sizes::from_args();
    let mut c = Criterion::default().configure_from_args();
    creation(&mut c, &sizes);
    allocation(&mut c, &sizes);
    lookups(&mut c, &sizes);
    c.final_summary();
}
