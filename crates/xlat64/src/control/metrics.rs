//! `[metrics] listen`: the `stats` counters as Prometheus / OpenMetrics
//! text at `GET /metrics`, encoded by `prometheus-client`.
//!
//! Families: every drop reason is one counter family,
//! `xlat64_drops_total{reason="..."}`; per-worker figures carry a `worker`
//! label, per-upstream DNS64 gauges (`dns64_upstream_<N>_<name>`) an
//! `upstream` (N) and an `address` label; gauges (sessions, bindings, port blocks, fragments in progress,
//! the DNS64 cache size, workers) are gauges; everything else is a counter
//! named `xlat64_<stats name>_total`. Each family's HELP is the line
//! `stats --explain` prints.
//!
//! The HTTP side is written here: one request per connection, `GET
//! /metrics` or 404, with a bounded request size and a timeout, so that a
//! scraper (or anyone who reaches the port) cannot hold the server.

use super::explain::explain;
use super::ControlState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The `stats` names that are gauges, not counters.
const GAUGES: &[&str] = &[
    "nat64_sessions",
    "nat64_bindings",
    "nat64_port_blocks",
    "fragments_in_progress",
    "fragments_bytes_held",
    "dns64_cache_entries",
    "workers",
    "tun_offload",
];

/// A snapshot of the counters (and of pool4 use), encoded as metric
/// families.
#[derive(Debug)]
struct Snapshot(
    BTreeMap<String, u64>,
    BTreeMap<std::net::Ipv4Addr, [u64; 3]>,
    /// The DNS64 upstreams, in order (the `N` of their gauges).
    Vec<SocketAddr>,
);

/// `dns64_upstream_<N>_<what>`, split into N and what.
fn upstream_gauge(name: &str) -> Option<(usize, &str)> {
    let (n, what) = name.strip_prefix("dns64_upstream_")?.split_once('_')?;
    Some((n.parse().ok()?, what))
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut drops = Vec::new();
        let mut per_worker: BTreeMap<&str, Vec<(String, u64)>> = BTreeMap::new();
        let mut per_upstream: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
        for (name, &value) in &self.0 {
            if let Some(reason) = name.strip_prefix("drop_") {
                drops.push((reason.to_string(), value));
            } else if let Some((n, what)) = upstream_gauge(name) {
                per_upstream.entry(what).or_default().push((n, value));
            } else if let Some((worker, what)) = name
                .strip_prefix("worker_")
                .and_then(|rest| rest.split_once('_'))
            {
                per_worker
                    .entry(what)
                    .or_default()
                    .push((worker.to_string(), value));
            } else {
                let help = explain(name).unwrap_or("");
                let family = format!("xlat64_{name}");
                if GAUGES.contains(&name.as_str()) {
                    let metric =
                        encoder.encode_descriptor(&family, help, None, MetricType::Gauge)?;
                    ConstGauge::new(value).encode(metric)?;
                } else {
                    let metric =
                        encoder.encode_descriptor(&family, help, None, MetricType::Counter)?;
                    ConstCounter::new(value).encode(metric)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "xlat64_drops",
            "Packets not translated, by reason (xlat64 stats --explain says what each reason means).",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in &drops {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
        }
        let mut pool = encoder.encode_descriptor(
            "xlat64_pool4_bindings",
            "Dynamic bindings (pool4 ports in use) per pool4 address and protocol; near the address's port range, the address is full.",
            None,
            MetricType::Gauge,
        )?;
        for (addr, used) in &self.1 {
            let addr = addr.to_string();
            for (proto, value) in ["tcp", "udp", "icmp"].into_iter().zip(used) {
                let labels = [("address", addr.as_str()), ("protocol", proto)];
                ConstGauge::new(*value).encode(pool.encode_family(&labels)?)?;
            }
        }
        for (what, values) in &per_upstream {
            let help = explain(&format!("dns64_upstream_0_{what}")).unwrap_or("");
            let name = format!("xlat64_dns64_upstream_{what}");
            let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Gauge)?;
            for (n, value) in values {
                let upstream = n.to_string();
                let address = self.2.get(*n).map(ToString::to_string);
                let mut labels = vec![("upstream", upstream.as_str())];
                if let Some(address) = &address {
                    labels.push(("address", address.as_str()));
                }
                ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
            }
        }
        for (what, values) in &per_worker {
            let gauge = what.ends_with("sessions");
            let help = explain(&format!("worker_0_{what}")).unwrap_or("");
            let kind = if gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let name = format!("xlat64_worker_{what}");
            let mut family = encoder.encode_descriptor(&name, help, None, kind)?;
            for (worker, value) in values {
                let labels = [("worker", worker.as_str())];
                let metric = family.encode_family(&labels)?;
                if gauge {
                    ConstGauge::new(*value).encode(metric)?;
                } else {
                    ConstCounter::new(*value).encode(metric)?;
                }
            }
        }
        Ok(())
    }
}

/// The metrics text of `stats` (a map of counter names to values), of
/// the pool4 addresses' use and of the DNS64 upstreams' addresses.
pub fn encode(
    stats: BTreeMap<String, u64>,
    pool4_use: BTreeMap<std::net::Ipv4Addr, [u64; 3]>,
    upstreams: Vec<SocketAddr>,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(stats, pool4_use, upstreams)));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Largest request read (a GET line and a few headers).
const MAX_REQUEST: usize = 8192;
/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(listener: TcpListener, state: ControlState, stop: CancellationToken) {
    loop {
        let (mut stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
                while request.len() < MAX_REQUEST && !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            if !complete {
                return;
            }
            let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut words = line.split_whitespace();
            let response = match (words.next(), words.next()) {
                (Some("GET"), Some("/metrics")) => {
                    let body = encode(
                        super::stats_map(&state).await,
                        super::pool4_use(&state).await,
                        state
                            .dns
                            .as_ref()
                            .map(|d| d.upstream_addrs())
                            .unwrap_or_default(),
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => {
                    let body = "only GET /metrics here\n";
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Binds the metrics listener (an error names the address).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("metrics.listen {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_gauges_counters_and_labels() {
        let stats: BTreeMap<String, u64> = [
            ("drop_no_binding", 3),
            ("drop_filtered", 1),
            ("nat64_sessions", 7),
            ("translated_v6_to_v4_packets", 42),
            ("worker_0_tun_rx_packets", 5),
            ("worker_1_tun_rx_packets", 6),
            ("worker_0_nat64_sessions", 4),
            ("dns64_upstream_0_up", 1),
            ("dns64_upstream_1_srtt_ms", 12),
            ("dns64_upstream_queries", 9),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let pool = [("192.0.2.1".parse().unwrap(), [0, 2, 1])]
            .into_iter()
            .collect();
        let upstreams = vec![
            "192.0.2.53:53".parse().unwrap(),
            "[2001:db8::53]:53".parse().unwrap(),
        ];
        let text = encode(stats, pool, upstreams);
        for want in [
            "# TYPE xlat64_drops counter",
            "xlat64_drops_total{reason=\"no_binding\"} 3",
            "xlat64_drops_total{reason=\"filtered\"} 1",
            "# TYPE xlat64_nat64_sessions gauge",
            "xlat64_nat64_sessions 7",
            "xlat64_translated_v6_to_v4_packets_total 42",
            "xlat64_worker_tun_rx_packets_total{worker=\"1\"} 6",
            "xlat64_worker_nat64_sessions{worker=\"0\"} 4",
            "# TYPE xlat64_dns64_upstream_up gauge",
            "xlat64_dns64_upstream_up{upstream=\"0\",address=\"192.0.2.53:53\"} 1",
            "xlat64_dns64_upstream_srtt_ms{upstream=\"1\",address=\"[2001:db8::53]:53\"} 12",
            "xlat64_dns64_upstream_queries_total 9",
            "# HELP xlat64_nat64_sessions Sessions held now",
            "xlat64_pool4_bindings{address=\"192.0.2.1\",protocol=\"udp\"} 2",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
}
