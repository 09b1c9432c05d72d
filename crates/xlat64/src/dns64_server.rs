//! The DNS64 server: UDP and TCP listeners, forwarding to the upstreams, and
//! synthesis through `xlat64-dns64`.
//!
//! Every query runs in its own task. Upstream queries go out over UDP from
//! a fresh socket (random source port from the kernel) with a random id; a
//! reply is accepted only when its id and question match (RFC 5452 §9.1).
//! A truncated (TC=1) upstream reply is retried over TCP. Each upstream gets
//! `upstream_timeout_ms`; when all fail the client gets SERVFAIL.
//!
//! Answers from upstream are relayed as bytes (only the id is rewritten),
//! so record types the DNS library does not know pass unchanged.

use crate::config::Dns64Section;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use xlat64_dns64::wire;
use xlat64_dns64::{
    classify_aaaa, parse_query, reverse_answer, synthesize, AaaaVerdict, ClientQuery, Dns64Policy,
    Plan, QueryError, Synthesis,
};
use xlat64_packet::Prefix6052;

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
    queries_udp: "Datagrams received on the UDP listeners.",
    queries_tcp: "Messages received on TCP connections.",
    tcp_connections: "TCP connections accepted.",
    synthesized: "Answers with synthesized AAAA records (RFC 6147 §5.1).",
    passed_through: "Upstream answers relayed unchanged.",
    real_aaaa: "AAAA answers that held real AAAA records (no synthesis).",
    nxdomain: "Answers sent with rcode NXDOMAIN.",
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
    servfail_sent: "SERVFAIL answers sent because every upstream failed.",
    truncated_udp: "UDP answers truncated to the client's size, TC=1.",
}

impl Dns64Counters {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound DNS64 server, ready to run.
pub struct Dns64Server {
    counters: Arc<Dns64Counters>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    engine: Arc<Engine>,
}

impl Dns64Server {
    /// Binds every listen address (UDP and TCP). The error names the address and cause.
    pub async fn bind(section: &Dns64Section) -> Result<Self, String> {
        let prefix = match section.prefix {
            None => Prefix6052::WELL_KNOWN,
            Some(net) => Prefix6052::new(net).map_err(|e| format!("dns64.prefix {net}: {e}"))?,
        };
        if section.upstream.is_empty() {
            return Err("dns64.upstream: no upstream server to forward to".to_string());
        }
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &section.listen {
            let named = |what: &str, e: io::Error| format!("dns64.listen {addr}: {what}: {e}");
            let u = bind_udp(*addr).map_err(|e| named("UDP", e))?;
            // With port 0 (tests), serve TCP on the port the kernel gave UDP.
            let tcp_addr = u.local_addr().map_err(|e| named("UDP", e))?;
            let t = bind_tcp(tcp_addr).map_err(|e| named("TCP", e))?;
            udp.push(u);
            tcp.push(t);
        }
        let counters = Arc::new(Dns64Counters::default());
        let engine = Arc::new(Engine {
            policy: Dns64Policy::new(prefix),
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
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listeners = JoinSet::new();
        for socket in self.udp {
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

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
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

async fn serve_udp(engine: Arc<Engine>, socket: Arc<UdpSocket>, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            received = socket.recv_from(&mut buf) => {
                let (len, peer) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        debug!("dns64: UDP receive error: {e}");
                        continue;
                    }
                };
                Dns64Counters::inc(&engine.counters.queries_udp);
                if tasks.len() >= MAX_UDP_IN_FLIGHT {
                    Dns64Counters::inc(&engine.counters.dropped_overload);
                    continue;
                }
                let query = buf[..len].to_vec();
                let engine = engine.clone();
                let socket = socket.clone();
                tasks.spawn(async move {
                    let Some(reply) = engine.answer(&query).await else {
                        return;
                    };
                    let (out, truncated) = wire::fit_udp(reply.bytes, reply.udp_limit);
                    if truncated {
                        Dns64Counters::inc(&engine.counters.truncated_udp);
                    }
                    if let Err(e) = socket.send_to(&out, peer).await {
                        debug!("dns64: UDP send to {peer}: {e}");
                    }
                });
            }
        }
    }
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
        let Some(reply) = engine.answer(&query).await else {
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
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    counters: Arc<Dns64Counters>,
    ids: IdSource,
}

impl Engine {
    /// The reply to one client message, or `None` to drop it.
    async fn answer(&self, bytes: &[u8]) -> Option<Reply> {
        let c = &self.counters;
        let query = match parse_query(bytes) {
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
            "dns64: query id {} {} {} {}",
            query.id(),
            q.name(),
            q.query_class(),
            q.query_type()
        );
        let result = match query.plan(&self.policy) {
            Plan::Answer(m) => {
                Dns64Counters::inc(&c.local_answers);
                m.to_vec().ok()
            }
            Plan::Forward => self.forward(&query, bytes).await,
            Plan::ForwardAaaa => self.forward_aaaa(&query, bytes).await,
            Plan::Reverse { target } => self.reverse(&query, target).await,
        };
        let bytes = match result {
            Some(b) => b,
            None => {
                Dns64Counters::inc(&c.servfail_sent);
                query.error_reply(ResponseCode::ServFail).to_vec().ok()?
            }
        };
        if bytes.len() >= 4 && bytes[3] & 0x0f == 3 {
            Dns64Counters::inc(&c.nxdomain);
        }
        Some(Reply {
            bytes,
            udp_limit: query.udp_payload_limit(),
        })
    }

    /// Relays the client's query and the upstream answer unchanged.
    async fn forward(&self, query: &ClientQuery, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut reply = self.exchange(bytes, query.question()).await?;
        Dns64Counters::inc(&self.counters.passed_through);
        wire::set_id(&mut reply, query.id());
        Some(reply)
    }

    /// RFC 6147 §5.1: AAAA first; A and synthesis when it comes back empty.
    async fn forward_aaaa(&self, query: &ClientQuery, bytes: &[u8]) -> Option<Vec<u8>> {
        let c = &self.counters;
        let mut aaaa_raw = self.exchange(bytes, query.question()).await?;
        wire::set_id(&mut aaaa_raw, query.id());
        let pass = |raw: Vec<u8>| {
            Dns64Counters::inc(&c.passed_through);
            Some(raw)
        };
        let Ok(aaaa) = Message::from_vec(&aaaa_raw) else {
            debug!(
                "dns64: AAAA answer for {} undecodable, relayed",
                query.question().name()
            );
            return pass(aaaa_raw);
        };
        match classify_aaaa(query, &aaaa, &self.policy) {
            AaaaVerdict::PassThrough(reason) => {
                if reason == xlat64_dns64::PassReason::RealAaaa {
                    Dns64Counters::inc(&c.real_aaaa);
                }
                return pass(aaaa_raw);
            }
            AaaaVerdict::QueryA => {}
        }
        let a_query = query.upstream_query(query.question().name().clone(), RecordType::A);
        let Ok(a_bytes) = a_query.to_vec() else {
            return pass(aaaa_raw);
        };
        let Some(a_raw) = self.exchange(&a_bytes, &a_query.queries()[0]).await else {
            return pass(aaaa_raw);
        };
        let Ok(a) = Message::from_vec(&a_raw) else {
            Dns64Counters::inc(&c.upstream_errors);
            return pass(aaaa_raw);
        };
        match synthesize(query, &aaaa, &a, &self.policy) {
            Synthesis::Synthesized(m) => {
                Dns64Counters::inc(&c.synthesized);
                debug!("dns64: synthesized {} AAAA", query.question().name());
                m.to_vec().ok()
            }
            Synthesis::NoData(m) => m.to_vec().ok(),
            Synthesis::AaaaResponse => pass(aaaa_raw),
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
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(Err(e)) => return Err(UpstreamError::Io(e)),
                Ok(Ok(len)) if wire::reply_matches(&buf[..len], id, question) => {
                    return Ok(buf[..len].to_vec());
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
    async fn fake_upstream(shutdown: CancellationToken) -> SocketAddr {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let stop = shutdown.clone();
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
                let Some(reply) = canned(&query) else {
                    continue;
                };
                let mut decoy = reply.clone();
                decoy.set_id(query.id().wrapping_add(1));
                udp.send_to(&decoy.to_vec().unwrap(), peer).await.unwrap();
                let bytes = reply.to_vec().unwrap();
                let (bytes, _) = wire::fit_udp(bytes, 512);
                udp.send_to(&bytes, peer).await.unwrap();
            }
        });
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tcp.accept() => r.unwrap(),
                };
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        stream.read_exact(&mut body).await.unwrap();
                        let query = Message::from_vec(&body).unwrap();
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
        addr
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

    async fn start(upstreams: Vec<SocketAddr>, timeout_ms: u64) -> Harness {
        let section = Dns64Section {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            upstream: upstreams,
            prefix: Some("64:ff9b::/96".parse().unwrap()),
            upstream_timeout_ms: timeout_ms,
        };
        let server = Dns64Server::bind(&section).await.unwrap();
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

    async fn start_with_fake() -> Harness {
        let up_stop = CancellationToken::new();
        let up = fake_upstream(up_stop.clone()).await;
        let h = start(vec![up], 1000).await;
        // Stop the upstream together with the server.
        let stop = h.shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            up_stop.cancel();
        });
        h
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
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert_eq!(m.id(), 0xabcd);
        assert_eq!(counter(&h, "dns64_upstream_timeouts"), 1);
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
        let up = fake_upstream(up_stop.clone()).await;
        let h = start(vec![closed, up], 300).await;
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
        let section = Dns64Section {
            listen: vec![addr],
            upstream: vec!["127.0.0.1:53".parse().unwrap()],
            prefix: None,
            upstream_timeout_ms: 100,
        };
        let err = Dns64Server::bind(&section).await.err().unwrap();
        assert!(
            err.starts_with(&format!("dns64.listen {addr}: UDP: ")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn shutdown_stops_run() {
        let section = Dns64Section {
            listen: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
            upstream: vec!["127.0.0.1:53".parse().unwrap()],
            prefix: None,
            upstream_timeout_ms: 100,
        };
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
}
