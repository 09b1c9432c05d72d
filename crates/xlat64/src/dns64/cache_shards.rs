//! The reply cache ([`Dns64Cache`]) split in shards, each behind its own
//! lock and on its own cache lines, a key's shard chosen by a keyed hash:
//! DNS64 threads answering from the cache at the same time rarely wait
//! for each other (one lock for everything was the limit on two threads).
//!
//! Shared counters are bumped by what each operation changed in its shard
//! (hits, misses, inserts, evictions, entries), so `stats` shows the sum
//! of the shards without locking them all.
//!
//! A reload that changes what a reply holds starts a new epoch before it
//! empties the shards one by one: an insert checks the epoch under its
//! shard's lock, so a reply finished under the old settings is either
//! refused or stored before its shard is emptied, never after.

use super::Dns64Counters;
use foldhash::fast::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use xlat64_dns64::{CacheKey, CacheStats, Dns64Cache};

/// Shards at most.
const SHARDS: usize = 16;
/// Replies per shard at least: a smaller cache uses fewer shards (a power
/// of two), so that no shard is too small to hold a key that hashes to it.
const MIN_PER_SHARD: usize = 256;

/// One shard, alone on its cache lines (no false sharing between the
/// locks of two shards).
#[repr(align(128))]
struct Shard(Mutex<ShardState>);

struct ShardState {
    replies: Dns64Cache,
    /// The shard's counters and size as last added to the shared counters.
    published: (CacheStats, usize),
}

/// The sharded reply cache.
pub(super) struct ShardedCache {
    shards: Box<[Shard]>,
    /// The shards keys are spread over: the first `active` ones.
    active: AtomicUsize,
    /// Keyed: cache keys come from clients.
    hasher: RandomState,
    epoch: AtomicU64,
}

impl ShardedCache {
    /// A cache of `capacity` replies, over as many shards as it fills
    /// ([`active_for`]).
    pub(super) fn new(capacity: usize) -> Self {
        let active = active_for(capacity);
        ShardedCache {
            active: AtomicUsize::new(active),
            shards: (0..SHARDS)
                .map(|i| {
                    Shard(Mutex::new(ShardState {
                        replies: Dns64Cache::new(share(capacity, active, i)),
                        published: (CacheStats::default(), 0),
                    }))
                })
                .collect(),
            hasher: RandomState::default(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The epoch replies are stored under now.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, ShardState> {
        let active = self.active.load(Ordering::Relaxed);
        let i = self.hasher.hash_one(key) as usize & (active - 1);
        lock(&self.shards[i])
    }

    /// The fresh reply for `key` written into `out`, ready for the client
    /// whose query is `query` ([`Dns64Cache::get_hit_into`]); true on a hit.
    /// A miss is not counted (the full path's [`Self::get`] does).
    pub(super) fn get_hit_into(
        &self,
        key: &CacheKey,
        query: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
        counters: &Dns64Counters,
    ) -> bool {
        let mut shard = self.shard(key);
        let hit = shard.replies.get_hit_into(key, query, now, out);
        if hit {
            publish(&mut shard, counters);
        }
        hit
    }

    /// The fresh reply for `key`, ready for the client whose query is
    /// `query` ([`Dns64Cache::get`]).
    pub(super) fn get(
        &self,
        key: &CacheKey,
        query: &[u8],
        now: Instant,
        counters: &Dns64Counters,
    ) -> Option<Vec<u8>> {
        self.in_shard(key, counters, |replies| replies.get(key, query, now))
    }

    /// An expired reply for `key` within the stale window, every TTL 30 s
    /// ([`Dns64Cache::get_stale`], RFC 8767): when every upstream failed.
    pub(super) fn get_stale(
        &self,
        key: &CacheKey,
        query: &[u8],
        now: Instant,
        counters: &Dns64Counters,
    ) -> Option<Vec<u8>> {
        self.in_shard(key, counters, |replies| replies.get_stale(key, query, now))
    }

    /// `f` on the replies of `key`'s shard, its counter changes published.
    fn in_shard<T>(
        &self,
        key: &CacheKey,
        counters: &Dns64Counters,
        f: impl FnOnce(&mut Dns64Cache) -> T,
    ) -> T {
        let mut shard = self.shard(key);
        let got = f(&mut shard.replies);
        publish(&mut shard, counters);
        got
    }

    /// Keeps replies `stale_for` past their TTL (serve-stale; zero: off).
    pub(super) fn set_stale_for(&self, stale_for: std::time::Duration, counters: &Dns64Counters) {
        self.each(counters, |_, replies| {
            replies.set_stale_for(stale_for);
            0
        });
    }

    /// Stores `reply` for `key` if it was made in the current `epoch`.
    pub(super) fn insert(
        &self,
        epoch: u64,
        key: CacheKey,
        reply: &[u8],
        now: Instant,
        counters: &Dns64Counters,
    ) {
        let mut shard = self.shard(&key);
        if self.epoch() != epoch {
            return;
        }
        shard.replies.insert(key, reply.to_vec(), now);
        publish(&mut shard, counters);
    }

    /// Empties every shard (`flush-cache`, or with `new_epoch` a reload
    /// that changed what replies hold); returns how many replies there
    /// were.
    pub(super) fn clear(&self, new_epoch: bool, counters: &Dns64Counters) -> usize {
        if new_epoch {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.each(counters, |_, replies| replies.clear())
    }

    /// Sizes the cache to `capacity` replies, evicting what expires first;
    /// returns how many were evicted. When the size calls for another
    /// number of shards, keys would move between them: the cache is
    /// emptied (all counted as evicted).
    pub(super) fn set_capacity(&self, capacity: usize, counters: &Dns64Counters) -> usize {
        let active = active_for(capacity);
        let moved = match self.active.swap(active, Ordering::Relaxed) == active {
            true => 0,
            false => self.each(counters, |_, replies| replies.clear()),
        };
        moved
            + self.each(counters, |i, replies| {
                replies.set_capacity(share(capacity, active, i))
            })
    }

    /// Replies held.
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).replies.len()).sum()
    }

    /// Runs `f` on every shard; the sum of what it returns.
    fn each(&self, counters: &Dns64Counters, f: impl Fn(usize, &mut Dns64Cache) -> usize) -> usize {
        self.shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut shard = lock(s);
                let n = f(i, &mut shard.replies);
                publish(&mut shard, counters);
                n
            })
            .sum()
    }
}

/// The shards a cache of `capacity` replies uses: a power of two from 1
/// to [`SHARDS`], each with at least [`MIN_PER_SHARD`] replies if it can.
fn active_for(capacity: usize) -> usize {
    let fits = (capacity / MIN_PER_SHARD).clamp(1, SHARDS);
    1 << fits.ilog2()
}

/// Shard `i`'s part of `capacity` over the first `n` shards: the parts
/// add up to `capacity` exactly, so the cache never holds more than
/// `cache-size`; the other shards get none.
fn share(capacity: usize, n: usize, i: usize) -> usize {
    match i < n {
        true => capacity / n + usize::from(i < capacity % n),
        false => 0,
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, ShardState> {
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds what changed in `shard` since it was last published to the
/// shared counters.
fn publish(shard: &mut ShardState, c: &Dns64Counters) {
    let (stats, len) = (shard.replies.stats(), shard.replies.len());
    let (was, was_len) = shard.published;
    for (counter, now, before) in [
        (&c.cache_hits, stats.hits, was.hits),
        (&c.cache_misses, stats.misses, was.misses),
        (&c.cache_inserts, stats.inserts, was.inserts),
        (&c.cache_evictions, stats.evictions, was.evictions),
        (&c.cache_stale_served, stats.stale_served, was.stale_served),
    ] {
        if now != before {
            counter.fetch_add(now.wrapping_sub(before), Ordering::Relaxed);
        }
    }
    if len != was_len {
        // Two's complement: a shrinking shard subtracts.
        let delta = (len as u64).wrapping_sub(was_len as u64);
        c.cache_entries.fetch_add(delta, Ordering::Relaxed);
    }
    shard.published = (stats, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use xlat64_dns64::hickory_proto::op::{Message, MessageType, ResponseCode};
    use xlat64_dns64::hickory_proto::rr::rdata::AAAA;
    use xlat64_dns64::hickory_proto::rr::{Name, RData, Record, RecordType};
    use xlat64_dns64::parse_query;

    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true);
        m.add_query(xlat64_dns64::hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::AAAA,
        ));
        m.to_vec().unwrap()
    }

    fn reply(name: &str) -> Vec<u8> {
        let mut m = Message::from_vec(&query(name)).unwrap();
        m.set_message_type(MessageType::Response)
            .set_response_code(ResponseCode::NoError);
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            300,
            RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
        ));
        m.to_vec().unwrap()
    }

    fn key(name: &str) -> CacheKey {
        CacheKey::new(&parse_query(&query(name)).unwrap(), true)
    }

    #[test]
    fn shards_sum_up_in_the_counters_and_hold_their_share() {
        let c = Dns64Counters::default();
        let cache = ShardedCache::new(4096);
        assert_eq!(cache.active.load(Ordering::Relaxed), SHARDS);
        let t0 = Instant::now();
        let names: Vec<String> = (0..500).map(|i| format!("n{i}.example.")).collect();
        for n in &names {
            cache.insert(cache.epoch(), key(n), &reply(n), t0, &c);
        }
        let mut out = Vec::new();
        for n in &names {
            assert!(
                cache.get_hit_into(&key(n), &query(n), t0, &mut out, &c),
                "{n}"
            );
        }
        assert!(cache
            .get(&key("other."), &query("other."), t0, &c)
            .is_none());
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(load(&c.cache_inserts), 500);
        assert_eq!(load(&c.cache_hits), 500);
        assert_eq!(load(&c.cache_misses), 1);
        assert_eq!(load(&c.cache_entries), 500);
        assert_eq!(cache.len(), 500);
        // Growing to 8192 keeps the shards and the replies.
        assert_eq!(cache.set_capacity(8192, &c), 0);
        assert_eq!(cache.len(), 500);
        // To 20: one shard, so the cache is emptied; the gauge follows.
        assert_eq!(cache.set_capacity(20, &c), 500);
        assert_eq!(cache.active.load(Ordering::Relaxed), 1);
        assert_eq!(load(&c.cache_entries), 0);
        for n in &names[..30] {
            cache.insert(cache.epoch(), key(n), &reply(n), t0, &c);
        }
        assert_eq!(cache.len(), 20, "exactly cache-size");
        assert_eq!(load(&c.cache_entries), 20);
        assert_eq!(load(&c.cache_entries), cache.len() as u64);
        let held = cache.len();
        assert_eq!(cache.clear(false, &c), held);
        assert_eq!(load(&c.cache_entries), 0);
    }

    #[test]
    fn shard_counts_and_shares() {
        assert_eq!(
            [0, 10, 511, 512, 1024, 3000, 4096, 10_000, 1 << 20].map(active_for),
            [1, 1, 1, 2, 4, 8, 16, 16, 16]
        );
        for (capacity, n) in [(10, 1), (10_000, 16), (20, 16)] {
            let sum: usize = (0..SHARDS).map(|i| share(capacity, n, i)).sum();
            assert_eq!(sum, capacity);
        }
        assert_eq!(share(100, 4, 5), 0);
    }

    #[test]
    fn a_reply_of_an_old_epoch_is_not_stored() {
        let c = Dns64Counters::default();
        let cache = ShardedCache::new(10);
        assert_eq!(cache.active.load(Ordering::Relaxed), 1);
        let old = cache.epoch();
        cache.insert(old, key("a."), &reply("a."), Instant::now(), &c);
        assert_eq!(cache.clear(true, &c), 1);
        cache.insert(old, key("b."), &reply("b."), Instant::now(), &c);
        assert_eq!(cache.len(), 0);
        cache.insert(cache.epoch(), key("b."), &reply("b."), Instant::now(), &c);
        assert_eq!(cache.len(), 1);
        assert_eq!(c.cache_entries.load(Ordering::Relaxed), 1);
    }
}
