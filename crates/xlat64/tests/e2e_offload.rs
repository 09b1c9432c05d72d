//! Bulk TCP through NAT64 arrives intact, with TUN offloads (GSO superpackets
//! split, translated, coalesced again) and without them (`nat64.offload =
//! false`): a multi-megabyte download (IPv4 server -> IPv6 client) and upload
//! (IPv6 client -> IPv4 server), compared byte for byte and by SHA-256.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use xlat64_lab::{self as lab, server_via_nat64, Gateway, Lab, LabProcess, SERVER_V4};

/// Bytes moved each way: many 64 KiB superpackets.
const SIZE: usize = 8 << 20;
const UPLOAD_PORT: u16 = 9000;

/// Deterministic, incompressible-looking bytes (xorshift64).
fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(SIZE);
    out
}

/// Drops in order: gateway and HTTP server before the lab.
struct Bench {
    gateway: Gateway,
    _http: LabProcess,
    lab: Lab,
}

fn start(tag: &str, offload: bool) -> Option<Bench> {
    if !common::can_run(tag, &["python3", "ss", "curl", "sha256sum"]) {
        return None;
    }
    let lab = Lab::create(tag).expect("build the lab");
    let http = common::start_http(&lab).expect("start the HTTP server");
    // This test sets the mode itself, whatever XLAT64_LAB_OFFLOAD says.
    let config: String = lab
        .gateway_config()
        .lines()
        .filter(|l| !l.starts_with("offload = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = config.replacen("[nat64]\n", &format!("[nat64]\noffload = {offload}\n"), 1);
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .unwrap_or_else(|e| panic!("start xlat64 run in the gateway namespace: {e}"));
    Some(Bench {
        gateway,
        _http: http,
        lab,
    })
}

impl Bench {
    fn counter(&self, name: &str) -> u64 {
        let out = self
            .gateway
            .cli(&["stats", "--json"])
            .expect("xlat64 stats --json");
        assert!(out.status.success(), "xlat64 stats failed: {out:?}");
        let stats: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("stats --json prints JSON");
        stats
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("stats --json has no integer `{name}`: {stats}"))
    }

    fn sha256_in_client(&self, path: &str) -> String {
        let out = self
            .lab
            .run_in(self.lab.client(), &["sha256sum", path])
            .expect("sha256sum");
        assert!(out.status.success(), "sha256sum {path}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// curl of a file from the IPv4-only server through NAT64.
    fn download(&self) {
        let data = payload(0x9e37_79b9_7f4a_7c15);
        let www = self.lab.dir().join("www");
        std::fs::write(www.join("big.bin"), &data).expect("write big.bin");
        let got_path = self.lab.dir().join("got.bin");
        let url = format!("http://[{}]/big.bin", server_via_nat64());
        let got = got_path.display().to_string();
        let out = self
            .lab
            .run_in_timeout(
                self.lab.client(),
                &["curl", "-sS", "--max-time", "30", "-o", &got, &url],
                Duration::from_secs(40),
            )
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {url} failed ({}): {}\ngateway log:\n{}",
            lab::describe_status(out.status),
            String::from_utf8_lossy(&out.stderr),
            self.gateway.log()
        );
        let received = std::fs::read(&got_path).expect("read the downloaded file");
        assert_eq!(received.len(), data.len(), "downloaded length");
        assert!(received == data, "downloaded bytes differ from big.bin");
        assert_eq!(
            self.sha256_in_client(&got),
            self.sha256_in_client(&www.join("big.bin").display().to_string()),
            "SHA-256 of the download"
        );
    }

    /// A TCP upload from the IPv6-only client to a sink on the IPv4 server.
    fn upload(&self) {
        let data = payload(0x0123_4567_89ab_cdef);
        let bind = SocketAddr::from((SERVER_V4, UPLOAD_PORT));
        let listener = self
            .lab
            .in_netns(self.lab.server(), || TcpListener::bind(bind))
            .expect("listen in the server namespace");
        let sink = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
            let (mut conn, _) = listener.accept()?;
            conn.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut got = Vec::with_capacity(SIZE);
            conn.read_to_end(&mut got)?;
            Ok(got)
        });
        let to = SocketAddr::from((server_via_nat64(), UPLOAD_PORT));
        let sent = data.clone();
        self.lab
            .in_netns(self.lab.client(), move || {
                let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
                conn.set_write_timeout(Some(Duration::from_secs(30)))?;
                conn.write_all(&sent)?;
                conn.shutdown(Shutdown::Write)
            })
            .unwrap_or_else(|e| {
                panic!("upload to {to}: {e}\ngateway log:\n{}", self.gateway.log())
            });
        let got = sink
            .join()
            .expect("sink thread")
            .unwrap_or_else(|e| panic!("sink: {e}"));
        assert_eq!(got.len(), data.len(), "uploaded length");
        assert!(got == data, "uploaded bytes differ");
    }

    /// Nothing was lost on the way and no packet arrived damaged.
    fn check_counters(&self, offload: bool) {
        for name in [
            "drop_bad_transport_checksum",
            "drop_bad_ipv4_checksum",
            "drop_truncated",
            "drop_truncated_transport",
            "drop_output_too_small",
            "tun_tx_errors",
            "tun_rx_gso_errors",
        ] {
            assert_eq!(self.counter(name), 0, "{name}");
        }
        let mode = self.counter("tun_offload");
        if !offload {
            assert_eq!(mode, 0, "nat64.offload = false");
            assert_eq!(self.counter("tun_rx_gso_superpackets"), 0);
            assert_eq!(self.counter("tun_tx_gso_superpackets"), 0);
        } else if mode == 1 {
            // Bulk TCP in both directions: the kernel hands over superpackets
            // and GRO writes some back.
            assert!(self.counter("tun_rx_gso_superpackets") > 0, "GSO reads");
            assert!(self.counter("tun_tx_gso_superpackets") > 0, "GRO writes");
        } else {
            eprintln!("note: the kernel refused TUN offloads; only the fallback ran");
        }
    }
}

fn transfers_arrive_intact(tag: &str, offload: bool) {
    let Some(bench) = start(tag, offload) else {
        return;
    };
    bench.download();
    bench.upload();
    bench.check_counters(offload);
}

#[test]
fn bulk_tcp_is_intact_with_offloads() {
    transfers_arrive_intact("offon", true);
}

#[test]
fn bulk_tcp_is_intact_without_offloads() {
    transfers_arrive_intact("offoff", false);
}
