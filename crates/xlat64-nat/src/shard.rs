//! Splitting one NAT64 into shards that share nothing, one per packet worker.
//!
//! A shard owns its clients outright: every binding and session of a client
//! lives in the one shard its IPv6 address maps to, so per-client limits and
//! paired pooling (one IPv4 address per client, RFC 6888 REQ-2) stay exact
//! within a shard. On the IPv4 side a shard owns a slice of every pool4
//! address's ports (and ICMP identifiers): pairs of ports, dealt round-robin
//! (`(port >> 1) % count`), so that each shard has ports of both parities and
//! of both ranges (0-1023 and 1024-65535) that RFC 6146 §3.5.1.1 asks port
//! allocation to keep. With port blocks of 2^k ports (RFC 7422), whole
//! blocks are dealt instead (`(port >> k) % count`), so that a client's
//! block belongs to its shard. A reply therefore names its owner in its destination
//! port, and a packet from a client in its source address: both directions
//! reach the owner without any table shared between shards.
//!
//! [`owner_of_v6`] and [`owner_of_v4`] are the reference for the steering
//! that puts each packet on its owner's queue (the daemon's BPF program
//! computes the same function in the kernel); the daemon also uses them for
//! packets that end up on another shard, such as a datagram reassembled
//! from IPv4 fragments.

use crate::deterministic::Deterministic;

/// Which of `count` shards a NAT64 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u16,
    /// How many shards share the pool4 ports.
    pub count: u16,
    /// What one client is: the first `client_prefix` bits of its IPv6
    /// address (128: an address; shorter: a subscriber's prefix, whose
    /// addresses all live in one shard, so that per-client limits and
    /// paired pooling hold for the whole prefix).
    pub client_prefix: u8,
    /// Ports are dealt to shards in runs of `1 << port_shift`: 1 (pairs),
    /// or the size of a port block.
    pub port_shift: u8,
    /// Deterministic port blocks (RFC 7422 §2): a client of their range
    /// lives on the shard that owns its block, not where its hash says.
    pub deterministic: Option<Deterministic>,
}

impl Shard {
    /// The whole NAT64 in one shard, clients by address.
    pub const ONE: Shard = Shard {
        index: 0,
        count: 1,
        client_prefix: 128,
        port_shift: 1,
        deterministic: None,
    };

    /// Shard `index` of `count`, clients by address; `None` when `index` is
    /// out of range or `count` is 0.
    pub fn new(index: u16, count: u16) -> Option<Shard> {
        (index < count).then_some(Shard {
            index,
            count,
            client_prefix: 128,
            port_shift: 1,
            deterministic: None,
        })
    }

    /// The same shard with ports dealt in blocks of `block` ports (a power
    /// of two from 2 to 32768; anything else keeps pairs).
    pub fn with_port_block(self, block: u16) -> Shard {
        let port_shift = if block.is_power_of_two() && block >= 2 {
            block.trailing_zeros() as u8
        } else {
            1
        };
        Shard { port_shift, ..self }
    }

    /// The same shard with clients of `client_prefix` bits (at most 128).
    pub fn with_client_prefix(self, client_prefix: u8) -> Shard {
        Shard {
            client_prefix: client_prefix.min(128),
            ..self
        }
    }

    /// The shard that owns the client of IPv6 address `addr`: the owner
    /// of its deterministic block, or by [`owner_of_client`].
    pub fn client_owner(&self, addr: &[u8; 16]) -> u16 {
        match self
            .deterministic
            .and_then(|d| Some((d, d.index_of(addr)?)))
        {
            Some((d, index)) => d.owner(index, self.count),
            None => owner_of_client(addr, self.client_prefix, self.count),
        }
    }

    /// The shard that owns an IPv6 packet from the TUN device (see
    /// [`owner_of_v6`]), deterministic clients included.
    pub fn v6_owner(&self, pkt: &[u8]) -> Option<u16> {
        let addr = v6_owner_address(pkt)?;
        Some(self.client_owner(addr))
    }

    /// Whether pool4 port (or ICMP identifier) `port` is this shard's.
    pub fn owns(&self, port: u16) -> bool {
        owner_of_port(port, self.count, self.port_shift) == self.index
    }

    /// How many ports of `lo..=hi` this shard owns.
    pub fn owned_in(&self, lo: u16, hi: u16) -> u32 {
        if lo > hi {
            return 0;
        }
        // Whole rounds of `run * count` ports give `run` to each shard;
        // count the ragged ends one by one (fewer than 2 rounds).
        let run = 1u32 << self.port_shift;
        let round = run * u32::from(self.count);
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        let first_round = lo.div_ceil(round) * round;
        let last_round = (hi + 1) / round * round;
        if first_round >= last_round {
            return (lo..=hi).filter(|&p| self.owns(p as u16)).count() as u32;
        }
        let whole = (last_round - first_round) / round * run;
        let head = (lo..first_round).filter(|&p| self.owns(p as u16)).count() as u32;
        let tail = (last_round..=hi).filter(|&p| self.owns(p as u16)).count() as u32;
        whole + head + tail
    }
}

/// The shard of `count` that owns pool4 port (or ICMP identifier) `port`,
/// ports being dealt in runs of `1 << shift` ([`Shard::port_shift`]).
pub fn owner_of_port(port: u16, count: u16, shift: u8) -> u16 {
    if count <= 1 {
        0
    } else {
        (port >> shift.min(15)) % count
    }
}

/// The 32-bit words of a `client_prefix`-bit mask (a client is an IPv6
/// address, or with a shorter prefix a subscriber's whole prefix).
pub fn client_mask(client_prefix: u8) -> [u32; 4] {
    let bits = u32::from(client_prefix.min(128));
    std::array::from_fn(|i| {
        let covered = bits.saturating_sub(32 * i as u32).min(32);
        match covered {
            0 => 0,
            32 => u32::MAX,
            n => u32::MAX << (32 - n),
        }
    })
}

/// The client `addr` belongs to: its first `client_prefix` bits.
pub fn client_of(addr: &std::net::Ipv6Addr, client_prefix: u8) -> u128 {
    let mask = match client_prefix.min(128) {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    };
    u128::from(*addr) & mask
}

/// The shard that owns the client of IPv6 address `addr` (its first
/// `client_prefix` bits): a multiplicative hash of the four masked 32-bit
/// words, as the steering program computes it (addresses of one /64 spread
/// over all shards when clients are addresses; one subscriber's addresses
/// stay together when clients are prefixes).
pub fn owner_of_client(addr: &[u8; 16], client_prefix: u8, count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    let mut x = 0u32;
    for (w, m) in addr.chunks_exact(4).zip(client_mask(client_prefix)) {
        x ^= u32::from_be_bytes([w[0], w[1], w[2], w[3]]) & m;
    }
    ((x.wrapping_mul(0x9E37_79B1) >> 16) % u32::from(count)) as u16
}

/// The shard that owns an IPv6 packet from the TUN device: its source's, or
/// for an ICMPv6 error (type < 128, right after the fixed header) the quoted
/// packet's destination's, which is the client the error is about. `None`
/// when too short to tell.
pub fn owner_of_v6(pkt: &[u8], client_prefix: u8, count: u16) -> Option<u16> {
    Some(owner_of_client(
        v6_owner_address(pkt)?,
        client_prefix,
        count,
    ))
}

/// The client address that decides an IPv6 packet's owner: its source, or
/// for an ICMPv6 error right after the fixed header the quoted destination.
fn v6_owner_address(pkt: &[u8]) -> Option<&[u8; 16]> {
    let hdr = pkt.first_chunk::<48>();
    let is_error = hdr.is_some_and(|h| h[6] == 58 && h[40] < 128);
    let addr = if is_error {
        pkt.get(72..88)?
    } else {
        pkt.get(8..24)?
    };
    addr.try_into().ok()
}

/// The shard that owns an IPv4 packet from the TUN device: by the pool4
/// port it is sent to (TCP or UDP destination port, echo identifier, or for
/// an ICMP error the quoted packet's source port or identifier). A fragment
/// without transport header goes by its identification (the reassembled
/// datagram is then handed to its owner). `None` when it names no port
/// (too short, another protocol or ICMP type).
pub fn owner_of_v4(pkt: &[u8], count: u16, shift: u8) -> Option<u16> {
    let hdr = pkt.first_chunk::<20>()?;
    if u16::from_be_bytes([hdr[6], hdr[7]]) & 0x3fff != 0 {
        return Some(u16::from_be_bytes([hdr[4], hdr[5]]) % count.max(1));
    }
    let l4 = pkt.get(usize::from(hdr[0] & 0x0f) * 4..)?;
    let port = match hdr[9] {
        6 | 17 => u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        1 => match *l4.first()? {
            0 | 8 => u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]),
            3 | 11 | 12 => {
                let inner = l4.get(8..)?;
                let at = usize::from(inner.first()? & 0x0f) * 4;
                match *inner.get(9)? {
                    6 | 17 => u16::from_be_bytes([*inner.get(at)?, *inner.get(at + 1)?]),
                    1 => u16::from_be_bytes([*inner.get(at + 4)?, *inner.get(at + 5)?]),
                    _ => return None,
                }
            }
            _ => return None,
        },
        _ => return None,
    };
    Some(owner_of_port(port, count, shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_has_exactly_one_owner() {
        for count in 1..=5u16 {
            for port in [0u16, 1, 2, 3, 1023, 1024, 40000, 65534, 65535] {
                let owners: Vec<u16> = (0..count)
                    .filter(|&i| Shard::new(i, count).unwrap().owns(port))
                    .collect();
                assert_eq!(owners, vec![owner_of_port(port, count, 1)]);
            }
        }
    }

    #[test]
    fn owned_in_counts_exactly() {
        for count in 1..=5u16 {
            for (lo, hi) in [
                (0, 65535),
                (1024, 65535),
                (2000, 2001),
                (7, 9),
                (5, 4),
                (61001, 65535),
            ] {
                for (index, block) in (0..count).flat_map(|i| [(i, 0), (i, 512), (i, 8)]) {
                    let s = Shard::new(index, count).unwrap().with_port_block(block);
                    let slow = if lo > hi {
                        0
                    } else {
                        (lo..=hi).filter(|&p| s.owns(p)).count() as u32
                    };
                    assert_eq!(
                        s.owned_in(lo, hi),
                        slow,
                        "{count} {index} {block} {lo}-{hi}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_shard_has_both_parities_and_both_ranges() {
        for count in 2..=4u16 {
            for index in 0..count {
                let s = Shard::new(index, count).unwrap();
                for (lo, hi) in [(0u16, 1023u16), (1024, 65535)] {
                    assert!((lo..=hi).any(|p| s.owns(p) && p % 2 == 0));
                    assert!((lo..=hi).any(|p| s.owns(p) && p % 2 == 1));
                }
            }
        }
    }

    #[test]
    fn clients_of_one_prefix_spread() {
        let mut seen = [0usize; 4];
        for i in 1..=64u8 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[15] = i;
            seen[usize::from(owner_of_client(&a, 128, 4))] += 1;
        }
        assert!(seen.iter().all(|&n| n >= 8), "{seen:?}");
    }

    #[test]
    fn rfc6888_req_4_a_subscriber_prefix_stays_on_one_shard() {
        let owners: std::collections::HashSet<u16> = (1..=64u8)
            .map(|i| {
                let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, i];
                a[8] = i.wrapping_mul(37);
                owner_of_client(&a, 64, 4)
            })
            .collect();
        assert_eq!(owners.len(), 1);
        assert_eq!(client_mask(64), [u32::MAX, u32::MAX, 0, 0]);
        assert_eq!(client_mask(56), [u32::MAX, 0xffff_ff00, 0, 0]);
        assert_eq!(client_mask(128), [u32::MAX; 4]);
        let a: std::net::Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            client_of(&a, 48),
            u128::from("2001:db8:1::".parse::<std::net::Ipv6Addr>().unwrap())
        );
        assert_eq!(client_of(&a, 128), u128::from(a));
    }

    #[test]
    fn v4_owner_by_port_identifier_quote_and_fragment() {
        let mut udp = [0u8; 28];
        udp[0] = 0x45;
        udp[9] = 17;
        udp[22..24].copy_from_slice(&4001u16.to_be_bytes());
        assert_eq!(owner_of_v4(&udp, 3, 1), Some(owner_of_port(4001, 3, 1)));
        let mut echo = [0u8; 28];
        echo[0] = 0x45;
        echo[9] = 1;
        echo[24..26].copy_from_slice(&777u16.to_be_bytes());
        assert_eq!(owner_of_v4(&echo, 3, 1), Some(owner_of_port(777, 3, 1)));
        // Time Exceeded quoting a UDP packet from pool port 5003.
        let mut err = [0u8; 56];
        err[0] = 0x45;
        err[9] = 1;
        err[20] = 11;
        err[28] = 0x45;
        err[37] = 17;
        err[48..50].copy_from_slice(&5003u16.to_be_bytes());
        assert_eq!(owner_of_v4(&err, 3, 1), Some(owner_of_port(5003, 3, 1)));
        let mut frag = udp;
        frag[6] = 0x20; // MF
        frag[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(owner_of_v4(&frag, 3, 1), Some(1));
        let mut gre = udp;
        gre[9] = 47;
        assert_eq!(owner_of_v4(&gre, 3, 1), None);
    }

    #[test]
    fn v6_owner_of_an_error_is_the_quoted_destination() {
        let mut client = [0u8; 16];
        client[15] = 9;
        let mut pkt = [0u8; 88];
        pkt[0] = 0x60;
        pkt[6] = 58;
        pkt[40] = 3; // Time Exceeded
        pkt[8] = 0xfe; // a router's source
        pkt[72..88].copy_from_slice(&client);
        assert_eq!(
            owner_of_v6(&pkt, 128, 4),
            Some(owner_of_client(&client, 128, 4))
        );
        pkt[40] = 128;
        pkt[8..24].copy_from_slice(&client);
        assert_eq!(
            owner_of_v6(&pkt, 128, 4),
            Some(owner_of_client(&client, 128, 4))
        );
    }
}
