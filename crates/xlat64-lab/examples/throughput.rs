//! Single-stream TCP throughput through xlat64 versus plain kernel IPv6
//! forwarding between the same namespaces. Run through `bench/throughput.sh`,
//! or as root:
//!
//! ```text
//! cargo build --release -p xlat64
//! cargo run --release --example throughput -- [--runs N] [--seconds S]
//! ```
//!
//! It builds the dual-stack lab, starts `iperf3 -s` in the server namespace
//! and `xlat64 run` in the gateway namespace, then alternates runs of
//! `iperf3 -c` from the client to 2001:db8:64::198.51.100.2 (through xlat64)
//! and to 2001:db8:2::2 (kernel forwarding), and prints each run, the medians
//! and their ratio. The xlat64 binary is the one next to this example's
//! target directory, or `$XLAT64_BIN`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xlat64_lab::{self as lab, Lab, LabOptions, SERVER_V6};

struct Args {
    runs: usize,
    seconds: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value =
            |it: &mut dyn Iterator<Item = String>| it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => {
                args.runs = value(&mut it)?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--seconds" => {
                args.seconds = value(&mut it)?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: throughput [--runs N (default 5)] [--seconds S (default 5)]");
                std::process::exit(0);
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use --runs N and --seconds S"
                ))
            }
        }
    }
    if args.runs == 0 || args.seconds == 0 {
        return Err("--runs and --seconds must be at least 1".into());
    }
    Ok(args)
}

fn xlat64_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("XLAT64_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/examples/throughput -> target/<profile>/xlat64
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let candidate = me
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("xlat64"))
        .ok_or("cannot locate the target directory")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "{} not found; run `cargo build --release -p xlat64` first or set XLAT64_BIN",
            candidate.display()
        ))
    }
}

/// One iperf3 client run; returns bits per second received by the server.
fn iperf(lab: &Lab, target: &str, seconds: u32) -> Result<f64, String> {
    let out = lab
        .run_in_timeout(
            lab.client(),
            &[
                "iperf3",
                "-c",
                target,
                "-t",
                &seconds.to_string(),
                "-J",
                "--connect-timeout",
                "3000",
            ],
            Duration::from_secs(u64::from(seconds) + 20),
        )
        .map_err(|e| format!("iperf3 -c {target}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| format!("iperf3 -c {target}: no JSON ({e}): {text}"))?;
    if let Some(err) = json.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3 -c {target}: {err}"));
    }
    json.pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .ok_or_else(|| {
            format!("iperf3 -c {target}: no end.sum_received.bits_per_second in the output")
        })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(args: &Args) -> Result<(), String> {
    let exe = xlat64_binary()?;
    let lab = Lab::create_with(
        "bench",
        LabOptions {
            dual_stack_server: true,
            ..LabOptions::default()
        },
    )
    .map_err(|e| format!("lab: {e}"))?;
    let server = lab
        .spawn_in(lab.server(), &["iperf3", "-s"])
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    lab.wait_listening(lab.server(), "tcp", 5201, Duration::from_secs(10))
        .map_err(|e| format!("{e}; iperf3 -s said: {}", server.log()))?;
    let mut gateway = lab
        .start_gateway(&exe)
        .map_err(|e| format!("gateway: {e}"))?;

    let via_xlat64 = lab::server_via_nat64().to_string();
    let via_kernel = SERVER_V6.to_string();
    println!(
        "single-stream TCP, {} runs of {} s, client {} -> server {}",
        args.runs,
        args.seconds,
        lab.client(),
        lab.server()
    );
    let (mut xlat, mut kernel) = (Vec::new(), Vec::new());
    for i in 1..=args.runs {
        for (label, target, results) in [
            ("xlat64", &via_xlat64, &mut xlat),
            ("kernel", &via_kernel, &mut kernel),
        ] {
            let bps = iperf(&lab, target, args.seconds)
                .map_err(|e| format!("{e}\ngateway log:\n{}", gateway.log()))?;
            println!(
                "run {i}/{}: {label:<6} -> {target:<24} {:8.3} Gbit/s",
                args.runs,
                bps / 1e9
            );
            results.push(bps);
        }
    }
    let (mx, mk) = (median(&xlat), median(&kernel));
    println!(
        "median xlat64 (NAT64 via {via_xlat64}): {:.3} Gbit/s",
        mx / 1e9
    );
    println!(
        "median kernel (IPv6 forwarding to {via_kernel}): {:.3} Gbit/s",
        mk / 1e9
    );
    println!("ratio xlat64/kernel: {:.3}", mx / mk);
    match gateway.stop() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!(
            "warning: xlat64 exited with {}",
            lab::describe_status(status)
        ),
        Err(e) => eprintln!("warning: {e}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
