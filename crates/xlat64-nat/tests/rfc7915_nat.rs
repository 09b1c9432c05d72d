//! RFC 7915 / RFC 6146 behaviour of the stateful NAT64, byte by byte.
//!
//! Every packet is built with etherparse and every output is parsed and
//! checked with it (headers, lengths, and checksums through etherparse's own
//! checksum code), so that etherparse is the independent oracle of what the
//! wire must carry. The clock is virtual: one `Instant::now()` as base plus
//! `Duration`s.
//!
//! Hop limits: the translator sends the outer TTL / hop limit it received
//! plus one (the kernel decrements twice around the TUN device, see the
//! `translate` module doc of xlat64-packet); headers quoted inside ICMP
//! errors keep theirs.
//!
//! Set-up: prefix 2001:db8:64::/96, pool4 192.0.2.1, client 2001:db8:1::2,
//! server 198.51.100.2 (2001:db8:64::c633:6402 from the IPv6 side), an IPv4
//! router 203.0.113.2 and an IPv6 router 2001:db8:2::1.

use etherparse::checksum::Sum16BitWords;
use etherparse::{
    icmpv4, icmpv6, ip_number, IcmpEchoHeader, Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type,
    IpFragOffset, IpHeaders, Ipv4Header, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader,
    Ipv6RoutingExtensions, PacketBuilder, PacketBuilderStep, TcpHeader, UdpHeader,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use xlat64_nat::{FragmentDrop, Nat64, Nat64Config, NatDrop, Pool4, Timeouts, Verdict};
use xlat64_packet::{DropReason, Prefix6052};

const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// SERVER under the prefix.
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0xc633, 0x6402);
const SERVER2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// A router on the IPv4 side.
const ROUTER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// ROUTER4 under the prefix.
const ROUTER4_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0xcb00, 0x7102);
/// A router on the IPv6 side, between the client and the gateway.
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
/// The gateway's own IPv6 address (`icmp_source_v6`).
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// An RFC 6791 address for ICMP errors from IPv6 routers.
const RFC6791: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// Hop limit / TTL every test packet is sent with.
const HOP: u8 = 64;
const SEED: u64 = 7915;
/// RFC 1812 §4.3.2.3: what an IPv4 router quotes at most, 576 bytes in all.
const QUOTE4: usize = 576 - 28;
/// RFC 4443 §2.4(c): what an IPv6 node quotes at most, 1280 bytes in all.
const QUOTE6: usize = 1280 - 48;

// ---------------------------------------------------------------- set-up

fn prefix() -> Prefix6052 {
    Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap()
}

fn embed(v4: Ipv4Addr) -> Ipv6Addr {
    prefix().embed(v4)
}

fn config() -> Nat64Config {
    let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap()]).unwrap();
    Nat64Config::new(prefix(), pool4, Timeouts::default())
}

fn nat(config: Nat64Config) -> Nat64 {
    Nat64::with_seed(config, SEED)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ------------------------------------------------------ driving the NAT

/// The verdict on `pkt` and the bytes sent (empty unless Forward/Reject),
/// with an output buffer exactly `output_bound(pkt)` long.
fn run(nat: &mut Nat64, now: Instant, pkt: &[u8], from_v6: bool) -> (Verdict, Vec<u8>) {
    let mut out = vec![0u8; nat.output_bound(pkt)];
    let verdict = if from_v6 {
        nat.handle_v6(now, pkt, &mut out)
    } else {
        nat.handle_v4(now, pkt, &mut out)
    };
    let len = match verdict {
        Verdict::Forward(n)
        | Verdict::Reject(_, n)
        | Verdict::ToHost(n)
        | Verdict::Elsewhere { len: n, .. } => n,
        Verdict::Held | Verdict::SynHeld | Verdict::Drop(_) => 0,
    };
    out.truncate(len);
    (verdict, out)
}

fn verdict_v6(nat: &mut Nat64, now: Instant, pkt: &[u8]) -> Verdict {
    run(nat, now, pkt, true).0
}

fn verdict_v4(nat: &mut Nat64, now: Instant, pkt: &[u8]) -> Verdict {
    run(nat, now, pkt, false).0
}

fn forward_v6(nat: &mut Nat64, now: Instant, pkt: &[u8]) -> Vec<u8> {
    match run(nat, now, pkt, true) {
        (Verdict::Forward(_), out) => out,
        (other, _) => panic!("IPv6 packet not forwarded: {other:?}"),
    }
}

fn forward_v4(nat: &mut Nat64, now: Instant, pkt: &[u8]) -> Vec<u8> {
    match run(nat, now, pkt, false) {
        (Verdict::Forward(_), out) => out,
        (other, _) => panic!("IPv4 packet not forwarded: {other:?}"),
    }
}

fn reject_v6(nat: &mut Nat64, now: Instant, pkt: &[u8], reason: NatDrop) -> Vec<u8> {
    match run(nat, now, pkt, true) {
        (Verdict::Reject(r, _), out) if r == reason => out,
        (other, _) => panic!("expected Reject({reason:?}), got {other:?}"),
    }
}

fn reject_v4(nat: &mut Nat64, now: Instant, pkt: &[u8], reason: NatDrop) -> Vec<u8> {
    match run(nat, now, pkt, false) {
        (Verdict::Reject(r, _), out) if r == reason => out,
        (other, _) => panic!("expected Reject({reason:?}), got {other:?}"),
    }
}

// ---------------------------------------------------- building packets

fn ip4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, id: u16, df: bool) -> Ipv4Header {
    let mut h = Ipv4Header::new(0, ttl, ip_number::UDP, src.octets(), dst.octets()).unwrap();
    h.identification = id;
    h.dont_fragment = df;
    h
}

fn builder4(h: Ipv4Header) -> PacketBuilderStep<IpHeaders> {
    PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default()))
}

fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, hop: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), hop)
        .udp(sport, dport)
        .write(&mut v, data)
        .unwrap();
    v
}

/// A TCP segment from the client: a SYN, or an ACK carrying `data`.
fn tcp6(sport: u16, dport: u16, syn: bool, data: &[u8]) -> Vec<u8> {
    let b =
        PacketBuilder::ipv6(CLIENT.octets(), SERVER6.octets(), HOP).tcp(sport, dport, 1000, 65000);
    let b = if syn { b.syn() } else { b.ack(5001) };
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    v
}

fn echo6(src: Ipv6Addr, dst: Ipv6Addr, id: u16, hop: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), hop)
        .icmpv6_echo_request(id, 1)
        .write(&mut v, b"ping!")
        .unwrap();
    v
}

fn udp4(h: Ipv4Header, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    builder4(h).udp(sport, dport).write(&mut v, data).unwrap();
    v
}

/// A UDP datagram from the server to `POOL:dport`.
fn udp4_reply(dport: u16, ttl: u8, id: u16, df: bool, data: &[u8]) -> Vec<u8> {
    udp4(ip4(SERVER, POOL, ttl, id, df), 53, dport, data)
}

/// A TCP segment from the server to `POOL:dport`: a SYN-ACK, or an ACK
/// carrying `data` with DF set.
fn tcp4(sport: u16, dport: u16, syn_ack: bool, data: &[u8]) -> Vec<u8> {
    let b = builder4(ip4(SERVER, POOL, HOP, 0x7777, true)).tcp(sport, dport, 5000, 65000);
    let b = if syn_ack {
        b.syn().ack(1001)
    } else {
        b.ack(1001)
    };
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    v
}

fn icmp4_error(src: Ipv4Addr, dst: Ipv4Addr, ty: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src.octets(), dst.octets(), HOP)
        .icmpv4(ty)
        .write(&mut v, quote)
        .unwrap();
    v
}

fn icmp6_error(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, ty: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), hop)
        .icmpv6(ty)
        .write(&mut v, quote)
        .unwrap();
    v
}

fn port_unreachable4() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
}

fn port_unreachable6() -> Icmpv6Type {
    Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port)
}

/// IPv4 fragments of the datagram `whole`, its data cut at `cuts` (byte
/// offsets into the data after the IPv4 header, multiples of 8).
fn fragments4(whole: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let (h, data) = parse4(whole);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(data.len());
    bounds
        .windows(2)
        .map(|w| {
            let mut fh = h.clone();
            fh.more_fragments = w[1] < data.len();
            fh.fragment_offset = IpFragOffset::try_new((w[0] / 8) as u16).unwrap();
            fh.set_payload_len(w[1] - w[0]).unwrap();
            let mut v = Vec::new();
            fh.write(&mut v).unwrap();
            v.extend_from_slice(&data[w[0]..w[1]]);
            v
        })
        .collect()
}

/// An IPv6 Fragment header as RFC 8200 §4.5 lays it out: bytes 2..4 are
/// one big-endian word, the offset (8-byte units) in its top 13 bits, M in
/// its lowest. Written by hand because etherparse 0.19's
/// `Ipv6FragmentHeader` puts both in the wrong bits (etherparse issue #150,
/// fixed in 0.20), symmetrically, so it reads its own output back fine but
/// not anyone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fragment6 {
    next_header: u8,
    /// Offset in bytes (a multiple of 8).
    offset: usize,
    more: bool,
    id: u32,
}

impl Fragment6 {
    const LEN: usize = 8;

    fn to_bytes(self) -> [u8; 8] {
        assert_eq!(self.offset % 8, 0);
        let word = ((self.offset / 8) as u16) << 3 | u16::from(self.more);
        let [w0, w1] = word.to_be_bytes();
        let [i0, i1, i2, i3] = self.id.to_be_bytes();
        [self.next_header, 0, w0, w1, i0, i1, i2, i3]
    }

    fn parse(b: &[u8]) -> (Fragment6, &[u8]) {
        let (h, rest) = b.split_first_chunk::<8>().expect("Fragment header");
        let word = u16::from_be_bytes([h[2], h[3]]);
        assert_eq!(word & 0b110, 0, "reserved bits");
        let f = Fragment6 {
            next_header: h[0],
            offset: usize::from(word >> 3) * 8,
            more: word & 1 != 0,
            id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        };
        (f, rest)
    }
}

/// IPv6 fragments (Fragment header right after the fixed header) of the
/// packet `whole`, its payload cut at `cuts` (multiples of 8).
fn fragments6(whole: &[u8], id: u32, cuts: &[usize]) -> Vec<Vec<u8>> {
    let (h, data) = parse6(whole);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(data.len());
    bounds
        .windows(2)
        .map(|w| {
            let mut fh = h.clone();
            fh.next_header = ip_number::IPV6_FRAG;
            fh.payload_length = (Fragment6::LEN + w[1] - w[0]) as u16;
            let frag = Fragment6 {
                next_header: h.next_header.0,
                offset: w[0],
                more: w[1] < data.len(),
                id,
            };
            let mut v = Vec::new();
            fh.write(&mut v).unwrap();
            v.extend_from_slice(&frag.to_bytes());
            v.extend_from_slice(&data[w[0]..w[1]]);
            v
        })
        .collect()
}

// ----------------------------------------------------- checking output

/// An IPv4 packet per etherparse, with its header checksum and Total Length
/// checked: the header and what follows it.
fn parse4(pkt: &[u8]) -> (Ipv4Header, &[u8]) {
    let (h, _) = Ipv4Header::from_slice(pkt).expect("IPv4 header");
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    assert_eq!(usize::from(h.total_len), pkt.len(), "IPv4 Total Length");
    let l4 = &pkt[h.header_len()..];
    (h, l4)
}

/// An IPv6 packet per etherparse, with its Payload Length checked.
fn parse6(pkt: &[u8]) -> (Ipv6Header, &[u8]) {
    let (h, rest) = Ipv6Header::from_slice(pkt).expect("IPv6 header");
    assert_eq!(
        usize::from(h.payload_length),
        rest.len(),
        "IPv6 Payload Length"
    );
    (h, rest)
}

fn udp_in4<'a>(h: &Ipv4Header, l4: &'a [u8]) -> (UdpHeader, &'a [u8]) {
    assert_eq!(h.protocol, ip_number::UDP);
    let (u, data) = UdpHeader::from_slice(l4).expect("UDP header");
    assert_eq!(usize::from(u.length), l4.len(), "UDP length");
    let want = u
        .calc_checksum_ipv4_raw(h.source, h.destination, data)
        .unwrap();
    assert_eq!(u.checksum, want, "UDP checksum over IPv4");
    (u, data)
}

fn udp_in6<'a>(h: &Ipv6Header, l4: &'a [u8]) -> (UdpHeader, &'a [u8]) {
    assert_eq!(h.next_header, ip_number::UDP);
    let (u, data) = UdpHeader::from_slice(l4).expect("UDP header");
    assert_eq!(usize::from(u.length), l4.len(), "UDP length");
    let want = u
        .calc_checksum_ipv6_raw(h.source, h.destination, data)
        .unwrap();
    assert_eq!(u.checksum, want, "UDP checksum over IPv6");
    (u, data)
}

fn tcp_in4<'a>(h: &Ipv4Header, l4: &'a [u8]) -> (TcpHeader, &'a [u8]) {
    assert_eq!(h.protocol, ip_number::TCP);
    let (t, data) = TcpHeader::from_slice(l4).expect("TCP header");
    let want = t
        .calc_checksum_ipv4_raw(h.source, h.destination, data)
        .unwrap();
    assert_eq!(t.checksum, want, "TCP checksum over IPv4");
    (t, data)
}

fn tcp_in6<'a>(h: &Ipv6Header, l4: &'a [u8]) -> (TcpHeader, &'a [u8]) {
    assert_eq!(h.next_header, ip_number::TCP);
    let (t, data) = TcpHeader::from_slice(l4).expect("TCP header");
    let want = t
        .calc_checksum_ipv6_raw(h.source, h.destination, data)
        .unwrap();
    assert_eq!(t.checksum, want, "TCP checksum over IPv6");
    (t, data)
}

fn icmp_in4<'a>(h: &Ipv4Header, l4: &'a [u8]) -> Icmpv4Slice<'a> {
    assert_eq!(h.protocol, ip_number::ICMP);
    assert_eq!(
        Sum16BitWords::new().add_slice(l4).ones_complement(),
        0,
        "ICMPv4 checksum"
    );
    Icmpv4Slice::from_slice(l4).expect("ICMPv4")
}

fn icmp_in6<'a>(h: &Ipv6Header, l4: &'a [u8]) -> Icmpv6Slice<'a> {
    assert_eq!(h.next_header, ip_number::IPV6_ICMP);
    let icmp = Icmpv6Slice::from_slice(l4).expect("ICMPv6");
    assert!(
        icmp.is_checksum_valid(h.source, h.destination),
        "ICMPv6 checksum"
    );
    icmp
}

/// The ICMPv6 error in `pkt`, checked, from `src` to `dst`: its type and
/// the quote.
fn icmp6_error_of(pkt: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> (Icmpv6Type, &[u8]) {
    let (h, l4) = parse6(pkt);
    assert_eq!(Ipv6Addr::from(h.source), src, "ICMPv6 error source");
    assert_eq!(
        Ipv6Addr::from(h.destination),
        dst,
        "ICMPv6 error destination"
    );
    assert!(pkt.len() <= 1280, "RFC 4443 §2.4(c): at most 1280 bytes");
    let icmp = icmp_in6(&h, l4);
    (icmp.icmp_type(), icmp.payload())
}

/// The ICMPv4 error in `pkt`, checked, from `src` to `dst`: its type and
/// the quote.
fn icmp4_error_of(pkt: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> (Icmpv4Type, &[u8]) {
    let (h, l4) = parse4(pkt);
    assert_eq!(Ipv4Addr::from(h.source), src, "ICMPv4 error source");
    assert_eq!(
        Ipv4Addr::from(h.destination),
        dst,
        "ICMPv4 error destination"
    );
    assert!(pkt.len() <= 576, "RFC 1812 §4.3.2.3: at most 576 bytes");
    let icmp = icmp_in4(&h, l4);
    (icmp.icmp_type(), icmp.payload())
}

/// The packets of a buffer holding IPv6 packets back to back, each as long
/// as etherparse reads its Payload Length.
fn split6(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (h, _) = Ipv6Header::from_slice(buf).expect("IPv6 header in a train");
        let (pkt, rest) = buf.split_at(Ipv6Header::LEN + usize::from(h.payload_length));
        out.push(pkt);
        buf = rest;
    }
    out
}

/// Reassembles by hand the train of IPv6 fragments in `buf`: each at most
/// `mtu` bytes, all with identification `id`, offsets contiguous from 0, M
/// on all but the last, every non-last data length a multiple of 8. Returns
/// the unfragmented packet and how many fragments there were.
fn reassemble6(buf: &[u8], mtu: usize, id: u32) -> (Vec<u8>, usize) {
    let frags = split6(buf);
    let mut data = Vec::new();
    let mut first: Option<(Ipv6Header, u8)> = None;
    for (i, f) in frags.iter().enumerate() {
        assert!(f.len() <= mtu, "fragment {i} is {} bytes > {mtu}", f.len());
        let (h, rest) = parse6(f);
        assert_eq!(h.next_header, ip_number::IPV6_FRAG, "fragment {i} header");
        let (fh, chunk) = Fragment6::parse(rest);
        assert_eq!(fh.id, id, "fragment {i} identification");
        assert_eq!(fh.offset, data.len(), "fragment {i} offset");
        let last = i + 1 == frags.len();
        assert_eq!(fh.more, !last, "fragment {i} M flag");
        if !last {
            assert_eq!(chunk.len() % 8, 0, "fragment {i} data length");
        }
        match &first {
            None => first = Some((h, fh.next_header)),
            Some((h0, nh0)) => {
                assert_eq!((h.source, h.destination), (h0.source, h0.destination));
                assert_eq!(fh.next_header, *nh0);
            }
        }
        data.extend_from_slice(chunk);
    }
    let (mut h, nh) = first.expect("at least one fragment");
    h.next_header = etherparse::IpNumber(nh);
    h.payload_length = data.len() as u16;
    let mut whole = Vec::new();
    h.write(&mut whole).unwrap();
    whole.extend_from_slice(&data);
    (whole, frags.len())
}

/// Opens a UDP session CLIENT:40000 -> SERVER:53; returns the pool4 port.
fn udp_session(nat: &mut Nat64, now: Instant) -> u16 {
    let out = forward_v6(nat, now, &udp6(CLIENT, 40000, SERVER6, 53, HOP, b"query"));
    let (h, l4) = parse4(&out);
    udp_in4(&h, l4).0.source_port
}

/// Opens a TCP session CLIENT:50000 -> SERVER:443 (SYN, SYN-ACK); returns
/// the pool4 port.
fn tcp_session(nat: &mut Nat64, now: Instant) -> u16 {
    let out = forward_v6(nat, now, &tcp6(50000, 443, true, &[]));
    let (h, l4) = parse4(&out);
    let port = tcp_in4(&h, l4).0.source_port;
    forward_v4(nat, now, &tcp4(443, port, true, &[]));
    port
}

// ==================================================== 1. ICMPv4 errors in

/// RFC 6146 §3.4 (an ICMP error finds its session through the packet it
/// quotes) and RFC 7915 §4.2-§4.3: the server's ICMPv4 Port Unreachable,
/// quoting the IPv4 packet the NAT sent it, reaches the client as ICMPv6
/// Destination Unreachable code 4 from the server's IPv6 address, quoting
/// the client's own packet: addresses, ports, lengths, and a UDP checksum
/// valid again over the IPv6 pseudo-header.
#[test]
fn rfc6146_3_4_rfc7915_4_2_port_unreachable_reaches_client() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let original = udp6(CLIENT, 40000, SERVER6, 53, HOP, b"query");
    let sent4 = forward_v6(&mut nat, t0, &original);
    let (h4, l4) = parse4(&sent4);
    assert_eq!(h4.time_to_live, HOP + 1);
    udp_in4(&h4, l4);
    let sessions = nat.session_count();

    let error = icmp4_error(SERVER, POOL, port_unreachable4(), &sent4);
    let out = forward_v4(&mut nat, t0 + ms(20), &error);
    let (h6, _) = parse6(&out);
    assert_eq!(h6.hop_limit, HOP + 1, "outer hop limit: TTL + 1");
    let (ty, quote) = icmp6_error_of(&out, SERVER6, CLIENT);
    assert_eq!(ty, port_unreachable6());

    // Field by field...
    let (qh, ql4) = parse6(quote);
    assert_eq!(Ipv6Addr::from(qh.source), CLIENT);
    assert_eq!(Ipv6Addr::from(qh.destination), SERVER6);
    assert_eq!(qh.hop_limit, h4.time_to_live, "quoted header keeps its TTL");
    let (u, data) = udp_in6(&qh, ql4);
    assert_eq!((u.source_port, u.destination_port), (40000, 53));
    assert_eq!(data, b"query");
    // ...and as a whole: the client's packet, but for the hop limit.
    let mut expected = original.clone();
    expected[7] = h4.time_to_live;
    assert_eq!(quote, &expected[..]);

    assert_eq!(nat.session_count(), sessions, "errors create nothing");
}

/// RFC 7915 §4.2-§4.3: ICMPv4 Time Exceeded from an IPv4 router about the
/// client's TCP SYN comes from the router's address under the prefix, as
/// ICMPv6 Time Exceeded code 0. A router quoting only the IP header and 8
/// bytes (RFC 792) gives a quote with the original Payload Length and the
/// ports; one quoting all of it (RFC 1812) gives a valid TCP checksum.
#[test]
fn rfc7915_4_2_time_exceeded_from_ipv4_router_quoting_tcp_syn() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let syn = tcp6(50000, 80, true, &[]);
    let sent4 = forward_v6(&mut nat, t0, &syn);
    let (h4, l4) = parse4(&sent4);
    let (t, _) = tcp_in4(&h4, l4);
    assert!(t.syn);
    let ttl_exceeded = Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit);
    let hop_exceeded = Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded);

    // RFC 792: IP header plus 8 bytes.
    let error = icmp4_error(ROUTER4, POOL, ttl_exceeded.clone(), &sent4[..28]);
    let out = forward_v4(&mut nat, t0, &error);
    assert_eq!(ROUTER4_6, embed(ROUTER4));
    let (ty, quote) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(ty, hop_exceeded);
    assert_eq!(quote.len(), 40 + 8);
    let (qh, ql4) = Ipv6Header::from_slice(quote).unwrap();
    assert_eq!(Ipv6Addr::from(qh.source), CLIENT);
    assert_eq!(Ipv6Addr::from(qh.destination), SERVER6);
    assert_eq!(qh.next_header, ip_number::TCP);
    assert_eq!(qh.payload_length, 20, "the SYN's length, not the quote's");
    assert_eq!(qh.hop_limit, h4.time_to_live);
    assert_eq!(ql4, &syn[40..48], "ports and sequence number of the SYN");

    // RFC 1812: as much as fits; here the whole SYN.
    let error = icmp4_error(ROUTER4, POOL, ttl_exceeded, &sent4);
    let out = forward_v4(&mut nat, t0, &error);
    let (ty, quote) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(ty, hop_exceeded);
    let (qh, ql4) = parse6(quote);
    let (t, _) = tcp_in6(&qh, ql4);
    assert_eq!(
        (t.source_port, t.destination_port, t.syn),
        (50000, 80, true)
    );
    assert_eq!(&quote[8..], &syn[8..], "the SYN from its addresses on");
}

/// RFC 7915 §4.2-§4.3 with RFC 6146 §3.5.3: an ICMPv4 error about the
/// client's echo request quotes it with the client's own identifier (not
/// the pool4 one) and a valid ICMPv6 checksum; Host Unreachable becomes No
/// Route.
#[test]
fn rfc7915_4_2_error_about_echo_quotes_client_identifier() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let original = echo6(CLIENT, SERVER6, 0x1234, HOP);
    let sent4 = forward_v6(&mut nat, t0, &original);
    let (h4, l4) = parse4(&sent4);
    let echo = icmp_in4(&h4, l4);
    assert!(
        matches!(echo.icmp_type(), Icmpv4Type::EchoRequest(_)),
        "{:?}",
        echo.icmp_type()
    );

    let host_unreachable = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host);
    let error = icmp4_error(ROUTER4, POOL, host_unreachable, &sent4);
    let out = forward_v4(&mut nat, t0, &error);
    let (ty, quote) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(
        ty,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::NoRoute)
    );
    let (qh, ql4) = parse6(quote);
    let q = icmp_in6(&qh, ql4);
    assert_eq!(
        q.icmp_type(),
        Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x1234, seq: 1 })
    );
    assert_eq!(q.payload(), b"ping!");
    let mut expected = original.clone();
    expected[7] = h4.time_to_live;
    assert_eq!(quote, &expected[..]);
}

// ============================================ 2. Fragmentation Needed in

/// RFC 7915 §4.2: Fragmentation Needed from an IPv4 router becomes Packet
/// Too Big with the MTU plus 20 (the larger IPv6 header), never above the
/// MTU of the translator's IPv6 side. The 576-byte quote of the 1440-byte
/// segment becomes the start of the client's 1460-byte segment.
#[test]
fn rfc7915_4_2_fragmentation_needed_becomes_packet_too_big_plus_20() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    forward_v6(&mut nat, t0, &tcp6(50000, 443, true, &[]));
    let segment = tcp6(50000, 443, false, &[0xab; 1400]);
    assert_eq!(segment.len(), 1460);
    let sent4 = forward_v6(&mut nat, t0, &segment);
    let (h4, l4) = parse4(&sent4);
    tcp_in4(&h4, l4);
    assert_eq!(sent4.len(), 1440);
    assert!(h4.dont_fragment, "RFC 7915 §5.1: DF above 1260 bytes");

    for (mtu4, mtu6) in [(1400, 1420), (1500, 1500), (1280, 1300)] {
        let frag_needed = Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu4 },
        );
        let error = icmp4_error(ROUTER4, POOL, frag_needed, &sent4[..QUOTE4]);
        let out = forward_v4(&mut nat, t0, &error);
        let (ty, quote) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
        assert_eq!(
            ty,
            Icmpv6Type::PacketTooBig { mtu: mtu6 },
            "next-hop MTU {mtu4}"
        );
        let (qh, ql4) = Ipv6Header::from_slice(quote).unwrap();
        assert_eq!(qh.payload_length, 1420, "the segment's length");
        assert_eq!(Ipv6Addr::from(qh.source), CLIENT);
        assert_eq!(Ipv6Addr::from(qh.destination), SERVER6);
        assert_eq!(ql4, &segment[40..40 + QUOTE4 - 20]);
    }
}

/// RFC 7915 §4.2: a Fragmentation Needed with MTU 0 (a pre-RFC 1191
/// router) gets the greatest RFC 1191 plateau below the quoted Total Length,
/// plus 20, and at least 1280.
#[test]
fn rfc7915_4_2_fragmentation_needed_mtu_zero_uses_rfc1191_plateau() {
    let t0 = Instant::now();
    let frag_needed_0 =
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 0,
        });
    // 1440 bytes: plateau 1006, + 20 = 1026, raised to the IPv6 minimum.
    let mut nat1 = nat(config());
    forward_v6(&mut nat1, t0, &tcp6(50000, 443, true, &[]));
    let sent4 = forward_v6(&mut nat1, t0, &tcp6(50000, 443, false, &[1; 1400]));
    let error = icmp4_error(ROUTER4, POOL, frag_needed_0.clone(), &sent4[..QUOTE4]);
    let out = forward_v4(&mut nat1, t0, &error);
    let (ty, _) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(ty, Icmpv6Type::PacketTooBig { mtu: 1280 });

    // A jumbo IPv6 side: 4440 bytes, plateau 4352, + 20 = 4372.
    let mut cfg = config();
    cfg.ipv6_mtu = 9000;
    let mut nat2 = nat(cfg);
    forward_v6(&mut nat2, t0, &tcp6(50000, 443, true, &[]));
    let sent4 = forward_v6(&mut nat2, t0, &tcp6(50000, 443, false, &[2; 4400]));
    assert_eq!(sent4.len(), 4440);
    let error = icmp4_error(ROUTER4, POOL, frag_needed_0, &sent4[..QUOTE4]);
    let out = forward_v4(&mut nat2, t0, &error);
    let (ty, _) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(ty, Icmpv6Type::PacketTooBig { mtu: 4372 });
}

// ================================================== 3. ICMPv6 errors out

/// RFC 7915 §5.2-§5.3: the client's ICMPv6 Port Unreachable about a UDP
/// reply reaches the server as ICMPv4 Port Unreachable from the pool4
/// address, quoting the server's own datagram as it sent it: addresses,
/// ports, and the UDP header and data byte for byte (so its checksum is
/// valid over the IPv4 pseudo-header).
#[test]
fn rfc7915_5_2_port_unreachable_from_client_reaches_server() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let reply = udp4_reply(local, HOP, 0x4242, false, b"answer");
    let sent6 = forward_v4(&mut nat, t0, &reply);
    let (h6, _) = parse6(&sent6);
    let sessions = nat.session_count();

    let error = icmp6_error(CLIENT, SERVER6, HOP, port_unreachable6(), &sent6);
    let out = forward_v6(&mut nat, t0 + ms(5), &error);
    let (h, _) = parse4(&out);
    assert_eq!(h.time_to_live, HOP + 1, "outer TTL: hop limit + 1");
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(ty, port_unreachable4());
    let (qh, ql4) = parse4(quote);
    assert_eq!(Ipv4Addr::from(qh.source), SERVER);
    assert_eq!(Ipv4Addr::from(qh.destination), POOL);
    assert_eq!(
        qh.time_to_live, h6.hop_limit,
        "quoted header keeps its hop limit"
    );
    let (u, data) = udp_in4(&qh, ql4);
    assert_eq!((u.source_port, u.destination_port), (53, local));
    assert_eq!(data, b"answer");
    assert_eq!(ql4, &reply[20..], "the server's UDP header and data");
    assert_eq!(nat.session_count(), sessions);
}

/// Sets up a TCP session and has the server send a 1400-byte segment with
/// DF; returns the pool4 port, the server's IPv4 segment and the IPv6
/// segment the client got.
fn server_segment(nat: &mut Nat64, now: Instant) -> (u16, Vec<u8>, Vec<u8>) {
    let local = tcp_session(nat, now);
    let seg4 = tcp4(443, local, false, &[0xcd; 1400]);
    let seg6 = forward_v4(nat, now, &seg4);
    assert_eq!(seg6.len(), 1460);
    let (h, l4) = parse6(&seg6);
    tcp_in6(&h, l4);
    (local, seg4, seg6)
}

/// Checks an ICMPv4 Fragmentation Needed, MTU 1260, from `src` to the
/// server quoting the start of its 1440-byte segment `seg4`.
fn check_frag_needed_1260(out: &[u8], src: Ipv4Addr, seg4: &[u8]) {
    let (ty, quote) = icmp4_error_of(out, src, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1260
        })
    );
    assert_eq!(out.len(), 576, "quote cut to fit 576 bytes");
    let (qh, ql4) = Ipv4Header::from_slice(quote).unwrap();
    assert_eq!(qh.header_checksum, qh.calc_header_checksum());
    assert_eq!(qh.total_len, 1440, "the segment's Total Length");
    assert_eq!(qh.protocol, ip_number::TCP);
    assert_eq!(Ipv4Addr::from(qh.source), SERVER);
    assert_eq!(Ipv4Addr::from(qh.destination), POOL);
    assert_eq!(ql4, &seg4[20..20 + ql4.len()], "the server's own TCP bytes");
}

/// RFC 7915 §5.2: Packet Too Big 1280 from the client about a segment from
/// the server becomes Fragmentation Needed with MTU 1260 (minus the 20
/// bytes the IPv6 header adds), from the pool4 address, quoting the
/// server's segment (incremental checksum update: its TCP bytes come back
/// unchanged).
#[test]
fn rfc7915_5_2_packet_too_big_becomes_fragmentation_needed_minus_20() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let (_, seg4, seg6) = server_segment(&mut nat, t0);
    let ptb = Icmpv6Type::PacketTooBig { mtu: 1280 };
    let error = icmp6_error(CLIENT, SERVER6, HOP, ptb, &seg6[..QUOTE6]);
    let out = forward_v6(&mut nat, t0, &error);
    check_frag_needed_1260(&out, POOL, &seg4);
}

/// RFC 7915 §5.2 with RFC 6791: an ICMPv6 error from an IPv6 router (not
/// the client) leaves from an `rfc6791_v4` address when there is one, else
/// from the pool4 address; the client's own errors always leave from its
/// pool4 address.
#[test]
fn rfc7915_5_2_rfc6791_source_for_errors_from_ipv6_routers() {
    let t0 = Instant::now();
    let ptb = Icmpv6Type::PacketTooBig { mtu: 1280 };
    for (pool, router_src) in [(vec![], POOL), (vec![RFC6791], RFC6791)] {
        let mut cfg = config();
        cfg.rfc6791_v4 = pool;
        let mut nat = nat(cfg);
        let (_, seg4, seg6) = server_segment(&mut nat, t0);
        let error = icmp6_error(ROUTER6, SERVER6, HOP, ptb, &seg6[..QUOTE6]);
        let out = forward_v6(&mut nat, t0, &error);
        check_frag_needed_1260(&out, router_src, &seg4);
        let error = icmp6_error(CLIENT, SERVER6, HOP, ptb, &seg6[..QUOTE6]);
        let out = forward_v6(&mut nat, t0, &error);
        check_frag_needed_1260(&out, POOL, &seg4);
    }
}

// ========================================== 4. errors without a session

/// RFC 6146 §3.5 (and §3.4: the error's tuple is the quoted packet's): an
/// ICMPv4 error quoting a packet that belongs to no session is dropped and
/// creates nothing, with no session at all or with a session to another
/// server, server port or pool4 port.
#[test]
fn rfc6146_3_5_icmpv4_error_without_session_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let fake = udp4(ip4(POOL, SERVER, HOP, 1, false), 40000, 53, b"query");
    let error = icmp4_error(SERVER, POOL, port_unreachable4(), &fake);
    assert_eq!(
        verdict_v4(&mut nat, t0, &error),
        Verdict::Drop(NatDrop::IcmpErrorNoSession)
    );
    assert_eq!((nat.session_count(), nat.bib_count()), (0, 0));

    let local = udp_session(&mut nat, t0);
    let cases = [
        (SERVER, local, 54, "another server port"),
        (SERVER2, local, 53, "another server"),
        (SERVER, local.wrapping_add(1), 53, "another pool4 port"),
    ];
    for (server, lport, sport, what) in cases {
        let quoted = udp4(ip4(POOL, server, HOP, 1, false), lport, sport, b"query");
        let error = icmp4_error(server, POOL, port_unreachable4(), &quoted);
        assert_eq!(
            verdict_v4(&mut nat, t0, &error),
            Verdict::Drop(NatDrop::IcmpErrorNoSession),
            "{what}"
        );
    }
    assert_eq!((nat.session_count(), nat.bib_count()), (1, 1));
    assert_eq!(nat.sessions_created(), 1);
}

/// RFC 6146 §3.5, IPv6 side: an ICMPv6 error from the client quoting a
/// packet of no session is dropped and creates nothing.
#[test]
fn rfc6146_3_5_icmpv6_error_without_session_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let fake = udp6(SERVER6, 53, CLIENT, 40000, HOP, b"answer");
    let error = icmp6_error(CLIENT, SERVER6, HOP, port_unreachable6(), &fake);
    assert_eq!(
        verdict_v6(&mut nat, t0, &error),
        Verdict::Drop(NatDrop::IcmpErrorNoSession)
    );
    assert_eq!((nat.session_count(), nat.bib_count()), (0, 0));

    udp_session(&mut nat, t0);
    let other_port = udp6(SERVER6, 54, CLIENT, 40000, HOP, b"answer");
    let other_server = udp6(embed(SERVER2), 53, CLIENT, 40000, HOP, b"answer");
    for (quoted, what) in [(other_port, "server port"), (other_server, "server")] {
        let (h, _) = parse6(&quoted);
        let error = icmp6_error(CLIENT, h.source.into(), HOP, port_unreachable6(), &quoted);
        assert_eq!(
            verdict_v6(&mut nat, t0, &error),
            Verdict::Drop(NatDrop::IcmpErrorNoSession),
            "another {what}"
        );
    }
    assert_eq!((nat.session_count(), nat.bib_count()), (1, 1));
}

// ================================================ 5. fragmentation 4 -> 6

/// RFC 7915 §4 and §4.1: a 1500-byte UDP datagram with DF clear whose
/// translation exceeds `lowest_ipv6_mtu` leaves as IPv6 fragments of at
/// most 1280 bytes, identification = the IPv4 Identification, offsets
/// contiguous; put back together by hand they are the translated datagram
/// with a valid UDP checksum.
#[test]
fn rfc7915_4_df_clear_too_big_leaves_as_ipv6_fragments() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let data: Vec<u8> = (0..1472u32).map(|i| (i * 7) as u8).collect();
    let dgram = udp4_reply(local, HOP, 0xbeef, false, &data);
    assert_eq!(dgram.len(), 1500);
    let out = forward_v4(&mut nat, t0, &dgram);
    let (whole, count) = reassemble6(&out, 1280, 0xbeef);
    assert_eq!(count, 2);
    let (h, l4) = parse6(&whole);
    assert_eq!(Ipv6Addr::from(h.source), SERVER6);
    assert_eq!(Ipv6Addr::from(h.destination), CLIENT);
    assert_eq!(h.hop_limit, HOP + 1);
    let (u, got) = udp_in6(&h, l4);
    assert_eq!((u.source_port, u.destination_port), (53, 40000));
    assert_eq!(got, &data[..]);
    assert_eq!(nat.counters().packets_fragmented, 1);
}

/// RFC 7915 §4: the same datagram with DF set does not fit the IPv6 side
/// (MTU 1500): it is refused with ICMPv4 Fragmentation Needed, MTU 1480,
/// from the pool4 address to the server, quoting it; with DF set and a
/// translation that fits 1500 it leaves whole, unfragmented.
#[test]
fn rfc7915_4_df_set_too_big_gets_fragmentation_needed() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let dgram = udp4_reply(local, HOP, 0xbeef, true, &[9; 1472]);
    let out = reject_v4(
        &mut nat,
        t0,
        &dgram,
        NatDrop::Packet(DropReason::TooBigForIpv6),
    );
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1480
        })
    );
    assert_eq!(quote, &dgram[..QUOTE4]);
    assert_eq!(nat.counters().packets_fragmented, 0);
    assert_eq!(nat.counters().icmp_errors_sent, 1);

    // 1400 bytes with DF: 1420 bytes of IPv6, above 1280 but within 1500.
    let dgram = udp4_reply(local, HOP, 0xbef0, true, &[8; 1372]);
    let out = forward_v4(&mut nat, t0, &dgram);
    let (h, l4) = parse6(&out);
    assert_eq!(out.len(), 1420);
    let (_, got) = udp_in6(&h, l4);
    assert_eq!(got, &[8; 1372][..]);
    assert_eq!(nat.counters().packets_fragmented, 0);
}

// ============================================================ 6. reassembly

/// RFC 6146 §3.4: the NAT64 reassembles IPv4 fragments before translating.
/// Three fragments of a 2000-byte UDP reply, the first one last: Held, Held,
/// then the translated datagram, fragmented to 1280 (RFC 7915 §4); a
/// smaller fragmented datagram whose UDP checksum is zero leaves as one
/// IPv6 packet with the checksum computed (RFC 6146 §3.4).
#[test]
fn rfc6146_3_4_ipv4_fragments_reassembled_first_fragment_last() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let data: Vec<u8> = (0..1992u32).map(|i| (i % 251) as u8).collect();
    let dgram = udp4_reply(local, HOP, 0x1357, false, &data);
    let frags = fragments4(&dgram, &[800, 1600]);
    assert_eq!(verdict_v4(&mut nat, t0, &frags[1]), Verdict::Held);
    assert_eq!(verdict_v4(&mut nat, t0 + ms(1), &frags[2]), Verdict::Held);
    let out = forward_v4(&mut nat, t0 + ms(2), &frags[0]);
    let (whole, count) = reassemble6(&out, 1280, 0x1357);
    assert_eq!(count, 2);
    let (h, l4) = parse6(&whole);
    assert_eq!(
        (Ipv6Addr::from(h.source), Ipv6Addr::from(h.destination)),
        (SERVER6, CLIENT)
    );
    let (u, got) = udp_in6(&h, l4);
    assert_eq!((u.source_port, u.destination_port), (53, 40000));
    assert_eq!(got, &data[..]);
    assert_eq!(nat.counters().fragments_reassembled, 1);
    assert_eq!(nat.counters().packets_fragmented, 1);
    assert_eq!(nat.fragments_in_progress(), (0, 0));

    // Small, with a zero UDP checksum: one IPv6 packet, checksum computed.
    let mut dgram = udp4_reply(local, HOP, 0x2468, false, &[5; 592]);
    dgram[26] = 0;
    dgram[27] = 0;
    let frags = fragments4(&dgram, &[304]);
    assert_eq!(verdict_v4(&mut nat, t0, &frags[1]), Verdict::Held);
    let out = forward_v4(&mut nat, t0, &frags[0]);
    let (h, l4) = parse6(&out);
    assert_eq!(h.next_header, ip_number::UDP, "no Fragment header");
    let (u, got) = udp_in6(&h, l4);
    assert_ne!(u.checksum, 0);
    assert_eq!(got, &[5; 592][..]);
    assert_eq!(nat.counters().fragments_reassembled, 2);
}

/// RFC 6146 §3.4 with RFC 7915 §5.1.1: IPv6 fragments from the client are
/// reassembled and leave as one IPv4 packet, DF clear (IPv4 routers may
/// fragment it), with a valid UDP checksum; a session is created. The
/// identification is the NAT's own (RFC 6864 §4, RFC 7739): two clients
/// using the same fragment identification towards one server, from the one
/// pool4 address they share, must not collide.
#[test]
fn rfc6146_3_4_ipv6_fragments_reassembled_to_one_ipv4_packet() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let data: Vec<u8> = (0..1992u32).map(|i| (i % 13) as u8).collect();
    let whole = udp6(CLIENT, 40001, SERVER6, 53, HOP, &data);
    let frags = fragments6(&whole, 0x1234_5678, &[1232]);
    assert_eq!(verdict_v6(&mut nat, t0, &frags[1]), Verdict::Held);
    let out = forward_v6(&mut nat, t0 + ms(3), &frags[0]);
    let (h, l4) = parse4(&out);
    assert_eq!(out.len(), 20 + 2000);
    assert!(!h.dont_fragment, "DF clear");
    assert!(!h.more_fragments);
    assert_eq!(h.fragment_offset.value(), 0);
    let first_id = h.identification;
    assert_eq!(h.time_to_live, HOP + 1);
    assert_eq!(
        (Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination)),
        (POOL, SERVER)
    );
    let (u, got) = udp_in4(&h, l4);
    assert_eq!(u.destination_port, 53);
    assert_eq!(got, &data[..]);
    assert_eq!(nat.session_count(), 1);
    assert_eq!(nat.counters().fragments_reassembled, 1);

    let other = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
    let whole = udp6(other, 40001, SERVER6, 53, HOP, &data);
    let frags = fragments6(&whole, 0x1234_5678, &[1232]);
    assert_eq!(verdict_v6(&mut nat, t0, &frags[1]), Verdict::Held);
    let out = forward_v6(&mut nat, t0 + ms(3), &frags[0]);
    let (h, _) = parse4(&out);
    assert_eq!(Ipv4Addr::from(h.source), POOL, "the same pool4 address");
    assert_ne!(h.identification, first_id, "no collision at the server");
}

/// RFC 6946 §4 and RFC 8021: an atomic fragment (offset 0, M clear) is a
/// whole packet, translated at once, without reassembly; RFC 7915 §5.1.1:
/// DF clear (the identification is the NAT's own, as for reassembled
/// datagrams).
#[test]
fn rfc6946_4_atomic_fragment_translated_at_once() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let whole = udp6(CLIENT, 40000, SERVER6, 53, HOP, b"atomic");
    let frags = fragments6(&whole, 0xabcd_0042, &[]);
    let pkt = &frags[0];
    assert!(!Fragment6::parse(&pkt[40..]).0.more, "atomic");
    let out = forward_v6(&mut nat, t0, pkt);
    let (h, l4) = parse4(&out);
    assert!(!h.dont_fragment);
    let (_, got) = udp_in4(&h, l4);
    assert_eq!(got, b"atomic");
    assert_eq!(nat.counters().fragments_reassembled, 0);
    assert_eq!(nat.fragments_in_progress().0, 0);
}

/// RFC 6146 §3.4: an incomplete datagram is kept at least FRAGMENT_MIN (2
/// s) after its first fragment, then dropped by `handle_timeout` and
/// counted; a fragment arriving later starts anew and cannot complete the
/// old datagram.
#[test]
fn rfc6146_3_4_incomplete_datagram_times_out_after_2s() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let t1 = t0 + ms(1000);
    let dgram = udp4_reply(local, HOP, 0x0a0a, false, &[3; 992]);
    let frags = fragments4(&dgram, &[504]);
    assert_eq!(verdict_v4(&mut nat, t1, &frags[0]), Verdict::Held);
    let whole6 = udp6(CLIENT, 40000, SERVER6, 53, HOP, &[4; 1992]);
    let frags6 = fragments6(&whole6, 77, &[1232]);
    assert_eq!(verdict_v6(&mut nat, t1, &frags6[0]), Verdict::Held);
    assert_eq!(nat.fragments_in_progress().0, 2);
    assert_eq!(nat.poll_timeout(), Some(t1 + ms(2000)));

    nat.handle_timeout(t1 + ms(1999));
    assert_eq!(nat.fragments_in_progress().0, 2);
    assert_eq!(nat.counters().fragment_timeouts, 0);
    nat.handle_timeout(t1 + ms(2000));
    assert_eq!(nat.fragments_in_progress(), (0, 0));
    assert_eq!(nat.counters().fragment_timeouts, 2);

    // The late halves start new datagrams of their own and complete nothing.
    let t2 = t1 + ms(2001);
    assert_eq!(verdict_v4(&mut nat, t2, &frags[1]), Verdict::Held);
    assert_eq!(verdict_v6(&mut nat, t2, &frags6[1]), Verdict::Held);
    nat.handle_timeout(t2 + ms(2000));
    assert_eq!(nat.counters().fragment_timeouts, 4);
    assert_eq!(nat.counters().fragments_reassembled, 0);
}

/// RFC 5722 §4 (and RFC 1858 for IPv4): overlapping fragments discard the
/// whole datagram, the fragments still to come too.
#[test]
fn rfc5722_4_overlapping_fragments_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let overlap = Verdict::Drop(NatDrop::Fragment(FragmentDrop::Overlap));

    let dgram = udp4_reply(local, HOP, 0x0b0b, false, &[6; 1592]);
    let a = fragments4(&dgram, &[800]);
    let b = fragments4(&dgram, &[400, 1200]);
    assert_eq!(verdict_v4(&mut nat, t0, &a[0]), Verdict::Held);
    assert_eq!(
        verdict_v4(&mut nat, t0, &b[1]),
        overlap,
        "[400, 1200) over [0, 800)"
    );
    assert_eq!(
        verdict_v4(&mut nat, t0, &a[1]),
        overlap,
        "the rest is dropped too"
    );

    let whole6 = udp6(CLIENT, 40000, SERVER6, 53, HOP, &[7; 1592]);
    let a = fragments6(&whole6, 99, &[800]);
    let b = fragments6(&whole6, 99, &[400, 1200]);
    assert_eq!(verdict_v6(&mut nat, t0, &a[0]), Verdict::Held);
    assert_eq!(verdict_v6(&mut nat, t0, &b[1]), overlap);
    assert_eq!(verdict_v6(&mut nat, t0, &a[1]), overlap);
    assert_eq!(nat.counters().fragments_reassembled, 0);
}

// ============================================= 7. header processing errors

fn gateway_config() -> Nat64Config {
    let mut cfg = config();
    cfg.icmp_source_v6 = Some(GATEWAY6);
    cfg
}

/// RFC 7915 §5.1 (the translator is a router): a packet from the client
/// with hop limit 0 is not translated; ICMPv6 Time Exceeded code 0 goes
/// back to the client from `icmp_source_v6`, quoting the packet; no session
/// is created.
#[test]
fn rfc7915_5_1_hop_limit_zero_gets_time_exceeded() {
    let t0 = Instant::now();
    let mut nat = nat(gateway_config());
    let pkt = udp6(CLIENT, 40000, SERVER6, 53, 0, b"query");
    let out = reject_v6(
        &mut nat,
        t0,
        &pkt,
        NatDrop::Packet(DropReason::HopLimitExceeded),
    );
    let (ty, quote) = icmp6_error_of(&out, GATEWAY6, CLIENT);
    assert_eq!(
        ty,
        Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded)
    );
    assert_eq!(quote, &pkt[..]);
    assert_eq!(nat.session_count(), 0);
    assert_eq!(nat.counters().icmp_errors_sent, 1);
}

/// A Routing header (type 0) with Segments Left `left`, then UDP.
fn routed_udp6(left: u8, hop_by_hop: bool) -> Vec<u8> {
    let mut routing = vec![0u8, left, 0, 0, 0, 0];
    routing.extend_from_slice(&embed(SERVER).octets());
    let exts = Ipv6Extensions {
        hop_by_hop_options: hop_by_hop
            .then(|| Ipv6RawExtHeader::new_raw(ip_number::UDP, &[1, 4, 0, 0, 0, 0]).unwrap()),
        routing: Some(Ipv6RoutingExtensions {
            routing: Ipv6RawExtHeader::new_raw(ip_number::UDP, &routing).unwrap(),
            final_destination_options: None,
        }),
        ..Default::default()
    };
    let h = Ipv6Header {
        hop_limit: HOP,
        source: CLIENT.octets(),
        destination: SERVER6.octets(),
        ..Default::default()
    };
    let mut v = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(h, exts))
        .udp(40000, 53)
        .write(&mut v, b"routed")
        .unwrap();
    v
}

/// RFC 7915 §5.1: a Routing header with Segments Left non-zero stops
/// translation with ICMPv6 Parameter Problem code 0 pointing at the
/// Segments Left byte (43 right after the fixed header, 51 behind an 8-byte
/// Hop-by-Hop header); with Segments Left 0 the header is skipped.
#[test]
fn rfc7915_5_1_routing_header_segments_left_gets_parameter_problem() {
    let t0 = Instant::now();
    let mut nat = nat(gateway_config());
    for (hop_by_hop, pointer) in [(false, 43), (true, 51)] {
        let pkt = routed_udp6(1, hop_by_hop);
        let out = reject_v6(
            &mut nat,
            t0,
            &pkt,
            NatDrop::Packet(DropReason::RoutingHeader),
        );
        let (ty, quote) = icmp6_error_of(&out, GATEWAY6, CLIENT);
        assert_eq!(
            ty,
            Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
                code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                pointer,
            })
        );
        assert_eq!(quote, &pkt[..]);
    }
    assert_eq!(nat.session_count(), 0);
    let out = forward_v6(&mut nat, t0, &routed_udp6(0, true));
    let (h, l4) = parse4(&out);
    let (_, got) = udp_in4(&h, l4);
    assert_eq!(got, b"routed");
}

/// RFC 7915 §5.1: Hop-by-Hop Options and Destination Options headers are
/// not translated: the packet leaves as plain IPv4 UDP with the right
/// lengths and checksum.
#[test]
fn rfc7915_5_1_hop_by_hop_and_destination_options_skipped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let pad_n = [1u8, 4, 0, 0, 0, 0];
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(Ipv6RawExtHeader::new_raw(ip_number::UDP, &pad_n).unwrap()),
        destination_options: Some(Ipv6RawExtHeader::new_raw(ip_number::UDP, &pad_n).unwrap()),
        ..Default::default()
    };
    let h = Ipv6Header {
        hop_limit: HOP,
        source: CLIENT.octets(),
        destination: SERVER6.octets(),
        ..Default::default()
    };
    let mut pkt = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(h, exts))
        .udp(40000, 53)
        .write(&mut pkt, b"options")
        .unwrap();
    assert_eq!(pkt[6], 0, "Hop-by-Hop first");
    let out = forward_v6(&mut nat, t0, &pkt);
    let (h, l4) = parse4(&out);
    assert_eq!(out.len(), 20 + 8 + 7);
    assert_eq!(h.header_len(), 20);
    assert_eq!(h.time_to_live, HOP + 1);
    let (u, got) = udp_in4(&h, l4);
    assert_eq!(u.destination_port, 53);
    assert_eq!(got, b"options");
}

/// RFC 7915 §4.1 (the translator is a router): an IPv4 packet with TTL 0
/// gets ICMPv4 Time Exceeded from the pool4 address it was sent to,
/// quoting it.
#[test]
fn rfc7915_4_1_ttl_zero_gets_time_exceeded() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let pkt = udp4_reply(local, 0, 0x0c0c, false, b"answer");
    let out = reject_v4(
        &mut nat,
        t0,
        &pkt,
        NatDrop::Packet(DropReason::HopLimitExceeded),
    );
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit)
    );
    assert_eq!(quote, &pkt[..]);
}

/// RFC 7915 §4.1: an IPv4 packet with an unexpired Loose Source Route
/// option is not translated: ICMPv4 Destination Unreachable, code 5 (Source
/// Route Failed) goes back. An exhausted source route is ignored like any
/// other option, and the options are not carried over.
#[test]
fn rfc7915_4_1_unexpired_source_route_gets_source_route_failed() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let with_lsrr = |pointer: u8| {
        let mut h = ip4(SERVER, POOL, HOP, 0x0d0d, false);
        h.options = [131, 7, pointer, 203, 0, 113, 9, 0][..].try_into().unwrap();
        udp4(h, 53, local, b"routed")
    };
    let pkt = with_lsrr(4);
    let out = reject_v4(&mut nat, t0, &pkt, NatDrop::Packet(DropReason::SourceRoute));
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::SourceRouteFailed)
    );
    assert_eq!(quote, &pkt[..]);

    let out = forward_v4(&mut nat, t0, &with_lsrr(8));
    let (h, l4) = parse6(&out);
    assert_eq!(out.len(), 40 + 8 + 6);
    let (_, got) = udp_in6(&h, l4);
    assert_eq!(got, b"routed");
}

// =========================================== 8. addresses never translated

/// RFC 6052 §5.1 (spoofing protection): an IPv6 source inside the
/// translation prefix is never translated, so the gateway cannot be a
/// reflector: the server's answer to such a packet would come back to the
/// pool4 port and be translated to prefix+V, i.e. towards the IPv4 host V.
/// No session or binding is made, so that answer is dropped.
#[test]
fn rfc6052_5_1_source_inside_prefix_dropped_no_reflector() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let victim = Ipv4Addr::new(203, 0, 113, 9);
    for src in [embed(POOL), embed(victim), embed(SERVER2)] {
        let pkts = [
            udp6(src, 40000, SERVER6, 53, HOP, b"reflect"),
            echo6(src, SERVER6, 0x1234, HOP),
        ];
        for pkt in pkts {
            assert_eq!(
                verdict_v6(&mut nat, t0, &pkt),
                Verdict::Drop(NatDrop::SourceInPrefix),
                "{src}"
            );
        }
    }
    assert_eq!(
        Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0xc000, 0x201),
        embed(POOL)
    );
    assert_eq!((nat.session_count(), nat.bib_count()), (0, 0));
    let answer = udp4_reply(40000, HOP, 1, false, b"reflected");
    assert_eq!(
        verdict_v4(&mut nat, t0, &answer),
        Verdict::Drop(NatDrop::NoBinding)
    );
}

/// RFC 4291 §2.5.5 and §2.5.6: IPv4-mapped, IPv4-compatible and
/// link-local sources are no hosts of the IPv6 side behind a router.
#[test]
fn rfc4291_2_5_bad_ipv6_sources_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    for src in ["::ffff:192.0.2.9", "::192.0.2.9", "fe80::1"] {
        let src: Ipv6Addr = src.parse().unwrap();
        let pkt = udp6(src, 40000, SERVER6, 53, HOP, b"query");
        assert_eq!(
            verdict_v6(&mut nat, t0, &pkt),
            Verdict::Drop(NatDrop::BadIpv6Source),
            "{src}"
        );
    }
    assert_eq!(nat.session_count(), 0);
}

/// RFC 1812 §5.3.7 (martian addresses): "this network", loopback,
/// multicast, reserved and limited broadcast IPv4 destinations are never
/// translated to, under a network-specific prefix too.
#[test]
fn rfc1812_5_3_7_martian_ipv4_destinations_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    for dst in [
        "0.0.0.1",
        "127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        let dst: Ipv4Addr = dst.parse().unwrap();
        let pkt = udp6(CLIENT, 40000, embed(dst), 53, HOP, b"query");
        assert_eq!(
            verdict_v6(&mut nat, t0, &pkt),
            Verdict::Drop(NatDrop::SpecialIpv4Destination),
            "{dst}"
        );
    }
    assert_eq!(nat.session_count(), 0);
}

/// RFC 1812 §5.3.5.2: the gateway's own IPv4 address and its network's
/// directed broadcast are never translated to; a neighbour on that network
/// is.
#[test]
fn rfc1812_5_3_5_2_gateway_address_and_directed_broadcast_dropped() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.local_v4 = vec!["203.0.113.1/24".parse().unwrap()];
    let mut nat = nat(cfg);
    for dst in [
        Ipv4Addr::new(203, 0, 113, 1),
        Ipv4Addr::new(203, 0, 113, 255),
    ] {
        let pkt = udp6(CLIENT, 40000, embed(dst), 53, HOP, b"query");
        assert_eq!(
            verdict_v6(&mut nat, t0, &pkt),
            Verdict::Drop(NatDrop::GatewayIpv4Destination),
            "{dst}"
        );
    }
    assert_eq!(nat.session_count(), 0);
    let out = forward_v6(&mut nat, t0, &udp6(CLIENT, 40000, ROUTER4_6, 53, HOP, b"q"));
    let (h, _) = parse4(&out);
    assert_eq!(Ipv4Addr::from(h.destination), ROUTER4);
}

/// RFC 6146 §3.8: a client reaches another client through the other's
/// pool4 transport address: the packet leaves through the sender's binding
/// and comes back in through the receiver's, from the sender's pool4
/// transport address under the prefix.
#[test]
fn rfc6146_3_8_hairpinning_between_two_clients() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let other = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
    // The receiver has a binding (it talked to a server).
    let out = forward_v6(&mut nat, t0, &udp6(CLIENT, 40000, SERVER6, 53, HOP, b"q"));
    let (h, _) = parse4(&out);
    assert_eq!(Ipv4Addr::from(h.source), POOL);
    let receiver_port = u16::from_be_bytes([out[20], out[21]]);
    // The sender sends to it through the pool.
    let pkt = udp6(other, 5555, embed(POOL), receiver_port, HOP, b"hello");
    let out = forward_v6(&mut nat, t0, &pkt);
    let ip = etherparse::Ipv6HeaderSlice::from_slice(&out).unwrap();
    assert_eq!(ip.destination_addr(), CLIENT);
    assert_eq!(ip.source_addr(), embed(POOL));
    let sender_port = nat
        .bib()
        .into_iter()
        .find(|b| *b.v6_client.ip() == other)
        .unwrap()
        .v4_local
        .port();
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), sender_port);
    assert_eq!(u16::from_be_bytes([out[42], out[43]]), 40000);
    assert_eq!(&out[48..], b"hello");
    // Sessions on both sides of the pool.
    assert_eq!(nat.session_count(), 3);
    // Errors about hairpinned flows are not translated.
    let unreachable = Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port);
    let err = icmp6_error(CLIENT, embed(POOL), HOP, unreachable, &out);
    assert_eq!(
        verdict_v6(&mut nat, t0, &err),
        Verdict::Drop(NatDrop::Hairpinning)
    );
}

/// RFC 8200 §8.1: IPv6 UDP with a zero checksum is discarded (IPv6
/// receivers must), and opens nothing.
#[test]
fn rfc8200_8_1_ipv6_udp_zero_checksum_dropped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let mut pkt = udp6(CLIENT, 40000, SERVER6, 53, HOP, b"query");
    pkt[46] = 0;
    pkt[47] = 0;
    assert_eq!(
        verdict_v6(&mut nat, t0, &pkt),
        Verdict::Drop(NatDrop::Packet(DropReason::UdpZeroChecksum))
    );
    assert_eq!(nat.session_count(), 0);
}

/// RFC 6146 §3.4 and RFC 7915 §4.5: IPv4 UDP with a zero checksum (none)
/// is translated with the checksum computed, since IPv6 requires one.
#[test]
fn rfc7915_4_5_ipv4_udp_zero_checksum_computed() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let mut pkt = udp4_reply(local, HOP, 0x0e0e, false, b"no checksum");
    pkt[26] = 0;
    pkt[27] = 0;
    let out = forward_v4(&mut nat, t0, &pkt);
    let (h, l4) = parse6(&out);
    let (u, got) = udp_in6(&h, l4);
    assert_ne!(u.checksum, 0);
    assert_eq!(got, b"no checksum");
}

// ================================================== 9. ICMP error hygiene

/// RFC 4443 §2.4(f) and RFC 1812 §4.3.2.8: the errors the gateway sends
/// itself are rate-limited. At 10 per second, 100 hop-limit-0 packets at
/// once get 10 errors and 90 silent drops; a second later 10 more go.
#[test]
fn rfc4443_2_4_f_gateway_errors_rate_limited() {
    let t0 = Instant::now();
    let mut cfg = gateway_config();
    cfg.icmp_errors_per_second = 10;
    let mut nat = nat(cfg);
    let pkt = udp6(CLIENT, 40000, SERVER6, 53, 0, b"query");
    let expired = NatDrop::Packet(DropReason::HopLimitExceeded);
    let count = |nat: &mut Nat64, now: Instant, n: usize| {
        let mut rejects = 0;
        for _ in 0..n {
            match verdict_v6(nat, now, &pkt) {
                Verdict::Reject(r, _) if r == expired => rejects += 1,
                Verdict::Drop(r) if r == expired => {}
                other => panic!("{other:?}"),
            }
        }
        rejects
    };
    assert_eq!(count(&mut nat, t0, 100), 10);
    assert_eq!(nat.counters().icmp_errors_sent, 10);
    assert_eq!(nat.counters().icmp_errors_rate_limited, 90);
    assert_eq!(count(&mut nat, t0 + ms(1000), 20), 10);
    assert_eq!(nat.counters().icmp_errors_sent, 20);
    assert_eq!(nat.counters().icmp_errors_rate_limited, 100);
}

/// RFC 4443 §2.4(e) and RFC 1812 §4.3.2.7: no error is ever sent about an
/// ICMP error, to a multicast source, or about a fragment other than the
/// first (those are held for reassembly instead), on either side.
#[test]
fn rfc4443_2_4_e_no_error_about_errors_multicast_or_later_fragments() {
    let t0 = Instant::now();
    let mut nat = nat(gateway_config());
    let local = udp_session(&mut nat, t0);
    let expired = Verdict::Drop(NatDrop::Packet(DropReason::HopLimitExceeded));

    // An ICMPv6 error with hop limit 0, about a packet of the session.
    let reply6 = udp6(SERVER6, 53, CLIENT, 40000, HOP, b"answer");
    let error6 = icmp6_error(CLIENT, SERVER6, 0, port_unreachable6(), &reply6);
    assert_eq!(verdict_v6(&mut nat, t0, &error6), expired);
    // An ICMPv4 error with TTL 0, about a packet of the session.
    let sent4 = udp4(ip4(POOL, SERVER, HOP, 1, false), local, 53, b"query");
    let mut error4 = Vec::new();
    builder4(ip4(SERVER, POOL, 0, 2, false))
        .icmpv4(port_unreachable4())
        .write(&mut error4, &sent4)
        .unwrap();
    assert_eq!(verdict_v4(&mut nat, t0, &error4), expired);

    // Multicast sources.
    let from_multicast = udp6("ff02::1".parse().unwrap(), 40000, SERVER6, 53, 0, b"q");
    assert!(matches!(
        verdict_v6(&mut nat, t0, &from_multicast),
        Verdict::Drop(_)
    ));
    let from_multicast4 = udp4(
        ip4(Ipv4Addr::new(224, 0, 0, 9), POOL, 0, 3, false),
        53,
        local,
        b"a",
    );
    assert!(matches!(
        verdict_v4(&mut nat, t0, &from_multicast4),
        Verdict::Drop(_)
    ));

    // Fragments other than the first, hop limit / TTL 0.
    let whole6 = udp6(CLIENT, 40000, SERVER6, 53, 0, &[1; 1592]);
    let later6 = &fragments6(&whole6, 5, &[800])[1];
    assert_eq!(verdict_v6(&mut nat, t0, later6), Verdict::Held);
    let whole4 = udp4_reply(local, 0, 0x0f0f, false, &[2; 1592]);
    let later4 = &fragments4(&whole4, &[800])[1];
    assert_eq!(verdict_v4(&mut nat, t0, later4), Verdict::Held);

    assert_eq!(nat.counters().icmp_errors_sent, 0);
    assert_eq!(nat.counters().icmp_errors_rate_limited, 0);
}

// ========================================================= 10. RFC 7739

/// The IPv4 Identification of the translated packet `pkt`.
fn ipv4_id(pkt: &[u8]) -> u16 {
    parse4(pkt).0.identification
}

/// RFC 7739 §5 (and RFC 6864): consecutive packets to one server carry
/// different Identifications, and the values are not one counter shared by
/// every destination (which would let anyone count the gateway's traffic or
/// predict the next value); another secret gives other values.
#[test]
fn rfc7739_5_ipv4_identification_not_a_global_counter() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let to = |s: Ipv4Addr| udp6(CLIENT, 40000, embed(s), 53, HOP, b"query");
    let ids: Vec<u16> = (0..5)
        .map(|_| ipv4_id(&forward_v6(&mut nat, t0, &to(SERVER))))
        .collect();
    for w in ids.windows(2) {
        assert_ne!(w[0], w[1], "consecutive packets to one server: {ids:?}");
    }
    let mut seq = Vec::new();
    for _ in 0..3 {
        seq.push(ipv4_id(&forward_v6(&mut nat, t0, &to(SERVER))));
        seq.push(ipv4_id(&forward_v6(&mut nat, t0, &to(SERVER2))));
    }
    let counts_up = seq.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
    assert!(!counts_up, "one counter across servers: {seq:?}");
    let mut other = Nat64::with_seed(config(), SEED + 1);
    let first_other = ipv4_id(&forward_v6(&mut other, t0, &to(SERVER)));
    assert_ne!(first_other, ids[0], "the secret decides the values");
}

// ========================================== more: RFC 7915 details around

/// An ICMP error type, code and bytes 4..8 as raw values.
type Raw = (u8, u8, [u8; 4]);

/// RFC 7915 §4.2 and Figure 3: every ICMPv4 error type and code, as the
/// ICMPv6 (type, code, bytes 4..8) it becomes, or silently dropped.
#[test]
fn rfc7915_4_2_icmpv4_error_types_codes_and_pointers_mapped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let sent4 = forward_v6(
        &mut nat,
        t0,
        &udp6(CLIENT, 40000, SERVER6, 53, HOP, b"query"),
    );
    let untranslatable = Err(DropReason::IcmpUntranslatable);
    let mut cases: Vec<(Raw, Result<Raw, DropReason>)> = Vec::new();
    let unreach = |code: u8, to: u8| ((3, code, [0; 4]), Ok((1, to, [0; 4])));
    for code in [0, 1, 5, 6, 7, 8, 11, 12] {
        cases.push(unreach(code, 0));
    }
    for code in [9, 10, 13, 15] {
        cases.push(unreach(code, 1));
    }
    cases.push(unreach(3, 4));
    cases.push(((3, 2, [0; 4]), Ok((4, 1, [0, 0, 0, 6]))));
    cases.push(((3, 14, [0; 4]), untranslatable));
    cases.push(((3, 16, [0; 4]), untranslatable));
    cases.push(((11, 0, [0; 4]), Ok((3, 0, [0; 4]))));
    cases.push(((11, 1, [0; 4]), Ok((3, 1, [0; 4]))));
    for p in 0u8..=20 {
        let to = match p {
            0 => Some(0u8),
            1 => Some(1),
            2 | 3 => Some(4),
            8 => Some(7),
            9 => Some(6),
            12..=15 => Some(8),
            16..=19 => Some(24),
            _ => None,
        };
        for code in [0, 2] {
            let expect = to.map_or(untranslatable, |t| Ok((4, 0, [0, 0, 0, t])));
            cases.push(((12, code, [p, 0, 0, 0]), expect));
        }
    }
    cases.push(((12, 1, [0; 4]), untranslatable));
    cases.push(((4, 0, [0; 4]), Err(DropReason::Icmpv4TypeUnsupported)));
    cases.push(((5, 1, [0; 4]), Err(DropReason::Icmpv4TypeUnsupported)));

    for ((type_u8, code_u8, bytes5to8), expect) in cases {
        let ty = Icmpv4Type::Unknown {
            type_u8,
            code_u8,
            bytes5to8,
        };
        let error = icmp4_error(ROUTER4, POOL, ty, &sent4);
        let what = format!("ICMPv4 {type_u8}/{code_u8} {bytes5to8:?}");
        match (run(&mut nat, t0, &error, false), expect) {
            ((Verdict::Forward(_), out), Ok((t, c, b))) => {
                let (h, l4) = parse6(&out);
                assert_eq!(Ipv6Addr::from(h.source), ROUTER4_6, "{what}");
                let icmp = icmp_in6(&h, l4);
                assert_eq!(
                    (icmp.type_u8(), icmp.code_u8(), icmp.bytes5to8()),
                    (t, c, b),
                    "{what}"
                );
                let (qh, ql4) = parse6(icmp.payload());
                udp_in6(&qh, ql4);
            }
            ((Verdict::Drop(NatDrop::Packet(r)), _), Err(want)) => {
                assert_eq!(r, want, "{what}")
            }
            ((got, _), want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
    assert_eq!(nat.session_count(), 1);
}

/// RFC 7915 §5.2 and Figure 6: every ICMPv6 error type and code, as the
/// ICMPv4 (type, code, bytes 4..8) it becomes, or silently dropped.
#[test]
fn rfc7915_5_2_icmpv6_error_types_codes_and_pointers_mapped() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let sent6 = forward_v4(
        &mut nat,
        t0,
        &udp4_reply(local, HOP, 0x1111, false, b"answer"),
    );
    let untranslatable = Err(DropReason::IcmpUntranslatable);
    let mut cases: Vec<(Raw, Result<Raw, DropReason>)> = Vec::new();
    for (code, to) in [(0, 1), (1, 10), (2, 1), (3, 1), (4, 3)] {
        cases.push(((1, code, [0; 4]), Ok((3, to, [0; 4]))));
    }
    cases.push(((1, 5, [0; 4]), untranslatable));
    cases.push(((1, 6, [0; 4]), untranslatable));
    cases.push(((3, 0, [0; 4]), Ok((11, 0, [0; 4]))));
    cases.push(((3, 1, [0; 4]), Ok((11, 1, [0; 4]))));
    for p in 0u8..=41 {
        let to = match p {
            0 => Some(0u8),
            1 => Some(1),
            4 | 5 => Some(2),
            6 => Some(9),
            7 => Some(8),
            8..=23 => Some(12),
            24..=39 => Some(16),
            _ => None,
        };
        let expect = to.map_or(untranslatable, |t| Ok((12, 0, [t, 0, 0, 0])));
        cases.push(((4, 0, [0, 0, 0, p]), expect));
    }
    cases.push(((4, 1, [0, 0, 0, 6]), Ok((3, 2, [0; 4]))));
    cases.push(((4, 2, [0, 0, 0, 40]), untranslatable));

    for ((type_u8, code_u8, bytes5to8), expect) in cases {
        let ty = Icmpv6Type::Unknown {
            type_u8,
            code_u8,
            bytes5to8,
        };
        let error = icmp6_error(CLIENT, SERVER6, HOP, ty, &sent6);
        let what = format!("ICMPv6 {type_u8}/{code_u8} {bytes5to8:?}");
        match (run(&mut nat, t0, &error, true), expect) {
            ((Verdict::Forward(_), out), Ok((t, c, b))) => {
                let (h, l4) = parse4(&out);
                assert_eq!(Ipv4Addr::from(h.source), POOL, "{what}");
                let icmp = icmp_in4(&h, l4);
                assert_eq!(
                    (icmp.type_u8(), icmp.code_u8(), icmp.bytes5to8()),
                    (t, c, b),
                    "{what}"
                );
                let (qh, ql4) = parse4(icmp.payload());
                udp_in4(&qh, ql4);
            }
            ((Verdict::Drop(NatDrop::Packet(r)), _), Err(want)) => {
                assert_eq!(r, want, "{what}")
            }
            ((got, _), want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

/// RFC 7915 §5.2-§5.3 with RFC 6146 §3.5.3: an ICMPv6 error from the client
/// about the server's echo reply reaches the server quoting an ICMPv4 echo
/// reply with the pool4 identifier and a valid ICMPv4 checksum.
#[test]
fn rfc7915_5_2_error_about_echo_reply_quotes_pool4_identifier() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let sent4 = forward_v6(&mut nat, t0, &echo6(CLIENT, SERVER6, 0x1234, HOP));
    let (h4, l4) = parse4(&sent4);
    let Icmpv4Type::EchoRequest(echo) = icmp_in4(&h4, l4).icmp_type() else {
        panic!("not an echo request");
    };
    let mut reply4 = Vec::new();
    builder4(ip4(SERVER, POOL, HOP, 0x2222, false))
        .icmpv4_echo_reply(echo.id, echo.seq)
        .write(&mut reply4, b"pong")
        .unwrap();
    let reply6 = forward_v4(&mut nat, t0, &reply4);
    let prohibited = Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Prohibited);
    let error = icmp6_error(CLIENT, SERVER6, HOP, prohibited, &reply6);
    let out = forward_v6(&mut nat, t0, &error);
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::HostProhibited)
    );
    let (qh, ql4) = parse4(quote);
    let q = icmp_in4(&qh, ql4);
    assert_eq!(q.icmp_type(), Icmpv4Type::EchoReply(echo));
    assert_eq!(q.payload(), b"pong");
    assert_eq!(ql4, &reply4[20..], "the server's echo reply, byte for byte");
}

/// RFC 7915 §4.4 with RFC 4443 §2.4(c): an IPv4 router quoting a whole
/// 1440-byte segment (more than RFC 1812 asks) still yields an ICMPv6
/// error of at most 1280 bytes, the quote cut short.
#[test]
fn rfc7915_4_4_long_icmpv4_quote_cut_to_1280() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    forward_v6(&mut nat, t0, &tcp6(50000, 443, true, &[]));
    let segment = tcp6(50000, 443, false, &[0xab; 1400]);
    let sent4 = forward_v6(&mut nat, t0, &segment);
    let frag_needed =
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        });
    let error = icmp4_error(ROUTER4, POOL, frag_needed, &sent4);
    let out = forward_v4(&mut nat, t0, &error);
    assert_eq!(out.len(), 1280);
    let (ty, quote) = icmp6_error_of(&out, ROUTER4_6, CLIENT);
    assert_eq!(ty, Icmpv6Type::PacketTooBig { mtu: 1420 });
    let (qh, ql4) = Ipv6Header::from_slice(quote).unwrap();
    assert_eq!(qh.payload_length, 1420);
    assert_eq!(ql4, &segment[40..40 + ql4.len()]);
}

/// RFC 7915 §4 (`lowest-ipv6-mtu`) at its edges: DF clear, a translation of
/// exactly 1280 bytes leaves whole, one byte more leaves as two fragments;
/// DF set, exactly the IPv6 MTU (1500) leaves whole, one byte more is
/// refused.
#[test]
fn rfc7915_4_fragmentation_edges() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let data_for = |total4: usize| vec![0x5a; total4 - 28];

    let out = forward_v4(
        &mut nat,
        t0,
        &udp4_reply(local, HOP, 1, false, &data_for(1260)),
    );
    assert_eq!(out.len(), 1280);
    let (h, l4) = parse6(&out);
    udp_in6(&h, l4);
    let out = forward_v4(
        &mut nat,
        t0,
        &udp4_reply(local, HOP, 2, false, &data_for(1261)),
    );
    let (whole, count) = reassemble6(&out, 1280, 2);
    assert_eq!((count, whole.len()), (2, 1281));
    let (h, l4) = parse6(&whole);
    udp_in6(&h, l4);

    let out = forward_v4(
        &mut nat,
        t0,
        &udp4_reply(local, HOP, 3, true, &data_for(1480)),
    );
    assert_eq!(out.len(), 1500);
    let (h, l4) = parse6(&out);
    udp_in6(&h, l4);
    let too_big = NatDrop::Packet(DropReason::TooBigForIpv6);
    reject_v4(
        &mut nat,
        t0,
        &udp4_reply(local, HOP, 4, true, &data_for(1481)),
        too_big,
    );
    assert_eq!(nat.counters().packets_fragmented, 1);
}

/// RFC 7915 §5.1: DF is set on translated packets only above 1260 bytes
/// (below that an IPv4 router may fragment them, and the IPv6 sender would
/// never learn a smaller MTU than 1280 anyway).
#[test]
fn rfc7915_5_1_df_set_only_above_1260() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let at = |nat: &mut Nat64, total6: usize| {
        let pkt = udp6(CLIENT, 40000, SERVER6, 53, HOP, &vec![1; total6 - 48]);
        let out = forward_v6(nat, t0, &pkt);
        let (h, l4) = parse4(&out);
        udp_in4(&h, l4);
        assert_eq!(out.len(), total6 - 20);
        h.dont_fragment
    };
    assert!(!at(&mut nat, 1280), "1260 bytes of IPv4: DF clear");
    assert!(at(&mut nat, 1281), "1261 bytes of IPv4: DF set");
}

/// RFC 7915 §4.1 and §5.1: Type of Service and Traffic Class are copied
/// both ways; the Flow Label is zero.
#[test]
fn rfc7915_4_1_5_1_traffic_class_and_tos_copied() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let h = Ipv6Header {
        traffic_class: 0xb8,
        flow_label: 0x12345.try_into().unwrap(),
        hop_limit: HOP,
        source: CLIENT.octets(),
        destination: SERVER6.octets(),
        ..Default::default()
    };
    let mut pkt = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(h, Default::default()))
        .udp(40000, 53)
        .write(&mut pkt, b"ef")
        .unwrap();
    let out = forward_v6(&mut nat, t0, &pkt);
    let (h4, l4) = parse4(&out);
    let (u, _) = udp_in4(&h4, l4);
    assert_eq!((h4.dscp.value(), h4.ecn.value()), (0xb8 >> 2, 0));

    let mut h = ip4(SERVER, POOL, HOP, 5, false);
    h.dscp = etherparse::IpDscp::try_new(10).unwrap();
    h.ecn = etherparse::IpEcn::try_new(1).unwrap();
    let out = forward_v4(&mut nat, t0, &udp4(h, 53, u.source_port, b"af11"));
    let (h6, l4) = parse6(&out);
    udp_in6(&h6, l4);
    assert_eq!(h6.traffic_class, (10 << 2) | 1);
    assert_eq!(h6.flow_label.value(), 0);
}

/// RFC 4443 §2.4(f): with `icmp_errors_per_second` 0 the gateway sends no
/// error at all, and counts each one it did not send.
#[test]
fn rfc4443_2_4_f_zero_rate_sends_no_error() {
    let t0 = Instant::now();
    let mut cfg = gateway_config();
    cfg.icmp_errors_per_second = 0;
    let mut nat = nat(cfg);
    let pkt = udp6(CLIENT, 40000, SERVER6, 53, 0, b"query");
    assert_eq!(
        verdict_v6(&mut nat, t0, &pkt),
        Verdict::Drop(NatDrop::Packet(DropReason::HopLimitExceeded))
    );
    assert_eq!(nat.counters().icmp_errors_sent, 0);
    assert_eq!(nat.counters().icmp_errors_rate_limited, 1);
}

/// An RFC 4884 / RFC 4950 ICMP extension structure: version 2 header with
/// its checksum, and one MPLS Label Stack object with one entry.
fn mpls_extension() -> Vec<u8> {
    let mut ext = vec![0x20, 0, 0, 0, 0, 8, 1, 1, 0x01, 0x23, 0x41, 0xff];
    let check = Sum16BitWords::new().add_slice(&ext).ones_complement();
    ext[2..4].copy_from_slice(&check.to_be_bytes());
    ext
}

/// RFC 4884 §4-§5 as RFC 7915 §4.2 carries it: an ICMPv4 Time Exceeded with
/// an MPLS extension (as routers send to traceroute) becomes ICMPv6 Time
/// Exceeded whose length attribute (8-byte units) covers the translated,
/// zero-padded original datagram (at least 128 bytes), followed by the
/// extension unchanged.
#[test]
fn rfc4884_5_icmpv4_extension_carried_to_icmpv6() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let original = udp6(CLIENT, 40000, SERVER6, 53, HOP, b"query");
    let sent4 = forward_v6(&mut nat, t0, &original);
    let ext = mpls_extension();
    let mut payload = sent4.clone();
    payload.resize(128, 0);
    payload.extend_from_slice(&ext);
    let ty = Icmpv4Type::Unknown {
        type_u8: 11,
        code_u8: 0,
        bytes5to8: [0, 128 / 4, 0, 0],
    };
    let error = icmp4_error(ROUTER4, POOL, ty, &payload);
    let out = forward_v4(&mut nat, t0, &error);
    let (h, l4) = parse6(&out);
    let icmp = icmp_in6(&h, l4);
    assert_eq!((icmp.type_u8(), icmp.code_u8()), (3, 0));
    let original_len = usize::from(icmp.bytes5to8()[0]) * 8;
    assert!(original_len >= 128, "RFC 4884 §4: at least 128 bytes");
    let quote = icmp.payload();
    assert_eq!(quote.len(), original_len + ext.len());
    let mut expected = original.clone();
    expected[7] = HOP + 1;
    assert_eq!(&quote[..expected.len()], &expected[..]);
    assert!(quote[expected.len()..original_len].iter().all(|&b| b == 0));
    assert_eq!(&quote[original_len..], &ext[..]);
}

/// RFC 4884 §4-§5 as RFC 7915 §5.2 carries it: an ICMPv6 Time Exceeded
/// with an extension becomes ICMPv4 Time Exceeded whose length attribute
/// (4-byte units) covers the translated, padded original datagram, followed
/// by the extension unchanged.
#[test]
fn rfc4884_5_icmpv6_extension_carried_to_icmpv4() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let reply4 = udp4_reply(local, HOP, 0x3333, false, b"answer");
    let sent6 = forward_v4(&mut nat, t0, &reply4);
    let ext = mpls_extension();
    let mut payload = sent6.clone();
    payload.resize(128, 0);
    payload.extend_from_slice(&ext);
    let ty = Icmpv6Type::Unknown {
        type_u8: 3,
        code_u8: 0,
        bytes5to8: [128 / 8, 0, 0, 0],
    };
    let error = icmp6_error(ROUTER6, SERVER6, HOP, ty, &payload);
    let out = forward_v6(&mut nat, t0, &error);
    let (h, l4) = parse4(&out);
    let icmp = icmp_in4(&h, l4);
    assert_eq!((icmp.type_u8(), icmp.code_u8()), (11, 0));
    let original_len = usize::from(icmp.bytes5to8()[1]) * 4;
    assert!(original_len >= 128, "RFC 4884 §4: at least 128 bytes");
    let quote = icmp.payload();
    assert_eq!(quote.len(), original_len + ext.len());
    let (qh, ql4) = Ipv4Header::from_slice(quote).unwrap();
    assert_eq!(usize::from(qh.total_len), reply4.len());
    let (u, data) = udp_in4(&qh, &ql4[..reply4.len() - 20]);
    assert_eq!((u.source_port, u.destination_port), (53, local));
    assert_eq!(data, b"answer");
    assert!(quote[reply4.len()..original_len].iter().all(|&b| b == 0));
    assert_eq!(&quote[original_len..], &ext[..]);
}

/// RFC 7915 §5.3 with §5.1.1: the packet quoted in an ICMPv6 error is
/// translated like any packet, so a quoted first fragment (here the first
/// of the fragments the NAT made of a 1500-byte reply with DF clear)
/// becomes an IPv4 first fragment: MF set, offset 0, DF clear,
/// Identification the low 16 bits of the fragment identification (which
/// is the server's own IPv4 Identification), Total Length that of the
/// fragment.
#[test]

fn rfc7915_5_3_quoted_fragment_translated_as_fragment() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let local = udp_session(&mut nat, t0);
    let reply4 = udp4_reply(local, HOP, 0xbeef, false, &[7; 1472]);
    let train = forward_v4(&mut nat, t0, &reply4);
    let first = split6(&train)[0].to_vec();
    assert_eq!(first.len(), 1280);
    let prohibited = Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Prohibited);
    let error = icmp6_error(ROUTER6, SERVER6, HOP, prohibited, &first[..QUOTE6]);
    let out = forward_v6(&mut nat, t0, &error);
    let (ty, quote) = icmp4_error_of(&out, POOL, SERVER);
    assert_eq!(
        ty,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::HostProhibited)
    );
    let (qh, ql4) = Ipv4Header::from_slice(quote).unwrap();
    assert_eq!(qh.protocol, ip_number::UDP);
    assert_eq!(
        ql4,
        &reply4[20..20 + ql4.len()],
        "the server's UDP header and data"
    );
    assert_eq!(
        (
            qh.identification,
            qh.more_fragments,
            qh.fragment_offset.value(),
            qh.dont_fragment,
            qh.total_len,
        ),
        (0xbeef, true, 0, false, 20 + 1232),
        "the quoted fragment's header"
    );
}

/// RFC 1812 §4.3.2.7: no ICMP error about a packet whose source is no
/// single host: a Class E address, or the directed broadcast of one of the
/// gateway's own networks (`local_v4`).
#[test]

fn rfc1812_4_3_2_7_no_error_to_class_e_or_directed_broadcast_source() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.local_v4 = vec!["203.0.113.1/24".parse().unwrap()];
    let mut nat = nat(cfg);
    let answered: Vec<_> = [Ipv4Addr::new(240, 0, 0, 1), Ipv4Addr::new(203, 0, 113, 255)]
        .into_iter()
        .filter(|&src| {
            let pkt = udp4(ip4(src, POOL, 0, 1, false), 53, 40000, b"x");
            matches!(verdict_v4(&mut nat, t0, &pkt), Verdict::Reject(..))
        })
        .collect();
    assert_eq!(
        answered,
        Vec::<Ipv4Addr>::new(),
        "ICMPv4 errors sent to these sources"
    );
    assert_eq!(nat.counters().icmp_errors_sent, 0);
}

/// RFC 4443 §2.4(e) with RFC 6052 §5.1: a packet from a source the NAT
/// never translates (inside the prefix, IPv4-mapped) gets no ICMPv6 error
/// either, even when its hop limit ran out: the address checks come first.
#[test]

fn rfc4443_2_4_e_no_error_to_sources_never_translated() {
    let t0 = Instant::now();
    let mut nat = nat(gateway_config());
    let cases = [
        (
            embed(Ipv4Addr::new(203, 0, 113, 9)),
            NatDrop::SourceInPrefix,
        ),
        ("::ffff:192.0.2.9".parse().unwrap(), NatDrop::BadIpv6Source),
    ];
    let wrong: Vec<_> = cases
        .into_iter()
        .map(|(src, reason)| {
            let pkt = udp6(src, 40000, SERVER6, 53, 0, b"query");
            (src, verdict_v6(&mut nat, t0, &pkt), Verdict::Drop(reason))
        })
        .filter(|(_, got, want)| got != want)
        .collect();
    assert_eq!(wrong, Vec::new(), "(source, verdict, expected)");
    assert_eq!(nat.counters().icmp_errors_sent, 0);
}

/// RFC 8200 §4.5: a Destination Options header after the Fragment header
/// belongs to the fragmentable part; in a fragment other than the first,
/// what follows the Fragment header is data, never parsed as headers. Found
/// by the fuzzer: such a second fragment was dropped as a bad extension
/// header and the datagram never reassembled.
#[test]
fn rfc8200_4_5_data_after_fragment_header_of_later_fragment_is_not_parsed() {
    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
    let t0 = Instant::now();
    let pool4 = Pool4::new(&["192.0.2.0/30".parse().unwrap()]).unwrap();
    let prefix = Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap();
    let mut nat = Nat64::with_seed(Nat64Config::new(prefix, pool4, Timeouts::default()), 1);
    let first = hex("6000000000102c4020010db800010000000000000000000220010db80064000000000000080808083c000001800000011100010400000000");
    // The UDP header (ports 1000 -> 80, length 8) is the second fragment's data.
    let second = hex("6000000000102c4020010db800010000000000000000000220010db80064000000000000080808083c0000088000000103e80050000839bd");
    let mut out = vec![0u8; nat.max_output_len()];
    assert_eq!(nat.handle_v6(t0, &first, &mut out), Verdict::Held);
    let v = nat.handle_v6(t0, &second, &mut out);
    assert!(
        matches!(v, Verdict::Forward(_)),
        "the datagram reassembles and is translated: {v:?}"
    );
    assert_eq!(nat.counters().fragments_reassembled, 1);
}

/// RFC 7915 §4 with the daemon's buffers: a 1400-byte echo reply without DF
/// (as Linux sends them) translates to 1420 bytes, more than
/// `lowest_ipv6_mtu`, so it leaves as two IPv6 fragments; `output_bound`
/// must leave room for them. Found end to end (`ping -s 1372` through a
/// 1400-byte link came back as `drop_output_too_small`).
#[test]
fn rfc7915_4_df_clear_echo_reply_fragments_within_output_bound() {
    let t0 = Instant::now();
    let mut nat = nat(config());
    let data = vec![0x5au8; 1372];
    let mut request = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), SERVER6.octets(), HOP)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut request, &data)
        .unwrap();
    let sent = forward_v6(&mut nat, t0, &request);
    let pool_id = u16::from_be_bytes([sent[24], sent[25]]);
    let mut reply = Vec::new();
    builder4(ip4(SERVER, POOL, HOP, 0x4321, false))
        .icmpv4_echo_reply(pool_id, 1)
        .write(&mut reply, &data)
        .unwrap();
    assert_eq!(reply.len(), 1400);
    let out = forward_v4(&mut nat, t0, &reply);
    let fragments: Vec<&[u8]> = xlat64_packet::fragment::packets(&out).collect();
    assert_eq!(fragments.len(), 2, "two fragments of at most 1280 bytes");
    assert!(fragments.iter().all(|f| f.len() <= 1280 && f[6] == 44));
}
