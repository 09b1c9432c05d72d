//! One client query's way through the upstream servers, as a sans-IO state
//! machine: the caller moves the bytes and the time.
//!
//! - [`Resolution::poll_transmit`] hands out the upstream queries to send
//!   (UDP, or TCP after a truncated answer), each with a fresh random id
//!   from the caller (RFC 5452 §9.2);
//! - [`Resolution::handle_reply`] takes what came back on a try's socket:
//!   a reply counts only when its id and question match (RFC 5452 §9.1);
//!   one with TC=1 is asked again over TCP of the same server
//!   (RFC 1035 §4.2.1, RFC 7766 §5), as a new try; one with SERVFAIL,
//!   REFUSED, NOTIMP or FORMERR sends the question to the next server, as
//!   forwarding resolvers do, and is the answer only when no server gives
//!   a better one (REFUSED, NOTIMP and FORMERR also count against the
//!   server's health: it will not serve us; SERVFAIL is about the name);
//! - [`Resolution::handle_error`] and [`Resolution::handle_timeout`] fail a
//!   try; the question goes to the next server ([`Upstreams::order`]);
//! - [`Resolution::poll_outcome`] gives the reply for the client once it is
//!   known: passed through, synthesized (RFC 6147 §5.1), reverse-mapped
//!   (§5.3.1), or SERVFAIL.
//!
//! For an AAAA query that may need synthesis the A query goes out with the
//! AAAA one when `parallel_a` is set, else only when the AAAA answer asks
//! for it ([`classify_aaaa`]). A resolution ends at its deadline (its
//! tries' timeouts summed, at most [`MAX_RESOLUTION`]) with SERVFAIL: no
//! client query waits for ever. A probe of a failed server
//! ([`Upstreams::take_probe`]) may go on after the outcome is known, until
//! it is answered or times out ([`Resolution::is_finished`]).

use crate::policy::Dns64Policy;
use crate::query::{ClientQuery, Plan};
use crate::reverse::reverse_answer;
use crate::synthesis::{classify_aaaa, synthesize, AaaaVerdict, PassReason, Synthesis};
use crate::upstreams::Upstreams;
use crate::wire;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a resolution runs before it answers SERVFAIL, whatever the
/// timeouts and the number of servers.
pub const MAX_RESOLUTION: Duration = Duration::from_secs(30);

/// How a resolution uses the upstreams (`[dns64]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolverSettings {
    /// The wait for one try's answer (`upstream-timeout-ms`).
    pub timeout: Duration,
    /// Ask A together with AAAA (`parallel-a`).
    pub parallel_a: bool,
}

/// The transport of one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram from a fresh socket.
    Udp,
    /// A TCP connection, the message prefixed by its length (RFC 1035
    /// §4.2.2); used after a truncated UDP answer.
    Tcp,
}

/// Names one try of a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TryHandle(u32);

/// An upstream query to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// What the replies and errors of this try are reported with.
    pub handle: TryHandle,
    /// Where to.
    pub upstream: SocketAddr,
    /// How.
    pub transport: Transport,
    /// The DNS message, its id set (without TCP's length prefix).
    pub bytes: Vec<u8>,
}

/// What the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This reply (the client's id set), to send and to cache.
    Answer(Vec<u8>),
    /// Every upstream failed, or the deadline passed: SERVFAIL, not cached.
    ServFail,
}

/// Counts since the last [`Resolution::take_tally`], named as the server's
/// `dns64_` counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each is the server counter of the same name
pub struct Tally {
    pub upstream_queries: u64,
    pub upstream_tcp_retries: u64,
    pub upstream_timeouts: u64,
    pub upstream_errors: u64,
    pub upstream_mismatched: u64,
    pub upstream_failures: u64,
    pub upstream_error_rcodes: u64,
    pub resolutions_expired: u64,
    pub parallel_a_unused: u64,
    pub passed_through: u64,
    pub real_aaaa: u64,
    pub error_passed: u64,
    pub synthesized: u64,
    pub synthesized_on_error: u64,
    pub excluded_aaaa_removed: u64,
    pub nothing_to_synthesize: u64,
    pub reverse_mapped: u64,
}

/// One try: a query to one server.
#[derive(Debug)]
struct Try {
    handle: TryHandle,
    upstream: SocketAddr,
    transport: Transport,
    /// Its message id; chosen when it is handed out (a TCP retry keeps
    /// the truncated UDP try's).
    id: Option<u16>,
    /// A copy sent to a failed server to see whether it is back.
    probe: bool,
    /// When it was handed out; `None`: waiting for `poll_transmit`.
    sent: Option<Instant>,
}

/// Where one question stands.
#[derive(Debug)]
enum Progress {
    NotStarted,
    Running,
    /// The answer, or `None` when every server failed.
    Done(Option<Vec<u8>>),
    /// Its result was used, or is no longer needed.
    Over,
}

/// One question asked of the servers in order until one answers.
#[derive(Debug)]
struct Exchange {
    question: Query,
    message: Vec<u8>,
    order: Vec<SocketAddr>,
    /// The next server of `order` to try.
    next: usize,
    tries: Vec<Try>,
    progress: Progress,
    /// The latest error reply (SERVFAIL, REFUSED, NOTIMP, FORMERR): the
    /// answer if no later server gives a better one.
    fallback: Option<Vec<u8>>,
}

impl Exchange {
    fn new(message: Vec<u8>, question: Query) -> Self {
        Exchange {
            question,
            message,
            order: Vec::new(),
            next: 0,
            tries: Vec::new(),
            progress: Progress::NotStarted,
            fallback: None,
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// Relay the answer (the client's id restored).
    Forward,
    /// RFC 6147 §5.1: exchange 0 is AAAA, exchange 1 is A.
    Aaaa {
        /// The AAAA answer, decoded, once it asked for the A records.
        aaaa: Option<(Message, Option<Vec<u8>>)>,
    },
    /// RFC 6147 §5.3.1: PTR of `target`.
    Reverse { target: Name },
}

/// One client query's upstream work; see the module documentation.
#[derive(Debug)]
pub struct Resolution {
    query: ClientQuery,
    policy: Arc<Dns64Policy>,
    settings: ResolverSettings,
    kind: Kind,
    exchanges: Vec<Exchange>,
    started: Instant,
    deadline: Instant,
    outcome: Option<Outcome>,
    /// The outcome was decided (and maybe taken).
    decided: bool,
    next_handle: u32,
    tally: Tally,
}

impl Resolution {
    /// The resolution of `query` (its bytes in `bytes`) under `plan`,
    /// started at `now`; `None` for [`Plan::Answer`], which needs no
    /// upstream.
    pub fn new(
        now: Instant,
        query: ClientQuery,
        bytes: &[u8],
        plan: Plan,
        policy: Arc<Dns64Policy>,
        settings: ResolverSettings,
        upstreams: &mut Upstreams,
    ) -> Option<Self> {
        let question = query.question().clone();
        let (kind, exchanges) = match plan {
            Plan::Answer(_) => return None,
            Plan::Forward(_) => (Kind::Forward, vec![Exchange::new(bytes.to_vec(), question)]),
            Plan::ForwardAaaa => {
                let a_query = query.upstream_query(question.name().clone(), RecordType::A);
                let mut exchanges = vec![Exchange::new(bytes.to_vec(), question)];
                if let Ok(a_bytes) = a_query.to_vec() {
                    exchanges.push(Exchange::new(a_bytes, a_query.queries()[0].clone()));
                }
                (Kind::Aaaa { aaaa: None }, exchanges)
            }
            Plan::Reverse { target } => {
                let ptr_query = query.upstream_query(target.clone(), RecordType::PTR);
                let exchanges = match ptr_query.to_vec() {
                    Ok(b) => vec![Exchange::new(b, ptr_query.queries()[0].clone())],
                    Err(_) => Vec::new(),
                };
                (Kind::Reverse { target }, exchanges)
            }
        };
        let questions = if matches!(kind, Kind::Aaaa { .. }) {
            2
        } else {
            1
        };
        let tries = u32::try_from(upstreams.len().max(1) * questions).unwrap_or(u32::MAX);
        let mut r = Resolution {
            query,
            policy,
            settings,
            kind,
            exchanges,
            started: now,
            deadline: now + settings.timeout.saturating_mul(tries).min(MAX_RESOLUTION),
            outcome: None,
            decided: false,
            next_handle: 0,
            tally: Tally::default(),
        };
        // An AAAA query whose A query cannot be encoded fails as today.
        if matches!(r.kind, Kind::Aaaa { .. }) && r.exchanges.len() < 2 || r.exchanges.is_empty() {
            r.decide(Outcome::ServFail);
            return Some(r);
        }
        r.start(0, now, upstreams);
        if matches!(r.kind, Kind::Aaaa { .. }) && settings.parallel_a {
            r.start(1, now, upstreams);
        }
        r.step(now, upstreams);
        Some(r)
    }

    /// The client's query.
    pub fn query(&self) -> &ClientQuery {
        &self.query
    }

    /// The next upstream query to send; `next_id` gives each a random id
    /// (RFC 5452 §9.2).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        next_id: &mut dyn FnMut() -> u16,
    ) -> Option<Transmit> {
        for ex in &mut self.exchanges {
            let Some(t) = ex.tries.iter_mut().find(|t| t.sent.is_none()) else {
                continue;
            };
            let id = *t.id.get_or_insert_with(&mut *next_id);
            t.sent = Some(now);
            let mut bytes = ex.message.clone();
            wire::set_id(&mut bytes, id);
            self.tally.upstream_queries += 1;
            return Some(Transmit {
                handle: t.handle,
                upstream: t.upstream,
                transport: t.transport,
                bytes,
            });
        }
        None
    }

    /// A message received on try `handle`'s socket or connection.
    pub fn handle_reply(
        &mut self,
        now: Instant,
        handle: TryHandle,
        bytes: Vec<u8>,
        upstreams: &mut Upstreams,
    ) {
        let Some((e, i)) = self.find(handle) else {
            return;
        };
        let ex = &mut self.exchanges[e];
        let t = &ex.tries[i];
        let (Some(id), Some(sent)) = (t.id, t.sent) else {
            return;
        };
        if !wire::reply_matches(&bytes, id, &ex.question) {
            self.tally.upstream_mismatched += 1;
            return;
        }
        let rtt = now.saturating_duration_since(sent);
        match wire::rcode(&bytes) {
            // Not a server to ask: counted against its health.
            Some(RCODE_FORMERR | RCODE_NOTIMP | RCODE_REFUSED) => {
                self.tally.upstream_error_rcodes += 1;
                ex.fallback = Some(bytes);
                let t = ex.tries.remove(i);
                upstreams.handle_failure(t.upstream, sent, now, t.probe);
                self.next_server(e, t.probe);
                self.step(now, upstreams);
                return;
            }
            // The server works but could not resolve this name: the next
            // one may; its health and round trip are left as they were.
            Some(RCODE_SERVFAIL) => {
                self.tally.upstream_error_rcodes += 1;
                ex.fallback = Some(bytes);
                let t = ex.tries.remove(i);
                if t.probe {
                    upstreams.handle_answer(t.upstream, rtt, true);
                }
                self.next_server(e, t.probe);
                self.step(now, upstreams);
                return;
            }
            _ => upstreams.handle_answer(t.upstream, rtt, t.probe),
        }
        if wire::is_truncated(&bytes) && t.transport == Transport::Udp {
            let t = ex.tries.remove(i);
            if !t.probe {
                // The same message and id, over TCP to the same server, as
                // a new try: nothing more from the UDP socket counts. It
                // has a timeout of its own, which the deadline makes room
                // for.
                self.tally.upstream_tcp_retries += 1;
                let mut retry = self.new_try(t.upstream, false);
                retry.transport = Transport::Tcp;
                retry.id = t.id;
                self.exchanges[e].tries.push(retry);
                let latest = self.started + MAX_RESOLUTION;
                self.deadline = self.deadline.max(now + self.settings.timeout).min(latest);
            }
            return;
        }
        let t = ex.tries.remove(i);
        if matches!(ex.progress, Progress::Running) {
            ex.progress = Progress::Done(Some(bytes));
            // The question is answered: its other try, if any, is dropped
            // (a probe that answered first stands for the primary one).
            if t.probe {
                ex.tries.retain(|t| t.probe);
            }
        }
        self.step(now, upstreams);
    }

    /// Try `handle` failed (socket error, connection refused or closed).
    pub fn handle_error(&mut self, now: Instant, handle: TryHandle, upstreams: &mut Upstreams) {
        if let Some((e, i)) = self.find(handle) {
            self.tally.upstream_errors += 1;
            self.fail(e, i, now, upstreams);
            self.step(now, upstreams);
        }
    }

    /// When [`Resolution::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tries = self
            .exchanges
            .iter()
            .flat_map(|ex| &ex.tries)
            .filter_map(|t| t.sent)
            .map(|sent| sent + self.settings.timeout);
        let deadline = (!self.decided).then_some(self.deadline);
        tries.chain(deadline).min()
    }

    /// Fails the tries whose time is up, and the resolution at its
    /// deadline (SERVFAIL, counted in `resolutions_expired`).
    pub fn handle_timeout(&mut self, now: Instant, upstreams: &mut Upstreams) {
        let timeout = self.settings.timeout;
        while let Some((e, i)) = self.exchanges.iter().enumerate().find_map(|(e, ex)| {
            ex.tries
                .iter()
                .position(|t| t.sent.is_some_and(|s| s + timeout <= now))
                .map(|i| (e, i))
        }) {
            self.tally.upstream_timeouts += 1;
            self.fail(e, i, now, upstreams);
        }
        self.step(now, upstreams);
        if !self.decided && now >= self.deadline {
            self.tally.resolutions_expired += 1;
            self.decide(Outcome::ServFail);
        }
    }

    /// The reply for the client, once.
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// Whether try `handle` still waits for a reply (the caller closes the
    /// sockets of the others).
    pub fn is_live(&self, handle: TryHandle) -> bool {
        self.find(handle).is_some()
    }

    /// The outcome is decided and no try is left: the resolution can go.
    pub fn is_finished(&self) -> bool {
        self.decided && self.exchanges.iter().all(|ex| ex.tries.is_empty())
    }

    /// The counts since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Gives up the probes left (the caller stops before they end), so
    /// that other resolutions may probe those servers.
    pub fn abandon(&mut self, upstreams: &mut Upstreams) {
        for ex in &mut self.exchanges {
            for t in ex.tries.drain(..) {
                if t.probe {
                    upstreams.end_probe(t.upstream);
                }
            }
        }
    }

    /// Ends the resolution at once with SERVFAIL, no try left and nothing
    /// counted against a server: the caller cannot go on (no descriptor
    /// for an upstream socket). [`Resolution::is_finished`] holds after it.
    pub fn give_up(&mut self, upstreams: &mut Upstreams) {
        self.decide(Outcome::ServFail);
        self.abandon(upstreams);
    }

    fn find(&self, handle: TryHandle) -> Option<(usize, usize)> {
        self.exchanges.iter().enumerate().find_map(|(e, ex)| {
            ex.tries
                .iter()
                .position(|t| t.handle == handle)
                .map(|i| (e, i))
        })
    }

    fn new_try(&mut self, upstream: SocketAddr, probe: bool) -> Try {
        self.next_handle += 1;
        Try {
            handle: TryHandle(self.next_handle),
            upstream,
            transport: Transport::Udp,
            id: None,
            probe,
            sent: None,
        }
    }

    /// Starts exchange `e`: its first server, and a probe of a failed one
    /// when one is due.
    fn start(&mut self, e: usize, now: Instant, upstreams: &mut Upstreams) {
        let order = upstreams.order();
        let Some(&first) = order.first() else {
            self.exchanges[e].progress = Progress::Done(None);
            self.tally.upstream_failures += 1;
            return;
        };
        let mut tries = vec![self.new_try(first, false)];
        if let Some(probe) = upstreams.take_probe(now, first) {
            tries.push(self.new_try(probe, true));
        }
        let ex = &mut self.exchanges[e];
        ex.order = order;
        ex.next = 1;
        ex.tries = tries;
        ex.progress = Progress::Running;
    }

    /// Try `i` of exchange `e` failed: the next server, or the question
    /// failed.
    fn fail(&mut self, e: usize, i: usize, now: Instant, upstreams: &mut Upstreams) {
        let t = self.exchanges[e].tries.remove(i);
        if let Some(sent) = t.sent {
            upstreams.handle_failure(t.upstream, sent, now, t.probe);
        } else if t.probe {
            upstreams.end_probe(t.upstream);
        }
        self.next_server(e, t.probe);
    }

    /// A try of exchange `e` ended without an answer (a probe's end
    /// changes nothing): the next server, or the question is done, with
    /// the latest error reply if there was one.
    fn next_server(&mut self, e: usize, probe: bool) {
        let ex = &self.exchanges[e];
        if probe || !matches!(ex.progress, Progress::Running) {
            return;
        }
        match ex.order.get(ex.next).copied() {
            Some(next) => {
                let retry = self.new_try(next, false);
                let ex = &mut self.exchanges[e];
                ex.next += 1;
                ex.tries.push(retry);
            }
            None => {
                let ex = &mut self.exchanges[e];
                if ex.tries.iter().any(|t| !t.probe) {
                    return;
                }
                let fallback = ex.fallback.take();
                if fallback.is_none() {
                    self.tally.upstream_failures += 1;
                }
                self.exchanges[e].progress = Progress::Done(fallback);
            }
        }
    }

    /// The result of exchange `e` when it is done (then it is over).
    fn take_result(&mut self, e: usize) -> Option<Option<Vec<u8>>> {
        let ex = self.exchanges.get_mut(e)?;
        if !matches!(ex.progress, Progress::Done(_)) {
            return None;
        }
        match std::mem::replace(&mut ex.progress, Progress::Over) {
            Progress::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Decides the outcome: what is left to ask is dropped (probes go on).
    fn decide(&mut self, outcome: Outcome) {
        if self.decided {
            return;
        }
        self.decided = true;
        self.outcome = Some(outcome);
        for ex in &mut self.exchanges {
            ex.tries.retain(|t| t.probe);
            ex.progress = Progress::Over;
        }
    }

    /// Moves on with what the exchanges have found.
    fn step(&mut self, now: Instant, upstreams: &mut Upstreams) {
        if self.decided {
            return;
        }
        match &self.kind {
            Kind::Forward => {
                if let Some(r) = self.take_result(0) {
                    let outcome = self.pass(r);
                    self.decide(outcome);
                }
            }
            Kind::Reverse { target } => {
                let target = target.clone();
                if let Some(r) = self.take_result(0) {
                    let outcome = self.reverse(r, &target);
                    self.decide(outcome);
                }
            }
            Kind::Aaaa { aaaa: None } => {
                if let Some(r) = self.take_result(0) {
                    self.classify(r, now, upstreams);
                    // The A answer may be there already.
                    self.step(now, upstreams);
                }
            }
            Kind::Aaaa { aaaa: Some(_) } => {
                if let Some(a_raw) = self.take_result(1) {
                    let outcome = self.synthesize(a_raw);
                    self.decide(outcome);
                }
            }
        }
    }

    /// An upstream answer relayed, the client's id set; `None`: SERVFAIL.
    fn pass(&mut self, raw: Option<Vec<u8>>) -> Outcome {
        match raw {
            Some(mut raw) => {
                wire::set_id(&mut raw, self.query.id());
                self.tally.passed_through += 1;
                Outcome::Answer(raw)
            }
            None => Outcome::ServFail,
        }
    }

    /// RFC 6147 §5.3.1: the CNAME to the in-addr.arpa name with its PTR
    /// answer.
    fn reverse(&mut self, raw: Option<Vec<u8>>, target: &Name) -> Outcome {
        let Some(raw) = raw else {
            return Outcome::ServFail;
        };
        let Ok(ptr) = Message::from_vec(&raw) else {
            self.tally.upstream_errors += 1;
            return Outcome::ServFail;
        };
        self.tally.reverse_mapped += 1;
        encoded(&reverse_answer(&self.query, target, &ptr))
    }

    /// RFC 6147 §5.1.1, §5.1.2: the AAAA answer is passed through, or the
    /// A records are needed. Every upstream failing counts as SERVFAIL for
    /// these rules, but is never sent as such.
    fn classify(&mut self, raw: Option<Vec<u8>>, now: Instant, upstreams: &mut Upstreams) {
        let (aaaa, raw) = match raw {
            Some(mut raw) => {
                wire::set_id(&mut raw, self.query.id());
                match Message::from_vec(&raw) {
                    Ok(m) => (m, Some(raw)),
                    // Undecodable: relayed as it is.
                    Err(_) => {
                        let outcome = self.pass(Some(raw));
                        return self.decide(outcome);
                    }
                }
            }
            None => (self.query.error_reply(ResponseCode::ServFail), None),
        };
        match classify_aaaa(&self.query, &aaaa, &self.policy) {
            AaaaVerdict::PassThrough(reason) => {
                if self.settings.parallel_a {
                    self.tally.parallel_a_unused += 1;
                }
                match reason {
                    PassReason::RealAaaa => self.tally.real_aaaa += 1,
                    PassReason::Error(_) => self.tally.error_passed += 1,
                    _ => {}
                }
                let outcome = self.pass_aaaa(raw);
                self.decide(outcome);
            }
            AaaaVerdict::RealWithoutExcluded(m) => {
                // RFC 6147 §5.1.4: the excluded records never reach the
                // client; the real ones win (§5.1.1).
                if self.settings.parallel_a {
                    self.tally.parallel_a_unused += 1;
                }
                self.tally.real_aaaa += 1;
                self.tally.excluded_aaaa_removed += 1;
                self.decide(encoded(&m));
            }
            AaaaVerdict::QueryA => {
                self.kind = Kind::Aaaa {
                    aaaa: Some((aaaa, raw)),
                };
                if matches!(self.exchanges[1].progress, Progress::NotStarted) {
                    self.start(1, now, upstreams);
                }
            }
        }
    }

    /// The AAAA answer as it came (its id already the client's).
    fn pass_aaaa(&mut self, raw: Option<Vec<u8>>) -> Outcome {
        match raw {
            Some(raw) => {
                self.tally.passed_through += 1;
                Outcome::Answer(raw)
            }
            None => Outcome::ServFail,
        }
    }

    /// RFC 6147 §5.1.6: synthesis from the A answer (`None`: every server
    /// failed).
    fn synthesize(&mut self, a_raw: Option<Vec<u8>>) -> Outcome {
        let Kind::Aaaa {
            aaaa: Some((aaaa, aaaa_raw)),
        } = std::mem::replace(&mut self.kind, Kind::Aaaa { aaaa: None })
        else {
            return Outcome::ServFail;
        };
        let Some(a_raw) = a_raw else {
            return self.pass_aaaa(aaaa_raw);
        };
        let Ok(a) = Message::from_vec(&a_raw) else {
            self.tally.upstream_errors += 1;
            return self.pass_aaaa(aaaa_raw);
        };
        match synthesize(&self.query, &aaaa, &a, &self.policy) {
            Synthesis::Synthesized(m) => {
                self.tally.synthesized += 1;
                if aaaa.response_code() != ResponseCode::NoError {
                    self.tally.synthesized_on_error += 1;
                }
                encoded(&m)
            }
            Synthesis::NoData(m) => {
                self.tally.excluded_aaaa_removed += 1;
                encoded(&m)
            }
            Synthesis::AaaaResponse => {
                self.tally.nothing_to_synthesize += 1;
                self.pass_aaaa(aaaa_raw)
            }
        }
    }
}

const RCODE_FORMERR: u8 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// A reply of ours, encoded; SERVFAIL if it cannot be.
fn encoded(m: &Message) -> Outcome {
    m.to_vec().map_or(Outcome::ServFail, Outcome::Answer)
}

#[cfg(test)]
mod tests;
