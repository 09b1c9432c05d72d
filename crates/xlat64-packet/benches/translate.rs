//! Translation cost per packet (RFC 8219 measures throughput; this is the
//! per-packet CPU part): a 1400-byte TCP segment and a 64-byte UDP datagram,
//! both directions, parse included.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{IpHeaders, Ipv4Header, Ipv6Header, PacketBuilder};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xlat64_packet::{parse_v4, parse_v6, translate_4to6, translate_6to4};

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221);
const POOL4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

enum Kind {
    Tcp,
    Udp,
}

/// An IP packet of exactly `total` bytes.
fn packet(v6: bool, kind: &Kind, total: usize) -> Vec<u8> {
    let ip_len = if v6 { 40 } else { 20 };
    let l4_len = match kind {
        Kind::Tcp => 20,
        Kind::Udp => 8,
    };
    let payload = vec![0x5a; total - ip_len - l4_len];
    let ip = if v6 {
        let h = Ipv6Header {
            hop_limit: 64,
            source: CLIENT6.octets(),
            destination: SERVER6.octets(),
            ..Default::default()
        };
        IpHeaders::Ipv6(h, Default::default())
    } else {
        let h = Ipv4Header::new(0, 64, 6.into(), SERVER4.octets(), POOL4.octets()).unwrap();
        IpHeaders::Ipv4(h, Default::default())
    };
    let b = PacketBuilder::ip(ip);
    let mut out = Vec::new();
    match kind {
        Kind::Tcp => b.tcp(443, 40000, 1, 65535).ack(2).write(&mut out, &payload),
        Kind::Udp => b.udp(53, 40000).write(&mut out, &payload),
    }
    .unwrap();
    assert_eq!(out.len(), total);
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    for (name, kind, size) in [("tcp_1400", Kind::Tcp, 1400), ("udp_64", Kind::Udp, 64)] {
        let mut out = [0u8; 2048];
        let v6 = packet(true, &kind, size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("6to4/{name}"), |b| {
            b.iter(|| {
                let pkt = black_box(&v6[..]);
                let parsed = parse_v6(pkt).unwrap();
                let n = translate_6to4(
                    pkt,
                    &parsed,
                    SocketAddrV4::new(POOL4, 61000),
                    SocketAddrV4::new(SERVER4, 443),
                    7,
                    &mut out,
                )
                .unwrap();
                black_box(n)
            })
        });
        let v4 = packet(false, &kind, size);
        g.bench_function(format!("4to6/{name}"), |b| {
            b.iter(|| {
                let pkt = black_box(&v4[..]);
                let parsed = parse_v4(pkt).unwrap();
                let n = translate_4to6(
                    pkt,
                    &parsed,
                    SocketAddrV6::new(SERVER6, 443, 0, 0),
                    SocketAddrV6::new(CLIENT6, 40000, 0, 0),
                    &mut out,
                )
                .unwrap();
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
