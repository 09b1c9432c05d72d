//! Access control before resources: a refused client costs less than a
//! cache hit; TCP connections checked at accept; per-client limits.

use super::Dns64Server;
use crate::config::Dns64Section;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
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
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let (len, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                r = socket.recv_from(&mut buf) => r.unwrap(),
            };
            let mut reply = buf[..len].to_vec();
            reply[2] |= 0x80;
            reply[3] = 0x80;
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
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
    let server = Dns64Server::bind(&section(upstream, "192.0.2.0/24"))
        .await
        .unwrap();
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
    println!("per query: cache hit {hit:?}, refusal {refusal:?}");
    stop.cancel();
    assert!(hit < Duration::from_secs(1));
}
