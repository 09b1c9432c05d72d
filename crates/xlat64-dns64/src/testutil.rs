//! Builders for test messages.

use crate::policy::Dns64Policy;
use crate::query::{parse_query, ClientQuery};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::Ipv6Net;
use xlat64_packet::prefix::Prefix6052;

pub(crate) fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

pub(crate) fn policy_wkp() -> Dns64Policy {
    Dns64Policy::new(Prefix6052::WELL_KNOWN)
}

pub(crate) fn policy_nsp() -> Dns64Policy {
    Dns64Policy::new(Prefix6052::new("2001:db8:64::/96".parse::<Ipv6Net>().unwrap()).unwrap())
}

pub(crate) fn query(qname: &str, t: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(0x1234)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(name(qname), t));
    m
}

pub(crate) fn query_edns(
    qname: &str,
    t: RecordType,
    size: u16,
    dnssec_ok: bool,
    cd: bool,
) -> Vec<u8> {
    let mut m = query(qname, t);
    let mut e = Edns::new();
    e.set_max_payload(size).set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m.set_checking_disabled(cd);
    m.to_vec().unwrap()
}

pub(crate) fn client(qname: &str, t: RecordType) -> ClientQuery {
    parse_query(&query(qname, t).to_vec().unwrap()).unwrap()
}

/// An upstream response to `q` with no records (id 0x4321).
pub(crate) fn response(q: &ClientQuery, rcode: ResponseCode) -> Message {
    let mut m = Message::new();
    m.set_id(0x4321)
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .set_response_code(rcode);
    m.add_query(q.question().clone());
    m
}

/// A NODATA response, with an SOA (TTL, MINIMUM) in authority when given.
pub(crate) fn nodata(q: &ClientQuery, soa: Option<(u32, u32)>) -> Message {
    let mut m = response(q, ResponseCode::NoError);
    if let Some((ttl, minimum)) = soa {
        let data = SOA::new(
            name("ns.example."),
            name("admin.example."),
            1,
            3600,
            600,
            86400,
            minimum,
        );
        m.add_name_server(Record::from_rdata(name("example."), ttl, RData::SOA(data)));
    }
    m
}

pub(crate) fn a_rr(owner: &str, addr: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(addr.parse().unwrap())))
}

pub(crate) fn aaaa_rr(owner: &str, addr: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::AAAA(AAAA(addr.parse().unwrap())))
}

pub(crate) fn cname_rr(owner: &str, target: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}
