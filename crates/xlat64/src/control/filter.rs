//! Filters of `xlat64 sessions` and `xlat64 bib` (`--client ADDR[/LEN]`,
//! `--protocol tcp|udp|icmp`, `--v4 ADDR[:PORT]`), applied by the daemon
//! while it streams a table, so that a listing of a few entries out of a
//! million sends only those.
//!
//! On the control socket a filter follows the command as `key=value` words:
//! `sessions client=2001:db8::/64 protocol=tcp v4=192.0.2.1:61001`.

use ipnet::Ipv6Net;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;
use xlat64_nat::{BibEntry, SessionEntry};
use xlat64_packet::L4Proto;

/// Which entries a listing keeps; every part that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFilter {
    /// The client's IPv6 address is in this prefix (an address is a /128).
    pub client: Option<Ipv6Net>,
    /// The protocol.
    pub protocol: Option<L4Proto>,
    /// An IPv4 transport address of the entry: the pool4 one, or for a
    /// session the server's too; without a port any port matches.
    pub v4: Option<V4Match>,
}

/// `ADDR` or `ADDR:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Match {
    /// The address.
    pub addr: Ipv4Addr,
    /// The port (or ICMP identifier), if given.
    pub port: Option<u16>,
}

impl V4Match {
    fn matches(&self, a: &SocketAddrV4) -> bool {
        *a.ip() == self.addr && self.port.is_none_or(|p| p == a.port())
    }
}

impl FromStr for V4Match {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddrV4>() {
            return Ok(V4Match {
                addr: *a.ip(),
                port: Some(a.port()),
            });
        }
        s.parse::<Ipv4Addr>()
            .map(|addr| V4Match { addr, port: None })
            .map_err(|_| {
                format!("`{s}` is not an IPv4 address or ADDRESS:PORT (e.g. 192.0.2.1:61001)")
            })
    }
}

/// Parses `--client`: an IPv6 address or prefix.
pub fn parse_client(s: &str) -> Result<Ipv6Net, String> {
    s.parse::<Ipv6Net>()
        .or_else(|_| s.parse::<std::net::Ipv6Addr>().map(Ipv6Net::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("`{s}` is not an IPv6 address or prefix (e.g. 2001:db8::/64)"))
}

/// Parses `--protocol`.
pub fn parse_protocol(s: &str) -> Result<L4Proto, String> {
    match s {
        "tcp" => Ok(L4Proto::Tcp),
        "udp" => Ok(L4Proto::Udp),
        "icmp" => Ok(L4Proto::Icmp),
        _ => Err(format!("`{s}` is not a protocol: tcp, udp or icmp")),
    }
}

impl TableFilter {
    /// The filter as words after a command on the control socket.
    pub fn to_words(&self) -> String {
        let mut words = String::new();
        if let Some(c) = self.client {
            words.push_str(&format!(" client={c}"));
        }
        if let Some(p) = self.protocol {
            words.push_str(&format!(" protocol={}", p.as_str()));
        }
        if let Some(v) = self.v4 {
            match v.port {
                Some(port) => words.push_str(&format!(" v4={}:{port}", v.addr)),
                None => words.push_str(&format!(" v4={}", v.addr)),
            }
        }
        words
    }

    /// Parses the words after a command.
    pub fn from_words<'a>(words: impl Iterator<Item = &'a str>) -> Result<TableFilter, String> {
        let mut f = TableFilter::default();
        for word in words {
            match word.split_once('=') {
                Some(("client", v)) => f.client = Some(parse_client(v)?),
                Some(("protocol", v)) => f.protocol = Some(parse_protocol(v)?),
                Some(("v4", v)) => f.v4 = Some(v.parse()?),
                _ => {
                    return Err(format!(
                        "unknown filter `{word}`; expected client=, protocol= or v4="
                    ))
                }
            }
        }
        Ok(f)
    }

    /// Whether a session passes.
    pub fn session(&self, s: &SessionEntry) -> bool {
        self.client.is_none_or(|c| c.contains(s.v6_client.ip()))
            && self.protocol.is_none_or(|p| p == s.proto)
            && self
                .v4
                .is_none_or(|v| v.matches(&s.v4_local) || v.matches(&s.v4_server))
    }

    /// Whether a binding passes.
    pub fn binding(&self, b: &BibEntry) -> bool {
        self.client.is_none_or(|c| c.contains(b.v6_client.ip()))
            && self.protocol.is_none_or(|p| p == b.proto)
            && self.v4.is_none_or(|v| v.matches(&b.v4_local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV6;
    use std::time::Instant;

    fn session(client: &str, proto: L4Proto, local: &str, server: &str) -> SessionEntry {
        SessionEntry {
            proto,
            v6_client: SocketAddrV6::new(client.parse().unwrap(), 5000, 0, 0),
            v6_server: SocketAddrV6::new("2001:db8:64::1".parse().unwrap(), 80, 0, 0),
            v4_local: local.parse().unwrap(),
            v4_server: server.parse().unwrap(),
            tcp_state: None,
            expires: Instant::now(),
        }
    }

    #[test]
    fn words_round_trip_and_match() {
        let f = TableFilter {
            client: Some(parse_client("2001:db8:1::/64").unwrap()),
            protocol: Some(L4Proto::Tcp),
            v4: Some("192.0.2.1:61001".parse().unwrap()),
        };
        let words = f.to_words();
        assert_eq!(
            TableFilter::from_words(words.split_whitespace()).unwrap(),
            f
        );
        let s = session(
            "2001:db8:1::7",
            L4Proto::Tcp,
            "192.0.2.1:61001",
            "198.51.100.2:80",
        );
        assert!(f.session(&s));
        assert!(!f.session(&session(
            "2001:db8:2::7",
            L4Proto::Tcp,
            "192.0.2.1:61001",
            "198.51.100.2:80"
        )));
        assert!(!f.session(&session(
            "2001:db8:1::7",
            L4Proto::Udp,
            "192.0.2.1:61001",
            "198.51.100.2:80"
        )));
        assert!(!f.session(&session(
            "2001:db8:1::7",
            L4Proto::Tcp,
            "192.0.2.1:61002",
            "198.51.100.2:80"
        )));
        // An address alone matches any port, on either IPv4 side of a session.
        let by_server = TableFilter {
            v4: Some("198.51.100.2".parse().unwrap()),
            ..TableFilter::default()
        };
        assert!(by_server.session(&s));
        assert!(TableFilter::default().session(&s));
    }

    #[test]
    fn bad_values_name_what_is_expected() {
        assert!(parse_client("2001:db8::1").is_ok());
        assert!(parse_client("192.0.2.1").unwrap_err().contains("IPv6"));
        assert!(parse_protocol("sctp")
            .unwrap_err()
            .contains("tcp, udp or icmp"));
        assert!("192.0.2.1:x"
            .parse::<V4Match>()
            .unwrap_err()
            .contains("ADDRESS:PORT"));
        assert!(TableFilter::from_words(["port=1"].into_iter()).is_err());
    }
}
