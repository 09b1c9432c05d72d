//! `xlat64 trace`: one line per dropped (with `--all`, also translated)
//! packet, from the workers to the control socket.
//!
//! A worker holds a [`Tracer`] only while a `trace` client is connected.
//! It describes a packet only when the packet's fate matches the filter,
//! at most [`LINES_PER_SECOND`] times a second, and hands the line over
//! with `try_send` (never waiting): tracing costs the data path one branch
//! per packet while off, and a bounded amount while on.

use super::worker::Direction;
use ipnet::Ipv6Net;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;
use xlat64_nat::Verdict;

/// Lines one worker hands over per second at most; more are skipped.
pub(crate) const LINES_PER_SECOND: u32 = 200;

/// Which packets a trace shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceFilter {
    /// Only packets from or to this IPv6 client (address or prefix).
    pub(crate) client: Option<Ipv6Net>,
    /// Only drops for this reason (`drop_...`, the prefix optional).
    pub(crate) reason: Option<String>,
    /// Translated packets too, not only drops.
    pub(crate) all: bool,
}

/// A worker's end of a running trace.
#[derive(Debug)]
pub(crate) struct Tracer {
    filter: TraceFilter,
    lines: mpsc::Sender<String>,
    window: Instant,
    in_window: u32,
}

impl Tracer {
    pub(crate) fn new(filter: TraceFilter, lines: mpsc::Sender<String>) -> Tracer {
        Tracer {
            filter,
            lines,
            window: Instant::now(),
            in_window: 0,
        }
    }

    /// The same trace, for another worker (or another try).
    pub(crate) fn clone_for_worker(&self) -> Tracer {
        Tracer::new(self.filter.clone(), self.lines.clone())
    }

    /// Whether the trace's reader went away.
    pub(crate) fn is_closed(&self) -> bool {
        self.lines.is_closed()
    }

    /// Offers `packet` (as read from the TUN device) and its verdict.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        packet: &[u8],
        direction: Direction,
        verdict: &Verdict,
    ) {
        let (fate, reason) = match verdict {
            Verdict::Drop(r) => ("dropped", Some(r.counter_name())),
            Verdict::Reject(r, _) => ("dropped, ICMP error sent", Some(r.counter_name())),
            Verdict::Forward(_) => ("translated", None),
            Verdict::ToHost(_) => ("given to the host", None),
            Verdict::Held | Verdict::SynHeld | Verdict::Elsewhere { .. } => return,
        };
        if reason.is_none() && !self.filter.all {
            return;
        }
        if let (Some(want), Some(got)) = (&self.filter.reason, reason) {
            if got != want && got.strip_prefix("drop_") != Some(want.as_str()) {
                return;
            }
        } else if self.filter.reason.is_some() {
            return;
        }
        self.emit(now, packet, direction, fate, reason);
    }

    /// Offers a packet translated in place, as sent (`--all` only).
    pub(crate) fn offer_translated(&mut self, now: Instant, sent: &[u8], direction: Direction) {
        if self.filter.all && self.filter.reason.is_none() {
            self.emit(now, sent, direction, "translated (as sent)", None);
        }
    }

    fn emit(
        &mut self,
        now: Instant,
        packet: &[u8],
        direction: Direction,
        fate: &str,
        reason: Option<&str>,
    ) {
        let Some(summary) = Summary::of(packet) else {
            return;
        };
        if let Some(client) = &self.filter.client {
            if !summary.v6.iter().any(|a| client.contains(a)) {
                return;
            }
        }
        if now.duration_since(self.window).as_secs() >= 1 {
            (self.window, self.in_window) = (now, 0);
        }
        if self.in_window >= LINES_PER_SECOND {
            return;
        }
        self.in_window += 1;
        let time = humantime::format_rfc3339_millis(SystemTime::now());
        let way = match direction {
            Direction::V6ToV4 => "v6->v4",
            Direction::V4ToV6 => "v4->v6",
        };
        let line = format!(
            "{time} {way} {} {} -> {} {fate}{}",
            summary.proto,
            summary.src,
            summary.dst,
            reason.map(|r| format!(" {r}")).unwrap_or_default()
        );
        let _ = self.lines.try_send(line);
    }
}

/// What a trace line says of a packet.
struct Summary {
    proto: String,
    src: String,
    dst: String,
    /// Its IPv6 addresses (for the client filter).
    v6: Vec<Ipv6Addr>,
}

impl Summary {
    /// Reads the addresses, protocol and ports of an IPv6 or IPv4 packet,
    /// as far as they are there (a dropped packet may be malformed).
    fn of(p: &[u8]) -> Option<Summary> {
        match p.first()? >> 4 {
            6 => {
                let hdr = p.get(..40)?;
                let src = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[8..24]).ok()?);
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[24..40]).ok()?);
                let (proto, ports) = transport(hdr[6], p.get(40..).unwrap_or_default());
                let (sp, dp) = ports.unzip();
                Some(Summary {
                    proto,
                    src: endpoint6(src, sp),
                    dst: endpoint6(dst, dp),
                    v6: vec![src, dst],
                })
            }
            4 => {
                let hdr = p.get(..20)?;
                let ihl = usize::from(hdr[0] & 0x0f) * 4;
                let src = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
                let dst = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
                let later_fragment = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff != 0;
                let l4 = if later_fragment {
                    &[][..]
                } else {
                    p.get(ihl..).unwrap_or_default()
                };
                let (proto, ports) = transport(hdr[9], l4);
                let show = |a: Ipv4Addr, port: Option<u16>| match port {
                    Some(port) => format!("{a}:{port}"),
                    None => a.to_string(),
                };
                Some(Summary {
                    proto,
                    src: show(src, ports.map(|p| p.0)),
                    dst: show(dst, ports.map(|p| p.1)),
                    v6: Vec::new(),
                })
            }
            _ => None,
        }
    }
}

fn endpoint6(a: Ipv6Addr, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("[{a}]:{port}"),
        None => a.to_string(),
    }
}

/// The protocol's name and, for TCP and UDP, the ports.
fn transport(proto: u8, l4: &[u8]) -> (String, Option<(u16, u16)>) {
    let ports = || {
        Some((
            u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
            u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        ))
    };
    match proto {
        6 => ("tcp".into(), ports()),
        17 => ("udp".into(), ports()),
        1 => (
            format!(
                "icmp type {}",
                l4.first().map_or("?".into(), |t| t.to_string())
            ),
            None,
        ),
        58 => (
            format!(
                "icmpv6 type {}",
                l4.first().map_or("?".into(), |t| t.to_string())
            ),
            None,
        ),
        n => (format!("protocol {n}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xlat64_nat::NatDrop;

    #[tokio::test]
    async fn a_drop_of_the_client_is_traced_others_not() {
        let (tx, mut rx) = mpsc::channel(8);
        let filter = TraceFilter {
            client: Some("2001:db8:1::/64".parse().unwrap()),
            reason: Some("no_binding".into()),
            all: false,
        };
        let mut t = Tracer::new(filter, tx);
        let mut v6 = Vec::new();
        etherparse::PacketBuilder::ipv6(
            "2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets(),
            "64:ff9b::c000:201".parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .udp(5000, 53)
        .write(&mut v6, b"x")
        .unwrap();
        let now = Instant::now();
        t.offer(
            now,
            &v6,
            Direction::V6ToV4,
            &Verdict::Drop(NatDrop::NoBinding),
        );
        t.offer(
            now,
            &v6,
            Direction::V6ToV4,
            &Verdict::Drop(NatDrop::Filtered),
        );
        t.offer(now, &v6, Direction::V6ToV4, &Verdict::Forward(10));
        let line = rx.try_recv().unwrap();
        assert!(
            line.contains(
                "v6->v4 udp [2001:db8:1::2]:5000 -> [64:ff9b::c000:201]:53 dropped drop_no_binding"
            ),
            "{line}"
        );
        assert!(rx.try_recv().is_err(), "one line only");
    }
}
