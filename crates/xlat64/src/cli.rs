//! The command line (`../shared/CONTRACT.md`): run, check, sessions, bib, stats, demo.

use crate::config::Config;
use crate::control;
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// xlat64: an IPv6 transition gateway (DNS64 and stateful NAT64).
#[derive(Debug, Parser)]
#[command(name = "xlat64", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
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
    },
    /// Print the running daemon's binding table (BIB).
    Bib {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the running daemon's counters, every drop reason included.
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Build a throwaway lab of network namespaces and show DNS64 + NAT64 working.
    Demo,
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Demo => crate::demo::run_demo(),
        Command::Check => match load(&cli.config) {
            Ok(config) => {
                print!("{}", config.to_toml());
                0
            }
            Err(code) => code,
        },
        Command::Run => match load(&cli.config) {
            Ok(config) => crate::daemon::run(config),
            Err(code) => code,
        },
        Command::Sessions { json } => query(&cli.config, "sessions", json, print_sessions),
        Command::Bib { json } => query(&cli.config, "bib", json, print_bib),
        Command::Stats { json } => query(&cli.config, "stats", json, print_stats),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load(path: &Option<PathBuf>) -> Result<Config, i32> {
    let loaded = match path {
        Some(p) => Config::load(p),
        None => Config::embedded_defaults(),
    };
    loaded.map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

fn query(path: &Option<PathBuf>, command: &str, json: bool, print: fn(&Value)) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match control::request(&config.control.socket, command) {
        Ok(value) => {
            if json {
                println!("{value}");
            } else {
                print(&value);
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

/// Prints a JSON array of objects as a table: one column per `(header, key)`.
fn print_table(v: &Value, columns: &[(&str, &str)]) {
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
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    let count = rows.len();
    for row in rows {
        line(row);
    }
    println!("({count} entries)");
}

fn print_sessions(v: &Value) {
    print_table(
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
    );
}

fn print_bib(v: &Value) {
    print_table(
        v,
        &[
            ("PROTO", "protocol"),
            ("V6 CLIENT", "v6_client"),
            ("V4 LOCAL", "v4_local"),
            ("STATIC", "static"),
            ("SESSIONS", "sessions"),
        ],
    );
}

fn print_stats(v: &Value) {
    if let Some(map) = v.as_object() {
        let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, val) in map {
            println!("{k:<width$}  {val}");
        }
    }
}
