//! The harness behind the `parse_query` fuzz target (`fuzz/` at the
//! repository root) and the proptest that runs it in CI.

use crate::cache::{CacheKey, Dns64Cache};
use crate::policy::{Dns64Policy, PrefixRule};
use crate::query::{parse_query, Plan};
use crate::synthesis::{classify_aaaa, synthesize, AaaaVerdict, Synthesis};
use crate::wire;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use std::net::Ipv6Addr;
use std::time::Instant;
use xlat64_packet::prefix::Prefix6052;

/// Feeds `bytes` to the query path as a client datagram and checks what the
/// server would send back: parse -> (error reply | plan) -> encode -> parse.
///
/// Panics (the fuzzer's finding) when an invariant fails:
/// - an error reply must encode, decode, be a response and carry the id;
/// - for a query, every plan's message (local answer, upstream queries,
///   error replies, a synthesized answer built from the query's own bytes
///   used as upstream answers) must encode and decode again;
/// - UDP truncation stays within the limit; the cache never panics.
pub fn parse_query_roundtrip(bytes: &[u8]) {
    // The key read from the raw bytes (the cache-hit path) exists only for
    // queries that decode, and is the decoded query's key.
    let mut raw_key = CacheKey::with_capacity();
    let raw_limit = raw_key.set_from_wire(bytes, true);
    let query = match parse_query(bytes) {
        Ok(q) => q,
        Err(e) => {
            assert!(
                raw_limit.is_none(),
                "raw key for a query that does not decode"
            );
            if let Some(reply) = e.reply() {
                let encoded = reply.to_vec().expect("error reply encodes");
                let back = Message::from_vec(&encoded).expect("error reply decodes");
                assert_eq!(back.message_type(), MessageType::Response);
                assert_eq!(Some(back.id()), wire::id(bytes));
            }
            return;
        }
    };
    if let Some(limit) = raw_limit {
        assert_eq!(raw_key, CacheKey::new(&query, true));
        assert_eq!(limit, query.udp_payload_limit());
    }
    let policies = policies();
    for policy in &policies {
        for synthesize_for in [true, false] {
            match query.plan_for(policy, synthesize_for) {
                Plan::Answer(m) => {
                    roundtrip(&m);
                }
                Plan::Forward(_) => {}
                Plan::ForwardAaaa => {
                    let a = query.upstream_query(query.question().name().clone(), RecordType::A);
                    roundtrip(&a);
                    // The fuzzer's bytes as the upstream answers too.
                    if let Ok(upstream) = Message::from_vec(bytes) {
                        if classify_aaaa(&query, &upstream, policy) == AaaaVerdict::QueryA {
                            match synthesize(&query, &upstream, &upstream, policy) {
                                Synthesis::Synthesized(m) | Synthesis::NoData(m) => {
                                    roundtrip(&m);
                                }
                                Synthesis::AaaaResponse => {}
                            }
                        }
                    }
                }
                Plan::Reverse { target } => {
                    roundtrip(&query.upstream_query(target.clone(), RecordType::PTR));
                    roundtrip(&crate::reverse_answer(&query, &target, query.message()));
                }
            }
        }
    }
    let servfail = query.error_reply(ResponseCode::ServFail);
    let encoded = roundtrip(&servfail);
    for limit in [512, 1232] {
        let (out, _) = wire::fit_udp(encoded.clone(), limit);
        assert!(out.len() <= limit);
    }
    // The cache: whatever the bytes, insert and get do not panic, and a
    // hit is no longer than what was stored.
    let now = Instant::now();
    let mut cache = Dns64Cache::new(4);
    let key = CacheKey::new(&query, true);
    let mut as_response = bytes.to_vec();
    as_response[2] |= 0x80;
    if cache.insert(key.clone(), as_response.clone(), now) {
        let hit = cache.get(&key, bytes, now).expect("fresh entry is served");
        assert_eq!(hit.len(), as_response.len());
    }
}

fn roundtrip(m: &Message) -> Vec<u8> {
    let encoded = m.to_vec().expect("our message encodes");
    Message::from_vec(&encoded).expect("our message decodes");
    encoded
}

fn policies() -> Vec<Dns64Policy> {
    let nsp = |s: &str| {
        Prefix6052::new(s.parse().expect("literal prefix")).expect("valid RFC 6052 prefix")
    };
    let mut several = Dns64Policy::new(nsp("2001:db8:64::/96"));
    several.prefixes = vec![PrefixRule {
        prefix: nsp("2001:db8:100::/40"),
        ipv4: vec!["10.0.0.0/8".parse().expect("literal range")],
    }];
    several
        .exclude
        .push(ipnet::Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0));
    several.synthesize_on_error = false;
    vec![Dns64Policy::new(Prefix6052::WELL_KNOWN), several]
}
