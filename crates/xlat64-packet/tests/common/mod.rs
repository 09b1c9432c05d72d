//! Packet construction and checking with etherparse, the independent oracle.
#![allow(dead_code, unreachable_pub)]

use etherparse::{
    ip_number, IpDscp, IpEcn, IpHeaders, Ipv4Header, Ipv6FlowLabel, Ipv6Header, NetHeaders,
    PacketBuilder, PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The transport part of a test packet.
#[derive(Debug, Clone)]
pub enum L4 {
    Tcp(TcpHeader),
    Udp {
        src: u16,
        dst: u16,
    },
    /// Echo request when `request`, echo reply otherwise.
    Echo {
        request: bool,
        id: u16,
        seq: u16,
    },
}

impl L4 {
    /// The same transport with new ports (TCP/UDP) or identifier (echo).
    pub fn with_ports(&self, src: u16, dst: u16) -> L4 {
        match self {
            L4::Tcp(h) => {
                let mut h = h.clone();
                h.source_port = src;
                h.destination_port = dst;
                L4::Tcp(h)
            }
            L4::Udp { .. } => L4::Udp { src, dst },
            L4::Echo { request, seq, .. } => L4::Echo {
                request: *request,
                id: src,
                seq: *seq,
            },
        }
    }

    pub fn echo(self, request: bool) -> L4 {
        match self {
            L4::Echo { id, seq, .. } => L4::Echo { request, id, seq },
            other => other,
        }
    }
}

/// A TCP header with options (MSS, SACK permitted, timestamps) and ACK|PSH.
pub fn tcp(src: u16, dst: u16) -> L4 {
    let mut h = TcpHeader::new(src, dst, 0x0102_0304, 64240);
    h.ack = true;
    h.psh = true;
    h.acknowledgment_number = 0xa0b0_c0d0;
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1440),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 2),
    ])
    .unwrap();
    L4::Tcp(h)
}

pub fn v6_header(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, tc: u8, flow: u32) -> IpHeaders {
    IpHeaders::Ipv6(
        Ipv6Header {
            traffic_class: tc,
            flow_label: Ipv6FlowLabel::try_new(flow).unwrap(),
            payload_length: 0,
            next_header: ip_number::TCP,
            hop_limit: hop,
            source: src.octets(),
            destination: dst.octets(),
        },
        Default::default(),
    )
}

pub fn v4_header(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, tos: u8, id: u16, df: bool) -> IpHeaders {
    let mut h = Ipv4Header::new(0, ttl, ip_number::TCP, src.octets(), dst.octets()).unwrap();
    h.dscp = IpDscp::try_new(tos >> 2).unwrap();
    h.ecn = IpEcn::try_new(tos & 3).unwrap();
    h.identification = id;
    h.dont_fragment = df;
    IpHeaders::Ipv4(h, Default::default())
}

/// Builds a whole IP packet with etherparse (checksums computed by it).
pub fn build(ip: IpHeaders, l4: &L4, payload: &[u8]) -> Vec<u8> {
    let v6 = matches!(ip, IpHeaders::Ipv6(..));
    let b = PacketBuilder::ip(ip);
    let mut out = Vec::new();
    match l4 {
        L4::Tcp(h) => b.tcp_header(h.clone()).write(&mut out, payload).unwrap(),
        L4::Udp { src, dst } => b.udp(*src, *dst).write(&mut out, payload).unwrap(),
        L4::Echo { request, id, seq } => match (v6, request) {
            (true, true) => b.icmpv6_echo_request(*id, *seq).write(&mut out, payload),
            (true, false) => b.icmpv6_echo_reply(*id, *seq).write(&mut out, payload),
            (false, true) => b.icmpv4_echo_request(*id, *seq).write(&mut out, payload),
            (false, false) => b.icmpv4_echo_reply(*id, *seq).write(&mut out, payload),
        }
        .unwrap(),
    }
    out
}

/// Recomputes every checksum of `pkt` with etherparse and compares it with
/// the one stored. Returns a description of the first mismatch.
pub fn check_checksums(pkt: &[u8]) -> Result<(), String> {
    let h = PacketHeaders::from_ip_slice(pkt).map_err(|e| format!("etherparse: {e:?}"))?;
    let payload = h.payload.slice();
    let net = h.net.ok_or("no net header")?;
    let transport = h.transport.ok_or("no transport header")?;
    let (stored, computed) = match (&net, &transport) {
        (NetHeaders::Ipv4(ip, _), t) => {
            if ip.calc_header_checksum() != ip.header_checksum {
                return Err("ipv4 header checksum".into());
            }
            match t {
                TransportHeader::Tcp(t) => (t.checksum, t.calc_checksum_ipv4(ip, payload).unwrap()),
                TransportHeader::Udp(u) => (u.checksum, u.calc_checksum_ipv4(ip, payload).unwrap()),
                TransportHeader::Icmpv4(i) => (i.checksum, i.icmp_type.calc_checksum(payload)),
                TransportHeader::Icmpv6(_) => return Err("icmpv6 in ipv4".into()),
            }
        }
        (NetHeaders::Ipv6(ip, _), t) => match t {
            TransportHeader::Tcp(t) => (t.checksum, t.calc_checksum_ipv6(ip, payload).unwrap()),
            TransportHeader::Udp(u) => (u.checksum, u.calc_checksum_ipv6(ip, payload).unwrap()),
            TransportHeader::Icmpv6(i) => (
                i.checksum,
                i.icmp_type
                    .calc_checksum(ip.source, ip.destination, payload)
                    .unwrap(),
            ),
            TransportHeader::Icmpv4(_) => return Err("icmpv4 in ipv6".into()),
        },
        _ => return Err("not ip".into()),
    };
    // 0x0000 and 0xffff are both "minus zero" for TCP and ICMP.
    if stored == computed
        || (stored == 0xffff && computed == 0)
        || (stored == 0 && computed == 0xffff)
    {
        Ok(())
    } else {
        Err(format!(
            "transport checksum stored {stored:#06x} computed {computed:#06x}"
        ))
    }
}

/// Recomputes the IPv4 header checksum of a hand-edited packet.
pub fn fix_v4_header_checksum(pkt: &mut [u8]) {
    let ihl = (usize::from(pkt[0] & 0x0f) * 4).min(pkt.len());
    pkt[10] = 0;
    pkt[11] = 0;
    let c = xlat64_packet::checksum::finish(xlat64_packet::checksum::sum(&pkt[..ihl]));
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Ones' complement sum of big-endian 16-bit words (RFC 1071), folded; an
/// odd last byte is padded with zero. Written here, independently of the
/// crate's own `checksum` module.
pub fn ones_sum(data: &[u8]) -> u32 {
    let mut acc: u64 = data
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The checksum field value for `data` (its checksum field zeroed) plus a
/// pseudo-header sum.
pub fn ones_checksum(pseudo: u32, data: &[u8]) -> u16 {
    !(ones_sum(&[&(pseudo as u16).to_be_bytes()[..], data].concat()) as u16)
}

/// Verifies every checksum of `pkt` straight from its bytes: the IPv4 header
/// checksum, and the TCP, UDP (a zero UDP checksum over IPv4 is accepted),
/// ICMPv4 or ICMPv6 checksum with its pseudo-header. Unlike
/// [`check_checksums`], it does not go through etherparse's typed ICMP
/// headers, which drop bytes 4..8 of errors (the RFC 4884 length attribute).
/// IPv6 packets must carry the transport header right after the fixed header.
pub fn check_checksums_raw(pkt: &[u8]) -> Result<(), String> {
    let fold_ok = |s: u32| s == 0xffff;
    let (pseudo, proto, l4) = match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
            if pkt.len() < total || total < ihl || ihl < 20 {
                return Err(format!(
                    "ipv4 lengths: ihl {ihl} total {total} have {}",
                    pkt.len()
                ));
            }
            if !fold_ok(ones_sum(&pkt[..ihl])) {
                return Err("ipv4 header checksum".into());
            }
            let l4 = &pkt[ihl..total];
            let len = l4.len() as u32;
            let pseudo =
                ones_sum(&[&pkt[12..20], &[0, pkt[9]], &(len as u16).to_be_bytes()].concat());
            if pkt[9] == 17 && l4.get(6..8) == Some(&[0, 0]) {
                return Ok(());
            }
            // ICMPv4 has no pseudo-header.
            (if pkt[9] == 1 { 0 } else { pseudo }, pkt[9], l4)
        }
        Some(6) => {
            if pkt.len() < 40 {
                return Err("ipv6 header cut short".into());
            }
            let total = 40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
            if pkt.len() < total {
                return Err(format!("ipv6 payload length {total} > {}", pkt.len()));
            }
            let l4 = &pkt[40..total];
            let len = l4.len() as u32;
            let pseudo =
                ones_sum(&[&pkt[8..40], &len.to_be_bytes()[..], &[0, 0, 0, pkt[6]]].concat());
            (pseudo, pkt[6], l4)
        }
        _ => return Err("not ip".into()),
    };
    if !matches!(proto, 1 | 6 | 17 | 58) {
        return Err(format!("protocol {proto}"));
    }
    let s = ones_sum(&[&(pseudo as u16).to_be_bytes()[..], l4].concat());
    if fold_ok(s) {
        Ok(())
    } else {
        Err(format!("protocol {proto} checksum: sum {s:#06x}"))
    }
}
