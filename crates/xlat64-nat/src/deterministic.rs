//! Deterministic port blocks (RFC 7422 §2): each client of a configured
//! range (a subscriber prefix, `client-prefix` bits) owns one block of
//! pool4 ports, computed from the configuration alone, so that no binding
//! log is needed to tell who held a port at any time.
//!
//! Client `i` (the bits of its prefix after the range's) holds block
//! number `first + i % per_address` of pool4 address `i / per_address`,
//! where the blocks of an address are the aligned blocks wholly inside its
//! port range, numbered from `first`. The mapping does not depend on the
//! number of workers: a deterministic client lives on the shard that owns
//! its block ([`Deterministic::owner`]), which the steering program
//! computes from the client's address as well.

use std::ops::RangeInclusive;

/// The most bits a client index may have (16,777,216 clients).
pub const MAX_INDEX_BITS: u8 = 24;

/// The deterministic mapping of one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deterministic {
    /// The clients' range: its first address, as bits.
    pub range: u128,
    /// The range's prefix length.
    pub range_len: u8,
    /// What one client is: a prefix of this many bits.
    pub client_prefix: u8,
    /// log2 of the block size.
    pub shift: u8,
    /// The number of the first block of every pool4 address.
    pub first: u16,
    /// Blocks per pool4 address.
    pub per_address: u16,
}

impl Deterministic {
    /// The mapping of clients `range`/`range_len` (clients of
    /// `client_prefix` bits) onto `addrs` pool4 addresses whose ports
    /// `span` are cut into blocks of `block` ports (a power of two). An
    /// error says what does not fit.
    pub fn new(
        range: u128,
        range_len: u8,
        client_prefix: u8,
        span: RangeInclusive<u16>,
        block: u16,
        addrs: usize,
    ) -> Result<Deterministic, String> {
        if !(block.is_power_of_two() && block >= 2) {
            return Err(format!("the block size {block} is not a power of two"));
        }
        if range_len > client_prefix || client_prefix > 128 {
            return Err(format!(
                "the clients' range /{range_len} is longer than a client (/{client_prefix})"
            ));
        }
        if client_prefix - range_len > MAX_INDEX_BITS {
            return Err(format!(
                "/{range_len} holds 2^{} clients of /{client_prefix}; at most 2^{MAX_INDEX_BITS}",
                client_prefix - range_len
            ));
        }
        let shift = block.trailing_zeros() as u8;
        let first = u32::from(*span.start()).div_ceil(u32::from(block));
        let end = (u32::from(*span.end()) + 1) >> shift;
        let per_address = end.saturating_sub(first);
        let d = Deterministic {
            range: range & mask(range_len),
            range_len,
            client_prefix,
            shift,
            first: first as u16,
            per_address: per_address as u16,
        };
        let capacity = u64::from(per_address) * addrs as u64;
        if capacity < d.clients() {
            return Err(format!(
                "{} clients need {} blocks of {block} ports, but pool4 has {capacity} ({} per address in {}-{})",
                d.clients(),
                d.clients(),
                per_address,
                span.start(),
                span.end()
            ));
        }
        Ok(d)
    }

    /// How many clients the range holds.
    pub fn clients(&self) -> u64 {
        1 << (self.client_prefix - self.range_len)
    }

    /// The index of the client of address `addr`, if it is in the range.
    pub fn index_of(&self, addr: &[u8; 16]) -> Option<u32> {
        let a = u128::from_be_bytes(*addr);
        if a & mask(self.range_len) != self.range {
            return None;
        }
        let bits = self.client_prefix - self.range_len;
        let below = 128 - u32::from(self.client_prefix);
        Some(((a.checked_shr(below).unwrap_or(0)) & ((1u128 << bits) - 1)) as u32)
    }

    /// The pool4 address index and block number of client `index`.
    pub fn block_of(&self, index: u32) -> (usize, u16) {
        let per = u32::from(self.per_address.max(1));
        ((index / per) as usize, self.first + (index % per) as u16)
    }

    /// The ports of block `number`.
    pub fn ports(&self, number: u16) -> RangeInclusive<u16> {
        let first = u32::from(number) << self.shift;
        first as u16..=(first + (1 << self.shift) - 1) as u16
    }

    /// The client (its prefix's first address, as bits) that holds `port`
    /// of pool4 address `pool_index`, if any.
    pub fn client_at(&self, pool_index: usize, port: u16) -> Option<u128> {
        let number = port >> self.shift;
        let within = number.checked_sub(self.first)?;
        if within >= self.per_address {
            return None;
        }
        let index = pool_index as u64 * u64::from(self.per_address) + u64::from(within);
        if index >= self.clients() {
            return None;
        }
        let below = 128 - u32::from(self.client_prefix);
        Some(self.range | (u128::from(index)).checked_shl(below).unwrap_or(0))
    }

    /// The shard of `count` that owns client `index`'s block (blocks are
    /// dealt `number % count`).
    pub fn owner(&self, index: u32, count: u16) -> u16 {
        let (_, number) = self.block_of(index);
        number % count.max(1)
    }
}

/// The first `len` bits set.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn bits(a: &str) -> u128 {
        u128::from(a.parse::<Ipv6Addr>().unwrap())
    }

    #[test]
    fn rfc7422_clients_map_to_blocks_and_back() {
        // 256 subscribers (/56 in a /48) on 2 addresses, 61440-65535 in
        // blocks of 512: 8 blocks per address, 16 in all: too few.
        let span = 61001..=65535;
        let e = Deterministic::new(bits("2001:db8:100::"), 48, 56, span.clone(), 512, 2);
        assert!(e.unwrap_err().contains("256 clients"));
        // 16 subscribers (/52 in a /48) fit.
        let d = Deterministic::new(bits("2001:db8:100::"), 48, 52, span, 512, 2).unwrap();
        assert_eq!((d.first, d.per_address, d.clients()), (120, 8, 16));
        let c9: Ipv6Addr = "2001:db8:100:9123::5".parse().unwrap();
        let i = d.index_of(&c9.octets()).unwrap();
        assert_eq!(i, 9);
        assert_eq!(d.block_of(i), (1, 121));
        assert_eq!(d.ports(121), 61952..=62463);
        assert_eq!(d.client_at(1, 62000), Some(bits("2001:db8:100:9000::")));
        assert_eq!(d.client_at(1, 61000), None);
        assert_eq!(d.owner(i, 2), 1);
        let outside: Ipv6Addr = "2001:db8:101::5".parse().unwrap();
        assert_eq!(d.index_of(&outside.octets()), None);
        // Every client's block maps back to it.
        for i in 0..16u32 {
            let (idx, n) = d.block_of(i);
            let client = d.client_at(idx, *d.ports(n).start()).unwrap();
            assert_eq!(d.index_of(&client.to_be_bytes()), Some(i));
        }
    }
}
