//! A hash index over the entries of a [`Slab`], chained through the entries
//! themselves, that resizes a few buckets at a time.
//!
//! Written by hand because the tables must never rehash a million entries on
//! the packet path: `std`'s `HashMap`, hashbrown and indexmap all move every
//! entry in the one call that makes them grow. Here a resize allocates the
//! new bucket array (zeroed pages from the allocator, not a pass over them)
//! and moves a few old buckets per insert or timer wake-up, as Redis's
//! dictionaries do; lookups meanwhile read whichever array holds the bucket.
//! A bucket costs 4 bytes, the link in the entry 4 more; the load is kept at
//! most one entry per bucket.

use super::slab::Slab;
use foldhash::fast::FixedState;

/// A slot plus one; 0 ends a chain.
pub(super) type Link = u32;

/// The link of `slot`.
pub(super) fn link_to(slot: u32) -> Link {
    slot + 1
}

/// An entry on one or more chains, each of its own index.
pub(super) trait Chained {
    /// The entry's link on chain `chain`.
    fn link(&self, chain: usize) -> Link;
    /// Sets the entry's link on chain `chain`.
    fn set_link(&mut self, chain: usize, link: Link);
    /// The hash of the entry's key for chain `chain`, equal to the hash the
    /// lookups compute from the same key.
    fn key_hash(&self, chain: usize, state: &FixedState) -> u64;
}

/// Buckets of a new or shrunk index, and the fewest kept.
const MIN_BUCKETS: usize = 1024;
/// Old entries moved per insert while resizing: the move ends long before
/// the index is full again (it starts at one entry per bucket and doubles).
const STEP_ON_INSERT: usize = 4;
/// An index shrinks once it holds fewer than one entry per `SPARSE` buckets.
const SPARSE: usize = 16;

/// One index: the key of chain `chain` of the entries, to their slot.
#[derive(Debug)]
pub(super) struct ChainIndex {
    chain: usize,
    state: FixedState,
    buckets: Box<[Link]>,
    /// The array being emptied into `buckets` while resizing, else empty.
    old: Box<[Link]>,
    /// Buckets of `old` below this one are already empty.
    moved: usize,
    len: usize,
}

fn zeroed(n: usize) -> Box<[Link]> {
    // `vec![0; n]` asks the allocator for zeroed memory (calloc): large
    // arrays come as fresh pages, not written here.
    vec![0; n].into_boxed_slice()
}

impl ChainIndex {
    /// An empty index of chain `chain`, hashing with `state`.
    pub(super) fn new(chain: usize, state: FixedState) -> Self {
        ChainIndex {
            chain,
            state,
            buckets: zeroed(MIN_BUCKETS),
            old: Box::default(),
            moved: 0,
            len: 0,
        }
    }

    /// The hash lookups and [`Chained::key_hash`] use.
    pub(super) fn state(&self) -> &FixedState {
        &self.state
    }

    /// Buckets held, both arrays while resizing.
    #[cfg(test)]
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len() + self.old.len()
    }

    /// Whether a resize is under way (more [`Self::maintain`] work is due).
    pub(super) fn resizing(&self) -> bool {
        !self.old.is_empty()
    }

    /// Which array and bucket hold the chain of `hash`.
    fn bucket(&self, hash: u64) -> (bool, usize) {
        if !self.old.is_empty() {
            let i = hash as usize & (self.old.len() - 1);
            if i >= self.moved {
                return (true, i);
            }
        }
        (false, hash as usize & (self.buckets.len() - 1))
    }

    fn head_mut(&mut self, hash: u64) -> &mut Link {
        match self.bucket(hash) {
            (true, i) => &mut self.old[i],
            (false, i) => &mut self.buckets[i],
        }
    }

    /// The first entry on the chain of `hash` that `eq` accepts.
    pub(super) fn find<T: Chained>(
        &self,
        slab: &Slab<T>,
        hash: u64,
        eq: impl Fn(&T) -> bool,
    ) -> Option<u32> {
        let mut link = match self.bucket(hash) {
            (true, i) => self.old[i],
            (false, i) => self.buckets[i],
        };
        while link != 0 {
            let slot = link - 1;
            let e = slab.get(slot);
            if eq(e) {
                return Some(slot);
            }
            link = e.link(self.chain);
        }
        None
    }

    /// Puts the entry in `slot` on its chain; grows the index (a step at a
    /// time) when it holds one entry per bucket.
    pub(super) fn insert<T: Chained>(&mut self, slab: &mut Slab<T>, slot: u32) {
        if self.old.is_empty() && self.len >= self.buckets.len() {
            self.start_resize(self.buckets.len() * 2);
        }
        self.step(slab, STEP_ON_INSERT);
        let hash = slab.get(slot).key_hash(self.chain, &self.state);
        let head = self.head_mut(hash);
        let next = std::mem::replace(head, link_to(slot));
        slab.get_mut(slot).set_link(self.chain, next);
        self.len += 1;
    }

    /// Takes the entry in `slot` off its chain.
    pub(super) fn remove<T: Chained>(&mut self, slab: &mut Slab<T>, slot: u32) {
        let e = slab.get(slot);
        let (hash, next) = (e.key_hash(self.chain, &self.state), e.link(self.chain));
        if self.rewrite(slab, hash, link_to(slot), next) {
            self.len -= 1;
        }
    }

    /// Before the slab moves the entry in `from` to `to`: the link that
    /// pointed to `from` points to `to`.
    pub(super) fn relocate<T: Chained>(&mut self, slab: &mut Slab<T>, from: u32, to: u32) {
        let hash = slab.get(from).key_hash(self.chain, &self.state);
        self.rewrite(slab, hash, link_to(from), link_to(to));
    }

    /// On the chain of `hash`, replaces the link `old` (in a bucket or an
    /// entry) with `new`. Returns whether it was there.
    fn rewrite<T: Chained>(&mut self, slab: &mut Slab<T>, hash: u64, old: Link, new: Link) -> bool {
        let chain = self.chain;
        let head = self.head_mut(hash);
        if *head == old {
            *head = new;
            return true;
        }
        let mut link = *head;
        while link != 0 {
            let e = slab.get_mut(link - 1);
            let next = e.link(chain);
            if next == old {
                e.set_link(chain, new);
                return true;
            }
            link = next;
        }
        false
    }

    fn start_resize(&mut self, buckets: usize) {
        self.old = std::mem::replace(&mut self.buckets, zeroed(buckets));
        self.moved = 0;
    }

    /// Moves old buckets into the new array: up to `budget` entries, and up
    /// to 16 times as many buckets (empty ones cost a read each).
    fn step<T: Chained>(&mut self, slab: &mut Slab<T>, budget: usize) {
        let end = (self.moved + 16 * budget).min(self.old.len());
        let mut entries = 0;
        while self.moved < end && entries < budget {
            let mut link = std::mem::take(&mut self.old[self.moved]);
            self.moved += 1;
            while link != 0 {
                let slot = link - 1;
                let e = slab.get(slot);
                let (hash, next) = (e.key_hash(self.chain, &self.state), e.link(self.chain));
                let i = hash as usize & (self.buckets.len() - 1);
                let head = std::mem::replace(&mut self.buckets[i], link);
                slab.get_mut(slot).set_link(self.chain, head);
                link = next;
                entries += 1;
            }
        }
        if self.moved == self.old.len() && !self.old.is_empty() {
            self.old = Box::default();
        }
    }

    /// Work for a timer wake-up: moves up to `budget` entries of a resize
    /// under way, or starts shrinking an index left sparse by expiry.
    /// Returns whether more is due.
    pub(super) fn maintain<T: Chained>(&mut self, slab: &mut Slab<T>, budget: usize) -> bool {
        self.shrink_if_sparse();
        self.step(slab, budget);
        // A shrink that just ended may leave the index sparse still (the
        // entries kept expiring meanwhile): the next one is due at once.
        self.shrink_if_sparse();
        self.resizing()
    }

    fn shrink_if_sparse(&mut self) {
        if self.old.is_empty()
            && self.buckets.len() > MIN_BUCKETS
            && self.len < self.buckets.len() / SPARSE
        {
            let target = (4 * self.len).next_power_of_two().max(MIN_BUCKETS);
            self.start_resize(target);
        }
    }
}
