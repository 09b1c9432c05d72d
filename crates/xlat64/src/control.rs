//! The control socket: a Unix stream socket on which `xlat64 sessions`,
//! `bib` and `stats` ask the running daemon for its tables and counters.
//!
//! Protocol: the client writes one command line (`sessions`, `bib` or
//! `stats`), the daemon answers with one JSON document and closes.

use crate::dns64_server::Dns64Counters;
use crate::stats::PacketCounters;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use xlat64_nat::{BibEntry, Nat64, SessionEntry, TcpState};

/// What the control socket reads from.
#[derive(Clone, Default)]
pub struct ControlState {
    /// The NAT64 core, when `[nat64]` is configured.
    pub nat: Option<Arc<Mutex<Nat64>>>,
    /// Packet-path counters, when `[nat64]` is configured.
    pub packets: Option<Arc<PacketCounters>>,
    /// DNS64 counters, when `[dns64]` is configured.
    pub dns: Option<Arc<Dns64Counters>>,
}

/// Binds the control socket at `path`, creating its directory. A stale socket
/// file is replaced; one that a live daemon answers on is an error.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("control.socket: cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control.socket: {} is in use by another running xlat64",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "control.socket: cannot remove stale {}: {e}",
                path.display()
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("control.socket: cannot bind {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        format!(
            "control.socket: cannot set permissions on {}: {e}",
            path.display()
        )
    })?;
    Ok(listener)
}

/// Answers requests until `shutdown` is cancelled.
pub async fn serve(listener: UnixListener, state: ControlState, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(256));
            let read =
                tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
            let reply = match read {
                Ok(Ok(_)) => answer(&state, line.trim()),
                _ => json!({"error": "no command received"}),
            };
            let mut text = reply.to_string();
            text.push('\n');
            if let Err(e) = write.write_all(text.as_bytes()).await {
                tracing::debug!(error = %e, "control client went away");
            }
        });
    }
}

fn answer(state: &ControlState, command: &str) -> Value {
    let now = Instant::now();
    match command {
        "sessions" => {
            let sessions = state
                .nat
                .as_ref()
                .map(|n| n.lock().expect("NAT lock").sessions());
            Value::Array(
                sessions
                    .unwrap_or_default()
                    .iter()
                    .map(|s| session_json(s, now))
                    .collect(),
            )
        }
        "bib" => {
            let bib = state
                .nat
                .as_ref()
                .map(|n| n.lock().expect("NAT lock").bib());
            Value::Array(bib.unwrap_or_default().iter().map(bib_json).collect())
        }
        "stats" => {
            let mut out = BTreeMap::new();
            if let Some(p) = &state.packets {
                p.snapshot(&mut out);
            }
            if let Some(nat) = &state.nat {
                let nat = nat.lock().expect("NAT lock");
                out.insert("nat64_sessions".into(), nat.session_count() as u64);
                out.insert("nat64_bindings".into(), nat.bib_count() as u64);
                out.insert("nat64_sessions_created".into(), nat.sessions_created());
                out.insert("nat64_sessions_expired".into(), nat.sessions_expired());
                let c = nat.counters();
                out.insert("icmp_errors_sent".into(), c.icmp_errors_sent);
                out.insert(
                    "icmp_errors_rate_limited".into(),
                    c.icmp_errors_rate_limited,
                );
                out.insert("fragments_reassembled".into(), c.fragments_reassembled);
                out.insert("fragment_timeouts".into(), c.fragment_timeouts);
                out.insert("packets_fragmented".into(), c.packets_fragmented);
                let (in_progress, bytes) = nat.fragments_in_progress();
                out.insert("fragments_in_progress".into(), in_progress as u64);
                out.insert("fragments_bytes_held".into(), bytes as u64);
            }
            if let Some(d) = &state.dns {
                d.snapshot(&mut out);
            }
            json!(out)
        }
        other => {
            json!({"error": format!("unknown command `{other}`; expected sessions, bib or stats")})
        }
    }
}

fn tcp_state_name(s: Option<TcpState>) -> &'static str {
    match s {
        None => "active",
        Some(TcpState::V6SynRcv) => "syn_sent",
        Some(TcpState::Established) => "established",
        Some(TcpState::FinRcv) => "fin_received",
        Some(TcpState::Closing) => "closing",
    }
}

fn session_json(s: &SessionEntry, now: Instant) -> Value {
    json!({
        "protocol": s.proto.as_str(),
        "v6_client": s.v6_client.to_string(),
        "v6_server": s.v6_server.to_string(),
        "v4_local": s.v4_local.to_string(),
        "v4_server": s.v4_server.to_string(),
        "state": tcp_state_name(s.tcp_state),
        "expires_in_s": s.expires.saturating_duration_since(now).as_secs(),
    })
}

fn bib_json(b: &BibEntry) -> Value {
    json!({
        "protocol": b.proto.as_str(),
        "v6_client": b.v6_client.to_string(),
        "v4_local": b.v4_local.to_string(),
        "static": b.is_static,
        "sessions": b.sessions,
    })
}

/// Sends `command` to the daemon at `path` and returns its JSON answer.
pub fn request(path: &PathBuf, command: &str) -> Result<Value, String> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot reach the xlat64 daemon at {} ({e}); is `xlat64 run` running with this configuration?",
            path.display()
        )
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(fail)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(fail)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "the daemon at {} sent an unreadable answer: {e}",
            path.display()
        )
    })?;
    if let Some(err) = value.get("error") {
        return Err(format!("the daemon refused `{command}`: {err}"));
    }
    Ok(value)
}
