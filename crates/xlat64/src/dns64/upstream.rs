//! The upstream client: each query goes to the upstreams in order, over
//! UDP from a fresh socket with a random id; a reply is accepted only when
//! its id and question match (RFC 5452 §9.1, §9.2), and a truncated
//! (TC=1) one is retried over TCP.

use super::engine::{Engine, Settings};
use super::Dns64Counters;
use crate::log_limit::{Passed, RateLimitedWarning, WARNING_INTERVAL};
use hickory_proto::op::Query;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::warn;
use xlat64_dns64::wire;

/// Largest DNS message (the TCP length field is 16 bits).
const MAX_MESSAGE: usize = 65535;

/// Random 16-bit query ids: SipHash with the process's random keys over a
/// counter, unpredictable from outside (RFC 5452 §9.2).
pub(super) struct IdSource {
    keys: RandomState,
    counter: AtomicU64,
}

impl IdSource {
    pub(super) fn new() -> Self {
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

/// Why one upstream attempt failed.
enum UpstreamError {
    Timeout,
    Io(io::Error),
}

/// The warnings about one upstream server: a dead upstream under load
/// fails every query, so its timeouts and errors are logged at most once
/// per [`WARNING_INTERVAL`] each, with a count of the others.
pub(super) struct UpstreamWarnings(RateLimitedWarning<(SocketAddr, FailureKind)>);

/// What kind of failure a warning is about (each has its own window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FailureKind {
    Timeout,
    Error,
}

impl UpstreamWarnings {
    pub(super) fn new() -> Self {
        UpstreamWarnings(RateLimitedWarning::new(WARNING_INTERVAL))
    }

    /// Whether a failure of `server` is logged now, and the suffix that
    /// counts the ones held back.
    fn pass(&self, server: SocketAddr, kind: FailureKind) -> Option<Passed> {
        self.0.pass((server, kind), std::time::Instant::now())
    }
}

impl Engine {
    /// Sends `message` (its id is replaced) to the upstreams of `s` in
    /// order until one answers; `None` when all fail.
    pub(super) async fn exchange(
        &self,
        s: &Settings,
        message: &[u8],
        question: &Query,
    ) -> Option<Vec<u8>> {
        let c = &self.counters;
        for &server in &s.upstreams {
            let id = self.ids.next();
            let mut packet = message.to_vec();
            wire::set_id(&mut packet, id);
            Dns64Counters::inc(&c.upstream_queries);
            let mut result = self
                .exchange_udp(server, s.timeout, &packet, id, question)
                .await;
            if matches!(&result, Ok(reply) if wire::is_truncated(reply)) {
                Dns64Counters::inc(&c.upstream_tcp_retries);
                Dns64Counters::inc(&c.upstream_queries);
                result = self
                    .exchange_tcp(server, s.timeout, &packet, id, question)
                    .await;
            }
            match result {
                Ok(reply) => return Some(reply),
                Err(UpstreamError::Timeout) => {
                    Dns64Counters::inc(&c.upstream_timeouts);
                    if let Some(passed) = self.upstream_warnings.pass(server, FailureKind::Timeout)
                    {
                        warn!(
                            "dns64: upstream {server} timed out for {} {}{passed}",
                            question.name(),
                            question.query_type()
                        );
                    }
                }
                Err(UpstreamError::Io(e)) => {
                    Dns64Counters::inc(&c.upstream_errors);
                    if let Some(passed) = self.upstream_warnings.pass(server, FailureKind::Error) {
                        warn!(
                            "dns64: upstream {server} failed for {} {}: {e}{passed}",
                            question.name(),
                            question.query_type()
                        );
                    }
                    // Out of file descriptors: the next upstream would get
                    // no socket either; the client gets SERVFAIL now.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        Dns64Counters::inc(&c.upstream_no_descriptors);
                        break;
                    }
                }
            }
        }
        Dns64Counters::inc(&c.upstream_failures);
        None
    }

    async fn exchange_udp(
        &self,
        server: SocketAddr,
        wait: Duration,
        packet: &[u8],
        id: u16,
        question: &Query,
    ) -> Result<Vec<u8>, UpstreamError> {
        let deadline = Instant::now() + wait;
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
        wait: Duration,
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
        match timeout(wait, attempt).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(r) => r.map_err(UpstreamError::Io),
        }
    }
}
