//! The TCP listener (RFC 7766): length-prefixed messages, several per
//! connection, answered in order.
//!
//! Resources go only to clients that may use them: a connection from
//! outside `allow` is closed as soon as it is accepted, before a task or a
//! buffer exists for it; a client holds at most `tcp-connections-per-client`
//! connections (RFC 7766 §6.2.2 lets a server limit them per client);
//! idle connections are closed after `tcp-idle-timeout-ms` (RFC 7766
//! §6.2.3: seconds, not minutes), and after [`CROWDED_IDLE_TIMEOUT`] when
//! the listener is near its [`MAX_TCP_CONNECTIONS`] (§6.2.3 lets a server
//! under pressure close idle connections sooner), so that new clients get
//! in; a connection whose message is dropped or gets FORMERR is closed
//! after the reply (§6.2.4: the server may close a connection to manage
//! its resources), so junk sent every few seconds does not keep it.

use super::access::{TcpClients, TcpSlot};
use super::engine::Engine;
use super::Dns64Counters;
use crate::log_limit::{RateLimitedWarning, WARNING_INTERVAL};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Open client TCP connections per listener; more are closed at once.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 512;
/// Beyond this many open connections the listener is crowded: idle
/// connections get [`CROWDED_IDLE_TIMEOUT`].
const CROWDED: usize = MAX_TCP_CONNECTIONS / 4 * 3;
/// How long a connection may be idle while the listener is crowded (or
/// `tcp-idle-timeout-ms`, when shorter).
const CROWDED_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after a failed accept (e.g. EMFILE, which persists until a
/// descriptor is freed), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// RCODE FORMERR (RFC 1035 §4.1.1).
const RCODE_FORMERR: u8 = 1;

/// The TCP listener: each connection of an allowed client in its own
/// task, at most [`MAX_TCP_CONNECTIONS`] at a time; `clients` counts each
/// client's connections over every listener (`tcp-connections-per-client`
/// is per server, not per address).
pub(super) async fn serve_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    clients: Arc<TcpClients>,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    let (crowded, crowded_rx) = watch::channel(false);
    let accept_errors = RateLimitedWarning::new(WARNING_INTERVAL);
    let c = &engine.counters;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    Dns64Counters::inc(&c.tcp_connections);
                    // Dropping the stream closes it: nothing more is spent.
                    let s = engine.settings();
                    if !s.allow.contains(peer.ip()) {
                        Dns64Counters::inc(&c.tcp_refused);
                        debug!("dns64: TCP connection from {peer}, not in dns64.allow: closed");
                        continue;
                    }
                    if connections.len() >= MAX_TCP_CONNECTIONS {
                        Dns64Counters::inc(&c.dropped_overload);
                        continue;
                    }
                    let Some(slot) = clients.take(s.access.client(peer.ip()), s.access.tcp_per_client) else {
                        Dns64Counters::inc(&c.tcp_client_limit);
                        continue;
                    };
                    connections.spawn(serve_tcp_connection(
                        engine.clone(),
                        stream,
                        peer,
                        slot,
                        crowded_rx.clone(),
                    ));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of
                    // spinning, and say so once per interval.
                    Dns64Counters::inc(&c.tcp_accept_errors);
                    if let Some(passed) = accept_errors.pass(e.kind(), std::time::Instant::now()) {
                        warn!("dns64: TCP accept: {e}{passed}");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
        crowded.send_if_modified(|was| {
            let now = connections.len() > CROWDED;
            std::mem::replace(was, now) != now
        });
    }
}

/// Why a connection stopped waiting for a query.
enum Idle {
    /// `tcp-idle-timeout-ms` passed.
    Timeout,
    /// [`CROWDED_IDLE_TIMEOUT`] passed while the listener was crowded.
    Crowded,
    /// The client closed, an error, or the listener ended.
    Closed,
}

/// RFC 7766: length-prefixed messages, several per connection, answered in
/// order; closed when idle (sooner when the listener is crowded), or after
/// a message that was dropped or answered FORMERR. `_slot` holds the
/// client's share of connections until the connection ends.
async fn serve_tcp_connection(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    peer: SocketAddr,
    _slot: TcpSlot,
    mut crowded: watch::Receiver<bool>,
) {
    let c = &engine.counters;
    loop {
        // Read per message: a reload applies to the next one.
        let idle = engine.settings().access.tcp_idle;
        let mut len = [0u8; 2];
        match wait_for_query(&mut stream, &mut len, idle, &mut crowded).await {
            Ok(()) => {}
            Err(Idle::Timeout) => return Dns64Counters::inc(&c.tcp_idle_closed),
            Err(Idle::Crowded) => return Dns64Counters::inc(&c.tcp_crowded_closed),
            Err(Idle::Closed) => return,
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(
            timeout(idle, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return Dns64Counters::inc(&c.tcp_idle_closed);
        }
        Dns64Counters::inc(&c.queries_tcp);
        let Some(reply) = engine.answer(&query, peer.ip()).await else {
            return Dns64Counters::inc(&c.tcp_malformed_closed);
        };
        let Ok(reply_len) = u16::try_from(reply.bytes.len()) else {
            debug!("dns64: reply to {peer} longer than 65535 bytes");
            return;
        };
        let mut out = Vec::with_capacity(2 + reply.bytes.len());
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply.bytes);
        if !matches!(timeout(idle, stream.write_all(&out)).await, Ok(Ok(_))) {
            return;
        }
        if reply
            .bytes
            .get(3)
            .is_some_and(|b| b & 0x0f == RCODE_FORMERR)
        {
            return Dns64Counters::inc(&c.tcp_malformed_closed);
        }
    }
}

/// Reads the next message's length field into `len`, waiting at most
/// `idle`, or [`CROWDED_IDLE_TIMEOUT`] from the start of the wait while the
/// listener is crowded (checked again whenever that changes).
async fn wait_for_query(
    stream: &mut TcpStream,
    len: &mut [u8; 2],
    idle: Duration,
    crowded: &mut watch::Receiver<bool>,
) -> Result<(), Idle> {
    let start = Instant::now();
    // Kept across the loop: `read_exact` is not cancel-safe.
    let mut read = pin!(stream.read_exact(len));
    loop {
        let is_crowded = *crowded.borrow_and_update();
        let limit = if is_crowded {
            idle.min(CROWDED_IDLE_TIMEOUT)
        } else {
            idle
        };
        tokio::select! {
            r = &mut read => return r.map(drop).map_err(|_| Idle::Closed),
            _ = sleep_until(start + limit) => {
                return Err(if is_crowded && limit < idle { Idle::Crowded } else { Idle::Timeout });
            }
            changed = crowded.changed() => {
                if changed.is_err() {
                    return Err(Idle::Closed);
                }
            }
        }
    }
}
