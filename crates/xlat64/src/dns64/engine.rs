//! The driver of the pure DNS64 logic in `xlat64-dns64`: per client
//! message the `allow` and `synthesize-for` checks, the cache, and the
//! plan: a local answer (RFC 8880), forwarding, AAAA with synthesis
//! (RFC 6147 §5.1) or reverse mapping (RFC 6147 §5.3.1).

use super::access::AccessSettings;
use super::cache_shards::ShardedCache;
use super::upstream::Resolver;
use super::{Dns64Counters, ReloadNote};
use crate::config::{ClientSubnetPolicy, Dns64Section};
use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;
use xlat64_dns64::wire;
use xlat64_dns64::{
    parse_query, CacheKey, ClientQuery, ClientSet, Dns64Policy, Outcome, PassReason, Plan,
    QueryError, Resolution, ResolverSettings, STALE_ANSWER_AFTER,
};

/// A reply for the client, before UDP truncation.
pub(super) struct Reply {
    pub(super) bytes: Vec<u8>,
    pub(super) udp_limit: usize,
}

/// The `[dns64]` settings a reload may replace (every key but `listen`).
/// A query loads them once, at its start, and uses that snapshot to its
/// end: it never mixes old and new settings.
pub(super) struct Settings {
    /// Shared with the resolutions started under these settings.
    pub(super) policy: Arc<Dns64Policy>,
    pub(super) allow: ClientSet,
    pub(super) synthesize_for: ClientSet,
    pub(super) parallel_a: bool,
    pub(super) upstreams: Vec<SocketAddr>,
    pub(super) timeout: Duration,
    /// `cache-size`; 0: no cache lookups at all.
    pub(super) cache_size: usize,
    /// Per-client limits: TCP connections, idle time, UDP query rate.
    pub(super) access: AccessSettings,
    /// What becomes of a client's EDNS Client Subnet option.
    pub(super) client_subnet: ClientSubnetPolicy,
    /// How long past their TTL replies are served when every upstream
    /// fails (RFC 8767); zero: never.
    pub(super) serve_stale: Duration,
    /// The [`Cache::epoch`] these settings' replies belong to: a reply
    /// finished under older settings than the cache's is not stored.
    cache_epoch: u64,
}

impl Settings {
    /// The settings of `section`, checked: the same checks as at start.
    pub(super) fn from_section(section: &Dns64Section) -> Result<Self, String> {
        let policy = section.policy().map_err(|e| e.to_string())?;
        if section.upstream.is_empty() {
            return Err("dns64.upstream: no upstream server to forward to".to_string());
        }
        Ok(Settings {
            policy: Arc::new(policy),
            allow: ClientSet::new(section.allow.iter().copied()),
            synthesize_for: ClientSet::new(section.synthesize_for.iter().copied()),
            parallel_a: section.parallel_a,
            upstreams: section.upstream.clone(),
            timeout: Duration::from_millis(section.upstream_timeout_ms.max(1)),
            cache_size: section.cache_size,
            access: AccessSettings::from_section(section),
            client_subnet: section.client_subnet,
            serve_stale: Duration::from_secs(section.serve_stale),
            cache_epoch: 0,
        })
    }
}

impl Settings {
    /// What a [`Resolution`] needs of them.
    fn resolver_settings(&self) -> ResolverSettings {
        ResolverSettings {
            timeout: self.timeout,
            parallel_a: self.parallel_a,
        }
    }
}

/// Everything a query task needs.
pub(super) struct Engine {
    /// Swapped whole by a reload ([`Engine::reconfigure`]); loading it is
    /// lock-free and, for a [`Guard`](arc_swap::Guard), allocation-free.
    settings: ArcSwap<Settings>,
    /// Exists even at `cache-size = 0` (holding nothing), so that a reload
    /// can turn the cache on and off.
    cache: ShardedCache,
    pub(super) counters: Arc<Dns64Counters>,
    /// Runs the resolutions of cache misses over the servers' shared
    /// health.
    resolver: Arc<Resolver>,
}

/// The keys whose change alters what a cached reply would hold (the
/// synthesized addresses, RFC 6147 §5.1.4 exclusions, §5.1.2 errors), by
/// the policies before and after.
fn reply_changing_keys(old: &Dns64Policy, new: &Dns64Policy) -> Vec<&'static str> {
    [
        ("dns64.prefix", old.prefix != new.prefix),
        ("dns64.prefixes", old.prefixes != new.prefixes),
        ("dns64.exclude", old.exclude != new.exclude),
        ("dns64.mapped", old.mapped != new.mapped),
        (
            "dns64.exclude-mapped",
            old.exclude_mapped != new.exclude_mapped,
        ),
        (
            "dns64.servfail",
            old.synthesize_on_error != new.synthesize_on_error,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

impl Engine {
    /// An engine with `settings` and an empty cache of their size.
    pub(super) fn new(settings: Settings, counters: Arc<Dns64Counters>) -> Self {
        let resolver = Resolver::new(counters.clone());
        resolver.upstreams().set_servers(&settings.upstreams);
        let cache = ShardedCache::new(settings.cache_size);
        cache.set_stale_for(settings.serve_stale, &counters);
        Engine {
            cache,
            settings: ArcSwap::from_pointee(settings),
            counters,
            resolver: Arc::new(resolver),
        }
    }

    /// Puts `new` in force for every query that starts from now on (a
    /// reload). The cache stays, resized to `new.cache_size`, unless a key
    /// that changes what a reply would hold changed
    /// ([`reply_changing_keys`]): then it is emptied, and replies still
    /// being made under the old settings are not stored.
    pub(super) fn reconfigure(&self, mut new: Settings) -> ReloadNote {
        // Reloads run one at a time. A new epoch begins before the cache
        // is emptied, so a reply made under the old settings is not stored
        // after (`ShardedCache::insert` checks under the shard's lock).
        let c = &self.counters;
        let emptied_by = reply_changing_keys(&self.settings.load().policy, &new.policy);
        let mut note = ReloadNote {
            emptied_by,
            ..ReloadNote::default()
        };
        if !note.emptied_by.is_empty() {
            note.dropped = self.cache.clear(true, c);
        }
        note.evicted = self.cache.set_capacity(new.cache_size, c);
        self.cache.set_stale_for(new.serve_stale, c);
        note.held = self.cache.len();
        note.capacity = new.cache_size;
        new.cache_epoch = self.cache.epoch();
        // Servers kept keep their health; queries in flight finish on the
        // servers they started with.
        self.resolver.upstreams().set_servers(&new.upstreams);
        self.settings.store(Arc::new(new));
        note
    }

    /// The settings now in force (lock-free, no allocation), for checks
    /// made before a message is read ([`super::access`]).
    pub(super) fn settings(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// The reply to one client message from `peer`, or `None` to drop it.
    pub(super) async fn answer(self: &Arc<Self>, bytes: &[u8], peer: IpAddr) -> Option<Reply> {
        let c = &self.counters;
        Dns64Counters::inc(&c.queries);
        // One snapshot for the whole query (it may wait on upstreams while
        // a reload happens).
        let settings = self.settings.load_full();
        let s = &*settings;
        let parsed = parse_query(bytes);
        if !s.allow.contains(peer) {
            Dns64Counters::inc(&c.refused);
            debug!("dns64: {peer} not in dns64.allow: REFUSED");
            // Only well-formed queries get an answer: no reflection of junk.
            let query = parsed.ok()?;
            return Some(Reply {
                bytes: query.error_reply(ResponseCode::Refused).to_vec().ok()?,
                udp_limit: query.udp_payload_limit(),
            });
        }
        let query = match parsed {
            Ok(q) => q,
            Err(e) => {
                let counter = match &e {
                    QueryError::TooShort => &c.dropped_malformed,
                    QueryError::NotAQuery => &c.dropped_not_query,
                    QueryError::Malformed(_) => &c.formerr,
                    QueryError::NotImplemented(_) => &c.notimp,
                    QueryError::BadVersion(_) => &c.badvers,
                };
                Dns64Counters::inc(counter);
                debug!("dns64: rejected query: {e:?}");
                return e.reply().and_then(|m| m.to_vec().ok()).map(|bytes| Reply {
                    bytes,
                    udp_limit: 512,
                });
            }
        };
        // client-subnet = "strip": the client's network never goes upstream
        // (RFC 7871 §11.1), and every answer is everyone's to cache.
        let stripped;
        let without = match s.client_subnet {
            ClientSubnetPolicy::Strip => query.without_client_subnet(),
            ClientSubnetPolicy::Pass => None,
        };
        let (query, bytes) = match without {
            Some((q, b)) => {
                Dns64Counters::inc(&c.client_subnet_stripped);
                stripped = b;
                (q, stripped.as_slice())
            }
            None => (query, bytes),
        };
        let q = query.question();
        debug!(
            "dns64: query id {} {} {} {} from {peer}",
            query.id(),
            q.name(),
            q.query_class(),
            q.query_type()
        );
        let synthesize_for = s.synthesize_for.contains(peer);
        let key = CacheKey::new(&query, synthesize_for);
        if let Some(bytes) = self.cache_get(s, &key, bytes) {
            return Some(self.finish(&query, bytes));
        }
        let plan = query.plan_for(&s.policy, synthesize_for);
        match &plan {
            Plan::Answer(m) => {
                Dns64Counters::inc(&c.local_answers);
                return Some(self.finish(&query, m.to_vec().ok()?));
            }
            Plan::Forward(reason) => Dns64Counters::inc(match reason {
                PassReason::DnssecCd => &c.dnssec_cd,
                PassReason::NotInSynthesizeFor => &c.client_not_in_synthesize_for,
                _ => &c.not_aaaa,
            }),
            Plan::ForwardAaaa | Plan::Reverse { .. } => {}
        }
        // With serve-stale, what the client gets after the client response
        // timer if the resolution is still going (RFC 8767 §5).
        let early = (!s.serve_stale.is_zero() && s.cache_size > 0).then(|| query.clone());
        let resolution = Resolution::new(
            Instant::now(),
            query,
            bytes,
            plan,
            s.policy.clone(),
            s.resolver_settings(),
            &mut self.resolver.upstreams(),
        )?;
        let resolver = self.resolver.clone();
        let mut resolving = Box::pin(async move { resolver.resolve(resolution).await });
        let (outcome, driven) = match early {
            Some(client) => tokio::select! {
                done = &mut resolving => done,
                _ = tokio::time::sleep(STALE_ANSWER_AFTER) => match self.stale(s, &key, bytes) {
                    // A stale answer now; the resolution goes on in a task
                    // of its own and refreshes the cache when it ends.
                    Some(stale) => {
                        let engine = self.clone();
                        tokio::spawn(async move {
                            let (outcome, driven) = resolving.await;
                            if let Outcome::Answer(b) = outcome {
                                if !driven.resolution.query().has_client_subnet() {
                                    engine.cache_insert(&settings, key, &b);
                                }
                            }
                            driven.let_go();
                        });
                        return Some(self.finish(&client, stale));
                    }
                    None => resolving.await,
                },
            },
            None => resolving.await,
        };
        let query = driven.resolution.query();
        // RFC 8767 §5: every upstream failed, or said SERVFAIL (it could not
        // resolve the name either): an expired answer is better than none,
        // if serve-stale allows it.
        let stale = match &outcome {
            Outcome::ServFail => self.stale(s, &key, bytes),
            Outcome::Answer(b) if wire::rcode(b) == Some(ResponseCode::ServFail.low()) => {
                self.stale(s, &key, bytes)
            }
            Outcome::Answer(_) => None,
        };
        let bytes = match outcome {
            _ if stale.is_some() => stale,
            // client-subnet = "pass": the answer may be tailored to the
            // client's subnet (a synthesized one no longer shows its
            // scope), so it is not kept for others (RFC 7871 §7.3.1).
            Outcome::Answer(b) if query.has_client_subnet() => {
                Dns64Counters::inc(&c.client_subnet_not_cached);
                Some(b)
            }
            Outcome::Answer(b) => {
                self.cache_insert(s, key, &b);
                Some(b)
            }
            Outcome::ServFail => {
                Dns64Counters::inc(&c.servfail_sent);
                query.error_reply(ResponseCode::ServFail).to_vec().ok()
            }
        };
        let reply = bytes.map(|b| self.finish(query, b));
        driven.let_go();
        reply
    }

    /// The cache-hit path for a UDP query, no decoding and no allocation:
    /// true when the reply (ready to send, truncated to the client's limit)
    /// is in `out`. False sends the query down [`Engine::answer`], which
    /// does everything again, so nothing is counted here then. The rules
    /// are those of `answer`: `allow` first (REFUSED comes from `answer`),
    /// the key under the client's `synthesize-for` view, all from one
    /// snapshot of the settings.
    pub(super) fn answer_cached(
        &self,
        query: &[u8],
        peer: IpAddr,
        now: std::time::Instant,
        key: &mut CacheKey,
        out: &mut Vec<u8>,
    ) -> bool {
        let s = self.settings.load();
        if s.cache_size == 0 || !s.allow.contains(peer) {
            return false;
        }
        let Some(udp_limit) = key.set_from_wire(query, s.synthesize_for.contains(peer)) else {
            return false;
        };
        let c = &self.counters;
        if !self.cache.get_hit_into(key, query, now, out, c) {
            return false;
        }
        Dns64Counters::inc(&c.queries);
        if out.len() >= 4 && out[3] & 0x0f == 3 {
            Dns64Counters::inc(&c.nxdomain);
        }
        if out.len() > udp_limit {
            let (fitted, _) = wire::fit_udp(std::mem::take(out), udp_limit);
            *out = fitted;
            Dns64Counters::inc(&c.truncated_udp);
        }
        true
    }

    fn finish(&self, query: &ClientQuery, bytes: Vec<u8>) -> Reply {
        if bytes.len() >= 4 && bytes[3] & 0x0f == 3 {
            Dns64Counters::inc(&self.counters.nxdomain);
        }
        Reply {
            bytes,
            udp_limit: query.udp_payload_limit(),
        }
    }

    /// A fresh cached reply, ready for this client.
    fn cache_get(&self, s: &Settings, key: &CacheKey, query_bytes: &[u8]) -> Option<Vec<u8>> {
        if s.cache_size == 0 {
            return None;
        }
        let now = std::time::Instant::now();
        self.cache.get(key, query_bytes, now, &self.counters)
    }

    /// Stores a reply made under `s`, unless a reload emptied the cache
    /// since `s` was loaded (the reply may hold what the new settings
    /// would not).
    fn cache_insert(&self, s: &Settings, key: CacheKey, reply: &[u8]) {
        let now = std::time::Instant::now();
        self.cache
            .insert(s.cache_epoch, key, reply, now, &self.counters);
    }

    /// An expired reply for `key` within `serve-stale`, for when every
    /// upstream failed or the client waited [`STALE_ANSWER_AFTER`]
    /// (RFC 8767).
    fn stale(&self, s: &Settings, key: &CacheKey, query_bytes: &[u8]) -> Option<Vec<u8>> {
        if s.serve_stale.is_zero() || s.cache_size == 0 {
            return None;
        }
        let now = std::time::Instant::now();
        self.cache.get_stale(key, query_bytes, now, &self.counters)
    }

    /// Empties the cache (`xlat64 flush-cache`); returns how many replies
    /// it held.
    pub(super) fn flush_cache(&self) -> usize {
        self.cache.clear(false, &self.counters)
    }
}
