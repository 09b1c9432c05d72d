//! The TCP listener (RFC 7766): length-prefixed messages, several per
//! connection, answered in order; idle connections are closed after
//! seconds (RFC 7766 §6.2.3).

use super::engine::Engine;
use super::Dns64Counters;
use crate::log_limit::{RateLimitedWarning, WARNING_INTERVAL};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A TCP client connection is closed after this long without a query
/// (RFC 7766 §6.2.3 asks for seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open client TCP connections per listener; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 512;
/// The pause after a failed accept (e.g. EMFILE, which persists until a
/// descriptor is freed), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The TCP listener: each connection in its own task, at most
/// [`MAX_TCP_CONNECTIONS`] at a time.
pub(super) async fn serve_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    let accept_errors = RateLimitedWarning::new(WARNING_INTERVAL);
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
                    // E.g. out of file descriptors: back off instead of
                    // spinning, and say so once per interval.
                    if let Some(passed) = accept_errors.pass(e.kind(), std::time::Instant::now()) {
                        warn!("dns64: TCP accept: {e}{passed}");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
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
