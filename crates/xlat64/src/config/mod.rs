//! The TOML configuration (`../shared/CONTRACT.md`): parsing, defaults and
//! validation. Every error names the key it is about.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use xlat64_packet::special::never_a_host;
use xlat64_packet::Prefix6052;

mod wording;

/// A configuration error: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `nat64.prefix`.
    pub key: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stateful NAT64; absent: DNS64 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat64: Option<Nat64Section>,
    /// DNS64 server; absent: no DNS64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns64: Option<Dns64Section>,
    /// Control socket.
    #[serde(default)]
    pub control: ControlSection,
    /// Threads of the daemon.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// The Prometheus endpoint; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSection>,
}

/// `[metrics]`: Prometheus / OpenMetrics text at `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to listen, e.g. `"127.0.0.1:9164"`.
    pub listen: SocketAddr,
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeSection {
    /// DNS64 UDP threads, each with one socket of every `listen` address
    /// (the packet path, the control socket and the lifecycle have threads
    /// of their own).
    #[serde(default = "default_io_threads")]
    pub io_threads: usize,
    /// Packet workers, each with its own TUN queue and its own share of the
    /// NAT64 state; absent: the number of cores (filled in by `check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// After setup, run as this user, keeping only `CAP_NET_ADMIN` on the
    /// thread that removes the routes at exit (with it the daemon runs one
    /// I/O thread); absent: stay root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the daemon logs: `error`, `warn`, `info`, `debug`, `trace`, or
    /// `RUST_LOG` directives (`info,xlat64::dns64=debug`); `RUST_LOG`, when
    /// set, wins. A reload applies it.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_io_threads() -> usize {
    2
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            io_threads: default_io_threads(),
            workers: None,
            user: None,
            log_level: default_log_level(),
        }
    }
}

/// The longest `dns64.serve-stale` accepted: 7 days.
pub const MAX_SERVE_STALE: u64 = 7 * 86_400;

/// The longest wait for an upstream DNS server accepted (30 s).
pub const MAX_UPSTREAM_TIMEOUT_MS: u64 = 30_000;

/// The largest configuration file read (1 MiB: far beyond any real one).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Packet workers accepted at most (a TUN device has at most 256 queues).
pub const MAX_WORKERS: usize = 64;

impl RuntimeSection {
    /// The packet workers to start: the configured number, else one per core.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_WORKERS)
        })
    }
}

/// `[nat64]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat64Section {
    /// RFC 6052 prefix.
    #[serde(default = "default_prefix")]
    pub prefix: Ipv6Net,
    /// IPv4 addresses or prefixes shared by all clients.
    #[serde(default = "default_pool4")]
    pub pool4: Vec<Pool4Entry>,
    /// TUN device name.
    #[serde(default = "default_tun")]
    pub tun: String,
    /// MTU of the TUN device.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// TUN offloads (virtio-net header, TSO/USO): GSO superpackets are read
    /// and split, translated packets are coalesced into GRO superpackets.
    /// Falls back to one packet per syscall when the kernel refuses them.
    #[serde(default = "default_true")]
    pub offload: bool,
    /// RFC 7915 §4: IPv4 packets without DF whose translation is larger are
    /// sent as IPv6 fragments of at most this size (1280..=mtu).
    #[serde(rename = "lowest-ipv6-mtu", default = "default_lowest_ipv6_mtu")]
    pub lowest_ipv6_mtu: u16,
    /// ICMP errors the gateway sends itself per second (0: none).
    #[serde(
        rename = "icmp-errors-per-second",
        default = "default_icmp_errors_per_second"
    )]
    pub icmp_errors_per_second: u32,
    /// RFC 6791: IPv4 sources for ICMPv6 errors from IPv6 routers (not the
    /// client); empty: the client's pool4 address.
    #[serde(rename = "rfc6791-v4", default)]
    pub rfc6791_v4: Vec<Ipv4Addr>,
    /// Source of the ICMPv6 errors the gateway sends, and of ICMPv4 errors
    /// whose IPv4 source cannot go under the well-known prefix; absent: the
    /// gateway's own IPv6 address towards the clients, found at start.
    #[serde(
        rename = "rfc6791-v6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rfc6791_v6: Option<Ipv6Addr>,
    /// Session lifetimes in seconds.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// Fragment reassembly bounds.
    #[serde(default)]
    pub fragments: FragmentsSection,
    /// Bounds of the NAT64 state.
    #[serde(default)]
    pub limits: LimitsSection,
    /// MSS that TCP SYNs crossing the gateway announce at most, both ways,
    /// so that segments fit after translation; 0: off; absent: `mtu - 60`
    /// (an IPv6 and a TCP header), filled in by `check`.
    #[serde(rename = "mss-clamp", default, skip_serializing_if = "Option::is_none")]
    pub mss_clamp: Option<u16>,
    /// Which IPv4 packets an existing binding lets in (RFC 6146 §3.5,
    /// RFC 4787 §5).
    #[serde(default)]
    pub filtering: FilteringMode,
    /// Refuse TCP connections initiated from the IPv4 side (RFC 6146
    /// §3.5.2.2): their SYNs are dropped, not held for a simultaneous open.
    #[serde(rename = "drop-externally-initiated-tcp", default)]
    pub drop_externally_initiated_tcp: bool,
    /// IPv4 destinations clients may not reach through the NAT (RFC 6888
    /// REQ-6): `"ADDR[/LEN][:PORT]"`, a port meaning that TCP and UDP port.
    #[serde(
        rename = "deny-destinations",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub deny_destinations: Vec<DeniedEntry>,
    /// Seconds the port of a removed dynamic binding stays out of use
    /// (RFC 6888 REQ-8: at least 120); 0: reused at once.
    #[serde(rename = "port-reuse-delay", default = "default_port_reuse_delay")]
    pub port_reuse_delay: u64,
    /// Port blocks (RFC 7422): each client's bindings take ports from
    /// blocks of this many ports (a power of two, 8 to 32768), one binding
    /// log line per block; 0: ports one by one.
    #[serde(rename = "port-block", default)]
    pub port_block: u16,
    /// Static bindings (`[[nat64.static]]`): port forwarding to IPv6 servers.
    #[serde(rename = "static", default, skip_serializing_if = "Vec::is_empty")]
    pub statics: Vec<StaticSection>,
    /// `[nat64.log]`: the binding log.
    #[serde(default)]
    pub log: LogSection,
    /// `[nat64.deterministic]`: port blocks computed from the configuration
    /// (RFC 7422 §2); absent: blocks are handed out on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<DeterministicSection>,
}

/// `[nat64.deterministic]`: every client (`limits.client-prefix` bits) of
/// `clients` holds one port block, client `i` block `i % B` of pool4
/// address `i / B` (B blocks per address, addresses in ascending order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeterministicSection {
    /// The clients' range, e.g. `"2001:db8:100::/48"`.
    pub clients: Ipv6Net,
}

/// `[nat64.log]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `"stderr"` or a file path: one JSON line per binding created and
    /// removed; absent: no binding log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<String>,
}

impl LogSection {
    /// Where the binding log goes, if anywhere.
    pub fn bindings_target(&self) -> Option<crate::binding_log::Target> {
        self.bindings.as_ref().map(|b| match b.as_str() {
            "stderr" => crate::binding_log::Target::Stderr,
            path => crate::binding_log::Target::File(PathBuf::from(path)),
        })
    }
}

/// `[[nat64.static]]`: IPv4 hosts reach the IPv6 server `v6` at the pool4
/// transport address `v4` (RFC 6146 §3.1, a static BIB entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSection {
    /// `tcp`, `udp` or `icmp` (ports are then echo identifiers).
    pub protocol: ProtocolName,
    /// The IPv6 server, `"[ADDR]:PORT"`.
    pub v6: std::net::SocketAddrV6,
    /// Where it is published, `"ADDR:PORT"`, ADDR in pool4.
    pub v4: std::net::SocketAddrV4,
}

/// A transport protocol by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo.
    Icmp,
}

impl StaticSection {
    /// The NAT core's form.
    pub fn to_nat(&self) -> xlat64_nat::StaticBinding {
        let proto = match self.protocol {
            ProtocolName::Tcp => xlat64_packet::L4Proto::Tcp,
            ProtocolName::Udp => xlat64_packet::L4Proto::Udp,
            ProtocolName::Icmp => xlat64_packet::L4Proto::Icmp,
        };
        xlat64_nat::StaticBinding {
            proto,
            v6: self.v6,
            v4: self.v4,
        }
    }
}

/// `nat64.filtering`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilteringMode {
    /// Any IPv4 host may reach a client through the client's binding.
    #[default]
    EndpointIndependent,
    /// Only IPv4 addresses the client already has a session with.
    AddressDependent,
}

impl FilteringMode {
    /// The NAT core's setting.
    pub fn to_nat(self) -> xlat64_nat::Filtering {
        match self {
            FilteringMode::EndpointIndependent => xlat64_nat::Filtering::EndpointIndependent,
            FilteringMode::AddressDependent => xlat64_nat::Filtering::AddressDependent,
        }
    }
}

impl Nat64Section {
    /// The MSS clamp for the NAT core: `None` when off.
    pub fn mss_clamp(&self) -> Option<u16> {
        match self.mss_clamp {
            Some(0) => None,
            Some(v) => Some(v),
            None => Some(self.mtu.saturating_sub(60)),
        }
    }
}

/// `[nat64.limits]`: how much state the NAT64 holds at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct LimitsSection {
    /// Sessions of all clients together; absent: sized by the machine's
    /// memory (filled in by `check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<usize>,
    /// Inbound TCP SYNs held at once for a simultaneous open (RFC 6146
    /// §3.5.2.2), all workers together.
    #[serde(default = "default_max_simultaneous_opens")]
    pub max_simultaneous_opens: usize,
    /// Sessions one client holds at most (RFC 6888 REQ-5); 0: no limit.
    #[serde(default = "default_max_sessions_per_client")]
    pub max_sessions_per_client: usize,
    /// Pool4 ports one client holds at most, per protocol (RFC 6888
    /// REQ-4); 0: no limit.
    #[serde(default = "default_max_ports_per_client")]
    pub max_ports_per_client: usize,
    /// New bindings one client may create per second (RFC 6888 REQ-4 c);
    /// 0: no limit.
    pub max_new_bindings_per_second: usize,
    /// What one client is: an IPv6 address (128) or a subscriber prefix
    /// (32..=128 bits); the limits count per client.
    #[serde(default = "default_client_prefix")]
    pub client_prefix: u8,
}

fn default_port_reuse_delay() -> u64 {
    120
}

/// The longest `nat64.port-reuse-delay` accepted (ports held longer only
/// shrink the pool).
const MAX_PORT_REUSE_DELAY: u64 = 3600;

fn default_max_simultaneous_opens() -> usize {
    64
}

fn default_max_sessions_per_client() -> usize {
    10_000
}

fn default_max_ports_per_client() -> usize {
    5_000
}

fn default_client_prefix() -> u8 {
    128
}

/// A per-client limit for the NAT core: 0 means none.
pub fn limit(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

/// The largest `nat64.limits.max-simultaneous-opens` accepted: each held
/// SYN is looked at for every new one (a small store, searched linearly).
pub const MAX_SIMULTANEOUS_OPENS: usize = 4096;

/// The largest `nat64.limits.max-sessions` accepted.
pub const MAX_SESSIONS_LIMIT: usize = 64 << 20;

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_sessions: None,
            max_simultaneous_opens: default_max_simultaneous_opens(),
            max_sessions_per_client: default_max_sessions_per_client(),
            max_ports_per_client: default_max_ports_per_client(),
            max_new_bindings_per_second: 0,
            client_prefix: default_client_prefix(),
        }
    }
}

impl LimitsSection {
    /// The configured maximum, else one session per 4 KiB of memory (a
    /// session takes about 200 bytes with its share of the tables, so the
    /// tables stay under a twentieth of memory), between 65,536 and 4,194,304.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions.unwrap_or_else(|| {
            let memory = memory_bytes().unwrap_or(1 << 30);
            (memory / 4096).clamp(1 << 16, 1 << 22) as usize
        })
    }
}

/// Total memory from /proc/meminfo (`MemTotal`, in KiB there).
fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `[nat64.fragments]`: bounds of fragment reassembly (RFC 6146 §3.4).
/// Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct FragmentsSection {
    /// Datagrams reassembled at once, all sources together (each up to 66 KiB).
    pub max_datagrams: usize,
    /// Datagrams reassembled at once per source (IPv4 address, IPv6 /64).
    pub max_per_source: usize,
    /// Fragments per datagram.
    pub max_fragments: usize,
    /// Seconds an incomplete datagram is kept (>= 2, RFC 6146 §3.4).
    pub timeout: u64,
}

impl Default for FragmentsSection {
    fn default() -> Self {
        let l = xlat64_nat::ReassemblyLimits::default();
        FragmentsSection {
            max_datagrams: l.max_datagrams,
            max_per_source: l.max_per_source,
            max_fragments: l.max_fragments,
            timeout: l.timeout.as_secs(),
        }
    }
}

impl FragmentsSection {
    /// As the NAT core wants them.
    pub fn to_limits(&self) -> xlat64_nat::ReassemblyLimits {
        xlat64_nat::ReassemblyLimits {
            max_datagrams: self.max_datagrams,
            max_per_source: self.max_per_source,
            max_fragments: self.max_fragments,
            timeout: std::time::Duration::from_secs(self.timeout),
        }
    }
}

/// `[nat64.timeouts]`, in seconds (RFC 6146 §4 minimums enforced). Every
/// key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct TimeoutsSection {
    /// UDP session lifetime (>= 120).
    pub udp: u64,
    /// ICMP query session lifetime.
    pub icmp: u64,
    /// TCP established session lifetime (>= 7440).
    pub tcp_established: u64,
    /// TCP transitory session lifetime (>= 240).
    pub tcp_transitory: u64,
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        let t = xlat64_nat::Timeouts::default();
        TimeoutsSection {
            udp: t.udp.as_secs(),
            icmp: t.icmp.as_secs(),
            tcp_established: t.tcp_established.as_secs(),
            tcp_transitory: t.tcp_transitory.as_secs(),
        }
    }
}

impl TimeoutsSection {
    /// As the NAT core wants them.
    pub fn to_timeouts(&self) -> xlat64_nat::Timeouts {
        use std::time::Duration;
        xlat64_nat::Timeouts {
            udp: Duration::from_secs(self.udp),
            icmp: Duration::from_secs(self.icmp),
            tcp_established: Duration::from_secs(self.tcp_established),
            tcp_transitory: Duration::from_secs(self.tcp_transitory),
        }
    }
}

/// A pool4 entry: `"ADDRESS[/LEN][:FIRST-LAST]"`, e.g. `"192.0.2.1"`,
/// `"192.0.2.0/28"` or `"203.0.113.1:61001-65535"` (TCP and UDP ports and
/// ICMP identifiers of the entry's addresses; without: the pool's ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool4Entry(pub Ipv4Net, pub Option<std::ops::RangeInclusive<u16>>);

impl Pool4Entry {
    /// The entries as the NAT core takes them.
    pub fn to_pool(entries: &[Pool4Entry]) -> Result<xlat64_nat::Pool4, String> {
        let parts: Vec<_> = entries.iter().map(|e| (e.0, e.1.clone())).collect();
        xlat64_nat::Pool4::with_entries(&parts)
    }
}

impl Serialize for Pool4Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let net = if self.0.prefix_len() == 32 {
            self.0.addr().to_string()
        } else {
            self.0.to_string()
        };
        match &self.1 {
            Some(r) => s.serialize_str(&format!("{net}:{}-{}", r.start(), r.end())),
            None => s.serialize_str(&net),
        }
    }
}

/// A `deny-destinations` entry: `"ADDR[/LEN][:PORT]"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedEntry(pub Ipv4Net, pub Option<u16>);

impl DeniedEntry {
    /// The entry as the NAT core takes it.
    pub fn to_nat(self) -> xlat64_nat::DeniedDestination {
        xlat64_nat::DeniedDestination {
            net: self.0,
            port: self.1,
        }
    }
}

impl Serialize for DeniedEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let net = if self.0.prefix_len() == 32 {
            self.0.addr().to_string()
        } else {
            self.0.to_string()
        };
        match self.1 {
            Some(p) => s.serialize_str(&format!("{net}:{p}")),
            None => s.serialize_str(&net),
        }
    }
}

impl<'de> Deserialize<'de> for DeniedEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not ADDRESS[/LEN][:PORT] (e.g. \"198.51.100.0/24\" or \"203.0.113.5:25\")"
            ))
        };
        let (net, port) = match s.split_once(':') {
            Some((net, port)) => (
                net,
                Some(
                    port.parse::<u16>()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(bad)?,
                ),
            ),
            None => (s.as_str(), None),
        };
        let net = match net.parse::<Ipv4Addr>() {
            Ok(addr) => Ipv4Net::from(addr),
            Err(_) => net.parse::<Ipv4Net>().map_err(|_| bad())?.trunc(),
        };
        Ok(DeniedEntry(net, port))
    }
}

impl<'de> Deserialize<'de> for Pool4Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not ADDRESS[/LEN][:FIRST-LAST] (e.g. \"192.0.2.1\", \"192.0.2.0/28\" or \"203.0.113.1:61001-65535\")"
            ))
        };
        let (net, range) = match s.split_once(':') {
            Some((net, range)) => {
                let (lo, hi) = range.split_once('-').ok_or_else(bad)?;
                let (lo, hi) = (
                    lo.parse::<u16>().map_err(|_| bad())?,
                    hi.parse::<u16>().map_err(|_| bad())?,
                );
                if lo > hi {
                    return Err(serde::de::Error::custom(format!(
                        "`{s}`: the port range {lo}-{hi} is empty (FIRST must not exceed LAST)"
                    )));
                }
                (net, Some(lo..=hi))
            }
            None => (s.as_str(), None),
        };
        if let Ok(addr) = net.parse::<Ipv4Addr>() {
            return Ok(Pool4Entry(Ipv4Net::from(addr), range));
        }
        net.parse::<Ipv4Net>()
            .map(|n| Pool4Entry(n.trunc(), range))
            .map_err(|_| bad())
    }
}

/// `[dns64]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dns64Section {
    /// Socket addresses to serve UDP and TCP on.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Servers to forward to. Default: the nameservers in /etc/resolv.conf.
    #[serde(default)]
    pub upstream: Vec<SocketAddr>,
    /// Synthesis prefix; defaults to `nat64.prefix`, or 64:ff9b::/96 without `[nat64]`.
    #[serde(default)]
    pub prefix: Option<Ipv6Net>,
    /// Upstream query timeout in milliseconds (per upstream and try).
    #[serde(default = "default_upstream_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Further prefixes, each for the IPv4 ranges it lists (RFC 6147 §5.2).
    #[serde(default)]
    pub prefixes: Vec<Dns64PrefixEntry>,
    /// AAAA records in these ranges count as absent (RFC 6147 §5.1.4).
    #[serde(default = "default_exclude", with = "nets_v6")]
    pub exclude: Vec<Ipv6Net>,
    /// Only A records in these ranges are synthesized.
    #[serde(default = "default_mapped", with = "nets_v4")]
    pub mapped: Vec<Ipv4Net>,
    /// A records in these ranges are never synthesized.
    #[serde(default, with = "nets_v4")]
    pub exclude_mapped: Vec<Ipv4Net>,
    /// Clients that may query at all; others get REFUSED.
    #[serde(default = "default_allow", with = "nets_ip")]
    pub allow: Vec<IpNet>,
    /// Clients that get synthesized answers; others get plain ones.
    #[serde(default = "default_synthesize_for", with = "nets_ip")]
    pub synthesize_for: Vec<IpNet>,
    /// What an AAAA error other than NXDOMAIN (or no answer) leads to.
    #[serde(default)]
    pub servfail: ServfailPolicy,
    /// Replies cached at most; 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Ask A together with AAAA, so that synthesis does not wait for a
    /// second round trip.
    #[serde(default = "default_true")]
    pub parallel_a: bool,
    /// IPv6 clients are counted per prefix of this length for the
    /// per-client limits (an IPv4 client per address).
    #[serde(default = "default_dns64_client_prefix")]
    pub client_prefix: u8,
    /// TCP connections one client may hold open at once (RFC 7766 §6.2.2).
    #[serde(default = "default_tcp_connections_per_client")]
    pub tcp_connections_per_client: usize,
    /// A TCP connection without a query for this long is closed (RFC 7766
    /// §6.2.3); sooner when the listener is crowded.
    #[serde(default = "default_tcp_idle_timeout_ms")]
    pub tcp_idle_timeout_ms: u64,
    /// UDP queries per second one client may send, sustained; 0: no limit.
    #[serde(default = "default_queries_per_second_per_client")]
    pub queries_per_second_per_client: u32,
    /// UDP queries a client that was quiet may send at once.
    #[serde(default = "default_queries_burst_per_client")]
    pub queries_burst_per_client: u32,
    /// Every Nth UDP query over a client's rate gets a TC=1 reply (retry
    /// over TCP) instead of none; 0: all are dropped.
    #[serde(default = "default_rate_limit_slip")]
    pub rate_limit_slip: u32,
    /// What becomes of a client's EDNS Client Subnet option (RFC 7871).
    #[serde(default)]
    pub client_subnet: ClientSubnetPolicy,
    /// Seconds past its TTL a cached reply may still be served when every
    /// upstream fails, or to a client that waited 1.8 s (RFC 8767
    /// serve-stale, TTL 30 s); 0: never.
    #[serde(default)]
    pub serve_stale: u64,
}

/// `dns64.client-subnet`: an EDNS Client Subnet option from a client is
/// removed before the query goes upstream (the default), or passed on;
/// either way the cache keeps only answers that hold for every client
/// (RFC 7871 §7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientSubnetPolicy {
    /// Remove it: upstreams never learn the client's network (RFC 7871
    /// §11.1), and their answers suit every client.
    #[default]
    Strip,
    /// Pass it on; the answers to such queries are relayed (or
    /// synthesized) but not cached: they may be tailored to the subnet.
    Pass,
}

/// One `[[dns64.prefixes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dns64PrefixEntry {
    /// RFC 6052 prefix.
    pub prefix: Ipv6Net,
    /// IPv4 ranges synthesized under `prefix` instead of the main one.
    #[serde(with = "nets_v4")]
    pub ipv4: Vec<Ipv4Net>,
}

/// `dns64.servfail`: RFC 6147 §5.1.2 leaves the choice to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServfailPolicy {
    /// Treat the error as an empty answer and synthesize from A (the RFC's
    /// default).
    #[default]
    Synthesize,
    /// Send the error to the client.
    Pass,
}

impl Dns64Section {
    /// The synthesis policy (after `fill_and_validate`).
    pub fn policy(&self) -> Result<xlat64_dns64::Dns64Policy, ConfigError> {
        let main = dns64_prefix("dns64.prefix", self.prefix.unwrap_or(default_prefix()))?;
        let mut policy = xlat64_dns64::Dns64Policy::new(main);
        for (i, entry) in self.prefixes.iter().enumerate() {
            policy.prefixes.push(xlat64_dns64::PrefixRule {
                prefix: dns64_prefix(&format!("dns64.prefixes[{i}].prefix"), entry.prefix)?,
                ipv4: entry.ipv4.clone(),
            });
        }
        policy.exclude = self.exclude.clone();
        policy.mapped = self.mapped.clone();
        policy.exclude_mapped = self.exclude_mapped.clone();
        policy.synthesize_on_error = self.servfail == ServfailPolicy::Synthesize;
        Ok(policy)
    }
}

fn dns64_prefix(key: &str, net: Ipv6Net) -> Result<Prefix6052, ConfigError> {
    Prefix6052::new(net).map_err(|e| ConfigError::new(key, format!("{net}: {e}")))
}

/// Lists of networks written as prefixes or bare addresses (a /32 or
/// /128), host bits cleared.
macro_rules! net_list {
    ($module:ident, $net:ty, $addr:ty, $what:literal) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            pub(super) fn serialize<S: Serializer>(nets: &[$net], s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(nets.iter().map(|n| n.to_string()))
            }

            pub(super) fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<$net>, D::Error> {
                let texts = Vec::<String>::deserialize(d)?;
                texts
                    .iter()
                    .map(|t| {
                        if let Ok(addr) = t.parse::<$addr>() {
                            return Ok(<$net>::from(addr));
                        }
                        t.parse::<$net>().map(|n| n.trunc()).map_err(|_| {
                            serde::de::Error::custom(format!(concat!("`{}` is not ", $what), t))
                        })
                    })
                    .collect()
            }
        }
    };
}

net_list!(
    nets_v4,
    ipnet::Ipv4Net,
    std::net::Ipv4Addr,
    "an IPv4 address or prefix (e.g. \"10.0.0.0/8\")"
);
net_list!(
    nets_v6,
    ipnet::Ipv6Net,
    std::net::Ipv6Addr,
    "an IPv6 address or prefix (e.g. \"::ffff:0:0/96\")"
);
net_list!(
    nets_ip,
    ipnet::IpNet,
    std::net::IpAddr,
    "an IP address or prefix (e.g. \"fd00::/8\" or \"192.168.0.0/16\")"
);

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Unix socket path for `sessions`, `bib` and `stats`.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
        }
    }
}

fn default_prefix() -> Ipv6Net {
    Prefix6052::WELL_KNOWN.net()
}
fn default_pool4() -> Vec<Pool4Entry> {
    vec![Pool4Entry(Ipv4Net::from(Ipv4Addr::new(192, 0, 2, 1)), None)]
}
fn default_tun() -> String {
    "nat64".to_string()
}
/// Longest session timeout accepted, in seconds (30 days).
const MAX_TIMEOUT_SECS: u64 = 30 * 86400;

fn default_mtu() -> u16 {
    1500
}
fn default_lowest_ipv6_mtu() -> u16 {
    1280
}
fn default_icmp_errors_per_second() -> u32 {
    1000
}
fn default_listen() -> Vec<SocketAddr> {
    vec!["[::]:53".parse().expect("literal socket address")]
}
fn default_upstream_timeout_ms() -> u64 {
    2000
}
fn default_exclude() -> Vec<Ipv6Net> {
    vec![xlat64_dns64::DEFAULT_EXCLUDE]
}
fn default_mapped() -> Vec<Ipv4Net> {
    vec![xlat64_dns64::ALL_IPV4]
}
fn default_allow() -> Vec<IpNet> {
    xlat64_dns64::DEFAULT_ALLOW.to_vec()
}
fn default_synthesize_for() -> Vec<IpNet> {
    xlat64_dns64::EVERYONE.to_vec()
}
fn default_cache_size() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_dns64_client_prefix() -> u8 {
    xlat64_dns64::DEFAULT_CLIENT_PREFIX_V6
}
fn default_tcp_connections_per_client() -> usize {
    8
}
fn default_tcp_idle_timeout_ms() -> u64 {
    10_000
}
fn default_queries_per_second_per_client() -> u32 {
    1000
}
fn default_queries_burst_per_client() -> u32 {
    1000
}
fn default_rate_limit_slip() -> u32 {
    2
}
/// Upper bound of `dns64.tcp-idle-timeout-ms`: RFC 7766 §6.2.3 speaks of
/// seconds, and a long timeout lets idle clients hold the connections.
const MAX_TCP_IDLE_TIMEOUT_MS: u64 = 120_000;
/// Upper bound of `dns64.tcp-connections-per-client`: one listener's
/// connections (`dns64::MAX_TCP_CONNECTIONS`).
const MAX_TCP_CONNECTIONS_PER_CLIENT: usize = crate::dns64::MAX_TCP_CONNECTIONS;
/// Upper bound of `dns64.cache-size` (a cached reply takes about 200 bytes
/// to 1 KiB).
const MAX_CACHE_SIZE: usize = 10_000_000;
fn default_socket() -> PathBuf {
    PathBuf::from("/run/xlat64/control.sock")
}

impl Config {
    /// The embedded defaults used when `run` gets no `--config`:
    /// NAT64 on 64:ff9b::/96 with pool4 192.0.2.1 on TUN `nat64`, DNS64 on
    /// `[::]:53` forwarding to the system's resolvers, control socket
    /// `/run/xlat64/control.sock`.
    pub fn embedded_defaults() -> Result<Config, ConfigError> {
        Config::from_toml("[nat64]\n[dns64]\n[control]\n")
    }

    /// Reads and validates a file.
    ///
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read: a FIFO
    /// would block, a device like /dev/zero would be read until memory ran
    /// out.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |what: String| ConfigError::new("--config", what);
        // Non-blocking, so that opening a FIFO returns at once.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(fail(format!(
                "{} is not a regular file; give the path of a TOML file",
                path.display()
            )));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "{} is {} bytes; a configuration file has at most {MAX_CONFIG_BYTES}",
                path.display(),
                meta.len()
            )));
        }
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_CONFIG_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text)
    }

    /// Parses TOML text, fills in defaults and validates.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_path_to_error's path already ends with an unknown key's name.
            let key = if path == "." {
                "config".to_string()
            } else {
                path
            };
            let message = wording::plain(&key, inner.message());
            let message = match inner.span() {
                Some(span) => {
                    let (line, column) = wording::line_col(text, span.start);
                    format!("line {line}, column {column}: {message}")
                }
                None => message,
            };
            ConfigError::new(key, message)
        })?;
        config.fill_and_validate()?;
        Ok(config)
    }

    /// What a reload to `new` would change (RFC-free bookkeeping for
    /// `xlat64 reload`): the dotted keys that differ, when all of them can
    /// change while running ([`LIVE_KEYS`]); else an error naming the first
    /// that cannot.
    pub fn live_changes(&self, new: &Config) -> Result<Vec<String>, ConfigError> {
        let (old_v, new_v) = (
            toml::Value::try_from(self).expect("config always serializes"),
            toml::Value::try_from(new).expect("config always serializes"),
        );
        let mut changed = Vec::new();
        differences(&old_v, &new_v, "", &mut changed);
        // In the file's order of sections: a NAT64 change first (a new
        // nat64.prefix also changes the dns64.prefix it defaults to).
        let rank = |k: &String| {
            ["nat64", "dns64", "control", "runtime"]
                .iter()
                .position(|s| k.split('.').next() == Some(*s))
                .unwrap_or(4)
        };
        changed.sort_by_key(rank);
        if let Some(key) = changed.iter().find(|k| !LIVE_KEYS.contains(&k.as_str())) {
            // The sockets are bound once: after the privilege drop
            // (`runtime.user`) a port below 1024 could not be bound again.
            let why = if key == "dns64.listen" {
                "cannot change while xlat64 runs: its sockets are bound at start, and after dropping privileges it cannot bind port 53 again; restart it to apply this (nothing was applied)"
            } else {
                "cannot change while xlat64 runs; restart it to apply this (nothing was applied)"
            };
            return Err(ConfigError::new(key.clone(), why));
        }
        Ok(changed)
    }

    /// The effective configuration as TOML (what `check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serializes")
    }

    /// The NAT64 prefix, validated (after `fill_and_validate`).
    pub fn nat64_prefix(&self) -> Option<Prefix6052> {
        self.nat64
            .as_ref()
            .map(|n| Prefix6052::new(n.prefix).expect("validated"))
    }

    /// The DNS64 prefix, validated (after `fill_and_validate`).
    pub fn dns64_prefix(&self) -> Option<Prefix6052> {
        self.dns64
            .as_ref()
            .map(|d| Prefix6052::new(d.prefix.expect("filled by validation")).expect("validated"))
    }

    fn fill_and_validate(&mut self) -> Result<(), ConfigError> {
        crate::logging::parse(&self.runtime.log_level).map_err(|e| {
            ConfigError::new(
                "runtime.log-level",
                format!("{e}; use error, warn, info, debug or trace, or directives like \"info,xlat64::dns64=debug\""),
            )
        })?;
        let nat_prefix = match &self.nat64 {
            Some(nat) => {
                let prefix = Prefix6052::new(nat.prefix).map_err(|e| {
                    ConfigError::new("nat64.prefix", format!("{}: {e}", nat.prefix))
                })?;
                refuse_special_prefix("nat64.prefix", nat.prefix)?;
                if nat.pool4.is_empty() {
                    return Err(ConfigError::new(
                        "nat64.pool4",
                        "must list at least one IPv4 address or prefix",
                    ));
                }
                for (i, a) in nat.pool4.iter().enumerate() {
                    for b in &nat.pool4[i + 1..] {
                        if a.0.contains(&b.0) || b.0.contains(&a.0) {
                            return Err(ConfigError::new(
                                "nat64.pool4",
                                format!("{} and {} overlap; list each address once", a.0, b.0),
                            ));
                        }
                    }
                    if never_a_host(a.0.network()) {
                        return Err(ConfigError::new(
                            "nat64.pool4",
                            format!("{} is not a unicast address usable as a source", a.0),
                        ));
                    }
                }
                if nat.tun.is_empty() || nat.tun.len() > 15 || nat.tun.contains(['/', ' ']) {
                    return Err(ConfigError::new(
                        "nat64.tun",
                        format!("`{}` is not a valid interface name (1 to 15 characters, no '/' or space)", nat.tun),
                    ));
                }
                if nat.mtu < 1280 {
                    return Err(ConfigError::new(
                        "nat64.mtu",
                        format!(
                            "{} is below the IPv6 minimum MTU; use 1280 to 65535",
                            nat.mtu
                        ),
                    ));
                }
                if nat.lowest_ipv6_mtu < 1280 || nat.lowest_ipv6_mtu > nat.mtu {
                    return Err(ConfigError::new(
                        "nat64.lowest-ipv6-mtu",
                        format!(
                            "{} is outside 1280 (the IPv6 minimum MTU) to nat64.mtu ({})",
                            nat.lowest_ipv6_mtu, nat.mtu
                        ),
                    ));
                }
                for a in &nat.rfc6791_v4 {
                    if never_a_host(*a) {
                        return Err(ConfigError::new(
                            "nat64.rfc6791-v4",
                            format!("{a} is not a unicast address usable as a source"),
                        ));
                    }
                }
                if let Some(a) = nat.rfc6791_v6 {
                    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
                        return Err(ConfigError::new(
                            "nat64.rfc6791-v6",
                            format!("{a} is not a unicast address usable as a source"),
                        ));
                    }
                }
                let f = &nat.fragments;
                let fragment_checks = [
                    (
                        "nat64.fragments.max-datagrams",
                        f.max_datagrams,
                        1,
                        65536,
                        "",
                    ),
                    (
                        "nat64.fragments.max-per-source",
                        f.max_per_source,
                        1,
                        f.max_datagrams.max(1),
                        " (and at most max-datagrams)",
                    ),
                    (
                        "nat64.fragments.max-fragments",
                        f.max_fragments,
                        2,
                        8192,
                        "",
                    ),
                ];
                for (key, value, min, max, extra) in fragment_checks {
                    if value < min || value > max {
                        return Err(ConfigError::new(
                            key,
                            format!("{value} is out of range; use {min} to {max}{extra}"),
                        ));
                    }
                }
                if !(2..=60).contains(&f.timeout) {
                    return Err(ConfigError::new(
                        "nat64.fragments.timeout",
                        format!(
                            "{} s is out of range; use 2 to 60 (RFC 6146 section 3.4: at least 2 s)",
                            f.timeout
                        ),
                    ));
                }
                let t = &nat.timeouts;
                let checks = [
                    (
                        "nat64.timeouts.udp",
                        t.udp,
                        120,
                        "RFC 6146 section 4: at least 120 s",
                    ),
                    (
                        "nat64.timeouts.icmp",
                        t.icmp,
                        1,
                        "at least 1 s (RFC 6146 section 4 says 60)",
                    ),
                    (
                        "nat64.timeouts.tcp-established",
                        t.tcp_established,
                        7440,
                        "RFC 6146 section 4: at least 7440 s (2 h 4 min)",
                    ),
                    (
                        "nat64.timeouts.tcp-transitory",
                        t.tcp_transitory,
                        240,
                        "RFC 6146 section 4: at least 240 s",
                    ),
                ];
                for (key, value, min, why) in checks {
                    if value < min {
                        return Err(ConfigError::new(
                            key,
                            format!("{value} is too short; {why}"),
                        ));
                    }
                    // Idle sessions held for longer only hold ports.
                    if value > MAX_TIMEOUT_SECS {
                        return Err(ConfigError::new(
                            key,
                            format!(
                                "{value} is too long; use at most {MAX_TIMEOUT_SECS} s (30 days)"
                            ),
                        ));
                    }
                }
                Some(prefix)
            }
            None => None,
        };
        if let Some(nat) = &mut self.nat64 {
            if let Err(e) = Pool4Entry::to_pool(&nat.pool4) {
                return Err(ConfigError::new("nat64.pool4", e));
            }
            let max = nat.limits.max_sessions();
            if !(1..=MAX_SESSIONS_LIMIT).contains(&max) {
                return Err(ConfigError::new(
                    "nat64.limits.max-sessions",
                    format!("{max} is out of range; use 1 to {MAX_SESSIONS_LIMIT}"),
                ));
            }
            nat.limits.max_sessions = Some(max);
            check_statics(nat)?;
            check_port_block(nat)?;
            if nat.port_reuse_delay > MAX_PORT_REUSE_DELAY {
                return Err(ConfigError::new(
                    "nat64.port-reuse-delay",
                    format!(
                        "{} s is too long; use 0 to {MAX_PORT_REUSE_DELAY} (RFC 6888 REQ-8 asks for at least 120)",
                        nat.port_reuse_delay
                    ),
                ));
            }
            deterministic_of(nat)?;
            if nat.limits.max_simultaneous_opens > MAX_SIMULTANEOUS_OPENS {
                return Err(ConfigError::new(
                    "nat64.limits.max-simultaneous-opens",
                    format!(
                        "{} is out of range; use 0 (hold none) to {MAX_SIMULTANEOUS_OPENS}",
                        nat.limits.max_simultaneous_opens
                    ),
                ));
            }
            if !(32..=128).contains(&nat.limits.client_prefix) {
                return Err(ConfigError::new(
                    "nat64.limits.client-prefix",
                    format!(
                        "{} is out of range; a client is an IPv6 address (128) or a subscriber prefix of 32 to 128 bits, e.g. 64",
                        nat.limits.client_prefix
                    ),
                ));
            }
            if let Some(dns) = &self.dns64 {
                for up in &dns.upstream {
                    if let IpAddr::V4(a) = up.ip() {
                        if let Some(e) = nat.pool4.iter().find(|e| e.0.contains(&a)) {
                            return Err(ConfigError::new(
                                "nat64.pool4",
                                format!(
                                    "{} contains the DNS64 upstream {a}: its answers would be taken for NAT64 replies; use pool4 addresses no host has",
                                    e.0
                                ),
                            ));
                        }
                    }
                }
            }
            let clamp = nat.mss_clamp.unwrap_or(nat.mtu.saturating_sub(60));
            if clamp != 0 && !(536..=nat.mtu.saturating_sub(60)).contains(&clamp) {
                return Err(ConfigError::new(
                    "nat64.mss-clamp",
                    format!(
                        "{clamp} is out of range; use 0 (off) or 536 to {} (nat64.mtu - 60, the IPv6 and TCP headers)",
                        nat.mtu.saturating_sub(60)
                    ),
                ));
            }
            nat.mss_clamp = Some(clamp);
        }
        if let Some(dns) = &mut self.dns64 {
            let net = dns
                .prefix
                .unwrap_or_else(|| nat_prefix.unwrap_or(Prefix6052::WELL_KNOWN).net());
            Prefix6052::new(net)
                .map_err(|e| ConfigError::new("dns64.prefix", format!("{net}: {e}")))?;
            dns.prefix = Some(net);
            if dns.listen.is_empty() {
                return Err(ConfigError::new(
                    "dns64.listen",
                    "must list at least one socket address, e.g. \"[::]:53\"",
                ));
            }
            if dns.upstream.is_empty() {
                dns.upstream = system_resolvers(&dns.listen);
            }
            if dns.upstream.is_empty() {
                return Err(ConfigError::new(
                    "dns64.upstream",
                    "no upstream given and /etc/resolv.conf lists no usable nameserver; give e.g. [\"192.0.2.53:53\"]",
                ));
            }
            for up in &dns.upstream {
                if dns.listen.contains(up) || up.port() == 0 || up.ip().is_unspecified() {
                    return Err(ConfigError::new(
                        "dns64.upstream",
                        format!("{up} is not a usable upstream (unspecified, port 0, or one of our own listen addresses)"),
                    ));
                }
            }
            if dns.serve_stale > MAX_SERVE_STALE {
                return Err(ConfigError::new(
                    "dns64.serve-stale",
                    format!(
                        "{} s is too long; use 0 (off) to {MAX_SERVE_STALE} (7 days; RFC 8767 suggests 1 to 3 days, e.g. serve-stale = 86400)",
                        dns.serve_stale
                    ),
                ));
            }
            if !(1..=MAX_UPSTREAM_TIMEOUT_MS).contains(&dns.upstream_timeout_ms) {
                return Err(ConfigError::new(
                    "dns64.upstream-timeout-ms",
                    format!(
                        "{} is out of range; use 1 to {MAX_UPSTREAM_TIMEOUT_MS} (a client gives up on a query after a few seconds anyway)",
                        dns.upstream_timeout_ms
                    ),
                ));
            }
            validate_dns64(dns)?;
        }
        if self.nat64.is_none() && self.dns64.is_none() {
            return Err(ConfigError::new(
                "config",
                "neither [nat64] nor [dns64] is present; nothing to run",
            ));
        }
        let workers = self.runtime.workers();
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(ConfigError::new(
                "runtime.workers",
                format!("{workers} is out of range; use 1 to {MAX_WORKERS}"),
            ));
        }
        self.runtime.workers = Some(workers);
        if !(1..=256).contains(&self.runtime.io_threads) {
            return Err(ConfigError::new(
                "runtime.io-threads",
                format!("{} is out of range; use 1 to 256", self.runtime.io_threads),
            ));
        }
        if self.control.socket.as_os_str().is_empty() || !self.control.socket.is_absolute() {
            return Err(ConfigError::new(
                "control.socket",
                format!(
                    "`{}` must be an absolute path",
                    self.control.socket.display()
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses a translation prefix no client can use: IPv4-mapped
/// (::ffff:0:0/96, the sockets API's, never on the wire), multicast or
/// link-local.
fn refuse_special_prefix(key: &str, net: Ipv6Net) -> Result<(), ConfigError> {
    let special: [(&str, Ipv6Net); 3] = [
        ("IPv4-mapped", "::ffff:0:0/96".parse().expect("literal")),
        ("multicast", "ff00::/8".parse().expect("literal")),
        ("link-local", "fe80::/10".parse().expect("literal")),
    ];
    for (what, range) in special {
        if range.contains(&net.network()) || net.contains(&range.network()) {
            return Err(ConfigError::new(
                key,
                format!("{net} is {what} ({range}); use a global prefix such as 64:ff9b::/96 or one of your own"),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// The checks against the host `check` and `run` make (its interface
    /// networks in `host`, as `host_addrs::networks` lists them): a pool4
    /// that holds an address of the gateway, alone or with the whole network
    /// it is on (the kernel would deliver the replies to itself, or the
    /// gateway would cut itself off that network), and a prefix that
    /// overlaps a network the gateway is attached to. (A pool4 inside an
    /// uplink network that holds no address of the gateway is allowed: the
    /// upstream router then reaches it by proxy ARP.)
    ///
    /// A pool4 entry that is exactly an address of the gateway, with a port
    /// range, is the exception: the gateway shares its own address (a small
    /// site's one uplink address), see [`Config::shared_with_host`]. Its
    /// range must leave the gateway's own services (below 1024) out.
    pub fn check_host(&self, host: &[IpNet]) -> Result<(), ConfigError> {
        let Some(nat) = &self.nat64 else {
            return Ok(());
        };
        for net in host {
            match net {
                IpNet::V4(n) if !n.addr().is_loopback() => {
                    for e in &nat.pool4 {
                        if e.0.prefix_len() == 32 && e.0.addr() == n.addr() {
                            check_shared_entry(e)?;
                            continue;
                        }
                        // Holding the gateway's address covers holding the
                        // whole network it is on.
                        if e.0.contains(&n.addr()) {
                            return Err(ConfigError::new(
                                "nat64.pool4",
                                format!(
                                    "{} overlaps {n}, a network of this gateway: replies would be delivered to the gateway itself, or it would cut itself off that network; use addresses routed to the gateway that no interface holds",
                                    e.0
                                ),
                            ));
                        }
                    }
                }
                IpNet::V6(n) if !n.addr().is_loopback() && !n.addr().is_unicast_link_local() => {
                    let prefix = nat.prefix;
                    if prefix.contains(&n.addr()) || n.contains(&prefix.network()) {
                        return Err(ConfigError::new(
                            "nat64.prefix",
                            format!(
                                "{prefix} overlaps {n}, a network this gateway is attached to; use a prefix of its own (for example 64:ff9b::/96)"
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The `[dns64]` keys beyond listen/upstream/prefix.
/// `[[nat64.static]]`: inside pool4, outside the prefix, no transport
/// address twice on either side.
/// The keys a reload applies to a running daemon; a change to any other
/// is refused (and nothing applied).
pub const LIVE_KEYS: &[&str] = &[
    "nat64.timeouts.udp",
    "nat64.timeouts.icmp",
    "nat64.timeouts.tcp-established",
    "nat64.timeouts.tcp-transitory",
    "nat64.filtering",
    "nat64.drop-externally-initiated-tcp",
    "nat64.deny-destinations",
    "nat64.icmp-errors-per-second",
    "nat64.mss-clamp",
    "nat64.lowest-ipv6-mtu",
    "nat64.rfc6791-v4",
    "nat64.port-reuse-delay",
    "nat64.limits.max-sessions",
    "nat64.limits.max-sessions-per-client",
    "nat64.limits.max-ports-per-client",
    "nat64.limits.max-new-bindings-per-second",
    "nat64.limits.max-simultaneous-opens",
    "nat64.pool4",
    "nat64.log.bindings",
    "runtime.log-level",
    // Every [dns64] key but `listen` (see `live_changes`).
    "dns64.upstream",
    "dns64.upstream-timeout-ms",
    "dns64.allow",
    "dns64.synthesize-for",
    "dns64.parallel-a",
    "dns64.cache-size",
    "dns64.servfail",
    "dns64.prefix",
    "dns64.prefixes",
    "dns64.exclude",
    "dns64.mapped",
    "dns64.exclude-mapped",
    "dns64.client-prefix",
    "dns64.tcp-connections-per-client",
    "dns64.tcp-idle-timeout-ms",
    "dns64.queries-per-second-per-client",
    "dns64.queries-burst-per-client",
    "dns64.rate-limit-slip",
    "dns64.client-subnet",
    "dns64.serve-stale",
];

/// The dotted keys (under `path`) whose values differ between `a` and
/// `b`; a list counts as one value.
fn differences(a: &toml::Value, b: &toml::Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => differences(p, q, &sub, out),
                    _ => out.push(sub),
                }
            }
        }
        (p, q) if p != q => out.push(path.to_string()),
        _ => {}
    }
}

/// The ports of a pool4 entry without a range of its own.
const DEFAULT_SPAN: (u16, u16) = (
    *xlat64_nat::pool4::DEFAULT_PORTS.start(),
    *xlat64_nat::pool4::DEFAULT_PORTS.end(),
);

/// `port-block`: 0, or a power of two from 8 to 32768 that leaves every
/// pool4 entry at least one whole block (blocks are aligned: block `b` is
/// ports `b * N` to `b * N + N - 1`).
fn check_port_block(nat: &Nat64Section) -> Result<(), ConfigError> {
    let n = nat.port_block;
    if n == 0 {
        return Ok(());
    }
    if !(n.is_power_of_two() && (8..=32768).contains(&n)) {
        return Err(ConfigError::new(
            "nat64.port-block",
            format!(
                "{n} is not a power of two from 8 to 32768; use 0 (ports one by one) or e.g. 512"
            ),
        ));
    }
    for e in &nat.pool4 {
        let (lo, hi) = e.1.clone().map_or(DEFAULT_SPAN, |r| (*r.start(), *r.end()));
        let first = u32::from(lo).div_ceil(u32::from(n));
        let end = (u32::from(hi) + 1) / u32::from(n);
        if first >= end {
            return Err(ConfigError::new(
                "nat64.pool4",
                format!("the range {lo}-{hi} of {} holds no whole block of {n} ports (blocks start at multiples of {n}); widen it or lower nat64.port-block", e.0.addr()),
            ));
        }
    }
    Ok(())
}

/// The deterministic mapping of `[nat64.deterministic]`, if any, or what
/// keeps it from fitting.
fn deterministic_of(nat: &Nat64Section) -> Result<Option<xlat64_nat::Deterministic>, ConfigError> {
    let Some(section) = &nat.deterministic else {
        return Ok(None);
    };
    let key = "nat64.deterministic.clients";
    if nat.port_block == 0 {
        return Err(ConfigError::new(
            key,
            "deterministic allocation hands out port blocks: set nat64.port-block too, e.g. 2048",
        ));
    }
    // Blocks serve every protocol: the span all entries share.
    let spans: Vec<(u16, u16)> = nat
        .pool4
        .iter()
        .map(|e| e.1.clone().map_or(DEFAULT_SPAN, |r| (*r.start(), *r.end())))
        .collect();
    if spans.windows(2).any(|w| w[0] != w[1]) {
        return Err(ConfigError::new(
            "nat64.pool4",
            "with deterministic allocation every pool4 entry needs the same port range (each address holds the same blocks)",
        ));
    }
    let (lo, hi) = spans.first().copied().unwrap_or(DEFAULT_SPAN);
    let addrs = Pool4Entry::to_pool(&nat.pool4)
        .map_err(|e| ConfigError::new("nat64.pool4", e))?
        .addrs()
        .len();
    xlat64_nat::Deterministic::new(
        u128::from(section.clients.network()),
        section.clients.prefix_len(),
        nat.limits.client_prefix,
        lo..=hi,
        nat.port_block,
        addrs,
    )
    .map(Some)
    .map_err(|e| ConfigError::new(key, format!("{e}; use a longer range, a longer nat64.limits.client-prefix, smaller blocks or more pool4 addresses")))
}

impl Nat64Section {
    /// The deterministic mapping (RFC 7422 §2) of a validated section.
    pub fn deterministic(&self) -> Option<xlat64_nat::Deterministic> {
        deterministic_of(self).ok().flatten()
    }
}

/// A pool4 entry that is an address of the gateway itself: it needs a port
/// range, above the gateway's own services.
fn check_shared_entry(e: &Pool4Entry) -> Result<(), ConfigError> {
    let addr = e.0.addr();
    match &e.1 {
        None => Err(ConfigError::new(
            "nat64.pool4",
            format!("{addr} is an address of this gateway: share it by a port range that leaves the gateway's own ports out, e.g. \"{addr}:61001-65535\""),
        )),
        Some(r) if *r.start() > MAX_SHARED_PORT => Err(ConfigError::new(
            "nat64.pool4",
            format!("{addr} is an address of this gateway: its shared range must hold ports below 65535, which policy rules cannot match, e.g. \"{addr}:61001-65535\""),
        )),
        Some(r) if *r.start() < 1024 => Err(ConfigError::new(
            "nat64.pool4",
            format!("{addr} is an address of this gateway: its port range {}-{} would take the ports of the gateway's own services (below 1024); use a range above them, e.g. \"{addr}:61001-65535\"", r.start(), r.end()),
        )),
        Some(_) => Ok(()),
    }
}

/// The highest port of a pool4 address shared with the host: the kernel's
/// policy rules cannot match port 65535 (it refuses port ranges that end
/// there), so a shared range ending at 65535 ends at 65534 instead.
pub const MAX_SHARED_PORT: u16 = 65534;

/// A pool4 address the gateway host holds itself, shared with it: the
/// TCP and UDP ports and ICMP identifiers of `ports` are the NAT's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAddress {
    /// The address (one of the host's interfaces').
    pub addr: Ipv4Addr,
    /// The NAT's share of its ports.
    pub ports: std::ops::RangeInclusive<u16>,
}

impl Config {
    /// The pool4 entries that are an address of the host (`host`, as
    /// `host_addrs::networks` lists them), with their port ranges: the
    /// daemon steers those ranges to the TUN device by policy routing.
    pub fn shared_with_host(&self, host: &[IpNet]) -> Vec<SharedAddress> {
        let Some(nat) = &self.nat64 else {
            return Vec::new();
        };
        nat.pool4
            .iter()
            .filter(|e| e.0.prefix_len() == 32)
            .filter(|e| host.iter().any(|n| n.addr() == IpAddr::V4(e.0.addr())))
            .filter_map(|e| {
                e.1.clone().map(|ports| SharedAddress {
                    addr: e.0.addr(),
                    ports: *ports.start()..=(*ports.end()).min(MAX_SHARED_PORT),
                })
            })
            .collect()
    }

    /// The pool4 entries as the NAT uses them on this host (`host`): those
    /// shared with the host end at [`MAX_SHARED_PORT`].
    pub fn pool4_on_host(&self, host: &[IpNet]) -> Vec<Pool4Entry> {
        let shared = self.shared_with_host(host);
        let Some(nat) = &self.nat64 else {
            return Vec::new();
        };
        nat.pool4
            .iter()
            .map(
                |e| match shared.iter().find(|s| e.0 == Ipv4Net::from(s.addr)) {
                    Some(s) => Pool4Entry(e.0, Some(s.ports.clone())),
                    None => e.clone(),
                },
            )
            .collect()
    }

    /// Warnings `check` prints and `run` logs about the host: a shared
    /// address whose range overlaps the kernel's local port range
    /// (`net.ipv4.ip_local_port_range`, `local_ports`), from which the
    /// host's own connections take their ports: replies to those would go
    /// to the NAT.
    pub fn host_warnings(&self, host: &[IpNet], local_ports: Option<(u16, u16)>) -> Vec<String> {
        let Some((lo, hi)) = local_ports else {
            return Vec::new();
        };
        self.shared_with_host(host)
            .iter()
            .filter(|s| *s.ports.start() <= hi && lo <= *s.ports.end())
            .map(|s| {
                format!(
                    "nat64.pool4: the range {}-{} of {}, an address of this gateway, overlaps the kernel's local port range {lo}-{hi} (net.ipv4.ip_local_port_range): the gateway's own connections would lose replies to the NAT; narrow one of them (the pool4 range, or sysctl net.ipv4.ip_local_port_range)",
                    s.ports.start(),
                    s.ports.end(),
                    s.addr,
                )
            })
            .collect()
    }
}

fn check_statics(nat: &Nat64Section) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, st) in nat.statics.iter().enumerate() {
        let key = |k: &str| format!("nat64.static[{i}].{k}");
        if !nat.pool4.iter().any(|p| p.0.contains(st.v4.ip())) {
            return Err(ConfigError::new(
                key("v4"),
                format!("{} is not in pool4: a static binding publishes a pool4 address, e.g. \"{}:8080\"", st.v4.ip(), nat.pool4.first().map(|p| p.0.addr().to_string()).unwrap_or_default()),
            ));
        }
        let range = nat
            .pool4
            .iter()
            .find(|p| p.0.contains(st.v4.ip()))
            .and_then(|p| p.1.clone());
        if let Some(r) = range.filter(|r| !r.contains(&st.v4.port())) {
            return Err(ConfigError::new(
                key("v4"),
                format!(
                    "port {} is outside the range {}-{} of its pool4 entry; publish a port of that range",
                    st.v4.port(),
                    r.start(),
                    r.end()
                ),
            ));
        }
        if nat.prefix.contains(st.v6.ip()) {
            return Err(ConfigError::new(
                key("v6"),
                format!("{} is under the NAT64 prefix {}: a static binding's server is an IPv6 host of the client side", st.v6.ip(), nat.prefix),
            ));
        }
        if !seen.insert((st.protocol, std::net::SocketAddr::V6(st.v6))) {
            return Err(ConfigError::new(
                key("v6"),
                format!("{} is bound twice for {:?}", st.v6, st.protocol),
            ));
        }
        if !seen.insert((st.protocol, std::net::SocketAddr::V4(st.v4))) {
            return Err(ConfigError::new(
                key("v4"),
                format!("{} is published twice for {:?}", st.v4, st.protocol),
            ));
        }
    }
    Ok(())
}

fn validate_dns64(dns: &Dns64Section) -> Result<(), ConfigError> {
    let main = dns64_prefix("dns64.prefix", dns.prefix.unwrap_or(default_prefix()))?;
    let mut seen = vec![main];
    for (i, entry) in dns.prefixes.iter().enumerate() {
        let key = format!("dns64.prefixes[{i}]");
        let prefix = dns64_prefix(&format!("{key}.prefix"), entry.prefix)?;
        if seen.contains(&prefix) {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                format!("{} is already in use (dns64.prefix or an earlier entry); list each prefix once", entry.prefix),
            ));
        }
        seen.push(prefix);
        if entry.ipv4.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.ipv4"),
                "must list the IPv4 ranges synthesized under this prefix, e.g. [\"198.51.100.0/24\"]",
            ));
        }
        if prefix.is_well_known() {
            if let Some(n) = entry.ipv4.iter().find(|n| {
                !xlat64_packet::special::allowed_under_well_known(n.network())
                    || !xlat64_packet::special::allowed_under_well_known(n.broadcast())
            }) {
                return Err(ConfigError::new(
                    format!("{key}.ipv4"),
                    format!("{n} holds non-global IPv4 addresses, which the well-known prefix 64:ff9b::/96 must not carry (RFC 6052 section 3.1); use a network-specific prefix"),
                ));
            }
        }
    }
    if dns.mapped.is_empty() {
        return Err(ConfigError::new(
            "dns64.mapped",
            "must list at least one IPv4 range (default [\"0.0.0.0/0\"]: every address)",
        ));
    }
    if dns.allow.is_empty() {
        return Err(ConfigError::new(
            "dns64.allow",
            "must list at least one client network, e.g. [\"fd00::/8\", \"127.0.0.0/8\"]; without [dns64] there is no DNS64",
        ));
    }
    if !(32..=128).contains(&dns.client_prefix) {
        return Err(ConfigError::new(
            "dns64.client-prefix",
            format!(
                "{} is out of range; use 32 to 128 (64: each /64 is one client, as a subscriber's LAN or a phone is)",
                dns.client_prefix
            ),
        ));
    }
    if !(1..=MAX_TCP_CONNECTIONS_PER_CLIENT).contains(&dns.tcp_connections_per_client) {
        return Err(ConfigError::new(
            "dns64.tcp-connections-per-client",
            format!(
                "{} is out of range; use 1 to {MAX_TCP_CONNECTIONS_PER_CLIENT} (the connections of one listener)",
                dns.tcp_connections_per_client
            ),
        ));
    }
    if !(100..=MAX_TCP_IDLE_TIMEOUT_MS).contains(&dns.tcp_idle_timeout_ms) {
        return Err(ConfigError::new(
            "dns64.tcp-idle-timeout-ms",
            format!(
                "{} is out of range; use 100 to {MAX_TCP_IDLE_TIMEOUT_MS} (RFC 7766 section 6.2.3: idle connections are closed after seconds, not minutes)",
                dns.tcp_idle_timeout_ms
            ),
        ));
    }
    if dns.queries_per_second_per_client != 0 && dns.queries_burst_per_client == 0 {
        return Err(ConfigError::new(
            "dns64.queries-burst-per-client",
            "must be at least 1 while queries-per-second-per-client limits the rate (e.g. the same number); set queries-per-second-per-client = 0 for no limit",
        ));
    }
    if dns.queries_per_second_per_client > 1_000_000_000 {
        return Err(ConfigError::new(
            "dns64.queries-per-second-per-client",
            format!(
                "{} is too large; use 0 (no limit) to 1000000000",
                dns.queries_per_second_per_client
            ),
        ));
    }
    if dns.cache_size > MAX_CACHE_SIZE {
        return Err(ConfigError::new(
            "dns64.cache-size",
            format!(
                "{} is too large; use 0 (no cache) to {MAX_CACHE_SIZE}",
                dns.cache_size
            ),
        ));
    }
    Ok(())
}

/// The nameservers of /etc/resolv.conf, port 53, minus our own listen addresses.
fn system_resolvers(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|sa| !listen.contains(sa) && !sa.ip().is_unspecified())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_every_key() {
        let c = Config::from_toml("[nat64]\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n").unwrap();
        let nat = c.nat64.as_ref().unwrap();
        assert_eq!(nat.prefix.to_string(), "64:ff9b::/96");
        assert_eq!(nat.tun, "nat64");
        assert_eq!(nat.mtu, 1500);
        assert!(nat.offload);
        assert_eq!(
            c.dns64.as_ref().unwrap().prefix.unwrap().to_string(),
            "64:ff9b::/96"
        );
        let text = c.to_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn rfc6888_req_6_deny_destinations_parse_and_round_trip() {
        let c = Config::from_toml(
            "[nat64]\ndeny-destinations = [\"198.51.100.0/24\", \"203.0.113.5:25\", \"192.0.2.77\"]\n",
        )
        .unwrap();
        let d = &c.nat64.as_ref().unwrap().deny_destinations;
        assert_eq!(
            d[1],
            DeniedEntry("203.0.113.5/32".parse().unwrap(), Some(25))
        );
        assert_eq!(d[2].1, None);
        let text = c.to_toml();
        assert!(text.contains("\"203.0.113.5:25\""), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c);
        for bad in [
            "\"203.0.113.5:0\"",
            "\"203.0.113.5:smtp\"",
            "\"2001:db8::1\"",
        ] {
            let e =
                Config::from_toml(&format!("[nat64]\ndeny-destinations = [{bad}]\n")).unwrap_err();
            assert!(e.key.contains("deny-destinations"), "{bad}: {e}");
        }
    }

    /// The packaged /etc/xlat64/xlat64.toml only comments the defaults:
    /// installed, xlat64 runs as on its embedded defaults.
    #[test]
    fn the_packaged_configuration_is_the_defaults() {
        let text = include_str!("../../../../contrib/xlat64.toml");
        assert_eq!(
            Config::from_toml(text).unwrap(),
            Config::embedded_defaults().unwrap()
        );
    }

    #[test]
    fn a_reload_applies_live_keys_and_refuses_the_others() {
        let base = "[nat64]\npool4 = [\"192.0.2.1\"]\n\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n";
        let old = Config::from_toml(base).unwrap();
        assert_eq!(old.live_changes(&old).unwrap(), Vec::<String>::new());
        let new = Config::from_toml(&base.replace(
            "[dns64]",
            "filtering = \"address-dependent\"\n[nat64.timeouts]\nudp = 120\n\n[dns64]",
        ))
        .unwrap();
        assert_eq!(
            old.live_changes(&new).unwrap(),
            vec!["nat64.filtering", "nat64.timeouts.udp"]
        );
        let moved = Config::from_toml(
            &base.replace("pool4 = [", "prefix = \"2001:db8:64::/96\"\npool4 = ["),
        )
        .unwrap();
        let e = old.live_changes(&moved).unwrap_err();
        assert_eq!(e.key, "nat64.prefix");
        assert!(e.message.contains("restart"), "{e}");
    }

    /// Every `[dns64]` key but `listen` is live; adding or removing the
    /// section is not.
    #[test]
    fn a_reload_applies_dns64_keys_but_not_listen_or_the_section() {
        let base = "[dns64]
upstream = [\"192.0.2.53:53\"]\n";
        let old = Config::from_toml(base).unwrap();
        let new = Config::from_toml(&format!(
            "{}prefix = \"2001:db8:64::/96\"\nallow = [\"::/0\"]\ncache-size = 0\n\
             exclude-mapped = [\"10.0.0.0/8\"]\n\n[[dns64.prefixes]]\nprefix = \"2001:db8:46::/96\"\nipv4 = [\"203.0.113.0/24\"]\n",
            base.replace("192.0.2.53:53", "192.0.2.54:53")
        ))
        .unwrap();
        assert_eq!(
            old.live_changes(&new).unwrap(),
            vec![
                "dns64.allow",
                "dns64.cache-size",
                "dns64.exclude-mapped",
                "dns64.prefix",
                "dns64.prefixes",
                "dns64.upstream"
            ]
        );
        let listen = Config::from_toml(&format!("{base}listen = [\"[::1]:5353\"]\n")).unwrap();
        let e = old.live_changes(&listen).unwrap_err();
        assert_eq!(e.key, "dns64.listen");
        assert!(
            e.message.contains("port 53") && e.message.contains("restart"),
            "{e}"
        );
        let gone = Config::from_toml("[nat64]\npool4 = [\"192.0.2.1\"]\n").unwrap();
        let with_nat =
            Config::from_toml(&format!("[nat64]\npool4 = [\"192.0.2.1\"]\n\n{base}")).unwrap();
        assert_eq!(with_nat.live_changes(&gone).unwrap_err().key, "dns64");
        assert_eq!(gone.live_changes(&with_nat).unwrap_err().key, "dns64");
    }

    #[test]
    fn rfc7422_port_block_is_a_power_of_two_that_fits_every_entry() {
        let with = |block: &str, pool: &str| {
            Config::from_toml(&format!(
                "[nat64]\npool4 = [\"{pool}\"]\nport-block = {block}\n"
            ))
        };
        let c = with("512", "192.0.2.1:61001-65535").unwrap();
        assert_eq!(c.nat64.as_ref().unwrap().port_block, 512);
        assert!(c.to_toml().contains("port-block = 512"));
        with("0", "192.0.2.1").unwrap();
        for bad in ["3", "4", "65535", "1000"] {
            let e = with(bad, "192.0.2.1").unwrap_err();
            assert_eq!(e.key, "nat64.port-block", "{bad}: {e}");
        }
        // 61001-61400 holds no aligned block of 512 (61440 is the first).
        let e = with("512", "192.0.2.1:61001-61400").unwrap_err();
        assert_eq!(e.key, "nat64.pool4");
        assert!(e.message.contains("no whole block"), "{e}");
    }

    #[test]
    fn rfc7422_2_deterministic_allocation_must_fit() {
        let with = |keys: &str| {
            Config::from_toml(&format!(
                "[nat64]\npool4 = [\"192.0.2.0/31\"]\n{keys}\n[nat64.limits]\nclient-prefix = 56\n\
                 [nat64.deterministic]\nclients = \"2001:db8:100::/48\"\n"
            ))
        };
        // 256 clients, 2 addresses of 31 blocks of 2048 (1-65535): 62.
        let e = with("port-block = 2048").unwrap_err();
        assert_eq!(e.key, "nat64.deterministic.clients");
        assert!(e.message.contains("256 clients"), "{e}");
        let c = with("port-block = 256").unwrap();
        let d = c.nat64.as_ref().unwrap().deterministic().unwrap();
        assert_eq!((d.per_address, d.first), (255, 1));
        assert!(c.to_toml().contains("[nat64.deterministic]"));
        let e = with("").unwrap_err();
        assert!(e.message.contains("port-block"), "{e}");
        let e = Config::from_toml(
            "[nat64]\npool4 = [\"192.0.2.1\", \"192.0.2.2:61440-65535\"]\nport-block = 512\n\
             [nat64.deterministic]\nclients = \"2001:db8:100::/124\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "nat64.pool4");
    }

    #[test]
    fn rfc6146_3_1_static_bindings_are_checked_and_round_trip() {
        let base = "[nat64]\npool4 = [\"192.0.2.1\"]\nfiltering = \"address-dependent\"\n";
        let one = "[[nat64.static]]\nprotocol = \"tcp\"\nv6 = \"[2001:db8:1::5]:80\"\nv4 = \"192.0.2.1:8080\"\n";
        let c = Config::from_toml(&format!("{base}{one}")).unwrap();
        let nat = c.nat64.as_ref().unwrap();
        assert_eq!(nat.statics.len(), 1);
        assert_eq!(nat.filtering, FilteringMode::AddressDependent);
        let text = c.to_toml();
        assert!(text.contains("[[nat64.static]]"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
        let err = |extra: &str| Config::from_toml(&format!("{base}{one}{extra}")).unwrap_err();
        let e = err("[[nat64.static]]\nprotocol = \"tcp\"\nv6 = \"[2001:db8:1::6]:80\"\nv4 = \"192.0.2.1:8080\"\n");
        assert_eq!(e.key, "nat64.static[1].v4");
        assert!(e.message.contains("twice"));
        let e = err("[[nat64.static]]\nprotocol = \"udp\"\nv6 = \"[2001:db8:1::6]:53\"\nv4 = \"198.51.100.1:53\"\n");
        assert_eq!(e.key, "nat64.static[1].v4");
        assert!(e.message.contains("not in pool4"));
        // The same transport addresses for another protocol are fine.
        Config::from_toml(&format!("{base}{}", one.replace("tcp", "udp") + one)).unwrap();
        let e = Config::from_toml(&format!("{base}[[nat64.static]]\nprotocol = \"sctp\"\nv6 = \"[2001:db8:1::6]:53\"\nv4 = \"192.0.2.1:53\"\n")).unwrap_err();
        assert!(e.key.contains("static"), "{e:?}");
        // A ranged pool4 entry publishes only ports of its range.
        let ranged = "[nat64]\npool4 = [\"192.0.2.1:61001-65535\"]\n";
        let e = Config::from_toml(&format!("{ranged}{one}")).unwrap_err();
        assert_eq!(e.key, "nat64.static[0].v4");
        assert!(e.message.contains("outside the range 61001-65535"), "{e}");
        Config::from_toml(&format!("{ranged}{}", one.replace(":8080", ":61080"))).unwrap();
    }

    #[test]
    fn pool4_entries_with_port_ranges() {
        let c =
            Config::from_toml("[nat64]\npool4 = [\"203.0.113.1:61001-65535\", \"192.0.2.0/30\"]\n")
                .unwrap();
        let pool = &c.nat64.as_ref().unwrap().pool4;
        assert_eq!(pool[0].1, Some(61001..=65535));
        assert_eq!(pool[1].1, None);
        let text = c.to_toml();
        assert!(text.contains("203.0.113.1:61001-65535"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c);
        for bad in ["192.0.2.1:80", "192.0.2.1:2000-1000", "192.0.2.1:x-9"] {
            let e = Config::from_toml(&format!("[nat64]\npool4 = [\"{bad}\"]\n")).unwrap_err();
            assert!(e.key.contains("pool4"), "{bad}: {e:?}");
        }
        let e = Config::from_toml("[nat64]\npool4 = [\"192.0.2.0/30\", \"192.0.2.1:2000-3000\"]\n")
            .unwrap_err();
        assert!(e.message.contains("overlap"), "{e:?}");
    }

    #[test]
    fn rfc6888_client_limits_and_prefix() {
        let c = Config::from_toml(
            "[nat64]\n[nat64.limits]\nclient-prefix = 56\nmax-ports-per-client = 0\n",
        )
        .unwrap();
        let limits = &c.nat64.as_ref().unwrap().limits;
        assert_eq!(
            (
                limits.client_prefix,
                limits.max_ports_per_client,
                limits.max_sessions_per_client
            ),
            (56, 0, 10_000)
        );
        assert_eq!(limit(0), usize::MAX);
        let e = Config::from_toml("[nat64]\n[nat64.limits]\nclient-prefix = 24\n").unwrap_err();
        assert_eq!(e.key, "nat64.limits.client-prefix");
    }

    #[test]
    fn offload_is_a_boolean_and_can_be_turned_off() {
        let c = Config::from_toml("[nat64]\noffload = false\n").unwrap();
        assert!(!c.nat64.as_ref().unwrap().offload);
        let text = c.to_toml();
        assert!(text.contains("offload = false"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
        let e = Config::from_toml("[nat64]\noffload = \"yes\"\n").unwrap_err();
        assert_eq!(e.key, "nat64.offload");
    }

    #[test]
    fn refuses_what_run_cannot_honour_naming_the_key() {
        let cases = [
            ("[nat64]\nprefix = \"::ffff:0:0/96\"\n", "nat64.prefix"),
            ("[nat64]\nprefix = \"ff0e::/96\"\n", "nat64.prefix"),
            ("[nat64]\nprefix = \"fe80::/64\"\n", "nat64.prefix"),
            ("[nat64]\npool4 = [\"10.0.0.0/15\"]\n", "nat64.pool4"),
            ("[nat64]\ntimeouts.udp = 9223372036854775807\n", "nat64.timeouts.udp"),
            ("[nat64]\nmss-clamp = 100\n", "nat64.mss-clamp"),
            ("[nat64]\nmss-clamp = 1441\n", "nat64.mss-clamp"),
            ("[nat64]\nlimits.max-sessions = 0\n", "nat64.limits.max-sessions"),
            ("[nat64]\n[runtime]\nworkers = 0\n", "runtime.workers"),
            ("[nat64]\n[runtime]\nworkers = 65\n", "runtime.workers"),
            (
                "[nat64]\npool4 = [\"192.0.2.0/24\"]\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n",
                "nat64.pool4",
            ),
            (
                "[dns64]\nupstream = [\"192.0.2.53:53\"]\nupstream-timeout-ms = 9223372036854775807\n",
                "dns64.upstream-timeout-ms",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let c = Config::from_toml("[nat64]\nmss-clamp = 0\n").unwrap();
        assert_eq!(c.nat64.unwrap().mss_clamp(), None);
        let c = Config::from_toml("[nat64]\n").unwrap();
        assert_eq!(c.nat64.as_ref().unwrap().mss_clamp(), Some(1440));
        assert!(c.runtime.workers.is_some_and(|w| w >= 1));
        assert!(c
            .nat64
            .unwrap()
            .limits
            .max_sessions
            .is_some_and(|m| m >= 65536));
    }

    #[test]
    fn host_networks_that_pool4_or_the_prefix_would_break_are_refused() {
        let c = Config::from_toml(
            "[nat64]\nprefix = \"2001:db8:64::/96\"\npool4 = [\"192.0.2.0/28\"]\n",
        )
        .unwrap();
        let host =
            |nets: &[&str]| -> Vec<IpNet> { nets.iter().map(|n| n.parse().unwrap()).collect() };
        assert!(c
            .check_host(&host(&[
                "127.0.0.1/8",
                "198.51.100.1/24",
                "2001:db8:1::1/64",
                "fe80::1/64"
            ]))
            .is_ok());
        // pool4 holds the gateway's own address.
        let e = c.check_host(&host(&["192.0.2.5/24"])).unwrap_err();
        assert_eq!(e.key, "nat64.pool4");
        // pool4 holds a whole network the gateway is on.
        let e = c.check_host(&host(&["192.0.2.9/30"])).unwrap_err();
        assert_eq!(e.key, "nat64.pool4", "{e}");
        // A pool4 inside the uplink network, without the gateway's address.
        assert!(c.check_host(&host(&["192.0.2.100/24"])).is_ok());
        // The gateway's own address, shared by a port range above its
        // services: allowed, and listed as shared.
        let shared = |entry: &str| {
            Config::from_toml(&format!(
                "[nat64]\nprefix = \"2001:db8:64::/96\"\npool4 = [\"{entry}\"]\n"
            ))
            .unwrap()
        };
        let uplink = host(&["192.0.2.5/24"]);
        let c = shared("192.0.2.5:61001-65535");
        assert!(c.check_host(&uplink).is_ok());
        assert_eq!(
            c.shared_with_host(&uplink),
            vec![SharedAddress {
                addr: "192.0.2.5".parse().unwrap(),
                ports: 61001..=65534
            }]
        );
        assert!(c.host_warnings(&uplink, Some((32768, 60999))).is_empty());
        let w = c.host_warnings(&uplink, Some((32768, 61500)));
        assert!(w[0].contains("ip_local_port_range"), "{w:?}");
        // Without a range, or with one over the services' ports: refused.
        let e = shared("192.0.2.5").check_host(&uplink).unwrap_err();
        assert!(e.to_string().contains("192.0.2.5:61001-65535"), "{e}");
        let e = shared("192.0.2.5:22-65535")
            .check_host(&uplink)
            .unwrap_err();
        assert!(e.to_string().contains("below 1024"), "{e}");
        // The prefix overlaps an attached network.
        let e = c.check_host(&host(&["2001:db8:64::1/64"])).unwrap_err();
        assert_eq!(e.key, "nat64.prefix");
        let e = c.check_host(&host(&["2001:db8::1/32"])).unwrap_err();
        assert_eq!(e.key, "nat64.prefix");
    }

    #[test]
    fn a_config_path_that_is_not_a_regular_file_is_refused_at_once() {
        for path in ["/dev/zero", "/tmp"] {
            let e = Config::load(Path::new(path)).unwrap_err();
            assert_eq!(e.key, "--config");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let fifo = std::env::temp_dir().join(format!("xlat64-fifo-{}", std::process::id()));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string; the FIFO is removed below.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = Config::load(&fifo).unwrap_err();
        let _ = std::fs::remove_file(&fifo);
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[nat64]\nprefx = \"64:ff9b::/96\"\n").unwrap_err();
        assert_eq!(e.key, "nat64.prefx");
        assert!(e.message.contains("prefix"), "{e}");
        let e = Config::from_toml("[nat65]\n").unwrap_err();
        assert_eq!(e.key, "nat65");
    }

    #[test]
    fn bad_prefix_length_is_named_rfc6052_2_2() {
        let e = Config::from_toml("[nat64]\nprefix = \"2001:db8::/33\"\n").unwrap_err();
        assert_eq!(e.key, "nat64.prefix");
        assert!(e.message.contains("/96"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_toml("[nat64]\npool4 = [\"300.1.1.1\"]\n").unwrap_err();
        assert_eq!(e.key, "nat64.pool4[0]");
        let e = Config::from_toml("[nat64]\npool4 = []\n").unwrap_err();
        assert_eq!(e.key, "nat64.pool4");
        let e = Config::from_toml(
            "[nat64.timeouts]\nudp = 10\nicmp = 60\ntcp-established = 7440\ntcp-transitory = 240\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "nat64.timeouts.udp");
        let e = Config::from_toml(
            "[nat64.timeouts]\nudp = 9223372036854775807\nicmp = 60\ntcp-established = 7440\ntcp-transitory = 240\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "nat64.timeouts.udp");
        assert!(e.message.contains("too long"), "{e}");
        let e = Config::from_toml("[dns64]\nlisten = [\"nope\"]\nupstream = [\"192.0.2.53:53\"]\n")
            .unwrap_err();
        assert_eq!(e.key, "dns64.listen[0]");
    }

    /// RFC 7915 §4 and RFC 6146 §3.4 settings: defaults, round trip, bounds.
    #[test]
    fn rfc7915_keys_have_defaults_and_bounds() {
        let c = Config::from_toml("[nat64]\n").unwrap();
        let nat = c.nat64.as_ref().unwrap();
        assert_eq!(nat.lowest_ipv6_mtu, 1280);
        assert_eq!(nat.icmp_errors_per_second, 1000);
        assert!(nat.rfc6791_v4.is_empty());
        assert_eq!(nat.rfc6791_v6, None);
        assert_eq!(nat.fragments.timeout, 2);
        assert_eq!(nat.fragments.max_datagrams, 256);
        let text = c.to_toml();
        assert!(text.contains("lowest-ipv6-mtu = 1280"), "{text}");
        assert!(text.contains("[nat64.fragments]"), "{text}");

        let c = Config::from_toml(
            "[nat64]\nmtu = 9000\nlowest-ipv6-mtu = 1500\nrfc6791-v4 = [\"192.0.2.9\"]\n\
             rfc6791-v6 = \"2001:db8::1\"\n[nat64.fragments]\ntimeout = 5\n",
        )
        .unwrap();
        let nat = c.nat64.as_ref().unwrap();
        assert_eq!(nat.lowest_ipv6_mtu, 1500);
        assert_eq!(nat.fragments.timeout, 5);
        assert_eq!(nat.fragments.max_per_source, 16, "other keys keep defaults");
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);

        for (text, key) in [
            ("[nat64]\nlowest-ipv6-mtu = 1000\n", "nat64.lowest-ipv6-mtu"),
            ("[nat64]\nlowest-ipv6-mtu = 1600\n", "nat64.lowest-ipv6-mtu"),
            (
                "[nat64]\nrfc6791-v4 = [\"224.0.0.1\"]\n",
                "nat64.rfc6791-v4",
            ),
            ("[nat64]\nrfc6791-v6 = \"ff02::1\"\n", "nat64.rfc6791-v6"),
            (
                "[nat64.fragments]\ntimeout = 1\n",
                "nat64.fragments.timeout",
            ),
            (
                "[nat64.fragments]\nmax-datagrams = 0\n",
                "nat64.fragments.max-datagrams",
            ),
            (
                "[nat64.fragments]\nmax-per-source = 300\n",
                "nat64.fragments.max-per-source",
            ),
            (
                "[nat64.fragments]\nmax-fragments = 1\n",
                "nat64.fragments.max-fragments",
            ),
            (
                "[nat64.fragments]\nmax-fragmnets = 1\n",
                "nat64.fragments.max-fragmnets",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn pool4_accepts_addresses_and_prefixes() {
        let c =
            Config::from_toml("[nat64]\npool4 = [\"192.0.2.1\", \"198.51.100.0/30\"]\n").unwrap();
        let p = &c.nat64.unwrap().pool4;
        assert_eq!(p[0].0.to_string(), "192.0.2.1/32");
        assert_eq!(p[1].0.to_string(), "198.51.100.0/30");
    }

    const DNS: &str = "[dns64]\nupstream = [\"192.0.2.53:53\"]\n";

    #[test]
    fn dns64_access_keys_have_defaults_bounds_and_reload() {
        let c = Config::from_toml(DNS).unwrap();
        let d = c.dns64.as_ref().unwrap();
        assert_eq!(d.client_prefix, 64);
        assert_eq!(d.tcp_connections_per_client, 8);
        assert_eq!(d.tcp_idle_timeout_ms, 10_000);
        assert_eq!(d.queries_per_second_per_client, 1000);
        assert_eq!(d.queries_burst_per_client, 1000);
        assert_eq!(d.rate_limit_slip, 2);
        let text = c.to_toml();
        for key in [
            "client-prefix = 64",
            "tcp-connections-per-client = 8",
            "tcp-idle-timeout-ms = 10000",
            "queries-per-second-per-client = 1000",
            "queries-burst-per-client = 1000",
            "rate-limit-slip = 2",
        ] {
            assert!(text.contains(key), "{key} in:\n{text}");
        }
        for (bad, key) in [
            ("client-prefix = 16", "dns64.client-prefix"),
            ("client-prefix = 129", "dns64.client-prefix"),
            (
                "tcp-connections-per-client = 0",
                "dns64.tcp-connections-per-client",
            ),
            (
                "tcp-connections-per-client = 100000",
                "dns64.tcp-connections-per-client",
            ),
            ("tcp-idle-timeout-ms = 50", "dns64.tcp-idle-timeout-ms"),
            ("tcp-idle-timeout-ms = 3600000", "dns64.tcp-idle-timeout-ms"),
            (
                "queries-burst-per-client = 0",
                "dns64.queries-burst-per-client",
            ),
            (
                "queries-per-second-per-client = 4000000000",
                "dns64.queries-per-second-per-client",
            ),
        ] {
            let e = Config::from_toml(&format!("{DNS}{bad}\n")).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e}");
        }
        // No limit needs no burst.
        Config::from_toml(&format!(
            "{DNS}queries-per-second-per-client = 0\nqueries-burst-per-client = 0\n"
        ))
        .unwrap();
        let new = Config::from_toml(&format!(
            "{DNS}client-prefix = 56\ntcp-connections-per-client = 2\ntcp-idle-timeout-ms = 3000\n\
             queries-per-second-per-client = 50\nqueries-burst-per-client = 5\nrate-limit-slip = 0\n"
        ))
        .unwrap();
        assert_eq!(c.live_changes(&new).unwrap().len(), 6, "every one is live");
    }

    #[test]
    fn dns64_defaults_are_printed_and_round_trip() {
        let c = Config::from_toml(DNS).unwrap();
        let d = c.dns64.as_ref().unwrap();
        assert_eq!(d.exclude, vec!["::ffff:0:0/96".parse::<Ipv6Net>().unwrap()]);
        assert_eq!(d.mapped, vec!["0.0.0.0/0".parse::<Ipv4Net>().unwrap()]);
        assert!(d.exclude_mapped.is_empty() && d.prefixes.is_empty());
        assert_eq!(d.allow.len(), 8);
        assert_eq!(d.synthesize_for.len(), 2);
        assert_eq!(d.servfail, ServfailPolicy::Synthesize);
        assert_eq!(d.cache_size, 10_000);
        assert!(d.parallel_a);
        let text = c.to_toml();
        for key in [
            "exclude = [",
            "mapped = [",
            "exclude-mapped = []",
            "allow = [",
            "\"fc00::/7\"",
            "synthesize-for = [",
            "servfail = \"synthesize\"",
            "cache-size = 10000",
            "parallel-a = true",
            "upstream-timeout-ms = 2000",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn dns64_keys_parse_and_make_the_policy() {
        let c = Config::from_toml(&format!(
            "{DNS}prefix = \"2001:db8:64::/96\"\nexclude = [\"::ffff:0:0/96\", \"2001:db8:bad::/48\"]\n\
             mapped = [\"0.0.0.0/0\"]\nexclude-mapped = [\"10.0.0.0/8\", \"192.168.1.1\"]\n\
             allow = [\"2001:db8::/32\", \"127.0.0.1\"]\nsynthesize-for = [\"2001:db8:1::/64\"]\n\
             servfail = \"pass\"\ncache-size = 0\nparallel-a = false\n\
             [[dns64.prefixes]]\nprefix = \"2001:db8:65::/96\"\nipv4 = [\"198.51.100.0/24\"]\n"
        ))
        .unwrap();
        let d = c.dns64.as_ref().unwrap();
        assert_eq!(d.exclude_mapped[1].to_string(), "192.168.1.1/32");
        assert_eq!(d.allow[1].to_string(), "127.0.0.1/32");
        let p = d.policy().unwrap();
        assert!(!p.synthesize_on_error);
        assert_eq!(p.prefixes.len(), 1);
        assert_eq!(
            p.prefix_for("198.51.100.1".parse().unwrap())
                .unwrap()
                .net()
                .to_string(),
            "2001:db8:65::/96"
        );
        assert!(p.prefix_for("10.0.0.1".parse().unwrap()).is_none());
        let text = c.to_toml();
        assert!(text.contains("[[dns64.prefixes]]"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn dns64_bad_values_are_named() {
        let cases = [
            ("exclude = [\"nope\"]", "dns64.exclude"),
            ("mapped = []", "dns64.mapped"),
            ("exclude-mapped = [\"::1\"]", "dns64.exclude-mapped"),
            ("allow = []", "dns64.allow"),
            ("synthesize-for = [\"x\"]", "dns64.synthesize-for"),
            ("servfail = \"maybe\"", "dns64.servfail"),
            ("cache-size = 100000000", "dns64.cache-size"),
            ("parallel-a = 3", "dns64.parallel-a"),
            ("[[dns64.prefixes]]\nprefix = \"2001:db8::/33\"\nipv4 = [\"10.0.0.0/8\"]", "dns64.prefixes[0].prefix"),
            ("[[dns64.prefixes]]\nprefix = \"2001:db8::/96\"\nipv4 = []", "dns64.prefixes[0].ipv4"),
            ("[[dns64.prefixes]]\nprefix = \"64:ff9b::/96\"\nipv4 = [\"8.8.8.0/24\"]", "dns64.prefixes[0].prefix"),
            ("[[dns64.prefixes]]\nprefix = \"2001:db8::/96\"\nipv4 = [\"10.0.0.0/8\"]\n[[dns64.prefixes]]\nprefix = \"64:ff9b::/96\"\nipv4 = [\"10.0.0.0/8\"]", "dns64.prefixes[1].prefix"),
            ("[[dns64.prefixes]]\nprefix = \"2001:db8::/96\"\nipv4s = []", "dns64.prefixes[0].ipv4s"),
            ("servfial = \"pass\"", "dns64.servfial"),
        ];
        for (extra, key) in cases {
            let e = Config::from_toml(&format!("{DNS}{extra}\n")).unwrap_err();
            assert!(e.key.starts_with(key), "{extra}: got {e}");
        }
        // The well-known prefix must not be given non-global ranges (RFC 6052 §3.1).
        let e = Config::from_toml(&format!(
            "{DNS}prefix = \"2001:db8:64::/96\"\n[[dns64.prefixes]]\nprefix = \"64:ff9b::/96\"\nipv4 = [\"10.0.0.0/8\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "dns64.prefixes[0].ipv4");
        assert!(e.message.contains("6052"), "{e}");
    }
}
