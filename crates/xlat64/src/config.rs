//! The TOML configuration (`../shared/CONTRACT.md`): parsing, defaults and
//! validation. Every error names the key it is about.

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use xlat64_packet::Prefix6052;

/// A configuration error: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `nat64.prefix`.
    pub key: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stateful NAT64; absent: DNS64 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat64: Option<Nat64Section>,
    /// DNS64 server; absent: no DNS64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns64: Option<Dns64Section>,
    /// Control socket.
    #[serde(default)]
    pub control: ControlSection,
}

/// `[nat64]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat64Section {
    /// RFC 6052 prefix.
    #[serde(default = "default_prefix")]
    pub prefix: Ipv6Net,
    /// IPv4 addresses or prefixes shared by all clients.
    #[serde(default = "default_pool4")]
    pub pool4: Vec<Pool4Entry>,
    /// TUN device name.
    #[serde(default = "default_tun")]
    pub tun: String,
    /// MTU of the TUN device.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Session lifetimes in seconds.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

/// `[nat64.timeouts]`, in seconds (RFC 6146 §4 minimums enforced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeoutsSection {
    /// UDP session lifetime (>= 120).
    pub udp: u64,
    /// ICMP query session lifetime.
    pub icmp: u64,
    /// TCP established session lifetime (>= 7440).
    pub tcp_established: u64,
    /// TCP transitory session lifetime (>= 240).
    pub tcp_transitory: u64,
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        let t = xlat64_nat::Timeouts::default();
        TimeoutsSection {
            udp: t.udp.as_secs(),
            icmp: t.icmp.as_secs(),
            tcp_established: t.tcp_established.as_secs(),
            tcp_transitory: t.tcp_transitory.as_secs(),
        }
    }
}

impl TimeoutsSection {
    /// As the NAT core wants them.
    pub fn to_timeouts(&self) -> xlat64_nat::Timeouts {
        use std::time::Duration;
        xlat64_nat::Timeouts {
            udp: Duration::from_secs(self.udp),
            icmp: Duration::from_secs(self.icmp),
            tcp_established: Duration::from_secs(self.tcp_established),
            tcp_transitory: Duration::from_secs(self.tcp_transitory),
        }
    }
}

/// A pool4 entry: `"192.0.2.1"` or `"192.0.2.0/28"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool4Entry(pub Ipv4Net);

impl Serialize for Pool4Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.prefix_len() == 32 {
            s.serialize_str(&self.0.addr().to_string())
        } else {
            s.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Pool4Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(addr) = s.parse::<Ipv4Addr>() {
            return Ok(Pool4Entry(Ipv4Net::from(addr)));
        }
        s.parse::<Ipv4Net>()
            .map(|n| Pool4Entry(n.trunc()))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{s}` is not an IPv4 address or prefix (e.g. \"192.0.2.1\" or \"192.0.2.0/28\")"
                ))
            })
    }
}

/// `[dns64]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns64Section {
    /// Socket addresses to serve UDP and TCP on.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Servers to forward to. Default: the nameservers in /etc/resolv.conf.
    #[serde(default)]
    pub upstream: Vec<SocketAddr>,
    /// Synthesis prefix; defaults to `nat64.prefix`, or 64:ff9b::/96 without `[nat64]`.
    #[serde(default)]
    pub prefix: Option<Ipv6Net>,
    /// Upstream query timeout in milliseconds.
    #[serde(default = "default_upstream_timeout_ms", rename = "upstream-timeout-ms")]
    pub upstream_timeout_ms: u64,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Unix socket path for `sessions`, `bib` and `stats`.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
        }
    }
}

fn default_prefix() -> Ipv6Net {
    Prefix6052::WELL_KNOWN.net()
}
fn default_pool4() -> Vec<Pool4Entry> {
    vec![Pool4Entry(Ipv4Net::from(Ipv4Addr::new(192, 0, 2, 1)))]
}
fn default_tun() -> String {
    "nat64".to_string()
}
fn default_mtu() -> u16 {
    1500
}
fn default_listen() -> Vec<SocketAddr> {
    vec!["[::]:53".parse().expect("literal socket address")]
}
fn default_upstream_timeout_ms() -> u64 {
    2000
}
fn default_socket() -> PathBuf {
    PathBuf::from("/run/xlat64/control.sock")
}

impl Config {
    /// The embedded defaults used when `run` gets no `--config`:
    /// NAT64 on 64:ff9b::/96 with pool4 192.0.2.1 on TUN `nat64`, DNS64 on
    /// `[::]:53` forwarding to the system's resolvers, control socket
    /// `/run/xlat64/control.sock`.
    pub fn embedded_defaults() -> Result<Config, ConfigError> {
        Config::from_toml("[nat64]\n[dns64]\n[control]\n")
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Config::from_toml(&text)
    }

    /// Parses TOML text, fills in defaults and validates.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().trim().to_string();
            // serde_path_to_error's path already ends with an unknown key's name.
            let key = if path == "." { "config".to_string() } else { path };
            ConfigError::new(key, message)
        })?;
        config.fill_and_validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML (what `check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serializes")
    }

    /// The NAT64 prefix, validated (after `fill_and_validate`).
    pub fn nat64_prefix(&self) -> Option<Prefix6052> {
        self.nat64
            .as_ref()
            .map(|n| Prefix6052::new(n.prefix).expect("validated"))
    }

    /// The DNS64 prefix, validated (after `fill_and_validate`).
    pub fn dns64_prefix(&self) -> Option<Prefix6052> {
        self.dns64.as_ref().map(|d| {
            Prefix6052::new(d.prefix.expect("filled by validation")).expect("validated")
        })
    }

    fn fill_and_validate(&mut self) -> Result<(), ConfigError> {
        let nat_prefix = match &self.nat64 {
            Some(nat) => {
                let prefix = Prefix6052::new(nat.prefix).map_err(|e| {
                    ConfigError::new("nat64.prefix", format!("{}: {e}", nat.prefix))
                })?;
                if nat.pool4.is_empty() {
                    return Err(ConfigError::new(
                        "nat64.pool4",
                        "must list at least one IPv4 address or prefix",
                    ));
                }
                for (i, a) in nat.pool4.iter().enumerate() {
                    for b in &nat.pool4[i + 1..] {
                        if a.0.contains(&b.0) || b.0.contains(&a.0) {
                            return Err(ConfigError::new(
                                "nat64.pool4",
                                format!("{} and {} overlap; list each address once", a.0, b.0),
                            ));
                        }
                    }
                    let first = a.0.network().octets()[0];
                    if first == 0 || first == 127 || first >= 224 {
                        return Err(ConfigError::new(
                            "nat64.pool4",
                            format!("{} is not a unicast address usable as a source", a.0),
                        ));
                    }
                }
                if nat.tun.is_empty() || nat.tun.len() > 15 || nat.tun.contains(['/', ' ']) {
                    return Err(ConfigError::new(
                        "nat64.tun",
                        format!("`{}` is not a valid interface name (1 to 15 characters, no '/' or space)", nat.tun),
                    ));
                }
                if nat.mtu < 1280 {
                    return Err(ConfigError::new(
                        "nat64.mtu",
                        format!("{} is below the IPv6 minimum MTU; use 1280 to 65535", nat.mtu),
                    ));
                }
                let t = &nat.timeouts;
                let checks = [
                    ("nat64.timeouts.udp", t.udp, 120, "RFC 6146 section 4: at least 120 s"),
                    ("nat64.timeouts.icmp", t.icmp, 1, "at least 1 s (RFC 6146 section 4 says 60)"),
                    ("nat64.timeouts.tcp-established", t.tcp_established, 7440, "RFC 6146 section 4: at least 7440 s (2 h 4 min)"),
                    ("nat64.timeouts.tcp-transitory", t.tcp_transitory, 240, "RFC 6146 section 4: at least 240 s"),
                ];
                for (key, value, min, why) in checks {
                    if value < min {
                        return Err(ConfigError::new(key, format!("{value} is too short; {why}")));
                    }
                }
                Some(prefix)
            }
            None => None,
        };
        if let Some(dns) = &mut self.dns64 {
            let net = dns
                .prefix
                .unwrap_or_else(|| nat_prefix.unwrap_or(Prefix6052::WELL_KNOWN).net());
            Prefix6052::new(net)
                .map_err(|e| ConfigError::new("dns64.prefix", format!("{net}: {e}")))?;
            dns.prefix = Some(net);
            if dns.listen.is_empty() {
                return Err(ConfigError::new(
                    "dns64.listen",
                    "must list at least one socket address, e.g. \"[::]:53\"",
                ));
            }
            if dns.upstream.is_empty() {
                dns.upstream = system_resolvers(&dns.listen);
            }
            if dns.upstream.is_empty() {
                return Err(ConfigError::new(
                    "dns64.upstream",
                    "no upstream given and /etc/resolv.conf lists no usable nameserver; give e.g. [\"192.0.2.53:53\"]",
                ));
            }
            for up in &dns.upstream {
                if dns.listen.contains(up) || up.port() == 0 || up.ip().is_unspecified() {
                    return Err(ConfigError::new(
                        "dns64.upstream",
                        format!("{up} is not a usable upstream (unspecified, port 0, or one of our own listen addresses)"),
                    ));
                }
            }
            if dns.upstream_timeout_ms == 0 {
                return Err(ConfigError::new(
                    "dns64.upstream-timeout-ms",
                    "must be at least 1",
                ));
            }
        }
        if self.nat64.is_none() && self.dns64.is_none() {
            return Err(ConfigError::new(
                "config",
                "neither [nat64] nor [dns64] is present; nothing to run",
            ));
        }
        if self.control.socket.as_os_str().is_empty() || !self.control.socket.is_absolute() {
            return Err(ConfigError::new(
                "control.socket",
                format!("`{}` must be an absolute path", self.control.socket.display()),
            ));
        }
        Ok(())
    }
}

/// The nameservers of /etc/resolv.conf, port 53, minus our own listen addresses.
fn system_resolvers(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|sa| !listen.contains(sa) && !sa.ip().is_unspecified())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_every_key() {
        let c = Config::from_toml("[nat64]\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n").unwrap();
        let nat = c.nat64.as_ref().unwrap();
        assert_eq!(nat.prefix.to_string(), "64:ff9b::/96");
        assert_eq!(nat.tun, "nat64");
        assert_eq!(c.dns64.as_ref().unwrap().prefix.unwrap().to_string(), "64:ff9b::/96");
        let text = c.to_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[nat64]\nprefx = \"64:ff9b::/96\"\n").unwrap_err();
        assert_eq!(e.key, "nat64.prefx");
        assert!(e.message.contains("prefix"), "{e}");
        let e = Config::from_toml("[nat65]\n").unwrap_err();
        assert_eq!(e.key, "nat65");
    }

    #[test]
    fn bad_prefix_length_is_named_rfc6052_2_2() {
        let e = Config::from_toml("[nat64]\nprefix = \"2001:db8::/33\"\n").unwrap_err();
        assert_eq!(e.key, "nat64.prefix");
        assert!(e.message.contains("/96"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_toml("[nat64]\npool4 = [\"300.1.1.1\"]\n").unwrap_err();
        assert_eq!(e.key, "nat64.pool4[0]");
        let e = Config::from_toml("[nat64]\npool4 = []\n").unwrap_err();
        assert_eq!(e.key, "nat64.pool4");
        let e = Config::from_toml("[nat64.timeouts]\nudp = 10\nicmp = 60\ntcp-established = 7440\ntcp-transitory = 240\n").unwrap_err();
        assert_eq!(e.key, "nat64.timeouts.udp");
        let e = Config::from_toml("[dns64]\nlisten = [\"nope\"]\nupstream = [\"192.0.2.53:53\"]\n").unwrap_err();
        assert_eq!(e.key, "dns64.listen[0]");
    }

    #[test]
    fn pool4_accepts_addresses_and_prefixes() {
        let c = Config::from_toml("[nat64]\npool4 = [\"192.0.2.1\", \"198.51.100.0/30\"]\n").unwrap();
        let p = &c.nat64.unwrap().pool4;
        assert_eq!(p[0].0.to_string(), "192.0.2.1/32");
        assert_eq!(p[1].0.to_string(), "198.51.100.0/30");
    }
}
