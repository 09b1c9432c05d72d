//! A throwaway lab of network namespaces (IPv6-only client, gateway, IPv4-only
//! server), used by `xlat64 demo`, the end-to-end tests and the throughput
//! benchmark. A test fixture, not part of the product: not published.
//!
//! ```text
//!  client ns (IPv6 only)        gateway ns                          server ns (IPv4 only)
//!  c0 2001:db8:1::2/64 ---- g0 2001:db8:1::1/64
//!                              g1 198.51.100.1/24  ---------------- s0 198.51.100.2/24
//!                             [g1 2001:db8:2::1/64] (dual-stack)   [s0 2001:db8:2::2/64]
//!                              TUN `nat64`: 2001:db8:64::/96, 192.0.2.1/32 (added by xlat64)
//! ```
//!
//! With [`LabOptions::ipv4_router`], an IPv4 router sits between gateway and
//! server, and the link to the server has a smaller MTU (path MTU discovery,
//! ICMP errors from a router, traceroute):
//!
//! ```text
//!  client ns          gateway ns                   router ns (IPv4 forwarding)        server ns
//!  c0 2001:db8:1::2 -- g0 2001:db8:1::1
//!                      g1 203.0.113.1/24 --------- r0 203.0.113.2/24
//!                      default via 203.0.113.2     r1 198.51.100.1/24 -- MTU 1400 -- s0 198.51.100.2/24
//!                      TUN `nat64` (by xlat64)     192.0.2.0/24 via 203.0.113.1      default via 198.51.100.1
//! ```
//!
//! Everything is built with `ip` (iproute2) inside namespaces that this module
//! creates: the veth pairs are created directly in their namespaces, so the
//! root namespace never sees an interface, address or route. Only the
//! documentation ranges of RFC 3849 and RFC 5737 are used.
//!
//! [`Lab`] removes its namespaces, their `/etc/netns` directories, its
//! temporary directory and every process it started when it is dropped, also
//! while unwinding from a panic. Namespaces left behind by a process that was
//! killed outright are removed by the next [`Lab::create`].

#![warn(missing_docs, unreachable_pub)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use xlat64_packet::Prefix6052;

/// The client's address (interface `c0` in the client namespace).
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// The gateway's address towards the client (`g0`); DNS64 listens here.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The gateway's address towards the server (`g1`). With
/// [`LabOptions::ipv4_router`] this address is the router's instead
/// ([`ROUTER_V4_SERVER_SIDE`]), and the gateway has [`GATEWAY_V4_ROUTED`].
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The gateway's IPv4 address (`g1`, towards the router), only with
/// [`LabOptions::ipv4_router`].
pub const GATEWAY_V4_ROUTED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The router's address towards the gateway (`r0`), only with
/// [`LabOptions::ipv4_router`]; the gateway's IPv4 default route.
pub const ROUTER_V4_GATEWAY_SIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The router's address towards the server (`r1`), only with
/// [`LabOptions::ipv4_router`]; the server's default route. The same address
/// as [`GATEWAY_V4`] in the plain lab, so the server's side looks alike.
pub const ROUTER_V4_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// MTU of the link between router and server (`r1` and `s0`), only with
/// [`LabOptions::ipv4_router`]; every other link has 1500. IPv4 packets over
/// 1400 bytes with DF set get ICMP "fragmentation needed" (MTU 1400) from the
/// router, which a translator turns into "packet too big" with MTU 1420.
pub const ROUTED_LINK_MTU: u32 = 1400;
/// The server's address (`s0`).
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The server's IPv6 address, only with [`LabOptions::dual_stack_server`].
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
/// The gateway's IPv6 address towards the server, only with
/// [`LabOptions::dual_stack_server`].
pub const GATEWAY_V6_SERVER_SIDE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
/// The NAT64 prefix the lab's gateway uses. A network-specific prefix: the
/// well-known 64:ff9b::/96 must not carry 198.51.100.0/24, which is not global
/// ([RFC 6052 §3.1](https://www.rfc-editor.org/rfc/rfc6052#section-3.1)).
pub const NAT64_PREFIX: &str = "2001:db8:64::/96";
/// The IPv4 address clients share.
pub const POOL4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Name of the TUN device the gateway creates.
pub const TUN: &str = "nat64";

/// How long one `ip` command or similar helper may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the gateway may take to open its control socket.
const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process gets between SIGTERM and SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `server` with the [`SERVER_V4`] address embedded in [`NAT64_PREFIX`]:
/// `2001:db8:64::c633:6402`.
pub fn server_via_nat64() -> Ipv6Addr {
    embed_v4(SERVER_V4)
}

/// `v4` embedded in the lab's /96 [`NAT64_PREFIX`]
/// ([RFC 6052 §2.2](https://www.rfc-editor.org/rfc/rfc6052#section-2.2)).
pub fn embed_v4(v4: Ipv4Addr) -> Ipv6Addr {
    lab_prefix().embed(v4)
}

/// The IPv4 address embedded in `v6`, if it is under the lab's prefix.
pub fn extract_v4(v6: &Ipv6Addr) -> Option<Ipv4Addr> {
    lab_prefix().extract(v6)
}

fn lab_prefix() -> Prefix6052 {
    Prefix6052::new(NAT64_PREFIX.parse().expect("the lab prefix is valid"))
        .expect("the lab prefix is an RFC 6052 prefix")
}

/// What to build besides the fixed topology.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabOptions {
    /// Also give the server [`SERVER_V6`] and the gateway
    /// [`GATEWAY_V6_SERVER_SIDE`], with plain kernel IPv6 forwarding between
    /// client and server (the throughput baseline).
    pub dual_stack_server: bool,
    /// Put an IPv4 router between gateway and server (namespace
    /// `x64-<tag>-<pid>-<n>-r`, see the module doc): the gateway gets
    /// [`GATEWAY_V4_ROUTED`] and a default route via
    /// [`ROUTER_V4_GATEWAY_SIDE`]; the router routes pool4 (192.0.2.0/24)
    /// back to the gateway; its link to the server has MTU
    /// [`ROUTED_LINK_MTU`]. The kernel's ICMP error rate limits are off in
    /// gateway, router and server, so that every probe of a traceroute gets
    /// its answer. Cannot be combined with `dual_stack_server`.
    pub ipv4_router: bool,
}

/// `key = value` from environment variable `var`, if set and not empty.
fn datapath_override(var: &str, key: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => format!("{key} = {}\n", v.trim()),
        _ => String::new(),
    }
}

/// The three (four with a router) namespaces and everything started in them.
#[derive(Debug)]
pub struct Lab {
    client: String,
    gateway: String,
    server: String,
    router: Option<String>,
    dir: PathBuf,
    options: LabOptions,
    spawned: AtomicUsize,
    removed: bool,
}

static LABS_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// Builds the lab. `tag` (short, `[a-z0-9]`) goes into the namespace
    /// names `x64-<tag>-<pid>-<n>-{c,g,s}` (and `-r` for the router), so labs
    /// can run in parallel.
    pub fn create(tag: &str) -> io::Result<Lab> {
        Lab::create_with(tag, LabOptions::default())
    }

    /// Builds the lab with `options`.
    pub fn create_with(tag: &str, options: LabOptions) -> io::Result<Lab> {
        if tag.is_empty()
            || !tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("lab tag `{tag}` must be non-empty lowercase letters and digits"),
            ));
        }
        if options.dual_stack_server && options.ipv4_router {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "lab options dual_stack_server and ipv4_router cannot be combined",
            ));
        }
        remove_stale_labs();
        let n = LABS_IN_PROCESS.fetch_add(1, Ordering::Relaxed);
        let base = format!("x64-{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("xlat64-lab-{tag}-{}-{n}", std::process::id()));
        // Remove leftovers of an earlier process that had our pid.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let lab = Lab {
            client: format!("{base}-c"),
            gateway: format!("{base}-g"),
            server: format!("{base}-s"),
            router: options.ipv4_router.then(|| format!("{base}-r")),
            dir,
            options,
            spawned: AtomicUsize::new(0),
            removed: false,
        };
        // From here on, Drop cleans up whatever was built if a step fails.
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> io::Result<()> {
        if let Some(r) = &self.router {
            return self.build_routed(r);
        }
        let (c, g, s) = (
            self.client.as_str(),
            self.gateway.as_str(),
            self.server.as_str(),
        );
        for ns in [c, g, s] {
            add_netns(ns)?;
        }
        write_sysctl(g, "net/ipv4/ip_forward", "1")?;
        write_sysctl(g, "net/ipv6/conf/all/forwarding", "1")?;

        ip(&[
            "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "g0", "netns", g,
        ])?;
        ip(&[
            "link", "add", "g1", "netns", g, "type", "veth", "peer", "name", "s0", "netns", s,
        ])?;

        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            "c0",
            "nodad",
        ])?;
        ip(&[
            "-n",
            g,
            "addr",
            "add",
            &format!("{GATEWAY_V6}/64"),
            "dev",
            "g0",
            "nodad",
        ])?;
        ip(&[
            "-n",
            g,
            "addr",
            "add",
            &format!("{GATEWAY_V4}/24"),
            "dev",
            "g1",
        ])?;
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_V4}/24"),
            "dev",
            "s0",
        ])?;
        if self.options.dual_stack_server {
            ip(&[
                "-n",
                g,
                "addr",
                "add",
                &format!("{GATEWAY_V6_SERVER_SIDE}/64"),
                "dev",
                "g1",
                "nodad",
            ])?;
            ip(&[
                "-n",
                s,
                "addr",
                "add",
                &format!("{SERVER_V6}/64"),
                "dev",
                "s0",
                "nodad",
            ])?;
        }
        for (ns, dev) in [(c, "c0"), (g, "g0"), (g, "g1"), (s, "s0")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&[
            "-n",
            c,
            "-6",
            "route",
            "add",
            "default",
            "via",
            &GATEWAY_V6.to_string(),
        ])?;
        ip(&[
            "-n",
            s,
            "-4",
            "route",
            "add",
            "default",
            "via",
            &GATEWAY_V4.to_string(),
        ])?;
        if self.options.dual_stack_server {
            ip(&[
                "-n",
                s,
                "-6",
                "route",
                "add",
                "default",
                "via",
                &GATEWAY_V6_SERVER_SIDE.to_string(),
            ])?;
        }

        self.finish(&[(c, "c0"), (g, "g0"), (g, "g1"), (s, "s0")])
    }

    /// The topology with [`LabOptions::ipv4_router`]: client -- gateway --
    /// router -- server (see the module doc).
    fn build_routed(&self, r: &str) -> io::Result<()> {
        let (c, g, s) = (
            self.client.as_str(),
            self.gateway.as_str(),
            self.server.as_str(),
        );
        for ns in [c, g, r, s] {
            add_netns(ns)?;
        }
        write_sysctl(g, "net/ipv4/ip_forward", "1")?;
        write_sysctl(g, "net/ipv6/conf/all/forwarding", "1")?;
        write_sysctl(r, "net/ipv4/ip_forward", "1")?;
        // Every probe of a traceroute or ping gets its ICMP error: the
        // kernel's per-destination token bucket (1 s, small burst) would
        // otherwise swallow some of them when tests send probes in bursts.
        write_sysctl(g, "net/ipv6/icmp/ratelimit", "0")?;
        for ns in [g, r, s] {
            write_sysctl(ns, "net/ipv4/icmp_ratelimit", "0")?;
        }
        let mtu = ROUTED_LINK_MTU.to_string();

        ip(&[
            "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "g0", "netns", g,
        ])?;
        ip(&[
            "link", "add", "g1", "netns", g, "type", "veth", "peer", "name", "r0", "netns", r,
        ])?;
        ip(&[
            "link", "add", "r1", "netns", r, "mtu", &mtu, "type", "veth", "peer", "name", "s0",
            "netns", s, "mtu", &mtu,
        ])?;

        let addrs: [(&str, &str, String); 6] = [
            (c, "c0", format!("{CLIENT_V6}/64")),
            (g, "g0", format!("{GATEWAY_V6}/64")),
            (g, "g1", format!("{GATEWAY_V4_ROUTED}/24")),
            (r, "r0", format!("{ROUTER_V4_GATEWAY_SIDE}/24")),
            (r, "r1", format!("{ROUTER_V4_SERVER_SIDE}/24")),
            (s, "s0", format!("{SERVER_V4}/24")),
        ];
        for (ns, dev, addr) in &addrs {
            let mut args = vec!["-n", ns, "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                args.push("nodad");
            }
            ip(&args)?;
        }
        let links = [
            (c, "c0"),
            (g, "g0"),
            (g, "g1"),
            (r, "r0"),
            (r, "r1"),
            (s, "s0"),
        ];
        for (ns, dev) in links {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        let routes: [(&str, &str, &str, String); 4] = [
            (c, "-6", "default", GATEWAY_V6.to_string()),
            (g, "-4", "default", ROUTER_V4_GATEWAY_SIDE.to_string()),
            (r, "-4", "192.0.2.0/24", GATEWAY_V4_ROUTED.to_string()),
            (s, "-4", "default", ROUTER_V4_SERVER_SIDE.to_string()),
        ];
        for (ns, family, to, via) in &routes {
            ip(&["-n", ns, family, "route", "add", to, "via", via])?;
        }
        self.finish(&links)
    }

    /// The client's resolv.conf, then waits until every link is up and
    /// no address is tentative.
    fn finish(&self, links: &[(&str, &str)]) -> io::Result<()> {
        let etc = self.etc_netns(&self.client);
        fs::create_dir_all(&etc)?;
        fs::write(
            etc.join("resolv.conf"),
            format!("nameserver {GATEWAY_V6}\n"),
        )?;

        for &(ns, dev) in links {
            wait_until(COMMAND_TIMEOUT, || {
                let link = ip(&["-n", ns, "-o", "link", "show", dev])?;
                let tentative = ip(&[
                    "-n",
                    ns,
                    "-o",
                    "-6",
                    "addr",
                    "show",
                    "dev",
                    dev,
                    "tentative",
                ])?;
                Ok(link.contains("LOWER_UP") && tentative.trim().is_empty())
            })
            .map_err(|e| annotate(e, &format!("{dev} in {ns} did not come up")))?;
        }
        Ok(())
    }

    fn etc_netns(&self, ns: &str) -> PathBuf {
        Path::new("/etc/netns").join(ns)
    }

    /// The client namespace's name.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The gateway namespace's name.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The server namespace's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The router namespace's name, with [`LabOptions::ipv4_router`].
    pub fn router(&self) -> Option<&str> {
        self.router.as_deref()
    }

    /// The options the lab was built with.
    pub fn options(&self) -> LabOptions {
        self.options
    }

    /// The lab's temporary directory (configs, logs, control socket), removed
    /// with the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A one-line description of the topology.
    pub fn describe(&self) -> String {
        if let Some(router) = &self.router {
            return format!(
                "client {} ({CLIENT_V6}, IPv6 only) -- gateway {} ({GATEWAY_V6} | {GATEWAY_V4_ROUTED}) -- \
                 router {router} ({ROUTER_V4_GATEWAY_SIDE} | {ROUTER_V4_SERVER_SIDE}, MTU {ROUTED_LINK_MTU}) -- \
                 server {} ({SERVER_V4}, IPv4 only)",
                self.client, self.gateway, self.server
            );
        }
        let mut s = format!(
            "client {} ({CLIENT_V6}, IPv6 only) -- gateway {} ({GATEWAY_V6} | {GATEWAY_V4}) -- server {} ({SERVER_V4}",
            self.client, self.gateway, self.server
        );
        if self.options.dual_stack_server {
            let _ = write!(s, ", {SERVER_V6}");
        } else {
            s.push_str(", IPv4 only");
        }
        s.push(')');
        s
    }

    /// Runs `args` in namespace `ns` (`ip netns exec`) and waits for it, at
    /// most 15 s.
    pub fn run_in<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> io::Result<Output> {
        self.run_in_timeout(ns, args, COMMAND_TIMEOUT)
    }

    /// Runs `args` in namespace `ns` and waits at most `timeout`; on timeout
    /// the process group is killed and the error carries what it printed.
    pub fn run_in_timeout<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        args: &[S],
        timeout: Duration,
    ) -> io::Result<Output> {
        let mut cmd = netns_exec(ns, args);
        run_with_timeout(&mut cmd, timeout)
    }

    /// Starts `args` in namespace `ns` in its own process group, stdout and
    /// stderr going to a log file in the lab directory. The process is killed
    /// when the returned handle is dropped, and in any case with the lab.
    pub fn spawn_in<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> io::Result<LabProcess> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let program = args
            .first()
            .map(|a| {
                Path::new(a.as_ref())
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let log = self.dir.join(format!("{n}-{program}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = netns_exec(ns, args);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| annotate(e, &format!("cannot start {program} in {ns}")))?;
        Ok(LabProcess {
            child: Some(child),
            name: program,
            log,
        })
    }

    /// Runs `f` on a new thread inside namespace `ns` and returns its result.
    /// Sockets created there stay in `ns` wherever they are used afterwards.
    pub fn in_netns<T, F>(&self, ns: &str, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> io::Result<T> + Send,
    {
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter_netns(ns)?;
                    f()
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other(format!("thread in {ns} panicked"))))
        })
    }

    /// Starts `f` on a new, detached thread inside namespace `ns`.
    pub fn spawn_thread_in<T, F>(&self, ns: &str, f: F) -> thread::JoinHandle<io::Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let ns = ns.to_string();
        thread::spawn(move || {
            enter_netns(&ns)?;
            f()
        })
    }

    /// Polls `ss` in `ns` until something listens on `port` (`tcp` or
    /// `udp`), at most `timeout`.
    pub fn wait_listening(
        &self,
        ns: &str,
        proto: &str,
        port: u16,
        timeout: Duration,
    ) -> io::Result<()> {
        let flag = if proto == "udp" { "-Hlnu" } else { "-Hlnt" };
        let filter = format!("sport = :{port}");
        wait_until(timeout, || {
            let out = self.run_in(ns, &["ss", flag, &filter])?;
            Ok(out.status.success() && !out.stdout.is_empty())
        })
        .map_err(|e| {
            annotate(
                e,
                &format!("nothing listens on {proto} port {port} in {ns}"),
            )
        })
    }

    /// The configuration the lab's gateway runs with. The environment
    /// variables `XLAT64_LAB_WORKERS` (a number) and `XLAT64_LAB_OFFLOAD`
    /// (`true` or `false`) set `runtime.workers` and `nat64.offload`, so
    /// that the whole end-to-end suite runs in each data-path mode.
    pub fn gateway_config(&self) -> String {
        format!(
            "[nat64]\nprefix = \"{NAT64_PREFIX}\"\npool4 = [\"{POOL4}\"]\ntun = \"{TUN}\"\n{}\n\
             [dns64]\nlisten = [\"[{GATEWAY_V6}]:53\"]\nupstream = [\"{SERVER_V4}:53\"]\nallow = [\"2001:db8::/32\"]\n\n\
             [control]\nsocket = \"{}\"\n{}",
            datapath_override("XLAT64_LAB_OFFLOAD", "offload"),
            self.control_socket().display(),
            datapath_override("XLAT64_LAB_WORKERS", "workers")
                .lines()
                .next()
                .map(|l| format!("\n[runtime]\n{l}\n"))
                .unwrap_or_default(),
        )
    }

    /// Where the lab's gateway puts its control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Writes `text` to `name` in the lab directory and returns the path.
    pub fn write_file(&self, name: &str, text: &str) -> io::Result<PathBuf> {
        let path = self.dir.join(name);
        fs::write(&path, text)?;
        Ok(path)
    }

    /// Starts `exe run --config <file>` in the gateway namespace with
    /// [`Lab::gateway_config`] and waits (at most 10 s) until its control
    /// socket exists.
    pub fn start_gateway(&self, exe: &Path) -> io::Result<Gateway> {
        self.start_gateway_with(exe, &self.gateway_config())
    }

    /// Like [`Lab::start_gateway`] with another configuration text; its
    /// `[control] socket` must be [`Lab::control_socket`].
    pub fn start_gateway_with(&self, exe: &Path, config: &str) -> io::Result<Gateway> {
        let config_path = self.write_file("gateway.toml", config)?;
        let socket = self.control_socket();
        let _ = fs::remove_file(&socket);
        let exe_arg = exe.as_os_str();
        let args: [&OsStr; 4] = [
            exe_arg,
            OsStr::new("run"),
            OsStr::new("--config"),
            config_path.as_os_str(),
        ];
        let mut process = self.spawn_in(&self.gateway, &args)?;
        let deadline = Instant::now() + GATEWAY_START_TIMEOUT;
        loop {
            if socket.exists() {
                break;
            }
            if let Some(status) = process.try_wait()? {
                return Err(io::Error::other(format!(
                    "xlat64 run exited with {} before opening its control socket; its output:\n{}",
                    describe_status(status),
                    process.log()
                )));
            }
            if Instant::now() >= deadline {
                let log = process.log();
                drop(process);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "xlat64 run did not open {} within {} s; its output:\n{log}",
                        socket.display(),
                        GATEWAY_START_TIMEOUT.as_secs()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        // The control socket may come before the data path: also wait for
        // the routes to the TUN and the DNS64 listener, so that the first
        // packet of a test is not lost to start-up order.
        let mut ready: Vec<(&str, Vec<String>)> = Vec::new();
        if config.contains("[nat64]") {
            ready.push((
                "the route to the NAT64 prefix",
                vec![
                    "ip".into(),
                    "-6".into(),
                    "route".into(),
                    "show".into(),
                    NAT64_PREFIX.into(),
                ],
            ));
        }
        // (A pool4 of other addresses, the gateway's own for one, is routed
        // otherwise; the control socket comes after those routes anyway.)
        if config.contains(&format!("\"{POOL4}\"")) {
            ready.push((
                "the route to pool4",
                vec![
                    "ip".into(),
                    "-4".into(),
                    "route".into(),
                    "show".into(),
                    "match".into(),
                    POOL4.to_string(),
                    "dev".into(),
                    TUN.into(),
                ],
            ));
        }
        if config.contains("[dns64]") {
            ready.push((
                "the DNS64 listener",
                vec!["ss".into(), "-Hlnu".into(), "sport = :53".into()],
            ));
        }
        for (what, args) in ready {
            let waited = wait_until(deadline.saturating_duration_since(Instant::now()), || {
                let out = self.run_in(&self.gateway, &args)?;
                Ok(out.status.success() && !out.stdout.is_empty())
            });
            if let Err(e) = waited {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("xlat64 run opened its control socket but not {what} ({e}); its output:\n{}", process.log()),
                ));
            }
        }
        Ok(Gateway {
            process,
            exe: exe.to_path_buf(),
            config_path,
            socket,
        })
    }

    /// Removes the lab now, reporting what could not be removed.
    pub fn remove(mut self) -> io::Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let mut problems = Vec::new();
        let namespaces = [
            Some(&self.client),
            Some(&self.gateway),
            self.router.as_ref(),
            Some(&self.server),
        ];
        for ns in namespaces.into_iter().flatten() {
            if let Err(e) = remove_netns(ns) {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                problems.push(format!("{}: {e}", self.dir.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(io::Error::other(problems.join("; ")))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("xlat64 lab: cleanup incomplete: {e}");
        }
    }
}

/// A process started with [`Lab::spawn_in`]; killed (its whole process group)
/// when dropped.
#[derive(Debug)]
pub struct LabProcess {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl LabProcess {
    /// Process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(child) => child.try_wait(),
            None => Err(io::Error::other(format!(
                "{} was already reaped",
                self.name
            ))),
        }
    }

    /// Waits at most `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&mut self, signal: libc::c_int) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: plain syscall; the child is not reaped, so its pid is ours.
        if unsafe { libc::kill(self.id() as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// SIGTERM, then waits at most 10 s for the exit status; SIGKILL and an
    /// error if it does not exit in time.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        self.signal(libc::SIGTERM)?;
        match self.wait_timeout(STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                self.kill();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not exit within {} s of SIGTERM",
                        self.name,
                        STOP_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }

    /// SIGKILL to its process group, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                // SAFETY: plain syscall; the leader is not reaped, so the group id is ours.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
            } else {
                // The leader is gone; kill stragglers in its group if any.
                // (The pgid cannot be reused while a member lives.)
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            }
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `xlat64 run` in the lab's gateway namespace.
#[derive(Debug)]
pub struct Gateway {
    process: LabProcess,
    exe: PathBuf,
    config_path: PathBuf,
    socket: PathBuf,
}

impl Gateway {
    /// The configuration file it runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Its control socket.
    pub fn control_socket(&self) -> &Path {
        &self.socket
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Runs `xlat64 <args> --config <its config>` (e.g. `["sessions", "--json"]`)
    /// and waits at most 15 s.
    pub fn cli(&self, args: &[&str]) -> io::Result<Output> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).arg("--config").arg(&self.config_path);
        run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
    }

    /// Waits at most `timeout` for it to exit by itself; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.process.wait_timeout(timeout)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// SIGTERM; returns the exit status (at most 10 s, then SIGKILL and an error).
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        self.process.stop()
    }
}

/// Describes an exit status: `exit code 1` or `signal 9`.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

/// Moves the calling thread into namespace `ns` (network only; the rest of
/// the process is unaffected).
pub fn enter_netns(ns: &str) -> io::Result<()> {
    let path = Path::new("/var/run/netns").join(ns);
    let file = File::open(&path).map_err(|e| annotate(e, &path.display().to_string()))?;
    // SAFETY: plain syscall on an fd we own; setns(CLONE_NEWNET) affects only
    // the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(annotate(
            io::Error::last_os_error(),
            &format!("setns into {ns}"),
        ))
    }
}

/// Creates namespace `ns` without duplicate address detection, `lo` up.
fn add_netns(ns: &str) -> io::Result<()> {
    ip(&["netns", "add", ns])?;
    // No duplicate address detection: addresses are usable at once.
    for conf in ["all", "default"] {
        write_sysctl(ns, &format!("net/ipv6/conf/{conf}/accept_dad"), "0")?;
    }
    ip(&["-n", ns, "link", "set", "lo", "up"]).map(|_| ())
}

/// Runs `ip <args>`; on failure the error carries the command and its stderr.
fn ip(args: &[&str]) -> io::Result<String> {
    let out = run_with_timeout(Command::new("ip").args(args), COMMAND_TIMEOUT)
        .map_err(|e| annotate(e, &format!("ip {}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            describe_status(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Writes a sysctl of namespace `ns` from a thread inside it
/// (`/proc/sys/net` belongs to the opening thread's namespace).
fn write_sysctl(ns: &str, key: &str, value: &str) -> io::Result<()> {
    let ns = ns.to_string();
    let key = key.to_string();
    let value = value.to_string();
    thread::spawn(move || {
        enter_netns(&ns)?;
        let path = Path::new("/proc/sys").join(&key);
        fs::write(&path, &value).map_err(|e| annotate(e, &format!("{} in {ns}", path.display())))
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("sysctl thread panicked")))
}

fn netns_exec<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args).process_group(0);
    cmd
}

/// Runs `cmd` with captured output; kills its process group after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: plain syscall; the child is not reaped, so the group id is ours.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    // Grandchildren may keep the pipes open; the group kill above ends them
    // on timeout, and on a normal exit they are the command's business.
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{:?} timed out after {} s; stdout: {}; stderr: {}",
                cmd,
                timeout.as_secs_f32(),
                String::from_utf8_lossy(&stdout).trim(),
                String::from_utf8_lossy(&stderr).trim()
            ),
        )),
    }
}

/// Polls `cond` every 20 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> io::Result<bool>) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match cond() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            let why = last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {} s{why}", timeout.as_secs_f32()),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills every process in `ns` (all of them were started by a lab) and
/// deletes it and its `/etc/netns` directory.
fn remove_netns(ns: &str) -> io::Result<()> {
    if !Path::new("/var/run/netns").join(ns).exists() {
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        return Ok(());
    }
    let me = std::process::id();
    for _ in 0..50 {
        let pids = ip(&["netns", "pids", ns]).unwrap_or_default();
        let pids: Vec<libc::pid_t> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p != me as libc::pid_t)
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: plain syscall; the process lives in a namespace we made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    let result = ip(&["netns", "del", ns]).map(|_| ());
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    result
}

/// Removes lab namespaces whose creating process no longer exists.
fn remove_stale_labs() {
    let Ok(entries) = fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("x64-") else {
            continue;
        };
        // x64-<tag>-<pid>-<n>-<role>
        let parts: Vec<&str> = rest.rsplitn(4, '-').collect();
        if parts.len() != 4 || !["c", "g", "r", "s"].contains(&parts[0]) {
            continue;
        }
        let Ok(pid) = parts[2].parse::<u32>() else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = remove_netns(&name);
        }
    }
}

fn annotate(e: io::Error, context: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// The xlat64 binary a benchmark example measures: `$XLAT64_BIN`, else
/// `xlat64` in the target directory the running example was built into
/// (`target/<profile>/examples/<example>` -> `target/<profile>/xlat64`).
pub fn xlat64_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("XLAT64_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let candidate = me
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("xlat64"))
        .ok_or("cannot locate the target directory")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "{} not found; run `cargo build --release -p xlat64` first or set XLAT64_BIN",
            candidate.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6052_2_2_the_lab_prefix_embeds_and_extracts() {
        assert_eq!(
            server_via_nat64(),
            "2001:db8:64::c633:6402".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(extract_v4(&server_via_nat64()), Some(SERVER_V4));
        assert_eq!(extract_v4(&"64:ff9b::c633:6402".parse().unwrap()), None);
    }
}
