//! Dense storage of table entries in fixed-size chunks.
//!
//! Entries are addressed by slot (`u32`); slots `0..len` are all live, so a
//! listing page is a range of slots found in O(1). Removing an entry moves
//! the last one into its slot (the caller first rewrites every link that
//! pointed to the last slot). Storage grows and shrinks a chunk at a time:
//! never a reallocation that copies every entry on the packet path, and the
//! memory of a flood is given back chunk by chunk as it expires.

/// log2 of the entries per chunk.
const CHUNK_BITS: usize = 12;
/// Entries per chunk: 4096 (256 KiB of sessions, 160 KiB of bindings).
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;
const MASK: usize = CHUNK - 1;

/// Entries `0..len`, in chunks of [`CHUNK`].
#[derive(Debug)]
pub(super) struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Entries the chunks have room for.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// The entry in `slot`, which must be below [`Self::len`].
    pub(super) fn get(&self, slot: u32) -> &T {
        let s = slot as usize;
        &self.chunks[s >> CHUNK_BITS][s & MASK]
    }

    /// The entry in `slot`, which must be below [`Self::len`].
    pub(super) fn get_mut(&mut self, slot: u32) -> &mut T {
        let s = slot as usize;
        &mut self.chunks[s >> CHUNK_BITS][s & MASK]
    }

    /// Appends `v`; returns its slot. The caller keeps the length below
    /// `u32::MAX` (the tables hold at most a few million entries).
    pub(super) fn push(&mut self, v: T) -> u32 {
        let c = self.len >> CHUNK_BITS;
        if c == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[c].push(v);
        self.len += 1;
        (self.len - 1) as u32
    }

    /// Removes the entry in `slot`; the last entry moves into it. A second
    /// empty chunk at the end is freed (one is kept, so that an entry
    /// created and removed at a chunk boundary does not allocate each time).
    pub(super) fn swap_remove(&mut self, slot: u32) -> T {
        let s = slot as usize;
        let last = self.len - 1;
        let tail = self.chunks[last >> CHUNK_BITS]
            .pop()
            .expect("the last chunk holds the last entry");
        self.len -= 1;
        let removed = if s == last {
            tail
        } else {
            std::mem::replace(&mut self.chunks[s >> CHUNK_BITS][s & MASK], tail)
        };
        let needed = self.len.div_ceil(CHUNK);
        if self.chunks.len() > needed + 1 {
            self.chunks.truncate(needed + 1);
            if self.chunks.len() < self.chunks.capacity() / 4 {
                self.chunks.shrink_to_fit();
            }
        }
        removed
    }

    /// The entries in slots `start..end` (clamped to the length).
    pub(super) fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &T> {
        let end = end.min(self.len);
        (start.min(end)..end).map(|s| &self.chunks[s >> CHUNK_BITS][s & MASK])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_remove_moves_the_last_entry_and_frees_chunks() {
        let mut s = Slab::new();
        for i in 0..3 * CHUNK as u32 {
            assert_eq!(s.push(i), i);
        }
        assert_eq!(s.capacity(), 3 * CHUNK);
        assert_eq!(s.swap_remove(5), 5);
        assert_eq!(*s.get(5), 3 * CHUNK as u32 - 1);
        assert_eq!(s.len(), 3 * CHUNK - 1);
        while s.len() > 10 {
            s.swap_remove(0);
        }
        // One spare chunk kept beyond the one in use.
        assert_eq!(s.capacity(), 2 * CHUNK);
        assert_eq!(s.range(8, 100).count(), 2);
        while s.len() > 0 {
            s.swap_remove(0);
        }
        assert_eq!(s.capacity(), CHUNK);
    }
}
