//! A cache of finished replies (upstream answers passed through, and
//! synthesized ones), bounded in entries. Pure: every call takes `now`.
//!
//! - Positive answers live for the smallest TTL of their records; negative
//!   ones (NXDOMAIN, NODATA) for min(SOA TTL, SOA MINIMUM) of the SOA in the
//!   authority section, and are not cached without one (RFC 2308 §5).
//!   Errors other than NXDOMAIN, and truncated answers, are not cached.
//! - Served entries have every TTL decreased by the entry's age (RFC 1035
//!   §7.4 / RFC 2308 §5), the client's id, and its spelling of the question
//!   name (clients that randomize case, draft-vixie-dnsext-dns0x20).
//! - Replies are kept as bytes with the offsets of their TTL fields found
//!   once, so a hit is a copy and a few writes, no decoding.
//! - Full: expired entries go first, then the one closest to expiry (a
//!   min-heap on the expiry time with lazy deletion: O(log n) per insert).

use crate::query::ClientQuery;
use foldhash::fast::RandomState;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Longest time a positive answer is kept (Unbound's and BIND's default).
pub const MAX_POSITIVE_TTL: u32 = 86_400;
/// Longest time a negative answer is kept (RFC 2308 §5 suggests 1 to 3 h).
pub const MAX_NEGATIVE_TTL: u32 = 10_800;
/// The TTL of every record of a reply served stale (RFC 8767 §4: 30 s).
pub const STALE_TTL: u32 = 30;
/// How long a client waits for a fresh answer before a stale one is sent
/// while the resolution goes on (RFC 8767 §5, its client response timer:
/// 1.8 s, within the usual stub resolver's wait).
pub const STALE_ANSWER_AFTER: Duration = Duration::from_millis(1800);

const HEADER_LEN: usize = 12;
const TYPE_SOA: u16 = 6;
const TYPE_OPT: u16 = 41;
/// The EDNS Client Subnet option's code (RFC 7871 §6).
const EDNS_CLIENT_SUBNET: u16 = 8;

/// What a reply is cached under: the question (name in lowercase wire
/// form, type, class) and every query bit that changes the answer (DO, CD,
/// RD, EDNS present), plus whether the client gets synthesized answers.
///
/// Held as one byte string, `flags, qtype, qclass, labels...` (the labels
/// as length-prefixed lowercase bytes, no root byte), so that the key of a
/// decoded query ([`CacheKey::new`]) and the key read straight from a
/// datagram ([`CacheKey::set_from_wire`]) are the same bytes, and a lookup
/// can reuse one buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Vec<u8>);

/// Bits of the key's flags byte.
const KEY_DO: u8 = 1;
const KEY_CD: u8 = 1 << 1;
const KEY_RD: u8 = 1 << 2;
const KEY_EDNS: u8 = 1 << 3;
const KEY_SYNTHESIZE: u8 = 1 << 4;
/// Flags, qtype and qclass come before the name.
const KEY_FIXED: usize = 5;
/// EDNS option code of Client Subnet (RFC 7871), whose contents the
/// decoder checks: such queries take the decoding path.
const OPTION_CLIENT_SUBNET: u16 = 8;

impl CacheKey {
    /// The key of `query` for a client that does (`synthesize`) or does not
    /// get synthesized answers.
    pub fn new(query: &ClientQuery, synthesize: bool) -> Self {
        let q = query.question();
        let m = query.message();
        let flags = key_flags(
            query.dnssec_ok(),
            m.checking_disabled(),
            m.recursion_desired(),
            m.extensions().is_some(),
            synthesize,
        );
        let mut key = Vec::with_capacity(64);
        key.push(flags);
        key.extend_from_slice(&u16::from(q.query_type()).to_be_bytes());
        key.extend_from_slice(&u16::from(q.query_class()).to_be_bytes());
        for label in q.name().iter() {
            // A label is at most 63 bytes in a decoded name.
            key.push(label.len().min(255) as u8);
            key.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        CacheKey(key)
    }

    /// An empty key, to be filled by [`CacheKey::set_from_wire`]; its buffer
    /// is kept between calls.
    pub fn with_capacity() -> Self {
        CacheKey(Vec::with_capacity(KEY_FIXED + 255))
    }

    /// Rewrites this key into that of the client query in `bytes`, read
    /// from the bytes without decoding them (the cache-hit path), and
    /// returns the client's UDP payload limit (as
    /// [`ClientQuery::udp_payload_limit`]).
    ///
    /// Only the plainest queries are read this way: QR=0, opcode QUERY,
    /// one question with an uncompressed name of at most 255 bytes, no
    /// answer or authority records, at most an OPT record (root owner,
    /// version 0, no extended rcode, options well formed and no Client
    /// Subnet), nothing after it. For anything else, `None`: the caller
    /// decodes the query with [`parse_query`](crate::parse_query), which
    /// decides about errors. Whenever this returns `Some`, `parse_query`
    /// accepts the same bytes and [`CacheKey::new`] gives the same key.
    pub fn set_from_wire(&mut self, bytes: &[u8], synthesize: bool) -> Option<usize> {
        let key = &mut self.0;
        key.clear();
        let header = bytes.get(..HEADER_LEN)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let opcode = (header[2] >> 3) & 0x0f;
        if header[2] & 0x80 != 0 || opcode != 0 {
            return None;
        }
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
            return None;
        }
        key.extend_from_slice(&[0; KEY_FIXED]);
        let mut at = HEADER_LEN;
        loop {
            let len = usize::from(*bytes.get(at)?);
            if len == 0 {
                at += 1;
                break;
            }
            // Compression pointers and extended label types: decode instead.
            if len > 63 {
                return None;
            }
            let label = bytes.get(at + 1..at + 1 + len)?;
            // The name's wire length, root byte included (RFC 1035 §3.1).
            if key.len() - KEY_FIXED + 1 + len + 1 > 255 {
                return None;
            }
            key.push(len as u8);
            key.extend(label.iter().map(u8::to_ascii_lowercase));
            at += 1 + len;
        }
        let fixed = bytes.get(at..at + 4)?;
        key[1..KEY_FIXED].copy_from_slice(fixed);
        at += 4;
        let (mut edns, mut dnssec_ok, mut limit) = (false, false, 512);
        if count(10) == 1 {
            // The OPT pseudo-record (RFC 6891 §6.1.2): root owner.
            if *bytes.get(at)? != 0 {
                return None;
            }
            let opt = bytes.get(at + 1..at + 11)?;
            let rtype = u16::from_be_bytes([opt[0], opt[1]]);
            let payload = u16::from_be_bytes([opt[2], opt[3]]);
            let (ext_rcode, version) = (opt[4], opt[5]);
            let rdlen = usize::from(u16::from_be_bytes([opt[8], opt[9]]));
            if rtype != TYPE_OPT || ext_rcode != 0 || version != 0 {
                return None;
            }
            let mut options = bytes.get(at + 11..at + 11 + rdlen)?;
            while !options.is_empty() {
                let head = options.get(..4)?;
                let code = u16::from_be_bytes([head[0], head[1]]);
                let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                if code == OPTION_CLIENT_SUBNET {
                    return None;
                }
                options = options.get(4 + len..)?;
            }
            edns = true;
            dnssec_ok = opt[6] & 0x80 != 0;
            limit = payload.clamp(512, crate::UDP_PAYLOAD_LIMIT);
            at += 11 + rdlen;
        }
        if at != bytes.len() {
            return None;
        }
        key[0] = key_flags(
            dnssec_ok,
            header[3] & 0x10 != 0,
            header[2] & 0x01 != 0,
            edns,
            synthesize,
        );
        Some(usize::from(limit))
    }
}

fn key_flags(dnssec_ok: bool, cd: bool, rd: bool, edns: bool, synthesize: bool) -> u8 {
    let bit = |on: bool, bit: u8| if on { bit } else { 0 };
    bit(dnssec_ok, KEY_DO)
        | bit(cd, KEY_CD)
        | bit(rd, KEY_RD)
        | bit(edns, KEY_EDNS)
        | bit(synthesize, KEY_SYNTHESIZE)
}

/// Counters of a [`Dns64Cache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing (or an expired entry).
    pub misses: u64,
    /// Replies stored.
    pub inserts: u64,
    /// Entries removed to make room, expired or not.
    pub evictions: u64,
    /// Expired replies served because every upstream failed (RFC 8767).
    pub stale_served: u64,
}

struct Entry {
    bytes: Vec<u8>,
    ttl_offsets: Vec<usize>,
    stored: Instant,
    expires: Instant,
    generation: u64,
}

/// The reply cache.
pub struct Dns64Cache {
    capacity: usize,
    /// How long past its TTL a reply is kept to be served stale (RFC 8767
    /// "max stale timer"); zero: not at all.
    stale_for: Duration,
    /// Keyed with a random seed per cache: names come from clients.
    entries: HashMap<CacheKey, Entry, RandomState>,
    by_expiry: BinaryHeap<Reverse<(Instant, u64, CacheKey)>>,
    next_generation: u64,
    stats: CacheStats,
}

impl Dns64Cache {
    /// A cache holding at most `capacity` replies; 0 caches nothing.
    pub fn new(capacity: usize) -> Self {
        Dns64Cache {
            capacity,
            stale_for: Duration::ZERO,
            entries: HashMap::with_capacity_and_hasher(
                capacity.min(1 << 16),
                RandomState::default(),
            ),
            by_expiry: BinaryHeap::new(),
            next_generation: 0,
            stats: CacheStats::default(),
        }
    }

    /// Forgets every reply (the counters stay); returns how many there were.
    pub fn clear(&mut self) -> usize {
        let held = self.entries.len();
        self.entries = HashMap::with_hasher(RandomState::default());
        self.by_expiry = BinaryHeap::new();
        held
    }

    /// Makes the cache hold at most `capacity` replies from now on (a
    /// configuration reload), keeping what fits: when it holds more, the
    /// entries that expire first go (expired ones before all others), as
    /// [`Dns64Cache::insert`] evicts, and each is counted as an eviction.
    /// 0 empties the cache and turns it off; a later non-zero capacity turns
    /// it on again. Returns how many replies were evicted.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        self.capacity = capacity;
        let mut evicted = 0;
        while self.entries.len() > capacity && self.evict_one() {
            evicted += 1;
        }
        if capacity == 0 {
            // Give the memory back as well.
            self.clear();
        } else if self.by_expiry.len() > 2 * capacity + 64 {
            self.rebuild_heap();
        }
        evicted
    }

    /// Replies held (some may have expired and not been removed yet).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The cached reply for `key`, ready to send to the client whose query
    /// is `query_bytes`: its id and question name spelling, TTLs decreased
    /// by the age of the entry.
    pub fn get(&mut self, key: &CacheKey, query_bytes: &[u8], now: Instant) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        if self.get_hit_into(key, query_bytes, now, &mut out) {
            return Some(out);
        }
        self.stats.misses += 1;
        if self
            .entries
            .get(key)
            .is_some_and(|e| now >= e.expires + self.stale_for)
        {
            self.entries.remove(key);
        }
        None
    }

    /// Keeps replies up to `stale_for` past their TTL, to be served by
    /// [`Dns64Cache::get_stale`] when every upstream fails (RFC 8767 §5,
    /// the "max stale timer"; the RFC suggests 1 to 3 days). Zero: off.
    pub fn set_stale_for(&mut self, stale_for: Duration) {
        self.stale_for = stale_for;
    }

    /// An expired reply for `key`, no older than the stale window, ready
    /// for the client whose query is `query_bytes`, every TTL set to
    /// [`STALE_TTL`] (RFC 8767 §4): for when every upstream failed.
    pub fn get_stale(
        &mut self,
        key: &CacheKey,
        query_bytes: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        let entry = self.entries.get(key)?;
        if now < entry.expires || now >= entry.expires + self.stale_for {
            return None;
        }
        let mut out = entry.bytes.clone();
        for &at in &entry.ttl_offsets {
            if let Some(field) = out.get_mut(at..at + 4) {
                field.copy_from_slice(&STALE_TTL.to_be_bytes());
            }
        }
        copy_question_name(&mut out, query_bytes);
        if let (Some(dst), Some(src)) = (out.get_mut(..2), query_bytes.get(..2)) {
            dst.copy_from_slice(src);
        }
        self.stats.stale_served += 1;
        Some(out)
    }

    /// As [`Dns64Cache::get`], but the reply is written into `out` (cleared
    /// first; no allocation once `out` is large enough), and a miss is
    /// neither counted nor removes an expired entry: the caller then takes
    /// the full path, whose [`Dns64Cache::get`] does both. True on a hit.
    pub fn get_hit_into(
        &mut self,
        key: &CacheKey,
        query_bytes: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if now >= entry.expires {
            return false;
        }
        self.stats.hits += 1;
        let age = u32::try_from(now.saturating_duration_since(entry.stored).as_secs())
            .unwrap_or(u32::MAX);
        out.extend_from_slice(&entry.bytes);
        if age > 0 {
            for &at in &entry.ttl_offsets {
                if let Some(field) = out.get_mut(at..at + 4) {
                    let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                    field.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
                }
            }
        }
        copy_question_name(out, query_bytes);
        if let (Some(dst), Some(src)) = (out.get_mut(..2), query_bytes.get(..2)) {
            dst.copy_from_slice(src);
        }
        true
    }

    /// Stores `reply` (a complete response to the query of `key`) for its
    /// TTL. Returns false when it is not cacheable or the cache is off.
    pub fn insert(&mut self, key: CacheKey, reply: Vec<u8>, now: Instant) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let Some(Cacheable { ttl, ttl_offsets }) = cacheable(&reply) else {
            return false;
        };
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                if !self.evict_one() {
                    break;
                }
            }
        }
        let expires = now + Duration::from_secs(u64::from(ttl));
        let generation = self.next_generation;
        self.next_generation += 1;
        self.by_expiry
            .push(Reverse((expires, generation, key.clone())));
        self.entries.insert(
            key,
            Entry {
                bytes: reply,
                ttl_offsets,
                stored: now,
                expires,
                generation,
            },
        );
        self.stats.inserts += 1;
        // Replaced and expired-on-lookup entries leave stale heap items.
        if self.by_expiry.len() > 2 * self.capacity + 64 {
            self.rebuild_heap();
        }
        true
    }

    /// Removes the entry expiring first. False when there is none.
    fn evict_one(&mut self) -> bool {
        while let Some(Reverse((_, generation, key))) = self.by_expiry.pop() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
                self.stats.evictions += 1;
                return true;
            }
        }
        false
    }

    fn rebuild_heap(&mut self) {
        self.by_expiry = self
            .entries
            .iter()
            .map(|(k, e)| Reverse((e.expires, e.generation, k.clone())))
            .collect();
    }
}

/// How long a reply may be cached, and where its TTL fields are.
struct Cacheable {
    ttl: u32,
    ttl_offsets: Vec<usize>,
}

/// Reads a response's records without decoding them: `None` when it is not
/// cacheable (not a response, TC=1, an rcode other than NOERROR and
/// NXDOMAIN, an extended rcode, malformed, a TTL of 0, or negative without
/// an SOA).
fn cacheable(bytes: &[u8]) -> Option<Cacheable> {
    let header = bytes.get(..HEADER_LEN)?;
    let (flags, rcode) = (header[2], header[3] & 0x0f);
    if flags & 0x80 == 0 || flags & 0x02 != 0 || !(rcode == 0 || rcode == 3) {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    if count(4) != 1 {
        return None;
    }
    let (answers, authority, additional) = (count(6), count(8), count(10));
    let mut at = skip_name(bytes, HEADER_LEN)? + 4;
    let mut ttl_offsets = Vec::with_capacity(answers + authority + additional);
    let mut min_ttl = u32::MAX;
    let mut negative_ttl = None;
    for i in 0..answers + authority + additional {
        at = skip_name(bytes, at)?;
        let fixed = bytes.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = bytes.get(at + 10..at + 10 + rdlen)?;
        if rtype == TYPE_OPT {
            // Extended rcode bits (RFC 6891 §6.1.3): an error, not cached.
            // An answer for the client's subnet only (RFC 7871 §7.3.1: a
            // SCOPE PREFIX-LENGTH above 0) would be served to others.
            if fixed[4] != 0 || scoped_to_a_subnet(rdata) {
                return None;
            }
        } else {
            ttl_offsets.push(at + 4);
            min_ttl = min_ttl.min(ttl);
            let in_authority = i >= answers && i < answers + authority;
            if rtype == TYPE_SOA && in_authority && rdlen >= 22 {
                let m = &rdata[rdlen - 4..];
                let minimum = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
                negative_ttl = Some(ttl.min(minimum));
            }
        }
        at += 10 + rdlen;
    }
    if at != bytes.len() {
        return None;
    }
    let ttl = if rcode == 3 || answers == 0 {
        negative_ttl?.min(MAX_NEGATIVE_TTL)
    } else {
        min_ttl.min(MAX_POSITIVE_TTL)
    };
    (ttl > 0).then_some(Cacheable { ttl, ttl_offsets })
}

/// Whether OPT record data `options` holds an EDNS Client Subnet option
/// (code 8) with a SCOPE PREFIX-LENGTH above 0: the answer holds for the
/// client's network only (RFC 7871 §6, §7.3.1). Malformed options count as
/// scoped: not cached.
fn scoped_to_a_subnet(mut options: &[u8]) -> bool {
    while options.len() >= 4 {
        let code = u16::from_be_bytes([options[0], options[1]]);
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        let Some(data) = options.get(4..4 + len) else {
            return true;
        };
        if code == EDNS_CLIENT_SUBNET && data.get(3).is_none_or(|&scope| scope > 0) {
            return true;
        }
        options = &options[4 + len..];
    }
    !options.is_empty()
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    // 128 labels fill the 255-byte limit of a name.
    for _ in 0..128 {
        let len = *bytes.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xc0 => {
                bytes.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Copies the question name of `query` over that of `reply` when both are
/// uncompressed and of the same length (the same name, maybe in another
/// case).
fn copy_question_name(reply: &mut [u8], query: &[u8]) {
    let (Some(q_end), Some(r_end)) = (
        plain_name_end(query, HEADER_LEN),
        plain_name_end(reply, HEADER_LEN),
    ) else {
        return;
    };
    if q_end == r_end {
        reply[HEADER_LEN..r_end].copy_from_slice(&query[HEADER_LEN..q_end]);
    }
}

/// The end of an uncompressed name at `at`.
fn plain_name_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *bytes.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + usize::from(len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_query;
    use crate::testutil::*;
    use hickory_proto::op::{Edns, Message, ResponseCode};
    use hickory_proto::rr::RecordType;

    fn key(qname: &str) -> CacheKey {
        CacheKey::new(&client(qname, RecordType::AAAA), true)
    }

    fn query_bytes(qname: &str, id: u16) -> Vec<u8> {
        let mut m = query(qname, RecordType::AAAA);
        m.set_id(id);
        m.to_vec().unwrap()
    }

    fn positive(qname: &str, ttls: &[u32]) -> Vec<u8> {
        let q = client(qname, RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        for (i, ttl) in ttls.iter().enumerate() {
            r.add_answer(aaaa_rr(qname, &format!("2001:db8::{}", i + 1), *ttl));
        }
        r.set_edns(Edns::new());
        r.to_vec().unwrap()
    }

    fn ttls(bytes: &[u8]) -> Vec<u32> {
        let m = Message::from_vec(bytes).unwrap();
        m.answers()
            .iter()
            .chain(m.name_servers())
            .map(|r| r.ttl())
            .collect()
    }

    #[test]
    fn rfc1035_7_4_hit_has_ttls_decreased_by_age_and_clients_id() {
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(10);
        assert!(c.insert(key("a.example."), positive("a.example.", &[300, 100]), t0));
        let q = query_bytes("A.Example.", 0x7777);
        let hit = c
            .get(&key("a.example."), &q, t0 + Duration::from_millis(30_500))
            .expect("hit");
        let m = Message::from_vec(&hit).unwrap();
        assert_eq!(m.id(), 0x7777);
        assert_eq!(ttls(&hit), vec![270, 70]);
        // The client's spelling of the name (0x20 case randomization).
        assert_eq!(m.queries()[0].name().to_string(), "A.Example.");
        assert!(m.extensions().is_some(), "OPT kept and not touched");
        // Expires with the smallest TTL.
        assert!(c
            .get(&key("a.example."), &q, t0 + Duration::from_secs(100))
            .is_none());
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                inserts: 1,
                evictions: 0,
                stale_served: 0
            }
        );
        assert!(c.is_empty());
    }

    #[test]
    fn rfc2308_5_negative_answers_cached_for_soa_ttl() {
        let t0 = Instant::now();
        let q = client("a.example.", RecordType::AAAA);
        let mut c = Dns64Cache::new(10);
        // NODATA with SOA TTL 900, MINIMUM 60: 60 s.
        let nodata_bytes = nodata(&q, Some((900, 60))).to_vec().unwrap();
        assert!(c.insert(key("a.example."), nodata_bytes, t0));
        let qb = query_bytes("a.example.", 1);
        let hit = c.get(&key("a.example."), &qb, t0 + Duration::from_secs(59));
        assert_eq!(ttls(&hit.unwrap()), vec![841]);
        assert!(c
            .get(&key("a.example."), &qb, t0 + Duration::from_secs(60))
            .is_none());
        // NXDOMAIN with SOA: cached; without SOA: not (RFC 2308 §5).
        let mut nx = nodata(&q, Some((300, 300)));
        nx.set_response_code(ResponseCode::NXDomain);
        assert!(c.insert(key("b.example."), nx.to_vec().unwrap(), t0));
        assert!(!c.insert(key("c.example."), nodata(&q, None).to_vec().unwrap(), t0));
    }

    #[test]
    fn rfc2308_7_errors_and_truncated_answers_not_cached() {
        let t0 = Instant::now();
        let q = client("a.example.", RecordType::AAAA);
        let mut c = Dns64Cache::new(10);
        for rcode in [
            ResponseCode::ServFail,
            ResponseCode::Refused,
            ResponseCode::FormErr,
        ] {
            let r = response(&q, rcode).to_vec().unwrap();
            assert!(!c.insert(key("a.example."), r, t0), "{rcode:?}");
        }
        let mut tc = Message::from_vec(&positive("a.example.", &[300])).unwrap();
        tc.set_truncated(true);
        assert!(!c.insert(key("a.example."), tc.to_vec().unwrap(), t0));
        // TTL 0 means "do not cache" (RFC 1035 §3.2.1).
        assert!(!c.insert(key("a.example."), positive("a.example.", &[0]), t0));
        // Garbage and trailing bytes.
        assert!(!c.insert(key("a.example."), vec![0xff; 40], t0));
        let mut long = positive("a.example.", &[300]);
        long.push(0);
        assert!(!c.insert(key("a.example."), long, t0));
        assert!(c.is_empty());
    }

    #[test]
    fn rfc7871_7_3_1_only_answers_for_everyone_are_cached() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(10);
        let with_scope = |scope: u8| {
            let mut m = Message::from_vec(&positive("a.example.", &[300])).unwrap();
            let mut e = Edns::new();
            e.options_mut().insert(EdnsOption::Unknown(65001, vec![1]));
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                "2001:db8:a::".parse().unwrap(),
                56,
                scope,
            )));
            m.set_edns(e);
            m.to_vec().unwrap()
        };
        // Scope 56: for the client's /56 only, never served to others.
        assert!(!c.insert(key("a.example."), with_scope(56), t0));
        // Scope 0: the same for every client.
        assert!(c.insert(key("a.example."), with_scope(0), t0));
        assert_eq!(c.len(), 1);
        // Option data cut short: treated as scoped.
        assert!(scoped_to_a_subnet(&[0, 8, 0, 2, 0, 2]));
        assert!(scoped_to_a_subnet(&[0, 8, 0, 9, 0]));
        assert!(!scoped_to_a_subnet(&[0, 10, 0, 1, 5]));
    }

    #[test]
    fn rfc8767_stale_replies_served_with_ttl_30_within_the_window_only() {
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(10);
        assert!(c.insert(key("a.example."), positive("a.example.", &[300, 100]), t0));
        let q = query_bytes("A.example.", 0x4242);
        let expired = t0 + Duration::from_secs(100);
        // Off by default: nothing stale, and a miss removes the entry.
        assert!(c.get_stale(&key("a.example."), &q, expired).is_none());
        c.set_stale_for(Duration::from_secs(3600));
        // Fresh: not served stale.
        assert!(c.get_stale(&key("a.example."), &q, t0).is_none());
        // Expired: a miss for the normal path, kept for the stale one.
        assert!(c.get(&key("a.example."), &q, expired).is_none());
        let stale = c.get_stale(&key("a.example."), &q, expired).expect("stale");
        let m = Message::from_vec(&stale).unwrap();
        assert_eq!(m.id(), 0x4242);
        assert_eq!(m.queries()[0].name().to_string(), "A.example.");
        assert_eq!(ttls(&stale), vec![STALE_TTL, STALE_TTL]);
        assert_eq!(c.stats().stale_served, 1);
        // Past the window: gone.
        let late = t0 + Duration::from_secs(100 + 3600);
        assert!(c.get_stale(&key("a.example."), &q, late).is_none());
        assert!(c.get(&key("a.example."), &q, late).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_expired_first_then_soonest_to_expire() {
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(3);
        c.insert(key("a.example."), positive("a.example.", &[10]), t0);
        c.insert(key("b.example."), positive("b.example.", &[1000]), t0);
        c.insert(key("c.example."), positive("c.example.", &[500]), t0);
        // At t0+20 a.example has expired: it goes first.
        let t1 = t0 + Duration::from_secs(20);
        c.insert(key("d.example."), positive("d.example.", &[2000]), t1);
        assert_eq!(c.len(), 3);
        // Then c.example, the soonest to expire.
        c.insert(key("e.example."), positive("e.example.", &[2000]), t1);
        let q = query_bytes("x.example.", 1);
        assert!(c.get(&key("c.example."), &q, t1).is_none());
        assert!(c.get(&key("b.example."), &q, t1).is_some());
        assert_eq!(c.stats().evictions, 2);
        // Replacing an entry does not evict another one.
        c.insert(key("b.example."), positive("b.example.", &[5]), t1);
        assert_eq!(c.len(), 3);
        assert_eq!(c.stats().evictions, 2);
        // Many replacements keep the heap bounded.
        for i in 0..1000u64 {
            c.insert(
                key("b.example."),
                positive("b.example.", &[100]),
                t1 + Duration::from_secs(i),
            );
        }
        assert!(c.by_expiry.len() <= 2 * 3 + 64 + 1);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn key_separates_dnssec_bits_and_client_view() {
        let plain = client("a.example.", RecordType::AAAA);
        let do_cd = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            1232,
            true,
            true,
        ))
        .unwrap();
        let edns = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            1232,
            false,
            false,
        ))
        .unwrap();
        let keys = [
            CacheKey::new(&plain, true),
            CacheKey::new(&plain, false),
            CacheKey::new(&do_cd, true),
            CacheKey::new(&edns, true),
            CacheKey::new(&client("a.example.", RecordType::A), true),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            CacheKey::new(&client("A.EXAMPLE.", RecordType::AAAA), true),
            keys[0]
        );
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut c = Dns64Cache::new(0);
        assert!(!c.insert(
            key("a.example."),
            positive("a.example.", &[300]),
            Instant::now()
        ));
    }

    /// A reload's new `cache-size`: shrinking evicts what expires first and
    /// keeps the rest byte for byte; 0 empties and turns the cache off, a
    /// non-zero size turns it on again.
    #[test]
    fn set_capacity_keeps_what_fits_byte_for_byte() {
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(4);
        let names = ["a.example.", "b.example.", "c.example.", "d.example."];
        let replies: Vec<Vec<u8>> = names
            .iter()
            .zip([10, 1000, 500, 2000])
            .map(|(n, ttl)| positive(n, &[ttl]))
            .collect();
        for (name, reply) in names.iter().zip(&replies) {
            assert!(c.insert(key(name), reply.clone(), t0));
        }
        // Growing keeps everything.
        assert_eq!(c.set_capacity(10), 0);
        assert_eq!(c.len(), 4);
        // a.example expires first (TTL 10), then c.example (500).
        assert_eq!(c.set_capacity(2), 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats().evictions, 2);
        let mut out = Vec::new();
        for gone in [names[0], names[2]] {
            let q = query_bytes(gone, 1);
            assert!(!c.get_hit_into(&key(gone), &q, t0, &mut out), "{gone}");
        }
        // What stays is served exactly as stored (a query with the stored
        // id and spelling, no time passed).
        let same_id = query_bytes(names[1], u16::from_be_bytes([replies[1][0], replies[1][1]]));
        assert!(c.get_hit_into(&key(names[1]), &same_id, t0, &mut out));
        assert_eq!(out, replies[1]);
        let same_id = query_bytes(names[3], u16::from_be_bytes([replies[3][0], replies[3][1]]));
        assert!(c.get_hit_into(&key(names[3]), &same_id, t0, &mut out));
        assert_eq!(out, replies[3]);
        let same_id = query_bytes(names[1], u16::from_be_bytes([replies[1][0], replies[1][1]]));
        let t1 = t0 + Duration::from_secs(20);
        // Full at the new size: an insert evicts.
        assert!(c.insert(key("e.example."), positive("e.example.", &[3000]), t1));
        assert_eq!(c.len(), 2);
        // 0: nothing held, nothing stored.
        assert_eq!(c.set_capacity(0), 2);
        assert!(c.is_empty());
        assert!(!c.insert(key(names[1]), replies[1].clone(), t1));
        // And back on.
        assert_eq!(c.set_capacity(3), 0);
        assert!(c.insert(key(names[1]), replies[1].clone(), t1));
        assert!(c.get_hit_into(&key(names[1]), &same_id, t1, &mut out));
        assert_eq!(out, replies[1]);
    }

    fn raw_key(bytes: &[u8], synthesize: bool) -> Option<(CacheKey, usize)> {
        let mut k = CacheKey::with_capacity();
        let limit = k.set_from_wire(bytes, synthesize)?;
        Some((k, limit))
    }

    #[test]
    fn raw_key_equals_decoded_key() {
        let cases = [
            query("a.example.", RecordType::AAAA).to_vec().unwrap(),
            query("A.eXample.", RecordType::A).to_vec().unwrap(),
            query(".", RecordType::NS).to_vec().unwrap(),
            query_edns("a.example.", RecordType::AAAA, 4096, true, true),
            query_edns("a.example.", RecordType::AAAA, 100, false, true),
            query_edns("a.example.", RecordType::PTR, 1232, true, false),
        ];
        for bytes in &cases {
            let q = parse_query(bytes).unwrap();
            for synthesize in [true, false] {
                let (k, limit) = raw_key(bytes, synthesize).expect("plain query");
                assert_eq!(k, CacheKey::new(&q, synthesize));
                assert_eq!(limit, q.udp_payload_limit());
            }
        }
    }

    #[test]
    fn raw_key_is_case_insensitive() {
        let lower = raw_key(&query_bytes("www.example.", 1), true).unwrap().0;
        let upper = raw_key(&query_bytes("WwW.ExAMPLE.", 2), true).unwrap().0;
        assert_eq!(lower, upper);
        assert_eq!(lower, key("WWW.EXAMPLE."));
        // Only ASCII letters fold: 0xC3 and 0xE3 stay apart.
        let mut a = query_bytes("x.example.", 1);
        let mut b = a.clone();
        a[13] = 0xc3;
        b[13] = 0xe3;
        assert_ne!(raw_key(&a, true).unwrap().0, raw_key(&b, true).unwrap().0);
    }

    #[test]
    fn raw_key_flag_bits_are_separate_entries() {
        let mut keys = vec![
            raw_key(&query_bytes("a.example.", 1), true).unwrap().0,
            raw_key(&query_bytes("a.example.", 1), false).unwrap().0,
        ];
        let mut no_rd = query_bytes("a.example.", 1);
        no_rd[2] &= !0x01;
        keys.push(raw_key(&no_rd, true).unwrap().0);
        for (dnssec_ok, cd) in [(false, false), (true, false), (false, true), (true, true)] {
            let bytes = query_edns("a.example.", RecordType::AAAA, 1232, dnssec_ok, cd);
            keys.push(raw_key(&bytes, true).unwrap().0);
        }
        let mut cd_only = query_bytes("a.example.", 1);
        cd_only[3] |= 0x10;
        keys.push(raw_key(&cd_only, true).unwrap().0);
        keys.push(
            raw_key(&query("a.example.", RecordType::A).to_vec().unwrap(), true)
                .unwrap()
                .0,
        );
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The id and the AD/Z bits do not matter.
        let mut ad = query_bytes("a.example.", 99);
        ad[3] |= 0x20 | 0x40;
        assert_eq!(raw_key(&ad, true).unwrap().0, keys[0]);
    }

    #[test]
    fn raw_key_refuses_what_it_does_not_read_and_never_panics() {
        let good = query_bytes("a.example.", 1);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Every prefix of a good query, and one byte more.
        cases.extend((0..good.len()).map(|n| good[..n].to_vec()));
        let mut longer = good.clone();
        longer.push(0);
        cases.push(longer);
        // QR=1, opcode NOTIFY, QDCOUNT 2, ANCOUNT 1.
        for (at, value) in [(2, 0x81), (2, 0x21), (5, 2), (7, 1)] {
            let mut b = good.clone();
            b[at] = value;
            cases.push(b);
        }
        // A compression pointer and a reserved label type in the question.
        let mut b = good[..12].to_vec();
        b.extend_from_slice(&[0xc0, 0x0c, 0, 28, 0, 1]);
        cases.push(b);
        let mut b = good[..12].to_vec();
        b.extend_from_slice(&[0x41, 0, 28, 0, 1]);
        cases.push(b);
        // A name longer than 255 bytes: 5 labels of 63.
        let mut b = good[..12].to_vec();
        for _ in 0..5 {
            b.push(63);
            b.extend_from_slice(&[b'a'; 63]);
        }
        b.extend_from_slice(&[0, 0, 28, 0, 1]);
        cases.push(b);
        // EDNS version 1, a Client Subnet option, an option running past
        // the record, an OPT with a non-root owner.
        let edns = query_edns("a.example.", RecordType::AAAA, 1232, false, false);
        let opt = edns.len() - 11;
        let mut b = edns.clone();
        b[opt + 6] = 1;
        cases.push(b);
        let mut b = edns.clone();
        b[opt + 10] = 4;
        b.extend_from_slice(&[0, 8, 0, 0]);
        cases.push(b);
        let mut b = edns.clone();
        b[opt + 10] = 4;
        b.extend_from_slice(&[0, 10, 0, 8]);
        cases.push(b);
        let mut b = edns.clone();
        b[opt] = 1;
        cases.push(b);
        for bytes in &cases {
            assert_eq!(raw_key(bytes, true), None, "{bytes:?}");
        }
        // A well-formed cookie option is read.
        let mut b = edns.clone();
        b[opt + 10] = 12;
        b.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(raw_key(&b, true).is_some());
    }

    #[test]
    fn get_hit_into_reuses_buffer_and_matches_get() {
        let t0 = Instant::now();
        let mut c = Dns64Cache::new(10);
        c.insert(key("a.example."), positive("a.example.", &[300]), t0);
        let q = query_bytes("A.example.", 0x4242);
        let (k, _) = raw_key(&q, true).unwrap();
        let mut out = vec![0xee; 3];
        let later = t0 + Duration::from_secs(10);
        assert!(c.get_hit_into(&k, &q, later, &mut out));
        assert_eq!(Some(out.clone()), c.get(&k, &q, later));
        assert_eq!(ttls(&out), vec![290]);
        // Misses are not counted here (the full path counts them).
        let other = raw_key(&query_bytes("b.example.", 1), true).unwrap().0;
        assert!(!c.get_hit_into(&other, &q, later, &mut out));
        assert!(out.is_empty());
        assert!(!c.get_hit_into(&k, &q, t0 + Duration::from_secs(300), &mut out));
        assert_eq!(c.stats().hits, 2);
        assert_eq!(c.stats().misses, 0);
        assert_eq!(c.len(), 1);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn label() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(prop::sample::select(b"aBcZz09-_".to_vec()), 1..20),
                proptest::collection::vec(any::<u8>(), 1..64),
            ]
        }

        proptest! {
            #[test]
            fn raw_key_matches_decoded_key(
                labels in proptest::collection::vec(label(), 0..5),
                qtype in any::<u16>(),
                qclass in prop::sample::select(vec![1u16, 3, 4, 254, 255]),
                rd in any::<bool>(),
                cd in any::<bool>(),
                edns in proptest::option::of((any::<u16>(), any::<bool>())),
                synthesize in any::<bool>(),
            ) {
                let mut b = vec![0x12, 0x34, u8::from(rd), if cd { 0x10 } else { 0 }, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
                for l in &labels {
                    b.push(l.len() as u8);
                    b.extend_from_slice(l);
                }
                b.push(0);
                b.extend_from_slice(&qtype.to_be_bytes());
                b.extend_from_slice(&qclass.to_be_bytes());
                if let Some((size, dnssec_ok)) = edns {
                    b.extend_from_slice(&[0, 0, 41]);
                    b.extend_from_slice(&size.to_be_bytes());
                    b.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
                }
                let raw = raw_key(&b, synthesize);
                match parse_query(&b) {
                    Ok(q) => {
                        let (k, limit) = raw.expect("a plain query has a raw key");
                        prop_assert_eq!(k, CacheKey::new(&q, synthesize));
                        prop_assert_eq!(limit, q.udp_payload_limit());
                    }
                    Err(_) => prop_assert!(raw.is_none()),
                }
            }

            #[test]
            fn raw_key_random_bytes_never_panic_and_agree(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                crate::fuzzing::parse_query_roundtrip(&bytes);
            }
        }
    }
}
