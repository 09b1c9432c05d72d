//! The DNS64 server: UDP and TCP listeners, the upstream client and the
//! driver of the pure DNS64 logic in `xlat64-dns64` (its batched UDP
//! system calls are in `sys::udp_batch`).
//!
//! - this module: the counters, binding the listen sockets, running them;
//! - `udp`: the UDP listener, batched, with cache hits answered in the
//!   receive loop;
//! - `tcp`: the TCP listener (RFC 7766);
//! - `access`: `allow`, per-client TCP connections and UDP query rate,
//!   checked before a message is read or decoded;
//! - `engine`: the driver of the pure logic: `allow`, `synthesize-for`,
//!   the cache, and forwarding, synthesis or reverse mapping per query;
//! - `upstream`: the I/O of the upstream work, driving a
//!   [`Resolution`](xlat64_dns64::Resolution) per cache miss over the
//!   servers' shared health ([`Upstreams`]).
//!
//! UDP datagrams are read and answered in batches (`recvmmsg`/`sendmmsg`,
//! `sys::udp_batch`); a query the cache answers is served right in the
//! receive loop from its raw bytes
//! ([`CacheKey::set_from_wire`](xlat64_dns64::CacheKey::set_from_wire)),
//! with no decoding, task or allocation. Every other query runs in its own
//! task. Upstream queries go out over UDP from
//! a fresh socket (random source port from the kernel) with a random id; a
//! reply is accepted only when its id and question match (RFC 5452 §9.1).
//! A truncated (TC=1) upstream reply is retried over TCP. Each try gets
//! `upstream_timeout_ms`, then the next server; when all fail, or the
//! query's deadline passes, the client gets SERVFAIL. Servers are asked
//! healthy ones first, fastest first (RFC 6298 round-trip estimates); one
//! that failed is asked last and probed with a copy of a query after a
//! backoff, and its state changes are logged once each.
//!
//! Answers from upstream are relayed as bytes (only the id is rewritten),
//! so record types the DNS library does not know pass unchanged.
//!
//! Before anything else a client must be in `allow` (`access`): a refused
//! TCP connection is closed at accept, a refused datagram answered REFUSED
//! from its own bytes (or dropped when it is not a query); an allowed client
//! is held to a UDP query rate and a number of TCP connections. A client
//! outside `synthesize-for` gets answers as from a plain forwarder.
//! Finished replies are cached ([`Dns64Cache`]) under the question, the
//! DNSSEC bits and whether the client gets synthesis. For AAAA queries that
//! may need synthesis the A query goes out together with the AAAA one
//! (`parallel-a`), so synthesis costs one upstream round trip, not two.
//!
//! A reload ([`Dns64Reloader`]) swaps the settings (every key but `listen`)
//! atomically; each query works from the snapshot it took at its start.
//! The cache stays (resized to `cache-size`), unless a key that changes
//! what a reply holds changed (`prefix`, `prefixes`, `exclude`, `mapped`,
//! `exclude-mapped`, `servfail`): then it is emptied.

mod access;
#[cfg(test)]
mod access_tests;
mod cache_shards;
mod engine;
mod tcp;
/// Empties a running server's cache (`xlat64 flush-cache`).
#[derive(Clone)]
pub struct CacheFlusher(Arc<Engine>);

impl CacheFlusher {
    /// Forgets every cached reply; returns how many there were.
    pub fn flush(&self) -> usize {
        self.0.flush_cache()
    }
}

/// Changes a running server's settings (`xlat64 reload`, SIGHUP): every
/// `[dns64]` key but `listen`. Queries in flight finish with the settings
/// they started with; the cache stays unless the new settings would make
/// other replies.
#[derive(Clone)]
pub struct Dns64Reloader(Arc<Engine>);

impl Dns64Reloader {
    /// Checks `section` as [`Dns64Server::bind`] does, changing nothing
    /// yet, so that a reload can check every part before it applies any.
    /// `section.listen` is not looked at: the sockets stay.
    pub fn prepare(&self, section: &Dns64Section) -> Result<Dns64Reload, String> {
        Ok(Dns64Reload {
            engine: self.0.clone(),
            settings: Settings::from_section(section)?,
        })
    }
}

/// Checked settings, ready to be put in force by [`Dns64Reload::apply`].
#[must_use = "nothing changes until it is applied"]
pub struct Dns64Reload {
    engine: Arc<Engine>,
    settings: Settings,
}

impl Dns64Reload {
    /// Puts the settings in force at once, for every query that starts
    /// from now on.
    pub fn apply(self) -> ReloadNote {
        self.engine.reconfigure(self.settings)
    }
}

/// What a reload did to the DNS64 cache; its `Display` is the log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadNote {
    /// The changed keys that alter what a cached reply would hold
    /// (`dns64.prefix`, `prefixes`, `exclude`, `mapped`, `exclude-mapped`,
    /// `servfail`); empty when the cache was kept.
    pub emptied_by: Vec<&'static str>,
    /// Replies dropped because of `emptied_by`.
    pub dropped: usize,
    /// Replies evicted to fit a smaller `cache-size`.
    pub evicted: usize,
    /// Replies the cache holds now.
    pub held: usize,
    /// The cache's size now (`cache-size`; 0: off).
    pub capacity: usize,
}

impl std::fmt::Display for ReloadNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.emptied_by.is_empty() {
            write!(
                f,
                "DNS64 cache emptied: {} replies dropped, as {} changed what they would hold",
                self.dropped,
                self.emptied_by.join(", ")
            )
        } else if self.capacity == 0 {
            write!(
                f,
                "DNS64 cache off (cache-size 0): {} replies dropped",
                self.evicted
            )
        } else {
            write!(f, "DNS64 cache kept: {} replies", self.held)?;
            if self.evicted > 0 {
                write!(
                    f,
                    ", {} evicted to fit cache-size {}",
                    self.evicted, self.capacity
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
mod udp;
mod udp_threads;
mod upstream;

use self::access::{TcpClients, UdpGate};
use self::engine::{Engine, Settings};
use self::tcp::serve_tcp;
pub(crate) use self::tcp::MAX_TCP_CONNECTIONS;
use self::udp_threads::UdpShared;
use crate::config::Dns64Section;
use futures::stream::{FuturesUnordered, StreamExt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use xlat64_dns64::Upstreams;

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Counters of the DNS64 server, and the upstream servers' health
        /// (shown as gauges, see [`UPSTREAM_GAUGES`]).
        #[derive(Debug, Default)]
        pub struct Dns64Counters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            /// The upstream servers' health, shared with the resolutions.
            upstreams: Arc<Mutex<Upstreams>>,
        }

        /// What each counter means (`xlat64 stats --explain`), by name
        /// without the `dns64_` prefix.
        pub const COUNTER_HELP: &[(&str, &str)] = &[$((stringify!($name), $doc),)*];

        impl Dns64Counters {
            /// Adds every counter (zeros included) to `out`, names prefixed `dns64_`.
            pub fn snapshot(&self, out: &mut BTreeMap<String, u64>) {
                $(out.insert(
                    concat!("dns64_", stringify!($name)).to_string(),
                    self.$name.load(Ordering::Relaxed),
                );)*
                self.snapshot_upstreams(out);
            }
        }
    };
}

counters! {
    queries: "Client messages received, UDP and TCP.",
    queries_udp: "Datagrams received on the UDP listeners.",
    queries_tcp: "Messages received on TCP connections.",
    tcp_connections: "TCP connections accepted.",
    tcp_refused: "TCP connections closed at accept, nothing read: client not in `allow`.",
    tcp_client_limit: "TCP connections closed at accept: the client (an IPv4 address, an IPv6 `client-prefix`) held `tcp-connections-per-client` already (RFC 7766 §6.2.2).",
    tcp_idle_closed: "TCP connections closed after `tcp-idle-timeout-ms` without a whole query (RFC 7766 §6.2.3).",
    tcp_crowded_closed: "Idle TCP connections closed after 1 s, sooner than `tcp-idle-timeout-ms`, as the listener held over 3/4 of its connections (RFC 7766 §6.2.3).",
    tcp_malformed_closed: "TCP connections closed after a message that was dropped or answered FORMERR (RFC 7766 §6.2.4).",
    tcp_accept_errors: "Failed accepts on the TCP listeners (e.g. EMFILE, no file descriptor left); each pauses that listener 100 ms.",
    synthesized: "Answers with synthesized AAAA records (RFC 6147 §5.1).",
    passed_through: "Upstream answers relayed unchanged.",
    synthesized_on_error: "Synthesized answers for AAAA queries that failed upstream (SERVFAIL, timeout; servfail = \"synthesize\", RFC 6147 §5.1.2).",
    real_aaaa: "AAAA answers that held real AAAA records (no synthesis, RFC 6147 §5.1.1).",
    nxdomain: "Answers sent with rcode NXDOMAIN.",
    not_aaaa: "Queries passed through: not AAAA, or not class IN.",
    dnssec_cd: "AAAA queries passed through: DO=1 and CD=1 (RFC 6147 §5.5).",
    client_not_in_synthesize_for: "AAAA queries passed through: client outside synthesize-for.",
    error_passed: "AAAA errors (other than NXDOMAIN) sent to the client: servfail = \"pass\".",
    nothing_to_synthesize: "AAAA answers empty and no A record to synthesize from: the AAAA answer is sent.",
    excluded_aaaa_removed: "AAAA answers whose records inside `exclude` were removed before they reached the client (RFC 6147 §5.1.4).",
    refused: "Queries answered REFUSED: client not in `allow`.",
    refused_malformed: "Datagrams from clients outside `allow` dropped unanswered: not a well-formed query.",
    dropped_rate_limited: "UDP queries dropped: the client was over `queries-per-second-per-client`.",
    rate_limited_slipped: "UDP queries over the client's rate answered TC=1 instead of dropped (every `rate-limit-slip`-th), so that a real client retries over TCP.",
    client_subnet_stripped: "Queries whose EDNS Client Subnet option was removed before going upstream (client-subnet = \"strip\", RFC 7871 §11.1).",
    client_subnet_not_cached: "Answers to queries with an EDNS Client Subnet option not cached: they may hold for that subnet only (client-subnet = \"pass\", RFC 7871 §7.3.1).",
    reverse_mapped: "PTR queries answered through the ip6.arpa -> in-addr.arpa CNAME (RFC 6147 §5.3.1).",
    local_answers: "Queries answered locally (ipv4only.arpa, RFC 8880).",
    formerr: "Malformed queries answered FORMERR.",
    notimp: "Queries with an opcode other than QUERY answered NOTIMP.",
    badvers: "Queries with an EDNS version other than 0 answered BADVERS.",
    dropped_malformed: "Datagrams dropped: shorter than a DNS header.",
    dropped_not_query: "Datagrams dropped: QR=1 (a response, not a query).",
    dropped_overload: "Queries or connections dropped: too many in flight.",
    upstream_queries: "Queries sent to upstream servers (UDP and TCP).",
    upstream_tcp_retries: "Upstream UDP replies with TC=1, retried over TCP.",
    upstream_timeouts: "Upstream queries that got no matching reply in time.",
    upstream_errors: "Upstream queries that failed (socket error, refused, undecodable reply).",
    upstream_mismatched: "Upstream datagrams ignored: id or question did not match.",
    upstream_failures: "Upstream questions for which every upstream failed.",
    upstream_error_rcodes: "Upstream replies with SERVFAIL, REFUSED, NOTIMP or FORMERR: the question went on to the next upstream (REFUSED, NOTIMP and FORMERR also count against that upstream's health); the last such reply is the answer when no upstream gives a better one.",
    upstream_no_descriptors: "Upstream questions given up at once: no file descriptor for a socket (EMFILE, ENFILE); the client gets SERVFAIL.",
    resolutions_expired: "Queries answered SERVFAIL because their upstream work ran past its deadline (the tries' timeouts summed, at most 30 s).",
    parallel_a_unused: "A queries sent along with AAAA whose answer was not needed.",
    servfail_sent: "SERVFAIL answers sent because every upstream failed.",
    truncated_udp: "UDP answers truncated to the client's size, TC=1.",
    cache_hits: "Queries answered from the cache.",
    cache_misses: "Cache lookups that found nothing fresh.",
    cache_inserts: "Replies stored in the cache.",
    cache_evictions: "Cache entries removed to make room.",
    cache_stale_served: "Expired replies served, TTL 30 s, because every upstream failed (serve-stale, RFC 8767).",
    cache_entries: "Replies in the cache now.",
}

/// The per-upstream gauges, `dns64_upstream_<N>_<name>` with N the
/// server's place in `upstream`, and what each means.
pub const UPSTREAM_GAUGES: &[(&str, &str)] = &[
    ("up", "1 while this upstream (N: its place in dns64.upstream) is up, 0 once it failed twice in a row (asked last and probed with backoff until it answers); the log says when it changes."),
    ("srtt_ms", "Smoothed round trip of this upstream in ms (RFC 6298 SRTT; 0 before its first answer); healthy upstreams are asked fastest first."),
    ("failures_in_a_row", "Failures (timeouts, errors) of this upstream in a row; 0 when its last try was answered."),
];

impl Dns64Counters {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The upstream servers in their configured order (the `N` of the
    /// [`UPSTREAM_GAUGES`]).
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        let upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        upstreams.status().map(|u| u.addr).collect()
    }

    fn snapshot_upstreams(&self, out: &mut BTreeMap<String, u64>) {
        let upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, u) in upstreams.status().enumerate() {
            let srtt = u
                .srtt
                .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX));
            for (name, value) in [
                ("up", u64::from(u.up)),
                ("srtt_ms", srtt),
                ("failures_in_a_row", u64::from(u.failures)),
            ] {
                out.insert(format!("dns64_upstream_{i}_{name}"), value);
            }
        }
    }
}

/// A bound DNS64 server, ready to run.
pub struct Dns64Server {
    counters: Arc<Dns64Counters>,
    /// Per `listen` entry, one socket per UDP thread (`SO_REUSEPORT`).
    udp: Vec<Vec<std::net::UdpSocket>>,
    tcp: Vec<TcpListener>,
    engine: Arc<Engine>,
}

impl Dns64Server {
    /// Binds every listen address (UDP and TCP) for `threads` UDP threads
    /// (`runtime.io-threads`, at least 1). The error names the address and
    /// cause.
    ///
    /// Each address gets one UDP socket per thread, sharing the port
    /// through `SO_REUSEPORT` when there are several: the kernel spreads
    /// clients over them (by address and port hash), and each thread
    /// serves its own ([`udp_threads`]).
    pub async fn bind(section: &Dns64Section, threads: usize) -> Result<Self, String> {
        let settings = Settings::from_section(section)?;
        let per_address = threads.clamp(1, 256);
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &section.listen {
            let named = |what: &str, e: io::Error| format!("dns64.listen {addr}: {what}: {e}");
            let reuse_port = per_address > 1;
            let u = bind_udp(*addr, reuse_port).map_err(|e| named("UDP", e))?;
            // With port 0 (tests), serve TCP and the other UDP sockets on
            // the port the kernel gave the first one.
            let bound = u.local_addr().map_err(|e| named("UDP", e))?;
            let mut group = vec![u];
            for _ in 1..per_address {
                group.push(bind_udp(bound, true).map_err(|e| named("UDP", e))?);
            }
            let t = bind_tcp(bound).map_err(|e| named("TCP", e))?;
            udp.push(group);
            tcp.push(t);
        }
        let counters = Arc::new(Dns64Counters::default());
        let engine = Arc::new(Engine::new(settings, counters.clone()));
        Ok(Dns64Server {
            counters,
            udp,
            tcp,
            engine,
        })
    }

    /// The server's counters.
    pub fn counters(&self) -> Arc<Dns64Counters> {
        self.counters.clone()
    }

    /// What the control socket needs to empty the cache.
    pub fn cache_flusher(&self) -> CacheFlusher {
        CacheFlusher(self.engine.clone())
    }

    /// What a reload needs to change the settings while the server runs.
    pub fn reloader(&self) -> Dns64Reloader {
        Dns64Reloader(self.engine.clone())
    }

    /// The addresses actually bound, one per `listen` entry (UDP and TCP
    /// share the port; useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|group| group.first()?.local_addr().ok())
            .collect()
    }

    /// Starts the UDP threads at once (before the caller's next step, so
    /// that they exist before a privilege drop) and returns what serves
    /// TCP on the current runtime until `shutdown` is cancelled and then
    /// waits for the threads to stop.
    pub fn run(self, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
        let shared = UdpShared {
            engine: self.engine.clone(),
            // One rate limiter for every socket (see UdpGate).
            gate: Arc::new(UdpGate::new()),
            shutdown: shutdown.clone(),
        };
        // Thread i serves the i-th socket of every address.
        let mut per_thread: Vec<Vec<std::net::UdpSocket>> = Vec::new();
        for group in self.udp {
            for (i, socket) in group.into_iter().enumerate() {
                if per_thread.len() <= i {
                    per_thread.push(Vec::new());
                }
                per_thread[i].push(socket);
            }
        }
        let mut threads = Vec::new();
        let mut on_this_runtime = Vec::new();
        for (i, sockets) in per_thread.into_iter().enumerate() {
            match udp_threads::start(i, sockets, shared.clone()) {
                Ok(stopped) => threads.push(stopped),
                Err((e, sockets)) => {
                    tracing::warn!(
                        "dns64: no UDP thread {i} ({e}); its sockets are served by the main thread"
                    );
                    on_this_runtime.extend(sockets);
                }
            }
        }
        let engine = self.engine;
        let tcp = self.tcp;
        async move {
            let mut listeners = JoinSet::new();
            if !on_this_runtime.is_empty() {
                listeners.spawn(udp_threads::serve_sockets(on_this_runtime, shared));
            }
            let clients = Arc::new(TcpClients::default());
            for listener in tcp {
                listeners.spawn(serve_tcp(
                    engine.clone(),
                    listener,
                    clients.clone(),
                    shutdown.clone(),
                ));
            }
            let mut threads: FuturesUnordered<_> = threads.into_iter().collect();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                // Never half alive: a UDP thread ending before shutdown (a
                // panic) ends the server, and the daemon stops with it.
                Some(_) = threads.next() => {
                    tracing::error!("dns64: a UDP thread stopped unexpectedly");
                    return;
                }
            }
            // Each listener stops on the token and aborts its own query tasks.
            while listeners.join_next().await.is_some() {}
            while threads.next().await.is_some() {}
        }
    }
}

/// A socket for `addr`; IPv6 sockets are IPv6-only so that `[::]:53` does
/// not take the IPv4 port from a local resolver on 127.0.0.53.
fn new_socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A UDP socket for `addr`, to be registered with the runtime of the
/// thread that serves it.
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    if reuse_port {
        crate::sys::udp_batch::set_reuse_port(socket.as_raw_fd())?;
    }
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
