//! The IPv4 transport addresses shared by all clients (RFC 6146 §3.5.1.1).

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use xlat64_packet::L4Proto;

/// The largest pool accepted: one /16. Bigger pools would make the address
/// list (and the per-address bookkeeping of the NAT) needlessly large.
const MAX_ADDRS: u64 = 1 << 16;

/// TCP and UDP ports an address offers by default: all but 0, so that a
/// client's port of either range class (0-1023, 1024-65535) can be kept or
/// matched (RFC 6146 §3.5.1.1).
pub const DEFAULT_PORTS: RangeInclusive<u16> = 1..=65535;

/// Pool of IPv4 addresses; each address offers ports 1..=65535 for TCP and
/// UDP ([`DEFAULT_PORTS`]) and identifiers 0..=65535 for ICMP (both ranges
/// configurable).
///
/// A reload may add addresses and retire others ([`Pool4::updated`]). An
/// address keeps its index for the pool's life, because bindings and port
/// bookkeeping refer to it by index: added addresses come after the
/// others, and a retired one stays, draining: no new binding takes it,
/// those it has live on until they expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool4 {
    /// In index order: sorted at first, then each reload's additions.
    addrs: Vec<Ipv4Addr>,
    /// Every address with its index, sorted by address (for lookups).
    sorted: Vec<(Ipv4Addr, u16)>,
    /// Per address (same order): retired by a reload, no new bindings.
    draining: Vec<bool>,
    /// Per address (same order), a port range of its own for TCP, UDP and
    /// ICMP alike (a pool4 entry `"ADDR:FIRST-LAST"`); `None`: the pool's.
    own_ranges: Vec<Option<(u16, u16)>>,
    /// TCP and UDP ports handed out (inclusive).
    ports: (u16, u16),
    /// ICMP echo identifiers handed out (inclusive).
    icmp_ids: (u16, u16),
}

impl Pool4 {
    /// Builds a pool from prefixes (a single address is a /32). Every address
    /// of a prefix is used: the pool is the operator's explicit choice. Empty
    /// input, or more than 65536 addresses in total, is an error.
    pub fn new(nets: &[Ipv4Net]) -> Result<Self, &'static str> {
        if nets.is_empty() {
            return Err("the IPv4 pool is empty");
        }
        let total: u64 = nets.iter().map(|n| 1u64 << (32 - n.prefix_len())).sum();
        if total > MAX_ADDRS {
            return Err("the IPv4 pool is larger than 65536 addresses (a /16)");
        }
        let mut addrs: Vec<Ipv4Addr> = Vec::with_capacity(total as usize);
        for net in nets {
            let first = u32::from(net.network());
            let count = 1u64 << (32 - net.prefix_len());
            addrs.extend((0..count).map(|i| Ipv4Addr::from(first + i as u32)));
        }
        addrs.sort_unstable();
        addrs.dedup();
        Ok(Pool4 {
            own_ranges: vec![None; addrs.len()],
            sorted: addrs
                .iter()
                .zip(0..=u16::MAX)
                .map(|(a, i)| (*a, i))
                .collect(),
            draining: vec![false; addrs.len()],
            addrs,
            ports: (*DEFAULT_PORTS.start(), *DEFAULT_PORTS.end()),
            icmp_ids: (0, 65535),
        })
    }

    /// Builds a pool from entries of which some carry a port range of their
    /// own (`"203.0.113.1:61001-65535"`: a share of an address that other
    /// services use too). An address in two entries with different ranges,
    /// or an empty range, is an error.
    pub fn with_entries(
        entries: &[(Ipv4Net, Option<RangeInclusive<u16>>)],
    ) -> Result<Self, String> {
        let nets: Vec<Ipv4Net> = entries.iter().map(|(n, _)| *n).collect();
        let mut pool = Pool4::new(&nets).map_err(String::from)?;
        let mut ranged = vec![false; pool.addrs.len()];
        for (net, range) in entries {
            let own = match range {
                Some(r) if r.is_empty() => {
                    return Err(format!("the port range of {net} is empty"));
                }
                Some(r) => Some((*r.start(), *r.end())),
                None => None,
            };
            for i in pool.index_range(net) {
                if ranged[i] && pool.own_ranges[i] != own {
                    return Err(format!(
                        "{} is in two pool4 entries with different port ranges",
                        pool.addrs[i]
                    ));
                }
                ranged[i] = true;
                pool.own_ranges[i] = own;
            }
        }
        Ok(pool)
    }

    /// The indexes of the addresses of `net`.
    fn index_range(&self, net: &Ipv4Net) -> std::ops::Range<usize> {
        let lo = self.addrs.partition_point(|a| *a < net.network());
        let hi = self.addrs.partition_point(|a| *a <= net.broadcast());
        lo..hi
    }

    /// Restricts the TCP/UDP ports handed out (default [`DEFAULT_PORTS`]). An empty
    /// range is an error.
    pub fn with_port_range(mut self, ports: RangeInclusive<u16>) -> Result<Self, &'static str> {
        if ports.is_empty() {
            return Err("the pool4 port range is empty");
        }
        self.ports = (*ports.start(), *ports.end());
        Ok(self)
    }

    /// Restricts the ICMP identifiers handed out (default 0..=65535). An
    /// empty range is an error.
    pub fn with_icmp_id_range(mut self, ids: RangeInclusive<u16>) -> Result<Self, &'static str> {
        if ids.is_empty() {
            return Err("the pool4 ICMP identifier range is empty");
        }
        self.icmp_ids = (*ids.start(), *ids.end());
        Ok(self)
    }

    /// Whether `addr` belongs to the pool (draining or not).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.index_of(addr).is_some()
    }

    /// The index of `addr` in [`Self::addrs`], if it belongs to the pool.
    pub fn index_of(&self, addr: Ipv4Addr) -> Option<usize> {
        let at = self.sorted.binary_search_by_key(&addr, |e| e.0).ok()?;
        Some(usize::from(self.sorted[at].1))
    }

    /// The addresses in the pool, by index: sorted, unless a reload added
    /// some (they come last). Draining addresses included.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    /// Whether the address at `index` is draining: retired by a reload,
    /// no new bindings on it.
    pub fn is_draining(&self, index: usize) -> bool {
        self.draining.get(index).copied().unwrap_or(true)
    }

    /// The addresses that are draining.
    pub fn draining(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addrs
            .iter()
            .zip(&self.draining)
            .filter(|(_, d)| **d)
            .map(|(a, _)| *a)
    }

    /// This pool changed into `new` (a reload) without moving an address:
    /// addresses of both keep their index (and stop draining if they
    /// were), addresses only in `new` are added after the others, and
    /// addresses only in this pool stay, draining. Refused: another port or
    /// identifier range for an address that stays or comes back (its
    /// bindings hold ports of the old one), or more than 65,536 addresses
    /// counting the draining ones.
    pub fn updated(&self, new: &Pool4) -> Result<Pool4, String> {
        if new.ports != self.ports || new.icmp_ids != self.icmp_ids {
            return Err("the pool's port or ICMP identifier range cannot change".into());
        }
        let mut pool = self.clone();
        for (i, addr) in self.addrs.iter().enumerate() {
            match new.index_of(*addr) {
                Some(j) if new.own_ranges[j] != self.own_ranges[i] => {
                    return Err(format!("the port range of {addr} cannot change"));
                }
                Some(_) => pool.draining[i] = false,
                None => pool.draining[i] = true,
            }
        }
        for (j, addr) in new.addrs.iter().enumerate() {
            if self.contains(*addr) {
                continue;
            }
            let index = u16::try_from(pool.addrs.len())
                .ok()
                .filter(|_| (pool.addrs.len() as u64) < MAX_ADDRS)
                .ok_or_else(|| {
                    format!(
                        "with the addresses still draining, the pool would hold more than {MAX_ADDRS} addresses"
                    )
                })?;
            pool.addrs.push(*addr);
            pool.own_ranges.push(new.own_ranges[j]);
            pool.draining.push(false);
            let at = pool.sorted.partition_point(|e| e.0 < *addr);
            pool.sorted.insert(at, (*addr, index));
        }
        Ok(pool)
    }

    /// The ports (or ICMP identifiers) handed out on the address at `index`
    /// of [`Self::addrs`] for `proto`: its own range if its entry has one.
    pub fn port_range_of(&self, index: usize, proto: L4Proto) -> RangeInclusive<u16> {
        match self.own_ranges.get(index).copied().flatten() {
            Some((lo, hi)) => lo..=hi,
            None => self.port_range(proto),
        }
    }

    /// The ports (TCP, UDP) or identifiers (ICMP) handed out for `proto`
    /// on addresses without a range of their own.
    pub fn port_range(&self, proto: L4Proto) -> RangeInclusive<u16> {
        let (lo, hi) = match proto {
            L4Proto::Tcp | L4Proto::Udp => self.ports,
            L4Proto::Icmp => self.icmp_ids,
        };
        lo..=hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_addresses_and_prefixes() {
        let pool = Pool4::new(&[
            "192.0.2.1/32".parse().unwrap(),
            "198.51.100.0/30".parse().unwrap(),
        ])
        .unwrap();
        assert_eq!(pool.addrs().len(), 5);
        assert!(pool.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(pool.contains(Ipv4Addr::new(198, 51, 100, 0)));
        assert!(pool.contains(Ipv4Addr::new(198, 51, 100, 3)));
        assert!(!pool.contains(Ipv4Addr::new(198, 51, 100, 4)));
        assert!(!pool.contains(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(pool.port_range(L4Proto::Udp), 1..=65535);
        assert_eq!(pool.port_range(L4Proto::Icmp), 0..=65535);
    }

    #[test]
    fn entries_with_their_own_port_ranges() {
        let pool = Pool4::with_entries(&[
            ("203.0.113.1/32".parse().unwrap(), Some(61001..=65535)),
            ("192.0.2.0/31".parse().unwrap(), None),
        ])
        .unwrap();
        let idx = |a: &str| pool.addrs().binary_search(&a.parse().unwrap()).unwrap();
        assert_eq!(
            pool.port_range_of(idx("203.0.113.1"), L4Proto::Udp),
            61001..=65535
        );
        assert_eq!(
            pool.port_range_of(idx("203.0.113.1"), L4Proto::Icmp),
            61001..=65535
        );
        assert_eq!(
            pool.port_range_of(idx("192.0.2.1"), L4Proto::Tcp),
            1..=65535
        );
        assert_eq!(
            pool.port_range_of(idx("192.0.2.1"), L4Proto::Icmp),
            0..=65535
        );
        let clash = Pool4::with_entries(&[
            ("192.0.2.0/30".parse().unwrap(), None),
            ("192.0.2.1/32".parse().unwrap(), Some(2000..=3000)),
        ]);
        assert!(clash.unwrap_err().contains("two pool4 entries"));
        #[allow(clippy::reversed_empty_ranges)]
        let empty = Pool4::with_entries(&[("192.0.2.1/32".parse().unwrap(), Some(10..=9))]);
        assert!(empty.unwrap_err().contains("empty"));
    }

    #[test]
    fn update_keeps_indexes_appends_additions_and_drains_removals() {
        let pool = Pool4::new(&["192.0.2.4/31".parse().unwrap()]).unwrap();
        let new = Pool4::new(&[
            "192.0.2.1/32".parse().unwrap(),
            "192.0.2.5/32".parse().unwrap(),
        ])
        .unwrap();
        let up = pool.updated(&new).unwrap();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            up.addrs(),
            &[a("192.0.2.4"), a("192.0.2.5"), a("192.0.2.1")]
        );
        assert_eq!(up.index_of(a("192.0.2.1")), Some(2));
        assert_eq!(up.index_of(a("192.0.2.4")), Some(0));
        assert!(up.contains(a("192.0.2.4")), "a draining address stays");
        assert!(up.is_draining(0) && !up.is_draining(1) && !up.is_draining(2));
        assert_eq!(up.draining().collect::<Vec<_>>(), vec![a("192.0.2.4")]);
        // It comes back: no longer draining, same index.
        let back = up.updated(&pool).unwrap();
        assert_eq!(back.index_of(a("192.0.2.4")), Some(0));
        assert!(!back.is_draining(0) && back.is_draining(2));
    }

    #[test]
    fn update_refuses_a_new_port_range_and_an_oversized_pool() {
        let pool =
            Pool4::with_entries(&[("192.0.2.1/32".parse().unwrap(), Some(2000..=3000))]).unwrap();
        let other =
            Pool4::with_entries(&[("192.0.2.1/32".parse().unwrap(), Some(2000..=4000))]).unwrap();
        assert!(pool.updated(&other).unwrap_err().contains("192.0.2.1"));
        let big = Pool4::new(&["10.0.0.0/16".parse().unwrap()]).unwrap();
        let other = Pool4::new(&["10.1.0.0/16".parse().unwrap()]).unwrap();
        assert!(big.updated(&other).unwrap_err().contains("65536"));
    }

    #[test]
    fn overlapping_prefixes_are_deduplicated() {
        let pool = Pool4::new(&[
            "192.0.2.0/30".parse().unwrap(),
            "192.0.2.1/32".parse().unwrap(),
        ])
        .unwrap();
        assert_eq!(pool.addrs().len(), 4);
    }

    #[test]
    fn rejects_empty_and_huge() {
        assert!(Pool4::new(&[]).is_err());
        assert!(Pool4::new(&["10.0.0.0/8".parse().unwrap()]).is_err());
        assert!(Pool4::new(&["10.0.0.0/16".parse().unwrap()]).is_ok());
        let pool = Pool4::new(&["192.0.2.1/32".parse().unwrap()]).unwrap();
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 10..=9;
        assert!(pool.clone().with_port_range(empty).is_err());
        assert_eq!(
            pool.with_port_range(2000..=2001)
                .unwrap()
                .port_range(L4Proto::Tcp),
            2000..=2001
        );
    }
}
