//! Reading the client's query and deciding what to do with it.

use crate::policy::Dns64Policy;
use crate::reverse::reverse_target;
use crate::synthesis::{ipv4only_answer, PassReason};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The largest UDP answer sent to a client, whatever its EDNS buffer size:
/// the DNS flag day 2020 value, which avoids IP fragmentation.
pub const UDP_PAYLOAD_LIMIT: u16 = 1232;

/// Size of the fixed DNS header (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;

/// Why a client's datagram is not a query the DNS64 handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Fewer than 12 bytes: no header, nobody to answer. Drop.
    TooShort,
    /// QR=1: a response, not a query. Drop; answering could start a loop.
    NotAQuery,
    /// The message cannot be decoded, or QDCOUNT is not 1: answer FORMERR
    /// (RFC 1035 §4.1.1). The reply carries the client's id.
    Malformed(Box<Message>),
    /// An opcode other than QUERY: answer NOTIMP (RFC 1035 §4.1.1).
    NotImplemented(Box<Message>),
    /// An EDNS version other than 0: answer BADVERS (RFC 6891 §6.1.3).
    BadVersion(Box<Message>),
}

impl QueryError {
    /// The reply to send, or `None` when the datagram is to be dropped.
    pub fn reply(&self) -> Option<&Message> {
        match self {
            QueryError::TooShort | QueryError::NotAQuery => None,
            QueryError::Malformed(m)
            | QueryError::NotImplemented(m)
            | QueryError::BadVersion(m) => Some(m),
        }
    }
}

/// A decoded client query with exactly one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuery {
    message: Message,
}

/// What the server does with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Forward the query upstream and return the answer unchanged, for
    /// this reason.
    Forward(PassReason),
    /// Forward the AAAA query; then [`classify_aaaa`](crate::classify_aaaa)
    /// decides whether to synthesize.
    ForwardAaaa,
    /// Send this answer without asking upstream (`ipv4only.arpa`, RFC 8880).
    Answer(Message),
    /// A PTR query for an address under the prefix (RFC 6147 §5.3.1): ask
    /// upstream for PTR `target` (the in-addr.arpa name), then build the
    /// reply with [`reverse_answer`](crate::reverse_answer).
    Reverse {
        /// The in-addr.arpa name of the embedded IPv4 address.
        target: Name,
    },
}

/// Decodes a client's query.
///
/// Order of checks: length, QR, opcode, decoding, QDCOUNT, EDNS version.
pub fn parse_query(bytes: &[u8]) -> Result<ClientQuery, QueryError> {
    if bytes.len() < HEADER_LEN {
        return Err(QueryError::TooShort);
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let flags = bytes[2];
    if flags & 0x80 != 0 {
        return Err(QueryError::NotAQuery);
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    let recursion_desired = flags & 0x01 != 0;
    let error = |rcode: ResponseCode| {
        let mut m = Message::error_msg(id, op_code, rcode);
        m.set_recursion_desired(recursion_desired)
            .set_recursion_available(true);
        m
    };
    if op_code != OpCode::Query {
        return Err(QueryError::NotImplemented(Box::new(error(
            ResponseCode::NotImp,
        ))));
    }
    let message = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => {
            return Err(QueryError::Malformed(Box::new(error(
                ResponseCode::FormErr,
            ))))
        }
    };
    if message.queries().len() != 1 {
        return Err(QueryError::Malformed(Box::new(error(
            ResponseCode::FormErr,
        ))));
    }
    if let Some(edns) = message.extensions() {
        if edns.version() != 0 {
            let mut reply = error(ResponseCode::BADVERS);
            reply.add_query(message.queries()[0].clone());
            reply.set_edns(server_edns(edns.flags().dnssec_ok));
            return Err(QueryError::BadVersion(Box::new(reply)));
        }
    }
    Ok(ClientQuery { message })
}

/// The OPT record the DNS64 puts in its own replies.
fn server_edns(dnssec_ok: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD_LIMIT)
        .set_version(0)
        .set_dnssec_ok(dnssec_ok);
    edns
}

impl ClientQuery {
    /// The decoded message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The client's id.
    pub fn id(&self) -> u16 {
        self.message.id()
    }

    /// The only question.
    pub fn question(&self) -> &Query {
        &self.message.queries()[0]
    }

    /// DO bit of the client's EDNS OPT record (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.message
            .extensions()
            .as_ref()
            .is_some_and(|e| e.flags().dnssec_ok)
    }

    /// Whether the client's OPT record carries an EDNS Client Subnet
    /// option (RFC 7871 §6).
    pub fn has_client_subnet(&self) -> bool {
        self.message
            .extensions()
            .as_ref()
            .is_some_and(|e| e.options().get(EdnsCode::Subnet).is_some())
    }

    /// This query without its EDNS Client Subnet option, and its wire form,
    /// when it had one (`client-subnet = "strip"`): upstream servers then
    /// never learn the client's network (RFC 7871 §11.1), and their answers
    /// are the same for every client, so one cache entry serves all
    /// (RFC 7871 §7.3). `None`: nothing to strip.
    pub fn without_client_subnet(&self) -> Option<(ClientQuery, Vec<u8>)> {
        if !self.has_client_subnet() {
            return None;
        }
        let mut message = self.message.clone();
        if let Some(edns) = message.extensions_mut() {
            edns.options_mut().remove(EdnsCode::Subnet);
        }
        let bytes = message.to_vec().ok()?;
        Some((ClientQuery { message }, bytes))
    }

    /// CD bit (RFC 4035 §3.2.2).
    pub fn checking_disabled(&self) -> bool {
        self.message.checking_disabled()
    }

    /// The largest UDP reply the client accepts: 512 without EDNS
    /// (RFC 1035 §4.2.1), else its EDNS buffer size, at least 512 and at
    /// most [`UDP_PAYLOAD_LIMIT`] (RFC 6891 §6.2.5).
    pub fn udp_payload_limit(&self) -> usize {
        match self.message.extensions() {
            None => 512,
            Some(e) => usize::from(e.max_payload().clamp(512, UDP_PAYLOAD_LIMIT)),
        }
    }

    /// What to do with the query of a client that gets synthesized answers.
    pub fn plan(&self, policy: &Dns64Policy) -> Plan {
        self.plan_for(policy, true)
    }

    /// What to do with the query. `synthesize` is false for a client
    /// outside `synthesize-for` (RFC 6147 §5.1: synthesis may be limited to
    /// some clients): its AAAA queries, `ipv4only.arpa` included, go
    /// upstream and come back unchanged, as from a resolver without DNS64.
    pub fn plan_for(&self, policy: &Dns64Policy, synthesize: bool) -> Plan {
        let q = self.question();
        if q.query_class() != DNSClass::IN {
            return Plan::Forward(PassReason::NotAaaa);
        }
        let ipv4only = policy.answer_ipv4only_arpa && is_ipv4only_arpa(q.name());
        match q.query_type() {
            RecordType::A if ipv4only => Plan::Answer(ipv4only_answer(self, policy)),
            RecordType::AAAA if !synthesize => Plan::Forward(PassReason::NotInSynthesizeFor),
            RecordType::AAAA if ipv4only => Plan::Answer(ipv4only_answer(self, policy)),
            // RFC 6147 §5.5: a client that asks for DNSSEC data (DO=1) and
            // validates itself (CD=1) would reject synthesized records.
            RecordType::AAAA if self.dnssec_ok() && self.checking_disabled() => {
                Plan::Forward(PassReason::DnssecCd)
            }
            RecordType::AAAA => Plan::ForwardAaaa,
            RecordType::PTR if policy.reverse => match reverse_target(q.name(), policy) {
                Some(target) => Plan::Reverse { target },
                None => Plan::Forward(PassReason::NotAaaa),
            },
            _ => Plan::Forward(PassReason::NotAaaa),
        }
    }

    /// A query the server sends upstream on the client's behalf (the A query
    /// of RFC 6147 §5.1.6, the PTR query of §5.3.1). Id 0: the server sets a
    /// random one. RD and CD come from the client, and an OPT record when the
    /// client sent one, with the client's DO bit (RFC 3225 §3) and its
    /// end-to-end options (e.g. client subnet, RFC 7871), but not the
    /// hop-by-hop ones: cookies (RFC 7873), keepalive (RFC 7828) and
    /// padding (RFC 7830) belong to the client's connection with us.
    pub fn upstream_query(&self, name: Name, query_type: RecordType) -> Message {
        let mut m = Message::new();
        m.set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(self.message.recursion_desired())
            .set_checking_disabled(self.message.checking_disabled());
        m.add_query(Query::query(name, query_type));
        if let Some(client) = self.message.extensions() {
            let mut edns = server_edns(self.dnssec_ok());
            for (code, option) in client.options().as_ref() {
                if !matches!(
                    code,
                    EdnsCode::Cookie | EdnsCode::Keepalive | EdnsCode::Padding
                ) {
                    edns.options_mut().insert(option.clone());
                }
            }
            m.set_edns(edns);
        }
        m
    }

    /// A reply with no records and `rcode` (e.g. SERVFAIL when every upstream
    /// failed), carrying the client's id, question and RD bit.
    pub fn error_reply(&self, rcode: ResponseCode) -> Message {
        let mut m = self.reply_skeleton();
        m.set_response_code(rcode);
        m
    }

    /// A NOERROR response header with the client's id, question and flags;
    /// AA and AD clear, RA set; an OPT record when the client sent one.
    pub(crate) fn reply_skeleton(&self) -> Message {
        let mut m = Message::new();
        m.set_id(self.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(self.message.recursion_desired())
            .set_recursion_available(true)
            .set_checking_disabled(self.message.checking_disabled())
            .set_authentic_data(false)
            .set_authoritative(false)
            .set_response_code(ResponseCode::NoError);
        m.add_query(self.question().clone());
        if self.message.extensions().is_some() {
            m.set_edns(server_edns(self.dnssec_ok()));
        }
        m
    }
}

/// `ipv4only.arpa.` (RFC 7050 §2.2, RFC 8880).
fn is_ipv4only_arpa(name: &Name) -> bool {
    Name::from_ascii("ipv4only.arpa.").is_ok_and(|n| n == *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1035_4_1_1_short_datagram_dropped() {
        assert_eq!(parse_query(&[0u8; 11]), Err(QueryError::TooShort));
    }

    #[test]
    fn rfc1035_4_1_1_response_dropped() {
        let mut q = query("a.example.", RecordType::AAAA);
        q.set_message_type(MessageType::Response);
        assert_eq!(
            parse_query(&q.to_vec().unwrap()),
            Err(QueryError::NotAQuery)
        );
    }

    #[test]
    fn rfc1035_4_1_1_garbage_body_formerr_keeps_id() {
        let bytes = [0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let err = parse_query(&bytes).unwrap_err();
        let reply = err.reply().expect("FORMERR reply");
        assert!(matches!(err, QueryError::Malformed(_)));
        assert_eq!(reply.id(), 0xbeef);
        assert_eq!(reply.response_code(), ResponseCode::FormErr);
        assert_eq!(reply.message_type(), MessageType::Response);
        assert!(reply.recursion_desired());
    }

    #[test]
    fn rfc1035_4_1_1_two_questions_formerr() {
        let mut q = query("a.example.", RecordType::AAAA);
        q.add_query(Query::query(name("b.example."), RecordType::A));
        let err = parse_query(&q.to_vec().unwrap()).unwrap_err();
        assert_eq!(err.reply().unwrap().response_code(), ResponseCode::FormErr);
        let mut q = query("a.example.", RecordType::AAAA);
        q.take_queries();
        let err = parse_query(&q.to_vec().unwrap()).unwrap_err();
        assert!(matches!(err, QueryError::Malformed(_)));
    }

    #[test]
    fn rfc1035_4_1_1_other_opcode_notimp() {
        let mut q = query("a.example.", RecordType::AAAA);
        q.set_op_code(OpCode::Notify);
        let err = parse_query(&q.to_vec().unwrap()).unwrap_err();
        assert!(matches!(err, QueryError::NotImplemented(_)));
        assert_eq!(err.reply().unwrap().response_code(), ResponseCode::NotImp);
        assert_eq!(err.reply().unwrap().id(), q.id());
    }

    #[test]
    fn rfc6891_6_1_3_edns_version_1_badvers() {
        let mut q = query("a.example.", RecordType::AAAA);
        let mut e = Edns::new();
        e.set_version(1);
        q.set_edns(e);
        let err = parse_query(&q.to_vec().unwrap()).unwrap_err();
        assert!(matches!(err, QueryError::BadVersion(_)));
        let bytes = err.reply().unwrap().to_vec().unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        // BADVERS and BADSIG share the value 16; hickory decodes it as BADSIG.
        assert_eq!(u16::from(back.response_code()), 16);
        assert!(back.extensions().is_some());
    }

    #[test]
    fn rfc6891_6_2_5_udp_limit() {
        let q = parse_query(&query("a.example.", RecordType::A).to_vec().unwrap()).unwrap();
        assert_eq!(q.udp_payload_limit(), 512);
        let q = parse_query(&query_edns("a.example.", RecordType::A, 4096, false, false)).unwrap();
        assert_eq!(q.udp_payload_limit(), 1232);
        let q = parse_query(&query_edns("a.example.", RecordType::A, 100, false, false)).unwrap();
        assert_eq!(q.udp_payload_limit(), 512);
        let q = parse_query(&query_edns("a.example.", RecordType::A, 1000, false, false)).unwrap();
        assert_eq!(q.udp_payload_limit(), 1000);
    }

    #[test]
    fn rfc6147_5_1_aaaa_in_is_forwarded_for_synthesis() {
        let q = client("a.example.", RecordType::AAAA);
        assert_eq!(q.plan(&policy_wkp()), Plan::ForwardAaaa);
    }

    #[test]
    fn rfc6147_5_1_other_types_pass_through() {
        for t in [
            RecordType::A,
            RecordType::MX,
            RecordType::TXT,
            RecordType::ANY,
        ] {
            assert_eq!(
                client("a.example.", t).plan(&policy_wkp()),
                Plan::Forward(PassReason::NotAaaa)
            );
        }
        let mut m = query("a.example.", RecordType::AAAA);
        m.queries_mut()[0].set_query_class(DNSClass::CH);
        let q = parse_query(&m.to_vec().unwrap()).unwrap();
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::NotAaaa));
    }

    #[test]
    fn rfc6147_5_1_clients_outside_synthesize_for_get_plain_answers() {
        let p = policy_wkp();
        let q = client("a.example.", RecordType::AAAA);
        assert_eq!(
            q.plan_for(&p, false),
            Plan::Forward(PassReason::NotInSynthesizeFor)
        );
        // Not even ipv4only.arpa reveals the prefix to them.
        let q = client("ipv4only.arpa.", RecordType::AAAA);
        assert_eq!(
            q.plan_for(&p, false),
            Plan::Forward(PassReason::NotInSynthesizeFor)
        );
        // Other types are planned as for everyone.
        let q = client("a.example.", RecordType::MX);
        assert_eq!(q.plan_for(&p, false), Plan::Forward(PassReason::NotAaaa));
    }

    #[test]
    fn rfc6147_5_5_do_and_cd_not_synthesized() {
        let q = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            1232,
            true,
            true,
        ))
        .unwrap();
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::DnssecCd));
        // DO without CD, or CD without DO: synthesis allowed.
        let q = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            1232,
            true,
            false,
        ))
        .unwrap();
        assert_eq!(q.plan(&policy_wkp()), Plan::ForwardAaaa);
        let q = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            1232,
            false,
            true,
        ))
        .unwrap();
        assert_eq!(q.plan(&policy_wkp()), Plan::ForwardAaaa);
    }

    #[test]
    fn rfc6147_5_1_6_upstream_a_query_copies_flags() {
        let q = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            4096,
            true,
            false,
        ))
        .unwrap();
        let a = q.upstream_query(name("a.example."), RecordType::A);
        assert_eq!(a.queries()[0].query_type(), RecordType::A);
        assert!(a.recursion_desired());
        assert!(!a.checking_disabled());
        assert!(a.extensions().as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(a.message_type(), MessageType::Query);
        // CD travels too (RFC 6147 §5.5: the A answer must not be validated
        // when the client asked for that).
        let q = parse_query(&query_edns(
            "a.example.",
            RecordType::AAAA,
            4096,
            false,
            true,
        ))
        .unwrap();
        let a = q.upstream_query(name("a.example."), RecordType::A);
        assert!(a.checking_disabled());
        assert!(!a.extensions().as_ref().unwrap().flags().dnssec_ok);
        // Without EDNS from the client, none upstream either.
        let q = client("a.example.", RecordType::AAAA);
        assert!(q
            .upstream_query(name("a.example."), RecordType::A)
            .extensions()
            .is_none());
    }

    #[test]
    fn rfc6891_6_1_2_end_to_end_options_copied_hop_by_hop_ones_not() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let mut m = query("a.example.", RecordType::AAAA);
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            "198.51.100.0".parse().unwrap(),
            24,
            0,
        )));
        e.options_mut()
            .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        m.set_edns(e);
        let q = parse_query(&m.to_vec().unwrap()).unwrap();
        let a = q.upstream_query(name("a.example."), RecordType::A);
        let bytes = a.to_vec().unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        let opts = back.extensions().as_ref().unwrap().options();
        assert!(opts.get(EdnsCode::Subnet).is_some());
        assert!(opts.get(EdnsCode::Cookie).is_none());
    }

    #[test]
    fn rfc7871_11_1_client_subnet_stripped_other_options_kept() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let mut m = query("a.example.", RecordType::AAAA);
        let mut e = Edns::new();
        e.set_max_payload(1232).set_dnssec_ok(true);
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            "2001:db8:a::".parse().unwrap(),
            56,
            0,
        )));
        e.options_mut()
            .insert(EdnsOption::Unknown(65001, vec![7, 7]));
        m.set_edns(e);
        let q = parse_query(&m.to_vec().unwrap()).unwrap();
        assert!(q.has_client_subnet());
        let (stripped, bytes) = q.without_client_subnet().unwrap();
        assert!(!stripped.has_client_subnet());
        let back = parse_query(&bytes).unwrap();
        assert_eq!(back, stripped);
        let e = back.message().extensions().as_ref().unwrap();
        assert!(e.options().get(EdnsCode::Subnet).is_none());
        assert!(e.options().get(EdnsCode::Unknown(65001)).is_some());
        assert_eq!((e.max_payload(), back.dnssec_ok()), (1232, true));
        assert_eq!((back.id(), back.question()), (q.id(), q.question()));
        // Nothing to strip: None.
        assert!(stripped.without_client_subnet().is_none());
    }

    proptest! {
        #[test]
        fn parse_query_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_query(&bytes);
        }

        /// The fuzz target's harness on random bytes...
        #[test]
        fn fuzz_harness_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            crate::fuzzing::parse_query_roundtrip(&bytes);
        }

        /// ...and on valid queries with random bytes flipped, which get
        /// further into the plan.
        #[test]
        fn fuzz_harness_mutated_queries(
            qtype in prop::sample::select(vec![RecordType::AAAA, RecordType::A, RecordType::PTR, RecordType::MX]),
            qname in prop::sample::select(vec![
                "a.example.",
                "ipv4only.arpa.",
                "1.0.0.0.0.0.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.9.f.f.4.6.0.0.ip6.arpa.",
                "7.0.4.6.3.3.c.c.0.0.0.0.0.0.0.0.0.0.0.0.4.6.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            ]),
            edns in any::<bool>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = if edns {
                query_edns(qname, qtype, 1232, true, false)
            } else {
                query(qname, qtype).to_vec().unwrap()
            };
            crate::fuzzing::parse_query_roundtrip(&bytes);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            crate::fuzzing::parse_query_roundtrip(&bytes);
        }

        #[test]
        fn formerr_keeps_id(id in any::<u16>(), rd in any::<bool>(),
                            body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = vec![(id >> 8) as u8, id as u8, u8::from(rd), 0];
            bytes.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
            bytes.extend_from_slice(&body);
            match parse_query(&bytes) {
                Ok(q) => prop_assert_eq!(q.id(), id),
                Err(e) => {
                    let reply = e.reply().expect("a readable header gets a reply");
                    prop_assert_eq!(reply.id(), id);
                    prop_assert_eq!(reply.message_type(), MessageType::Response);
                    prop_assert_eq!(reply.recursion_desired(), rd);
                    // The reply itself must encode.
                    prop_assert!(reply.to_vec().is_ok());
                }
            }
        }
    }
}
