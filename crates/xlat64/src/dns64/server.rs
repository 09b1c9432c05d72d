//! The DNS64 server: UDP and TCP listeners, forwarding to the upstreams, and
//! synthesis through `xlat64-dns64`.
//!
//! UDP datagrams are read and answered in batches (`recvmmsg`/`sendmmsg`,
//! `sys::udp_batch`); a query the cache answers is served right
//! in the receive loop from its raw bytes ([`CacheKey::set_from_wire`]),
//! with no decoding, task or allocation. Every other query runs in its own
//! task. Upstream queries go out over UDP from
//! a fresh socket (random source port from the kernel) with a random id; a
//! reply is accepted only when its id and question match (RFC 5452 §9.1).
//! A truncated (TC=1) upstream reply is retried over TCP. Each upstream gets
//! `upstream_timeout_ms`; when all fail the client gets SERVFAIL.
//!
//! Answers from upstream are relayed as bytes (only the id is rewritten),
//! so record types the DNS library does not know pass unchanged.
//!
//! Before anything else a client must be in `allow` (else REFUSED); a
//! client outside `synthesize-for` gets answers as from a plain forwarder.
//! Finished replies are cached ([`Dns64Cache`]) under the question, the
//! DNSSEC bits and whether the client gets synthesis. For AAAA queries that
//! may need synthesis the A query goes out together with the AAAA one
//! (`parallel-a`), so synthesis costs one upstream round trip, not two.

use crate::config::Dns64Section;
use crate::sys::udp_batch::{RecvBatch, SendBatch, BATCH};
use futures::future::{select, Either};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use xlat64_dns64::wire;
use xlat64_dns64::{
    classify_aaaa, parse_query, reverse_answer, synthesize, AaaaVerdict, CacheKey, ClientQuery,
    ClientSet, Dns64Cache, Dns64Policy, PassReason, Plan, QueryError, Synthesis,
};

/// A TCP client connection is closed after this long without a query
/// (RFC 7766 §6.2.3 asks for seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries answered at the same time per UDP socket; more are dropped.
const MAX_UDP_IN_FLIGHT: usize = 4096;
/// Open client TCP connections per listener; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 512;
/// Largest DNS message (the TCP length field is 16 bits).
const MAX_MESSAGE: usize = 65535;

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Counters of the DNS64 server.
        #[derive(Debug, Default)]
        pub struct Dns64Counters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Dns64Counters {
            /// Adds every counter (zeros included) to `out`, names prefixed `dns64_`.
            pub fn snapshot(&self, out: &mut BTreeMap<String, u64>) {
                $(out.insert(
                    concat!("dns64_", stringify!($name)).to_string(),
                    self.$name.load(Ordering::Relaxed),
                );)*
            }
        }
    };
}

counters! {
    queries: "Client messages received, UDP and TCP.",
    queries_udp: "Datagrams received on the UDP listeners.",
    queries_tcp: "Messages received on TCP connections.",
    tcp_connections: "TCP connections accepted.",
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
    excluded_aaaa_removed: "Answers whose AAAA records were all in `exclude` and were removed (RFC 6147 §5.1.4).",
    refused: "Queries answered REFUSED: client not in `allow`.",
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
    parallel_a_unused: "A queries sent along with AAAA whose answer was not needed.",
    servfail_sent: "SERVFAIL answers sent because every upstream failed.",
    truncated_udp: "UDP answers truncated to the client's size, TC=1.",
    cache_hits: "Queries answered from the cache.",
    cache_misses: "Cache lookups that found nothing fresh.",
    cache_inserts: "Replies stored in the cache.",
    cache_evictions: "Cache entries removed to make room.",
    cache_entries: "Replies in the cache now.",
}

impl Dns64Counters {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound DNS64 server, ready to run.
pub struct Dns64Server {
    counters: Arc<Dns64Counters>,
    /// Per `listen` entry, one socket per runtime worker (`SO_REUSEPORT`).
    udp: Vec<Vec<UdpSocket>>,
    tcp: Vec<TcpListener>,
    engine: Arc<Engine>,
}

impl Dns64Server {
    /// Binds every listen address (UDP and TCP). The error names the address and cause.
    ///
    /// On a runtime with several worker threads each address gets one UDP
    /// socket per worker, sharing the port through `SO_REUSEPORT`: the
    /// kernel spreads clients over them (by address and port hash), and
    /// each socket's receive loop can run on its own thread.
    pub async fn bind(section: &Dns64Section) -> Result<Self, String> {
        let policy = section.policy().map_err(|e| e.to_string())?;
        if section.upstream.is_empty() {
            return Err("dns64.upstream: no upstream server to forward to".to_string());
        }
        let per_address = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1)
            .clamp(1, 64);
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
        let engine = Arc::new(Engine {
            policy,
            allow: ClientSet::new(section.allow.iter().copied()),
            synthesize_for: ClientSet::new(section.synthesize_for.iter().copied()),
            cache: (section.cache_size > 0)
                .then(|| Mutex::new(Dns64Cache::new(section.cache_size))),
            parallel_a: section.parallel_a,
            upstreams: section.upstream.clone(),
            timeout: Duration::from_millis(section.upstream_timeout_ms.max(1)),
            counters: counters.clone(),
            ids: IdSource::new(),
        });
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

    /// The addresses actually bound, one per `listen` entry (UDP and TCP
    /// share the port; useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|group| group.first()?.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listeners = JoinSet::new();
        for socket in self.udp.into_iter().flatten() {
            let engine = self.engine.clone();
            listeners.spawn(serve_udp(engine, Arc::new(socket), shutdown.clone()));
        }
        for listener in self.tcp {
            let engine = self.engine.clone();
            listeners.spawn(serve_tcp(engine, listener, shutdown.clone()));
        }
        shutdown.cancelled().await;
        // Each listener stops on the token and aborts its own query tasks.
        while listeners.join_next().await.is_some() {}
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

fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    if reuse_port {
        crate::sys::udp_batch::set_reuse_port(socket.as_raw_fd())?;
    }
    socket.bind(&SockAddr::from(addr))?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Receive rounds per wakeup before the loop looks at its other events
/// (finished tasks, shutdown).
const UDP_ROUNDS_PER_WAKEUP: usize = 8;

/// The UDP listener. Datagrams are read in batches ([`RecvBatch`]); cache
/// hits are answered right here, with no task and no allocation, and their
/// replies leave in batches ([`SendBatch`]); everything else gets a task.
async fn serve_udp(engine: Arc<Engine>, socket: Arc<UdpSocket>, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    let mut recv = RecvBatch::new();
    let mut send = SendBatch::new();
    let mut key = CacheKey::with_capacity();
    let fd = socket.as_raw_fd();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    debug!("dns64: UDP socket: {e}");
                    continue;
                }
            }
        }
        for _ in 0..UDP_ROUNDS_PER_WAKEUP {
            let n = match socket.try_io(Interest::READABLE, || recv.recv(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("dns64: UDP receive error: {e}");
                    break;
                }
            };
            // One clock read per batch: it is received within microseconds,
            // and cache ages are counted in seconds.
            let now = std::time::Instant::now();
            for i in 0..n {
                let (query, peer) = recv.datagram(i);
                let Some(peer) = peer else { continue };
                Dns64Counters::inc(&engine.counters.queries_udp);
                if let Some(out) = send.next_buffer() {
                    if engine.answer_cached(query, peer.ip(), now, &mut key, out) {
                        send.commit(peer);
                        if send.is_full() {
                            flush_udp(&socket, &mut send).await;
                        }
                        continue;
                    }
                }
                if tasks.len() >= MAX_UDP_IN_FLIGHT {
                    Dns64Counters::inc(&engine.counters.dropped_overload);
                    continue;
                }
                tasks.spawn(answer_udp(
                    engine.clone(),
                    socket.clone(),
                    query.to_vec(),
                    peer,
                ));
            }
            flush_udp(&socket, &mut send).await;
            if n < BATCH {
                break;
            }
        }
    }
}

/// A query the cache could not answer, in its own task.
async fn answer_udp(engine: Arc<Engine>, socket: Arc<UdpSocket>, query: Vec<u8>, peer: SocketAddr) {
    let Some(reply) = engine.answer(&query, peer.ip()).await else {
        return;
    };
    let (out, truncated) = wire::fit_udp(reply.bytes, reply.udp_limit);
    if truncated {
        Dns64Counters::inc(&engine.counters.truncated_udp);
    }
    if let Err(e) = socket.send_to(&out, peer).await {
        debug!("dns64: UDP send to {peer}: {e}");
    }
}

/// Sends the queued replies: in batches while the socket takes them, then
/// one by one, waiting for room.
async fn flush_udp(socket: &UdpSocket, send: &mut SendBatch) {
    if send.is_empty() {
        return;
    }
    let fd = socket.as_raw_fd();
    let mut next = 0;
    while next < send.len() {
        match socket.try_io(Interest::WRITABLE, || send.send(fd, next)) {
            Ok(0) => break,
            Ok(sent) => next += sent,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some((bytes, to)) = send.reply(next) {
                    if let Err(e) = socket.send_to(bytes, to).await {
                        debug!("dns64: UDP send to {to}: {e}");
                    }
                }
                next += 1;
            }
            Err(e) => {
                // This reply's destination failed (e.g. unreachable): skip it.
                if let Some((_, to)) = send.reply(next) {
                    debug!("dns64: UDP send to {to}: {e}");
                }
                next += 1;
            }
        }
    }
    send.clear();
}

async fn serve_tcp(engine: Arc<Engine>, listener: TcpListener, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    Dns64Counters::inc(&engine.counters.tcp_connections);
                    if connections.len() >= MAX_TCP_CONNECTIONS {
                        Dns64Counters::inc(&engine.counters.dropped_overload);
                        continue;
                    }
                    connections.spawn(serve_tcp_connection(engine.clone(), stream, peer));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!("dns64: TCP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// RFC 7766: length-prefixed messages, several per connection, answered in
/// order; closed when idle for [`TCP_IDLE_TIMEOUT`].
async fn serve_tcp_connection(engine: Arc<Engine>, mut stream: TcpStream, peer: SocketAddr) {
    loop {
        let mut len = [0u8; 2];
        if !matches!(
            timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(
            timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        Dns64Counters::inc(&engine.counters.queries_tcp);
        let Some(reply) = engine.answer(&query, peer.ip()).await else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.bytes.len()) else {
            debug!("dns64: reply to {peer} longer than 65535 bytes");
            return;
        };
        let mut out = Vec::with_capacity(2 + reply.bytes.len());
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply.bytes);
        if !matches!(
            timeout(TCP_IDLE_TIMEOUT, stream.write_all(&out)).await,
            Ok(Ok(_))
        ) {
            return;
        }
    }
}

/// Random 16-bit query ids: SipHash with the process's random keys over a
/// counter, unpredictable from outside (RFC 5452 §9.2).
struct IdSource {
    keys: RandomState,
    counter: AtomicU64,
}

impl IdSource {
    fn new() -> Self {
        IdSource {
            keys: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u16 {
        let mut h = self.keys.build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish() as u16
    }
}

/// A reply for the client, before UDP truncation.
struct Reply {
    bytes: Vec<u8>,
    udp_limit: usize,
}

/// Why one upstream attempt failed.
enum UpstreamError {
    Timeout,
    Io(io::Error),
}

/// Everything a query task needs.
struct Engine {
    policy: Dns64Policy,
    allow: ClientSet,
    synthesize_for: ClientSet,
    cache: Option<Mutex<Dns64Cache>>,
    parallel_a: bool,
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    counters: Arc<Dns64Counters>,
    ids: IdSource,
}

impl Engine {
    /// The reply to one client message from `peer`, or `None` to drop it.
    async fn answer(&self, bytes: &[u8], peer: IpAddr) -> Option<Reply> {
        let c = &self.counters;
        Dns64Counters::inc(&c.queries);
        let parsed = parse_query(bytes);
        if !self.allow.contains(peer) {
            Dns64Counters::inc(&c.refused);
            debug!("dns64: {peer} not in dns64.allow: REFUSED");
            // Only well-formed queries get an answer: no reflection of junk.
            let query = parsed.ok()?;
            return Some(Reply {
                bytes: query.error_reply(ResponseCode::Refused).to_vec().ok()?,
                udp_limit: query.udp_payload_limit(),
            });
        }
        let query = match parsed {
            Ok(q) => q,
            Err(e) => {
                let counter = match &e {
                    QueryError::TooShort => &c.dropped_malformed,
                    QueryError::NotAQuery => &c.dropped_not_query,
                    QueryError::Malformed(_) => &c.formerr,
                    QueryError::NotImplemented(_) => &c.notimp,
                    QueryError::BadVersion(_) => &c.badvers,
                };
                Dns64Counters::inc(counter);
                debug!("dns64: rejected query: {e:?}");
                return e.reply().and_then(|m| m.to_vec().ok()).map(|bytes| Reply {
                    bytes,
                    udp_limit: 512,
                });
            }
        };
        let q = query.question();
        debug!(
            "dns64: query id {} {} {} {} from {peer}",
            query.id(),
            q.name(),
            q.query_class(),
            q.query_type()
        );
        let synthesize_for = self.synthesize_for.contains(peer);
        let key = CacheKey::new(&query, synthesize_for);
        if let Some(bytes) = self.cache_get(&key, bytes) {
            return Some(self.finish(&query, bytes));
        }
        let result = match query.plan_for(&self.policy, synthesize_for) {
            Plan::Answer(m) => {
                Dns64Counters::inc(&c.local_answers);
                return Some(self.finish(&query, m.to_vec().ok()?));
            }
            Plan::Forward(reason) => {
                Dns64Counters::inc(match reason {
                    PassReason::DnssecCd => &c.dnssec_cd,
                    PassReason::NotInSynthesizeFor => &c.client_not_in_synthesize_for,
                    _ => &c.not_aaaa,
                });
                self.forward(&query, bytes).await
            }
            Plan::ForwardAaaa => self.forward_aaaa(&query, bytes).await,
            Plan::Reverse { target } => self.reverse(&query, target).await,
        };
        let bytes = match result {
            Some(b) => {
                self.cache_insert(key, &b);
                b
            }
            None => {
                Dns64Counters::inc(&c.servfail_sent);
                query.error_reply(ResponseCode::ServFail).to_vec().ok()?
            }
        };
        Some(self.finish(&query, bytes))
    }

    /// The cache-hit path for a UDP query, no decoding and no allocation:
    /// true when the reply (ready to send, truncated to the client's limit)
    /// is in `out`. False sends the query down [`Engine::answer`], which
    /// does everything again, so nothing is counted here then. The rules
    /// are those of `answer`: `allow` first (REFUSED comes from `answer`),
    /// the key under the client's `synthesize-for` view.
    fn answer_cached(
        &self,
        query: &[u8],
        peer: IpAddr,
        now: std::time::Instant,
        key: &mut CacheKey,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(cache) = self.cache.as_ref() else {
            return false;
        };
        if !self.allow.contains(peer) {
            return false;
        }
        let Some(udp_limit) = key.set_from_wire(query, self.synthesize_for.contains(peer)) else {
            return false;
        };
        let Ok(mut cache) = cache.lock() else {
            return false;
        };
        if !cache.get_hit_into(key, query, now, out) {
            return false;
        }
        self.publish_cache_stats(&cache);
        drop(cache);
        let c = &self.counters;
        Dns64Counters::inc(&c.queries);
        if out.len() >= 4 && out[3] & 0x0f == 3 {
            Dns64Counters::inc(&c.nxdomain);
        }
        if out.len() > udp_limit {
            let (fitted, _) = wire::fit_udp(std::mem::take(out), udp_limit);
            *out = fitted;
            Dns64Counters::inc(&c.truncated_udp);
        }
        true
    }

    fn finish(&self, query: &ClientQuery, bytes: Vec<u8>) -> Reply {
        if bytes.len() >= 4 && bytes[3] & 0x0f == 3 {
            Dns64Counters::inc(&self.counters.nxdomain);
        }
        Reply {
            bytes,
            udp_limit: query.udp_payload_limit(),
        }
    }

    /// A fresh cached reply, ready for this client.
    fn cache_get(&self, key: &CacheKey, query_bytes: &[u8]) -> Option<Vec<u8>> {
        let mut cache = self.cache.as_ref()?.lock().ok()?;
        let hit = cache.get(key, query_bytes, std::time::Instant::now());
        self.publish_cache_stats(&cache);
        hit
    }

    fn cache_insert(&self, key: CacheKey, reply: &[u8]) {
        let Some(Ok(mut cache)) = self.cache.as_ref().map(|c| c.lock()) else {
            return;
        };
        cache.insert(key, reply.to_vec(), std::time::Instant::now());
        self.publish_cache_stats(&cache);
    }

    fn publish_cache_stats(&self, cache: &Dns64Cache) {
        let c = &self.counters;
        let s = cache.stats();
        for (counter, value) in [
            (&c.cache_hits, s.hits),
            (&c.cache_misses, s.misses),
            (&c.cache_inserts, s.inserts),
            (&c.cache_evictions, s.evictions),
            (&c.cache_entries, cache.len() as u64),
        ] {
            counter.store(value, Ordering::Relaxed);
        }
    }

    /// Relays the client's query and the upstream answer unchanged.
    async fn forward(&self, query: &ClientQuery, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut reply = self.exchange(bytes, query.question()).await?;
        Dns64Counters::inc(&self.counters.passed_through);
        wire::set_id(&mut reply, query.id());
        Some(reply)
    }

    /// RFC 6147 §5.1: AAAA; A and synthesis when it comes back empty (or
    /// failed, with `servfail = "synthesize"`). With `parallel_a` both go
    /// out at once and the A answer is dropped when the AAAA one is used.
    /// `None`: send SERVFAIL.
    async fn forward_aaaa(&self, query: &ClientQuery, bytes: &[u8]) -> Option<Vec<u8>> {
        let c = &self.counters;
        let a_query = query.upstream_query(query.question().name().clone(), RecordType::A);
        let a_bytes = a_query.to_vec().ok()?;
        // Futures are lazy: without parallel_a this starts only when awaited.
        let mut a_pending = pin!(self.exchange(&a_bytes, &a_query.queries()[0]));
        let mut a_done = None;
        let aaaa_exchange = self.exchange(bytes, query.question());
        let aaaa_result = if self.parallel_a {
            match select(pin!(aaaa_exchange), a_pending.as_mut()).await {
                Either::Left((aaaa, _)) => aaaa,
                Either::Right((a, aaaa_rest)) => {
                    a_done = Some(a);
                    aaaa_rest.await
                }
            }
        } else {
            aaaa_exchange.await
        };
        let pass = |raw: Vec<u8>| {
            Dns64Counters::inc(&c.passed_through);
            Some(raw)
        };
        // Every upstream failed: the same as a SERVFAIL answer for the
        // synthesis rules (RFC 6147 §5.1.2), but never sent as such.
        let (aaaa, aaaa_raw) = match aaaa_result {
            Some(mut raw) => {
                wire::set_id(&mut raw, query.id());
                match Message::from_vec(&raw) {
                    Ok(m) => (m, Some(raw)),
                    Err(_) => {
                        debug!(
                            "dns64: AAAA answer for {} undecodable, relayed",
                            query.question().name()
                        );
                        return pass(raw);
                    }
                }
            }
            None => (query.error_reply(ResponseCode::ServFail), None),
        };
        let unused_a = |a_started: bool| {
            if a_started {
                Dns64Counters::inc(&c.parallel_a_unused);
            }
        };
        match classify_aaaa(query, &aaaa, &self.policy) {
            AaaaVerdict::PassThrough(reason) => {
                unused_a(self.parallel_a);
                match reason {
                    PassReason::RealAaaa => Dns64Counters::inc(&c.real_aaaa),
                    PassReason::Error(_) => Dns64Counters::inc(&c.error_passed),
                    _ => {}
                }
                return aaaa_raw.and_then(pass);
            }
            AaaaVerdict::QueryA => {}
        }
        let a_raw = match a_done {
            Some(a) => a,
            None => a_pending.await,
        };
        let Some(a_raw) = a_raw else {
            return aaaa_raw.and_then(pass);
        };
        let Ok(a) = Message::from_vec(&a_raw) else {
            Dns64Counters::inc(&c.upstream_errors);
            return aaaa_raw.and_then(pass);
        };
        match synthesize(query, &aaaa, &a, &self.policy) {
            Synthesis::Synthesized(m) => {
                Dns64Counters::inc(&c.synthesized);
                if aaaa.response_code() != ResponseCode::NoError {
                    Dns64Counters::inc(&c.synthesized_on_error);
                }
                debug!("dns64: synthesized {} AAAA", query.question().name());
                m.to_vec().ok()
            }
            Synthesis::NoData(m) => {
                Dns64Counters::inc(&c.excluded_aaaa_removed);
                m.to_vec().ok()
            }
            Synthesis::AaaaResponse => {
                Dns64Counters::inc(&c.nothing_to_synthesize);
                aaaa_raw.and_then(pass)
            }
        }
    }

    /// RFC 6147 §5.3.1: PTR for the in-addr.arpa name behind a CNAME.
    async fn reverse(
        &self,
        query: &ClientQuery,
        target: hickory_proto::rr::Name,
    ) -> Option<Vec<u8>> {
        let ptr_query = query.upstream_query(target.clone(), RecordType::PTR);
        let ptr_raw = self
            .exchange(&ptr_query.to_vec().ok()?, &ptr_query.queries()[0])
            .await?;
        let Ok(ptr) = Message::from_vec(&ptr_raw) else {
            Dns64Counters::inc(&self.counters.upstream_errors);
            return None;
        };
        Dns64Counters::inc(&self.counters.reverse_mapped);
        reverse_answer(query, &target, &ptr).to_vec().ok()
    }

    /// Sends `message` (its id is replaced) to the upstreams in order until
    /// one answers; `None` when all fail.
    async fn exchange(&self, message: &[u8], question: &Query) -> Option<Vec<u8>> {
        let c = &self.counters;
        for &server in &self.upstreams {
            let id = self.ids.next();
            let mut packet = message.to_vec();
            wire::set_id(&mut packet, id);
            Dns64Counters::inc(&c.upstream_queries);
            let mut result = self.exchange_udp(server, &packet, id, question).await;
            if matches!(&result, Ok(reply) if wire::is_truncated(reply)) {
                Dns64Counters::inc(&c.upstream_tcp_retries);
                Dns64Counters::inc(&c.upstream_queries);
                result = self.exchange_tcp(server, &packet, id, question).await;
            }
            match result {
                Ok(reply) => return Some(reply),
                Err(UpstreamError::Timeout) => {
                    Dns64Counters::inc(&c.upstream_timeouts);
                    warn!(
                        "dns64: upstream {server} timed out for {} {}",
                        question.name(),
                        question.query_type()
                    );
                }
                Err(UpstreamError::Io(e)) => {
                    Dns64Counters::inc(&c.upstream_errors);
                    warn!(
                        "dns64: upstream {server} failed for {} {}: {e}",
                        question.name(),
                        question.query_type()
                    );
                }
            }
        }
        Dns64Counters::inc(&c.upstream_failures);
        None
    }

    async fn exchange_udp(
        &self,
        server: SocketAddr,
        packet: &[u8],
        id: u16,
        question: &Query,
    ) -> Result<Vec<u8>, UpstreamError> {
        let deadline = Instant::now() + self.timeout;
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(UpstreamError::Io)?;
        // Connected: the kernel drops datagrams from other addresses and
        // reports ICMP port unreachable as an error.
        socket.connect(server).await.map_err(UpstreamError::Io)?;
        socket.send(packet).await.map_err(UpstreamError::Io)?;
        // Received into the spare capacity: no 64 KiB to zero per query,
        // and the reply is returned without another copy.
        let mut buf = Vec::with_capacity(MAX_MESSAGE);
        loop {
            buf.clear();
            match timeout_at(deadline, socket.recv_buf(&mut buf)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(Err(e)) => return Err(UpstreamError::Io(e)),
                Ok(Ok(len)) if wire::reply_matches(&buf[..len], id, question) => {
                    buf.truncate(len);
                    return Ok(buf);
                }
                Ok(Ok(_)) => Dns64Counters::inc(&self.counters.upstream_mismatched),
            }
        }
    }

    async fn exchange_tcp(
        &self,
        server: SocketAddr,
        packet: &[u8],
        id: u16,
        question: &Query,
    ) -> Result<Vec<u8>, UpstreamError> {
        let attempt = async {
            let mut stream = TcpStream::connect(server).await?;
            let len = u16::try_from(packet.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
            let mut out = Vec::with_capacity(2 + packet.len());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(packet);
            stream.write_all(&out).await?;
            loop {
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).await?;
                let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut reply).await?;
                if wire::reply_matches(&reply, id, question) {
                    return Ok(reply);
                }
                Dns64Counters::inc(&self.counters.upstream_mismatched);
            }
        };
        match timeout(self.timeout, attempt).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(r) => r.map_err(UpstreamError::Io),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, AAAA, SOA};
    use hickory_proto::rr::{Name, RData, Record};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// The fake upstream's canned answers, by query name.
    fn canned(query: &Message) -> Option<Message> {
        let q = query.queries().first()?.clone();
        let mut m = Message::new();
        m.set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true);
        m.add_query(q.clone());
        let soa = || {
            let data = SOA::new(
                name("ns.test."),
                name("admin.test."),
                1,
                3600,
                600,
                86400,
                300,
            );
            Record::from_rdata(name("test."), 900, RData::SOA(data))
        };
        let owner = q.name().clone();
        match (q.name().to_ascii().as_str(), q.query_type()) {
            ("v4only.test.", RecordType::AAAA) => {
                m.add_name_server(soa());
            }
            ("v4only.test.", RecordType::A) | ("dual.test.", RecordType::A) => {
                m.add_answer(Record::from_rdata(
                    owner,
                    3600,
                    RData::A(A(Ipv4Addr::new(93, 184, 216, 34))),
                ));
            }
            ("dual.test.", RecordType::AAAA) => {
                m.add_answer(Record::from_rdata(
                    owner,
                    3600,
                    RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
                ));
            }
            ("big.test.", RecordType::AAAA) => {
                for i in 0..60u16 {
                    let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i);
                    m.add_answer(Record::from_rdata(
                        owner.clone(),
                        60,
                        RData::AAAA(AAAA(addr)),
                    ));
                }
            }
            ("silent.test.", _) => return None,
            ("fail.test.", RecordType::AAAA) => {
                m.set_response_code(ResponseCode::ServFail);
            }
            ("fail.test.", RecordType::A) => {
                m.add_answer(Record::from_rdata(
                    owner,
                    3600,
                    RData::A(A(Ipv4Addr::new(93, 184, 216, 35))),
                ));
            }
            ("private.test.", RecordType::AAAA) => {
                m.add_name_server(soa());
            }
            ("private.test.", RecordType::A) => {
                m.add_answer(Record::from_rdata(
                    owner,
                    3600,
                    RData::A(A(Ipv4Addr::new(192, 168, 1, 1))),
                ));
            }
            _ => {
                m.set_response_code(ResponseCode::NXDomain);
                m.add_name_server(soa());
            }
        }
        Some(m)
    }

    /// A tiny upstream on 127.0.0.1 (UDP and TCP on one port). UDP answers
    /// over 512 bytes are sent truncated (TC=1), like a real server does for
    /// clients without EDNS. It also sends a decoy with a wrong id first.
    /// Each answer waits `delay` (an upstream round trip); `queries` counts
    /// what it received, by query type.
    struct FakeUpstream {
        addr: SocketAddr,
        queries: Arc<std::sync::Mutex<Vec<RecordType>>>,
    }

    impl FakeUpstream {
        fn count(&self) -> usize {
            self.queries.lock().unwrap().len()
        }
    }

    async fn fake_upstream(shutdown: CancellationToken, delay: Duration) -> FakeUpstream {
        // The kernel picks a free UDP port; TCP on the same number may be
        // taken (by another test's connection): then try another port.
        let (udp, tcp) = 'bound: {
            for _ in 0..50 {
                let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                    break 'bound (Arc::new(udp), tcp);
                }
            }
            panic!("no port free for both UDP and TCP");
        };
        let addr = udp.local_addr().unwrap();
        let stop = shutdown.clone();
        let queries = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (len, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = udp.recv_from(&mut buf) => r.unwrap(),
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Some(q) = query.queries().first() {
                    seen.lock().unwrap().push(q.query_type());
                }
                let Some(reply) = canned(&query) else {
                    continue;
                };
                let udp = udp.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut decoy = reply.clone();
                    decoy.set_id(query.id().wrapping_add(1));
                    let _ = udp.send_to(&decoy.to_vec().unwrap(), peer).await;
                    let bytes = reply.to_vec().unwrap();
                    let (bytes, _) = wire::fit_udp(bytes, 512);
                    let _ = udp.send_to(&bytes, peer).await;
                });
            }
        });
        let seen = queries.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tcp.accept() => r.unwrap(),
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        stream.read_exact(&mut body).await.unwrap();
                        let query = Message::from_vec(&body).unwrap();
                        seen.lock().unwrap().push(query.queries()[0].query_type());
                        let reply = canned(&query).unwrap().to_vec().unwrap();
                        stream
                            .write_all(&(reply.len() as u16).to_be_bytes())
                            .await
                            .unwrap();
                        stream.write_all(&reply).await.unwrap();
                    }
                });
            }
        });
        FakeUpstream { addr, queries }
    }

    struct Harness {
        addr: SocketAddr,
        counters: Arc<Dns64Counters>,
        shutdown: CancellationToken,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    /// `[dns64]` with every default, listening on a free loopback port.
    fn section(upstreams: Vec<SocketAddr>, timeout_ms: u64) -> Dns64Section {
        let mut section: Dns64Section = toml::from_str("").unwrap();
        section.listen = vec!["127.0.0.1:0".parse().unwrap()];
        section.upstream = upstreams;
        section.prefix = Some("64:ff9b::/96".parse().unwrap());
        section.upstream_timeout_ms = timeout_ms;
        section
    }

    async fn start(upstreams: Vec<SocketAddr>, timeout_ms: u64) -> Harness {
        start_section(section(upstreams, timeout_ms)).await
    }

    /// Binds on port 0; as in `fake_upstream`, TCP on the port the kernel
    /// gave UDP may be taken by another test, so a few tries are allowed.
    async fn bind_retrying(section: &Dns64Section) -> Dns64Server {
        let mut bound = Dns64Server::bind(section).await;
        for _ in 0..50 {
            if bound.is_ok() {
                break;
            }
            bound = Dns64Server::bind(section).await;
        }
        bound.unwrap()
    }

    async fn start_section(section: Dns64Section) -> Harness {
        let server = bind_retrying(&section).await;
        let addr = server.local_addrs()[0];
        let counters = server.counters();
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        Harness {
            addr,
            counters,
            shutdown,
        }
    }

    /// A server on a fake upstream answering after `delay`, configured by
    /// `configure`.
    async fn start_fake_with(
        delay: Duration,
        configure: impl FnOnce(&mut Dns64Section),
    ) -> (Harness, FakeUpstream) {
        let up_stop = CancellationToken::new();
        let up = fake_upstream(up_stop.clone(), delay).await;
        let mut s = section(vec![up.addr], 1000);
        configure(&mut s);
        let h = start_section(s).await;
        // Stop the upstream together with the server.
        let stop = h.shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            up_stop.cancel();
        });
        (h, up)
    }

    async fn start_with_fake() -> Harness {
        start_fake_with(Duration::ZERO, |_| {}).await.0
    }

    fn query(qname: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(0xabcd)
            .set_message_type(MessageType::Query)
            .set_recursion_desired(true);
        m.add_query(Query::query(name(qname), t));
        m
    }

    async fn ask_udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(bytes, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        match timeout(Duration::from_secs(5), s.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    async fn ask_udp(server: SocketAddr, m: &Message) -> Message {
        let raw = ask_udp_raw(server, &m.to_vec().unwrap())
            .await
            .expect("reply");
        Message::from_vec(&raw).unwrap()
    }

    async fn ask_tcp(stream: &mut TcpStream, m: &Message) -> Message {
        let bytes = m.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut len = [0u8; 2];
        timeout(Duration::from_secs(5), stream.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await.unwrap();
        Message::from_vec(&body).unwrap()
    }

    fn aaaa_of(m: &Message) -> Vec<(Ipv6Addr, u32)> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::AAAA(AAAA(a)) => Some((*a, r.ttl())),
                _ => None,
            })
            .collect()
    }

    fn counter(h: &Harness, key: &str) -> u64 {
        let mut out = BTreeMap::new();
        h.counters.snapshot(&mut out);
        out[key]
    }

    #[tokio::test]
    async fn nodata_aaaa_is_synthesized() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(m.id(), 0xabcd);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        // TTL: min(A 3600, SOA TTL 900, SOA minimum 300).
        assert_eq!(
            aaaa_of(&m),
            vec![("64:ff9b::5db8:d822".parse().unwrap(), 300)]
        );
        assert_eq!(counter(&h, "dns64_synthesized"), 1);
        assert!(counter(&h, "dns64_upstream_mismatched") >= 1);
    }

    #[tokio::test]
    async fn real_aaaa_passes_through() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m), vec![("2001:db8::1".parse().unwrap(), 3600)]);
        assert_eq!(m.id(), 0xabcd);
        assert_eq!(counter(&h, "dns64_synthesized"), 0);
        assert_eq!(counter(&h, "dns64_real_aaaa"), 1);
    }

    #[tokio::test]
    async fn nxdomain_passes_through() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert!(m.answers().is_empty());
        assert_eq!(counter(&h, "dns64_nxdomain"), 1);
    }

    #[tokio::test]
    async fn a_query_passes_through() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::A)).await;
        assert_eq!(m.answers().len(), 1);
        assert_eq!(
            m.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(93, 184, 216, 34)))
        );
        assert_eq!(counter(&h, "dns64_passed_through"), 1);
    }

    #[tokio::test]
    async fn malformed_gets_formerr_or_is_dropped() {
        let h = start_with_fake().await;
        let junk = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0];
        let raw = ask_udp_raw(h.addr, &junk).await.expect("FORMERR");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert_eq!(m.response_code(), ResponseCode::FormErr);
        assert_eq!(counter(&h, "dns64_formerr"), 1);
        // Too short for a header: no reply at all; the server keeps serving.
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&[1, 2, 3], h.addr).await.unwrap();
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::A)).await;
        assert_eq!(m.answers().len(), 1);
        for _ in 0..100 {
            if counter(&h, "dns64_dropped_malformed") == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counter(&h, "dns64_dropped_malformed"), 1);
    }

    #[tokio::test]
    async fn upstream_silent_gives_servfail_after_timeout() {
        // A socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let h = start(vec![silent.local_addr().unwrap()], 200).await;
        let started = std::time::Instant::now();
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200));
        // AAAA and A time out together (parallel-a), not one after the other.
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert_eq!(m.id(), 0xabcd);
        assert_eq!(counter(&h, "dns64_upstream_timeouts"), 2);
        assert_eq!(counter(&h, "dns64_servfail_sent"), 1);
    }

    #[tokio::test]
    async fn upstream_down_tries_next() {
        // The first upstream port is closed (ICMP port unreachable), the
        // second answers.
        let closed = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let up_stop = CancellationToken::new();
        let up = fake_upstream(up_stop.clone(), Duration::ZERO).await;
        let h = start(vec![closed, up.addr], 300).await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m).len(), 1);
        assert!(counter(&h, "dns64_upstream_errors") + counter(&h, "dns64_upstream_timeouts") >= 1);
        up_stop.cancel();
    }

    #[tokio::test]
    async fn tcp_queries_work_several_per_connection() {
        let h = start_with_fake().await;
        let mut stream = TcpStream::connect(h.addr).await.unwrap();
        let m = ask_tcp(&mut stream, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m).len(), 1);
        let m = ask_tcp(&mut stream, &query("dual.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m), vec![("2001:db8::1".parse().unwrap(), 3600)]);
        // A big answer: the upstream truncates over UDP, the server retries
        // over TCP and returns it whole over TCP.
        let m = ask_tcp(&mut stream, &query("big.test.", RecordType::AAAA)).await;
        assert_eq!(m.answers().len(), 60);
        assert!(!m.truncated());
        assert_eq!(counter(&h, "dns64_queries_tcp"), 3);
        assert!(counter(&h, "dns64_upstream_tcp_retries") >= 1);
    }

    #[tokio::test]
    async fn udp_answer_truncated_to_client_limit() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("big.test.", RecordType::AAAA)).await;
        assert!(m.truncated());
        assert!(m.answers().is_empty());
        // With EDNS 4096 the client gets up to 1232 bytes: still too big.
        let mut q = query("big.test.", RecordType::AAAA);
        let mut e = Edns::new();
        e.set_max_payload(4096);
        q.set_edns(e);
        let raw = ask_udp_raw(h.addr, &q.to_vec().unwrap()).await.unwrap();
        assert!(raw.len() <= 1232);
        assert!(Message::from_vec(&raw).unwrap().truncated());
        assert_eq!(counter(&h, "dns64_truncated_udp"), 2);
    }

    #[tokio::test]
    async fn ipv4only_arpa_answered_locally() {
        // No upstream answers: the answer must be local.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let h = start(vec![silent.local_addr().unwrap()], 200).await;
        let m = ask_udp(h.addr, &query("ipv4only.arpa.", RecordType::AAAA)).await;
        let addrs: Vec<_> = aaaa_of(&m).into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            addrs,
            vec![
                "64:ff9b::c000:aa".parse::<Ipv6Addr>().unwrap(),
                "64:ff9b::c000:ab".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn snapshot_lists_every_counter_with_prefix() {
        let h = start_with_fake().await;
        let mut out = BTreeMap::new();
        h.counters.snapshot(&mut out);
        assert!(out.len() >= 20);
        assert!(out.keys().all(|k| k.starts_with("dns64_")));
        assert!(out.values().all(|v| *v == 0));
        for k in [
            "dns64_queries_udp",
            "dns64_servfail_sent",
            "dns64_formerr",
            "dns64_notimp",
        ] {
            assert!(out.contains_key(k), "{k}");
        }
    }

    #[tokio::test]
    async fn bind_error_names_address() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
        section.listen = vec![addr];
        let err = Dns64Server::bind(&section).await.err().unwrap();
        assert!(
            err.starts_with(&format!("dns64.listen {addr}: UDP: ")),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_workers_get_one_udp_socket_each_on_one_port() {
        let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
        let mut section = section(vec![up.addr], 300);
        section.listen = vec![h.addr];
        // Another server on the same port fails: UDP would join the group,
        // but the TCP port is taken.
        assert!(Dns64Server::bind(&section).await.is_err());
        // Clients from many source ports, spread over both sockets, share
        // one cache.
        for i in 0..20 {
            let mut q = query("v4only.test.", RecordType::AAAA);
            q.set_id(i);
            let m = ask_udp(h.addr, &q).await;
            assert_eq!(m.id(), i);
            assert_eq!(aaaa_of(&m).len(), 1);
        }
        assert_eq!(counter(&h, "dns64_cache_hits"), 19);
        assert_eq!(counter(&h, "dns64_queries_udp"), 20);
        assert_eq!(up.count(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn bind_makes_a_reuseport_group_per_address() {
        let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
        section.listen = vec!["127.0.0.1:0".parse().unwrap()];
        let server = bind_retrying(&section).await;
        assert_eq!(server.udp.len(), 1);
        assert_eq!(server.udp[0].len(), 3);
        let port = server.local_addrs()[0].port();
        assert!(server.udp[0]
            .iter()
            .all(|s| s.local_addr().unwrap().port() == port));
    }

    #[tokio::test]
    async fn shutdown_stops_run() {
        let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
        section.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
        let Ok(server) = Dns64Server::bind(&section).await else {
            return; // no IPv6 loopback in this environment
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(server.run(token.clone()));
        token.cancel();
        timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn client_outside_allow_is_refused_without_asking_upstream() {
        let (h, up) = start_fake_with(Duration::ZERO, |s| {
            s.allow = vec!["10.0.0.0/8".parse().unwrap()];
        })
        .await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::Refused);
        assert_eq!(m.id(), 0xabcd);
        assert!(m.answers().is_empty());
        let mut stream = TcpStream::connect(h.addr).await.unwrap();
        let m = ask_tcp(&mut stream, &query("v4only.test.", RecordType::A)).await;
        assert_eq!(m.response_code(), ResponseCode::Refused);
        assert_eq!(counter(&h, "dns64_refused"), 2);
        assert_eq!(up.count(), 0);
        // Junk from outside gets nothing back, not even FORMERR.
        let junk = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0];
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&junk, h.addr).await.unwrap();
        let mut buf = [0u8; 512];
        assert!(timeout(Duration::from_millis(300), s.recv(&mut buf))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn rfc6147_5_1_client_outside_synthesize_for_gets_plain_nodata() {
        let (h, up) = start_fake_with(Duration::ZERO, |s| {
            s.synthesize_for = vec!["10.0.0.0/8".parse().unwrap()];
        })
        .await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty(), "{m:?}");
        assert_eq!(counter(&h, "dns64_client_not_in_synthesize_for"), 1);
        assert_eq!(counter(&h, "dns64_synthesized"), 0);
        // No A query was needed.
        assert_eq!(*up.queries.lock().unwrap(), vec![RecordType::AAAA]);
        // Real AAAA still come through.
        let m = ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m).len(), 1);
    }

    #[tokio::test]
    async fn cache_answers_second_query_without_upstream() {
        let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
        let first = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        let sent = up.count();
        assert_eq!(sent, 2, "AAAA and A");
        let mut q = query("V4ONLY.test.", RecordType::AAAA);
        q.set_id(0x1111);
        let second = ask_udp(h.addr, &q).await;
        assert_eq!(up.count(), sent, "answered from the cache");
        assert_eq!(second.id(), 0x1111);
        assert_eq!(second.queries()[0].name().to_string(), "V4ONLY.test.");
        assert_eq!(aaaa_of(&second), aaaa_of(&first));
        assert_eq!(counter(&h, "dns64_cache_hits"), 1);
        assert_eq!(counter(&h, "dns64_cache_misses"), 1);
        assert_eq!(counter(&h, "dns64_cache_entries"), 1);
        // NXDOMAIN (with SOA) is cached too; a DO=1 query is another entry.
        ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
        ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
        assert_eq!(counter(&h, "dns64_cache_hits"), 2);
        let mut q = query("v4only.test.", RecordType::AAAA);
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        q.set_edns(e);
        ask_udp(h.addr, &q).await;
        assert_eq!(counter(&h, "dns64_cache_hits"), 2);
    }

    #[tokio::test]
    async fn cache_size_zero_always_asks_upstream() {
        let (h, up) = start_fake_with(Duration::ZERO, |s| s.cache_size = 0).await;
        ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        let sent = up.count();
        ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        assert_eq!(up.count(), 2 * sent);
        assert_eq!(counter(&h, "dns64_cache_hits"), 0);
    }

    #[tokio::test]
    async fn rfc6147_5_1_2_servfail_synthesize_policy() {
        let h = start_with_fake().await;
        let m = ask_udp(h.addr, &query("fail.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        // No SOA from the failed AAAA query: TTL capped at 600 s (§5.1.7).
        assert_eq!(
            aaaa_of(&m),
            vec![("64:ff9b::5db8:d823".parse().unwrap(), 600)]
        );
        assert_eq!(counter(&h, "dns64_synthesized_on_error"), 1);
    }

    #[tokio::test]
    async fn rfc6147_5_1_2_servfail_pass_policy() {
        let (h, _up) = start_fake_with(Duration::ZERO, |s| {
            s.servfail = crate::config::ServfailPolicy::Pass;
        })
        .await;
        let m = ask_udp(h.addr, &query("fail.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert!(m.answers().is_empty());
        assert_eq!(counter(&h, "dns64_error_passed"), 1);
        assert_eq!(counter(&h, "dns64_synthesized"), 0);
    }

    #[tokio::test]
    async fn rfc6147_5_1_4_exclude_mapped_not_synthesized() {
        let (h, _up) = start_fake_with(Duration::ZERO, |s| {
            s.prefix = Some("2001:db8:64::/96".parse().unwrap());
        })
        .await;
        let m = ask_udp(h.addr, &query("private.test.", RecordType::AAAA)).await;
        assert_eq!(
            aaaa_of(&m),
            vec![("2001:db8:64::c0a8:101".parse().unwrap(), 300)]
        );
        let (h, _up) = start_fake_with(Duration::ZERO, |s| {
            s.prefix = Some("2001:db8:64::/96".parse().unwrap());
            s.exclude_mapped = vec!["192.168.0.0/16".parse().unwrap()];
        })
        .await;
        let m = ask_udp(h.addr, &query("private.test.", RecordType::AAAA)).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        assert_eq!(counter(&h, "dns64_nothing_to_synthesize"), 1);
    }

    #[tokio::test]
    async fn rfc6147_5_5_do_and_cd_pass_through_unsynthesized() {
        let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
        let mut q = query("v4only.test.", RecordType::AAAA);
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        q.set_edns(e);
        q.set_checking_disabled(true);
        let m = ask_udp(h.addr, &q).await;
        assert!(m.answers().is_empty());
        assert_eq!(counter(&h, "dns64_dnssec_cd"), 1);
        assert_eq!(*up.queries.lock().unwrap(), vec![RecordType::AAAA]);
    }

    /// Synthesis with an upstream 100 ms away: one round trip with
    /// `parallel-a`, two without.
    #[tokio::test]
    async fn parallel_a_saves_a_round_trip() {
        let delay = Duration::from_millis(100);
        let mut elapsed = Vec::new();
        for parallel in [true, false] {
            let (h, _up) = start_fake_with(delay, |s| {
                s.parallel_a = parallel;
                s.cache_size = 0;
            })
            .await;
            let started = std::time::Instant::now();
            let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
            elapsed.push(started.elapsed());
            assert_eq!(aaaa_of(&m).len(), 1);
            // A real AAAA: the A answer was not needed.
            ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
            assert_eq!(counter(&h, "dns64_parallel_a_unused"), u64::from(parallel));
        }
        eprintln!("synthesis with a 100 ms upstream: parallel {elapsed:?} serial");
        assert!(elapsed[0] < Duration::from_millis(190), "{elapsed:?}");
        assert!(elapsed[1] >= Duration::from_millis(200), "{elapsed:?}");
    }

    /// The same on loopback with no delay, 200 queries each, cache off:
    /// printed, not asserted (timing on a shared machine).
    #[tokio::test]
    async fn parallel_a_on_a_fast_upstream() {
        for parallel in [true, false] {
            let (h, up) = start_fake_with(Duration::ZERO, |s| {
                s.parallel_a = parallel;
                s.cache_size = 0;
            })
            .await;
            let started = std::time::Instant::now();
            for _ in 0..200 {
                ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
            }
            let synth = started.elapsed() / 200;
            let started = std::time::Instant::now();
            for _ in 0..200 {
                ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
            }
            let real = started.elapsed() / 200;
            eprintln!(
                "parallel-a {parallel}: synthesized {synth:?}/query, real AAAA {real:?}/query, {} upstream queries",
                up.count()
            );
        }
    }
}
