//! What the operator chose for synthesis.

use ipnet::Ipv6Net;
use std::net::Ipv6Addr;
use xlat64_packet::prefix::Prefix6052;

/// ::ffff:0:0/96, the IPv4-mapped range: AAAA records in it are treated as
/// absent by default (RFC 6147 §5.1.4).
pub const DEFAULT_EXCLUDE: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);

/// How the DNS64 synthesizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns64Policy {
    /// The prefix synthesized AAAA records are built from (RFC 6147 §5.2).
    pub prefix: Prefix6052,
    /// AAAA records in these ranges count as absent (RFC 6147 §5.1.4).
    pub exclude: Vec<Ipv6Net>,
    /// Synthesize when the AAAA query fails with an rcode other than
    /// NXDOMAIN (SERVFAIL, REFUSED, ...), treating it as an empty answer
    /// (RFC 6147 §5.1.2). Default true.
    pub synthesize_on_error: bool,
    /// Answer `ipv4only.arpa` A and AAAA locally (RFC 8880 §7.2). Default true.
    pub answer_ipv4only_arpa: bool,
    /// Map PTR queries for ip6.arpa names under the prefix to in-addr.arpa
    /// (RFC 6147 §5.3.1). Default true.
    pub reverse: bool,
}

impl Dns64Policy {
    /// The RFC defaults for `prefix`.
    pub fn new(prefix: Prefix6052) -> Self {
        Dns64Policy {
            prefix,
            exclude: vec![DEFAULT_EXCLUDE],
            synthesize_on_error: true,
            answer_ipv4only_arpa: true,
            reverse: true,
        }
    }

    /// True when an AAAA record with this address counts as absent.
    pub fn is_excluded(&self, addr: &Ipv6Addr) -> bool {
        self.exclude.iter().any(|net| net.contains(addr))
    }
}
