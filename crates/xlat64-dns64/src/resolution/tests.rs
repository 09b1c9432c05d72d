//! The resolution machine on a virtual clock: every time is `t0` plus an
//! exact offset, and the fake upstreams are the test's own hands.

use super::*;
use crate::testutil::*;
use crate::upstreams::UpstreamEvent;
use hickory_proto::op::MessageType;

const TIMEOUT: Duration = Duration::from_secs(2);

fn up(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i], 53))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A resolution of `qname`/`t` over `servers`, and a counter for ids.
struct Bench {
    t0: Instant,
    ups: Upstreams,
    ids: u16,
}

impl Bench {
    fn new(servers: &[SocketAddr]) -> Self {
        Bench {
            t0: Instant::now(),
            ups: Upstreams::new(servers),
            ids: 100,
        }
    }

    fn start(&mut self, at: Duration, qname: &str, t: RecordType, parallel_a: bool) -> Resolution {
        let bytes = query(qname, t).to_vec().unwrap();
        let q = crate::parse_query(&bytes).unwrap();
        let policy = Arc::new(policy_wkp());
        let plan = q.plan(&policy);
        let settings = ResolverSettings {
            timeout: TIMEOUT,
            parallel_a,
        };
        Resolution::new(
            self.t0 + at,
            q,
            &bytes,
            plan,
            policy,
            settings,
            &mut self.ups,
        )
        .unwrap()
    }

    /// Everything `r` wants to send at `at`.
    fn transmits(&mut self, r: &mut Resolution, at: Duration) -> Vec<Transmit> {
        let ids = &mut self.ids;
        let mut next = || {
            *ids += 1;
            *ids
        };
        std::iter::from_fn(|| r.poll_transmit(self.t0 + at, &mut next)).collect()
    }

    fn reply(&mut self, r: &mut Resolution, at: Duration, t: &Transmit, bytes: Vec<u8>) {
        r.handle_reply(self.t0 + at, t.handle, bytes, &mut self.ups);
    }

    fn timeout(&mut self, r: &mut Resolution, at: Duration) {
        r.handle_timeout(self.t0 + at, &mut self.ups);
    }
}

/// The upstream's answer to `t` (same id and question), changed by `edit`.
fn answer(t: &Transmit, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let q = Message::from_vec(&t.bytes).unwrap();
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true);
    m.add_query(q.queries()[0].clone());
    edit(&mut m);
    m.to_vec().unwrap()
}

fn qtype(t: &Transmit) -> RecordType {
    Message::from_vec(&t.bytes).unwrap().queries()[0].query_type()
}

fn a_answer(t: &Transmit) -> Vec<u8> {
    answer(t, |m| {
        m.add_answer(a_rr("a.example.", "93.184.216.34", 300));
    })
}

fn nodata(t: &Transmit) -> Vec<u8> {
    answer(t, |_| {})
}

fn answered(r: &mut Resolution) -> Message {
    match r.poll_outcome() {
        Some(Outcome::Answer(b)) => Message::from_vec(&b).unwrap(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn forward_relays_the_answer_with_the_client_id() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    assert_eq!(tx.len(), 1);
    assert_eq!((tx[0].upstream, tx[0].transport), (up(1), Transport::Udp));
    assert_eq!(wire::id(&tx[0].bytes), Some(101), "the id from the caller");
    b.reply(&mut r, ms(5), &tx[0], a_answer(&tx[0]));
    let m = answered(&mut r);
    assert_eq!(m.id(), 0x1234);
    assert_eq!(m.answers().len(), 1);
    assert!(r.is_finished());
    let tally = r.take_tally();
    assert_eq!((tally.upstream_queries, tally.passed_through), (1, 1));
    assert_eq!(b.ups.status().next().unwrap().srtt, Some(ms(5)));
}

#[test]
fn rfc5452_9_1_mismatched_id_or_question_ignored() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    let mut wrong_id = a_answer(&tx[0]);
    wire::set_id(&mut wrong_id, 7);
    b.reply(&mut r, ms(1), &tx[0], wrong_id);
    let other_question = answer(&tx[0], |m| {
        m.queries_mut()[0].set_query_type(RecordType::MX);
    });
    b.reply(&mut r, ms(1), &tx[0], other_question);
    assert_eq!(r.poll_outcome(), None);
    assert!(r.is_live(tx[0].handle));
    assert_eq!(r.take_tally().upstream_mismatched, 2);
    b.reply(&mut r, ms(2), &tx[0], a_answer(&tx[0]));
    answered(&mut r);
}

#[test]
fn failover_after_the_exact_timeout_and_the_failed_server_is_asked_last() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    assert_eq!(tx[0].upstream, up(1));
    assert_eq!(r.poll_timeout(), Some(b.t0 + TIMEOUT));
    b.timeout(&mut r, TIMEOUT - Duration::from_micros(1));
    assert!(b
        .transmits(&mut r, TIMEOUT - Duration::from_micros(1))
        .is_empty());
    b.timeout(&mut r, TIMEOUT);
    assert!(!r.is_live(tx[0].handle));
    let tx2 = b.transmits(&mut r, TIMEOUT);
    assert_eq!(tx2.len(), 1);
    assert_eq!(tx2[0].upstream, up(2));
    assert_ne!(
        wire::id(&tx2[0].bytes),
        wire::id(&tx[0].bytes),
        "a fresh id"
    );
    assert_eq!(r.poll_timeout(), Some(b.t0 + TIMEOUT * 2));
    b.reply(&mut r, TIMEOUT + ms(3), &tx2[0], a_answer(&tx2[0]));
    answered(&mut r);
    let tally = r.take_tally();
    assert_eq!((tally.upstream_timeouts, tally.upstream_queries), (1, 2));
    // The next query goes to the second server first.
    assert_eq!(b.ups.order(), vec![up(2), up(1)]);
    let mut r = b.start(ms(2100), "b.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(2100));
    assert_eq!(tx.len(), 1, "no probe before the backoff");
    assert_eq!(tx[0].upstream, up(2));
}

#[test]
fn both_servers_down_servfail_after_both_tries() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    r.handle_error(b.t0 + ms(1), tx[0].handle, &mut b.ups);
    let tx = b.transmits(&mut r, ms(1));
    assert_eq!(tx[0].upstream, up(2));
    b.timeout(&mut r, ms(1) + TIMEOUT);
    assert_eq!(r.poll_outcome(), Some(Outcome::ServFail));
    assert!(r.is_finished());
    assert_eq!(r.poll_timeout(), None);
    let tally = r.take_tally();
    assert_eq!(
        (
            tally.upstream_errors,
            tally.upstream_timeouts,
            tally.upstream_failures
        ),
        (1, 1, 1)
    );
}

#[test]
fn rfc7766_5_truncated_answer_asked_again_over_tcp_of_that_server() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::TXT, true);
    let tx = b.transmits(&mut r, ms(0));
    let truncated = answer(&tx[0], |m| {
        m.set_truncated(true);
    });
    b.reply(&mut r, ms(1), &tx[0], truncated);
    assert_eq!(r.poll_outcome(), None);
    let tcp = b.transmits(&mut r, ms(1));
    assert_eq!(tcp.len(), 1);
    assert_eq!((tcp[0].upstream, tcp[0].transport), (up(1), Transport::Tcp));
    assert_eq!(tcp[0].bytes, tx[0].bytes, "the same message and id");
    // The TCP try has a timeout of its own.
    assert_eq!(r.poll_timeout(), Some(b.t0 + ms(1) + TIMEOUT));
    b.reply(&mut r, ms(4), &tcp[0], a_answer(&tcp[0]));
    answered(&mut r);
    let tally = r.take_tally();
    assert_eq!((tally.upstream_tcp_retries, tally.upstream_queries), (1, 2));
}

#[test]
fn rfc6147_5_1_parallel_a_goes_out_with_aaaa_and_is_used_for_synthesis() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
    let tx = b.transmits(&mut r, ms(0));
    let types: Vec<_> = tx.iter().map(qtype).collect();
    assert_eq!(types, vec![RecordType::AAAA, RecordType::A]);
    // The A answer first, then an empty AAAA one: synthesis at once.
    b.reply(&mut r, ms(10), &tx[1], a_answer(&tx[1]));
    assert_eq!(r.poll_outcome(), None);
    b.reply(&mut r, ms(11), &tx[0], nodata(&tx[0]));
    let m = answered(&mut r);
    assert_eq!(m.id(), 0x1234);
    assert_eq!(m.answers().len(), 1);
    assert_eq!(r.take_tally().synthesized, 1);
}

#[test]
fn rfc6147_5_1_without_parallel_a_the_a_query_waits_for_the_aaaa_answer() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, false);
    let tx = b.transmits(&mut r, ms(0));
    assert_eq!(
        tx.iter().map(qtype).collect::<Vec<_>>(),
        vec![RecordType::AAAA]
    );
    b.reply(&mut r, ms(10), &tx[0], nodata(&tx[0]));
    let a = b.transmits(&mut r, ms(10));
    assert_eq!(a.iter().map(qtype).collect::<Vec<_>>(), vec![RecordType::A]);
    b.reply(&mut r, ms(20), &a[0], a_answer(&a[0]));
    assert_eq!(answered(&mut r).answers().len(), 1);
}

#[test]
fn rfc6147_5_1_1_real_aaaa_passes_and_the_parallel_a_is_dropped() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
    let tx = b.transmits(&mut r, ms(0));
    b.reply(
        &mut r,
        ms(1),
        &tx[0],
        answer(&tx[0], |m| {
            m.add_answer(aaaa_rr("a.example.", "2001:db8::1", 300));
        }),
    );
    assert_eq!(answered(&mut r).answers().len(), 1);
    assert!(!r.is_live(tx[1].handle), "the A try is given up");
    assert!(r.is_finished());
    let tally = r.take_tally();
    assert_eq!((tally.real_aaaa, tally.parallel_a_unused), (1, 1));
}

#[test]
fn rfc6147_5_1_2_aaaa_timing_out_everywhere_is_synthesized_from_a() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
    let tx = b.transmits(&mut r, ms(0));
    b.reply(&mut r, ms(1), &tx[1], a_answer(&tx[1]));
    b.timeout(&mut r, TIMEOUT);
    // servfail = "synthesize" is the policy's default.
    assert_eq!(answered(&mut r).answers().len(), 1);
    let tally = r.take_tally();
    assert_eq!(
        (tally.synthesized_on_error, tally.upstream_failures),
        (1, 1)
    );
}

#[test]
fn deadline_ends_a_resolution_with_servfail() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let bytes = query("a.example.", RecordType::A).to_vec().unwrap();
    let q = crate::parse_query(&bytes).unwrap();
    let policy = Arc::new(policy_wkp());
    let plan = q.plan(&policy);
    let settings = ResolverSettings {
        timeout: Duration::from_secs(20),
        parallel_a: true,
    };
    let mut r = Resolution::new(b.t0, q, &bytes, plan, policy, settings, &mut b.ups).unwrap();
    b.transmits(&mut r, ms(0));
    b.timeout(&mut r, Duration::from_secs(20));
    b.transmits(&mut r, Duration::from_secs(20));
    // Two tries of 20 s, but at most MAX_RESOLUTION in all.
    assert_eq!(r.poll_timeout(), Some(b.t0 + MAX_RESOLUTION));
    b.timeout(&mut r, MAX_RESOLUTION - Duration::from_micros(1));
    assert_eq!(r.poll_outcome(), None);
    b.timeout(&mut r, MAX_RESOLUTION);
    assert_eq!(r.poll_outcome(), Some(Outcome::ServFail));
    assert!(r.is_finished());
    assert_eq!(r.take_tally().resolutions_expired, 1);
}

#[test]
fn a_failed_server_is_probed_by_a_copy_and_comes_back() {
    let mut b = Bench::new(&[up(1), up(2)]);
    // Two failures of up(1), one after the other: down.
    for at in [ms(0), ms(3000)] {
        let mut r = b.start(at, "a.example.", RecordType::A, true);
        let tx = b.transmits(&mut r, at);
        let first = tx.iter().find(|t| t.upstream == up(1)).unwrap();
        r.handle_error(b.t0 + at + ms(1), first.handle, &mut b.ups);
    }
    assert!(matches!(
        b.ups.poll_event(),
        Some(UpstreamEvent::Down { .. })
    ));
    assert_eq!(b.ups.poll_event(), None);
    // Its backoff (2 s after the second failure) passed: the next query
    // goes to up(2) and a copy to up(1).
    let at = ms(5001);
    let mut r = b.start(at, "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, at);
    assert_eq!(
        tx.iter().map(|t| t.upstream).collect::<Vec<_>>(),
        vec![up(2), up(1)]
    );
    b.reply(&mut r, at + ms(1), &tx[0], a_answer(&tx[0]));
    answered(&mut r);
    assert!(!r.is_finished(), "the probe goes on");
    assert!(r.is_live(tx[1].handle));
    b.reply(&mut r, at + ms(2), &tx[1], a_answer(&tx[1]));
    assert!(r.is_finished());
    assert_eq!(b.ups.poll_event(), Some(UpstreamEvent::Up { addr: up(1) }));
    assert_eq!(r.poll_outcome(), None, "one outcome only");
}

#[test]
fn a_probe_that_answers_first_answers_the_client() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    r.handle_error(b.t0 + ms(1), tx[0].handle, &mut b.ups);
    let tx = b.transmits(&mut r, ms(1));
    b.reply(&mut r, ms(2), &tx[0], a_answer(&tx[0]));
    answered(&mut r);
    let at = ms(1001);
    let mut r = b.start(at, "b.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, at);
    assert_eq!(tx.len(), 2);
    let probe = tx.iter().find(|t| t.upstream == up(1)).unwrap();
    let answer = answer(probe, |m| {
        m.add_answer(a_rr("b.example.", "192.0.2.34", 300));
    });
    b.reply(&mut r, at + ms(1), probe, answer);
    assert_eq!(answered(&mut r).answers().len(), 1);
    assert!(r.is_finished(), "the other try is no longer needed");
    assert_eq!(b.ups.status().next().unwrap().failures, 0);
}

#[test]
fn rfc6147_5_3_1_reverse_asks_ptr_of_the_ipv4_name() {
    let mut b = Bench::new(&[up(1)]);
    let qname = "2.2.8.d.8.b.d.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.9.f.f.4.6.0.0.ip6.arpa.";
    let mut r = b.start(ms(0), qname, RecordType::PTR, true);
    let tx = b.transmits(&mut r, ms(0));
    let q = Message::from_vec(&tx[0].bytes).unwrap();
    assert_eq!(
        q.queries()[0].name().to_ascii(),
        "34.216.184.93.in-addr.arpa."
    );
    b.reply(&mut r, ms(1), &tx[0], nodata(&tx[0]));
    let m = answered(&mut r);
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    assert_eq!(r.take_tally().reverse_mapped, 1);
}

#[test]
fn abandon_frees_the_probe() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let t1 = b.t0;
    b.ups.handle_failure(up(1), t1, t1, false);
    let mut r = b.start(ms(1000), "a.example.", RecordType::A, true);
    assert_eq!(b.transmits(&mut r, ms(1000)).len(), 2);
    r.abandon(&mut b.ups);
    assert!(r.is_finished() || r.poll_outcome().is_none());
    assert_eq!(b.ups.take_probe(t1 + ms(1000), up(2)), Some(up(1)));
}

#[test]
fn silent_server_aaaa_and_a_time_out_together_then_servfail() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
    assert_eq!(b.transmits(&mut r, ms(0)).len(), 2);
    assert_eq!(r.poll_timeout(), Some(b.t0 + TIMEOUT));
    b.timeout(&mut r, TIMEOUT);
    assert_eq!(r.poll_outcome(), Some(Outcome::ServFail));
    assert!(r.is_finished());
    let tally = r.take_tally();
    assert_eq!((tally.upstream_timeouts, tally.upstream_failures), (2, 2));
    // Both were sent together: one failure counted for the server.
    assert_eq!(b.ups.status().next().unwrap().failures, 1);
}

proptest::proptest! {
    /// Any bytes on any try's socket: no panic, and nothing but a valid
    /// answer ends the question.
    #[test]
    fn random_replies_never_panic(
        replies in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..8),
    ) {
        let mut b = Bench::new(&[up(1), up(2)]);
        let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
        let tx = b.transmits(&mut r, ms(0));
        for (i, bytes) in replies.into_iter().enumerate() {
            b.reply(&mut r, ms(1), &tx[i % tx.len()], bytes);
        }
        b.timeout(&mut r, MAX_RESOLUTION);
        proptest::prop_assert!(r.poll_outcome().is_some());
    }
}

#[test]
fn rfc6147_5_1_4_excluded_records_beside_real_ones_are_removed() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, true);
    let tx = b.transmits(&mut r, ms(0));
    b.reply(
        &mut r,
        ms(1),
        &tx[0],
        answer(&tx[0], |m| {
            m.add_answer(aaaa_rr("a.example.", "2001:db8::1", 300));
            m.add_answer(aaaa_rr("a.example.", "::ffff:192.0.2.1", 300));
        }),
    );
    let m = answered(&mut r);
    assert_eq!(m.answers().len(), 1);
    let tally = r.take_tally();
    assert_eq!((tally.real_aaaa, tally.excluded_aaaa_removed), (1, 1));
}

/// The answer to `t` with RCODE `rcode`, nothing in it.
fn error_answer(t: &Transmit, rcode: ResponseCode) -> Vec<u8> {
    answer(t, |m| {
        m.set_response_code(rcode);
    })
}

/// A server that refuses us is not one to ask: the next server answers,
/// the refusing one counts a failure (a fast REFUSED never makes it the
/// preferred server), and with no server left the REFUSED is the answer.
#[test]
fn refused_goes_to_the_next_server_and_counts_against_the_refusing_one() {
    let mut b = Bench::new(&[up(1), up(2)]);
    // up(2) measured fast before, up(1) slower: up(2) comes first.
    b.ups.handle_answer(up(1), ms(20), false);
    b.ups.handle_answer(up(2), ms(1), false);
    assert_eq!(b.ups.order(), vec![up(2), up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    assert_eq!(tx[0].upstream, up(2));
    b.reply(
        &mut r,
        ms(1),
        &tx[0],
        error_answer(&tx[0], ResponseCode::Refused),
    );
    assert_eq!(r.poll_outcome(), None);
    let next = b.transmits(&mut r, ms(1));
    assert_eq!(next[0].upstream, up(1));
    b.reply(&mut r, ms(21), &next[0], a_answer(&next[0]));
    assert_eq!(answered(&mut r).answers().len(), 1);
    let tally = r.take_tally();
    assert_eq!(
        (tally.upstream_error_rcodes, tally.upstream_failures),
        (1, 0)
    );
    // The refusal counted as a failure: up(1) is asked first from now on.
    assert_eq!(b.ups.order(), vec![up(1), up(2)]);
    assert_eq!(b.ups.status().nth(1).unwrap().failures, 1);

    let mut only = Bench::new(&[up(1)]);
    let mut r = only.start(ms(0), "a.example.", RecordType::A, true);
    let tx = only.transmits(&mut r, ms(0));
    only.reply(
        &mut r,
        ms(1),
        &tx[0],
        error_answer(&tx[0], ResponseCode::Refused),
    );
    assert_eq!(answered(&mut r).response_code(), ResponseCode::Refused);
    assert!(r.is_finished());
}

/// SERVFAIL is about the name, not the server: the next server is asked,
/// the failing one keeps its health; when every server says SERVFAIL,
/// the last SERVFAIL is the answer (so the RFC 6147 §5.1.2 rules see it).
#[test]
fn servfail_asks_the_next_server_and_is_the_answer_when_all_say_it() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    b.reply(
        &mut r,
        ms(1),
        &tx[0],
        error_answer(&tx[0], ResponseCode::ServFail),
    );
    let next = b.transmits(&mut r, ms(1));
    assert_eq!(next[0].upstream, up(2));
    b.reply(
        &mut r,
        ms(2),
        &next[0],
        error_answer(&next[0], ResponseCode::ServFail),
    );
    let m = answered(&mut r);
    assert_eq!(
        (m.id(), m.response_code()),
        (0x1234, ResponseCode::ServFail)
    );
    let tally = r.take_tally();
    assert_eq!(
        (tally.upstream_error_rcodes, tally.upstream_failures),
        (2, 0)
    );
    assert!(b.ups.status().all(|s| s.up && s.failures == 0));
}

/// After TC=1 the TCP retry is a new try: a late copy of the truncated
/// datagram on the UDP try is not taken for the TCP answer (its handle is
/// dead, so the caller closes that socket).
#[test]
fn rfc7766_5_after_truncation_the_udp_try_is_over() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::AAAA, false);
    let tx = b.transmits(&mut r, ms(0));
    let truncated = answer(&tx[0], |m| {
        m.set_truncated(true);
    });
    b.reply(&mut r, ms(1), &tx[0], truncated.clone());
    assert!(!r.is_live(tx[0].handle));
    let tcp = b.transmits(&mut r, ms(1));
    assert_eq!(tcp[0].transport, Transport::Tcp);
    assert_ne!(tcp[0].handle, tx[0].handle);
    b.reply(&mut r, ms(2), &tx[0], truncated);
    assert_eq!(r.poll_outcome(), None);
    assert!(r.is_live(tcp[0].handle));
}

/// The TCP retry gets its full timeout even when the truncated answer
/// came just before the deadline: the deadline moves to make room.
#[test]
fn rfc7766_5_the_tcp_retry_has_its_timeout_within_the_deadline() {
    let mut b = Bench::new(&[up(1)]);
    let mut r = b.start(ms(0), "a.example.", RecordType::A, true);
    let tx = b.transmits(&mut r, ms(0));
    let truncated = answer(&tx[0], |m| {
        m.set_truncated(true);
    });
    b.reply(&mut r, ms(1900), &tx[0], truncated);
    let tcp = b.transmits(&mut r, ms(1900));
    b.timeout(&mut r, ms(2000));
    assert_eq!(r.poll_outcome(), None, "not cut off at the first deadline");
    b.reply(&mut r, ms(3000), &tcp[0], a_answer(&tcp[0]));
    assert_eq!(answered(&mut r).answers().len(), 1);
    assert_eq!(r.take_tally().resolutions_expired, 0);
}

/// Giving up (no descriptor for a socket) ends the resolution at once:
/// SERVFAIL, no try left to wait for, nothing counted as expired.
#[test]
fn give_up_finishes_at_once_without_an_expiry() {
    let mut b = Bench::new(&[up(1), up(2)]);
    let t1 = b.t0;
    b.ups.handle_failure(up(1), t1, t1, false);
    let mut r = b.start(ms(1000), "a.example.", RecordType::AAAA, true);
    assert!(b.transmits(&mut r, ms(1000)).len() >= 2);
    r.give_up(&mut b.ups);
    assert!(r.is_finished());
    assert_eq!(r.poll_outcome(), Some(Outcome::ServFail));
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.take_tally().resolutions_expired, 0);
    // Its probe was given back.
    assert_eq!(b.ups.take_probe(t1 + ms(1000), up(2)), Some(up(1)));
}
