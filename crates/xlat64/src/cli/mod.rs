//! The command line (`../shared/CONTRACT.md`): run, check, sessions, bib, stats, reload, trace,
//! flush-cache, lookup, demo.

pub mod demo;
pub mod lookup;

use crate::config::Config;
use crate::control::{self, filter};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// The configuration keys, shown by `--help` (the README has them with
/// their defaults and the rules behind them; `xlat64 check` prints the
/// effective values).
const CONFIG_HELP: &str = "\
Configuration (TOML; unknown keys are errors; `xlat64 check` prints every effective value):
  [nat64]           prefix, pool4 (ADDR[/LEN][:FIRST-LAST]; the gateway's own address
                    with a range is shared with it), tun, mtu, offload, mss-clamp, lowest-ipv6-mtu,
                    icmp-errors-per-second, rfc6791-v4, rfc6791-v6,
                    filtering (endpoint-independent | address-dependent),
                    drop-externally-initiated-tcp, deny-destinations, port-reuse-delay,
                    port-block (RFC 7422 blocks of N ports)
  [nat64.limits]    max-sessions (all workers together; default by memory),
                    max-sessions-per-client, max-ports-per-client,
                    max-new-bindings-per-second (0: none),
                    client-prefix (a client: an address, 128, or a prefix),
                    max-simultaneous-opens (inbound SYNs held 6 s)
  [[nat64.static]]  protocol, v6 ([ADDR]:PORT), v4 (POOL4-ADDR:PORT): port forwarding
  [nat64.deterministic] clients (PREFIX/LEN: each client holds one port block,
                    computed from the configuration; needs port-block)
  [nat64.timeouts]  udp, icmp, tcp-established, tcp-transitory (seconds; a
                    session goes within 250 ms after its timeout)
  [nat64.fragments] max-datagrams, max-per-source, max-fragments, timeout
  [nat64.log]       bindings (stderr or a file path: JSON lines; SIGHUP reopens it)
  [dns64]           listen, upstream, prefix, upstream-timeout-ms, exclude, mapped, exclude-mapped,
                    allow, synthesize-for, servfail, cache-size, parallel-a, client-subnet, serve-stale,
                    client-prefix,
                    tcp-connections-per-client, tcp-idle-timeout-ms, queries-per-second-per-client,
                    queries-burst-per-client, rate-limit-slip (0: no TC=1 replies)
  [[dns64.prefixes]] prefix, ipv4
  [control]         socket
  [runtime]         workers (packet workers; default: one per core), io-threads,
                    user (drop to this user after setup), log-level (info; RUST_LOG wins)
  [metrics]         listen (ADDR:PORT: Prometheus/OpenMetrics text at GET /metrics)
Signals: SIGTERM/SIGINT stop; SIGHUP reloads the configuration (as `xlat64 reload`)
and reopens the binding log.
Exit status: 0 after SIGTERM/SIGINT; 1 when it cannot start, or when a packet worker or the DNS64
server dies (routes and control socket removed first).";

/// xlat64: an IPv6 transition gateway (DNS64 and stateful NAT64).
#[derive(Debug, Parser)]
#[command(name = "xlat64", version, about, long_about = None, after_long_help = CONFIG_HELP)]
pub struct Cli {
    /// Configuration file (TOML). Without it, /etc/xlat64/xlat64.toml when
    /// it exists, else the embedded defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway in the foreground until SIGINT or SIGTERM.
    Run,
    /// Validate the configuration and print it with every default filled in.
    Check,
    /// Print the running daemon's NAT64 session table.
    Sessions {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Which sessions.
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print the running daemon's binding table (BIB).
    Bib {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Which bindings.
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print the running daemon's counters, every drop reason included.
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Each counter with what it means and what to check when it grows.
        #[arg(long)]
        explain: bool,
    },
    /// Re-read the configuration and apply it to the running daemon without
    /// dropping sessions (SIGHUP does the same).
    Reload {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stream, from the running daemon, one line per dropped packet (with
    /// --all, per translated packet too): time, direction, protocol,
    /// addresses and ports, what happened and why. Sampled: at most 200
    /// lines per second and worker.
    Trace {
        /// Only packets from or to this IPv6 client (ADDR[/LEN]).
        #[arg(long, value_name = "ADDR[/LEN]", value_parser = filter::parse_client)]
        client: Option<ipnet::Ipv6Net>,
        /// Only drops for this reason (a `stats` drop counter, e.g.
        /// drop_no_binding; the `drop_` prefix may be left out).
        #[arg(long, value_name = "NAME")]
        reason: Option<String>,
        /// Stop after this many lines (default: until interrupted).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Translated packets too.
        #[arg(long)]
        all: bool,
    },
    /// Empty the running daemon's DNS64 cache.
    FlushCache {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Who held a pool4 transport address (and when): from the binding log, or
    /// with deterministic port blocks from the configuration alone.
    Lookup {
        /// The pool4 transport address, ADDR:PORT (for ICMP the port is the
        /// echo identifier).
        #[arg(value_name = "ADDR:PORT")]
        v4: std::net::SocketAddrV4,
        /// Only who held it at this time (RFC 3339, UTC), e.g.
        /// 2026-11-23T20:31:02Z.
        #[arg(long, value_name = "TIME", value_parser = lookup::parse_time)]
        at: Option<std::time::SystemTime>,
        /// Only this protocol: tcp, udp or icmp (port blocks cover all).
        #[arg(long, value_name = "PROTO", value_parser = filter::parse_protocol)]
        protocol: Option<xlat64_packet::L4Proto>,
        /// The binding log to read (repeat for rotated files, oldest
        /// first); default: the configured `[nat64.log] bindings` file.
        #[arg(long, value_name = "FILE")]
        log: Vec<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the man page (roff) or a shell's completions, for packaging.
    #[command(hide = true)]
    Generate {
        /// `man`, or a shell: `bash`, `zsh`, `fish`.
        what: String,
    },
    /// Build a throwaway lab of network namespaces and show DNS64 + NAT64 working.
    Demo,
}

/// Filters of `sessions` and `bib`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only this client: an IPv6 address or prefix (ADDR[/LEN]).
    #[arg(long, value_name = "ADDR[/LEN]", value_parser = filter::parse_client)]
    client: Option<ipnet::Ipv6Net>,
    /// Only this protocol: tcp, udp or icmp.
    #[arg(long, value_name = "PROTO", value_parser = filter::parse_protocol)]
    protocol: Option<xlat64_packet::L4Proto>,
    /// Only entries with this IPv4 transport address: the pool4 side (for
    /// sessions, the server's side too); without a port, any port.
    #[arg(long, value_name = "ADDR[:PORT]")]
    v4: Option<filter::V4Match>,
}

impl FilterArgs {
    fn command(&self, table: &str) -> String {
        let filter = filter::TableFilter {
            client: self.client,
            protocol: self.protocol,
            v4: self.v4,
        };
        format!("{table}{}", filter.to_words())
    }
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::logging::init();
    match cli.command {
        Command::Demo => crate::cli::demo::run_demo(),
        Command::Generate { what } => generate(&what),
        Command::Check => match load(&cli.config).and_then(|c| check_host(c, Warn::Stderr)) {
            Ok(config) => {
                // A TOML comment: the output stays a valid configuration.
                emit(&format!("# {}\n{}", source(&cli.config), config.to_toml()));
                0
            }
            Err(code) => code,
        },
        Command::Run => match load(&cli.config).and_then(|c| check_host(c, Warn::Log)) {
            Ok(config) => {
                if let Err(e) = crate::logging::set_level(&config.runtime.log_level) {
                    eprintln!("error: {e}");
                    return 1;
                }
                tracing::info!("configuration: {}", source(&cli.config));
                crate::daemon::run(config, config_file(&cli.config))
            }
            Err(code) => code,
        },
        Command::Sessions { json, filter } => query(
            &cli.config,
            &filter.command("sessions"),
            json,
            render_sessions,
        ),
        Command::Bib { json, filter } => {
            query(&cli.config, &filter.command("bib"), json, render_bib)
        }
        Command::Lookup {
            v4,
            at,
            protocol,
            log,
            json,
        } => match load(&cli.config) {
            Ok(config) => lookup::run(&config, &log, &lookup::Query { v4, at, protocol }, json),
            Err(code) => code,
        },
        Command::Stats { json, explain } => {
            let render = if explain {
                render_explained
            } else {
                render_stats
            };
            query(&cli.config, "stats", json && !explain, render)
        }
        Command::FlushCache { json } => query(&cli.config, "flush-cache", json, render_flush),
        Command::Reload { json } => reload(&cli.config, json),
        Command::Trace {
            client,
            reason,
            count,
            all,
        } => trace(&cli.config, client, reason, count, all),
    }
}

/// Where the configuration comes from without `--config`, when it exists.
pub const DEFAULT_CONFIG: &str = "/etc/xlat64/xlat64.toml";

/// The file a command reads: `--config`, else [`DEFAULT_CONFIG`] when it
/// exists; `None`: the embedded defaults.
fn config_file(path: &Option<PathBuf>) -> Option<PathBuf> {
    path.clone()
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()))
}

/// Where the configuration came from, as `check` and `run` say it.
fn source(path: &Option<PathBuf>) -> String {
    match config_file(path) {
        Some(file) => format!("configuration from {}", file.display()),
        None => format!("the embedded defaults (no --config, no {DEFAULT_CONFIG})"),
    }
}

fn load(path: &Option<PathBuf>) -> Result<Config, i32> {
    let loaded = match config_file(path) {
        Some(p) => Config::load(&p),
        None => Config::embedded_defaults(),
    };
    loaded.map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

/// Where [`check_host`] says what it warns about.
#[derive(Clone, Copy)]
enum Warn {
    /// `check`: `warning: ...` lines on stderr, beside the effective
    /// configuration on stdout.
    Stderr,
    /// `run`: the log.
    Log,
}

/// The checks of the configuration against this host's networks, and the
/// warnings about it (a shared pool4 range overlapping the kernel's local
/// port range).
fn check_host(config: Config, warn: Warn) -> Result<Config, i32> {
    let host = match crate::sys::host_addrs::networks() {
        Ok(nets) => nets,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this host's networks; pool4 and prefix not checked against them");
            return Ok(config);
        }
    };
    match config.check_host(&host) {
        Ok(()) => {
            let local_ports = crate::sys::host_addrs::local_port_range();
            for w in config.host_warnings(&host, local_ports) {
                match warn {
                    Warn::Stderr => eprintln!("warning: {w}"),
                    Warn::Log => tracing::warn!("{w}"),
                }
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(1)
        }
    }
}

fn query(path: &Option<PathBuf>, command: &str, json: bool, render: fn(&Value) -> String) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match control::request(&config.control.socket, command) {
        Ok(mut value) => {
            sort_entries(&mut value);
            if json {
                emit(&format!("{value}\n"));
            } else {
                emit(&render(&value));
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The daemon streams table entries worker by worker, unsorted: sort them
/// by protocol, client and server, as text (stable and cheap enough for a
/// listing of millions in this process, not the daemon).
fn sort_entries(value: &mut Value) {
    if let Value::Array(entries) = value {
        let key = |e: &Value| {
            ["protocol", "v6_client", "v4_server", "v4_local"].map(|k| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
        };
        entries.sort_by_cached_key(key);
    }
}

fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

/// Renders a JSON array of objects as a table: one column per `(header, key)`.
fn render_table(v: &Value, columns: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|row| columns.iter().map(|(_, k)| field(row, k)).collect())
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(parts.join("  ").trim_end());
        text.push('\n');
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    let count = rows.len();
    for row in rows {
        line(row);
    }
    text.push_str(&format!("({count} entries)\n"));
    text
}

fn render_sessions(v: &Value) -> String {
    render_table(
        v,
        &[
            ("PROTO", "protocol"),
            ("V6 CLIENT", "v6_client"),
            ("V6 SERVER", "v6_server"),
            ("V4 LOCAL", "v4_local"),
            ("V4 SERVER", "v4_server"),
            ("STATE", "state"),
            ("EXPIRES(s)", "expires_in_s"),
        ],
    )
}

fn render_bib(v: &Value) -> String {
    render_table(
        v,
        &[
            ("PROTO", "protocol"),
            ("V6 CLIENT", "v6_client"),
            ("V4 LOCAL", "v4_local"),
            ("STATIC", "static"),
            ("SESSIONS", "sessions"),
        ],
    )
}

/// `xlat64 generate man|bash|zsh|fish`: the man page or completions, from
/// the command-line definition (clap_mangen, clap_complete).
fn generate(what: &str) -> i32 {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = Vec::new();
    let shell = match what {
        "man" => {
            if let Err(e) = clap_mangen::Man::new(command).section("8").render(&mut out) {
                eprintln!("error: {e}");
                return 1;
            }
            emit(&String::from_utf8_lossy(&out));
            return 0;
        }
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        other => {
            eprintln!("error: `{other}`: generate man, bash, zsh or fish");
            return 1;
        }
    };
    clap_complete::generate(shell, &mut command, "xlat64", &mut out);
    emit(&String::from_utf8_lossy(&out));
    0
}

/// `xlat64 trace`: prints the daemon's trace lines as they come.
fn trace(
    path: &Option<PathBuf>,
    client: Option<ipnet::Ipv6Net>,
    reason: Option<String>,
    count: Option<u64>,
    all: bool,
) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut command = String::from("trace");
    if let Some(c) = client {
        command.push_str(&format!(" client={c}"));
    }
    if let Some(r) = reason {
        command.push_str(&format!(" reason={r}"));
    }
    if let Some(n) = count {
        command.push_str(&format!(" count={n}"));
    }
    if all {
        command.push_str(" all=1");
    }
    let shown = control::stream(&config.control.socket, &command, |line| {
        if line == "# tracing" {
            eprintln!("tracing; Ctrl-C stops");
        } else if !line.is_empty() {
            emit(&format!("{line}\n"));
        }
    });
    match shown {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `xlat64 reload`: exit status 1 when nothing was applied for an error.
fn reload(path: &Option<PathBuf>, json: bool) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match control::request(&config.control.socket, "reload") {
        Ok(v) if json => {
            emit(&format!("{v}\n"));
            i32::from(v.get("error").is_some())
        }
        Ok(v) => match (v["applied"].as_array(), v["error"].as_str()) {
            (Some(keys), _) if keys.is_empty() => {
                emit("configuration unchanged\n");
                0
            }
            (Some(keys), _) => {
                let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
                emit(&format!("applied: {}\n", keys.join(", ")));
                0
            }
            (_, Some(error)) => {
                eprintln!("error: {error}");
                1
            }
            _ => {
                eprintln!("error: unexpected answer {v}");
                1
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn render_flush(v: &Value) -> String {
    match v["flushed"].as_u64() {
        Some(n) => format!("flushed {n} replies from the DNS64 cache\n"),
        None => "no DNS64 cache to flush (no [dns64], or cache-size = 0)\n".to_string(),
    }
}

/// `stats --explain`: name, value, and what it means.
fn render_explained(v: &Value) -> String {
    let mut text = String::new();
    if let Some(map) = v.as_object() {
        let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, val) in map {
            let help = control::explain::explain(k).unwrap_or("(no explanation in this build)");
            text.push_str(&format!("{k:<width$}  {val:>12}  {help}\n"));
        }
    }
    text
}

fn render_stats(v: &Value) -> String {
    let mut text = String::new();
    if let Some(map) = v.as_object() {
        let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, val) in map {
            text.push_str(&format!("{k:<width$}  {val}\n"));
        }
    }
    text
}

/// Writes command output to stdout. A reader that went away (`xlat64 stats | head`)
/// is not an error worth a panic: the rest of the output is simply not wanted.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_count_rows() {
        let bib = json!([
            {"protocol": "udp", "v6_client": "[2001:db8:1::2]:5353", "v4_local": "192.0.2.1:5353", "static": false, "sessions": 2},
            {"protocol": "icmp", "v6_client": "[2001:db8:1::2]:7", "v4_local": "192.0.2.1:7", "static": false, "sessions": 1},
        ]);
        let text = render_bib(&bib);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "PROTO  V6 CLIENT             V4 LOCAL        STATIC  SESSIONS"
        );
        assert_eq!(
            lines[1],
            "udp    [2001:db8:1::2]:5353  192.0.2.1:5353  false   2"
        );
        assert_eq!(lines[3], "(2 entries)");
        assert_eq!(
            render_sessions(&json!([])).lines().last(),
            Some("(0 entries)")
        );
    }

    #[test]
    fn stats_are_one_aligned_line_per_counter() {
        let text = render_stats(&json!({"drop_no_binding": 3, "tun_rx_packets": 10}));
        assert_eq!(text, "drop_no_binding  3\ntun_rx_packets   10\n");
    }
}
