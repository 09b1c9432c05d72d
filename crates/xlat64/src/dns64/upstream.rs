//! The upstream client: the I/O side of [`Resolution`]. It sends each try
//! the machine hands out (UDP from a fresh connected socket, or TCP after
//! a truncated answer), feeds back what arrives, errors and the time, and
//! logs the servers' state changes ([`UpstreamEvent`]): one line when a
//! server goes down, one when it comes back, never one per query.
//!
//! The servers' health ([`Upstreams`]) is one structure behind a mutex,
//! shared by every query of every thread: it is touched a few times per
//! upstream exchange (cache misses only), for microseconds, while the
//! exchange itself takes a round trip; and what one query learns (a server
//! is dead) must spare the next query on any thread the same timeout,
//! which per-thread copies would not.

use super::Dns64Counters;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{info, warn};
use xlat64_dns64::{
    Outcome, Resolution, Tally, Transmit, Transport, TryHandle, UpstreamEvent, Upstreams,
    DOWN_AFTER,
};

/// Largest DNS message (the TCP length field is 16 bits).
const MAX_MESSAGE: usize = 65535;

/// Random 16-bit query ids: SipHash with the process's random keys over a
/// counter, unpredictable from outside (RFC 5452 §9.2).
pub(super) struct IdSource {
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

/// A try's open socket or connection, kept for its next message.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// One try's I/O: the next message it received (with its connection, to
/// wait for another), or its error.
type TryIo = Pin<Box<dyn Future<Output = (TryHandle, io::Result<(Conn, Vec<u8>)>)> + Send>>;

/// What drives resolutions: the shared health of the servers, the ids,
/// the counters.
pub(super) struct Resolver {
    upstreams: Arc<Mutex<Upstreams>>,
    ids: IdSource,
    counters: Arc<Dns64Counters>,
}

/// A resolution whose outcome was taken, with the I/O of its tries.
pub(super) struct Driven {
    pub(super) resolution: Resolution,
    io: FuturesUnordered<TryIo>,
    resolver: Arc<Resolver>,
}

impl Driven {
    /// Lets the probe it still runs, if any, finish in a task of its own.
    pub(super) fn let_go(mut self) {
        if self.resolution.is_finished() {
            return;
        }
        tokio::spawn(async move {
            let resolver = self.resolver.clone();
            resolver
                .drive(&mut self.resolution, &mut self.io, false)
                .await;
        });
    }
}

impl Resolver {
    /// A resolver over `counters.upstreams`, the servers' shared health.
    pub(super) fn new(counters: Arc<Dns64Counters>) -> Self {
        Resolver {
            upstreams: counters.upstreams.clone(),
            ids: IdSource::new(),
            counters,
        }
    }

    /// The servers' health, locked (never across an await).
    pub(super) fn upstreams(&self) -> MutexGuard<'_, Upstreams> {
        self.upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `resolution` until its outcome is known.
    pub(super) async fn resolve(self: &Arc<Self>, mut resolution: Resolution) -> (Outcome, Driven) {
        let mut io = FuturesUnordered::new();
        let outcome = self
            .drive(&mut resolution, &mut io, true)
            .await
            .unwrap_or(Outcome::ServFail);
        let driven = Driven {
            resolution,
            io,
            resolver: self.clone(),
        };
        (outcome, driven)
    }

    /// The loop: send what is due, wait for a message, an error or the
    /// next timeout, feed it back. Ends with the outcome (`for_outcome`),
    /// or when the resolution is finished.
    async fn drive(
        &self,
        r: &mut Resolution,
        io: &mut FuturesUnordered<TryIo>,
        for_outcome: bool,
    ) -> Option<Outcome> {
        loop {
            let now = Instant::now();
            while let Some(t) = r.poll_transmit(now, &mut || self.ids.next()) {
                io.push(start_try(t));
            }
            self.count(r.take_tally());
            if for_outcome {
                if let Some(outcome) = r.poll_outcome() {
                    return Some(outcome);
                }
            }
            let Some(deadline) = r.poll_timeout().filter(|_| !r.is_finished()) else {
                r.abandon(&mut self.upstreams());
                return r.poll_outcome();
            };
            tokio::select! {
                Some((handle, received)) = io.next(), if !io.is_empty() => {
                    let now = Instant::now();
                    let mut ups = self.upstreams();
                    match received {
                        Ok((conn, bytes)) => {
                            r.handle_reply(now, handle, bytes, &mut ups);
                            // Still waiting (a mismatched datagram): read on.
                            if r.is_live(handle) {
                                io.push(Box::pin(next_message(handle, conn)));
                            }
                        }
                        // Out of file descriptors: no upstream is at fault and
                        // the next would get no socket either; the client gets
                        // SERVFAIL now (its probes are given back).
                        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                            self.counters.upstream_no_descriptors.fetch_add(1, Ordering::Relaxed);
                            // Finished: no task lingers with its other sockets.
                            r.give_up(&mut ups);
                            return if for_outcome { r.poll_outcome() } else { None };
                        }
                        Err(_) => r.handle_error(now, handle, &mut ups),
                    }
                    log_events(&mut ups);
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let mut ups = self.upstreams();
                    r.handle_timeout(Instant::now(), &mut ups);
                    log_events(&mut ups);
                }
            }
        }
    }

    fn count(&self, t: Tally) {
        let c = &self.counters;
        for (counter, n) in [
            (&c.upstream_queries, t.upstream_queries),
            (&c.upstream_tcp_retries, t.upstream_tcp_retries),
            (&c.upstream_timeouts, t.upstream_timeouts),
            (&c.upstream_errors, t.upstream_errors),
            (&c.upstream_mismatched, t.upstream_mismatched),
            (&c.upstream_failures, t.upstream_failures),
            (&c.upstream_error_rcodes, t.upstream_error_rcodes),
            (&c.resolutions_expired, t.resolutions_expired),
            (&c.parallel_a_unused, t.parallel_a_unused),
            (&c.passed_through, t.passed_through),
            (&c.real_aaaa, t.real_aaaa),
            (&c.error_passed, t.error_passed),
            (&c.synthesized, t.synthesized),
            (&c.synthesized_on_error, t.synthesized_on_error),
            (&c.excluded_aaaa_removed, t.excluded_aaaa_removed),
            (&c.nothing_to_synthesize, t.nothing_to_synthesize),
            (&c.reverse_mapped, t.reverse_mapped),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// One line per state change of a server.
fn log_events(ups: &mut Upstreams) {
    while let Some(event) = ups.poll_event() {
        match event {
            UpstreamEvent::Down { addr, retry_in } => warn!(
                "dns64: upstream {addr} down ({DOWN_AFTER} failures in a row): asked last, probed again in {}s",
                retry_in.as_secs()
            ),
            UpstreamEvent::Up { addr } => info!("dns64: upstream {addr} up again"),
        }
    }
}

/// Sends `t` and waits for the first message back.
fn start_try(t: Transmit) -> TryIo {
    let Transmit {
        handle,
        upstream,
        transport,
        bytes,
    } = t;
    Box::pin(async move {
        let conn = match transport {
            Transport::Udp => send_udp(upstream, &bytes).await.map(Conn::Udp),
            Transport::Tcp => send_tcp(upstream, &bytes).await.map(Conn::Tcp),
        };
        match conn {
            Ok(conn) => next_message(handle, conn).await,
            Err(e) => (handle, Err(e)),
        }
    })
}

async fn send_udp(server: SocketAddr, bytes: &[u8]) -> io::Result<UdpSocket> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from other addresses and
    // reports ICMP port unreachable as an error.
    socket.connect(server).await?;
    socket.send(bytes).await?;
    Ok(socket)
}

async fn send_tcp(server: SocketAddr, bytes: &[u8]) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut out = Vec::with_capacity(2 + bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    stream.write_all(&out).await?;
    Ok(stream)
}

/// The next datagram or length-prefixed message on `conn`.
async fn next_message(handle: TryHandle, conn: Conn) -> (TryHandle, io::Result<(Conn, Vec<u8>)>) {
    let received = match conn {
        Conn::Udp(socket) => {
            // Received into the spare capacity: no 64 KiB to zero per
            // query, and the reply is handed on without another copy.
            let mut buf = Vec::with_capacity(MAX_MESSAGE);
            match socket.recv_buf(&mut buf).await {
                Ok(len) => {
                    buf.truncate(len);
                    Ok((Conn::Udp(socket), buf))
                }
                Err(e) => Err(e),
            }
        }
        Conn::Tcp(mut stream) => {
            let mut len = [0u8; 2];
            match stream.read_exact(&mut len).await {
                Ok(_) => {
                    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    match stream.read_exact(&mut reply).await {
                        Ok(_) => Ok((Conn::Tcp(stream), reply)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    (handle, received)
}
