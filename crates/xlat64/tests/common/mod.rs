//! Shared set-up of the end-to-end tests: prerequisites, and a lab with real
//! servers (NSD, python3 http.server) in the server namespace.
//!
//! The tests need root, iproute2, /dev/net/tun and the tools they call. Where
//! something is missing they print why and pass without running, except when
//! `CI=true`: there a missing prerequisite fails the test.

#![allow(dead_code)] // each test binary uses a different part of this module

use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use xlat64_lab::{self as lab, Gateway, Lab, LabOptions, LabProcess, SERVER_V4};

/// The xlat64 binary under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xlat64"))
}

/// The page the server's HTTP server serves.
pub const INDEX_HTML: &str =
    "<!doctype html>\n<title>xlat64 e2e</title>\n<p>hello from the IPv4-only server</p>\n";

/// The SOA minimum of the test zone (negative-caching TTL).
pub const SOA_MINIMUM: u32 = 300;
/// The TTL of the test zone's A and AAAA records.
pub const RECORD_TTL: u32 = 3600;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(tool).is_file())
}

/// Whether this machine can run a test needing `tools`. Prints why not, or
/// panics under `CI=true`.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: plain syscall without arguments.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    for tool in ["ip"].iter().chain(tools) {
        if !on_path(tool) {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: needs {}", missing.join(", "));
    if in_ci() {
        panic!("{why} (CI=true: end-to-end tests must run, see .ci/run)");
    }
    eprintln!("SKIPPED {why}");
    false
}

/// Lab + NSD + HTTP server + xlat64 gateway. Fields drop in order: the
/// gateway and servers are killed before the lab removes the namespaces.
pub struct World {
    pub gateway: Gateway,
    pub nsd: LabProcess,
    pub http: LabProcess,
    pub lab: Lab,
}

/// Additions to what [`start_nsd`] serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct NsdExtra<'a> {
    /// Zone file lines appended to `xlat64.test` (relative names, the
    /// zone's default TTL).
    pub records: &'a str,
    /// Lines appended to NSD's `server:` clause, e.g. `ipv4-edns-size: 4096`.
    pub server: &'a str,
}

/// Starts NSD serving `xlat64.test` on 198.51.100.2:53 in the server namespace.
pub fn start_nsd(lab: &Lab) -> io::Result<LabProcess> {
    start_nsd_with(lab, NsdExtra::default())
}

/// [`start_nsd`] with `extra` records and server options.
pub fn start_nsd_with(lab: &Lab, extra: NsdExtra) -> io::Result<LabProcess> {
    let dir = lab.dir().join("nsd");
    std::fs::create_dir_all(&dir)?;
    let zone = format!(
        "$ORIGIN xlat64.test.\n\
         $TTL {RECORD_TTL}\n\
         @      IN SOA ns.xlat64.test. hostmaster.xlat64.test. 1 3600 600 86400 {SOA_MINIMUM}\n\
         @      IN NS  ns\n\
         ns     IN A   {SERVER_V4}\n\
         v4only IN A   {SERVER_V4}\n\
         dual   IN A   {SERVER_V4}\n\
         dual   IN AAAA 2001:db8:2::2\n\
         www    IN A   {SERVER_V4}\n\
         {records}",
        records = extra.records
    );
    std::fs::write(dir.join("xlat64.test.zone"), zone)?;
    let d = dir.display();
    let conf = format!(
        "server:\n\
         \tip-address: {SERVER_V4}\n\
         \tport: 53\n\
         \tdo-ip6: no\n\
         \tserver-count: 1\n\
         \tusername: \"\"\n\
         \tchroot: \"\"\n\
         \tzonesdir: \"{d}\"\n\
         \tdatabase: \"\"\n\
         \tzonelistfile: \"{d}/zone.list\"\n\
         \tpidfile: \"{d}/nsd.pid\"\n\
         \txfrdfile: \"{d}/xfrd.state\"\n\
         \txfrdir: \"{d}\"\n\
         \tlogfile: \"{d}/nsd.log\"\n\
         \tverbosity: 1\n\
         {server}\
         remote-control:\n\
         \tcontrol-enable: no\n\
         zone:\n\
         \tname: \"xlat64.test\"\n\
         \tzonefile: \"{d}/xlat64.test.zone\"\n",
        server = extra
            .server
            .lines()
            .map(|l| format!("\t{}\n", l.trim()))
            .collect::<String>()
    );
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf)?;
    let nsd = lab.spawn_in(
        lab.server(),
        &[
            "nsd".as_ref(),
            "-d".as_ref(),
            "-c".as_ref(),
            conf_path.as_os_str(),
        ],
    )?;
    lab.wait_listening(lab.server(), "udp", 53, Duration::from_secs(10))
        .and_then(|()| lab.wait_listening(lab.server(), "tcp", 53, Duration::from_secs(10)))
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("nsd.log")).unwrap_or_default();
            io::Error::other(format!("{e}; nsd said: {}{log}", nsd.log()))
        })?;
    Ok(nsd)
}

/// Starts `python3 -m http.server` on 198.51.100.2:80 serving [`INDEX_HTML`].
pub fn start_http(lab: &Lab) -> io::Result<LabProcess> {
    let www = lab.dir().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), INDEX_HTML)?;
    let www = www.display().to_string();
    let server = SERVER_V4.to_string();
    let http = lab.spawn_in(
        lab.server(),
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            &server,
            "--directory",
            &www,
            "80",
        ],
    )?;
    lab.wait_listening(lab.server(), "tcp", 80, Duration::from_secs(10))
        .map_err(|e| io::Error::other(format!("{e}; http.server said: {}", http.log())))?;
    Ok(http)
}

/// Builds the whole world, or returns `None` (after printing why) when this
/// machine cannot run it.
pub fn world(tag: &str, tools: &[&str]) -> Option<World> {
    world_with(tag, tools, LabOptions::default(), NsdExtra::default())
}

/// [`world`] on a lab built with `options`, NSD serving `nsd` too.
pub fn world_with(tag: &str, tools: &[&str], options: LabOptions, nsd: NsdExtra) -> Option<World> {
    let mut needed = vec!["nsd", "python3", "ss"];
    needed.extend_from_slice(tools);
    if !can_run(tag, &needed) {
        return None;
    }
    let lab = Lab::create_with(tag, options).expect("build the lab");
    let nsd = start_nsd_with(&lab, nsd).expect("start nsd in the server namespace");
    let http = start_http(&lab).expect("start the HTTP server in the server namespace");
    let gateway = match lab.start_gateway(&exe()) {
        Ok(g) => g,
        Err(e) => panic!("start xlat64 run in the gateway namespace: {e}"),
    };
    Some(World {
        gateway,
        nsd,
        http,
        lab,
    })
}

impl World {
    /// Runs `args` in the client namespace and requires success.
    pub fn client_ok(&self, args: &[&str]) -> String {
        let out = self
            .lab
            .run_in(self.lab.client(), args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.require_success(args, &out)
    }

    /// `args` with captured output, in the client namespace.
    pub fn client(&self, args: &[&str]) -> Output {
        self.lab
            .run_in(self.lab.client(), args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn require_success(&self, args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\nstdout: {}\nstderr: {}\ngateway log:\n{}",
            lab::describe_status(out.status),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.gateway.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `xlat64 <args> --json --config <gateway config>`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self
            .gateway
            .cli(&all)
            .unwrap_or_else(|e| panic!("xlat64 {all:?}: {e}"));
        let text = self.require_success(&all, &out);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("xlat64 {all:?} printed no JSON ({e}):\n{text}"))
    }

    /// One counter of `xlat64 stats --json`.
    pub fn counter(&self, name: &str) -> u64 {
        let stats = self.json(&["stats"]);
        stats
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("stats --json has no integer `{name}`: {stats}"))
    }
}

/// `dig +short`-style answer lines of a dig run.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A UDP DNS server for tests, on a thread of its own: each datagram that
/// decodes as a DNS message with a question goes to `answer`, and what it
/// returns is sent back (`None`: no reply). Stops when dropped.
pub struct UdpResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpResponder {
    pub fn start(
        socket: std::net::UdpSocket,
        mut answer: impl FnMut(&hickory_proto::op::Message) -> Option<hickory_proto::op::Message>
            + Send
            + 'static,
    ) -> io::Result<UdpResponder> {
        use std::sync::atomic::Ordering;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = hickory_proto::op::Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if query.queries().is_empty() {
                    continue;
                }
                if let Some(bytes) = answer(&query).and_then(|m| m.to_vec().ok()) {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        Ok(UdpResponder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
