//! The probe RFC 6146 §3.5.2.2 sends when an established session's
//! lifetime runs out: "a TCP segment for the connection with no data. The
//! sequence number and the acknowledgment number are set to zero. All
//! flags but the ACK flag are set to zero." A live endpoint answers the
//! out-of-window segment with an ACK of its own (RFC 793 §3.9), which
//! brings the session back from TRANS; a gone one leaves it to expire.

use std::net::SocketAddrV6;
use xlat64_packet::checksum::{combine, finish, pseudo_v6, sum};

/// IPv6 header and a TCP header without options.
const LEN: usize = 40 + 20;
/// TCP's protocol number.
const TCP: u8 = 6;
/// The ACK flag.
const ACK: u8 = 0x10;

/// Writes the probe from `from` (the server under the prefix) to `to` (the
/// client) into `out`; its length, or `None` when `out` is too small.
pub(crate) fn build(from: SocketAddrV6, to: SocketAddrV6, out: &mut [u8]) -> Option<usize> {
    let pkt = out.get_mut(..LEN)?;
    pkt.fill(0);
    pkt[0] = 0x60;
    pkt[4..6].copy_from_slice(&20u16.to_be_bytes());
    pkt[6] = TCP;
    pkt[7] = 64;
    pkt[8..24].copy_from_slice(&from.ip().octets());
    pkt[24..40].copy_from_slice(&to.ip().octets());
    let tcp = &mut pkt[40..];
    tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
    // Sequence and acknowledgment numbers zero; data offset 5 words.
    tcp[12] = 5 << 4;
    tcp[13] = ACK;
    let check = finish(combine(pseudo_v6(from.ip(), to.ip(), TCP, 20), sum(tcp)));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    Some(LEN)
}
