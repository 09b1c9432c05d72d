//! Byte-level helpers for the server: answers from upstream are passed on
//! as bytes, so records hickory does not know survive unchanged.

use hickory_proto::op::{Header, Message, MessageType, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Size of the fixed DNS header (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;

/// The id of a message, or `None` when shorter than a header.
pub fn id(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Overwrites the id of a message (no-op on less than two bytes).
pub fn set_id(bytes: &mut [u8], id: u16) {
    if let Some(b) = bytes.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

/// TC bit of a message (RFC 1035 §4.1.1).
pub fn is_truncated(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[2] & 0x02 != 0
}

/// The header's RCODE (RFC 1035 §4.1.1; the 4 bits, without an EDNS
/// extension), or `None` when shorter than a header.
pub fn rcode(bytes: &[u8]) -> Option<u8> {
    (bytes.len() >= HEADER_LEN).then(|| bytes[3] & 0x0f)
}

/// True when `bytes` is a response to the query with `id` and `question`:
/// QR=1, same id, and the same question (name case-insensitive, type,
/// class). An error response without a question section also matches
/// (some servers send FORMERR that way). Anything else is ignored by the
/// caller, as off-path spoofing attempts or late answers.
pub fn reply_matches(bytes: &[u8], id: u16, question: &Query) -> bool {
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        return false;
    };
    if header.message_type() != MessageType::Response || header.id() != id {
        return false;
    }
    match header.query_count() {
        0 => header.response_code() != ResponseCode::NoError,
        1 => Query::read(&mut decoder).is_ok_and(|q| {
            q.name() == question.name()
                && q.query_type() == question.query_type()
                && q.query_class() == question.query_class()
        }),
        _ => false,
    }
}

/// Makes a response fit a UDP reply of `limit` bytes: returned unchanged
/// when it fits, otherwise reduced to header and question with TC=1
/// (RFC 1035 §4.2.1, RFC 2181 §9) and the OPT record kept, so the client
/// retries over TCP. The bool says whether it was truncated.
pub fn fit_udp(bytes: Vec<u8>, limit: usize) -> (Vec<u8>, bool) {
    if bytes.len() <= limit {
        return (bytes, false);
    }
    if let Ok(message) = Message::from_vec(&bytes) {
        if let Ok(out) = message.truncate().to_vec() {
            if out.len() <= limit {
                return (out, true);
            }
        }
    }
    // Undecodable or still too long: the header alone, with TC=1.
    let mut out = bytes[..HEADER_LEN.min(bytes.len())].to_vec();
    out.resize(HEADER_LEN, 0);
    out[2] |= 0x02;
    out[4..HEADER_LEN].fill(0);
    (out, true)
}

/// Why [`short_reply`] made no reply: the datagram is not a well-formed
/// query. The caller drops it unanswered (no reflection of junk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAQuery {
    /// Shorter than a header, or the question runs past the end.
    Truncated,
    /// QR=1: a response.
    Response,
    /// QDCOUNT other than 1, or answer or authority records present.
    Counts,
    /// A label longer than 63 bytes, a name longer than 255, or a
    /// compression pointer (which a query's only name cannot need).
    BadName,
}

/// Bytes of the OPT record [`short_reply`] appends: root name, type 41,
/// our UDP payload size, extended rcode 0, version 0, flags with DO
/// copied, no options (RFC 6891 §6.1.2).
const SHORT_OPT_LEN: usize = 11;
const TYPE_OPT: u16 = 41;

/// Writes into `out` a reply to `query` with `rcode` (and TC=1 when
/// `truncated`), made from the query's own bytes, without decoding it:
/// the header and question copied, QR=1, AA, AD and Z clear, RA set, RD and
/// CD kept, the counts fixed (one question, no records) and, when the query
/// carried an OPT record, a bare OPT record of ours (RFC 6891 §7).
///
/// It is how a client outside `allow` gets REFUSED (RFC 1035 §4.1.1:
/// "refuses to perform the specified operation for policy reasons") and
/// how a rate-limited client is told to retry over TCP (TC=1, RFC 7766
/// §5, as BIND's RRL "slip"), each for less work than a cache hit. Only a
/// well-formed query gets one; anything else is [`NotAQuery`] and `out`
/// is left empty.
pub fn short_reply(
    query: &[u8],
    rcode: u8,
    truncated: bool,
    out: &mut Vec<u8>,
) -> Result<(), NotAQuery> {
    out.clear();
    let header = query.get(..HEADER_LEN).ok_or(NotAQuery::Truncated)?;
    if header[2] & 0x80 != 0 {
        return Err(NotAQuery::Response);
    }
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 {
        return Err(NotAQuery::Counts);
    }
    let question_end = question_end(query)?;
    // The first additional record, when it is an OPT: its TTL field's
    // second byte is the EDNS version, the third holds DO.
    let opt = match query.get(question_end..question_end + SHORT_OPT_LEN) {
        Some(rr)
            if count(10) >= 1 && rr[0] == 0 && u16::from_be_bytes([rr[1], rr[2]]) == TYPE_OPT =>
        {
            Some(rr[7] & 0x80)
        }
        _ => None,
    };
    out.extend_from_slice(&query[..question_end]);
    // QR=1, opcode and RD kept, AA clear, TC as asked.
    out[2] = 0x80 | (header[2] & 0x79) | if truncated { 0x02 } else { 0 };
    // RA=1, Z and AD clear, CD kept.
    out[3] = 0x80 | (header[3] & 0x10) | (rcode & 0x0f);
    out[6..12].fill(0);
    if let Some(dnssec_ok) = opt {
        out[11] = 1;
        let size = crate::query::UDP_PAYLOAD_LIMIT.to_be_bytes();
        out.extend_from_slice(&[0, 0, 41, size[0], size[1], 0, 0, dnssec_ok, 0, 0, 0]);
    }
    Ok(())
}

/// Where the only question of a query ends: after its name (labels only,
/// no pointer) and its type and class.
fn question_end(query: &[u8]) -> Result<usize, NotAQuery> {
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(at).ok_or(NotAQuery::Truncated)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err(NotAQuery::BadName);
        }
        at += 1 + len;
        if at - HEADER_LEN > 255 {
            return Err(NotAQuery::BadName);
        }
    }
    let end = at + 1 + 4;
    if end > query.len() {
        return Err(NotAQuery::Truncated);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use hickory_proto::op::Edns;
    use hickory_proto::rr::RecordType;

    #[test]
    fn rfc5452_9_1_reply_must_match_id_and_question() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        r.set_id(77);
        let bytes = r.to_vec().unwrap();
        assert!(reply_matches(&bytes, 77, q.question()));
        assert!(!reply_matches(&bytes, 78, q.question()));
        let other = Query::query(name("A.EXAMPLE."), RecordType::A);
        assert!(!reply_matches(&bytes, 77, &other));
        let same_case_insensitive = Query::query(name("A.EXAMPLE."), RecordType::AAAA);
        assert!(reply_matches(&bytes, 77, &same_case_insensitive));
        // A query (QR=0) is not a reply.
        let mut m = query("a.example.", RecordType::AAAA);
        m.set_id(77);
        assert!(!reply_matches(&m.to_vec().unwrap(), 77, q.question()));
        assert!(!reply_matches(&[1, 2, 3], 77, q.question()));
    }

    #[test]
    fn rfc1035_4_2_1_udp_answer_truncated_with_tc() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        for i in 0..100u16 {
            r.add_answer(aaaa_rr("a.example.", &format!("2001:db8::{i:x}"), 300));
        }
        r.set_edns(Edns::new());
        let bytes = r.to_vec().unwrap();
        assert!(bytes.len() > 512);
        let (small, truncated) = fit_udp(bytes.clone(), 512);
        assert!(truncated);
        assert!(small.len() <= 512);
        let m = Message::from_vec(&small).unwrap();
        assert!(m.truncated());
        assert_eq!(m.id(), r.id());
        assert_eq!(m.queries(), r.queries());
        assert!(m.answers().is_empty());
        assert!(m.extensions().is_some());
        let (same, truncated) = fit_udp(bytes.clone(), 65535);
        assert!(!truncated);
        assert_eq!(same, bytes);
        // Undecodable: header only.
        let mut junk = bytes[..12].to_vec();
        junk.extend(std::iter::repeat_n(0xffu8, 600));
        let (h, truncated) = fit_udp(junk, 512);
        assert!(truncated && h.len() == 12 && is_truncated(&h));
    }

    #[test]
    fn set_id_rewrites_first_two_bytes() {
        let mut b = vec![0u8; 12];
        set_id(&mut b, 0xabcd);
        assert_eq!(id(&b), Some(0xabcd));
        set_id(&mut [0u8; 1], 1);
        assert_eq!(id(&[1]), None);
    }

    #[test]
    fn short_reply_is_what_the_decoding_path_would_say() {
        let mut out = Vec::new();
        for (bytes, edns) in [
            (
                query("A.Example.", RecordType::AAAA).to_vec().unwrap(),
                false,
            ),
            (
                query_edns("a.example.", RecordType::A, 4096, true, true),
                true,
            ),
        ] {
            short_reply(&bytes, 5, false, &mut out).unwrap();
            let m = Message::from_vec(&out).unwrap();
            let q = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.id(), q.id());
            assert_eq!(m.message_type(), MessageType::Response);
            assert_eq!(m.response_code(), ResponseCode::Refused);
            assert_eq!(m.queries(), q.queries(), "question kept, case too");
            assert!(m.answers().is_empty() && m.additionals().is_empty());
            assert!(m.recursion_desired() && m.recursion_available());
            assert!(!m.truncated() && !m.authoritative());
            assert_eq!(m.checking_disabled(), q.checking_disabled());
            match m.extensions() {
                Some(e) => {
                    assert!(edns, "OPT only when the query had one");
                    assert_eq!(e.max_payload(), crate::query::UDP_PAYLOAD_LIMIT);
                    assert_eq!(
                        e.flags().dnssec_ok,
                        q.extensions().as_ref().unwrap().flags().dnssec_ok
                    );
                }
                None => assert!(!edns, "RFC 6891 §7: OPT answered with OPT"),
            }
            short_reply(&bytes, 0, true, &mut out).unwrap();
            let m = Message::from_vec(&out).unwrap();
            assert!(m.truncated() && m.response_code() == ResponseCode::NoError);
        }
    }

    #[test]
    fn short_reply_refuses_what_is_not_a_query() {
        let mut out = vec![1, 2, 3];
        let good = query("a.example.", RecordType::A).to_vec().unwrap();
        assert_eq!(
            short_reply(&good[..11], 5, false, &mut out),
            Err(NotAQuery::Truncated)
        );
        assert!(out.is_empty());
        assert_eq!(
            short_reply(&good[..good.len() - 1], 5, false, &mut out),
            Err(NotAQuery::Truncated)
        );
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(
            short_reply(&response, 5, false, &mut out),
            Err(NotAQuery::Response)
        );
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(
            short_reply(&two, 5, false, &mut out),
            Err(NotAQuery::Counts)
        );
        let mut pointer = good[..12].to_vec();
        pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(
            short_reply(&pointer, 5, false, &mut out),
            Err(NotAQuery::BadName)
        );
        let mut long = good[..12].to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(
            short_reply(&long, 5, false, &mut out),
            Err(NotAQuery::BadName)
        );
    }

    proptest::proptest! {
        /// Any bytes: no panic, and a reply only for what hickory reads as
        /// a one-question query, echoing that question.
        #[test]
        fn short_reply_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut out = Vec::new();
            if short_reply(&bytes, 5, false, &mut out).is_ok() {
                let m = Message::from_vec(&out).unwrap();
                proptest::prop_assert_eq!(m.queries().len(), 1);
                proptest::prop_assert_eq!(m.response_code(), ResponseCode::Refused);
            }
        }
    }
}
