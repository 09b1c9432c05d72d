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
}
