//! DNS64 (RFC 6147): deciding when to synthesize AAAA records and building
//! the synthesized answer. Pure: bytes and messages in, messages out; no
//! sockets, no clock.
//!
//! The server drives one client query like this:
//!
//! 1. [`parse_query`] decodes the client's bytes. A [`QueryError`] says
//!    whether to drop the datagram or which error reply to send.
//! 2. [`ClientQuery::plan`] says what to do with it ([`Plan`]): forward it
//!    unchanged, forward it as an AAAA query that may need synthesis, answer
//!    locally (`ipv4only.arpa`, RFC 8880), or follow a reverse mapping
//!    (RFC 6147 §5.3.1).
//! 3. For [`Plan::ForwardAaaa`], [`classify_aaaa`] looks at the upstream AAAA
//!    response: pass it through, or ask for the A records
//!    ([`ClientQuery::upstream_query`]) and call [`synthesize`].
//!    [`Resolution`] does step 3 and the upstream work around it as a
//!    sans-IO state machine (failover, TCP on truncation, parallel A,
//!    deadline), over the servers' health in [`Upstreams`].
//! 4. The [`wire`] helpers match upstream replies to queries, rewrite ids and
//!    truncate answers for UDP.
//!
//! Around that: [`ClientSet`] says who may query and who gets synthesized
//! answers, and [`Dns64Cache`] keeps finished replies for their TTLs;
//! [`ClientRateLimiter`] holds each [`ClientId`] to a query rate, and
//! [`wire::short_reply`] answers a refused or rate-limited client from the
//! query's bytes.
#![warn(missing_docs, unreachable_pub)]

mod cache;
mod clients;
pub mod fuzzing;
mod policy;
mod query;
mod rate_limit;
mod resolution;
mod reverse;
mod synthesis;
mod upstreams;
pub mod wire;

#[cfg(test)]
mod testutil;

pub use cache::{
    CacheKey, CacheStats, Dns64Cache, MAX_NEGATIVE_TTL, MAX_POSITIVE_TTL, STALE_ANSWER_AFTER,
    STALE_TTL,
};
pub use clients::{ClientId, ClientSet, DEFAULT_ALLOW, DEFAULT_CLIENT_PREFIX_V6, EVERYONE};
pub use policy::{Dns64Policy, PrefixRule, ALL_IPV4, DEFAULT_EXCLUDE};
pub use query::{parse_query, ClientQuery, Plan, QueryError, UDP_PAYLOAD_LIMIT};
pub use rate_limit::{ClientRateLimiter, RateLimit, RateVerdict, DEFAULT_BUCKETS};
pub use resolution::{
    Outcome, Resolution, ResolverSettings, Tally, Transmit, Transport, TryHandle, MAX_RESOLUTION,
};
pub use reverse::{reverse_answer, reverse_target, REVERSE_CNAME_TTL};
pub use synthesis::{
    classify_aaaa, ipv4only_answer, synthesize, AaaaVerdict, PassReason, Synthesis, IPV4ONLY_ADDRS,
    IPV4ONLY_TTL, TTL_WITHOUT_SOA,
};
pub use upstreams::{
    UpstreamEvent, UpstreamStatus, Upstreams, DOWN_AFTER, FIRST_BACKOFF, MAX_BACKOFF, UNKNOWN_RTT,
};

/// Re-export of the DNS library whose message types the API uses.
pub use hickory_proto;
