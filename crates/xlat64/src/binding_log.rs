//! The binding log (`[nat64.log] bindings`): one JSON line per dynamic
//! binding created and removed, so that an abuse report ("who held
//! 192.0.2.1:61234 at 14:03?") can be answered (RFC 6888 REQ-12).
//!
//! The packet workers drain their NAT's binding events after each batch and
//! hand them to this writer thread through a bounded channel, never
//! waiting: when the writer falls behind, events are dropped and counted
//! (`binding_log_dropped`). The writer formats and writes off the packet
//! path, flushing at least once a second. On SIGHUP the file is reopened
//! (for logrotate).
//!
//! A line: `{"time":"2026-11-23T20:31:02.123Z","event":"create",
//! "protocol":"udp","v6_client":"[2001:db8:1::2]:5000",
//! "v4_local":"192.0.2.1:61001"}`; with port blocks, one per block:
//! `{..., "protocol":"all","v6_client":"2001:db8:1::/64",
//! "v4_block":"192.0.2.1:61440-61951"}` (see [`LogLine`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use xlat64_nat::{BindingEvent, Held};

/// Events in flight between the workers and the writer at most.
const CHANNEL: usize = 65_536;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard error, with the daemon's own log.
    Stderr,
    /// A file, appended to (created with mode 0640 if missing).
    File(PathBuf),
}

/// What the workers hold: a sender that never blocks.
#[derive(Clone)]
pub struct Handle {
    tx: SyncSender<(BindingEvent, SystemTime)>,
    dropped: Arc<AtomicU64>,
}

impl Handle {
    /// Queues `event`, which happened at its `at`; `now`/`wall` are one
    /// reading of both clocks, to turn `at` into wall-clock time.
    pub fn send(&self, event: BindingEvent, now: Instant, wall: SystemTime) {
        let when = wall - now.saturating_duration_since(event.at);
        match self.tx.try_send((event, when)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread and its controls.
pub struct BindingLog {
    handle: Handle,
    reopen: Arc<AtomicBool>,
    /// A new target (a reload), opened, for the writer to switch to.
    next: NextTarget,
    thread: Option<JoinHandle<()>>,
}

/// A target opened by [`BindingLog::retarget`], waiting for the writer.
type NextTarget = Arc<Mutex<Option<(Target, Box<dyn Write + Send>)>>>;

impl BindingLog {
    /// Opens `target` (an error names the file) and starts the writer.
    pub fn start(target: Target) -> Result<BindingLog, String> {
        let out = open(&target)?;
        let (tx, rx) = sync_channel(CHANNEL);
        let reopen = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let next = NextTarget::default();
        let (flag, switch) = (reopen.clone(), next.clone());
        let thread = std::thread::Builder::new()
            .name("binding-log".into())
            .spawn(move || write_lines(rx, out, target, flag, switch))
            .map_err(|e| format!("cannot start the binding log writer: {e}"))?;
        Ok(BindingLog {
            handle: Handle { tx, dropped },
            reopen,
            next,
            thread: Some(thread),
        })
    }

    /// Sends the lines to `target` from now on (a reload), through `out`,
    /// which [`open`] made of it beforehand (so that an error leaves the
    /// old target in force); the writer switches within a second, nothing
    /// queued is lost.
    pub fn retarget(&self, target: Target, out: Box<dyn Write + Send>) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some((target, out));
    }

    /// A sender for a worker.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The count of events dropped because the writer fell behind.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.handle.dropped.clone()
    }

    /// Reopens the file at the next write or within a second (SIGHUP).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Writes what is queued and stops the writer (after the workers have
    /// stopped and dropped their handles).
    pub fn stop(self) {
        let BindingLog { handle, thread, .. } = self;
        drop(handle);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Opens `target` for appending; the error names the file.
pub fn open(target: &Target) -> Result<Box<dyn Write + Send>, String> {
    match target {
        Target::Stderr => Ok(Box::new(io::stderr())),
        Target::File(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file: File = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .map_err(|e| format!("nat64.log.bindings: cannot open {}: {e}", path.display()))?;
            Ok(Box::new(BufWriter::new(file)))
        }
    }
}

fn write_lines(
    rx: Receiver<(BindingEvent, SystemTime)>,
    mut out: Box<dyn Write + Send>,
    mut target: Target,
    reopen: Arc<AtomicBool>,
    next: NextTarget,
) {
    loop {
        let got = rx.recv_timeout(Duration::from_secs(1));
        let switch = next.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((new_target, new_out)) = switch {
            let _ = out.flush();
            (target, out) = (new_target, new_out);
            tracing::info!(target = ?target, "binding log switched to a new target");
        }
        if reopen.swap(false, Ordering::Relaxed) {
            let _ = out.flush();
            match open(&target) {
                Ok(new) => {
                    out = new;
                    tracing::info!("binding log reopened");
                }
                Err(e) => tracing::warn!("{e}; going on with the old file"),
            }
        }
        match got {
            Ok((event, when)) => {
                if let Err(e) = writeln!(out, "{}", line(&event, when)) {
                    tracing::warn!(error = %e, "cannot write the binding log");
                }
                // Write what else is queued, then flush once.
                while let Ok((event, when)) = rx.try_recv() {
                    let _ = writeln!(out, "{}", line(&event, when));
                }
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

/// One line of the log, as written and as `xlat64 lookup` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// `"create"` or `"delete"`.
    pub event: String,
    /// `"tcp"`, `"udp"`, `"icmp"`, or for a port block `"all"`.
    pub protocol: String,
    /// The client: `"[ADDR]:PORT"` for a binding; for a port block its
    /// address, or `"PREFIX/LEN"` with a client prefix shorter than 128.
    pub v6_client: String,
    /// A binding's pool4 transport address, `"ADDR:PORT"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v4_local: Option<String>,
    /// A port block, `"ADDR:FIRST-LAST"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v4_block: Option<String>,
}

impl LogLine {
    /// The line of `e`, which happened at `when`.
    pub fn of(e: &BindingEvent, when: SystemTime) -> LogLine {
        let time = humantime::format_rfc3339_millis(when).to_string();
        let event = e.change.name().to_string();
        match e.held {
            Held::Binding {
                proto,
                v6_client,
                v4_local,
            } => LogLine {
                time,
                event,
                protocol: proto.as_str().to_string(),
                v6_client: v6_client.to_string(),
                v4_local: Some(v4_local.to_string()),
                v4_block: None,
            },
            Held::Block {
                client,
                client_prefix,
                v4,
                first,
                last,
            } => LogLine {
                time,
                event,
                protocol: "all".to_string(),
                v6_client: if client_prefix >= 128 {
                    client.to_string()
                } else {
                    format!("{client}/{client_prefix}")
                },
                v4_local: None,
                v4_block: Some(format!("{v4}:{first}-{last}")),
            },
        }
    }
}

/// One JSON line.
fn line(e: &BindingEvent, when: SystemTime) -> String {
    serde_json::to_string(&LogLine::of(e, when)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xlat64_nat::BindingChange;

    #[test]
    fn lines_are_json_with_rfc3339_time() {
        let e = BindingEvent {
            at: Instant::now(),
            change: BindingChange::Created,
            held: Held::Binding {
                proto: xlat64_packet::L4Proto::Udp,
                v6_client: "[2001:db8:1::2]:5000".parse().unwrap(),
                v4_local: "192.0.2.1:61001".parse().unwrap(),
            },
        };
        let when = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let v: serde_json::Value = serde_json::from_str(&line(&e, when)).unwrap();
        assert_eq!(v["time"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["event"], "create");
        assert_eq!(v["protocol"], "udp");
        assert_eq!(v["v6_client"], "[2001:db8:1::2]:5000");
        assert_eq!(v["v4_local"], "192.0.2.1:61001");
        assert!(v.get("v4_block").is_none());
        // A port block of a subscriber prefix.
        let block = BindingEvent {
            held: Held::Block {
                client: "2001:db8:1::".parse().unwrap(),
                client_prefix: 64,
                v4: "192.0.2.1".parse().unwrap(),
                first: 61440,
                last: 61951,
            },
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&line(&block, when)).unwrap();
        assert_eq!(v["protocol"], "all");
        assert_eq!(v["v6_client"], "2001:db8:1::/64");
        assert_eq!(v["v4_block"], "192.0.2.1:61440-61951");
        assert!(v.get("v4_local").is_none());
    }

    #[test]
    fn a_file_gets_the_lines_and_is_reopened() {
        let dir = std::env::temp_dir().join(format!("xlat64-blog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bindings.jsonl");
        let log = BindingLog::start(Target::File(path.clone())).unwrap();
        let e = BindingEvent {
            at: Instant::now(),
            change: BindingChange::Removed,
            held: Held::Binding {
                proto: xlat64_packet::L4Proto::Tcp,
                v6_client: "[2001:db8:1::2]:5000".parse().unwrap(),
                v4_local: "192.0.2.1:61001".parse().unwrap(),
            },
        };
        log.handle().send(e, Instant::now(), SystemTime::now());
        let rotated = dir.join("bindings.jsonl.1");
        // Written (and flushed) by the writer thread.
        for _ in 0..500 {
            if std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with('\n')) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.handle().send(e, Instant::now(), SystemTime::now());
        log.stop();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 1, "{old}");
        assert_eq!(new.lines().count(), 1, "{new}");
        assert!(new.contains("\"delete\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
