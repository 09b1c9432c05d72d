//! The UDP listener: datagrams received and answered in batches
//! (`recvmmsg`/`sendmmsg`, `sys::udp_batch`); each first checked
//! ([`UdpGate`]: `allow`, then the client's query rate) before anything is
//! decoded, cache hits answered in the receive loop, every other query in
//! its own task; answers truncated to the client's size (TC=1).

use super::access::{Admission, UdpGate};
use super::engine::Engine;
use super::Dns64Counters;
use crate::sys::udp_batch::{RecvBatch, SendBatch, BATCH};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use xlat64_dns64::{wire, CacheKey};

/// Queries answered at the same time per UDP socket; more are dropped.
const MAX_UDP_IN_FLIGHT: usize = 4096;
/// Receive rounds per wakeup before the loop looks at its other events
/// (finished tasks, shutdown).
const UDP_ROUNDS_PER_WAKEUP: usize = 8;

/// The UDP listener. Datagrams are read in batches ([`RecvBatch`]); cache
/// hits are answered right here, with no task and no allocation, and their
/// replies leave in batches ([`SendBatch`]); everything else gets a task.
pub(super) async fn serve_udp(
    engine: Arc<Engine>,
    gate: Arc<UdpGate>,
    socket: Arc<UdpSocket>,
    shutdown: CancellationToken,
) {
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
                // A full batch is flushed as soon as it fills, so there
                // is always a buffer; without one, `answer` checks `allow`.
                let admission = match send.next_buffer() {
                    Some(out) => gate.admit(&engine, query, peer.ip(), now, out),
                    None => Admission::Pass,
                };
                match admission {
                    Admission::Pass => {}
                    Admission::Drop => continue,
                    Admission::Reply => {
                        send.commit(peer);
                        if send.is_full() {
                            flush_udp(&socket, &mut send).await;
                        }
                        continue;
                    }
                }
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
