//! `xlat64 lookup ADDR:PORT [--at TIME]`: who held a pool4 transport
//! address, and when (the question of an abuse report, RFC 6888 REQ-12,
//! RFC 7422 §1), answered from the binding log: each `create` line is
//! paired with the `delete` line of the same binding or port block that
//! follows it, and the holdings that cover the port (and the time) are
//! printed. With deterministic port blocks (RFC 7422 §2) the
//! configuration alone answers.

use crate::binding_log::LogLine;
use crate::config::Config;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::SystemTime;

/// One holding: a binding or a port block, from its creation to its
/// removal (`None`: still held when the log ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// `"tcp"`, `"udp"`, `"icmp"` or `"all"` (a port block).
    pub protocol: String,
    /// The client, as the log names it.
    pub v6_client: String,
    /// What it held: `"ADDR:PORT"` or `"ADDR:FIRST-LAST"`.
    pub v4: String,
    /// When it was created.
    pub from: SystemTime,
    /// When it was removed.
    pub until: Option<SystemTime>,
}

/// What is looked for.
#[derive(Debug, Clone)]
pub struct Query {
    /// The pool4 transport address.
    pub v4: SocketAddrV4,
    /// Only holdings that covered this time.
    pub at: Option<SystemTime>,
    /// Only this protocol (port blocks cover every protocol).
    pub protocol: Option<xlat64_packet::L4Proto>,
}

/// Parses a time as RFC 3339 (`2026-11-23T20:31:02Z`, fractions and a
/// space instead of `T` accepted; UTC).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .map_err(|e| format!("`{s}` is not a time like 2026-11-23T20:31:02Z (RFC 3339, UTC): {e}"))
}

/// The holdings of `lines` (a binding log, oldest first) that match `q`.
/// Lines that are not log lines are skipped and counted (the second value).
pub fn holdings(lines: impl Iterator<Item = String>, q: &Query) -> (Vec<Holding>, usize) {
    let mut open: Vec<Holding> = Vec::new();
    let mut done = Vec::new();
    let mut skipped = 0;
    for text in lines {
        let Ok(line) = serde_json::from_str::<LogLine>(&text) else {
            skipped += usize::from(!text.trim().is_empty());
            continue;
        };
        let Ok(time) = parse_time(&line.time) else {
            skipped += 1;
            continue;
        };
        let Some(v4) = line.v4_local.clone().or(line.v4_block.clone()) else {
            skipped += 1;
            continue;
        };
        if !covers(&v4, q.v4) {
            continue;
        }
        if let Some(p) = q.protocol {
            if line.protocol != p.as_str() && line.protocol != "all" {
                continue;
            }
        }
        let same = |h: &Holding| {
            h.v4 == v4 && h.v6_client == line.v6_client && h.protocol == line.protocol
        };
        match line.event.as_str() {
            "create" => open.push(Holding {
                protocol: line.protocol,
                v6_client: line.v6_client,
                v4,
                from: time,
                until: None,
            }),
            "delete" => {
                if let Some(i) = open.iter().position(same) {
                    let mut h = open.remove(i);
                    h.until = Some(time);
                    done.push(h);
                }
            }
            _ => skipped += 1,
        }
    }
    done.extend(open);
    done.retain(|h| {
        q.at.is_none_or(|t| h.from <= t && h.until.is_none_or(|u| t <= u))
    });
    done.sort_by_key(|h| h.from);
    (done, skipped)
}

/// Whether a log's `"ADDR:PORT"` or `"ADDR:FIRST-LAST"` covers `v4`.
fn covers(held: &str, v4: SocketAddrV4) -> bool {
    let Some((addr, ports)) = held.rsplit_once(':') else {
        return false;
    };
    if addr.parse() != Ok(*v4.ip()) {
        return false;
    }
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    match (lo.parse::<u16>(), hi.parse::<u16>()) {
        (Ok(lo), Ok(hi)) => (lo..=hi).contains(&v4.port()),
        _ => false,
    }
}

/// With deterministic port blocks (RFC 7422 §2), the client whose block
/// holds `v4`, from the configuration alone: the client's prefix and the
/// block, valid at any time.
pub fn deterministic(config: &Config, v4: SocketAddrV4) -> Option<(String, String)> {
    let nat = config.nat64.as_ref()?;
    let d = nat.deterministic()?;
    let pool = crate::config::Pool4Entry::to_pool(&nat.pool4).ok()?;
    let idx = pool.addrs().binary_search(v4.ip()).ok()?;
    let client = d.client_at(idx, v4.port())?;
    let ports = d.ports(v4.port() >> d.shift);
    Some((
        format!("{}/{}", std::net::Ipv6Addr::from(client), d.client_prefix),
        format!("{}:{}-{}", v4.ip(), ports.start(), ports.end()),
    ))
}

/// `xlat64 lookup`: with deterministic port blocks the configuration
/// answers; else reads `logs` (or the configured binding log). Prints the
/// holdings, returns the exit code (0: found; 1: none, or an error).
pub fn run(config: &Config, logs: &[PathBuf], q: &Query, as_json: bool) -> i32 {
    if let Some((client, block)) = deterministic(config, q.v4) {
        if as_json {
            let v = json!([{
                "protocol": "all",
                "v6_client": client,
                "v4": block,
                "from": null,
                "until": null,
                "deterministic": true,
            }]);
            crate::cli::emit(&format!("{v}\n"));
        } else {
            crate::cli::emit(&format!(
                "{client} holds {block} (deterministic port block: at any time)\n"
            ));
        }
        return 0;
    }
    let files: Vec<PathBuf> = if logs.is_empty() {
        let configured = config.nat64.as_ref().and_then(|n| n.log.bindings_target());
        match configured {
            Some(crate::binding_log::Target::File(path)) => vec![path],
            _ => {
                eprintln!("error: nat64.log.bindings: no binding log file is configured; name the log with --log FILE");
                return 1;
            }
        }
    } else {
        logs.to_vec()
    };
    let mut lines = Vec::new();
    for path in &files {
        match std::fs::File::open(path) {
            Ok(f) => lines.extend(BufReader::new(f).lines().map_while(Result::ok)),
            Err(e) => {
                eprintln!("error: cannot read the binding log {}: {e}", path.display());
                return 1;
            }
        }
    }
    let (found, skipped) = holdings(lines.into_iter(), q);
    if skipped > 0 {
        eprintln!("warning: {skipped} lines of the log are not binding log lines; skipped");
    }
    let stamp = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    if as_json {
        let v: Vec<_> = found
            .iter()
            .map(|h| {
                json!({
                    "protocol": h.protocol,
                    "v6_client": h.v6_client,
                    "v4": h.v4,
                    "from": stamp(h.from),
                    "until": h.until.map(stamp),
                })
            })
            .collect();
        crate::cli::emit(&format!("{}\n", serde_json::Value::from(v)));
    } else {
        let mut text = String::new();
        for h in &found {
            let until = h.until.map_or("(still held)".to_string(), stamp);
            text.push_str(&format!(
                "{} {} {:<4} {} held {}\n",
                stamp(h.from),
                until,
                h.protocol,
                h.v6_client,
                h.v4
            ));
        }
        crate::cli::emit(&text);
    }
    if found.is_empty() {
        let when =
            q.at.map(|t| format!(" at {}", stamp(t)))
                .unwrap_or_default();
        eprintln!(
            "no holder of {}{when} in {}",
            q.v4,
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: &str, event: &str, protocol: &str, client: &str, v4: &str) -> String {
        let key = if v4.contains('-') {
            "v4_block"
        } else {
            "v4_local"
        };
        format!(
            "{{\"time\":\"{time}\",\"event\":\"{event}\",\"protocol\":\"{protocol}\",\"v6_client\":\"{client}\",\"{key}\":\"{v4}\"}}"
        )
    }

    fn query(v4: &str, at: Option<&str>) -> Query {
        Query {
            v4: v4.parse().unwrap(),
            at: at.map(|t| parse_time(t).unwrap()),
            protocol: None,
        }
    }

    #[test]
    fn rfc6888_req_12_who_held_a_port_at_a_time() {
        let log = vec![
            line(
                "2026-11-23T10:00:00.000Z",
                "create",
                "udp",
                "[2001:db8:1::2]:5000",
                "192.0.2.1:61001",
            ),
            line(
                "2026-11-23T10:05:00.000Z",
                "delete",
                "udp",
                "[2001:db8:1::2]:5000",
                "192.0.2.1:61001",
            ),
            line(
                "2026-11-23T10:06:00.000Z",
                "create",
                "udp",
                "[2001:db8:1::3]:7000",
                "192.0.2.1:61001",
            ),
            "not json".to_string(),
            line(
                "2026-11-23T10:07:00.000Z",
                "create",
                "tcp",
                "[2001:db8:1::4]:7000",
                "192.0.2.1:61002",
            ),
        ];
        let (all, skipped) = holdings(log.clone().into_iter(), &query("192.0.2.1:61001", None));
        assert_eq!(skipped, 1);
        assert_eq!(all.len(), 2);
        let (at, _) = holdings(
            log.clone().into_iter(),
            &query("192.0.2.1:61001", Some("2026-11-23T10:03:00Z")),
        );
        assert_eq!(at.len(), 1);
        assert_eq!(at[0].v6_client, "[2001:db8:1::2]:5000");
        assert!(at[0].until.is_some());
        let (later, _) = holdings(
            log.into_iter(),
            &query("192.0.2.1:61001", Some("2026-11-23 11:00:00")),
        );
        assert_eq!(later[0].v6_client, "[2001:db8:1::3]:7000");
        assert_eq!(later[0].until, None);
    }

    #[test]
    fn rfc7422_a_port_block_covers_its_ports() {
        let log = vec![
            line(
                "2026-11-23T10:00:00Z",
                "create",
                "all",
                "2001:db8:1::/64",
                "192.0.2.1:61440-61951",
            ),
            line(
                "2026-11-23T10:30:00Z",
                "delete",
                "all",
                "2001:db8:1::/64",
                "192.0.2.1:61440-61951",
            ),
        ];
        let mut q = query("192.0.2.1:61500", Some("2026-11-23T10:10:00Z"));
        q.protocol = Some(xlat64_packet::L4Proto::Tcp);
        let (found, _) = holdings(log.clone().into_iter(), &q);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].v6_client, "2001:db8:1::/64");
        let (none, _) = holdings(log.into_iter(), &query("192.0.2.1:61952", None));
        assert!(none.is_empty());
    }
}

#[cfg(test)]
mod deterministic_tests {
    use super::*;

    #[test]
    fn rfc7422_2_the_configuration_names_the_client() {
        let config = Config::from_toml(
            "[nat64]\npool4 = [\"192.0.2.0/31:61440-65535\"]\nport-block = 512\n\
             [nat64.limits]\nclient-prefix = 56\n\
             [nat64.deterministic]\nclients = \"2001:db8:100::/52\"\n",
        )
        .unwrap();
        // 16 clients (/56 in a /52), 8 blocks per address: client 9 holds
        // block 1 of the second address.
        let (client, block) = deterministic(&config, "192.0.2.1:62000".parse().unwrap()).unwrap();
        assert_eq!(client, "2001:db8:100:900::/56");
        assert_eq!(block, "192.0.2.1:61952-62463");
        assert_eq!(
            deterministic(&config, "192.0.2.1:61000".parse().unwrap()),
            None
        );
    }
}
