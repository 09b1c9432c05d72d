//! A [`Slab`] of entries with `N` hash indexes over them: the one place
//! that keeps the chains right when entries come and go.

use super::chain_index::{ChainIndex, Chained};
use super::slab::Slab;
use foldhash::fast::FixedState;

#[derive(Debug)]
pub(super) struct Indexed<T, const N: usize> {
    pub(super) slab: Slab<T>,
    indexes: [ChainIndex; N],
}

impl<T: Chained, const N: usize> Indexed<T, N> {
    /// Empty; every index hashes with `state`.
    pub(super) fn new(state: FixedState) -> Self {
        Indexed {
            slab: Slab::new(),
            indexes: std::array::from_fn(|chain| ChainIndex::new(chain, state.clone())),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(super) fn state(&self) -> &FixedState {
        self.indexes[0].state()
    }

    /// The first entry on chain `chain` with hash `hash` that `eq` accepts.
    pub(super) fn find(&self, chain: usize, hash: u64, eq: impl Fn(&T) -> bool) -> Option<u32> {
        self.indexes[chain].find(&self.slab, hash, eq)
    }

    /// Stores `v` and puts it on every chain; returns its slot.
    pub(super) fn insert(&mut self, v: T) -> u32 {
        let slot = self.slab.push(v);
        for index in &mut self.indexes {
            index.insert(&mut self.slab, slot);
        }
        slot
    }

    /// Removes the entry in `slot` from every chain and the slab. When the
    /// last entry moves into `slot`, `moving(slab, from, to)` is called
    /// first, for links the caller keeps itself.
    pub(super) fn remove(&mut self, slot: u32, moving: impl FnOnce(&mut Slab<T>, u32, u32)) -> T {
        for index in &mut self.indexes {
            index.remove(&mut self.slab, slot);
        }
        let last = (self.slab.len() - 1) as u32;
        if slot != last {
            for index in &mut self.indexes {
                index.relocate(&mut self.slab, last, slot);
            }
            moving(&mut self.slab, last, slot);
        }
        self.slab.swap_remove(slot)
    }

    /// Resize work of a timer wake-up, up to `budget` buckets per index.
    /// Returns whether more is due.
    pub(super) fn maintain(&mut self, budget: usize) -> bool {
        let mut due = false;
        for index in &mut self.indexes {
            due |= index.maintain(&mut self.slab, budget);
        }
        due
    }

    /// Buckets of all indexes (tests).
    #[cfg(test)]
    pub(super) fn buckets(&self) -> usize {
        self.indexes.iter().map(ChainIndex::buckets).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain_index::Link;
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    /// An entry with two keys, one of them often shared (like the
    /// filtering chain of sessions).
    #[derive(Debug)]
    struct Item {
        key: u32,
        group: u8,
        links: [Link; 2],
    }

    impl Chained for Item {
        fn link(&self, chain: usize) -> Link {
            self.links[chain]
        }
        fn set_link(&mut self, chain: usize, link: Link) {
            self.links[chain] = link;
        }
        fn key_hash(&self, chain: usize, state: &FixedState) -> u64 {
            match chain {
                0 => state.hash_one(self.key),
                _ => state.hash_one(self.group),
            }
        }
    }

    fn find(t: &Indexed<Item, 2>, key: u32) -> Option<u32> {
        let hash = t.state().hash_one(key);
        t.find(0, hash, |i| i.key == key)
    }

    fn check(t: &Indexed<Item, 2>, model: &HashMap<u32, u8>) {
        assert_eq!(t.len(), model.len());
        for (&key, &group) in model {
            let slot = find(t, key).expect("every entry is found");
            assert_eq!(t.slab.get(slot).group, group);
            let hash = t.state().hash_one(group);
            assert!(t.find(1, hash, |i| i.group == group).is_some());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Entries stay findable through both indexes while they grow,
        /// shrink and resize a step at a time, and entries move slots.
        #[test]
        fn indexes_follow_inserts_removals_and_resizes(
            ops in proptest::collection::vec((any::<bool>(), 0u32..20_000, 0u8..4, 1usize..3000), 1..24),
        ) {
            let mut t: Indexed<Item, 2> = Indexed::new(FixedState::with_seed(7));
            let mut model = HashMap::new();
            for (insert, start, group, count) in ops {
                for key in start..start + count as u32 {
                    if insert {
                        if let std::collections::hash_map::Entry::Vacant(e) = model.entry(key) {
                            e.insert(group);
                            t.insert(Item { key, group, links: [0; 2] });
                        }
                    } else if model.remove(&key).is_some() {
                        let slot = find(&t, key).unwrap();
                        prop_assert_eq!(t.remove(slot, |_, _, _| {}).key, key);
                    }
                }
                check(&t, &model);
                t.maintain(500);
                check(&t, &model);
            }
            while t.maintain(500) {}
            let keys: Vec<u32> = model.keys().copied().collect();
            for key in keys {
                let slot = find(&t, key).unwrap();
                t.remove(slot, |_, _, _| {});
                model.remove(&key);
            }
            while t.maintain(500) {}
            check(&t, &model);
            prop_assert_eq!(t.buckets(), 2 * 1024);
        }
    }
}
