//! RFC 7915 end to end, across a routed IPv4 path: the lab's
//! [`LabOptions::ipv4_router`] topology puts an IPv4 router between the
//! gateway and the server, with a 1400-byte MTU on the router's link to the
//! server.
//!
//! ```text
//!  client 2001:db8:1::2 -- gateway (xlat64) -- router 203.0.113.2 | 198.51.100.1 -- MTU 1400 -- server 198.51.100.2
//! ```
//!
//! What the client must see: the gateway as exactly one hop, ICMP errors of
//! the IPv4 router and server translated to ICMPv6 (time exceeded, port
//! unreachable, packet too big with the right MTU), and fragmented UDP and
//! ICMP crossing in both directions.
//!
//! Each test checks several things and reports every failed check at once
//! (with the commands' output and the gateway's log), not only the first.

mod common;

use common::{NsdExtra, World};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use xlat64_lab::{
    self as lab, embed_v4, server_via_nat64, LabOptions, LabProcess, GATEWAY_V4_ROUTED, GATEWAY_V6,
    POOL4, ROUTED_LINK_MTU, ROUTER_V4_GATEWAY_SIDE, ROUTER_V4_SERVER_SIDE, SERVER_V4,
};

/// Number of TXT records of `bigtxt.xlat64.test`.
const BIG_TXT_COUNT: usize = 32;
/// Length of each of its strings: 32 * (100 + 13) bytes of answer, about
/// 3.7 KB in all, three IPv4 fragments on the 1400-byte link.
const BIG_TXT_LEN: usize = 100;
/// The EDNS buffer size of the big DNS answer, on both sides.
const DNS_BUFSIZE: u16 = 4096;
/// Path MTU the client must learn: the IPv4 link MTU plus the 20 bytes an
/// IPv6 header has over an IPv4 one (RFC 7915 §4.2, "Packet Too Big").
const PATH_MTU_V6: u32 = ROUTED_LINK_MTU + 20;
/// Bytes of each bulk TCP transfer.
const BULK_BYTES: usize = 4 << 20;
/// Port of the upload server in the server namespace.
const UPLOAD_PORT: u16 = 8080;
/// Port of the iperf3 server in the server namespace.
const IPERF_PORT: u16 = 5201;
/// Highest UDP loss (percent of bytes sent) the fragmented iperf3 runs may
/// show.
const MAX_UDP_LOSS_PERCENT: f64 = 5.0;

fn server6() -> String {
    server_via_nat64().to_string()
}

/// The router's address towards the gateway, under the NAT64 prefix: how
/// its ICMP errors must reach the client.
fn router6() -> Ipv6Addr {
    embed_v4(ROUTER_V4_GATEWAY_SIDE)
}

/// The `i`th string of `bigtxt.xlat64.test`.
fn big_txt(i: usize) -> String {
    let mut s = format!("record-{i:02}-");
    while s.len() < BIG_TXT_LEN {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s
}

fn big_txt_zone_lines() -> String {
    (0..BIG_TXT_COUNT)
        .map(|i| format!("bigtxt IN TXT \"{}\"\n", big_txt(i)))
        .collect()
}

/// The routed lab with NSD (also serving `bigtxt`, EDNS up to 4096 bytes),
/// the HTTP server and xlat64, or `None` when this machine cannot run it.
fn routed_world(tag: &str, tools: &[&str]) -> Option<World> {
    let records = big_txt_zone_lines();
    let server = format!("ipv4-edns-size: {DNS_BUFSIZE}");
    common::world_with(
        tag,
        tools,
        LabOptions {
            ipv4_router: true,
            ..LabOptions::default()
        },
        NsdExtra {
            records: &records,
            server: &server,
        },
    )
}

/// What a command did, for assertions and failure messages.
struct Run {
    what: String,
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], result: std::io::Result<Output>) -> Run {
        let what = args.join(" ");
        match result {
            Ok(out) => Run {
                what,
                ok: out.status.success(),
                status: lab::describe_status(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => Run {
                what,
                ok: false,
                status: "did not finish".into(),
                stdout: String::new(),
                stderr: e.to_string(),
            },
        }
    }

    /// stdout and stderr together.
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The command and everything it printed, for a failure message.
    fn show(&self) -> String {
        format!(
            "`{}` ({}):\n--- stdout\n{}--- stderr\n{}---",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Ok if it exited 0.
    fn success(&self) -> Result<(), String> {
        if self.ok {
            Ok(())
        } else {
            Err(self.show())
        }
    }
}

fn run_in(world: &World, ns: &str, args: &[&str], timeout: Duration) -> Run {
    Run::from(args, world.lab.run_in_timeout(ns, args, timeout))
}

fn client(world: &World, args: &[&str], timeout: Duration) -> Run {
    run_in(world, world.lab.client(), args, timeout)
}

/// Soft assertions: every check runs, [`Checks::finish`] fails the test with
/// all failures at once.
struct Checks<'a> {
    world: &'a World,
    total: usize,
    failures: Vec<String>,
}

impl<'a> Checks<'a> {
    fn new(world: &'a World) -> Self {
        Checks {
            world,
            total: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, what: &str, result: Result<(), String>) {
        self.total += 1;
        match result {
            Ok(()) => eprintln!("ok: {what}"),
            Err(why) => {
                eprintln!("FAILED: {what}\n{why}\n");
                self.failures.push(format!("* {what}\n{why}"));
            }
        }
    }

    fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        let log = self.world.gateway.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let stats = self
            .world
            .gateway
            .cli(&["stats"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(xlat64 stats: {e})"));
        let nonzero: Vec<&str> = stats
            .lines()
            .filter(|l| l.split_whitespace().last().is_some_and(|v| v != "0"))
            .collect();
        panic!(
            "{} of {} checks failed:\n\n{}\n\nxlat64 stats (non-zero):\n{}\n\ngateway log (last 40 lines):\n{tail}",
            self.failures.len(),
            self.total,
            self.failures.join("\n\n"),
            nonzero.join("\n")
        );
    }
}

/// The hops of `traceroute -n` output: hop number and the distinct addresses
/// that answered it (empty for `*`).
fn traceroute_hops(out: &str) -> Vec<(u32, Vec<IpAddr>)> {
    let mut hops = Vec::new();
    for line in out.lines() {
        let mut tokens = line.split_whitespace();
        let Some(n) = tokens.next().and_then(|t| t.parse::<u32>().ok()) else {
            continue; // the header, or a continuation line
        };
        let mut addrs: Vec<IpAddr> = Vec::new();
        for t in tokens {
            if let Ok(a) = t.parse::<IpAddr>() {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        hops.push((n, addrs));
    }
    hops
}

/// The hops of `tracepath -n` output: for each hop number (tracepath may
/// print a hop several times, e.g. after a path MTU change), the addresses
/// that answered it; a hop with only `no reply` has an empty set.
///
/// ```text
///  1?: [LOCALHOST]                      pmtu 1500
///  1:  203.0.113.2                                           0.042ms
///  1:  203.0.113.2                                           0.010ms
///  2:  203.0.113.2                                           0.018ms pmtu 1400
///  2:  198.51.100.2                                          0.042ms reached
///      Resume: pmtu 1400 hops 2 back 2
/// ```
fn tracepath_hops(out: &str) -> Vec<(u32, Vec<IpAddr>)> {
    let mut hops: BTreeMap<u32, BTreeSet<IpAddr>> = BTreeMap::new();
    for line in out.lines() {
        let Some((num, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(n) = num.trim_end_matches('?').parse::<u32>() else {
            continue; // "Resume: ...", "Too many hops: ..."
        };
        let first = rest.split_whitespace().next().unwrap_or_default();
        // "[LOCALHOST] pmtu 1500" is no hop; "<addr> ... pmtu 1400" names
        // who reported a smaller MTU (a router further on), not the hop.
        if first == "[LOCALHOST]" || rest.contains(" pmtu ") {
            continue;
        }
        let set = hops.entry(n).or_default();
        if let Ok(a) = first.parse::<IpAddr>() {
            set.insert(a);
        }
    }
    hops.into_iter()
        .map(|(n, set)| (n, set.into_iter().collect()))
        .collect()
}

fn show_hops(hops: &[(u32, Vec<IpAddr>)]) -> String {
    let mut s = String::new();
    for (n, addrs) in hops {
        let addrs: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
        let shown = if addrs.is_empty() {
            "*".to_string()
        } else {
            addrs.join(" ")
        };
        let _ = writeln!(s, "  {n}: {shown}");
    }
    s
}

fn same_hops(
    got: &[(u32, Vec<IpAddr>)],
    expected: &[(u32, Vec<IpAddr>)],
    run: &Run,
) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected hops:\n{}got:\n{}{}",
            show_hops(expected),
            show_hops(got),
            run.show()
        ))
    }
}

/// Runs traceroute (`family` `-4` or `-6`) in UDP, ICMP and TCP (port 80)
/// mode and tracepath from namespace `ns` to `target`: each must list
/// exactly `expected` (hop number, the one address answering it), and
/// tracepath must end with path MTU `pmtu`.
fn check_traces(
    checks: &mut Checks,
    ns: &str,
    family: &str,
    target: IpAddr,
    expected: &[(u32, Vec<IpAddr>)],
    pmtu: u32,
) {
    let world = checks.world;
    let target = target.to_string();
    let names: Vec<String> = expected
        .iter()
        .map(|(n, a)| {
            format!(
                "{n} = {}",
                a.first().map(IpAddr::to_string).unwrap_or_default()
            )
        })
        .collect();
    let names = names.join(", ");
    for (mode, extra) in [
        ("UDP", &[][..]),
        ("ICMP", &["-I"][..]),
        ("TCP", &["-T", "-p", "80"][..]),
    ] {
        let mut args = vec!["traceroute", family, "-n", "-q", "1", "-w", "2", "-m", "6"];
        args.extend_from_slice(extra);
        args.push(&target);
        // One probe per hop: a single probe or answer lost on a loaded
        // machine is one `*`. A second run is allowed; a fault of the
        // translator fails both (and both are shown).
        let mut outcome = Err(String::new());
        for attempt in 1..=2 {
            let run = run_in(world, ns, &args, Duration::from_secs(30));
            eprintln!("{}", run.show()); // shown with --nocapture
            outcome = run
                .success()
                .and_then(|()| same_hops(&traceroute_hops(&run.stdout), expected, &run));
            match &outcome {
                Ok(()) => break,
                Err(e) if attempt == 1 => eprintln!("traceroute {family} {mode}, first run:\n{e}"),
                Err(_) => {}
            }
        }
        checks.check(
            &format!("traceroute {family} {mode}: hops {names}"),
            outcome,
        );
    }

    let run = run_in(
        world,
        ns,
        &["tracepath", family, "-n", "-m", "6", &target],
        Duration::from_secs(40),
    );
    eprintln!("{}", run.show());
    checks.check(
        &format!("tracepath {family}: hops {names}"),
        same_hops(&tracepath_hops(&run.stdout), expected, &run),
    );
    // tracepath probes with packets of the first link's MTU (1500), DF set:
    // it must learn the path MTU from the router's "fragmentation needed"
    // (or its translation, "packet too big").
    let want = format!("pmtu {pmtu}");
    checks.check(
        &format!("tracepath {family}: resumes with {want}"),
        if run
            .stdout
            .lines()
            .any(|l| l.contains("Resume:") && l.contains(&want))
        {
            Ok(())
        } else {
            Err(run.show())
        },
    );
}

/// Traceroute in UDP, ICMP and TCP mode, and tracepath, to the server's
/// NAT64 address list exactly the gateway, the router (as prefix + IPv4) and
/// the server, each once: the translator counts as one hop
/// ([RFC 7915 §4.1 and §5.1](https://www.rfc-editor.org/rfc/rfc7915#section-5.1):
/// TTL/Hop Limit decremented once, "Time Exceeded" when it reaches zero) and
/// translates the router's ICMPv4 time exceeded and the server's port
/// unreachable / echo reply / SYN-ACK back to the client (§4.2, §4.3).
/// tracepath's 1500-byte probes also learn the path MTU 1420 from the
/// translated "fragmentation needed" (§4.2, §6).
#[test]
fn traceroute_and_tracepath_show_gateway_router_server_once_each() {
    let Some(world) = routed_world("trace", &["traceroute", "tracepath"]) else {
        return;
    };
    let mut checks = Checks::new(&world);
    let expected: Vec<(u32, Vec<IpAddr>)> = vec![
        (1, vec![GATEWAY_V6.into()]),
        (2, vec![router6().into()]),
        (3, vec![server_via_nat64().into()]),
    ];
    check_traces(
        &mut checks,
        world.lab.client(),
        "-6",
        server_via_nat64().into(),
        &expected,
        PATH_MTU_V6,
    );
    checks.finish();
}

/// Writes `len` pseudo-random bytes (xorshift; incompressible enough for a
/// transfer test) to `path`.
fn write_random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("write the test file");
    data
}

/// A python3 HTTP server in the server namespace that stores the body of
/// each PUT in `dir` under the request path's last component.
fn start_upload_server(world: &World, dir: &Path) -> LabProcess {
    let script = format!(
        "import http.server, os, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_PUT(self):\n\
         \x20       left = int(self.headers.get('Content-Length', '0'))\n\
         \x20       name = os.path.basename(self.path) or 'upload'\n\
         \x20       with open(os.path.join(sys.argv[1], name), 'wb') as f:\n\
         \x20           while left > 0:\n\
         \x20               chunk = self.rfile.read(min(left, 65536))\n\
         \x20               if not chunk:\n\
         \x20                   break\n\
         \x20               f.write(chunk)\n\
         \x20               left -= len(chunk)\n\
         \x20       self.send_response(201 if left == 0 else 400)\n\
         \x20       self.send_header('Content-Length', '0')\n\
         \x20       self.end_headers()\n\
         http.server.HTTPServer(('{SERVER_V4}', {UPLOAD_PORT}), H).serve_forever()\n"
    );
    let path = world
        .lab
        .write_file("upload_server.py", &script)
        .expect("write the upload server");
    let process = world
        .lab
        .spawn_in(
            world.lab.server(),
            &["python3".as_ref(), path.as_os_str(), dir.as_os_str()],
        )
        .expect("start the upload server");
    world
        .lab
        .wait_listening(
            world.lab.server(),
            "tcp",
            UPLOAD_PORT,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}; upload server said: {}", process.log()));
    process
}

fn same_bytes(what: &str, got: &Path, want: &[u8]) -> Result<(), String> {
    match std::fs::read(got) {
        Ok(data) if data == want => Ok(()),
        Ok(data) => Err(format!(
            "{what}: {} bytes arrived, {} were sent{}",
            data.len(),
            want.len(),
            if data.len() == want.len() {
                " (contents differ)"
            } else {
                ""
            }
        )),
        Err(e) => Err(format!("{what}: {}: {e}", got.display())),
    }
}

/// Path MTU discovery through the translator: the router's ICMPv4
/// "fragmentation needed" (MTU 1400) for a translated packet with DF reaches
/// the client as ICMPv6 "packet too big" with MTU 1420
/// ([RFC 7915 §4.2](https://www.rfc-editor.org/rfc/rfc7915#section-4.2),
/// [§6](https://www.rfc-editor.org/rfc/rfc7915#section-6)); then packets of
/// exactly 1420 bytes go through, and bulk TCP in both directions completes.
#[test]
fn path_mtu_discovery_and_bulk_tcp_across_the_small_ipv4_link() {
    let Some(world) = routed_world("pmtu", &["ping", "curl"]) else {
        return;
    };
    let server = server6();
    let mut checks = Checks::new(&world);

    // 1400 bytes of payload: a 1448-byte IPv6 packet, 1428 bytes in IPv4.
    let big = client(
        &world,
        &[
            "ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", "-s", "1400", "-M", "do", &server,
        ],
        Duration::from_secs(20),
    );
    let want = format!("mtu {PATH_MTU_V6}");
    let route = client(
        &world,
        &["ip", "-6", "route", "get", &server],
        Duration::from_secs(10),
    );
    checks.check(
        &format!("after a too-big ping, the client's route to the server has {want}"),
        if route.ok
            && route
                .stdout
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "mtu" && w[1] == PATH_MTU_V6.to_string())
        {
            Ok(())
        } else {
            Err(format!("{}\n{}", route.show(), big.show()))
        },
    );

    // 1420 - 40 (IPv6) - 8 (ICMPv6) = 1372: exactly the path MTU.
    let payload = (PATH_MTU_V6 - 48).to_string();
    let fits = client(
        &world,
        &[
            "ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", "-s", &payload, "-M", "do", &server,
        ],
        Duration::from_secs(20),
    );
    checks.check(
        &format!("ping -s {payload} -M do (a {PATH_MTU_V6}-byte packet) gets all replies"),
        if fits.ok && fits.stdout.contains(" 3 received") {
            Ok(())
        } else {
            Err(fits.show())
        },
    );

    // Bulk TCP: a download from the HTTP server, an upload to a PUT handler.
    // The server's own link has MTU 1400, so its SYN-ACK would announce MSS
    // 1360 and the client's segments would fit without path MTU discovery.
    // Announce 1460, as a server on a 1500-byte link behind the same router
    // would: the client's full-size segments (1500 bytes in IPv6, 1480 in
    // IPv4 with DF) then need the translated "packet too big" to shrink.
    let advmss = run_in(
        &world,
        world.lab.server(),
        &[
            "ip",
            "-4",
            "route",
            "change",
            "default",
            "via",
            &ROUTER_V4_SERVER_SIDE.to_string(),
            "advmss",
            "1460",
        ],
        Duration::from_secs(10),
    );
    assert!(advmss.ok, "{}", advmss.show());
    let www = world.lab.dir().join("www");
    let sent = write_random_file(&www.join("bulk.bin"), BULK_BYTES, 0x7915);
    let got = world.lab.dir().join("downloaded.bin");
    let url = format!("http://[{server}]/bulk.bin");
    let download = client(
        &world,
        &[
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-o",
            got.to_str().expect("utf-8 path"),
            &url,
        ],
        Duration::from_secs(30),
    );
    checks.check(
        "4 MiB TCP download (server to client) arrives whole",
        download
            .success()
            .and_then(|()| same_bytes("download", &got, &sent)),
    );

    let uploads = world.lab.dir().join("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads directory");
    let _upload_server = start_upload_server(&world, &uploads);
    let to_send = world.lab.dir().join("to-upload.bin");
    let sent = write_random_file(&to_send, BULK_BYTES, 0x6146);
    let url = format!("http://[{server}]:{UPLOAD_PORT}/bulk.bin");
    let upload = client(
        &world,
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-H",
            "Expect:",
            "-T",
            to_send.to_str().expect("utf-8 path"),
            &url,
        ],
        Duration::from_secs(30),
    );
    checks.check(
        "4 MiB TCP upload (client to server) arrives whole",
        upload
            .success()
            .and_then(|()| same_bytes("upload", &uploads.join("bulk.bin"), &sent)),
    );
    checks.finish();
}

/// `dig` over UDP from `ns` to the DNS server at `server` for
/// `bigtxt.xlat64.test` TXT: Ok if the answer is whole (not truncated, every
/// record).
fn big_txt_answer(world: &World, ns: &str, server: &str) -> Result<(), String> {
    let at = format!("@{server}");
    let bufsize = format!("+bufsize={DNS_BUFSIZE}");
    let dig = run_in(
        world,
        ns,
        &[
            "dig",
            &at,
            &bufsize,
            "+notcp",
            "+ignore",
            "+tries=1",
            "+time=3",
            "bigtxt.xlat64.test",
            "TXT",
        ],
        Duration::from_secs(15),
    );
    let flags = dig
        .stdout
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_default();
    let truncated = flags
        .split(';')
        .nth(2)
        .unwrap_or_default()
        .split_whitespace()
        .any(|f| f == "tc");
    let missing: Vec<usize> = (0..BIG_TXT_COUNT)
        .filter(|&i| !dig.stdout.contains(&format!("\"{}\"", big_txt(i))))
        .collect();
    if dig.ok
        && !flags.is_empty()
        && !truncated
        && flags.contains(&format!("ANSWER: {BIG_TXT_COUNT},"))
        && missing.is_empty()
    {
        Ok(())
    } else {
        Err(format!(
            "flags: {flags:?}; missing records: {missing:?}\n{}",
            dig.show()
        ))
    }
}

/// `dig` over UDP from `ns` to `server` port 5353, where nothing listens:
/// Ok if it reports "connection refused" (an ICMP port unreachable came
/// back), not a time-out.
fn refused(world: &World, ns: &str, server: &str) -> Result<(), String> {
    let at = format!("@{server}");
    let dig = run_in(
        world,
        ns,
        &[
            "dig",
            &at,
            "-p",
            "5353",
            "+tries=1",
            "+timeout=5",
            "example.",
        ],
        Duration::from_secs(20),
    );
    let text = dig.text().to_lowercase();
    if text.contains("connection refused") && !text.contains("timed out") {
        Ok(())
    } else {
        Err(dig.show())
    }
}

/// One `iperf3 -u` run; Ok if at most [`MAX_UDP_LOSS_PERCENT`] of the bytes
/// sent were lost.
fn iperf_udp(world: &World, reverse: bool) -> Result<(), String> {
    let server = server6();
    let port = IPERF_PORT.to_string();
    let mut args = vec![
        "iperf3", "-c", &server, "-p", &port, "-u", "-l", "3000", "-b", "1M", "-t", "2", "--json",
    ];
    if reverse {
        args.push("-R");
    }
    let run = client(world, &args, Duration::from_secs(25));
    let json: Value = serde_json::from_str(&run.stdout)
        .map_err(|e| format!("no JSON from iperf3 ({e})\n{}", run.show()))?;
    if let Some(error) = json.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3: {error}\n{}", run.show()));
    }
    let bytes = |key: &str| {
        json.pointer(&format!("/end/{key}/bytes"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (sent, received) = (bytes("sum_sent"), bytes("sum_received"));
    let lost = if sent == 0 {
        100.0
    } else {
        100.0 * sent.saturating_sub(received) as f64 / sent as f64
    };
    if sent > 0 && lost <= MAX_UDP_LOSS_PERCENT {
        Ok(())
    } else {
        Err(format!(
            "sent {sent} bytes, received {received} ({lost:.1}% lost, at most {MAX_UDP_LOSS_PERCENT}% allowed); end.sum: {}",
            json.pointer("/end/sum").unwrap_or(&Value::Null)
        ))
    }
}

/// UDP and ICMP packets larger than the path MTU cross in both directions:
/// IPv6 fragments from the client are translated (or reassembled) into IPv4
/// and forwarded over the 1400-byte link, and the server's IPv4 fragments
/// reach the client as IPv6 fragments
/// ([RFC 7915 §4.1](https://www.rfc-editor.org/rfc/rfc7915#section-4.1),
/// [§5.1.1](https://www.rfc-editor.org/rfc/rfc7915#section-5.1.1);
/// [RFC 6146 §3.4](https://www.rfc-editor.org/rfc/rfc6146#section-3.4)
/// for fragments in the stateful NAT64). A several-kilobyte DNS answer over
/// UDP, iperf3 with 3000-byte datagrams, and a 3000-byte ping.
#[test]
fn fragmented_udp_and_icmp_cross_both_ways() {
    let Some(world) = routed_world("frag", &["dig", "iperf3", "ping"]) else {
        return;
    };
    let server = server6();
    let mut checks = Checks::new(&world);

    checks.check(
        &format!("a {BIG_TXT_COUNT}-record TXT answer (~3.7 KB, fragmented) over UDP is complete"),
        big_txt_answer(&world, world.lab.client(), &server),
    );

    let server_v4 = SERVER_V4.to_string();
    let port = IPERF_PORT.to_string();
    let iperf = world
        .lab
        .spawn_in(
            world.lab.server(),
            &["iperf3", "-s", "-B", &server_v4, "-p", &port],
        )
        .expect("start iperf3 -s");
    world
        .lab
        .wait_listening(
            world.lab.server(),
            "tcp",
            IPERF_PORT,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}; iperf3 -s said: {}", iperf.log()));
    checks.check(
        "iperf3 -u -l 3000, client to server: no loss",
        iperf_udp(&world, false),
    );
    checks.check(
        "iperf3 -u -l 3000 -R, server to client: no loss",
        iperf_udp(&world, true),
    );

    let ping = client(
        &world,
        &[
            "ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", "-s", "3000", &server,
        ],
        Duration::from_secs(20),
    );
    checks.check(
        "ping -s 3000 (fragmented both ways) gets all replies",
        if ping.ok && ping.stdout.contains(" 3 received") {
            Ok(())
        } else {
            Err(ping.show())
        },
    );
    checks.finish();
}

/// The server's ICMPv4 port unreachable for a UDP datagram of the client
/// reaches the client as ICMPv6 port unreachable
/// ([RFC 7915 §4.2](https://www.rfc-editor.org/rfc/rfc7915#section-4.2),
/// Type 3 Code 3 -> Type 1 Code 4; the embedded packet translated back per
/// §4.3), so the client's connected socket gets ECONNREFUSED at once instead
/// of timing out.
#[test]
fn icmp_port_unreachable_reaches_the_client_as_connection_refused() {
    let Some(world) = routed_world("unreach", &["dig"]) else {
        return;
    };
    let mut checks = Checks::new(&world);
    checks.check(
        "dig to a closed UDP port says the connection was refused, not timed out",
        refused(&world, world.lab.client(), &server6()),
    );
    checks.finish();
}

/// Whether `ping` printed `From <from> ... Time exceeded` (IPv6) or
/// `... Time to live exceeded` (IPv4).
fn time_exceeded_from(run: &Run, from: IpAddr) -> Result<(), String> {
    let prefix = format!("From {from} ");
    if run.stdout.lines().any(|l| {
        l.starts_with(&prefix)
            && (l.contains("Time exceeded") || l.contains("Time to live exceeded"))
    }) {
        Ok(())
    } else {
        Err(run.show())
    }
}

/// Hop limit expiry: with hop limit 1 the gateway itself answers "time
/// exceeded" (it is the first hop); with hop limit 2 the packet leaves the
/// translator with TTL 1 (the gateway counts as one hop, [RFC 7915
/// §5.1](https://www.rfc-editor.org/rfc/rfc7915#section-5.1)), the router
/// answers with ICMPv4 time exceeded, and the client gets ICMPv6 time
/// exceeded from the router's address under the prefix (§4.2, §4.3).
#[test]
fn hop_limit_expiry_is_reported_by_the_gateway_then_the_router() {
    let Some(world) = routed_world("ttl", &["ping"]) else {
        return;
    };
    let server = server6();
    let mut checks = Checks::new(&world);
    for (hops, from, who) in [
        ("1", IpAddr::from(GATEWAY_V6), "the gateway"),
        ("2", router6().into(), "the router (prefix + IPv4)"),
    ] {
        let run = client(
            &world,
            &["ping", "-6", "-c", "1", "-W", "2", "-t", hops, &server],
            Duration::from_secs(10),
        );
        checks.check(
            &format!("ping -t {hops}: time exceeded from {who}, {from}"),
            time_exceeded_from(&run, from),
        );
    }
    checks.finish();
}

/// The routed lab itself: if this fails, the other failures here say
/// nothing about RFC 7915. Over plain IPv4 from the gateway namespace (no
/// translation): the routes (gateway -> router -> server, pool4 back to the
/// gateway's TUN device), the 1400-byte link, the tools' view of the path
/// (traceroute, tracepath with path MTU 1400, time exceeded from the router,
/// port unreachable, the big fragmented DNS answer). Then ordinary NAT64
/// traffic through xlat64 (name resolution, HTTP, a small ping), and all
/// four namespaces go away with the lab.
#[test]
fn routed_lab_forwards_ipv4_and_carries_plain_nat64_traffic() {
    let Some(world) = routed_world(
        "routed",
        &["ping", "curl", "dig", "traceroute", "tracepath"],
    ) else {
        return;
    };
    let router = world.lab.router().expect("router namespace").to_string();
    let gateway = world.lab.gateway().to_string();
    let names = [
        world.lab.client().to_string(),
        gateway.clone(),
        router.clone(),
        world.lab.server().to_string(),
    ];
    let server_v4 = SERVER_V4.to_string();
    let pool4 = POOL4.to_string();
    let mut checks = Checks::new(&world);
    let describe = world.lab.describe();
    checks.check(
        "describe() names the router",
        if describe.contains(&router) && describe.contains(&ROUTER_V4_GATEWAY_SIDE.to_string()) {
            Ok(())
        } else {
            Err(describe)
        },
    );

    let wait = Duration::from_secs(10);
    let route_has = |ns: &str, to: &str, want: String| {
        let run = run_in(&world, ns, &["ip", "-4", "route", "get", to], wait);
        if run.ok && run.stdout.contains(&want) {
            Ok(())
        } else {
            Err(format!("no `{want}`: {}", run.show()))
        }
    };
    checks.check(
        "gateway routes the server via the router",
        route_has(
            &gateway,
            &server_v4,
            format!("via {ROUTER_V4_GATEWAY_SIDE}"),
        ),
    );
    checks.check(
        "router routes pool4 via the gateway",
        route_has(&router, &pool4, format!("via {GATEWAY_V4_ROUTED}")),
    );
    checks.check(
        "gateway routes pool4 to xlat64's TUN device",
        route_has(&gateway, &pool4, format!("dev {}", lab::TUN)),
    );
    checks.check(
        "gateway pings the server over IPv4",
        run_in(
            &world,
            &gateway,
            &["ping", "-4", "-c", "1", "-W", "2", &server_v4],
            wait,
        )
        .success(),
    );
    // The router's link to the server: 1400 bytes pass with DF, 1401 do not.
    let max = (ROUTED_LINK_MTU - 28).to_string();
    checks.check(
        "a 1400-byte IPv4 packet with DF crosses the router's link",
        run_in(
            &world,
            &router,
            &[
                "ping", "-4", "-c", "1", "-W", "2", "-M", "do", "-s", &max, &server_v4,
            ],
            wait,
        )
        .success(),
    );
    let over = (ROUTED_LINK_MTU - 27).to_string();
    let too_big = run_in(
        &world,
        &router,
        &[
            "ping", "-4", "-c", "1", "-W", "2", "-M", "do", "-s", &over, &server_v4,
        ],
        wait,
    );
    checks.check(
        "a 1401-byte IPv4 packet with DF does not",
        if too_big.ok {
            Err(too_big.show())
        } else {
            Ok(())
        },
    );

    let expected: Vec<(u32, Vec<IpAddr>)> = vec![
        (1, vec![ROUTER_V4_GATEWAY_SIDE.into()]),
        (2, vec![SERVER_V4.into()]),
    ];
    check_traces(
        &mut checks,
        &gateway,
        "-4",
        SERVER_V4.into(),
        &expected,
        ROUTED_LINK_MTU,
    );
    let ttl1 = run_in(
        &world,
        &gateway,
        &["ping", "-4", "-c", "1", "-W", "2", "-t", "1", &server_v4],
        wait,
    );
    checks.check(
        "ping -4 -t 1 from the gateway: time exceeded from the router",
        time_exceeded_from(&ttl1, ROUTER_V4_GATEWAY_SIDE.into()),
    );
    checks.check(
        "dig over IPv4 to a closed port: connection refused",
        refused(&world, &gateway, &server_v4),
    );
    checks.check(
        "the big TXT answer over IPv4 UDP (fragmented by the server) is complete",
        big_txt_answer(&world, &gateway, &server_v4),
    );

    // Through xlat64: DNS64 (its upstream is NSD behind the router), HTTP, ping.
    let page = client(
        &world,
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://v4only.xlat64.test/",
        ],
        wait,
    );
    checks.check(
        "curl by name through DNS64 and NAT64 fetches the page",
        page.success().and_then(|()| {
            if page.stdout == common::INDEX_HTML {
                Ok(())
            } else {
                Err(page.show())
            }
        }),
    );
    checks.check(
        "a small ping through NAT64 gets its replies",
        client(
            &world,
            &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &server6()],
            wait,
        )
        .success(),
    );
    checks.finish();

    drop(world);
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
}

/// A UDP listener on 0.0.0.0:`port` in namespace `ns` that prints one line
/// per datagram it receives.
fn udp_listener(world: &World, ns: &str, port: u16) -> LabProcess {
    let script = format!(
        "import socket, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', {port}))\n\
         print('listening', flush=True)\n\
         while True:\n\
         \x20   data, peer = s.recvfrom(2048)\n\
         \x20   print('got', peer, flush=True)\n"
    );
    let listener = world
        .lab
        .spawn_in(ns, &["python3", "-c", &script])
        .expect("start the UDP listener");
    lab::wait_until(Duration::from_secs(10), || {
        Ok(listener.log().contains("listening"))
    })
    .expect("UDP listener did not start");
    listener
}

/// Sends one UDP datagram from the client, from `src` to `dst`:`port`.
fn send_udp(world: &World, src: Ipv6Addr, dst: Ipv6Addr, port: u16) -> Run {
    let bind = src;
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.bind(('{bind}', 0))\n\
         s.sendto(b'xlat64 must not translate this', ('{dst}', {port}))\n"
    );
    client(world, &["python3", "-c", &script], Duration::from_secs(10))
}

/// Addresses that must never be translated, under a network-specific prefix
/// too: an IPv6 source inside the prefix (spoofed or looped: translating it
/// would make the gateway a reflector towards any IPv4 address), and IPv4
/// destinations that are the gateway itself (its address, its network's
/// directed broadcast), loopback, "this network" or the limited broadcast.
/// None reaches a listener on 0.0.0.0 in the gateway or the server; each is
/// counted under its own reason.
#[test]
fn addresses_that_must_never_be_translated_are_dropped_and_counted() {
    let Some(world) = routed_world("never", &["python3"]) else {
        return;
    };
    const PORT: u16 = 9999;
    let mut gateway_listener = udp_listener(&world, world.lab.gateway(), PORT);
    let mut server_listener = udp_listener(&world, world.lab.server(), PORT);
    let spoofed = embed_v4(std::net::Ipv4Addr::new(192, 0, 2, 77));
    let add = world.lab.run_in_timeout(
        world.lab.client(),
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{spoofed}/128"),
            "dev",
            "c0",
            "nodad",
        ],
        Duration::from_secs(10),
    );
    assert!(
        add.is_ok_and(|o| o.status.success()),
        "ip addr add {spoofed}"
    );

    let mut checks = Checks::new(&world);
    let sent = send_udp(&world, spoofed, server_via_nat64(), PORT);
    checks.check("send from a source inside the prefix", sent.success());
    let gateway_net_broadcast = std::net::Ipv4Addr::new(203, 0, 113, 255);
    for dst in [
        GATEWAY_V4_ROUTED,
        gateway_net_broadcast,
        std::net::Ipv4Addr::LOCALHOST,
        std::net::Ipv4Addr::new(0, 0, 0, 1),
        std::net::Ipv4Addr::BROADCAST,
    ] {
        // From the client's own address: the kernel would otherwise pick the
        // spoofed one, which shares the prefix with the destination.
        let sent = send_udp(&world, lab::CLIENT_V6, embed_v4(dst), PORT);
        checks.check(&format!("send to prefix + {dst}"), sent.success());
    }
    // Give the packets time to cross, then look.
    std::thread::sleep(Duration::from_millis(500));
    for (name, at_least) in [
        ("drop_source_in_prefix", 1),
        ("drop_gateway_ipv4_destination", 2),
        ("drop_special_ipv4_destination", 3),
    ] {
        let n = world.counter(name);
        checks.check(
            &format!("{name} counts the packets ({n} >= {at_least})"),
            if n >= at_least {
                Ok(())
            } else {
                Err(format!("{name} = {n}"))
            },
        );
    }
    let _ = gateway_listener.stop();
    let _ = server_listener.stop();
    for (who, listener) in [("gateway", &gateway_listener), ("server", &server_listener)] {
        let log = listener.log();
        checks.check(
            &format!("the {who}'s listener on 0.0.0.0:{PORT} received nothing"),
            if log.contains("got") {
                Err(log)
            } else {
                Ok(())
            },
        );
    }
    checks.finish();
}
