//! Tests of the whole server, over UDP and TCP on 127.0.0.1, against a
//! fake upstream.

use super::{CacheFlusher, Dns64Counters, Dns64Reloader, Dns64Server, ReloadNote};
use crate::config::Dns64Section;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use xlat64_dns64::wire;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The fake upstream's canned answers, by query name.
fn canned(query: &Message) -> Option<Message> {
    let q = query.queries().first()?.clone();
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    m.add_query(q.clone());
    let soa = || {
        let data = SOA::new(
            name("ns.test."),
            name("admin.test."),
            1,
            3600,
            600,
            86400,
            300,
        );
        Record::from_rdata(name("test."), 900, RData::SOA(data))
    };
    let owner = q.name().clone();
    match (q.name().to_ascii().as_str(), q.query_type()) {
        ("v4only.test.", RecordType::AAAA) => {
            m.add_name_server(soa());
        }
        ("v4only.test.", RecordType::A) | ("dual.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                owner,
                3600,
                RData::A(A(Ipv4Addr::new(93, 184, 216, 34))),
            ));
        }
        ("dual.test.", RecordType::AAAA) => {
            m.add_answer(Record::from_rdata(
                owner,
                3600,
                RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
            ));
        }
        ("big.test.", RecordType::AAAA) => {
            for i in 0..60u16 {
                let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i);
                m.add_answer(Record::from_rdata(
                    owner.clone(),
                    60,
                    RData::AAAA(AAAA(addr)),
                ));
            }
        }
        ("brief.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                owner,
                1,
                RData::A(A(Ipv4Addr::new(93, 184, 216, 36))),
            ));
        }
        ("silent.test.", _) => return None,
        ("fail.test.", RecordType::AAAA) => {
            m.set_response_code(ResponseCode::ServFail);
        }
        ("fail.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                owner,
                3600,
                RData::A(A(Ipv4Addr::new(93, 184, 216, 35))),
            ));
        }
        ("private.test.", RecordType::AAAA) => {
            m.add_name_server(soa());
        }
        ("private.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                owner,
                3600,
                RData::A(A(Ipv4Addr::new(192, 168, 1, 1))),
            ));
        }
        _ => {
            m.set_response_code(ResponseCode::NXDomain);
            m.add_name_server(soa());
        }
    }
    Some(m)
}

/// A tiny upstream on 127.0.0.1 (UDP and TCP on one port). UDP answers
/// over 512 bytes are sent truncated (TC=1), like a real server does for
/// clients without EDNS. It also sends a decoy with a wrong id first.
/// Each answer waits `delay` (an upstream round trip); `queries` counts
/// what it received, by query type.
struct FakeUpstream {
    addr: SocketAddr,
    queries: Arc<std::sync::Mutex<Vec<RecordType>>>,
}

impl FakeUpstream {
    fn count(&self) -> usize {
        self.queries.lock().unwrap().len()
    }
}

async fn fake_upstream(shutdown: CancellationToken, delay: Duration) -> FakeUpstream {
    // The kernel picks a free UDP port; TCP on the same number may be
    // taken (by another test's connection): then try another port.
    let (udp, tcp) = 'bound: {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break 'bound (Arc::new(udp), tcp);
            }
        }
        panic!("no port free for both UDP and TCP");
    };
    let addr = udp.local_addr().unwrap();
    let stop = shutdown.clone();
    let queries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                r = udp.recv_from(&mut buf) => r.unwrap(),
            };
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            if let Some(q) = query.queries().first() {
                seen.lock().unwrap().push(q.query_type());
            }
            let Some(reply) = canned(&query) else {
                continue;
            };
            let udp = udp.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut decoy = reply.clone();
                decoy.set_id(query.id().wrapping_add(1));
                let _ = udp.send_to(&decoy.to_vec().unwrap(), peer).await;
                let bytes = reply.to_vec().unwrap();
                let (bytes, _) = wire::fit_udp(bytes, 512);
                let _ = udp.send_to(&bytes, peer).await;
            });
        }
    });
    let seen = queries.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tcp.accept() => r.unwrap(),
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    stream.read_exact(&mut body).await.unwrap();
                    let query = Message::from_vec(&body).unwrap();
                    seen.lock().unwrap().push(query.queries()[0].query_type());
                    let reply = canned(&query).unwrap().to_vec().unwrap();
                    stream
                        .write_all(&(reply.len() as u16).to_be_bytes())
                        .await
                        .unwrap();
                    stream.write_all(&reply).await.unwrap();
                }
            });
        }
    });
    FakeUpstream { addr, queries }
}

struct Harness {
    addr: SocketAddr,
    counters: Arc<Dns64Counters>,
    flusher: CacheFlusher,
    reloader: Dns64Reloader,
    /// The section the server started with (a reload's starting point).
    section: Dns64Section,
    shutdown: CancellationToken,
}

impl Harness {
    /// A reload to the started section as changed by `change`.
    fn reload(&self, change: impl FnOnce(&mut Dns64Section)) -> ReloadNote {
        let mut new = self.section.clone();
        change(&mut new);
        self.reloader.prepare(&new).expect("valid section").apply()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `[dns64]` with every default, listening on a free loopback port.
fn section(upstreams: Vec<SocketAddr>, timeout_ms: u64) -> Dns64Section {
    let mut section: Dns64Section = toml::from_str("").unwrap();
    section.listen = vec!["127.0.0.1:0".parse().unwrap()];
    section.upstream = upstreams;
    section.prefix = Some("64:ff9b::/96".parse().unwrap());
    section.upstream_timeout_ms = timeout_ms;
    section
}

async fn start(upstreams: Vec<SocketAddr>, timeout_ms: u64) -> Harness {
    start_section(section(upstreams, timeout_ms)).await
}

/// Binds on port 0; as in `fake_upstream`, TCP on the port the kernel
/// gave UDP may be taken by another test, so a few tries are allowed. As
/// many UDP threads as the test's runtime has workers (one, unless the
/// test asks for a multi-thread runtime).
async fn bind_retrying(section: &Dns64Section) -> Dns64Server {
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let mut bound = Dns64Server::bind(section, threads).await;
    for _ in 0..50 {
        if bound.is_ok() {
            break;
        }
        bound = Dns64Server::bind(section, threads).await;
    }
    bound.unwrap()
}

async fn start_section(section: Dns64Section) -> Harness {
    let server = bind_retrying(&section).await;
    let addr = server.local_addrs()[0];
    let counters = server.counters();
    let flusher = server.cache_flusher();
    let reloader = server.reloader();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    Harness {
        addr,
        counters,
        flusher,
        reloader,
        section,
        shutdown,
    }
}

/// A server on a fake upstream answering after `delay`, configured by
/// `configure`.
async fn start_fake_with(
    delay: Duration,
    configure: impl FnOnce(&mut Dns64Section),
) -> (Harness, FakeUpstream) {
    let up_stop = CancellationToken::new();
    let up = fake_upstream(up_stop.clone(), delay).await;
    let mut s = section(vec![up.addr], 1000);
    configure(&mut s);
    let h = start_section(s).await;
    // Stop the upstream together with the server.
    let stop = h.shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        up_stop.cancel();
    });
    (h, up)
}

async fn start_with_fake() -> Harness {
    start_fake_with(Duration::ZERO, |_| {}).await.0
}

fn query(qname: &str, t: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(0xabcd)
        .set_message_type(MessageType::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(name(qname), t));
    m
}

async fn ask_udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match timeout(Duration::from_secs(5), s.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn ask_udp(server: SocketAddr, m: &Message) -> Message {
    let raw = ask_udp_raw(server, &m.to_vec().unwrap())
        .await
        .expect("reply");
    Message::from_vec(&raw).unwrap()
}

async fn ask_tcp(stream: &mut TcpStream, m: &Message) -> Message {
    let bytes = m.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.unwrap();
    Message::from_vec(&body).unwrap()
}

fn aaaa_of(m: &Message) -> Vec<(Ipv6Addr, u32)> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::AAAA(AAAA(a)) => Some((*a, r.ttl())),
            _ => None,
        })
        .collect()
}

fn counter(h: &Harness, key: &str) -> u64 {
    let mut out = BTreeMap::new();
    h.counters.snapshot(&mut out);
    out[key]
}

#[tokio::test]
async fn nodata_aaaa_is_synthesized() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(m.id(), 0xabcd);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    // TTL: min(A 3600, SOA TTL 900, SOA minimum 300).
    assert_eq!(
        aaaa_of(&m),
        vec![("64:ff9b::5db8:d822".parse().unwrap(), 300)]
    );
    assert_eq!(counter(&h, "dns64_synthesized"), 1);
    assert!(counter(&h, "dns64_upstream_mismatched") >= 1);
}

#[tokio::test]
async fn real_aaaa_passes_through() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m), vec![("2001:db8::1".parse().unwrap(), 3600)]);
    assert_eq!(m.id(), 0xabcd);
    assert_eq!(counter(&h, "dns64_synthesized"), 0);
    assert_eq!(counter(&h, "dns64_real_aaaa"), 1);
}

#[tokio::test]
async fn nxdomain_passes_through() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.answers().is_empty());
    assert_eq!(counter(&h, "dns64_nxdomain"), 1);
}

#[tokio::test]
async fn a_query_passes_through() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::A)).await;
    assert_eq!(m.answers().len(), 1);
    assert_eq!(
        m.answers()[0].data(),
        &RData::A(A(Ipv4Addr::new(93, 184, 216, 34)))
    );
    assert_eq!(counter(&h, "dns64_passed_through"), 1);
}

#[tokio::test]
async fn malformed_gets_formerr_or_is_dropped() {
    let h = start_with_fake().await;
    let junk = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0];
    let raw = ask_udp_raw(h.addr, &junk).await.expect("FORMERR");
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.id(), 0x1234);
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    assert_eq!(counter(&h, "dns64_formerr"), 1);
    // Too short for a header: no reply at all; the server keeps serving.
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&[1, 2, 3], h.addr).await.unwrap();
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::A)).await;
    assert_eq!(m.answers().len(), 1);
    for _ in 0..100 {
        if counter(&h, "dns64_dropped_malformed") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counter(&h, "dns64_dropped_malformed"), 1);
}

/// A silent upstream: SERVFAIL once AAAA and A (asked together) timed
/// out; the exact times are tested on a virtual clock in
/// `xlat64_dns64::resolution`.
#[tokio::test]
async fn upstream_silent_gives_servfail_after_timeout() {
    // A socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let h = start(vec![silent.local_addr().unwrap()], 200).await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(m.id(), 0xabcd);
    assert_eq!(counter(&h, "dns64_upstream_timeouts"), 2);
    assert_eq!(counter(&h, "dns64_servfail_sent"), 1);
}

#[tokio::test]
async fn upstream_down_tries_next() {
    // The first upstream port is closed (ICMP port unreachable), the
    // second answers.
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let up_stop = CancellationToken::new();
    let up = fake_upstream(up_stop.clone(), Duration::ZERO).await;
    let h = start(vec![closed, up.addr], 300).await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m).len(), 1);
    assert!(counter(&h, "dns64_upstream_errors") + counter(&h, "dns64_upstream_timeouts") >= 1);
    up_stop.cancel();
}

#[tokio::test]
async fn tcp_queries_work_several_per_connection() {
    let h = start_with_fake().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let m = ask_tcp(&mut stream, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m).len(), 1);
    let m = ask_tcp(&mut stream, &query("dual.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m), vec![("2001:db8::1".parse().unwrap(), 3600)]);
    // A big answer: the upstream truncates over UDP, the server retries
    // over TCP and returns it whole over TCP.
    let m = ask_tcp(&mut stream, &query("big.test.", RecordType::AAAA)).await;
    assert_eq!(m.answers().len(), 60);
    assert!(!m.truncated());
    assert_eq!(counter(&h, "dns64_queries_tcp"), 3);
    assert!(counter(&h, "dns64_upstream_tcp_retries") >= 1);
}

#[tokio::test]
async fn udp_answer_truncated_to_client_limit() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("big.test.", RecordType::AAAA)).await;
    assert!(m.truncated());
    assert!(m.answers().is_empty());
    // With EDNS 4096 the client gets up to 1232 bytes: still too big.
    let mut q = query("big.test.", RecordType::AAAA);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    q.set_edns(e);
    let raw = ask_udp_raw(h.addr, &q.to_vec().unwrap()).await.unwrap();
    assert!(raw.len() <= 1232);
    assert!(Message::from_vec(&raw).unwrap().truncated());
    assert_eq!(counter(&h, "dns64_truncated_udp"), 2);
}

#[tokio::test]
async fn ipv4only_arpa_answered_locally() {
    // No upstream answers: the answer must be local.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let h = start(vec![silent.local_addr().unwrap()], 200).await;
    let m = ask_udp(h.addr, &query("ipv4only.arpa.", RecordType::AAAA)).await;
    let addrs: Vec<_> = aaaa_of(&m).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        addrs,
        vec![
            "64:ff9b::c000:aa".parse::<Ipv6Addr>().unwrap(),
            "64:ff9b::c000:ab".parse().unwrap()
        ]
    );
}

#[tokio::test]
async fn snapshot_lists_every_counter_with_prefix() {
    let h = start_with_fake().await;
    let mut out = BTreeMap::new();
    h.counters.snapshot(&mut out);
    assert!(out.len() >= 20);
    assert!(out.keys().all(|k| k.starts_with("dns64_")));
    // Nothing counted yet; the one upstream is up, not measured.
    assert_eq!(out.remove("dns64_upstream_0_up"), Some(1));
    assert!(out.values().all(|v| *v == 0));
    for k in [
        "dns64_queries_udp",
        "dns64_servfail_sent",
        "dns64_formerr",
        "dns64_notimp",
    ] {
        assert!(out.contains_key(k), "{k}");
    }
}

#[tokio::test]
async fn bind_error_names_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
    section.listen = vec![addr];
    let err = Dns64Server::bind(&section, 1).await.err().unwrap();
    assert!(
        err.starts_with(&format!("dns64.listen {addr}: UDP: ")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_get_one_udp_socket_each_on_one_port() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    let mut section = section(vec![up.addr], 300);
    section.listen = vec![h.addr];
    // Another server on the same port fails: UDP would join the group,
    // but the TCP port is taken.
    assert!(Dns64Server::bind(&section, 2).await.is_err());
    // Clients from many source ports, spread over both sockets, share
    // one cache.
    for i in 0..20 {
        let mut q = query("v4only.test.", RecordType::AAAA);
        q.set_id(i);
        let m = ask_udp(h.addr, &q).await;
        assert_eq!(m.id(), i);
        assert_eq!(aaaa_of(&m).len(), 1);
    }
    assert_eq!(counter(&h, "dns64_cache_hits"), 19);
    assert_eq!(counter(&h, "dns64_queries_udp"), 20);
    assert_eq!(up.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn bind_makes_a_reuseport_group_per_address() {
    let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
    section.listen = vec!["127.0.0.1:0".parse().unwrap()];
    let server = bind_retrying(&section).await;
    assert_eq!(server.udp.len(), 1);
    assert_eq!(server.udp[0].len(), 3);
    let port = server.local_addrs()[0].port();
    assert!(server.udp[0]
        .iter()
        .all(|s| s.local_addr().unwrap().port() == port));
}

#[tokio::test]
async fn shutdown_stops_run() {
    let mut section = section(vec!["127.0.0.1:53".parse().unwrap()], 100);
    section.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    let Ok(server) = Dns64Server::bind(&section, 1).await else {
        return; // no IPv6 loopback in this environment
    };
    let token = CancellationToken::new();
    let task = tokio::spawn(server.run(token.clone()));
    token.cancel();
    timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn client_outside_allow_is_refused_without_asking_upstream() {
    let (h, up) = start_fake_with(Duration::ZERO, |s| {
        s.allow = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert_eq!(m.id(), 0xabcd);
    assert!(m.answers().is_empty());
    // Over TCP the connection is closed at accept, nothing read.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let mut buf = [0u8; 2];
    let read = timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    assert_eq!(counter(&h, "dns64_refused"), 1);
    assert_eq!(counter(&h, "dns64_tcp_refused"), 1);
    assert_eq!(up.count(), 0);
    // Junk from outside gets nothing back, not even FORMERR.
    let junk = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0];
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&junk, h.addr).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(timeout(Duration::from_millis(300), s.recv(&mut buf))
        .await
        .is_err());
    assert_eq!(counter(&h, "dns64_refused_malformed"), 1);
}

#[tokio::test]
async fn rfc6147_5_1_client_outside_synthesize_for_gets_plain_nodata() {
    let (h, up) = start_fake_with(Duration::ZERO, |s| {
        s.synthesize_for = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty(), "{m:?}");
    assert_eq!(counter(&h, "dns64_client_not_in_synthesize_for"), 1);
    assert_eq!(counter(&h, "dns64_synthesized"), 0);
    // No A query was needed.
    assert_eq!(*up.queries.lock().unwrap(), vec![RecordType::AAAA]);
    // Real AAAA still come through.
    let m = ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m).len(), 1);
}

#[tokio::test]
async fn cache_answers_second_query_without_upstream() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    let first = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    let sent = up.count();
    assert_eq!(sent, 2, "AAAA and A");
    let mut q = query("V4ONLY.test.", RecordType::AAAA);
    q.set_id(0x1111);
    let second = ask_udp(h.addr, &q).await;
    assert_eq!(up.count(), sent, "answered from the cache");
    assert_eq!(second.id(), 0x1111);
    assert_eq!(second.queries()[0].name().to_string(), "V4ONLY.test.");
    assert_eq!(aaaa_of(&second), aaaa_of(&first));
    assert_eq!(counter(&h, "dns64_cache_hits"), 1);
    assert_eq!(counter(&h, "dns64_cache_misses"), 1);
    assert_eq!(counter(&h, "dns64_cache_entries"), 1);
    // NXDOMAIN (with SOA) is cached too; a DO=1 query is another entry.
    ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
    ask_udp(h.addr, &query("nope.test.", RecordType::AAAA)).await;
    assert_eq!(counter(&h, "dns64_cache_hits"), 2);
    let mut q = query("v4only.test.", RecordType::AAAA);
    let mut e = Edns::new();
    e.set_dnssec_ok(true);
    q.set_edns(e);
    ask_udp(h.addr, &q).await;
    assert_eq!(counter(&h, "dns64_cache_hits"), 2);
}

/// `xlat64 flush-cache`: the cache forgets every reply; the next query
/// goes upstream again.
#[tokio::test]
async fn flush_cache_empties_the_cache() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    let sent = up.count();
    assert_eq!(counter(&h, "dns64_cache_entries"), 1);
    assert_eq!(h.flusher.flush(), 1);
    assert_eq!(counter(&h, "dns64_cache_entries"), 0);
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(up.count(), 2 * sent, "asked upstream again");
}

#[tokio::test]
async fn cache_size_zero_always_asks_upstream() {
    let (h, up) = start_fake_with(Duration::ZERO, |s| s.cache_size = 0).await;
    ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    let sent = up.count();
    ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    assert_eq!(up.count(), 2 * sent);
    assert_eq!(counter(&h, "dns64_cache_hits"), 0);
}

#[tokio::test]
async fn rfc6147_5_1_2_servfail_synthesize_policy() {
    let h = start_with_fake().await;
    let m = ask_udp(h.addr, &query("fail.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    // No SOA from the failed AAAA query: TTL capped at 600 s (§5.1.7).
    assert_eq!(
        aaaa_of(&m),
        vec![("64:ff9b::5db8:d823".parse().unwrap(), 600)]
    );
    assert_eq!(counter(&h, "dns64_synthesized_on_error"), 1);
}

#[tokio::test]
async fn rfc6147_5_1_2_servfail_pass_policy() {
    let (h, _up) = start_fake_with(Duration::ZERO, |s| {
        s.servfail = crate::config::ServfailPolicy::Pass;
    })
    .await;
    let m = ask_udp(h.addr, &query("fail.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(m.answers().is_empty());
    assert_eq!(counter(&h, "dns64_error_passed"), 1);
    assert_eq!(counter(&h, "dns64_synthesized"), 0);
}

#[tokio::test]
async fn rfc6147_5_1_4_exclude_mapped_not_synthesized() {
    let (h, _up) = start_fake_with(Duration::ZERO, |s| {
        s.prefix = Some("2001:db8:64::/96".parse().unwrap());
    })
    .await;
    let m = ask_udp(h.addr, &query("private.test.", RecordType::AAAA)).await;
    assert_eq!(
        aaaa_of(&m),
        vec![("2001:db8:64::c0a8:101".parse().unwrap(), 300)]
    );
    let (h, _up) = start_fake_with(Duration::ZERO, |s| {
        s.prefix = Some("2001:db8:64::/96".parse().unwrap());
        s.exclude_mapped = vec!["192.168.0.0/16".parse().unwrap()];
    })
    .await;
    let m = ask_udp(h.addr, &query("private.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    assert_eq!(counter(&h, "dns64_nothing_to_synthesize"), 1);
}

#[tokio::test]
async fn rfc6147_5_5_do_and_cd_pass_through_unsynthesized() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    let mut q = query("v4only.test.", RecordType::AAAA);
    let mut e = Edns::new();
    e.set_dnssec_ok(true);
    q.set_edns(e);
    q.set_checking_disabled(true);
    let m = ask_udp(h.addr, &q).await;
    assert!(m.answers().is_empty());
    assert_eq!(counter(&h, "dns64_dnssec_cd"), 1);
    assert_eq!(*up.queries.lock().unwrap(), vec![RecordType::AAAA]);
}

/// `parallel-a` asks A with AAAA, or only after an empty AAAA answer;
/// the one round trip it saves is tested on a virtual clock in
/// `xlat64_dns64::resolution`.
#[tokio::test]
async fn parallel_a_setting_is_followed() {
    for parallel in [true, false] {
        let (h, up) = start_fake_with(Duration::ZERO, |s| {
            s.parallel_a = parallel;
            s.cache_size = 0;
        })
        .await;
        let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        assert_eq!(aaaa_of(&m).len(), 1);
        // A real AAAA: the A answer was not needed, and not asked without
        // parallel-a.
        ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        assert_eq!(counter(&h, "dns64_parallel_a_unused"), u64::from(parallel));
        assert_eq!(up.count(), if parallel { 4 } else { 3 });
    }
}

/// The same on loopback with no delay, 200 queries each, cache off:
/// printed, not asserted (timing on a shared machine).
#[tokio::test]
async fn parallel_a_on_a_fast_upstream() {
    for parallel in [true, false] {
        let (h, up) = start_fake_with(Duration::ZERO, |s| {
            s.parallel_a = parallel;
            s.cache_size = 0;
        })
        .await;
        let started = std::time::Instant::now();
        for _ in 0..200 {
            ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
        }
        let synth = started.elapsed() / 200;
        let started = std::time::Instant::now();
        for _ in 0..200 {
            ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
        }
        let real = started.elapsed() / 200;
        eprintln!(
            "parallel-a {parallel}: synthesized {synth:?}/query, real AAAA {real:?}/query, {} upstream queries",
            up.count()
        );
    }
}

/// A fake upstream stopped with the harness `h`.
async fn second_upstream(h: &Harness) -> FakeUpstream {
    fake_upstream(h.shutdown.clone(), Duration::ZERO).await
}

/// A reload to another upstream and another `allow` swaps them for the
/// next query and keeps the cache: the cached answer is still served.
#[tokio::test]
async fn reload_swaps_upstream_and_allow_and_keeps_the_cache() {
    let (h, first) = start_fake_with(Duration::ZERO, |_| {}).await;
    let cached = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    let asked_first = first.count();
    let second = second_upstream(&h).await;
    let note = h.reload(|s| {
        s.upstream = vec![second.addr];
        s.allow = vec!["127.0.0.0/8".parse().unwrap()];
        s.upstream_timeout_ms = 500;
        s.parallel_a = false;
        s.synthesize_for = vec!["127.0.0.1/32".parse().unwrap()];
    });
    assert!(note.emptied_by.is_empty(), "{note:?}");
    assert_eq!((note.dropped, note.held), (0, 1), "{note:?}");
    assert_eq!(note.to_string(), "DNS64 cache kept: 1 replies");
    // Cached: served over UDP (the receive loop) and TCP, no upstream asked.
    let hit = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&hit), aaaa_of(&cached));
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let hit = ask_tcp(&mut stream, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&hit), aaaa_of(&cached));
    assert_eq!(counter(&h, "dns64_cache_hits"), 2);
    // A new name goes to the new upstream only (parallel-a off: AAAA first,
    // no A needed for a real AAAA).
    let m = ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    assert_eq!(aaaa_of(&m).len(), 1);
    assert_eq!(*second.queries.lock().unwrap(), vec![RecordType::AAAA]);
    assert_eq!(first.count(), asked_first);
    // A client outside the new allow list is refused, even a cached name.
    h.reload(|s| s.allow = vec!["10.0.0.0/8".parse().unwrap()]);
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert_eq!(counter(&h, "dns64_cache_hits"), 2);
}

/// RFC 6147 §5.2: a new prefix changes every synthesized answer, so the
/// cache is emptied (and the reload says so); the next answer carries the
/// new prefix.
#[tokio::test]
async fn reload_of_the_prefix_empties_the_cache() {
    let h = start_with_fake().await;
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    let note = h.reload(|s| s.prefix = Some("2001:db8:64::/96".parse().unwrap()));
    assert_eq!(note.emptied_by, vec!["dns64.prefix"]);
    assert_eq!((note.dropped, note.held), (2, 0));
    assert_eq!(
        note.to_string(),
        "DNS64 cache emptied: 2 replies dropped, as dns64.prefix changed what they would hold"
    );
    assert_eq!(counter(&h, "dns64_cache_entries"), 0);
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(
        aaaa_of(&m),
        vec![("2001:db8:64::5db8:d822".parse().unwrap(), 300)]
    );
    // Each key that changes a reply empties it; together they are named.
    let note = h.reload(|s| {
        s.prefix = Some("2001:db8:64::/96".parse().unwrap());
        s.exclude = Vec::new();
        s.mapped = vec!["93.0.0.0/8".parse().unwrap()];
        s.exclude_mapped = vec!["10.0.0.0/8".parse().unwrap()];
        s.servfail = crate::config::ServfailPolicy::Pass;
        s.prefixes = vec![crate::config::Dns64PrefixEntry {
            prefix: "2001:db8:46::/96".parse().unwrap(),
            ipv4: vec!["93.184.0.0/16".parse().unwrap()],
        }];
    });
    assert_eq!(
        note.emptied_by,
        vec![
            "dns64.prefixes",
            "dns64.exclude",
            "dns64.mapped",
            "dns64.exclude-mapped",
            "dns64.servfail"
        ]
    );
    assert_eq!(note.dropped, 1);
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(
        aaaa_of(&m),
        vec![("2001:db8:46::5db8:d822".parse().unwrap(), 300)]
    );
}

/// `cache-size`: smaller keeps what fits, 0 turns the cache off, and a
/// size again turns it on.
#[tokio::test]
async fn reload_of_cache_size_resizes_turns_off_and_on() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    ask_udp(h.addr, &query("dual.test.", RecordType::AAAA)).await;
    // A sharded cache keeps at most 1 in all (which one depends on the
    // shards the two keys hash to).
    let note = h.reload(|s| s.cache_size = 1);
    assert_eq!(note.evicted + note.held, 2, "{note:?}");
    assert!(note.held <= 1, "{note:?}");
    assert_eq!(
        note.to_string(),
        format!(
            "DNS64 cache kept: {} replies, {} evicted to fit cache-size 1",
            note.held, note.evicted
        )
    );
    let held = note.held;
    let note = h.reload(|s| s.cache_size = 0);
    assert_eq!((note.evicted, note.held), (held, 0), "{note:?}");
    assert_eq!(
        note.to_string(),
        format!("DNS64 cache off (cache-size 0): {held} replies dropped")
    );
    // A queries: one upstream query each.
    let sent = up.count();
    ask_udp(h.addr, &query("dual.test.", RecordType::A)).await;
    ask_udp(h.addr, &query("dual.test.", RecordType::A)).await;
    assert_eq!(up.count(), sent + 2, "no cache");
    assert_eq!(counter(&h, "dns64_cache_entries"), 0);
    h.reload(|s| s.cache_size = 10);
    ask_udp(h.addr, &query("dual.test.", RecordType::A)).await;
    let hits = counter(&h, "dns64_cache_hits");
    ask_udp(h.addr, &query("dual.test.", RecordType::A)).await;
    assert_eq!(up.count(), sent + 3, "cached again");
    assert_eq!(counter(&h, "dns64_cache_hits"), hits + 1);
}

/// A query keeps the settings it started with; a reply made under settings
/// a reload has since replaced (and the cache emptied for) is sent but not
/// cached.
#[tokio::test]
async fn a_query_in_flight_keeps_its_settings_and_is_not_cached_after_a_reload() {
    let (h, up) = start_fake_with(Duration::from_millis(300), |_| {}).await;
    let addr = h.addr;
    let in_flight =
        tokio::spawn(async move { ask_udp(addr, &query("v4only.test.", RecordType::AAAA)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.reload(|s| s.prefix = Some("2001:db8:64::/96".parse().unwrap()));
    let m = in_flight.await.unwrap();
    assert_eq!(
        aaaa_of(&m),
        vec![("64:ff9b::5db8:d822".parse().unwrap(), 300)],
        "the old prefix, throughout"
    );
    assert_eq!(counter(&h, "dns64_cache_entries"), 0);
    let sent = up.count();
    let m = ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(
        aaaa_of(&m),
        vec![("2001:db8:64::5db8:d822".parse().unwrap(), 300)]
    );
    assert!(up.count() > sent, "asked upstream again");
}

/// An invalid section is refused by `prepare`, and nothing changes.
#[tokio::test]
async fn reload_refuses_an_invalid_section_and_changes_nothing() {
    let (h, up) = start_fake_with(Duration::ZERO, |_| {}).await;
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    let mut bad = h.section.clone();
    bad.upstream.clear();
    let e = h.reloader.prepare(&bad).err().expect("refused");
    assert!(e.contains("dns64.upstream"), "{e}");
    let mut bad = h.section.clone();
    bad.prefix = Some("2001:db8::/33".parse().unwrap());
    let e = h.reloader.prepare(&bad).err().expect("refused");
    assert!(e.contains("dns64.prefix"), "{e}");
    let sent = up.count();
    ask_udp(h.addr, &query("v4only.test.", RecordType::AAAA)).await;
    assert_eq!(up.count(), sent, "still cached");
}

/// A UDP upstream on 127.0.0.1 that answers each datagram with what
/// `reply` makes of its bytes (nothing for `None`), until `stop`.
pub(super) async fn udp_upstream(
    stop: CancellationToken,
    reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                r = socket.recv_from(&mut buf) => r.unwrap(),
            };
            if let Some(bytes) = reply(&buf[..len]) {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

/// An upstream that answers every query SERVFAIL (a recursive resolver
/// that cannot reach the name's servers).
async fn servfail_upstream(stop: CancellationToken) -> SocketAddr {
    udp_upstream(stop, |bytes| {
        let q = Message::from_vec(bytes).ok()?;
        let mut m = Message::new();
        m.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_response_code(ResponseCode::ServFail);
        m.add_queries(q.queries().to_vec());
        m.to_vec().ok()
    })
    .await
}

/// RFC 8767 §5, the client response timer: an upstream slower than
/// [`xlat64_dns64::STALE_ANSWER_AFTER`] gets the client a stale answer at
/// that time, and the resolution goes on and refreshes the cache.
#[tokio::test]
async fn rfc8767_5_a_slow_upstream_gets_a_stale_answer_after_the_client_response_timer() {
    let (h, _up) = start_fake_with(Duration::ZERO, |s| {
        s.serve_stale = 3600;
        s.upstream_timeout_ms = 5000;
    })
    .await;
    let q = query("brief.test.", RecordType::A);
    assert_eq!(ask_udp(h.addr, &q).await.answers()[0].ttl(), 1);
    let stop = CancellationToken::new();
    let slow = fake_upstream(stop.clone(), Duration::from_secs(3)).await;
    h.reload(|s| s.upstream = vec![slow.addr]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let inserts = counter(&h, "dns64_cache_inserts");
    let asked = std::time::Instant::now();
    let m = ask_udp(h.addr, &q).await;
    let took = asked.elapsed();
    assert_eq!(m.answers()[0].ttl(), xlat64_dns64::STALE_TTL, "{m:?}");
    assert!(
        took >= Duration::from_millis(1700) && took < Duration::from_millis(2900),
        "{took:?}"
    );
    assert_eq!(counter(&h, "dns64_cache_stale_served"), 1);
    // The slow answer arrives about a second later and goes to the cache.
    let waited = std::time::Instant::now();
    while counter(&h, "dns64_cache_inserts") == inserts && waited.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counter(&h, "dns64_cache_inserts"), inserts + 1);
    assert_eq!(slow.count(), 1);
    stop.cancel();
}

/// RFC 8767 serve-stale: when every upstream fails, or answers SERVFAIL,
/// a reply expired less than `serve-stale` ago is served with TTL 30;
/// without serve-stale, the client gets SERVFAIL.
#[tokio::test]
async fn rfc8767_stale_answer_when_every_upstream_fails() {
    let stop = CancellationToken::new();
    let failing = servfail_upstream(stop.clone()).await;
    // A port where nothing listens, or an upstream saying SERVFAIL.
    let silent: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (serve_stale, broken) in [(3600, silent), (0, silent), (3600, failing), (0, failing)] {
        let (h, _up) = start_fake_with(Duration::ZERO, |s| {
            s.serve_stale = serve_stale;
            s.upstream_timeout_ms = 200;
        })
        .await;
        let q = query("brief.test.", RecordType::A);
        let m = ask_udp(h.addr, &q).await;
        assert_eq!(m.answers()[0].ttl(), 1);
        // The upstream breaks, the answer expires.
        h.reload(|s| s.upstream = vec![broken]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let m = ask_udp(h.addr, &q).await;
        let case = format!("serve-stale {serve_stale}, upstream {broken}");
        if serve_stale > 0 {
            assert_eq!(m.response_code(), ResponseCode::NoError, "{case}");
            assert_eq!(m.answers().len(), 1, "{case}: {m:?}");
            assert_eq!(m.answers()[0].ttl(), xlat64_dns64::STALE_TTL);
            assert_eq!(counter(&h, "dns64_cache_stale_served"), 1, "{case}");
            assert_eq!(counter(&h, "dns64_servfail_sent"), 0, "{case}");
        } else {
            assert_eq!(m.response_code(), ResponseCode::ServFail, "{case}");
            assert_eq!(counter(&h, "dns64_cache_stale_served"), 0, "{case}");
        }
    }
    stop.cancel();
}
