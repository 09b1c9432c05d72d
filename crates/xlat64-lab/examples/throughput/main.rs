//! Throughput, packet rate, round trip and CPU cost of xlat64 against TAYGA
//! and against plain kernel IPv6 forwarding between the same namespaces.
//! Run through `bench/throughput.sh`, or as root:
//!
//! ```text
//! cargo build --release -p xlat64
//! cargo run --release -p xlat64-lab --example throughput -- [--runs N] [--seconds S]
//! ```
//!
//! It builds the dual-stack lab (client 2001:db8:1::2 plus 2001:db8:1::100..103,
//! gateway, server 198.51.100.2 and 2001:db8:2::2), starts four `iperf3 -s`
//! (ports 5201..5204) and a UDP sink in the server namespace, then for each
//! round runs every measurement through each contender in turn (the order
//! rotates from round to round):
//!
//! - kernel: IPv6 forwarding from the client to 2001:db8:2::2;
//! - TAYGA: `tayga` in the gateway namespace, prefix 2001:db8:64::/96,
//!   dynamic pool 192.0.2.128/25 (one IPv4 address per IPv6 client);
//! - xlat64: `xlat64 run` with the lab's configuration (pool4 192.0.2.1).
//!
//! The translators run only during their turn. Measurements: single-stream
//! TCP both ways, 4 clients with one stream each, one client with 4 streams
//! (iperf3), 18-byte UDP datagrams per second received by the server's
//! interface (a `sendmmsg` sender in the client namespace), the median ping
//! round trip, and the translator's CPU seconds per gigabit in the
//! single-stream runs. It prints each round's figures, a table of medians
//! with the ratios xlat64/kernel and xlat64/TAYGA, and the raw figures.
//!
//! The xlat64 binary is the one next to this example's target directory, or
//! `$XLAT64_BIN`. Exits 1 only if xlat64 or the kernel path moved nothing;
//! TAYGA missing or failing only makes its columns n/a.

mod contenders;
mod measure;

use contenders::{Contender, Running};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use xlat64_lab::{self as lab, Lab, LabOptions, NAT64_PREFIX, POOL4};

/// Extra client addresses for the several-clients measurement.
const EXTRA_CLIENTS: [Ipv6Addr; 4] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x101),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x102),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x103),
];
/// The iperf3 servers' ports; the first also serves the one-client runs.
const IPERF_PORTS: [u16; 4] = [5201, 5202, 5203, 5204];
/// UDP port of the server's sink socket (bound, never read: the datagrams
/// are counted at the interface and dropped at the full socket).
const SINK_PORT: u16 = 9000;
/// Source ports (sockets) of the small-packet sender.
const PPS_FLOWS: usize = 8;
/// Pings per round-trip measurement.
const PINGS: u32 = 50;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived: the benchmark stops after the current
/// measurement and cleans up.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

struct Args {
    runs: usize,
    seconds: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value =
            |it: &mut dyn Iterator<Item = String>| it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => {
                args.runs = value(&mut it)?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--seconds" => {
                args.seconds = value(&mut it)?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: throughput [--runs N (default 5)] [--seconds S (default 5)]");
                std::process::exit(0);
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use --runs N and --seconds S"
                ))
            }
        }
    }
    if args.runs == 0 || args.seconds == 0 {
        return Err("--runs and --seconds must be at least 1".into());
    }
    Ok(args)
}

/// The median of `values` (not empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What is measured, one table row each.
#[derive(Debug, Clone, Copy)]
enum Metric {
    TcpUp,
    TcpDown,
    TcpClients,
    TcpStreams,
    PpsDelivered,
    PpsOffered,
    Rtt,
    CpuUp,
    CpuDown,
}

impl Metric {
    const ALL: [Metric; 9] = [
        Metric::TcpUp,
        Metric::TcpDown,
        Metric::TcpClients,
        Metric::TcpStreams,
        Metric::PpsDelivered,
        Metric::PpsOffered,
        Metric::Rtt,
        Metric::CpuUp,
        Metric::CpuDown,
    ];

    fn label(self) -> &'static str {
        match self {
            Metric::TcpUp => "TCP 1 stream client->server",
            Metric::TcpDown => "TCP 1 stream server->client (-R)",
            Metric::TcpClients => "TCP 4 clients x 1 stream, sum",
            Metric::TcpStreams => "TCP 1 client x 4 streams (-P 4)",
            Metric::PpsDelivered => "UDP 18 B datagrams at the server",
            Metric::PpsOffered => "  sent by the client (for info)",
            Metric::Rtt => "ping RTT median, lower=better",
            Metric::CpuUp => "CPU per Gbit c->s, lower=better",
            Metric::CpuDown => "CPU per Gbit s->c, lower=better",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::TcpUp | Metric::TcpDown | Metric::TcpClients | Metric::TcpStreams => "Gbit/s",
            Metric::PpsDelivered | Metric::PpsOffered => "kpps",
            Metric::Rtt => "us",
            Metric::CpuUp | Metric::CpuDown => "CPU s/Gbit",
        }
    }

    fn decimals(self) -> usize {
        match self {
            Metric::PpsDelivered | Metric::PpsOffered | Metric::Rtt => 1,
            _ => 3,
        }
    }

    /// Whether a figure above zero means traffic went through.
    fn moves_traffic(self) -> bool {
        matches!(
            self,
            Metric::TcpUp
                | Metric::TcpDown
                | Metric::TcpClients
                | Metric::TcpStreams
                | Metric::PpsDelivered
        )
    }
}

/// Per metric, per contender, per round: the figure, or `None` (failed,
/// skipped or not applicable).
struct Results {
    figures: Vec<[Vec<Option<f64>>; 3]>,
}

impl Results {
    fn new(runs: usize) -> Results {
        Results {
            figures: Metric::ALL
                .iter()
                .map(|_| std::array::from_fn(|_| vec![None; runs]))
                .collect(),
        }
    }

    fn set(&mut self, metric: Metric, contender: Contender, round: usize, value: f64) {
        self.figures[metric as usize][contender.index()][round] = Some(value);
    }

    fn rounds(&self, metric: Metric, contender: Contender) -> &[Option<f64>] {
        &self.figures[metric as usize][contender.index()]
    }

    fn median(&self, metric: Metric, contender: Contender) -> Option<f64> {
        let values: Vec<f64> = self
            .rounds(metric, contender)
            .iter()
            .flatten()
            .copied()
            .collect();
        (!values.is_empty()).then(|| median(&values))
    }

    fn moved_something(&self, contender: Contender) -> bool {
        Metric::ALL
            .iter()
            .filter(|m| m.moves_traffic())
            .any(|&m| self.rounds(m, contender).iter().flatten().any(|&v| v > 0.0))
    }
}

/// Everything that lives for the whole benchmark in the lab.
struct Bench<'a> {
    lab: &'a Lab,
    seconds: u32,
    round: usize,
    runs: usize,
}

impl Bench<'_> {
    /// Runs every measurement through `contender` (started as `running`)
    /// and records the figures of round `self.round`.
    fn measure_all(&self, contender: Contender, running: &Running, results: &mut Results) {
        let lab = self.lab;
        let target = contender.target();
        let round = self.round;
        let name = contender.name();
        let mut summary: Vec<String> = Vec::new();
        let fail = |what: &str, e: String| {
            eprintln!(
                "warning: round {}/{} {name} {what}: {e}{}",
                round + 1,
                self.runs,
                running.log_tail()
            );
        };

        match measure::ping_rtt(lab, target, PINGS) {
            Ok((us, replies)) => {
                results.set(Metric::Rtt, contender, round, us);
                summary.push(format!("rtt {us:.1} us ({replies}/{PINGS} replies)"));
            }
            Err(e) => fail("ping", e),
        }

        for (metric, cpu_metric, extra, what) in [
            (Metric::TcpUp, Metric::CpuUp, &[][..], "c->s"),
            (Metric::TcpDown, Metric::CpuDown, &["-R"][..], "s->c"),
        ] {
            if interrupted() {
                return;
            }
            let cpu_before = running.pid().map(measure::cpu_seconds);
            match measure::iperf(lab, target, IPERF_PORTS[0], self.seconds, extra) {
                Ok(r) => {
                    results.set(metric, contender, round, r.bps / 1e9);
                    let mut s = format!("tcp {what} {:.3} Gbit/s", r.bps / 1e9);
                    if let (Some(Ok(before)), Some(pid)) = (cpu_before, running.pid()) {
                        match measure::cpu_seconds(pid) {
                            Ok(after) if r.bytes > 0.0 => {
                                let per_gbit = (after - before) / (r.bytes * 8.0 / 1e9);
                                results.set(cpu_metric, contender, round, per_gbit);
                                s += &format!(
                                    " ({:.2} CPU s, {per_gbit:.3} s/Gbit)",
                                    after - before
                                );
                            }
                            Ok(_) => {}
                            Err(e) => fail("CPU time", e),
                        }
                    }
                    summary.push(s);
                }
                Err(e) => fail(&format!("TCP {what}"), e),
            }
        }

        if !interrupted() {
            let clients: Vec<(u16, Vec<String>)> = IPERF_PORTS
                .iter()
                .zip(EXTRA_CLIENTS)
                .map(|(&port, addr)| (port, vec!["-B".to_string(), addr.to_string()]))
                .collect();
            match measure::iperf_parallel(lab, target, self.seconds, &clients) {
                Ok(bps) => {
                    results.set(Metric::TcpClients, contender, round, bps / 1e9);
                    summary.push(format!("4 clients {:.3} Gbit/s", bps / 1e9));
                }
                Err(e) => fail("TCP 4 clients", e),
            }
        }

        if !interrupted() {
            match measure::iperf(lab, target, IPERF_PORTS[0], self.seconds, &["-P", "4"]) {
                Ok(r) => {
                    results.set(Metric::TcpStreams, contender, round, r.bps / 1e9);
                    summary.push(format!("-P 4 {:.3} Gbit/s", r.bps / 1e9));
                }
                Err(e) => fail("TCP -P 4", e),
            }
        }

        if !interrupted() {
            let to = SocketAddr::new(target.into(), SINK_PORT);
            match measure::small_packets(lab, to, PPS_FLOWS, self.seconds) {
                Ok(p) => {
                    results.set(Metric::PpsDelivered, contender, round, p.delivered / 1e3);
                    results.set(Metric::PpsOffered, contender, round, p.offered / 1e3);
                    summary.push(format!(
                        "udp {:.1} kpps at the server ({:.1} kpps sent)",
                        p.delivered / 1e3,
                        p.offered / 1e3
                    ));
                }
                Err(e) => fail("small packets", e),
            }
        }

        println!(
            "round {}/{} {name:<6}: {}",
            round + 1,
            self.runs,
            if summary.is_empty() {
                "nothing measured".to_string()
            } else {
                summary.join(", ")
            }
        );
    }
}

/// `ip -n <ns> <args>`, failing with its stderr.
fn ip_in(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["-n", ns]).args(args);
    let out = lab::run_with_timeout(&mut cmd, Duration::from_secs(15))
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// First line of `program args` output, or `?`.
fn first_line_of(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn print_header(args: &Args, lab: &Lab, exe: &std::path::Path, tayga: &Result<(), String>) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_string())
            })
        })
        .unwrap_or_else(|| "?".into());
    println!("== xlat64 throughput benchmark ==");
    println!(
        "{} rounds, {} s per measurement; each round runs every measurement through kernel, TAYGA and xlat64 in turn (order rotated each round); medians of the rounds",
        args.runs, args.seconds
    );
    println!(
        "date {}, kernel {kernel}, {cpus} CPUs ({cpu_model}), {}",
        first_line_of("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        first_line_of("iperf3", &["--version"])
    );
    println!("lab: {}", lab.describe());
    let overrides: Vec<String> = ["XLAT64_LAB_WORKERS", "XLAT64_LAB_OFFLOAD"]
        .iter()
        .filter_map(|v| Some(format!("{v}={}", std::env::var(v).ok()?)))
        .collect();
    println!(
        "xlat64: {} (lab config: prefix {NAT64_PREFIX}, pool4 {POOL4} shared by ports; {})",
        exe.display(),
        if overrides.is_empty() {
            "default workers and offloads".to_string()
        } else {
            overrides.join(" ")
        }
    );
    match tayga {
        Ok(()) => println!(
            "TAYGA: {} (prefix {NAT64_PREFIX}, dynamic-pool {}: each IPv6 client mapped 1:1 to its own IPv4 address, stateless, no port sharing)",
            contenders::tayga_version().map_or_else(|| "tayga".to_string(), |v| format!("tayga {v}")),
            contenders::TAYGA_POOL
        ),
        Err(e) => println!("TAYGA: n/a ({e})"),
    }
    println!(
        "kernel: plain IPv6 forwarding to {} (no translation)",
        lab::SERVER_V6
    );
    println!(
        "measurements: iperf3 TCP 1 stream both ways; 4 clients ({}..{}) x 1 stream to 4 servers, summed; 1 client -P 4; \
         {}-byte UDP datagrams from {PPS_FLOWS} source ports by one sendmmsg thread, counted at the server's s0 rx; \
         ping -c {PINGS} -i 0.01 median; translator utime+stime per gigabit received in the 1-stream runs",
        EXTRA_CLIENTS[0],
        EXTRA_CLIENTS[3],
        measure::SMALL_PAYLOAD
    );
    println!();
}

fn print_table(results: &Results) {
    let fmt =
        |v: Option<f64>, d: usize| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.d$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".to_string(),
    };
    println!();
    println!("== medians ==");
    println!(
        "{:<34} {:<16} {:>10} {:>10} {:>10} {:>14} {:>13}",
        "measurement", "unit", "kernel", "TAYGA", "xlat64", "xlat64/kernel", "xlat64/TAYGA"
    );
    for m in Metric::ALL {
        let [k, t, x] = Contender::ALL.map(|c| results.median(m, c));
        println!(
            "{:<34} {:<16} {:>10} {:>10} {:>10} {:>14} {:>13}",
            m.label(),
            m.unit(),
            fmt(k, m.decimals()),
            fmt(t, m.decimals()),
            fmt(x, m.decimals()),
            ratio(x, k),
            ratio(x, t)
        );
    }
    println!("notes: ratios are xlat64 divided by the other; for RTT and CPU lower is better, for the rest higher.");
    println!("  CPU: utime+stime of the translator process (all threads, including the kernel work done in its");
    println!("  syscalls) per gigabit received; the kernel path has no translator process: n/a.");
    println!("  UDP: on the kernel path the forwarding runs in the sending thread's own softirq, so its figure");
    println!("  is what one core can send and forward; through a translator, sent minus received is what the");
    println!("  translator dropped or could not take from its TUN queue. Sender, iperf3, translator and the");
    println!("  kernel's forwarding all share the machine's cores.");
    println!();
    println!("== raw figures per round (round 1, 2, ...; n/a: failed or not run) ==");
    for m in Metric::ALL {
        for c in Contender::ALL {
            let rounds: Vec<String> = results
                .rounds(m, c)
                .iter()
                .map(|&v| fmt(v, m.decimals()))
                .collect();
            println!(
                "{:<34} {:<16} {:<7} {}",
                m.label(),
                m.unit(),
                c.name(),
                rounds.join(" ")
            );
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let exe = lab::xlat64_binary()?;
    let lab = Lab::create_with(
        "bench",
        LabOptions {
            dual_stack_server: true,
            ..LabOptions::default()
        },
    )
    .map_err(|e| format!("lab: {e}"))?;

    for addr in EXTRA_CLIENTS {
        ip_in(
            lab.client(),
            &["addr", "add", &format!("{addr}/64"), "dev", "c0", "nodad"],
        )?;
    }
    let mut servers = Vec::new();
    for port in IPERF_PORTS {
        let p = port.to_string();
        let server = lab
            .spawn_in(lab.server(), &["iperf3", "-s", "-p", &p])
            .map_err(|e| format!("iperf3 -s: {e}"))?;
        lab.wait_listening(lab.server(), "tcp", port, Duration::from_secs(10))
            .map_err(|e| format!("{e}; iperf3 -s said: {}", server.log()))?;
        servers.push(server);
    }
    // Bound, never read: it takes the datagrams without ICMP errors, and
    // drops them once its buffer is full.
    let _sink = lab
        .in_netns(lab.server(), || UdpSocket::bind(("::", SINK_PORT)))
        .map_err(|e| format!("UDP sink: {e}"))?;

    let mut tayga = contenders::tayga_available();
    print_header(args, &lab, &exe, &tayga);

    let mut results = Results::new(args.runs);
    let mut bench = Bench {
        lab: &lab,
        seconds: args.seconds,
        round: 0,
        runs: args.runs,
    };
    'rounds: for round in 0..args.runs {
        bench.round = round;
        let mut order = Contender::ALL;
        order.rotate_left(round % Contender::ALL.len());
        for contender in order {
            if interrupted() {
                break 'rounds;
            }
            if contender == Contender::Tayga {
                if let Err(e) = &tayga {
                    println!("round {}/{} TAYGA : n/a ({e})", round + 1, args.runs);
                    continue;
                }
            }
            let running = match contenders::start(&lab, contender, &exe) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!(
                        "warning: round {}/{}: {} could not be started: {e}",
                        round + 1,
                        args.runs,
                        contender.name()
                    );
                    if contender == Contender::Tayga {
                        // Its columns are n/a from here on; the rest goes on.
                        tayga = Err(format!(
                            "could not be set up: {}",
                            e.lines().next().unwrap_or("")
                        ));
                    }
                    continue;
                }
            };
            if let Some(pid) = running.pid() {
                let comm = measure::process_name(pid);
                let expected = if contender == Contender::Tayga {
                    "tayga"
                } else {
                    "xlat64"
                };
                if comm != expected {
                    eprintln!("warning: pid {pid} is `{comm}`, not {expected}: its CPU figures are not the translator's");
                }
            }
            bench.measure_all(contender, &running, &mut results);
            if let Err(e) = running.stop(&lab) {
                eprintln!("warning: {e}");
            }
        }
    }
    if interrupted() {
        return Err("interrupted".into());
    }

    print_table(&results);
    if let Err(e) = &tayga {
        println!("TAYGA: n/a ({e})");
    }
    drop(servers);
    let mut failed = false;
    for c in [Contender::Kernel, Contender::Xlat64] {
        if !results.moved_something(c) {
            eprintln!(
                "error: nothing went through {} in any measurement",
                c.name()
            );
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let handler: extern "C" fn(libc::c_int) = on_signal;
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
