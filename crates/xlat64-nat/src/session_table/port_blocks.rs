//! Port blocks (RFC 7422 style, `port-block = N`): each client's dynamic
//! bindings take their pool4 ports from blocks of N ports that the client
//! holds on one pool4 address, for all protocols at once; a block is
//! allocated when the client needs a port and has none free in its blocks,
//! and released with the last binding in it. One log line then covers a
//! block instead of every binding (RFC 6888 REQ-12 at a fraction of the
//! volume).
//!
//! Blocks are aligned: block `b` is ports `b * N ..= b * N + N - 1`, and the
//! shards are dealt whole blocks ([`crate::shard::Shard::with_port_block`]),
//! so that a block is all of one shard's. Only blocks wholly inside an
//! address's port ranges (of every protocol) are handed out.
//!
//! The blocks held are entries of an [`Indexed`] table with two chains: by
//! client (a client's blocks share a chain) and by (address, block).
//! Which blocks of an address are held is a bitmap per address, kept only
//! while the address has blocks, so that finding a free block is a scan of
//! at most 65536 / N bits.

use super::chain_index::{Chained, Link};
use super::indexed::Indexed;
use foldhash::fast::FixedState;
use std::cell::Cell;
use std::hash::BuildHasher;
use std::ops::RangeInclusive;

/// Chain of a block by client.
const BY_CLIENT: usize = 0;
/// Chain of a block by (address, number).
const BY_NUMBER: usize = 1;

/// One block a client holds.
#[derive(Debug)]
pub(super) struct Block {
    /// The client (`shard::client_of`).
    client: u128,
    /// The pool4 address's index.
    pool_index: u16,
    /// The block's number: its first port divided by the block size.
    number: u16,
    /// Dynamic bindings in the block, of every protocol.
    bindings: u32,
    links: [Link; 2],
}

impl Chained for Block {
    fn link(&self, chain: usize) -> Link {
        self.links[chain]
    }

    fn set_link(&mut self, chain: usize, link: Link) {
        self.links[chain] = link;
    }

    fn key_hash(&self, chain: usize, state: &FixedState) -> u64 {
        match chain {
            BY_CLIENT => state.hash_one(self.client),
            _ => state.hash_one((self.pool_index, self.number)),
        }
    }
}

/// A block handed to or taken back from a client, for the binding log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockChange {
    /// The client.
    pub(crate) client: u128,
    /// The pool4 address's index.
    pub(crate) pool_index: u16,
    /// The block's ports.
    pub(crate) first: u16,
    /// The block's last port.
    pub(crate) last: u16,
}

/// The blocks of one NAT64 shard.
#[derive(Debug)]
pub(super) struct PortBlocks {
    /// log2 of the block size.
    shift: u8,
    blocks: Indexed<Block, 2>,
    /// Per pool address, one bit per block number held; `None` while the
    /// address has no block.
    held: Vec<Option<Box<[u64]>>>,
}

impl PortBlocks {
    /// Blocks of `size` ports (a power of two, 2..=32768) over `addrs`
    /// pool4 addresses; chains keyed with `state`.
    pub(super) fn new(size: u16, addrs: usize, state: FixedState) -> Self {
        debug_assert!(size.is_power_of_two() && size >= 2);
        PortBlocks {
            shift: size.trailing_zeros() as u8,
            blocks: Indexed::new(state),
            held: vec![None; addrs],
        }
    }

    /// Room for the blocks of `addrs` pool4 addresses (a reload added
    /// some; they hold none yet).
    pub(super) fn grow_to(&mut self, addrs: usize) {
        if addrs > self.held.len() {
            self.held.resize(addrs, None);
        }
    }

    /// Ports per block.
    pub(super) fn size(&self) -> u32 {
        1 << self.shift
    }

    /// The ports of block `number`.
    pub(super) fn ports(&self, number: u16) -> RangeInclusive<u16> {
        let first = u32::from(number) << self.shift;
        first as u16..=(first + self.size() - 1) as u16
    }

    /// The number of the block holding `port`.
    pub(super) fn number_of(&self, port: u16) -> u16 {
        port >> self.shift
    }

    /// The numbers of the blocks wholly inside `range`, if any.
    pub(super) fn numbers_in(&self, range: &RangeInclusive<u16>) -> Option<RangeInclusive<u32>> {
        let first = u32::from(*range.start()).div_ceil(self.size());
        // Blocks wholly below the end of the range.
        let end = (u32::from(*range.end()) + 1) >> self.shift;
        (first < end).then(|| first..=end - 1)
    }

    /// How many blocks `client` holds.
    pub(super) fn count_of(&self, client: u128) -> u32 {
        let n = Cell::new(0);
        let hash = self.blocks.state().hash_one(client);
        self.blocks.find(BY_CLIENT, hash, |b| {
            n.set(n.get() + u32::from(b.client == client));
            false
        });
        n.get()
    }

    /// The first of `client`'s blocks (address index, number) for which
    /// `try_block` finds a port, and that port.
    pub(super) fn in_held(
        &self,
        client: u128,
        try_block: impl Fn(u16, u16) -> Option<u16>,
    ) -> Option<(u16, u16)> {
        let found = Cell::new(None);
        let hash = self.blocks.state().hash_one(client);
        self.blocks.find(BY_CLIENT, hash, |b| {
            if b.client != client {
                return false;
            }
            let port = try_block(b.pool_index, b.number);
            found.set(port.map(|p| (b.pool_index, p)));
            port.is_some()
        });
        found.get()
    }

    /// The address index of one of `client`'s blocks (paired pooling: its
    /// next block goes to the same address when it can).
    pub(super) fn address_of(&self, client: u128) -> Option<u16> {
        let hash = self.blocks.state().hash_one(client);
        let slot = self.blocks.find(BY_CLIENT, hash, |b| b.client == client)?;
        Some(self.blocks.slab.get(slot).pool_index)
    }

    /// Whether block `number` of address `idx` is held by some client.
    pub(super) fn is_held(&self, idx: u16, number: u16) -> bool {
        self.held
            .get(usize::from(idx))
            .and_then(Option::as_ref)
            .is_some_and(|bits| bits[usize::from(number) / 64] & (1 << (number % 64)) != 0)
    }

    /// A binding at `port` of address `idx` for `client`: its block gets
    /// one more binding, and is created if the client did not hold it yet
    /// (returned, for the log).
    pub(super) fn bind(&mut self, client: u128, idx: u16, port: u16) -> Option<BlockChange> {
        let number = self.number_of(port);
        if let Some(slot) = self.find(idx, number) {
            self.blocks.slab.get_mut(slot).bindings += 1;
            return None;
        }
        self.blocks.insert(Block {
            client,
            pool_index: idx,
            number,
            bindings: 1,
            links: [0; 2],
        });
        let words = (65536usize >> self.shift).div_ceil(64);
        if let Some(bits) = self.held.get_mut(usize::from(idx)) {
            bits.get_or_insert_with(|| vec![0; words].into_boxed_slice())
                [usize::from(number) / 64] |= 1 << (number % 64);
        }
        Some(self.change(client, idx, number))
    }

    /// A binding at `port` of address `idx` removed: its block is released
    /// with its last binding (returned, for the log).
    pub(super) fn unbind(&mut self, idx: u16, port: u16) -> Option<BlockChange> {
        let number = self.number_of(port);
        let slot = self.find(idx, number)?;
        let block = self.blocks.slab.get_mut(slot);
        block.bindings -= 1;
        if block.bindings > 0 {
            return None;
        }
        let removed = self.blocks.remove(slot, |_, _, _| {});
        if let Some(entry) = self.held.get_mut(usize::from(idx)) {
            if let Some(bits) = entry {
                bits[usize::from(number) / 64] &= !(1 << (number % 64));
                if bits.iter().all(|&w| w == 0) {
                    *entry = None;
                }
            }
        }
        Some(self.change(removed.client, idx, number))
    }

    /// Resize work of a timer wake-up (see [`Indexed::maintain`]).
    pub(super) fn maintain(&mut self, budget: usize) -> bool {
        self.blocks.maintain(budget)
    }

    /// Blocks held in all.
    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }

    fn find(&self, idx: u16, number: u16) -> Option<u32> {
        let hash = self.blocks.state().hash_one((idx, number));
        self.blocks.find(BY_NUMBER, hash, |b| {
            b.pool_index == idx && b.number == number
        })
    }

    fn change(&self, client: u128, idx: u16, number: u16) -> BlockChange {
        let ports = self.ports(number);
        BlockChange {
            client,
            pool_index: idx,
            first: *ports.start(),
            last: *ports.end(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> PortBlocks {
        PortBlocks::new(512, 2, FixedState::with_seed(1))
    }

    #[test]
    fn rfc7422_blocks_are_aligned_and_whole() {
        let b = blocks();
        assert_eq!(b.ports(120), 61440..=61951);
        assert_eq!(b.number_of(61951), 120);
        // 61001-65535: the first whole block starts at 61440.
        assert_eq!(b.numbers_in(&(61001..=65535)), Some(120..=127));
        assert_eq!(b.numbers_in(&(1024..=65535)), Some(2..=127));
        assert_eq!(b.numbers_in(&(61001..=61400)), None);
    }

    #[test]
    fn rfc7422_a_block_lives_while_it_has_bindings() {
        let mut b = blocks();
        let first = b.bind(7, 1, 61500).expect("a new block");
        assert_eq!((first.first, first.last, first.client), (61440, 61951, 7));
        assert!(b.is_held(1, 120));
        assert_eq!(b.bind(7, 1, 61501), None);
        assert_eq!(b.count_of(7), 1);
        assert_eq!(b.address_of(7), Some(1));
        b.bind(7, 1, 62000).expect("a second block");
        assert_eq!(b.count_of(7), 2);
        assert_eq!(b.count_of(8), 0);
        let found = b.in_held(7, |_, n| (n == 121).then_some(62001));
        assert_eq!(found, Some((1, 62001)));
        assert_eq!(b.unbind(1, 61500), None);
        assert_eq!(b.unbind(1, 61501), Some(first));
        assert!(!b.is_held(1, 120));
        assert_eq!(b.len(), 1);
        b.unbind(1, 62000).expect("released");
        assert!(b.held[1].is_none());
    }
}
