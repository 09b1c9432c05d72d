//! The DNS64 UDP threads (`runtime.io-threads`): each its own OS thread
//! with a current-thread runtime, serving one socket of every `listen`
//! address (the sockets of an address share its port, `SO_REUSEPORT`, and
//! the kernel spreads clients over them by address and port hash).
//!
//! A query that misses the cache is resolved on the thread that received
//! it: its task, upstream sockets and timers belong to that thread's
//! runtime, so no task moves and no wakeup crosses threads (a multi-thread
//! runtime would steal tasks and wake other workers on every upstream
//! answer), as Unbound and Knot Resolver run one event loop per thread.
//! What threads share is shared data: the cache shards, the settings, the
//! upstream health, the rate limiter and the counters.
//!
//! The main thread keeps the lifecycle and TCP: a reload or a route change
//! never delays a UDP answer.

use super::access::UdpGate;
use super::engine::Engine;
use super::udp::serve_udp;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

/// What every UDP thread serves with.
#[derive(Clone)]
pub(super) struct UdpShared {
    pub(super) engine: Arc<Engine>,
    pub(super) gate: Arc<UdpGate>,
    pub(super) shutdown: CancellationToken,
}

/// Starts thread `index` serving `sockets` until `shared.shutdown`; the
/// receiver completes when the thread has stopped. On failure (no thread
/// or runtime could be made) the sockets come back with the error.
pub(super) fn start(
    index: usize,
    sockets: Vec<std::net::UdpSocket>,
    shared: UdpShared,
) -> Result<oneshot::Receiver<()>, (std::io::Error, Vec<std::net::UdpSocket>)> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Err((e, sockets)),
    };
    // The sockets go over once the thread exists, so that a failed spawn
    // still has them.
    let (hand_over, handed) = std::sync::mpsc::channel::<Vec<std::net::UdpSocket>>();
    let (stopped, done) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("xlat64-dns64-{index}"))
        .spawn(move || {
            let Ok(sockets) = handed.recv() else {
                return;
            };
            runtime.block_on(serve_sockets(sockets, shared));
            let _ = stopped.send(());
        });
    match spawned {
        Ok(_) => match hand_over.send(sockets) {
            Ok(()) => Ok(done),
            Err(e) => Err((
                std::io::Error::other("the DNS64 UDP thread ended at once"),
                e.0,
            )),
        },
        Err(e) => Err((e, sockets)),
    }
}

/// Serves `sockets` on the current runtime until shutdown. A socket that
/// cannot join the runtime is closed, which takes it out of its port's
/// group: the kernel then gives its clients to the other sockets.
pub(super) async fn serve_sockets(sockets: Vec<std::net::UdpSocket>, shared: UdpShared) {
    let mut listeners = JoinSet::new();
    for socket in sockets {
        match UdpSocket::from_std(socket) {
            Ok(socket) => {
                listeners.spawn(serve_udp(
                    shared.engine.clone(),
                    shared.gate.clone(),
                    Arc::new(socket),
                    shared.shutdown.clone(),
                ));
            }
            Err(e) => error!("dns64: a UDP socket cannot be served (closed): {e}"),
        }
    }
    while listeners.join_next().await.is_some() {}
}
