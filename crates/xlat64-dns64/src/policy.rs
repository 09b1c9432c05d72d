//! What the operator chose for synthesis: prefixes, which IPv4 addresses may
//! be synthesized, which AAAA records count as absent, and what an AAAA
//! error means.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};
use xlat64_packet::prefix::Prefix6052;
use xlat64_packet::special::allowed_under_well_known;

/// ::ffff:0:0/96, the IPv4-mapped range: AAAA records in it are treated as
/// absent by default (RFC 6147 §5.1.4).
pub const DEFAULT_EXCLUDE: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);

/// Every IPv4 address: the default of [`Dns64Policy::mapped`].
pub const ALL_IPV4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0);

/// IPv4 ranges synthesized under a prefix other than the main one
/// (RFC 6147 §5.2: "the DNS64 [...] MAY be configured with multiple
/// prefixes"; which one an address uses is local policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRule {
    /// The prefix for addresses in `ipv4`.
    pub prefix: Prefix6052,
    /// The IPv4 ranges that go to `prefix`.
    pub ipv4: Vec<Ipv4Net>,
}

/// How the DNS64 synthesizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns64Policy {
    /// The main prefix synthesized AAAA records are built from (RFC 6147
    /// §5.2), for every IPv4 address no [`PrefixRule`] claims.
    pub prefix: Prefix6052,
    /// Further prefixes, each for the IPv4 ranges it lists. The most
    /// specific range wins.
    pub prefixes: Vec<PrefixRule>,
    /// AAAA records in these ranges count as absent (RFC 6147 §5.1.4).
    pub exclude: Vec<Ipv6Net>,
    /// Only A records with addresses in these ranges are synthesized
    /// (RFC 6147 §5.1.4 lets the operator restrict synthesis; BIND's
    /// `mapped`). Default: every address.
    pub mapped: Vec<Ipv4Net>,
    /// A records with addresses in these ranges are never synthesized, even
    /// inside `mapped` (e.g. RFC 1918 space a NAT64 cannot reach).
    pub exclude_mapped: Vec<Ipv4Net>,
    /// Synthesize when the AAAA query fails with an rcode other than
    /// NXDOMAIN (SERVFAIL, REFUSED, ..., or no answer at all), treating it
    /// as an empty answer (RFC 6147 §5.1.2). Default true.
    pub synthesize_on_error: bool,
    /// Answer `ipv4only.arpa` A and AAAA locally (RFC 8880 §7.2). Default true.
    pub answer_ipv4only_arpa: bool,
    /// Map PTR queries for ip6.arpa names under the prefixes to in-addr.arpa
    /// (RFC 6147 §5.3.1). Default true.
    pub reverse: bool,
}

impl Dns64Policy {
    /// The RFC defaults for `prefix`.
    pub fn new(prefix: Prefix6052) -> Self {
        Dns64Policy {
            prefix,
            prefixes: Vec::new(),
            exclude: vec![DEFAULT_EXCLUDE],
            mapped: vec![ALL_IPV4],
            exclude_mapped: Vec::new(),
            synthesize_on_error: true,
            answer_ipv4only_arpa: true,
            reverse: true,
        }
    }

    /// True when an AAAA record with this address counts as absent.
    pub fn is_excluded(&self, addr: &Ipv6Addr) -> bool {
        self.exclude.iter().any(|net| net.contains(addr))
    }

    /// The prefix an A record with address `v4` is synthesized under, or
    /// `None` when it must not be synthesized:
    ///
    /// - outside `mapped` or inside `exclude_mapped`;
    /// - non-global under the well-known prefix (RFC 6052 §3.1), except
    ///   192.0.0.170 and 192.0.0.171 (RFC 7050 §2.2).
    ///
    /// The prefix is that of the [`PrefixRule`] with the longest IPv4 range
    /// holding `v4`, else the main prefix.
    pub fn prefix_for(&self, v4: Ipv4Addr) -> Option<Prefix6052> {
        if !self.mapped.iter().any(|n| n.contains(&v4))
            || self.exclude_mapped.iter().any(|n| n.contains(&v4))
        {
            return None;
        }
        let prefix = self
            .prefixes
            .iter()
            .flat_map(|rule| rule.ipv4.iter().map(move |n| (n, rule.prefix)))
            .filter(|(n, _)| n.contains(&v4))
            .max_by_key(|(n, _)| n.prefix_len())
            .map_or(self.prefix, |(_, p)| p);
        if prefix.is_well_known() && !allowed_under_well_known(v4) {
            return None;
        }
        Some(prefix)
    }

    /// Every prefix in use, the main one first, each once: what
    /// `ipv4only.arpa` reveals (RFC 7050 §3, RFC 8880 §7.2).
    pub fn all_prefixes(&self) -> Vec<Prefix6052> {
        let mut all = vec![self.prefix];
        for rule in &self.prefixes {
            if !all.contains(&rule.prefix) {
                all.push(rule.prefix);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nsp(s: &str) -> Prefix6052 {
        Prefix6052::new(s.parse().unwrap()).unwrap()
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc6052_3_1_well_known_prefix_never_maps_non_global() {
        let p = Dns64Policy::new(Prefix6052::WELL_KNOWN);
        assert_eq!(
            p.prefix_for(v4("93.184.216.34")),
            Some(Prefix6052::WELL_KNOWN)
        );
        for private in [
            "10.1.2.3",
            "192.168.0.1",
            "100.64.0.1",
            "192.0.2.1",
            "127.0.0.1",
        ] {
            assert_eq!(p.prefix_for(v4(private)), None, "{private}");
        }
        // RFC 7050 §2.2: the ipv4only.arpa addresses are the exception.
        assert!(p.prefix_for(v4("192.0.0.170")).is_some());
        assert!(p.prefix_for(v4("192.0.0.171")).is_some());
        // A network-specific prefix has no such limit.
        let p = Dns64Policy::new(nsp("2001:db8:64::/96"));
        assert!(p.prefix_for(v4("10.1.2.3")).is_some());
    }

    #[test]
    fn rfc6147_5_1_4_mapped_and_exclude_mapped() {
        let mut p = Dns64Policy::new(nsp("2001:db8:64::/96"));
        p.exclude_mapped = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(p.prefix_for(v4("10.9.9.9")), None);
        assert!(p.prefix_for(v4("11.0.0.1")).is_some());
        p.mapped = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(p.prefix_for(v4("11.0.0.1")), None);
        assert!(p.prefix_for(v4("198.51.100.7")).is_some());
    }

    #[test]
    fn rfc6147_5_2_ranges_go_to_their_prefix_most_specific_first() {
        let mut p = Dns64Policy::new(Prefix6052::WELL_KNOWN);
        p.prefixes = vec![
            PrefixRule {
                prefix: nsp("2001:db8:64::/96"),
                ipv4: vec!["10.0.0.0/8".parse().unwrap()],
            },
            PrefixRule {
                prefix: nsp("2001:db8:65::/96"),
                ipv4: vec!["10.1.0.0/16".parse().unwrap()],
            },
        ];
        assert_eq!(p.prefix_for(v4("10.2.0.1")), Some(nsp("2001:db8:64::/96")));
        assert_eq!(p.prefix_for(v4("10.1.0.1")), Some(nsp("2001:db8:65::/96")));
        assert_eq!(p.prefix_for(v4("8.8.8.8")), Some(Prefix6052::WELL_KNOWN));
        assert_eq!(
            p.all_prefixes(),
            vec![
                Prefix6052::WELL_KNOWN,
                nsp("2001:db8:64::/96"),
                nsp("2001:db8:65::/96")
            ]
        );
    }
}
