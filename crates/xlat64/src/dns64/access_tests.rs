//! Access control before resources: a refused client costs less than a
//! cache hit; TCP connections checked at accept; per-client limits.

use super::access::{Admission, UdpGate};
use super::tests::udp_upstream;
use super::{Dns64Counters, Dns64Server};
use crate::config::Dns64Section;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use xlat64_dns64::CacheKey;

/// A query for `qname` type A, RD=1, no EDNS, as wire bytes.
fn a_query(id: u16, qname: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in qname.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// An upstream on 127.0.0.1 answering every A query with 192.0.2.1, TTL
/// 300, straight from the query's bytes.
async fn echo_upstream(stop: CancellationToken) -> SocketAddr {
    udp_upstream(stop, |query| {
        let mut reply = query.to_vec();
        reply[2] |= 0x80;
        reply[3] = 0x80;
        reply[6..8].copy_from_slice(&1u16.to_be_bytes());
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        Some(reply)
    })
    .await
}

/// `[dns64]` with every default, on a free loopback port, allowing `allow`.
fn section(upstream: SocketAddr, allow: &str) -> Dns64Section {
    let mut section: Dns64Section = toml::from_str("").unwrap();
    section.listen = vec!["127.0.0.1:0".parse().unwrap()];
    section.upstream = vec![upstream];
    section.prefix = Some("64:ff9b::/96".parse().unwrap());
    section.allow = vec![allow.parse().unwrap()];
    section
}

/// Micro-benchmark (`cargo test -p xlat64 --lib refusal_costs -- --ignored
/// --nocapture`): the engine's work for one refused query against one
/// answered from the cache, the same query bytes, no socket I/O.
#[tokio::test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
async fn refusal_costs_less_than_a_cache_hit() {
    let stop = CancellationToken::new();
    let upstream = echo_upstream(stop.clone()).await;
    let mut s = section(upstream, "192.0.2.0/24");
    // The rate limiter at work on every query, never over the limit.
    s.queries_per_second_per_client = 1_000_000_000;
    s.queries_burst_per_client = 1_000_000_000;
    let server = Dns64Server::bind(&s, 1).await.unwrap();
    let engine = server.engine.clone();
    let allowed = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let refused = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let query = a_query(0x1234, "www.example.");
    let reply = engine.answer(&query, allowed).await.expect("answered");
    assert_eq!(reply.bytes[3] & 0x0f, 0, "NOERROR from the upstream");
    let mut key = CacheKey::with_capacity();
    let mut out = Vec::with_capacity(65535);
    let n = 200_000u32;

    let start = Instant::now();
    for _ in 0..n {
        out.clear();
        assert!(engine.answer_cached(&query, allowed, Instant::now(), &mut key, &mut out));
    }
    let hit = start.elapsed() / n;

    let start = Instant::now();
    for _ in 0..n {
        let r = engine.answer(&query, refused).await.expect("REFUSED");
        assert_eq!(r.bytes[3] & 0x0f, 5);
    }
    let refusal = start.elapsed() / n;

    let gate = UdpGate::new();
    let start = Instant::now();
    for _ in 0..n {
        let admitted = gate.admit(&engine, &query, refused, Instant::now(), &mut out);
        assert_eq!(admitted, Admission::Reply);
    }
    let gated = start.elapsed() / n;

    let start = Instant::now();
    for _ in 0..n {
        let admitted = gate.admit(&engine, &query, allowed, Instant::now(), &mut out);
        assert_eq!(admitted, Admission::Pass);
    }
    let passed = start.elapsed() / n;
    println!(
        "per query: cache hit {hit:?} (after the gate's pass {passed:?}), \
         refusal by the engine {refusal:?}, refusal at the gate {gated:?}"
    );
    stop.cancel();
    assert!(hit < Duration::from_secs(1));
}

/// A server on an [`echo_upstream`], configured by `configure`, running
/// until the token is cancelled.
struct Running {
    addr: SocketAddr,
    counters: Arc<Dns64Counters>,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Running {
    fn counter(&self, name: &str) -> u64 {
        let mut out = BTreeMap::new();
        self.counters.snapshot(&mut out);
        out[name]
    }
}

async fn run(configure: impl FnOnce(&mut Dns64Section)) -> Running {
    let stop = CancellationToken::new();
    let upstream = echo_upstream(stop.clone()).await;
    let mut s = section(upstream, "127.0.0.0/8");
    configure(&mut s);
    // TCP on the port the kernel gave UDP may be taken: try again.
    let mut server = Dns64Server::bind(&s, 1).await;
    for _ in 0..50 {
        if server.is_ok() {
            break;
        }
        server = Dns64Server::bind(&s, 1).await;
    }
    let server = server.unwrap();
    let running = Running {
        addr: server.local_addrs()[0],
        counters: server.counters(),
        stop: stop.clone(),
    };
    tokio::spawn(server.run(stop));
    running
}

/// Sends `query` over TCP and reads the reply; `None` when the server
/// closed the connection instead.
async fn tcp_ask(stream: &mut TcpStream, query: &[u8]) -> Option<Vec<u8>> {
    let mut out = (query.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(query);
    stream.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).await.ok()?;
    Some(reply)
}

/// Whether the server closes `stream` within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn rfc7766_6_2_2_tcp_connections_per_client_are_limited() {
    let h = run(|s| s.tcp_connections_per_client = 2).await;
    let mut first = TcpStream::connect(h.addr).await.unwrap();
    let mut second = TcpStream::connect(h.addr).await.unwrap();
    let mut third = TcpStream::connect(h.addr).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(5)).await);
    assert_eq!(h.counter("dns64_tcp_client_limit"), 1);
    for s in [&mut first, &mut second] {
        let reply = tcp_ask(s, &a_query(7, "www.example."))
            .await
            .expect("answered");
        assert_eq!(reply[3] & 0x0f, 0);
    }
    // Another client (its own address) is not held to the first's share.
    let local: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(local).unwrap();
    let mut other = socket.connect(h.addr).await.unwrap();
    assert!(tcp_ask(&mut other, &a_query(8, "www.example."))
        .await
        .is_some());
    // A closed connection gives its slot back.
    drop(first);
    let mut again = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        if tcp_ask(&mut s, &a_query(9, "www.example.")).await.is_some() {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again, "the slot of a closed connection is given back");
}

#[tokio::test]
async fn rfc7766_6_2_3_idle_tcp_connection_closed_after_the_timeout() {
    let h = run(|s| s.tcp_idle_timeout_ms = 200).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    assert!(tcp_ask(&mut stream, &a_query(1, "www.example."))
        .await
        .is_some());
    let start = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert_eq!(h.counter("dns64_tcp_idle_closed"), 1);
}

#[tokio::test]
async fn rfc7766_6_2_4_connection_closed_after_a_malformed_message() {
    let h = run(|_| {}).await;
    // No question: FORMERR, then the connection is closed.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let no_question = [0x12, 0x34, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let reply = tcp_ask(&mut stream, &no_question).await.expect("FORMERR");
    assert_eq!(reply[3] & 0x0f, 1);
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    // Too short to answer: closed without a reply.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    assert!(tcp_ask(&mut stream, &[1, 2, 3]).await.is_none());
    assert_eq!(h.counter("dns64_tcp_malformed_closed"), 2);
}

#[tokio::test]
async fn rfc7766_6_2_3_crowded_listener_closes_idle_connections_sooner() {
    // Two sides of 400 connections in this process.
    crate::sys::process::raise_open_files_limit().unwrap();
    let h = run(|s| s.tcp_connections_per_client = super::MAX_TCP_CONNECTIONS).await;
    let mut held = Vec::new();
    for _ in 0..400 {
        held.push(TcpStream::connect(h.addr).await.unwrap());
    }
    let start = Instant::now();
    while h.counter("dns64_tcp_crowded_closed") == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "none closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Well before the 10 s idle timeout; the listener is no longer crowded
    // once enough have gone.
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(h.counter("dns64_tcp_idle_closed"), 0);
}

#[tokio::test]
async fn udp_flood_from_one_client_is_rate_limited_and_others_answered() {
    let h = run(|s| {
        s.queries_per_second_per_client = 20;
        s.queries_burst_per_client = 5;
        s.rate_limit_slip = 0;
    })
    .await;
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..100u16 {
        flood
            .send_to(&a_query(i, "www.example."), h.addr)
            .await
            .unwrap();
    }
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while timeout(Duration::from_millis(300), flood.recv(&mut buf))
        .await
        .is_ok()
    {
        answered += 1;
    }
    assert!((5..=12).contains(&answered), "{answered} answered");
    assert_eq!(h.counter("dns64_dropped_rate_limited"), 100 - answered);
    // Another client is answered meanwhile.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for i in 0..5u16 {
        other
            .send_to(&a_query(i, "www.example."), h.addr)
            .await
            .unwrap();
        let n = timeout(Duration::from_secs(2), other.recv(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(buf[3] & 0x0f, 0, "{:?}", &buf[..n]);
    }
}

#[tokio::test]
async fn udp_over_the_rate_slips_tc_replies() {
    let h = run(|s| {
        s.queries_per_second_per_client = 1;
        s.queries_burst_per_client = 1;
        s.rate_limit_slip = 2;
    })
    .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 512];
    let mut truncated = 0;
    for i in 0..11u16 {
        client
            .send_to(&a_query(i, "www.example."), h.addr)
            .await
            .unwrap();
    }
    while let Ok(Ok(n)) = timeout(Duration::from_millis(300), client.recv(&mut buf)).await {
        if buf[2] & 0x02 != 0 {
            truncated += 1;
            assert_eq!(
                &buf[12..n],
                &a_query(0, "www.example.")[12..],
                "question kept"
            );
        }
    }
    assert_eq!(truncated, 5, "every second of the 10 over the limit");
    assert_eq!(h.counter("dns64_rate_limited_slipped"), 5);
    assert_eq!(h.counter("dns64_dropped_rate_limited"), 5);
}
