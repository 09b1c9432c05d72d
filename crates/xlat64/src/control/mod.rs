//! The control socket: a Unix stream socket on which `xlat64 sessions`,
//! `bib` and `stats` ask the running daemon for its tables and counters.
//!
//! Protocol: the client writes one command line (`sessions`, `bib` or
//! `stats`; the tables with optional filter words, see [`filter`]), the
//! daemon answers with one JSON document and closes.
//!
//! Tables come from the packet workers page by page through their
//! mailboxes and are streamed to the client as they arrive: a listing of a
//! million sessions holds nothing a worker needs, and each worker builds
//! one page between two batches of packets. The listing is not an atomic
//! snapshot (sessions created or expiring meanwhile may be in it or not),
//! and it comes unsorted; the command line sorts it.

pub mod alerts;
pub mod explain;
pub mod filter;
pub mod metrics;

use crate::datapath::DatapathView;
use crate::dns64::Dns64Counters;
use crate::log_limit::{RateLimitedWarning, WARNING_INTERVAL};
use filter::TableFilter;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use xlat64_nat::{BibEntry, SessionEntry, TcpState};

/// What the control socket reads from.
#[derive(Clone, Default)]
pub struct ControlState {
    /// The packet workers, when `[nat64]` is configured.
    pub datapath: Option<DatapathView>,
    /// DNS64 counters, when `[dns64]` is configured.
    pub dns: Option<Arc<Dns64Counters>>,
    /// Binding events the log writer dropped, when the log is on.
    pub binding_log_dropped: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Empties the DNS64 cache, when `[dns64]` is configured.
    pub dns_cache: Option<crate::dns64::CacheFlusher>,
    /// Asks the daemon to reload its configuration.
    pub reload: Option<
        tokio::sync::mpsc::UnboundedSender<
            tokio::sync::oneshot::Sender<crate::daemon::ReloadOutcome>,
        >,
    >,
}

/// The bound control socket and what `bind` created for it.
pub struct Bound {
    /// The listener (non-blocking, for [`spawn`]).
    pub listener: std::os::unix::net::UnixListener,
    /// The socket file.
    pub path: PathBuf,
    /// The directory `bind` created for it (removed at stop), if any.
    pub created_dir: Option<PathBuf>,
}

/// Binds the control socket at `path`, creating its directory (mode 0700)
/// if missing. A stale socket is replaced; one that a live daemon answers
/// on is an error, and so is a path that is not a socket (it is never
/// removed). The socket is created with its final mode, 0600: the umask is
/// narrowed around the bind, so that no other user can connect in between.
pub fn bind(path: &Path) -> Result<Bound, String> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let mut created_dir = None;
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("control.socket: cannot create {}: {e}", dir.display()))?;
            created_dir = Some(dir.to_path_buf());
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(format!(
                "control.socket: {} exists and is not a socket; remove it or choose another path",
                path.display()
            ));
        }
        Ok(_) => {
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
        Err(_) => {}
    }
    let bound =
        crate::sys::process::with_umask(0o177, || std::os::unix::net::UnixListener::bind(path));
    let listener = bound
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("control.socket: cannot bind {}: {e}", path.display()))?;
    Ok(Bound {
        listener,
        path: path.to_path_buf(),
        created_dir,
    })
}

/// Serves the control socket on a thread of its own, with its own
/// single-threaded runtime, until `shutdown` is cancelled: listing a large
/// table (JSON for a million sessions) never takes time from the DNS64
/// tasks, and never holds anything a packet worker needs.
pub fn spawn(
    listener: std::os::unix::net::UnixListener,
    state: ControlState,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("xlat64-control".into())
        .spawn(move || {
            runtime.block_on(async move {
                match UnixListener::from_std(listener) {
                    Ok(listener) => serve(listener, state, shutdown).await,
                    Err(e) => tracing::error!(error = %e, "control socket unusable"),
                }
            })
        })
}

/// Answers requests until `shutdown` is cancelled.
async fn serve(listener: UnixListener, state: ControlState, shutdown: CancellationToken) {
    let accept_errors = RateLimitedWarning::new(WARNING_INTERVAL);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors (EMFILE persists until
                    // one is freed): say so once per interval, and pause
                    // instead of spinning.
                    if let Some(passed) = accept_errors.pass(e.kind(), Instant::now()) {
                        tracing::warn!(error = %e, "control socket accept failed{passed}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(256));
            let read =
                tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
            let mut write = BufWriter::new(write);
            let written = match read {
                Ok(Ok(_)) => answer(&state, line.trim(), &mut write).await,
                _ => send(&mut write, &json!({"error": "no command received"})).await,
            };
            if let Err(e) = written.and(write.flush().await) {
                tracing::debug!(error = %e, "control client went away");
            }
        });
    }
}

type Out = BufWriter<OwnedWriteHalf>;

/// The words of a command line after the command.
fn words_after(line: &str) -> std::str::SplitWhitespace<'_> {
    let mut words = line.split_whitespace();
    words.next();
    words
}

/// `trace [client=ADDR[/LEN]] [reason=NAME] [count=N] [all=1]`: streams
/// one line per traced packet until `count` lines (0: no end) or the
/// client goes away; an empty line each second without one tells whether
/// it is still there.
async fn trace(
    state: &ControlState,
    words: std::str::SplitWhitespace<'_>,
    out: &mut Out,
) -> std::io::Result<()> {
    let Some(datapath) = &state.datapath else {
        return send(out, &json!({"error": "no [nat64]: nothing to trace"})).await;
    };
    let mut filter = crate::datapath::trace::TraceFilter::default();
    let mut count = 0u64;
    for word in words {
        let parsed = match word.split_once('=') {
            Some(("client", v)) => filter::parse_client(v).map(|c| filter.client = Some(c)),
            Some(("reason", v)) => {
                filter.reason = Some(v.to_string());
                Ok(())
            }
            Some(("count", v)) => v
                .parse()
                .map(|n| count = n)
                .map_err(|_| format!("count={v}: not a number")),
            Some(("all", v)) => {
                filter.all = v == "1";
                Ok(())
            }
            _ => Err(format!("`{word}` is not client=, reason=, count= or all=")),
        };
        if let Err(e) = parsed {
            return send(out, &json!({ "error": e })).await;
        }
    }
    let (tx, mut lines) = tokio::sync::mpsc::channel(1024);
    datapath.trace(Some((filter, tx))).await;
    out.write_all(b"# tracing\n").await?;
    out.flush().await?;
    let mut shown = 0u64;
    let mut replaced = false;
    let result = loop {
        let line = tokio::time::timeout(Duration::from_secs(1), lines.recv()).await;
        let written = match line {
            Ok(Some(line)) => {
                shown += 1;
                out.write_all(format!("{line}\n").as_bytes()).await
            }
            // Another trace took the workers over.
            Ok(None) => {
                replaced = true;
                break Ok(());
            }
            Err(_) => out.write_all(b"\n").await,
        };
        if let Err(e) = written.and(out.flush().await) {
            break Err(e);
        }
        if count > 0 && shown >= count {
            break Ok(());
        }
    };
    drop(lines);
    if !replaced {
        datapath.trace(None).await;
    }
    result
}

async fn send(out: &mut Out, value: &Value) -> std::io::Result<()> {
    let mut text = value.to_string();
    text.push('\n');
    out.write_all(text.as_bytes()).await
}

async fn answer(state: &ControlState, line: &str, out: &mut Out) -> std::io::Result<()> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let filter = match command {
        "sessions" | "bib" => match TableFilter::from_words(words) {
            Ok(f) => f,
            Err(e) => return send(out, &json!({ "error": e })).await,
        },
        _ => TableFilter::default(),
    };
    match command {
        "sessions" => {
            let now = Instant::now();
            stream_pages(
                state,
                out,
                |d, i, start| Box::pin(d.sessions_page(i, start)),
                |s| filter.session(s).then(|| session_json(s, now)),
            )
            .await
        }
        "bib" => {
            stream_pages(
                state,
                out,
                |d, i, start| Box::pin(d.bib_page(i, start)),
                |b| filter.binding(b).then(|| bib_json(b)),
            )
            .await
        }
        "stats" => send(out, &stats(state).await).await,
        "reload" => {
            let outcome = match &state.reload {
                Some(daemon) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    match daemon.send(tx) {
                        Ok(()) => rx.await.unwrap_or_else(|_| Err("the daemon is stopping".into())),
                        Err(_) => Err("the daemon is stopping".into()),
                    }
                }
                None => Err("this daemon cannot reload".into()),
            };
            let reply = match outcome {
                Ok(applied) => serde_json::json!({ "applied": applied }),
                Err(error) => serde_json::json!({ "error": error }),
            };
            send(out, &reply).await
        }
        "trace" => trace(state, words_after(line), out).await,
        "flush-cache" => {
            let flushed = state.dns_cache.as_ref().map(|c| c.flush());
            send(out, &serde_json::json!({ "flushed": flushed })).await
        }
        other => {
            send(
                out,
                &json!({"error": format!("unknown command `{other}`; expected sessions, bib or stats")}),
            )
            .await
        }
    }
}

type Page<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<T>>> + Send + 'a>>;

/// Writes a JSON array of every worker's entries that `to_json` keeps, one
/// page at a time.
async fn stream_pages<T>(
    state: &ControlState,
    out: &mut Out,
    page: impl for<'a> Fn(&'a DatapathView, usize, usize) -> Page<'a, T>,
    to_json: impl Fn(&T) -> Option<Value>,
) -> std::io::Result<()> {
    out.write_all(b"[").await?;
    let mut first = true;
    if let Some(datapath) = &state.datapath {
        for worker in 0..datapath.workers() {
            let mut start = 0;
            while let Some(entries) = page(datapath, worker, start).await {
                if entries.is_empty() {
                    break;
                }
                start += entries.len();
                for value in entries.iter().filter_map(&to_json) {
                    if !first {
                        out.write_all(b",").await?;
                    }
                    first = false;
                    out.write_all(value.to_string().as_bytes()).await?;
                }
            }
        }
    }
    out.write_all(b"]\n").await
}

/// The names of the NAT64 figures the workers report, summed.
const FIGURE_NAMES: [&str; 7] = [
    "nat64_sessions",
    "nat64_bindings",
    "nat64_port_blocks",
    "nat64_sessions_created",
    "nat64_sessions_expired",
    "fragments_in_progress",
    "fragments_bytes_held",
];

/// Every counter: the workers' summed, the NAT64 figures they report, DNS64's.
async fn stats(state: &ControlState) -> Value {
    json!(stats_map(state).await)
}

/// Dynamic bindings per pool4 address in use and protocol (TCP, UDP,
/// ICMP), all workers: for the metrics.
pub async fn pool4_use(state: &ControlState) -> BTreeMap<std::net::Ipv4Addr, [u64; 3]> {
    let mut out: BTreeMap<std::net::Ipv4Addr, [u64; 3]> = BTreeMap::new();
    if let Some(datapath) = &state.datapath {
        for i in 0..datapath.workers() {
            if let Some(f) = datapath.figures(i).await {
                for (addr, used) in f.pool4_use {
                    let sum = out.entry(addr).or_default();
                    for (s, u) in sum.iter_mut().zip(used) {
                        *s += u64::from(u);
                    }
                }
            }
        }
    }
    out
}

/// Every counter by name (what `stats` and the metrics show).
pub async fn stats_map(state: &ControlState) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Some(datapath) = &state.datapath {
        out.insert("workers".into(), datapath.workers() as u64);
        out.insert("tun_offload".into(), u64::from(datapath.offload));
        let mut sum = xlat64_nat::NatCounters::default();
        let mut gauges = [0u64; 7];
        for i in 0..datapath.workers() {
            let counters = datapath.counters(i);
            counters.snapshot(&mut out);
            let rx = counters.tun_rx_packets.load(Ordering::Relaxed);
            out.insert(format!("worker_{i}_tun_rx_packets"), rx);
            let Some(f) = datapath.figures(i).await else {
                continue;
            };
            sum.add(&f.counters);
            for (g, v) in gauges.iter_mut().zip([
                f.sessions,
                f.bindings,
                f.port_blocks,
                f.sessions_created,
                f.sessions_expired,
                f.fragments_in_progress,
                f.fragments_bytes_held,
            ]) {
                *g += v;
            }
            out.insert(format!("worker_{i}_nat64_sessions"), f.sessions);
            for (proto, (created, expired)) in ["tcp", "udp", "icmp"]
                .into_iter()
                .zip(f.sessions_by_protocol)
            {
                *out.entry(format!("nat64_sessions_created_{proto}"))
                    .or_default() += created;
                *out.entry(format!("nat64_sessions_expired_{proto}"))
                    .or_default() += expired;
            }
        }
        for (name, v) in FIGURE_NAMES.into_iter().zip(gauges) {
            out.insert(name.into(), v);
        }
        if let Some(d) = &state.binding_log_dropped {
            sum.binding_log_dropped += d.load(Ordering::Relaxed);
        }
        for (name, v) in sum.named() {
            out.insert(name.into(), v);
        }
    }
    if let Some(d) = &state.dns {
        d.snapshot(&mut out);
    }
    out
}

fn tcp_state_name(s: Option<TcpState>) -> &'static str {
    s.map_or("active", TcpState::name)
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

/// The error for a daemon that cannot be reached at `path`.
fn unreachable_daemon(path: &Path, e: std::io::Error) -> String {
    format!(
        "cannot reach the xlat64 daemon at {} ({e}); is `xlat64 run` running with this configuration?",
        path.display()
    )
}

/// Connects to the daemon at `path` (reads time out after `read_timeout`)
/// and sends `command`.
fn send_command(
    path: &Path,
    command: &str,
    read_timeout: Option<Duration>,
) -> Result<std::os::unix::net::UnixStream, String> {
    let fail = |e| unreachable_daemon(path, e);
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(fail)?;
    stream.set_read_timeout(read_timeout).map_err(fail)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(fail)?;
    Ok(stream)
}

/// Sends `command` and hands each line of the answer to `line` until the
/// daemon closes the connection (`trace`). A first line that is a JSON
/// error is returned as the error.
pub fn stream(path: &Path, command: &str, mut line: impl FnMut(&str)) -> Result<(), String> {
    use std::io::BufRead;
    let fail = |e| unreachable_daemon(path, e);
    let stream = send_command(path, command, None)?;
    for text in std::io::BufReader::new(stream).lines() {
        let text = text.map_err(fail)?;
        if text.starts_with('{') {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if let Some(err) = v.get("error") {
                    return Err(format!("the daemon refused `{command}`: {err}"));
                }
            }
        }
        line(&text);
    }
    Ok(())
}

/// Sends `command` to the daemon at `path` and returns its JSON answer.
pub fn request(path: &Path, command: &str) -> Result<Value, String> {
    let mut stream = send_command(path, command, Some(Duration::from_secs(10)))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| unreachable_daemon(path, e))?;
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

#[cfg(test)]
mod explain_tests {
    use super::*;

    /// Every counter `stats` can show says what it means.
    #[test]
    fn every_counter_is_explained() {
        let mut names = std::collections::BTreeMap::new();
        crate::datapath::counters::PacketCounters::default().snapshot(&mut names);
        crate::dns64::Dns64Counters::default().snapshot(&mut names);
        let mut all: Vec<String> = names.into_keys().collect();
        all.extend(
            xlat64_nat::NatCounters::default()
                .named()
                .iter()
                .map(|(n, _)| n.to_string()),
        );
        all.extend(FIGURE_NAMES.iter().map(|n| n.to_string()));
        for proto in ["tcp", "udp", "icmp"] {
            all.push(format!("nat64_sessions_created_{proto}"));
            all.push(format!("nat64_sessions_expired_{proto}"));
        }
        all.extend(
            [
                "workers",
                "tun_offload",
                "worker_0_tun_rx_packets",
                "worker_3_nat64_sessions",
                "dns64_upstream_0_up",
                "dns64_upstream_1_srtt_ms",
                "dns64_upstream_12_failures_in_a_row",
            ]
            .map(String::from),
        );
        for name in &all {
            assert!(
                explain::explain(name).is_some(),
                "{name} has no explanation"
            );
        }
    }
}
