//! The harness behind the `nat64_packets` fuzz target (`fuzz/` at the
//! repository root) and the proptest that runs it in CI
//! (`tests/fuzz_harness.rs`).
//!
//! [`nat64_sequence`] reads the fuzzer's bytes as a configuration followed by
//! a sequence of operations on one [`Nat64`] under a virtual clock. Most
//! packets are built with correct lengths and checksums around
//! fuzzer-chosen fields, from small address sets, so that sessions are hit
//! from both sides and the deep paths (reassembly, ICMP errors about
//! sessions, fragmentation, pool exhaustion, expiry) are reached; a share is
//! raw bytes, and any packet may have fuzzer-chosen bytes flipped.
//!
//! Every verdict is checked; a panic is the fuzzer's finding:
//! - lengths never exceed the buffer of [`Nat64::output_bound`] bytes;
//! - every emitted packet is a well-formed IPv4/IPv6 packet of its claimed
//!   length, with a valid IPv4 header checksum, from a pool4 (or RFC 6791)
//!   address or from under the prefix (or the configured ICMPv6 source);
//! - transport checksums (TCP, UDP, ICMP, ICMPv6) of emitted packets are
//!   valid, except that a TCP/UDP packet whose own checksum was wrong leaves
//!   exactly as wrong (same ones' complement residual); trains of IPv6
//!   fragments are reassembled here and checked as one packet; after
//!   reassembly, only datagrams built from untouched slices of one valid
//!   datagram are held to a valid checksum;
//! - Reject carries an ICMP error to the packet's sender of at most 1280
//!   (IPv6) / 576 (IPv4) bytes; translated ICMP errors respect the same
//!   bounds; IPv6 packets respect the IPv6 MTU (fragments the lowest one);
//! - a forwarded packet belongs to a binding of the BIB;
//! - the tables stay consistent, `handle_timeout` at a due `poll_timeout`
//!   leaves nothing due, and expiring everything leaves nothing behind;
//! - a twin NAT (same configuration and seed) that gets every packet through
//!   [`Nat64::translate_in_place`] first, and through `handle_v6`/`handle_v4`
//!   only when that falls back, produces exactly the same packets and
//!   verdicts; a fallback leaves the buffer untouched.

use crate::{InPlace, Nat64, Nat64Config, NatDrop, Pool4, ReassemblyLimits, Timeouts, Verdict};
use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};
use xlat64_packet::checksum::{combine, finish, fold, pseudo_v4, pseudo_v6, sum};
use xlat64_packet::fragment::packets;
use xlat64_packet::{ipv6_ext, parse_v4, parse_v6, DropReason, L4Proto, Prefix6052};

/// Operations per input, so that one input cannot run for long.
const MAX_OPS: usize = 256;
/// Recent packets remembered per family (to answer and to quote).
const HISTORY: usize = 8;
/// Fragments sent per fragmentation operation at most.
const MAX_FRAGMENTS_SENT: usize = 80;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_DEST_OPTS: u8 = 60;
const NH_AH: u8 = 51;

const POOL_NET: &str = "192.0.2.0/30";
const CLIENTS: [Ipv6Addr; 4] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, 1),
];
/// Sources the NAT must refuse or treat specially.
const ODD_SOURCES: [Ipv6Addr; 5] = [
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201),
    Ipv6Addr::LOCALHOST,
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1),
];
/// IPv6 routers that send ICMPv6 errors about packets to clients.
const ROUTERS_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe),
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1),
];
const SERVERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(93, 184, 216, 34),
    Ipv4Addr::new(1, 1, 1, 1),
];
/// Destinations the NAT must refuse or treat specially.
const ODD_SERVERS: [Ipv4Addr; 8] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 255),
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(224, 0, 0, 5),
    Ipv4Addr::new(0, 1, 2, 3),
    Ipv4Addr::new(255, 255, 255, 255),
];
/// IPv4 routers that send ICMP errors (one not global, one private).
const ROUTERS_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(80, 81, 82, 83),
    Ipv4Addr::new(203, 0, 113, 254),
    Ipv4Addr::new(10, 9, 9, 9),
];
const RFC6791: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 51, 100, 9), Ipv4Addr::new(80, 1, 1, 1)];
const CLIENT_PORTS: [u16; 6] = [1000, 1001, 1002, 1003, 40000, 53];
const SERVER_PORTS: [u16; 4] = [53, 80, 443, 123];

/// Runs the fuzzer's `data` as a configuration plus a sequence of packets
/// and clock steps through one [`Nat64`], checking every result (see the
/// module documentation). Deterministic: the same bytes take the same path.
pub fn nat64_sequence(data: &[u8]) {
    let mut r = Reader { data };
    let mut h = Harness::new(&mut r);
    let mut ops = 0;
    while !r.data.is_empty() && ops < MAX_OPS {
        ops += 1;
        h.op(&mut r);
    }
    h.drain();
}

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A value below `n` (at most 256).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// True with probability about `p`/256.
    fn chance(&mut self, p: u8) -> bool {
        self.u8() < p
    }

    /// Up to `n` bytes (fewer when the data runs out).
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a.to_vec()
    }
}

/// Transport of a structured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    /// ICMP echo; the "ports" are the identifier.
    Echo,
    /// Any other protocol number, payload only.
    Other(u8),
}

/// The transport endpoints of a packet: (kind, source, source port,
/// destination, destination port); for echo both ports are the identifier.
type Endpoints<A> = (Kind, A, u16, A, u16);

/// What a forwarded packet's transport checksum must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// TCP/UDP: this ones' complement residual (0: valid), as the input had.
    Residual(u32),
    /// Unknown: the input was a fragment of a datagram that may have been
    /// altered, or its checksum could not be computed.
    Unknown,
}

struct Harness {
    nat: Nat64,
    /// The same NAT, fed through the in-place path first.
    twin: Nat64,
    now: Instant,
    prefix: Prefix6052,
    pool: Vec<Ipv4Addr>,
    ipv6_mtu: usize,
    fragment_mtu: usize,
    icmp_source_v6: Ipv6Addr,
    out: Vec<u8>,
    /// IPv4 packets the NAT sent to servers (whole).
    v4_sent: Vec<Vec<u8>>,
    /// IPv6 packets the NAT sent to clients (trains reassembled).
    v6_sent: Vec<Vec<u8>>,
    /// (IP version, identification) of fragments that were not untouched
    /// slices of one valid datagram.
    tainted: HashSet<(u8, u32)>,
    /// Identifications of untouched datagrams: each used once.
    next_clean_id: u32,
}

impl Harness {
    fn new(r: &mut Reader<'_>) -> Self {
        let b0 = r.u8();
        let prefix = match b0 & 3 {
            0 => prefix("2001:db8:64::/96"),
            1 => Prefix6052::WELL_KNOWN,
            2 => prefix("2001:db8:64::/64"),
            _ => prefix("2001:db8:100::/40"),
        };
        let ports = r.u8();
        let pool = Pool4::new(&[POOL_NET.parse().expect("literal net")])
            .and_then(|p| p.with_port_range(1024..=1024 + u16::from(ports & 7)))
            .and_then(|p| p.with_icmp_id_range(7..=7 + u16::from(ports >> 5)))
            .expect("valid pool");
        let first_pool4 = pool.addrs()[0];
        let mut config = Nat64Config::new(prefix, pool, Timeouts::default());
        config.icmp_errors_per_second = match (b0 >> 2) & 3 {
            1 => 0,
            2 => 1,
            _ => 1000,
        };
        if b0 & 0x10 != 0 {
            config.rfc6791_v4 = RFC6791.to_vec();
        }
        if b0 & 0x20 != 0 {
            config.local_v4 = vec!["10.0.0.1/24".parse().expect("literal net")];
        }
        if ports & 0x10 != 0 {
            // Port blocks (RFC 7422), small enough for the tiny range.
            config.port_block = 2;
        }
        if ports & 0x08 != 0 {
            // The host holds the first pool4 address too (its uplink
            // address, shared by port range).
            let net = Ipv4Net::new(first_pool4, 24).expect("valid length");
            config.local_v4.push(net);
        }
        if b0 & 0x80 != 0 {
            // Ports reused at once, as without RFC 6888 REQ-8's delay.
            config.port_reuse_delay = Duration::ZERO;
        }
        if b0 & 0x40 != 0 {
            config.icmp_source_v6 = Some(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1));
        }
        // As the daemon's configuration allows: 1280 <= lowest <= mtu.
        let mtu = r.u8();
        config.ipv6_mtu = match mtu & 7 {
            0 | 1 => 1500,
            2 => 1280,
            3 => 9000,
            4 => 65535,
            _ => 1280 + u16::from(mtu) * 4,
        };
        config.lowest_ipv6_mtu = if mtu & 0x80 != 0 {
            config.ipv6_mtu
        } else {
            1280
        };
        let frag = r.u8();
        config.fragments = ReassemblyLimits {
            max_datagrams: 1 + usize::from(frag & 7),
            max_per_source: 1 + usize::from((frag >> 3) & 3),
            max_fragments: 1 + r.below(64),
            timeout: if frag & 0x80 != 0 {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(2)
            },
        };
        let seed = u64::from(r.u16());
        let ipv6_mtu = usize::from(config.ipv6_mtu);
        let fragment_mtu = usize::from(config.lowest_ipv6_mtu.min(config.ipv6_mtu));
        let pool: Vec<Ipv4Addr> = config.pool4.addrs().to_vec();
        let icmp_source_v6 = config
            .icmp_source_v6
            .unwrap_or_else(|| prefix.embed(pool[0]));
        let nat = Nat64::with_seed(config.clone(), seed);
        let twin = Nat64::with_seed(config, seed);
        let out = vec![0; nat.max_output_len()];
        Harness {
            nat,
            twin,
            now: Instant::now(),
            prefix,
            pool,
            ipv6_mtu,
            fragment_mtu,
            icmp_source_v6,
            out,
            v4_sent: Vec::new(),
            v6_sent: Vec::new(),
            tainted: HashSet::new(),
            next_clean_id: 0,
        }
    }

    fn op(&mut self, r: &mut Reader<'_>) {
        match r.below(18) {
            0..=2 => self.op_v6(r),
            3..=5 => self.op_v4(r),
            6 => self.op_v6_reply(r),
            7 => self.op_v6_fragments(r),
            8 => self.op_v4_fragments(r),
            9 | 10 => self.op_v6_error(r),
            11 | 12 => self.op_v4_error(r),
            13 => self.op_raw(r, true),
            14 => self.op_raw(r, false),
            15 | 16 => self.op_clock(r),
            _ => self.op_replay(r),
        }
    }

    // ---- address and field choices ----

    fn client(&self, r: &mut Reader<'_>) -> Ipv6Addr {
        let b = r.u8();
        if b < 240 {
            CLIENTS[usize::from(b) % CLIENTS.len()]
        } else {
            ODD_SOURCES[usize::from(b) % ODD_SOURCES.len()]
        }
    }

    fn server(&self, r: &mut Reader<'_>) -> Ipv4Addr {
        let b = r.u8();
        if b < 232 {
            SERVERS[usize::from(b) % SERVERS.len()]
        } else {
            ODD_SERVERS[usize::from(b) % ODD_SERVERS.len()]
        }
    }

    /// A server as a client addresses it: mostly under the prefix.
    fn server6(&self, r: &mut Reader<'_>) -> Ipv6Addr {
        if r.chance(248) {
            self.prefix.embed(self.server(r))
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)
        }
    }

    fn pool_addr(&self, r: &mut Reader<'_>) -> Ipv4Addr {
        let b = r.u8();
        if b < 248 {
            self.pool[usize::from(b) % self.pool.len()]
        } else {
            Ipv4Addr::new(198, 51, 100, 1)
        }
    }

    // ---- operations ----

    /// A client's packet to a server.
    fn op_v6(&mut self, r: &mut Reader<'_>) {
        let src = self.client(r);
        let dst = self.server6(r);
        let kind = kind(r);
        let sport = port(r, &CLIENT_PORTS);
        let dport = port(r, &SERVER_PORTS);
        let pkt = build_v6(r, src, dst, kind, sport, dport, true);
        self.feed_mutated_v6(r, pkt);
    }

    /// A server's packet to the pool: mostly an answer to what the NAT sent.
    fn op_v4(&mut self, r: &mut Reader<'_>) {
        let sent = if self.v4_sent.is_empty() || !r.chance(200) {
            None
        } else {
            endpoints_v4(&self.v4_sent[r.below(self.v4_sent.len())])
        };
        let (kind, src, sport, dst, dport) = match sent {
            Some((kind, local, lport, server, sport)) => {
                let server = if r.chance(240) {
                    server
                } else {
                    self.server(r)
                };
                let kind = if r.chance(240) { kind } else { self::kind(r) };
                (kind, server, sport, local, lport)
            }
            None => {
                let src = self.server(r);
                let dst = self.pool_addr(r);
                let kind = kind(r);
                let sport = port(r, &SERVER_PORTS);
                let dport = match r.u8() {
                    b @ 0..=239 => 1024 + u16::from(b % 8),
                    b => 7 + u16::from(b % 8),
                };
                (kind, src, sport, dst, dport)
            }
        };
        let pkt = build_v4(r, src, dst, kind, sport, dport, false);
        self.feed_mutated_v4(r, pkt);
    }

    /// A client's answer to a packet the NAT sent it.
    fn op_v6_reply(&mut self, r: &mut Reader<'_>) {
        let Some((kind, server, sport, client, cport)) = (!self.v6_sent.is_empty())
            .then(|| endpoints_v6(&self.v6_sent[r.below(self.v6_sent.len())]))
            .flatten()
        else {
            return self.op_v6(r);
        };
        let pkt = build_v6(r, client, server, kind, cport, sport, true);
        self.feed_mutated_v6(r, pkt);
    }

    /// A datagram from a client, in fragments.
    fn op_v6_fragments(&mut self, r: &mut Reader<'_>) {
        let src = self.client(r);
        let dst = self.server6(r);
        let kind = kind(r);
        let sport = port(r, &CLIENT_PORTS);
        let dport = port(r, &SERVER_PORTS);
        let hop = hop(r);
        let (proto, l4) = build_l4(r, kind, sport, dport, true, 65535 - 64);
        let mut l4 = l4;
        fill_checksum_v6(proto, &src, &dst, &mut l4);
        // Fragmentable part: an optional Destination Options header, then l4.
        let mut fragmentable = Vec::new();
        let after_fragment = if r.chance(32) {
            fragmentable.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
            NH_DEST_OPTS
        } else {
            proto
        };
        fragmentable.extend_from_slice(&l4);
        let hop_by_hop = r.chance(32);
        let (clean, id) = self.fragment_id(r, 6);
        let pieces = split(r, fragmentable.len());
        let delay = (r.below(MAX_FRAGMENTS_SENT), delay(r));
        for (i, (offset, len)) in pieces.into_iter().enumerate() {
            let more = offset + len < fragmentable.len();
            let mut ext = Vec::new();
            if hop_by_hop {
                ext.extend_from_slice(&[NH_FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
            }
            let off = u16::try_from(offset).unwrap_or(0xfff8) & 0xfff8;
            ext.push(after_fragment);
            ext.push(0);
            ext.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
            ext.extend_from_slice(&id.to_be_bytes());
            ext.extend_from_slice(&fragmentable[offset..offset + len]);
            let first = if hop_by_hop {
                NH_HOP_BY_HOP
            } else {
                NH_FRAGMENT
            };
            let pkt = v6_packet(&src, &dst, hop, 0, first, &ext);
            if i == delay.0 {
                self.advance(delay.1, false);
            }
            let (pkt, mutated) = mutate(r, pkt);
            self.feed_v6(&pkt, clean && !mutated);
        }
    }

    /// A datagram from a server, in fragments.
    fn op_v4_fragments(&mut self, r: &mut Reader<'_>) {
        let sent = if self.v4_sent.is_empty() || !r.chance(200) {
            None
        } else {
            endpoints_v4(&self.v4_sent[r.below(self.v4_sent.len())])
        };
        let (kind, src, sport, dst, dport) = match sent {
            Some((kind, local, lport, server, sport)) => (kind, server, sport, local, lport),
            None => {
                let src = self.server(r);
                let dst = self.pool_addr(r);
                (
                    kind(r),
                    src,
                    port(r, &SERVER_PORTS),
                    dst,
                    1024 + r.below(8) as u16,
                )
            }
        };
        let ttl = hop(r);
        let options = ipv4_options(r);
        let (proto, mut l4) = build_l4(r, kind, sport, dport, false, 65535 - 120);
        fill_checksum_v4(proto, src, dst, &mut l4);
        let dont_fragment = r.chance(16);
        let (clean, id) = self.fragment_id(r, 4);
        let pieces = split(r, l4.len());
        let delay = (r.below(MAX_FRAGMENTS_SENT), delay(r));
        for (i, (offset, len)) in pieces.into_iter().enumerate() {
            let more = offset + len < l4.len();
            let off = u16::try_from(offset / 8).unwrap_or(0x1fff) & 0x1fff;
            let flags =
                off | if more { 0x2000 } else { 0 } | if dont_fragment { 0x4000 } else { 0 };
            let pkt = v4_packet(
                src,
                dst,
                ttl,
                0,
                id as u16,
                flags,
                proto,
                &options,
                &l4[offset..offset + len],
            );
            if i == delay.0 {
                self.advance(delay.1, false);
            }
            let (pkt, mutated) = mutate(r, pkt);
            self.feed_v4(&pkt, clean && !mutated);
        }
    }

    /// The identification of a fragmented datagram: unique when its
    /// fragments are to be untouched slices, else a small fuzzer-chosen
    /// value (which collides on purpose).
    fn fragment_id(&mut self, r: &mut Reader<'_>, version: u8) -> (bool, u32) {
        if r.chance(200) {
            self.next_clean_id += 1;
            let id = if version == 6 {
                0x8000_0000 | self.next_clean_id
            } else {
                0x8000 | (self.next_clean_id & 0x7fff)
            };
            (true, id)
        } else {
            (false, u32::from(r.u8() & 7))
        }
    }

    /// An ICMPv6 error from a client (or a router on its side) about a
    /// packet the NAT sent it.
    fn op_v6_error(&mut self, r: &mut Reader<'_>) {
        let quote = if !self.v6_sent.is_empty() && r.chance(200) {
            self.v6_sent[r.below(self.v6_sent.len())].clone()
        } else {
            let server = self.prefix.embed(self.server(r));
            let client = self.client(r);
            let kind = kind(r);
            let sport = port(r, &SERVER_PORTS);
            let cport = port(r, &CLIENT_PORTS);
            build_v6(r, server, client, kind, sport, cport, false)
        };
        let Some(q_src) = quote.get(8..24).map(addr6) else {
            return;
        };
        let q_dst = addr6(&quote[24..40]);
        let src = if r.chance(200) {
            q_dst
        } else {
            ROUTERS_V6[r.below(ROUTERS_V6.len())]
        };
        let (icmp_type, code, param) = match r.below(8) {
            0 | 1 => (1, r.u8() % 8, 0),
            2 => (2, 0, mtu_value(r)),
            3 => (3, r.u8() % 2, 0),
            4 => (4, r.u8() % 4, u32::from(r.u8() % 64)),
            5 => (4, r.u8() % 4, r.u32()),
            6 => (1, 4, 0),
            _ => (r.u8() % 160, r.u8(), r.u32()),
        };
        let mut quote = cut(r, quote, 48, 1280 - 48);
        let mut body = vec![icmp_type, code, 0, 0];
        body.extend_from_slice(&param.to_be_bytes());
        let extension = if matches!(icmp_type, 1 | 3) && r.chance(48) {
            // RFC 4884: padded original datagram, length in 8-byte units.
            let len = quote.len().next_multiple_of(8).max(128);
            quote.resize(len, 0);
            body[4] = (len / 8) as u8;
            extension(r)
        } else {
            Vec::new()
        };
        body.extend_from_slice(&quote);
        body.extend_from_slice(&extension);
        fill_checksum_v6(PROTO_ICMPV6, &src, &q_src, &mut body);
        let pkt = v6_packet(&src, &q_src, hop(r), 0, PROTO_ICMPV6, &body);
        self.feed_mutated_v6(r, pkt);
    }

    /// An ICMPv4 error from a server (or a router) about a packet the NAT
    /// sent it.
    fn op_v4_error(&mut self, r: &mut Reader<'_>) {
        let quote = if !self.v4_sent.is_empty() && r.chance(200) {
            self.v4_sent[r.below(self.v4_sent.len())].clone()
        } else {
            let local = self.pool_addr(r);
            let server = self.server(r);
            let kind = kind(r);
            let lport = 1024 + r.below(8) as u16;
            let sport = port(r, &SERVER_PORTS);
            build_v4(r, local, server, kind, lport, sport, true)
        };
        let Some(q_src) = quote.get(12..16).map(addr4) else {
            return;
        };
        let q_dst = addr4(&quote[16..20]);
        let src = if r.chance(200) {
            q_dst
        } else {
            ROUTERS_V4[r.below(ROUTERS_V4.len())]
        };
        let (icmp_type, code, rest) = match r.below(8) {
            0 | 1 => (3, r.u8() % 16, 0),
            2 => (3, 4, u32::from(r.u16() % 1600)),
            3 => (11, r.u8() % 2, 0),
            4 => (12, r.u8() % 3, u32::from(r.u8() % 40) << 24),
            5 => (3, 3, 0),
            _ => (r.u8() % 20, r.u8(), r.u32()),
        };
        let mut quote = cut(r, quote, 28, 576 - 28);
        let mut body = vec![icmp_type, code, 0, 0];
        body.extend_from_slice(&rest.to_be_bytes());
        let extension = if matches!(icmp_type, 3 | 11 | 12) && r.chance(48) {
            // RFC 4884: padded original datagram, length in 4-byte units.
            let len = quote.len().next_multiple_of(4).max(128);
            quote.resize(len, 0);
            body[5] = (len / 4) as u8;
            extension(r)
        } else {
            Vec::new()
        };
        body.extend_from_slice(&quote);
        body.extend_from_slice(&extension);
        fill_checksum_v4(PROTO_ICMP, src, q_src, &mut body);
        let ttl = hop(r);
        let pkt = v4_packet(src, q_src, ttl, 0, r.u16(), 0, PROTO_ICMP, &[], &body);
        self.feed_mutated_v4(r, pkt);
    }

    /// Raw bytes, optionally with the lengths, checksum and addresses made
    /// plausible.
    fn op_raw(&mut self, r: &mut Reader<'_>, v6: bool) {
        let mut len = r.below(256);
        if r.chance(8) {
            len += usize::from(r.u8()) * 8;
        }
        let mut pkt = r.bytes(len);
        let fix = r.u8();
        if v6 && pkt.len() >= 40 {
            if fix & 1 != 0 {
                pkt[0] = 0x60 | (pkt[0] & 0x0f);
                let payload = u16::try_from(pkt.len() - 40).unwrap_or(u16::MAX);
                pkt[4..6].copy_from_slice(&payload.to_be_bytes());
            }
            if fix & 2 != 0 {
                pkt[8..24].copy_from_slice(&self.client(r).octets());
                pkt[24..40].copy_from_slice(&self.server6(r).octets());
            }
        } else if !v6 && pkt.len() >= 20 {
            if fix & 2 != 0 {
                let src = self.server(r);
                let dst = self.pool_addr(r);
                pkt[12..16].copy_from_slice(&src.octets());
                pkt[16..20].copy_from_slice(&dst.octets());
            }
            if fix & 1 != 0 {
                pkt[0] = 0x40 | (pkt[0] & 0x0f).max(5);
                let total = u16::try_from(pkt.len()).unwrap_or(u16::MAX);
                pkt[2..4].copy_from_slice(&total.to_be_bytes());
                let ihl = usize::from(pkt[0] & 0x0f) * 4;
                if ihl <= pkt.len() {
                    pkt[10..12].copy_from_slice(&[0, 0]);
                    let check = finish(sum(&pkt[..ihl]));
                    pkt[10..12].copy_from_slice(&check.to_be_bytes());
                }
            }
        }
        if v6 {
            self.feed_v6(&pkt, false);
        } else {
            self.feed_v4(&pkt, false);
        }
    }

    /// What the NAT sent, fed back to it (as a misrouted or looped packet).
    fn op_replay(&mut self, r: &mut Reader<'_>) {
        if r.chance(128) {
            if let Some(p) = pick(r, &self.v4_sent) {
                self.feed_v4(&p, false);
            }
        } else if let Some(p) = pick(r, &self.v6_sent) {
            self.feed_v6(&p, false);
        }
    }

    fn op_clock(&mut self, r: &mut Reader<'_>) {
        let d = match r.below(4) {
            0 => Duration::from_millis(u64::from(r.u16() % 3000)),
            1 => Duration::from_secs(u64::from(r.u16() % 400)),
            2 => Duration::from_secs(u64::from(r.u16())),
            _ => Duration::ZERO,
        };
        // A late daemon does not run the timers at once.
        let lazy = r.chance(32);
        self.advance(d, lazy);
    }

    /// Moves the virtual clock; runs the timers when they are due (unless
    /// `lazy`), and checks that nothing is left due.
    fn advance(&mut self, d: Duration, lazy: bool) {
        self.now += d;
        if lazy {
            return;
        }
        // As the daemon does: wake-ups until nothing is due (each does a
        // bounded amount of work), then what the NAT sends by itself.
        for nat in [&mut self.nat, &mut self.twin] {
            for _ in 0..10_000 {
                if nat.poll_timeout().is_none_or(|t| t > self.now) {
                    break;
                }
                nat.handle_timeout(self.now);
            }
        }
        while let Some(n) = self.nat.poll_transmit(self.now, &mut self.out) {
            check_sent_by_itself(&self.out[..n]);
        }
        while self.twin.poll_transmit(self.now, &mut self.out).is_some() {}
        if let Some(t) = self.nat.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout still due after handle_timeout and poll_transmit"
            );
        }
        self.check_tables(true);
    }

    /// Expires everything: nothing may be left.
    fn drain(&mut self) {
        self.check_tables(false);
        let t = Timeouts::default();
        // Established sessions are probed when their lifetime runs out and
        // live on in TRANS (RFC 6146 §3.5.2.2): a second round ends them; a
        // third frees the ports held for their reuse delay (RFC 6888 REQ-8).
        for wait in [
            t.tcp_established + t.udp + Duration::from_secs(3600),
            t.tcp_transitory * 2,
            Duration::from_secs(300),
        ] {
            self.now += wait;
            for nat in [&mut self.nat, &mut self.twin] {
                for _ in 0..10_000 {
                    nat.handle_timeout(self.now);
                    if nat.poll_timeout().is_none_or(|t| t > self.now) {
                        break;
                    }
                }
                while nat.poll_transmit(self.now, &mut self.out).is_some() {}
            }
        }
        assert_eq!(
            self.twin.session_count(),
            0,
            "twin: sessions left after expiry"
        );
        assert_eq!(self.nat.session_count(), 0, "sessions left after expiry");
        assert_eq!(self.nat.bib_count(), 0, "bindings left after expiry");
        assert_eq!(
            self.nat.fragments_in_progress(),
            (0, 0),
            "fragments left after expiry"
        );
        assert_eq!(self.nat.poll_timeout(), None, "timers left after expiry");
    }

    /// BIB and session table agree with each other and with the pool.
    fn check_tables(&self, timers_ran: bool) {
        let bib = self.nat.bib();
        let sessions = self.nat.sessions();
        assert_eq!(bib.len(), self.nat.bib_count());
        assert_eq!(sessions.len(), self.nat.session_count());
        let mut locals = HashSet::new();
        let pool4 = &self.nat.config().pool4;
        for b in &bib {
            assert!(
                pool4.contains(*b.v4_local.ip()),
                "binding outside pool4: {b:?}"
            );
            assert!(
                pool4.port_range(b.proto).contains(&b.v4_local.port()),
                "binding port outside the range: {b:?}"
            );
            assert!(
                locals.insert((b.proto, b.v4_local)),
                "pool4 address bound twice: {b:?}"
            );
            let n = sessions
                .iter()
                .filter(|s| s.proto == b.proto && s.v6_client == b.v6_client)
                .count();
            assert_eq!(b.sessions, n, "session count of {b:?}");
            assert!(
                n > 0 || b.is_static,
                "dynamic binding without sessions: {b:?}"
            );
        }
        for s in &sessions {
            assert!(
                bib.iter().any(|b| b.proto == s.proto
                    && b.v6_client == s.v6_client
                    && b.v4_local == s.v4_local),
                "session without its binding: {s:?}"
            );
            assert_eq!(*s.v6_server.ip(), self.prefix.embed(*s.v4_server.ip()));
            if timers_ran {
                assert!(s.expires > self.now, "expired session kept: {s:?}");
            }
        }
    }

    // ---- feeding and checking ----

    fn feed_mutated_v6(&mut self, r: &mut Reader<'_>, pkt: Vec<u8>) {
        let (pkt, _) = mutate(r, pkt);
        self.feed_v6(&pkt, false);
    }

    fn feed_mutated_v4(&mut self, r: &mut Reader<'_>, pkt: Vec<u8>) {
        let (pkt, _) = mutate(r, pkt);
        self.feed_v4(&pkt, false);
    }

    /// What a forwarded packet's transport checksum must be, given input
    /// `pkt` of IP `version`; records tainted fragment identifications.
    fn expectation(&mut self, version: u8, pkt: &[u8], clean: bool) -> Expect {
        let fragment_id = if version == 6 {
            match parse_v6(pkt) {
                Err(DropReason::Fragment) => {
                    let total = 40 + usize::from(be16(pkt, 4));
                    ipv6_ext::walk(pkt, total, true)
                        .ok()
                        .and_then(|c| c.fragment)
                        .map(|f| f.id)
                }
                Ok(_) => return input_residual_v6(pkt),
                Err(_) => return Expect::Unknown,
            }
        } else {
            match parse_v4(pkt) {
                Err(DropReason::Fragment) => Some(u32::from(be16(pkt, 4))),
                Ok(_) => return input_residual_v4(pkt),
                Err(_) => return Expect::Unknown,
            }
        };
        let Some(id) = fragment_id else {
            return Expect::Unknown;
        };
        if !clean {
            self.tainted.insert((version, id));
        }
        if self.tainted.contains(&(version, id)) {
            Expect::Unknown
        } else {
            Expect::Residual(0)
        }
    }

    fn feed_v6(&mut self, pkt: &[u8], clean: bool) {
        let expect = self.expectation(6, pkt, clean);
        let bound = self.nat.output_bound(pkt);
        assert!(bound <= self.out.len(), "output_bound above max_output_len");
        let out = &mut self.out[..bound];
        out.fill(0xa5);
        let verdict = self.nat.handle_v6(self.now, pkt, out);
        self.check_twin(pkt, true, verdict);
        match verdict {
            Verdict::Forward(len) if self.out.first().is_some_and(|b| b >> 4 == 6) => {
                // Hairpinned (RFC 6146 §3.8): back to a client, from the pool.
                assert!(len <= bound, "Forward({len}) beyond the buffer of {bound}");
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[24..40]).unwrap());
                let server = self
                    .nat
                    .config()
                    .prefix
                    .extract(&dst)
                    .expect("under the prefix");
                assert!(
                    self.nat.config().pool4.contains(server),
                    "IPv6 out of handle_v6 not hairpinned: {}",
                    hex(pkt)
                );
            }
            Verdict::Forward(len) => {
                assert!(len <= bound, "Forward({len}) beyond the buffer of {bound}");
                let output = self.out[..len].to_vec();
                self.check_forward_v4(pkt, expect, &output);
                remember(&mut self.v4_sent, output);
            }
            Verdict::SynHeld => panic!("handle_v6 held a SYN: {}", hex(pkt)),
            Verdict::ToHost(_) => panic!("handle_v6 gave a packet to the host: {}", hex(pkt)),
            Verdict::Reject(reason, len) => {
                assert!(len <= bound, "Reject({reason:?}, {len}) beyond the buffer");
                let output = self.out[..len].to_vec();
                self.check_reject_v6(pkt, &output);
            }
            Verdict::Held => {
                assert_eq!(
                    parse_v6(pkt),
                    Err(DropReason::Fragment),
                    "Held a whole packet"
                );
            }
            // RFC 8200 §4.5: what follows the Fragment header of a later
            // fragment is data; an untouched fragment is never refused for
            // its "headers".
            Verdict::Drop(NatDrop::Packet(
                reason @ (DropReason::BadExtensionHeader
                | DropReason::RoutingHeader
                | DropReason::ExtensionHeader),
            )) if clean && is_later_fragment_v6(pkt) => {
                panic!("later fragment dropped for {reason:?}: {}", hex(pkt));
            }
            Verdict::Drop(NatDrop::Packet(DropReason::OutputTooSmall)) => {
                panic!("output_bound too small for {}", hex(pkt));
            }
            Verdict::Drop(_) => {}
            // One shard owns every port.
            Verdict::Elsewhere { owner, .. } => {
                panic!("handed to shard {owner} of one: {}", hex(pkt));
            }
        }
    }

    fn feed_v4(&mut self, pkt: &[u8], clean: bool) {
        let expect = self.expectation(4, pkt, clean);
        let bound = self.nat.output_bound(pkt);
        assert!(bound <= self.out.len(), "output_bound above max_output_len");
        let out = &mut self.out[..bound];
        out.fill(0xa5);
        let verdict = self.nat.handle_v4(self.now, pkt, out);
        self.check_twin(pkt, false, verdict);
        match verdict {
            Verdict::Forward(len) => {
                assert!(len <= bound, "Forward({len}) beyond the buffer of {bound}");
                let output = self.out[..len].to_vec();
                let whole = self.check_forward_v6(pkt, expect, &output);
                remember(&mut self.v6_sent, whole);
            }
            Verdict::Reject(reason, len) => {
                assert!(len <= bound, "Reject({reason:?}, {len}) beyond the buffer");
                let output = self.out[..len].to_vec();
                self.check_reject_v4(pkt, &output);
            }
            Verdict::Held => {
                assert_eq!(
                    parse_v4(pkt),
                    Err(DropReason::Fragment),
                    "Held a whole packet"
                );
            }
            // Unchanged, an ICMP message to a pool4 address the host holds.
            Verdict::ToHost(len) => {
                assert_eq!(&self.out[..len], pkt, "ToHost changed the packet");
                let to = Ipv4Addr::from(<[u8; 4]>::try_from(&pkt[16..20]).unwrap());
                assert!(
                    pkt[9] == 1 && self.nat.config().local_v4.iter().any(|n| n.addr() == to),
                    "ToHost of a packet not ICMP to the host: {}",
                    hex(pkt)
                );
            }
            // A SYN, or the fragment that completed one.
            Verdict::SynHeld => match parse_v4(pkt) {
                Ok(parsed) => assert!(
                    parsed.flow.proto == L4Proto::Tcp && parsed.flow.tcp_flags & 0x02 != 0,
                    "held a non-SYN: {}",
                    hex(pkt)
                ),
                Err(reason) => assert_eq!(reason, DropReason::Fragment, "held {}", hex(pkt)),
            },
            Verdict::Drop(NatDrop::Packet(DropReason::OutputTooSmall)) => {
                panic!("output_bound too small for {}", hex(pkt));
            }
            Verdict::Drop(_) => {}
            // One shard owns every port.
            Verdict::Elsewhere { owner, .. } => {
                panic!("handed to shard {owner} of one: {}", hex(pkt));
            }
        }
    }

    /// Feeds `pkt` to the twin, in place first, and requires what the main
    /// NAT did (its `verdict`, its output in `self.out`).
    fn check_twin(&mut self, pkt: &[u8], from_v6: bool, verdict: Verdict) {
        const HEADROOM: usize = 20;
        let mut buf = vec![0u8; HEADROOM + pkt.len()];
        buf[HEADROOM..].copy_from_slice(pkt);
        let done = self
            .twin
            .translate_in_place(self.now, &mut buf, HEADROOM, pkt.len(), None);
        match done {
            InPlace::Translated { start, len } => {
                let Verdict::Forward(n) = verdict else {
                    panic!(
                        "in place translated what handle_* gave {verdict:?}: {}",
                        hex(pkt)
                    );
                };
                assert_eq!(
                    hex(&buf[start..start + len]),
                    hex(&self.out[..n]),
                    "in place differs from the copying path for {}",
                    hex(pkt)
                );
            }
            InPlace::Fallback => {
                assert!(buf[HEADROOM..] == *pkt, "a fallback changed the buffer");
                let mut out = vec![0u8; self.twin.output_bound(pkt)];
                let twin_verdict = if from_v6 {
                    self.twin.handle_v6(self.now, pkt, &mut out)
                } else {
                    self.twin.handle_v4(self.now, pkt, &mut out)
                };
                assert_eq!(twin_verdict, verdict, "twin verdict for {}", hex(pkt));
                let n = match verdict {
                    Verdict::Forward(n) | Verdict::Reject(_, n) => n,
                    _ => 0,
                };
                assert!(out[..n] == self.out[..n], "twin output for {}", hex(pkt));
            }
        }
    }

    /// A translated IPv6 packet: one IPv4 packet from the pool.
    fn check_forward_v4(&self, input: &[u8], expect: Expect, output: &[u8]) {
        let ctx = || format!("input {}\noutput {}", hex(input), hex(output));
        let mut all = packets(output);
        let p = all
            .next()
            .unwrap_or_else(|| panic!("empty Forward\n{}", ctx()));
        assert!(
            all.next().is_none(),
            "handle_v6 forwarded several packets\n{}",
            ctx()
        );
        let ip = check_ipv4(p).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        assert!(
            self.pool.contains(&ip.src) || RFC6791.contains(&ip.src),
            "IPv4 source outside pool4\n{}",
            ctx()
        );
        let l4 = &p[ip.header_len..];
        match ip.proto {
            PROTO_ICMP => {
                let t = l4[0];
                assert!(
                    // Echo reply: a client's, to an IPv4 host's request.
                    matches!(t, 0 | 8 | 3 | 11 | 12),
                    "ICMPv4 type {t} sent\n{}",
                    ctx()
                );
                assert_eq!(
                    residual_v4(PROTO_ICMP, ip.src, ip.dst, l4),
                    Some(0),
                    "ICMPv4 checksum\n{}",
                    ctx()
                );
                if !matches!(t, 0 | 8) {
                    assert!(p.len() <= 576, "ICMPv4 error longer than 576\n{}", ctx());
                    check_quoted_v4_header(l4).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
                    return;
                }
            }
            PROTO_TCP | PROTO_UDP => {
                if let Expect::Residual(want) = expect {
                    let got = residual_v4(ip.proto, ip.src, ip.dst, l4);
                    assert_eq!(got, Some(want), "transport checksum residual\n{}", ctx());
                }
            }
            p => panic!("IPv4 protocol {p} sent\n{}", ctx()),
        }
        // Not an error: it goes out through a binding of this client.
        let (kind, src, sport, _, _) =
            endpoints_v4(p).unwrap_or_else(|| panic!("no endpoints\n{}", ctx()));
        let client = addr6(&input[8..24]);
        let bound = self.nat.bib().iter().any(|b| {
            proto_kind(b.proto) == kind
                && b.v4_local == SocketAddrV4::new(src, sport)
                && *b.v6_client.ip() == client
        });
        assert!(bound, "forwarded without a binding\n{}", ctx());
    }

    /// A translated IPv4 packet: one IPv6 packet or a train of fragments,
    /// from under the prefix. Returns the (reassembled) packet.
    fn check_forward_v6(&self, input: &[u8], expect: Expect, output: &[u8]) -> Vec<u8> {
        let ctx = || format!("input {}\noutput {}", hex(input), hex(output));
        let all: Vec<&[u8]> = packets(output).collect();
        for p in &all {
            check_ipv6(p).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
            assert!(
                self.prefix.contains(&addr6(&p[8..24])) || addr6(&p[8..24]) == self.icmp_source_v6,
                "IPv6 source outside the prefix\n{}",
                ctx()
            );
            assert!(
                p.len() <= self.ipv6_mtu,
                "packet above the IPv6 MTU\n{}",
                ctx()
            );
        }
        let whole = match all.as_slice() {
            [] => panic!("empty Forward\n{}", ctx()),
            [p] if p[6] != NH_FRAGMENT => p.to_vec(),
            train => {
                for p in train {
                    assert!(
                        p.len() <= self.fragment_mtu,
                        "fragment above the MTU\n{}",
                        ctx()
                    );
                }
                reassemble_train(train).unwrap_or_else(|e| panic!("{e}\n{}", ctx()))
            }
        };
        let src = addr6(&whole[8..24]);
        let dst = addr6(&whole[24..40]);
        let l4 = &whole[40..];
        match whole[6] {
            PROTO_ICMPV6 => {
                let t = l4.first().copied().unwrap_or(0);
                // Echo request: an IPv4 host's, through a client's binding.
                assert!(
                    matches!(t, 1..=4 | 128 | 129),
                    "ICMPv6 type {t} sent\n{}",
                    ctx()
                );
                assert_eq!(
                    residual_v6(PROTO_ICMPV6, &src, &dst, l4),
                    Some(0),
                    "ICMPv6 checksum\n{}",
                    ctx()
                );
                if t < 128 {
                    assert!(
                        whole.len() <= 1280,
                        "ICMPv6 error longer than 1280\n{}",
                        ctx()
                    );
                    return whole;
                }
            }
            p @ (PROTO_TCP | PROTO_UDP) => {
                if p == PROTO_UDP {
                    assert_ne!(be16(l4, 6), 0, "IPv6 UDP without checksum\n{}", ctx());
                }
                if let Expect::Residual(want) = expect {
                    let got = residual_v6(p, &src, &dst, l4);
                    assert_eq!(got, Some(want), "transport checksum residual\n{}", ctx());
                }
            }
            p => panic!("IPv6 next header {p} sent\n{}", ctx()),
        }
        // Not an error: it comes in through a binding of the pool address.
        let (kind, _, _, client, cport) =
            endpoints_v6(&whole).unwrap_or_else(|| panic!("no endpoints\n{}", ctx()));
        let local = addr4(&input[16..20]);
        let bound = self.nat.bib().iter().any(|b| {
            proto_kind(b.proto) == kind
                && b.v6_client == SocketAddrV6::new(client, cport, 0, 0)
                && *b.v4_local.ip() == local
        });
        assert!(bound, "forwarded without a binding\n{}", ctx());
        whole
    }

    /// The gateway's ICMPv6 error about a client's packet.
    fn check_reject_v6(&self, input: &[u8], output: &[u8]) {
        let ctx = || format!("input {}\noutput {}", hex(input), hex(output));
        assert!(
            output.len() <= 1280,
            "ICMPv6 error longer than 1280\n{}",
            ctx()
        );
        check_ipv6(output).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        assert_eq!(output.len(), 40 + usize::from(be16(output, 4)), "{}", ctx());
        assert_eq!(output[6], PROTO_ICMPV6, "Reject is no ICMPv6\n{}", ctx());
        let src = addr6(&output[8..24]);
        let dst = addr6(&output[24..40]);
        assert_eq!(src, self.icmp_source_v6, "ICMPv6 error source\n{}", ctx());
        assert_eq!(
            dst,
            addr6(&input[8..24]),
            "ICMPv6 error not to the sender\n{}",
            ctx()
        );
        let l4 = &output[40..];
        assert!(
            matches!(l4[0], 1..=4),
            "ICMPv6 type {} in Reject\n{}",
            l4[0],
            ctx()
        );
        assert_eq!(
            residual_v6(PROTO_ICMPV6, &src, &dst, l4),
            Some(0),
            "checksum\n{}",
            ctx()
        );
    }

    /// The gateway's ICMPv4 error about a server's packet.
    fn check_reject_v4(&self, input: &[u8], output: &[u8]) {
        let ctx = || format!("input {}\noutput {}", hex(input), hex(output));
        assert!(
            output.len() <= 576,
            "ICMPv4 error longer than 576\n{}",
            ctx()
        );
        let ip = check_ipv4(output).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        assert_eq!(ip.total_len, output.len(), "{}", ctx());
        assert_eq!(ip.proto, PROTO_ICMP, "Reject is no ICMP\n{}", ctx());
        assert!(
            self.pool.contains(&ip.src),
            "ICMP error from outside pool4\n{}",
            ctx()
        );
        assert_eq!(
            ip.dst,
            addr4(&input[12..16]),
            "ICMP error not to the sender\n{}",
            ctx()
        );
        let l4 = &output[ip.header_len..];
        assert!(
            matches!(l4[0], 3 | 11 | 12),
            "ICMP type {} in Reject\n{}",
            l4[0],
            ctx()
        );
        assert_eq!(
            residual_v4(PROTO_ICMP, ip.src, ip.dst, l4),
            Some(0),
            "{}",
            ctx()
        );
    }
}

fn prefix(s: &str) -> Prefix6052 {
    Prefix6052::new(s.parse().expect("literal prefix")).expect("valid RFC 6052 prefix")
}

fn remember(history: &mut Vec<Vec<u8>>, pkt: Vec<u8>) {
    if history.len() == HISTORY {
        history.remove(0);
    }
    history.push(pkt);
}

fn pick(r: &mut Reader<'_>, history: &[Vec<u8>]) -> Option<Vec<u8>> {
    (!history.is_empty()).then(|| history[r.below(history.len())].clone())
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn addr6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

fn addr4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b.iter().take(2048) {
        let _ = write!(s, "{x:02x}");
    }
    if b.len() > 2048 {
        s.push_str("...");
    }
    s
}

fn proto_kind(p: L4Proto) -> Kind {
    match p {
        L4Proto::Tcp => Kind::Tcp,
        L4Proto::Udp => Kind::Udp,
        L4Proto::Icmp => Kind::Echo,
    }
}

// ---- field choices ----

fn kind(r: &mut Reader<'_>) -> Kind {
    match r.u8() {
        b if b < 240 => [Kind::Tcp, Kind::Udp, Kind::Echo][usize::from(b) % 3],
        b if b < 248 => Kind::Other(r.u8()),
        b => Kind::Other([PROTO_ICMP, PROTO_ICMPV6, 132, 47][usize::from(b) % 4]),
    }
}

fn port(r: &mut Reader<'_>, set: &[u16]) -> u16 {
    let b = r.u8();
    if b < 240 {
        set[usize::from(b) % set.len()]
    } else {
        r.u16()
    }
}

fn hop(r: &mut Reader<'_>) -> u8 {
    match r.u8() {
        0..=239 => 64,
        240..=247 => 0,
        248..=251 => 1,
        b => b,
    }
}

fn delay(r: &mut Reader<'_>) -> Duration {
    match r.u8() {
        0..=199 => Duration::ZERO,
        b @ 200..=249 => Duration::from_millis(u64::from(b - 200) * 20),
        b => Duration::from_secs(u64::from(b - 248)),
    }
}

fn mtu_value(r: &mut Reader<'_>) -> u32 {
    match r.below(6) {
        0 => 1280,
        1 => 1500,
        2 => 1000,
        3 => 65535,
        4 => 9000,
        _ => r.u32(),
    }
}

/// The transport payload length: mostly short, sometimes beyond the MTUs.
fn payload_len(r: &mut Reader<'_>) -> usize {
    match r.u8() {
        b @ 0..=191 => usize::from(b % 48),
        b @ 192..=239 => 1200 + usize::from(b - 192) * 50,
        b @ 240..=251 => 4000 + usize::from(b - 240) * 5000,
        _ => 65535,
    }
}

/// A payload: up to 16 fuzzer bytes, then a pattern.
fn payload(r: &mut Reader<'_>, max: usize) -> Vec<u8> {
    let len = payload_len(r).min(max);
    let mut p = r.bytes(len.min(16));
    p.extend((p.len()..len).map(|i| (i * 7) as u8));
    p
}

/// What the NAT sends by itself: ICMP Port Unreachable for a held SYN
/// (RFC 6146 §3.5.2.2), quoting a TCP SYN, from the pool.
/// What the NAT sends by itself: ICMP Port Unreachable for a held SYN, or
/// (IPv6) a TCP probe for an idle established session.
fn check_sent_by_itself(pkt: &[u8]) {
    if pkt.first().map(|b| b >> 4) == Some(6) {
        assert_eq!(pkt.len(), 60, "probe length: {}", hex(pkt));
        assert_eq!(pkt[6], 6, "probe not TCP: {}", hex(pkt));
        assert_eq!(&pkt[44..52], &[0; 8], "probe seq/ack: {}", hex(pkt));
        assert_eq!(pkt[53], 0x10, "probe flags: {}", hex(pkt));
        let src = addr6(&pkt[8..24]);
        let dst = addr6(&pkt[24..40]);
        assert_eq!(
            residual_v6(6, &src, &dst, &pkt[40..]),
            Some(0),
            "probe checksum"
        );
        return;
    }
    assert_eq!(
        pkt.first().map(|b| b >> 4),
        Some(4),
        "not IPv4: {}",
        hex(pkt)
    );
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    assert_eq!(pkt[9], 1, "not ICMP: {}", hex(pkt));
    assert_eq!(
        (pkt[ihl], pkt[ihl + 1]),
        (3, 3),
        "not Port Unreachable: {}",
        hex(pkt)
    );
    let quote = &pkt[ihl + 8..];
    assert_eq!(quote[9], 6, "quotes no TCP: {}", hex(pkt));
}

/// IPv4 options: mostly none; padding, an (un)expired source route, or
/// fuzzer bytes.
fn ipv4_options(r: &mut Reader<'_>) -> Vec<u8> {
    match r.u8() {
        0..=223 => Vec::new(),
        224..=231 => vec![1, 1, 1, 0],
        232..=239 => {
            let pointer = if r.chance(128) { 4 } else { 8 };
            vec![131, 7, pointer, 198, 51, 100, 1, 0]
        }
        _ => {
            let n = 4 * (1 + r.below(10));
            let mut o = r.bytes(n);
            o.resize(n, 0);
            o
        }
    }
}

/// An RFC 4884 extension structure (version 2, checksum) with one object.
fn extension(r: &mut Reader<'_>) -> Vec<u8> {
    let data_len = 4 * r.below(4);
    let mut e = vec![0x20, 0, 0, 0];
    e.extend_from_slice(&((4 + data_len) as u16).to_be_bytes());
    e.push(r.u8() % 4);
    e.push(r.u8() % 4);
    let mut data = r.bytes(data_len);
    data.resize(data_len, 0);
    e.extend_from_slice(&data);
    let check = finish(sum(&e));
    e[2..4].copy_from_slice(&check.to_be_bytes());
    e
}

/// Keeps the whole packet or its first bytes (at least `min`), at most `max`.
fn cut(r: &mut Reader<'_>, mut quote: Vec<u8>, min: usize, max: usize) -> Vec<u8> {
    let keep = match r.u8() {
        0..=127 => quote.len(),
        b => min + usize::from(b - 128) * 3,
    };
    quote.truncate(keep.min(max));
    quote
}

/// Flips fuzzer-chosen bytes (or the transport checksum); returns whether
/// anything changed.
fn mutate(r: &mut Reader<'_>, mut pkt: Vec<u8>) -> (Vec<u8>, bool) {
    if pkt.is_empty() {
        return (pkt, false);
    }
    match r.u8() {
        0..=215 => (pkt, false),
        216..=231 => {
            // The last byte: a payload byte or the checksum, whichever.
            let last = pkt.len() - 1;
            pkt[last] ^= 0x01;
            (pkt, true)
        }
        b => {
            for _ in 0..=(b % 3) {
                let at = usize::from(r.u16()) % pkt.len();
                pkt[at] ^= r.u8().max(1);
            }
            (pkt, true)
        }
    }
}

/// Fragment pieces (offset, length) covering `n` bytes: non-last lengths a
/// multiple of 8; in order, reversed, rotated, with some skipped or
/// repeated, or with an overlapping piece.
fn split(r: &mut Reader<'_>, n: usize) -> Vec<(usize, usize)> {
    let b = r.u8();
    let size = match b % 4 {
        0 => 8 * (1 + usize::from(b >> 2) % 4),
        1 => 8 * (8 + usize::from(b >> 2) % 32),
        2 => 1232,
        _ => 0,
    };
    let mut pieces = Vec::new();
    let mut offset = 0;
    while offset < n && pieces.len() < MAX_FRAGMENTS_SENT {
        let size = if size == 0 {
            8 * (1 + r.below(256))
        } else {
            size
        };
        let len = size.min(n - offset);
        pieces.push((offset, len));
        offset += len;
    }
    if pieces.is_empty() {
        return pieces;
    }
    match r.below(6) {
        0 | 1 => {}
        2 => pieces.reverse(),
        3 => {
            let k = r.below(pieces.len());
            pieces.rotate_left(k);
        }
        4 => {
            let mut chosen = Vec::new();
            for p in pieces {
                match r.u8() {
                    0..=15 => {}
                    16..=31 => {
                        chosen.push(p);
                        chosen.push(p);
                    }
                    _ => chosen.push(p),
                }
            }
            pieces = chosen;
        }
        _ => {
            // An extra piece 8 bytes before one piece's start, consistent
            // with the datagram (RFC 5722: still an overlap).
            let i = r.below(pieces.len());
            let (offset, len) = pieces[i];
            if offset >= 8 {
                let start = offset - 8;
                let end = (offset + len.min(8)).min(n);
                let end = if end < n {
                    start + (end - start) / 8 * 8
                } else {
                    end
                };
                pieces.insert(i, (start, end - start));
            }
        }
    }
    pieces.truncate(MAX_FRAGMENTS_SENT);
    pieces
}

// ---- packet building ----

/// A transport header and payload (checksum left zero), and its protocol
/// number in the family (`v6`: ICMPv6 for echo).
fn build_l4(
    r: &mut Reader<'_>,
    kind: Kind,
    sport: u16,
    dport: u16,
    v6: bool,
    max: usize,
) -> (u8, Vec<u8>) {
    let mut l4 = Vec::new();
    let proto = match kind {
        Kind::Tcp => {
            let flags = match r.below(9) {
                0 | 1 => 0x02,
                2 => 0x12,
                3 | 4 => 0x10,
                5 => 0x11,
                6 => 0x04,
                7 => 0x14,
                _ => r.u8(),
            };
            let options = if r.chance(24) { 4 * r.below(11) } else { 0 };
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
            l4.push((((20 + options) / 4) << 4) as u8);
            l4.push(flags);
            l4.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
            let mut o = r.bytes(options);
            o.resize(options, 1);
            l4.extend_from_slice(&o);
            PROTO_TCP
        }
        Kind::Udp => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]);
            PROTO_UDP
        }
        Kind::Echo => {
            let t = match r.u8() {
                0..=239 => {
                    if v6 {
                        128
                    } else {
                        0
                    }
                }
                b if b < 248 => {
                    if v6 {
                        129
                    } else {
                        8
                    }
                }
                _ => r.u8(),
            };
            l4.extend_from_slice(&[t, 0, 0, 0]);
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&r.u16().to_be_bytes());
            if v6 {
                PROTO_ICMPV6
            } else {
                PROTO_ICMP
            }
        }
        Kind::Other(p) => p,
    };
    let p = payload(r, max.saturating_sub(l4.len()));
    l4.extend_from_slice(&p);
    if kind == Kind::Udp {
        // UDP Length: right, or (rarely) short of the payload or beyond it.
        let len = match r.u8() {
            0..=247 => l4.len(),
            b @ 248..=251 => l4.len().saturating_sub(usize::from(b - 247)),
            b => l4.len() + usize::from(b - 251),
        };
        l4[4..6].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    }
    (proto, l4)
}

/// Offset of the checksum field, and whether the IPv6 pseudo-header (or,
/// in IPv4, the IPv4 one) covers it.
fn checksum_at(proto: u8) -> Option<(usize, bool)> {
    match proto {
        PROTO_TCP => Some((16, true)),
        PROTO_UDP => Some((6, true)),
        PROTO_ICMPV6 => Some((2, true)),
        PROTO_ICMP => Some((2, false)),
        _ => None,
    }
}

/// The bytes a UDP checksum covers: the UDP Length, when it is sane.
fn checksummed(proto: u8, l4: &[u8]) -> Option<&[u8]> {
    if proto != PROTO_UDP {
        return Some(l4);
    }
    let len = usize::from(be16(l4, 4));
    (len >= 8 && len <= l4.len()).then(|| &l4[..len])
}

fn fill_checksum_v6(proto: u8, src: &Ipv6Addr, dst: &Ipv6Addr, l4: &mut [u8]) {
    let Some((at, _)) = checksum_at(proto) else {
        return;
    };
    if l4.len() < at + 2 {
        return;
    }
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let Some(data) = checksummed(proto, l4) else {
        return;
    };
    let s = combine(pseudo_v6(src, dst, proto, data.len() as u32), sum(data));
    let check = match finish(s) {
        0 if proto == PROTO_UDP => 0xffff,
        c => c,
    };
    l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
}

fn fill_checksum_v4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &mut [u8]) {
    let Some((at, pseudo)) = checksum_at(proto) else {
        return;
    };
    if l4.len() < at + 2 || proto == PROTO_ICMPV6 {
        return;
    }
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let Some(data) = checksummed(proto, l4) else {
        return;
    };
    let p = if pseudo {
        pseudo_v4(src, dst, proto, data.len() as u16)
    } else {
        0
    };
    let check = match finish(combine(p, sum(data))) {
        0 if proto == PROTO_UDP => 0xffff,
        c => c,
    };
    l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
}

/// IPv6 extension headers before a transport `proto`: mostly none; else
/// one to three of Hop-by-Hop, Destination Options, Routing (mostly with
/// Segments Left 0), an atomic Fragment header, or AH.
fn ext_chain(r: &mut Reader<'_>, proto: u8) -> (u8, Vec<u8>) {
    let count = match r.u8() {
        0..=207 => 0,
        208..=239 => 1,
        240..=251 => 2,
        _ => 3,
    };
    let types: Vec<u8> = (0..count)
        .map(|_| match r.below(10) {
            0..=2 => NH_HOP_BY_HOP,
            3..=5 => NH_DEST_OPTS,
            6 | 7 => NH_ROUTING,
            8 => NH_FRAGMENT,
            _ => NH_AH,
        })
        .collect();
    let mut bytes = Vec::new();
    for (i, &t) in types.iter().enumerate() {
        let next = types.get(i + 1).copied().unwrap_or(proto);
        match t {
            NH_FRAGMENT => {
                bytes.extend_from_slice(&[next, 0, 0, 0]);
                bytes.extend_from_slice(&r.u32().to_be_bytes());
            }
            NH_ROUTING => {
                let segments_left = if r.chance(200) { 0 } else { r.u8() };
                bytes.extend_from_slice(&[next, 0, r.u8() % 5, segments_left, 0, 0, 0, 0]);
            }
            _ => {
                let units = r.below(2);
                bytes.extend_from_slice(&[next, units as u8]);
                let pad = 6 + units * 8;
                bytes.extend_from_slice(&[1, (pad - 2) as u8]);
                bytes.extend(std::iter::repeat_n(0, pad - 2));
            }
        }
    }
    (types.first().copied().unwrap_or(proto), bytes)
}

/// A whole IPv6 packet with valid lengths and checksum.
fn build_v6(
    r: &mut Reader<'_>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: Kind,
    sport: u16,
    dport: u16,
    with_ext: bool,
) -> Vec<u8> {
    let (proto, mut l4) = build_l4(r, kind, sport, dport, true, 65535 - 96);
    fill_checksum_v6(proto, &src, &dst, &mut l4);
    let (first, mut ext) = if with_ext {
        ext_chain(r, proto)
    } else {
        (proto, Vec::new())
    };
    ext.extend_from_slice(&l4);
    v6_packet(&src, &dst, hop(r), r.u8(), first, &ext)
}

/// A whole IPv4 packet with valid lengths and checksums.
fn build_v4(
    r: &mut Reader<'_>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: Kind,
    sport: u16,
    dport: u16,
    quoted: bool,
) -> Vec<u8> {
    let (proto, mut l4) = build_l4(r, kind, sport, dport, false, 65535 - 120);
    // A quoted packet is one the NAT sent: ICMP echo requests.
    if quoted && kind == Kind::Echo && l4[0] == 0 {
        l4[0] = 8;
    }
    fill_checksum_v4(proto, src, dst, &mut l4);
    let options = ipv4_options(r);
    let ttl = hop(r);
    let flags = if r.chance(64) { 0x4000 } else { 0 };
    v4_packet(src, dst, ttl, r.u8(), r.u16(), flags, proto, &options, &l4)
}

fn v6_packet(
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    hop: u8,
    traffic_class: u8,
    next: u8,
    payload: &[u8],
) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut p = vec![0x60 | (traffic_class >> 4), traffic_class << 4, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.push(next);
    p.push(hop);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&payload[..usize::from(len)]);
    p
}

#[allow(clippy::too_many_arguments)]
fn v4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    tos: u8,
    id: u16,
    flags_offset: u16,
    proto: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let header_len = 20 + options.len().min(40) / 4 * 4;
    let total = (header_len + payload.len()).min(65535);
    let mut p = vec![0x40 | (header_len / 4) as u8, tos];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags_offset.to_be_bytes());
    p.extend_from_slice(&[ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&options[..header_len - 20]);
    let check = finish(sum(&p));
    p[10..12].copy_from_slice(&check.to_be_bytes());
    p.extend_from_slice(&payload[..total - header_len]);
    p
}

// ---- reading packets ----

/// Transport endpoints of a whole IPv4 packet (TCP, UDP, ICMP echo).
fn endpoints_v4(p: &[u8]) -> Option<Endpoints<Ipv4Addr>> {
    let header_len = usize::from(p.first()? & 0x0f) * 4;
    let l4 = p.get(header_len..)?;
    let (src, dst) = (addr4(p.get(12..16)?), addr4(p.get(16..20)?));
    ports(p[9], l4).map(|(k, s, d)| (k, src, s, dst, d))
}

/// Transport endpoints of a whole IPv6 packet without extension headers.
fn endpoints_v6(p: &[u8]) -> Option<Endpoints<Ipv6Addr>> {
    let l4 = p.get(40..)?;
    let (src, dst) = (addr6(&p[8..24]), addr6(&p[24..40]));
    ports(p[6], l4).map(|(k, s, d)| (k, src, s, dst, d))
}

fn ports(proto: u8, l4: &[u8]) -> Option<(Kind, u16, u16)> {
    if l4.len() < 8 {
        return None;
    }
    match proto {
        PROTO_TCP => Some((Kind::Tcp, be16(l4, 0), be16(l4, 2))),
        PROTO_UDP => Some((Kind::Udp, be16(l4, 0), be16(l4, 2))),
        PROTO_ICMP | PROTO_ICMPV6 if matches!(l4[0], 0 | 8 | 128 | 129) => {
            Some((Kind::Echo, be16(l4, 4), be16(l4, 4)))
        }
        _ => None,
    }
}

/// Ones' complement residual of a checksummed sum: 0 when valid (0x0000
/// and 0xffff are the same number).
fn residual(s: u32) -> u32 {
    u32::from(fold(s)) % 0xffff
}

fn residual_v6(proto: u8, src: &Ipv6Addr, dst: &Ipv6Addr, l4: &[u8]) -> Option<u32> {
    let data = checksummed(proto, l4)?;
    Some(residual(combine(
        pseudo_v6(src, dst, proto, data.len() as u32),
        sum(data),
    )))
}

fn residual_v4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> Option<u32> {
    if proto == PROTO_ICMP {
        return Some(residual(sum(l4)));
    }
    let data = checksummed(proto, l4)?;
    let len = u16::try_from(data.len()).ok()?;
    Some(residual(combine(
        pseudo_v4(src, dst, proto, len),
        sum(data),
    )))
}

/// The residual a whole IPv6 input's TCP/UDP checksum has.
fn input_residual_v6(pkt: &[u8]) -> Expect {
    let total = 40 + usize::from(be16(pkt, 4));
    let Ok(chain) = ipv6_ext::walk(pkt, total, true) else {
        return Expect::Unknown;
    };
    let Some(l4) = pkt.get(chain.l4_offset..total) else {
        return Expect::Unknown;
    };
    match residual_v6(chain.proto, &addr6(&pkt[8..24]), &addr6(&pkt[24..40]), l4) {
        Some(r) => Expect::Residual(r),
        None => Expect::Unknown,
    }
}

/// The residual a whole IPv4 input's TCP/UDP checksum has (a UDP datagram
/// without checksum gets a valid one).
fn input_residual_v4(pkt: &[u8]) -> Expect {
    let Some(&first) = pkt.first() else {
        return Expect::Unknown;
    };
    let header_len = usize::from(first & 0x0f) * 4;
    let total = usize::from(be16(pkt, 2));
    let (Some(l4), Some(proto)) = (pkt.get(header_len..total), pkt.get(9)) else {
        return Expect::Unknown;
    };
    if *proto == PROTO_UDP && be16(l4, 6) == 0 {
        return Expect::Residual(0);
    }
    match residual_v4(*proto, addr4(&pkt[12..16]), addr4(&pkt[16..20]), l4) {
        Some(r) => Expect::Residual(r),
        None => Expect::Unknown,
    }
}

struct Ipv4Info {
    header_len: usize,
    total_len: usize,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// An emitted IPv4 packet: version, lengths, header checksum, not a
/// fragment, a transport header that fits.
fn check_ipv4(p: &[u8]) -> Result<Ipv4Info, String> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Err("emitted IPv4 packet: bad version or too short".into());
    }
    let header_len = usize::from(p[0] & 0x0f) * 4;
    let total_len = usize::from(be16(p, 2));
    if header_len < 20 || total_len != p.len() || header_len > total_len {
        return Err("emitted IPv4 packet: lengths do not match".into());
    }
    if residual(sum(&p[..header_len])) != 0 {
        return Err("emitted IPv4 packet: bad header checksum".into());
    }
    if be16(p, 6) & 0x3fff != 0 {
        return Err("emitted IPv4 packet is a fragment".into());
    }
    check_l4(p[9], &p[header_len..])?;
    Ok(Ipv4Info {
        header_len,
        total_len,
        proto: p[9],
        src: addr4(&p[12..16]),
        dst: addr4(&p[16..20]),
    })
}

/// An emitted IPv6 packet: version, payload length; a fragment's header,
/// or a transport header that fits.
fn check_ipv6(p: &[u8]) -> Result<(), String> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return Err("emitted IPv6 packet: bad version or too short".into());
    }
    if 40 + usize::from(be16(p, 4)) != p.len() {
        return Err("emitted IPv6 packet: payload length does not match".into());
    }
    if p[6] == NH_FRAGMENT {
        return if p.len() >= 48 && p[40] != NH_FRAGMENT {
            Ok(())
        } else {
            Err("emitted IPv6 fragment: bad Fragment header".into())
        };
    }
    check_l4(p[6], &p[40..])
}

fn check_l4(proto: u8, l4: &[u8]) -> Result<(), String> {
    let ok = match proto {
        PROTO_TCP => l4.len() >= 20 && usize::from(l4[12] >> 4) * 4 >= 20,
        PROTO_UDP => checksummed(PROTO_UDP, l4).is_some(),
        PROTO_ICMP | PROTO_ICMPV6 => l4.len() >= 8,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("emitted transport (protocol {proto}) is malformed"))
    }
}

/// The quoted IPv4 header of an emitted ICMPv4 error has a valid checksum.
fn check_quoted_v4_header(icmp: &[u8]) -> Result<(), String> {
    match icmp.get(8..28) {
        Some(h) if h[0] == 0x45 && residual(sum(h)) != 0 => {
            Err("quoted IPv4 header with a bad checksum".into())
        }
        Some(h) if h[0] != 0x45 => Err("quoted packet is no IPv4 header".into()),
        _ => Ok(()),
    }
}

/// Reassembles a train of emitted IPv6 fragments (all checked by
/// [`check_ipv6`]), checking that it is one complete, well-formed train.
fn reassemble_train(train: &[&[u8]]) -> Result<Vec<u8>, String> {
    if train.len() < 2 {
        return Err("a train of one fragment".into());
    }
    let first = train[0];
    let id = &first[44..48];
    let mut whole = first[..40].to_vec();
    whole[6] = first[40];
    let mut next_offset = 0;
    for (i, p) in train.iter().enumerate() {
        if p[6] != NH_FRAGMENT || p[8..40] != first[8..40] || &p[44..48] != id {
            return Err("train: fragment of another packet".into());
        }
        if p[40] != first[40] {
            return Err("train: next header differs".into());
        }
        let field = be16(p, 42);
        let (offset, more) = (usize::from(field >> 3) * 8, field & 1 != 0);
        let data = &p[48..];
        if offset != next_offset {
            return Err("train: fragments not back to back".into());
        }
        let last = i + 1 == train.len();
        if more == last || (!last && data.len() % 8 != 0) || data.is_empty() {
            return Err("train: bad M flag or fragment length".into());
        }
        whole.extend_from_slice(data);
        next_offset += data.len();
    }
    let payload = u16::try_from(next_offset).map_err(|_| "train too long".to_string())?;
    whole[4..6].copy_from_slice(&payload.to_be_bytes());
    check_l4(whole[6], &whole[40..])?;
    Ok(whole)
}

/// Whether `pkt` carries a Fragment header right after the fixed header
/// with a non-zero offset (how the harness builds later fragments).
fn is_later_fragment_v6(pkt: &[u8]) -> bool {
    pkt.get(6) == Some(&44)
        && pkt
            .get(42..44)
            .is_some_and(|o| u16::from_be_bytes([o[0], o[1]]) >> 3 != 0)
}
