//! Warnings about trouble the counters show (a full pool, limits refusing
//! flows, upstreams failing, the binding log falling behind): the packet
//! workers never log per packet, so every [`INTERVAL`] this task compares
//! the counters with their previous values and logs one line per
//! condition that grew, with how many events it stands for. A condition
//! that lasts gives one line per interval, never one per packet.

use super::{stats_map, ControlState};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the counters are compared.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// A condition worth a warning: its counter, what it means, what to do.
struct Alert {
    counter: &'static str,
    what: &'static str,
    check: &'static str,
}

const ALERTS: &[Alert] = &[
    Alert {
        counter: "drop_pool4_exhausted",
        what: "new flows refused: no free pool4 port (RFC 6146 §3.5.1.1)",
        check: "add addresses to nat64.pool4 (a reload applies it) or shorten nat64.timeouts",
    },
    Alert {
        counter: "drop_session_limit",
        what: "new flows refused: nat64.limits.max-sessions reached",
        check: "raise nat64.limits.max-sessions if memory allows (a reload applies it)",
    },
    Alert {
        counter: "drop_client_port_limit",
        what: "new flows refused: a client reached nat64.limits.max-ports-per-client",
        check: "`xlat64 bib --client ...` shows who; raise the limit if the client is legitimate",
    },
    Alert {
        counter: "drop_client_session_limit",
        what: "new flows refused: a client reached nat64.limits.max-sessions-per-client",
        check:
            "`xlat64 sessions --client ...` shows who; raise the limit if the client is legitimate",
    },
    Alert {
        counter: "drop_client_rate_limit",
        what:
            "new flows refused: a client opened more than nat64.limits.max-new-bindings-per-second",
        check: "`xlat64 trace --reason client_rate_limit` shows who",
    },
    Alert {
        counter: "drop_fragment_table_full",
        what: "fragments dropped: the reassembly table is full",
        check:
            "raise nat64.fragments.max-datagrams, or look for a fragment flood with `xlat64 trace`",
    },
    Alert {
        counter: "binding_log_dropped",
        what: "binding log lines lost: the writer fell behind",
        check: "the disk of nat64.log.bindings is too slow or full; consider port-block",
    },
    Alert {
        counter: "tun_tx_errors",
        what: "packets lost writing to the TUN device",
        check: "the device may be down (`ip link show`) or the host short of memory",
    },
    Alert {
        counter: "handoffs_dropped",
        what: "packets lost between packet workers (a worker's mailbox was full)",
        check: "a worker is overloaded; see the worker_N_tun_rx_packets counters",
    },
    Alert {
        counter: "dns64_upstream_failures",
        what: "DNS64 questions for which every upstream failed (clients got SERVFAIL)",
        check: "are dns64.upstream servers reachable? `dig @SERVER` from the gateway",
    },
    Alert {
        counter: "dns64_dropped_overload",
        what: "DNS64 queries or connections dropped: too many in flight",
        check: "a slow upstream or a query flood; see dns64_upstream_timeouts",
    },
];

/// The warning lines for the counters that grew from `before` to `now`
/// (`seconds` apart), one per condition.
pub fn lines(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
    seconds: u64,
) -> Vec<String> {
    ALERTS
        .iter()
        .filter_map(|a| {
            let grew = now.get(a.counter)?.saturating_sub(*before.get(a.counter)?);
            (grew > 0).then(|| {
                format!(
                    "{grew} in the last {seconds} s: {} ({}; check: {})",
                    a.what, a.counter, a.check
                )
            })
        })
        .collect()
}

/// Compares the counters every [`INTERVAL`] until `stop`, logging
/// [`lines`] as warnings.
pub async fn watch(state: ControlState, stop: CancellationToken) {
    let mut before = stats_map(&state).await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        let now = stats_map(&state).await;
        for line in lines(&before, &now, INTERVAL.as_secs()) {
            tracing::warn!("{line}");
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn one_line_per_condition_that_grew_with_its_count() {
        let before = map(&[("drop_pool4_exhausted", 5), ("dns64_upstream_failures", 2)]);
        let now = map(&[
            ("drop_pool4_exhausted", 25_005),
            ("dns64_upstream_failures", 2),
        ]);
        let out = lines(&before, &now, 10);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].starts_with("25000 in the last 10 s: new flows refused: no free pool4 port"));
        assert!(out[0].contains("drop_pool4_exhausted") && out[0].contains("nat64.pool4"));
    }

    #[test]
    fn nothing_when_nothing_grew_or_a_counter_is_missing() {
        let m = map(&[("drop_pool4_exhausted", 7)]);
        assert!(lines(&m, &m, 10).is_empty());
        assert!(lines(&BTreeMap::new(), &m, 10).is_empty());
    }

    #[test]
    fn every_alert_names_a_real_counter() {
        for a in ALERTS {
            let known = crate::control::explain::explain(a.counter);
            assert!(known.is_some(), "{} is not a counter", a.counter);
        }
    }
}
