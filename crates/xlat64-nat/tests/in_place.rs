//! Translation in place (the path of superpackets from an offloading TUN
//! device) gives exactly the bytes the copying path gives, and leaves
//! everything it does not handle untouched for the copying path. MSS
//! clamping on both paths. Virtual clock throughout.

use etherparse::{PacketBuilder, TcpOptionElement};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::Instant;
use xlat64_nat::{InPlace, Nat64, Nat64Config, Pool4, Timeouts, Verdict};
use xlat64_packet::Prefix6052;

const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// Room before a packet, as the daemon leaves it.
const HEADROOM: usize = 64;

fn prefix() -> Prefix6052 {
    Prefix6052::new("2001:db8:64::/96".parse().unwrap()).unwrap()
}

fn nat(mss: Option<u16>) -> Nat64 {
    let pool4 = Pool4::new(&["192.0.2.1/32".parse().unwrap()]).unwrap();
    let mut config = Nat64Config::new(prefix(), pool4, Timeouts::default());
    config.mss_clamp = mss;
    Nat64::with_seed(config, 1234)
}

fn v6_packets() -> Vec<Vec<u8>> {
    let dst = prefix().embed(SERVER).octets();
    let mut all = Vec::new();
    let mut v = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), dst, 64)
        .udp(5000, 53)
        .write(&mut v, &[7u8; 300])
        .unwrap();
    all.push(v);
    let mut v = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), dst, 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
        ])
        .unwrap()
        .write(&mut v, &[])
        .unwrap();
    all.push(v);
    let mut v = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), dst, 64)
        .tcp(40000, 80, 2, 65535)
        .ack(1)
        .write(&mut v, &[0x42; 60000])
        .unwrap();
    all.push(v);
    let mut v = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), dst, 64)
        .icmpv6_echo_request(9, 1)
        .write(&mut v, b"ping")
        .unwrap();
    all.push(v);
    all
}

fn v4_reply(local: SocketAddrV4, syn_ack: bool, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(SERVER.octets(), local.ip().octets(), 64).tcp(
        80,
        local.port(),
        9,
        65535,
    );
    let b = if syn_ack {
        b.syn()
            .ack(2)
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
            ])
            .unwrap()
    } else {
        b.ack(2)
    };
    b.write(&mut v, &vec![0x24; payload]).unwrap();
    v
}

/// Runs `pkt` through the copying path of `copying` and the in-place path
/// of `in_place` (twin NATs) and requires the same output.
fn same_both_ways(copying: &mut Nat64, in_place: &mut Nat64, pkt: &[u8], from_v6: bool) -> Vec<u8> {
    let now = Instant::now();
    let mut out = vec![0u8; copying.output_bound(pkt)];
    let verdict = if from_v6 {
        copying.handle_v6(now, pkt, &mut out)
    } else {
        copying.handle_v4(now, pkt, &mut out)
    };
    let Verdict::Forward(n) = verdict else {
        panic!("copying path: {verdict:?}");
    };
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(pkt);
    let InPlace::Translated { start, len } =
        in_place.translate_in_place(now, &mut buf, HEADROOM, pkt.len(), None)
    else {
        panic!("in-place path fell back");
    };
    assert_eq!(&buf[start..start + len], &out[..n], "in-place bytes differ");
    out.truncate(n);
    out
}

fn mss_of(tcp: &[u8]) -> Option<u16> {
    let h = etherparse::TcpHeaderSlice::from_slice(tcp).unwrap();
    h.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    })
}

#[test]
fn rfc7915_in_place_equals_copying_both_ways_with_mss_clamped() {
    let (mut copying, mut in_place) = (nat(Some(1440)), nat(Some(1440)));
    let mut local = None;
    for pkt in v6_packets() {
        let out = same_both_ways(&mut copying, &mut in_place, &pkt, true);
        if pkt[6] == 6 && pkt[40 + 13] & 0x02 != 0 {
            assert_eq!(mss_of(&out[20..]), Some(1440), "outbound SYN clamped");
            local = Some(SocketAddrV4::new(
                Ipv4Addr::new(out[12], out[13], out[14], out[15]),
                u16::from_be_bytes([out[20], out[21]]),
            ));
        }
    }
    let local = local.unwrap();
    let out = same_both_ways(
        &mut copying,
        &mut in_place,
        &v4_reply(local, true, 0),
        false,
    );
    assert_eq!(mss_of(&out[40..]), Some(1440), "inbound SYN-ACK clamped");
    same_both_ways(
        &mut copying,
        &mut in_place,
        &v4_reply(local, false, 1400),
        false,
    );
    assert_eq!(copying.counters().tcp_mss_clamped, 2);
    assert_eq!(in_place.counters().tcp_mss_clamped, 2);
    assert_eq!(copying.sessions(), in_place.sessions());
}

#[test]
fn without_a_clamp_the_mss_is_left_alone() {
    let (mut copying, mut in_place) = (nat(None), nat(None));
    let syn = &v6_packets()[1];
    let out = same_both_ways(&mut copying, &mut in_place, syn, true);
    assert_eq!(mss_of(&out[20..]), Some(1460));
}

/// Runs `pkt` in place and returns the result, which must be a translation.
fn in_place(nat: &mut Nat64, pkt: &[u8], gso: Option<u16>) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(pkt);
    match nat.translate_in_place(Instant::now(), &mut buf, HEADROOM, pkt.len(), gso) {
        InPlace::Translated { start, len } => buf[start..start + len].to_vec(),
        InPlace::Fallback => panic!("fell back"),
    }
}

/// Runs `pkt` in place and requires a fallback that changed nothing.
fn falls_back(nat: &mut Nat64, pkt: &[u8], gso: Option<u16>) {
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(pkt);
    let before = buf.clone();
    assert_eq!(
        nat.translate_in_place(Instant::now(), &mut buf, HEADROOM, pkt.len(), gso),
        InPlace::Fallback
    );
    assert_eq!(buf, before, "a fallback changed the buffer");
}

#[test]
fn what_in_place_does_not_handle_is_left_untouched() {
    let mut nat = nat(None);
    // Unsolicited IPv4: no session.
    let pool = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 1);
    falls_back(&mut nat, &v4_reply(pool, false, 10), None);
    // Not under the prefix.
    let mut v = Vec::new();
    let elsewhere = [0x20, 1, 0xd, 0xb8, 9, 9, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    PacketBuilder::ipv6(CLIENT.octets(), elsewhere, 64)
        .udp(1, 2)
        .write(&mut v, b"x")
        .unwrap();
    falls_back(&mut nat, &v, None);
    // A session, then superpackets from the server: segments that fit the
    // IPv6 MTU (1500) once 20 bytes longer go in place, larger ones (DF)
    // go to the copying path, which answers Fragmentation Needed.
    let out = in_place(&mut nat, &v6_packets()[1], None);
    let local = SocketAddrV4::new(
        Ipv4Addr::new(out[12], out[13], out[14], out[15]),
        u16::from_be_bytes([out[20], out[21]]),
    );
    in_place(&mut nat, &v4_reply(local, true, 0), None);
    let big = v4_reply(local, false, 30000);
    let out = in_place(&mut nat, &big, Some(1440));
    assert_eq!(out.len(), big.len() + 20);
    falls_back(&mut nat, &big, Some(1441));
    // No room before the packet for the longer IPv6 header.
    let mut buf = big.clone();
    assert_eq!(
        nat.translate_in_place(Instant::now(), &mut buf, 0, big.len(), Some(1400)),
        InPlace::Fallback
    );
    assert_eq!(buf, big);
}
