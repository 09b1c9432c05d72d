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
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Longest time a positive answer is kept (Unbound's and BIND's default).
pub const MAX_POSITIVE_TTL: u32 = 86_400;
/// Longest time a negative answer is kept (RFC 2308 §5 suggests 1 to 3 h).
pub const MAX_NEGATIVE_TTL: u32 = 10_800;

const HEADER_LEN: usize = 12;
const TYPE_SOA: u16 = 6;
const TYPE_OPT: u16 = 41;

/// What a reply is cached under: the question (name in lowercase wire
/// form, type, class) and every query bit that changes the answer (DO, CD,
/// RD, EDNS present), plus whether the client gets synthesized answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    qname: Vec<u8>,
    qtype: u16,
    qclass: u16,
    flags: u8,
}

impl CacheKey {
    /// The key of `query` for a client that does (`synthesize`) or does not
    /// get synthesized answers.
    pub fn new(query: &ClientQuery, synthesize: bool) -> Self {
        let q = query.question();
        let mut qname = Vec::with_capacity(64);
        for label in q.name().iter() {
            // A label is at most 63 bytes in a decoded name.
            qname.push(label.len().min(255) as u8);
            qname.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        let m = query.message();
        let flags = u8::from(query.dnssec_ok())
            | u8::from(m.checking_disabled()) << 1
            | u8::from(m.recursion_desired()) << 2
            | u8::from(m.extensions().is_some()) << 3
            | u8::from(synthesize) << 4;
        CacheKey {
            qname,
            qtype: u16::from(q.query_type()),
            qclass: u16::from(q.query_class()),
            flags,
        }
    }
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
    entries: HashMap<CacheKey, Entry>,
    by_expiry: BinaryHeap<Reverse<(Instant, u64, CacheKey)>>,
    next_generation: u64,
    stats: CacheStats,
}

impl Dns64Cache {
    /// A cache holding at most `capacity` replies; 0 caches nothing.
    pub fn new(capacity: usize) -> Self {
        Dns64Cache {
            capacity,
            entries: HashMap::with_capacity(capacity.min(1 << 16)),
            by_expiry: BinaryHeap::new(),
            next_generation: 0,
            stats: CacheStats::default(),
        }
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
        let Some(entry) = self.entries.get(key) else {
            self.stats.misses += 1;
            return None;
        };
        if now >= entry.expires {
            self.entries.remove(key);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        let age = u32::try_from(now.saturating_duration_since(entry.stored).as_secs())
            .unwrap_or(u32::MAX);
        let mut out = entry.bytes.clone();
        for &at in &entry.ttl_offsets {
            if let Some(field) = out.get_mut(at..at + 4) {
                let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                field.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
            }
        }
        copy_question_name(&mut out, query_bytes);
        if let (Some(dst), Some(src)) = (out.get_mut(..2), query_bytes.get(..2)) {
            dst.copy_from_slice(src);
        }
        Some(out)
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
            if fixed[4] != 0 {
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
                evictions: 0
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
}
