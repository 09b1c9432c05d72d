//! A DNS64 lab for the RFC 6147 end-to-end and differential tests: NSD with
//! the test zones in the server namespace, any number of DNS64-only xlat64
//! instances (and Unbound with its dns64 module) in the gateway namespace,
//! and `dig` in the client namespace.
//!
//! ```text
//!  client 2001:db8:1::2 (also ::3, ::4)   gateway: xlat64 on 2001:db8:1::11.., unbound on ::53
//!                                          server: NSD 198.51.100.2, broken authoritative 198.51.100.3
//! ```
//!
//! Included with `#[path]` by the tests that use it (not through
//! `common/mod.rs`, which other tests share).

#![allow(dead_code)] // each test binary uses a different part of this module

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xlat64_lab::{self as lab, Lab, LabProcess, SERVER_V4};

/// The NAT64 prefix of every instance (a network-specific prefix: the lab's
/// IPv4 addresses are documentation addresses, which the well-known prefix
/// must not carry).
pub const PREFIX: &str = "2001:db8:64::/96";
/// A second prefix, for `[[dns64.prefixes]]`.
pub const PREFIX2: &str = "2001:db8:46::/96";
/// Client addresses: in `allow` and `synthesize-for`; in `allow` only; in neither.
pub const CLIENT_SYNTH: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const CLIENT_PLAIN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
pub const CLIENT_STRANGER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 4);
/// Where Unbound listens (gateway namespace).
pub const UNBOUND_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x53);
/// A broken authoritative server (see [`BrokenAuthoritative`]).
pub const BROKEN_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
/// An address in the server's subnet where nothing answers (no host: ARP
/// fails, queries time out).
pub const DEAD_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 4);
/// The A record the broken authoritative server gives every name.
pub const BROKEN_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

/// SOA MINIMUM (and so the negative TTL NSD sends) of the test zones.
pub const NEG_TTL: u32 = 30;
/// Default TTL of the test zones' records.
pub const ZONE_TTL: u32 = 300;
/// TTL of `short.xlat64.test` A, below [`NEG_TTL`].
pub const SHORT_TTL: u32 = 5;
/// Number of A records of `big.xlat64.test`: 80 synthesized AAAA records
/// take 80 * 28 bytes, well over the 1232-byte UDP limit.
pub const BIG_COUNT: u8 = 80;

/// `198.51.100.x`
pub fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, last)
}

/// `v4` under the /96 `prefix` (RFC 6052 §2.2), as text.
pub fn embed(prefix: &str, v4: Ipv4Addr) -> String {
    let base: Ipv6Addr = prefix
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("prefix");
    let mut o = base.octets();
    o[12..].copy_from_slice(&v4.octets());
    Ipv6Addr::from(o).to_string()
}

/// The ip6.arpa name of `addr`.
pub fn ip6_arpa(addr: &str) -> String {
    let a: Ipv6Addr = addr.parse().expect("IPv6 address");
    let mut s = String::new();
    for byte in a.octets().iter().rev() {
        let _ = write!(s, "{:x}.{:x}.", byte & 0xf, byte >> 4);
    }
    s + "ip6.arpa."
}

fn zone_xlat64_test() -> String {
    let mut z = format!(
        "$ORIGIN xlat64.test.\n$TTL {ZONE_TTL}\n\
         @ IN SOA ns.xlat64.test. hostmaster.xlat64.test. 1 3600 600 86400 {NEG_TTL}\n\
         @ IN NS ns\n\
         ns IN A {SERVER_V4}\n\
         v4only IN A 198.51.100.10\n\
         dual IN A 198.51.100.10\n\
         dual IN AAAA 2001:db8:2::10\n\
         cname1 IN CNAME cname2\n\
         cname2 IN CNAME v4only\n\
         txtonly IN TXT \"no address here\"\n\
         short {SHORT_TTL} IN A 198.51.100.14\n\
         mapped IN AAAA ::ffff:198.51.100.12\n\
         mapped IN A 198.51.100.12\n\
         mixedaaaa IN AAAA ::ffff:198.51.100.16\n\
         mixedaaaa IN AAAA 2001:db8:2::16\n\
         mixedaaaa IN A 198.51.100.16\n\
         multi IN A 198.51.100.11\n\
         multi IN A 203.0.113.5\n\
         private IN A 10.1.2.3\n\
         mixed IN A 10.1.2.4\n\
         mixed IN A 198.51.100.15\n\
         outside IN A 192.0.2.99\n"
    );
    for i in 0..BIG_COUNT {
        let _ = writeln!(z, "big IN A 198.51.100.{}", 100 + u16::from(i));
    }
    z
}

fn zone_reverse() -> String {
    format!(
        "$ORIGIN 100.51.198.in-addr.arpa.\n$TTL {ZONE_TTL}\n\
         @ IN SOA ns.xlat64.test. hostmaster.xlat64.test. 1 3600 600 86400 {NEG_TTL}\n\
         @ IN NS ns.xlat64.test.\n\
         2 IN PTR ns.xlat64.test.\n\
         10 IN PTR v4only.xlat64.test.\n"
    )
}

fn zone_reverse2() -> String {
    format!(
        "$ORIGIN 113.0.203.in-addr.arpa.\n$TTL {ZONE_TTL}\n\
         @ IN SOA ns.xlat64.test. hostmaster.xlat64.test. 1 3600 600 86400 {NEG_TTL}\n\
         @ IN NS ns.xlat64.test.\n\
         5 IN PTR multi.xlat64.test.\n"
    )
}

/// The real ipv4only.arpa zone's content (RFC 7050 §8.2, RFC 8880).
fn zone_ipv4only() -> String {
    format!(
        "$ORIGIN ipv4only.arpa.\n$TTL {ZONE_TTL}\n\
         @ IN SOA ns.xlat64.test. hostmaster.xlat64.test. 1 3600 600 86400 {NEG_TTL}\n\
         @ IN NS ns.xlat64.test.\n\
         @ IN A 192.0.0.170\n\
         @ IN A 192.0.0.171\n"
    )
}

/// Zones NSD serves; `servfail.test` is configured without a zone file, so
/// NSD answers SERVFAIL for every name in it ("zone configured but not
/// loaded", as for an expired secondary): the real way an authoritative
/// server fails a whole zone.
pub fn zones() -> Vec<(&'static str, Option<String>)> {
    vec![
        ("xlat64.test", Some(zone_xlat64_test())),
        ("100.51.198.in-addr.arpa", Some(zone_reverse())),
        ("113.0.203.in-addr.arpa", Some(zone_reverse2())),
        ("ipv4only.arpa", Some(zone_ipv4only())),
        ("servfail.test", None),
    ]
}

/// Starts NSD on `addr`:53 in namespace `ns` serving `zones` (name, zone
/// text; `None`: configured, file missing -> SERVFAIL).
pub fn start_nsd(
    lab: &Lab,
    ns: &str,
    addr: Ipv4Addr,
    zones: &[(&str, Option<String>)],
) -> io::Result<LabProcess> {
    let dir = lab.dir().join("nsd-rfc6147");
    std::fs::create_dir_all(&dir)?;
    let d = dir.display();
    let mut conf = format!(
        "server:\n\tip-address: {addr}\n\tport: 53\n\tdo-ip6: no\n\tserver-count: 1\n\
         \tusername: \"\"\n\tchroot: \"\"\n\tzonesdir: \"{d}\"\n\tdatabase: \"\"\n\
         \tzonelistfile: \"{d}/zone.list\"\n\tpidfile: \"{d}/nsd.pid\"\n\
         \txfrdfile: \"{d}/xfrd.state\"\n\txfrdir: \"{d}\"\n\tlogfile: \"{d}/nsd.log\"\n\
         \tverbosity: 1\nremote-control:\n\tcontrol-enable: no\n"
    );
    for (name, text) in zones {
        let file = dir.join(format!("{name}.zone"));
        if let Some(text) = text {
            std::fs::write(&file, text)?;
        }
        let _ = write!(
            conf,
            "zone:\n\tname: \"{name}\"\n\tzonefile: \"{}\"\n",
            file.display()
        );
    }
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf)?;
    let conf_arg = conf_path.display().to_string();
    let nsd = lab.spawn_in(ns, &["nsd", "-d", "-c", &conf_arg])?;
    lab.wait_listening(ns, "udp", 53, Duration::from_secs(10))
        .and_then(|()| lab.wait_listening(ns, "tcp", 53, Duration::from_secs(10)))
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("nsd.log")).unwrap_or_default();
            io::Error::other(format!("{e}; nsd said: {}{log}", nsd.log()))
        })?;
    Ok(nsd)
}

/// An authoritative server of the kind RFC 4074 §4 describes and RFC 6147
/// §5.1.2 has in mind: it answers A queries (every name: [`BROKEN_A`], TTL
/// 60) but AAAA queries for names starting `servfail` get SERVFAIL and for
/// names starting `drop` get no answer at all. Other types: NODATA. UDP only.
/// Its answers carry AD=1, as from a validating resolver, so that tests can
/// see AD cleared on synthesized data (RFC 6147 §5.5). A queries for names
/// starting `ecs` are answered by EDNS Client Subnet (RFC 7871): from
/// [`ecs_a`] of the query's subnet, the option echoed with its scope set to
/// the source prefix; without the option, [`BROKEN_A`]. Stops when dropped.
pub struct BrokenAuthoritative {
    _server: crate::common::UdpResponder,
    /// Queries that carried an EDNS Client Subnet option.
    pub ecs_seen: Arc<AtomicU64>,
}

/// The A record [`BrokenAuthoritative`] gives a client subnet: 198.51.100.x
/// with x = 30 + the subnet's third 16-bit group (2001:db8:a::/56 gets .40).
pub fn ecs_a(subnet: std::net::IpAddr) -> Ipv4Addr {
    match subnet {
        std::net::IpAddr::V6(a) => v4(30 + (a.segments()[2] & 0x3f) as u8),
        std::net::IpAddr::V4(_) => v4(29),
    }
}

impl BrokenAuthoritative {
    pub fn start(lab: &Lab, ns: &str, addr: Ipv4Addr) -> io::Result<Self> {
        let socket = lab.in_netns(ns, || UdpSocket::bind((addr, 53)))?;
        let ecs_seen = Arc::new(AtomicU64::new(0));
        let seen = ecs_seen.clone();
        let server = crate::common::UdpResponder::start(socket, move |query| {
            let q = query.queries()[0].clone();
            let first_label = q.name().iter().next().unwrap_or_default().to_vec();
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_recursion_desired(query.recursion_desired())
                .set_authoritative(true)
                .set_authentic_data(true)
                .add_query(q.clone());
            let subnet =
                query
                    .extensions()
                    .as_ref()
                    .and_then(|e| match e.options().get(EdnsCode::Subnet) {
                        Some(EdnsOption::Subnet(s)) => Some(*s),
                        _ => None,
                    });
            if subnet.is_some() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            match q.query_type() {
                RecordType::A if first_label.starts_with(b"ecs") => {
                    let addr = subnet.as_ref().map_or(BROKEN_A, |s| ecs_a(s.addr()));
                    reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(addr))));
                    if let Some(mut s) = subnet {
                        s.set_scope_prefix(s.source_prefix());
                        let mut edns = Edns::new();
                        edns.options_mut().insert(EdnsOption::Subnet(s));
                        reply.set_edns(edns);
                    }
                }
                RecordType::A => {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(A(BROKEN_A)),
                    ));
                }
                RecordType::AAAA if first_label.starts_with(b"drop") => return None,
                RecordType::AAAA if first_label.starts_with(b"servfail") => {
                    reply
                        .set_authoritative(false)
                        .set_response_code(ResponseCode::ServFail);
                }
                _ => {}
            }
            Some(reply)
        })?;
        Ok(BrokenAuthoritative {
            _server: server,
            ecs_seen,
        })
    }
}

/// One `xlat64 run` with a DNS64-only configuration in the gateway namespace.
pub struct Dns64Instance {
    pub listen: Ipv6Addr,
    pub config: PathBuf,
    pub process: LabProcess,
}

impl Dns64Instance {
    /// `xlat64 stats --json`.
    pub fn stats(&self) -> Value {
        let mut cmd = std::process::Command::new(crate::common::exe());
        cmd.args(["stats", "--json", "--config"]).arg(&self.config);
        let out = lab::run_with_timeout(&mut cmd, Duration::from_secs(15)).expect("xlat64 stats");
        assert!(
            out.status.success(),
            "xlat64 stats failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.process.log()
        );
        serde_json::from_slice(&out.stdout).expect("stats --json prints JSON")
    }

    /// One counter.
    pub fn counter(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("stats --json has no integer `{name}`: {stats}"))
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The lab, NSD, and what each test starts on top. Fields drop in order:
/// servers first, the namespaces last.
pub struct Dns64World {
    pub instances: Vec<Dns64Instance>,
    pub unbound: Option<LabProcess>,
    pub broken: Option<BrokenAuthoritative>,
    pub nsd: LabProcess,
    pub lab: Lab,
}

/// An instance's configuration: `[dns64]` with `listen`, then the shared
/// defaults for `prefix`, `upstream` and `allow` unless `keys` sets them,
/// then `keys` (which may end with `[[dns64.prefixes]]` tables, or a
/// `[runtime]` table; without one, `io-threads = 1`).
pub fn dns64_config(listen: Ipv6Addr, socket: &std::path::Path, keys: &str) -> String {
    let mut c = format!("[dns64]\nlisten = [\"[{listen}]:53\"]\n");
    let top = keys.split("[[").next().unwrap_or("");
    let sets = |key: &str| top.lines().any(|l| l.trim_start().starts_with(key));
    if !sets("prefix =") {
        let _ = writeln!(c, "prefix = \"{PREFIX}\"");
    }
    if !sets("upstream =") {
        let _ = writeln!(c, "upstream = [\"{SERVER_V4}:53\"]");
    }
    if !sets("allow =") {
        c.push_str("allow = [\"2001:db8::/32\"]\n");
    }
    c.push_str(keys);
    let _ = write!(c, "\n[control]\nsocket = \"{}\"\n", socket.display());
    if !keys.contains("[runtime]") {
        c.push_str("\n[runtime]\nio-threads = 1\n");
    }
    c
}

impl Dns64World {
    /// Lab with the extra addresses, NSD with [`zones`]; `None` when the
    /// machine cannot run it (see [`crate::common::can_run`]).
    pub fn new(tag: &str, tools: &[&str]) -> Option<Dns64World> {
        let mut needed = vec!["nsd", "dig", "ss"];
        needed.extend_from_slice(tools);
        if !crate::common::can_run(tag, &needed) {
            return None;
        }
        let lab = Lab::create(tag).expect("build the lab");
        let run = |ns: &str, args: &[&str]| {
            let mut all = vec!["ip", "addr", "add"];
            all.extend_from_slice(args);
            let out = lab.run_in(ns, &all).expect("ip addr add");
            assert!(
                out.status.success(),
                "ip {all:?} in {ns}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for c in [CLIENT_PLAIN, CLIENT_STRANGER] {
            run(lab.client(), &[&format!("{c}/64"), "dev", "c0", "nodad"]);
        }
        run(
            lab.gateway(),
            &[&format!("{UNBOUND_V6}/64"), "dev", "g0", "nodad"],
        );
        for i in 0x11..0x18u16 {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i);
            run(lab.gateway(), &[&format!("{a}/64"), "dev", "g0", "nodad"]);
        }
        run(lab.server(), &[&format!("{BROKEN_V4}/24"), "dev", "s0"]);
        let nsd = start_nsd(&lab, lab.server(), SERVER_V4, &zones()).expect("start nsd");
        Some(Dns64World {
            instances: Vec::new(),
            unbound: None,
            broken: None,
            nsd,
            lab,
        })
    }

    /// Starts the broken authoritative server on [`BROKEN_V4`].
    pub fn start_broken(&mut self) {
        self.broken = Some(
            BrokenAuthoritative::start(&self.lab, self.lab.server(), BROKEN_V4)
                .expect("start the broken authoritative server"),
        );
    }

    /// Starts an xlat64 DNS64-only instance with `keys` added to `[dns64]`
    /// and returns its index; it listens on 2001:db8:1::11, ::12, ...
    pub fn start_xlat64(&mut self, keys: &str) -> usize {
        let n = self.instances.len();
        let listen = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11 + n as u16);
        let socket = self.lab.dir().join(format!("dns64-{n}.sock"));
        let config = self
            .lab
            .write_file(
                &format!("dns64-{n}.toml"),
                &dns64_config(listen, &socket, keys),
            )
            .expect("write config");
        let exe = crate::common::exe();
        let args = [
            exe.display().to_string(),
            "run".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        let mut process = self
            .lab
            .spawn_in(self.lab.gateway(), &args)
            .expect("start xlat64");
        let filter = format!("src [{listen}]:53");
        let ready = lab::wait_until(Duration::from_secs(10), || {
            if let Ok(Some(status)) = process.try_wait() {
                return Err(io::Error::other(format!(
                    "exited with {}",
                    lab::describe_status(status)
                )));
            }
            let out = self
                .lab
                .run_in(self.lab.gateway(), &["ss", "-Hlnu", &filter])?;
            Ok(socket.exists() && out.status.success() && !out.stdout.is_empty())
        });
        if let Err(e) = ready {
            panic!(
                "xlat64 dns64-{n} did not start: {e}; its output:\n{}",
                process.log()
            );
        }
        self.instances.push(Dns64Instance {
            listen,
            config,
            process,
        });
        n
    }

    /// Starts Unbound 1.x (`dns64 iterator`, prefix [`PREFIX`], one thread)
    /// on [`UNBOUND_V6`]:53, with stub zones pointing at NSD for every test
    /// zone and at the broken server for `broken.test`; the root is stubbed
    /// to NSD too, so nothing is ever looked up outside the lab. No trust
    /// anchor, no validator, no remote control, nothing from the network.
    pub fn start_unbound(&mut self) {
        let dir = self.lab.dir().join("unbound");
        std::fs::create_dir_all(&dir).expect("unbound dir");
        let conf = unbound_config(&dir, UNBOUND_V6, PREFIX, 1, &[("broken.test", BROKEN_V4)]);
        let path = dir.join("unbound.conf");
        std::fs::write(&path, conf).expect("write unbound.conf");
        let path_arg = path.display().to_string();
        let process = self
            .lab
            .spawn_in(self.lab.gateway(), &["unbound", "-d", "-c", &path_arg])
            .expect("start unbound");
        let filter = format!("src [{UNBOUND_V6}]:53");
        if let Err(e) = lab::wait_until(Duration::from_secs(10), || {
            let out = self
                .lab
                .run_in(self.lab.gateway(), &["ss", "-Hlnu", &filter])?;
            Ok(out.status.success() && !out.stdout.is_empty())
        }) {
            panic!("unbound did not start: {e}; its output:\n{}", process.log());
        }
        self.unbound = Some(process);
    }

    /// `dig @server <args>` from the client namespace (source `from`).
    pub fn dig(&self, server: Ipv6Addr, from: Ipv6Addr, args: &[&str]) -> Dig {
        let from = from.to_string();
        let mut all = vec!["-b", from.as_str()];
        all.extend_from_slice(args);
        self.dig_in(self.lab.client(), &server.to_string(), &all)
    }

    /// `dig @server <args>` in namespace `ns`.
    pub fn dig_in(&self, ns: &str, server: &str, args: &[&str]) -> Dig {
        let at = format!("@{server}");
        let mut all = vec![
            "dig",
            "+time=3",
            "+tries=1",
            &at,
            "+noall",
            "+comments",
            "+answer",
            "+authority",
        ];
        all.extend_from_slice(args);
        let out = self
            .lab
            .run_in(ns, &all)
            .unwrap_or_else(|e| panic!("{all:?}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{all:?} failed ({}):\n{text}{}",
            lab::describe_status(out.status),
            String::from_utf8_lossy(&out.stderr)
        );
        Dig::parse(&text).unwrap_or_else(|| panic!("{all:?}: cannot read dig's output:\n{text}"))
    }

    /// dig to instance `i` from [`CLIENT_SYNTH`].
    pub fn ask(&self, i: usize, args: &[&str]) -> Dig {
        self.dig(self.instances[i].listen, CLIENT_SYNTH, args)
    }
}

/// The Unbound configuration for `listen` with the dns64 module.
pub fn unbound_config(
    dir: &std::path::Path,
    listen: Ipv6Addr,
    prefix: &str,
    threads: u32,
    extra_stubs: &[(&str, Ipv4Addr)],
) -> String {
    let mut c = format!(
        "server:\n\tinterface: {listen}\n\tport: 53\n\tnum-threads: {threads}\n\
         \tdo-daemonize: no\n\tuse-syslog: no\n\tlogfile: \"\"\n\tusername: \"\"\n\
         \tchroot: \"\"\n\tdirectory: \"{d}\"\n\tpidfile: \"\"\n\tverbosity: 0\n\
         \taccess-control: 2001:db8::/32 allow\n\
         \tmodule-config: \"dns64 iterator\"\n\tdns64-prefix: {prefix}\n\
         \tdo-not-query-localhost: no\n\tqname-minimisation: no\n\
         \ttarget-fetch-policy: \"0 0 0 0 0\"\n\
         \tlocal-zone: \"test.\" nodefault\n\
         \tlocal-zone: \"arpa.\" nodefault\n\
         \tlocal-zone: \"100.51.198.in-addr.arpa.\" nodefault\n\
         \tlocal-zone: \"113.0.203.in-addr.arpa.\" nodefault\n\
         \tlocal-zone: \"8.b.d.0.1.0.0.2.ip6.arpa.\" nodefault\n\
         remote-control:\n\tcontrol-enable: no\n",
        d = dir.display()
    );
    let nsd_zones = zones();
    let mut stubs: Vec<(&str, Ipv4Addr)> = nsd_zones.iter().map(|(z, _)| (*z, SERVER_V4)).collect();
    stubs.push((".", SERVER_V4));
    stubs.extend_from_slice(extra_stubs);
    for (zone, addr) in stubs {
        let _ = write!(c, "stub-zone:\n\tname: \"{zone}\"\n\tstub-addr: {addr}\n");
    }
    c
}

/// The parts of a `dig +noall +comments +answer +authority` run the tests
/// check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dig {
    pub status: String,
    pub flags: BTreeSet<String>,
    /// `flags:` of the EDNS pseudo-section (`do`), if an OPT came back.
    pub edns_flags: Option<BTreeSet<String>>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub text: String,
}

/// One resource record as dig prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub rdata: String,
}

impl Rr {
    /// `name type rdata` without the TTL.
    pub fn key(&self) -> String {
        format!("{} {} {}", self.name, self.rtype, self.rdata)
    }
}

impl Dig {
    pub fn parse(text: &str) -> Option<Dig> {
        let status = text
            .split("status: ")
            .nth(1)?
            .split(',')
            .next()?
            .to_string();
        let flags = text
            .split(";; flags: ")
            .nth(1)?
            .split(';')
            .next()?
            .split_whitespace()
            .map(String::from)
            .collect();
        let edns_flags = text.split("; EDNS: version: 0, flags:").nth(1).map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        });
        let mut answer = Vec::new();
        let mut authority = Vec::new();
        let mut section = "";
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(";; ") {
                if rest.ends_with("SECTION:") {
                    section = if rest.starts_with("ANSWER") {
                        "answer"
                    } else if rest.starts_with("AUTHORITY") {
                        "authority"
                    } else {
                        ""
                    };
                }
                continue;
            }
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let rr = Rr {
                name: f[0].to_ascii_lowercase(),
                ttl: f[1].parse().ok()?,
                rtype: f[3].to_string(),
                rdata: f[4..].join(" ").to_ascii_lowercase(),
            };
            match section {
                "answer" => answer.push(rr),
                "authority" => authority.push(rr),
                _ => {}
            }
        }
        Some(Dig {
            status,
            flags,
            edns_flags,
            answer,
            authority,
            text: text.to_string(),
        })
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// Sorted rdata of the answer records of `rtype`.
    pub fn rdata(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.rdata.clone())
            .collect();
        v.sort();
        v
    }

    /// The answer section as a sorted set of `name type rdata`.
    pub fn answer_set(&self) -> BTreeSet<String> {
        self.answer.iter().map(Rr::key).collect()
    }

    /// TTLs of the answer records of `rtype`.
    pub fn ttls(&self, rtype: &str) -> BTreeSet<u32> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.ttl)
            .collect()
    }
}
