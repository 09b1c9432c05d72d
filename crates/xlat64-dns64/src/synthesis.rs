//! AAAA synthesis (RFC 6147 §5.1) and the local `ipv4only.arpa` answer
//! (RFC 8880).
//!
//! RFC 6147 §5.1.6: "the DNS64 [...] synthesizes an AAAA RR for each A RR
//! received in the answer, with the same owner name, [...] and the CNAME and
//! DNAME RRs that appear in the answer are copied to the response."

use crate::policy::Dns64Policy;
use crate::query::ClientQuery;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::Ipv4Addr;

/// TTL cap of synthesized records when the negative AAAA answer carried no
/// SOA (RFC 6147 §5.1.7).
pub const TTL_WITHOUT_SOA: u32 = 600;

/// TTL of the local `ipv4only.arpa` answer (the zone's own TTL, RFC 8880).
pub const IPV4ONLY_TTL: u32 = 86400;

/// The well-known IPv4-only addresses (RFC 7050 §2.2).
pub const IPV4ONLY_ADDRS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// DNAME's type code (RFC 6672); hickory has no variant for it.
const DNAME: u16 = 39;

/// Longest CNAME chain followed, against loops.
const MAX_CHAIN: usize = 16;

/// What the upstream AAAA response means for synthesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AaaaVerdict {
    /// Send the AAAA response to the client unchanged.
    PassThrough(PassReason),
    /// Real AAAA records came with excluded ones: send this, the response
    /// without the excluded records (RFC 6147 §5.1.4: they "MUST NOT be
    /// included in the response", and the real ones win, §5.1.1).
    RealWithoutExcluded(Message),
    /// No usable AAAA: query A and call [`synthesize`].
    QueryA,
}

/// Why an AAAA response passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    /// It holds AAAA records for the name; real ones win and are never
    /// mixed with synthesized ones (RFC 6147 §5.1.1).
    RealAaaa,
    /// NXDOMAIN: the name does not exist, no A either (RFC 6147 §5.1.2).
    NxDomain,
    /// Another error, with synthesis on errors turned off (RFC 6147 §5.1.2).
    Error(ResponseCode),
    /// Not an AAAA query of class IN: nothing to synthesize (RFC 6147 §5.1).
    NotAaaa,
    /// DO=1 and CD=1: the client validates and would reject synthesized
    /// records (RFC 6147 §5.5).
    DnssecCd,
    /// The client is not among those that get synthesized answers (a
    /// dual-stack client, RFC 6147 §5.1: "a DNS64 MAY [...] be configured to
    /// apply the synthesis only to some clients").
    NotInSynthesizeFor,
}

/// The result of [`synthesize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synthesis {
    /// The synthesized answer.
    Synthesized(Message),
    /// Nothing to synthesize: send the upstream AAAA response unchanged.
    AaaaResponse,
    /// Nothing to synthesize, and the AAAA response held only excluded
    /// records: this is it with them removed (RFC 6147 §5.1.4).
    NoData(Message),
}

/// Decides from the upstream AAAA response whether to synthesize
/// (RFC 6147 §5.1.1, §5.1.2, §5.1.4).
pub fn classify_aaaa(
    query: &ClientQuery,
    aaaa_response: &Message,
    policy: &Dns64Policy,
) -> AaaaVerdict {
    match aaaa_response.response_code() {
        ResponseCode::NoError => {
            let chain = chain_names(aaaa_response.answers(), query.question().name());
            let real = aaaa_records(aaaa_response, &chain).any(|a| !policy.is_excluded(&a.0));
            match (real, has_excluded(aaaa_response, policy)) {
                (true, true) => {
                    AaaaVerdict::RealWithoutExcluded(without_excluded(query, aaaa_response, policy))
                }
                (true, false) => AaaaVerdict::PassThrough(PassReason::RealAaaa),
                (false, _) => AaaaVerdict::QueryA,
            }
        }
        ResponseCode::NXDomain => AaaaVerdict::PassThrough(PassReason::NxDomain),
        _ if policy.synthesize_on_error => AaaaVerdict::QueryA,
        rcode => AaaaVerdict::PassThrough(PassReason::Error(rcode)),
    }
}

/// Builds the synthesized AAAA answer from the A response (RFC 6147 §5.1.6,
/// §5.1.7, §5.5).
///
/// - Answer section: the A response's CNAME and DNAME records as they are,
///   and one AAAA per A record of the queried name (after following CNAMEs),
///   same owner name, address embedded under the prefix. Other records
///   (RRSIG among them: they could not validate) are left out.
/// - Each address goes under the prefix [`Dns64Policy::prefix_for`] picks;
///   addresses it refuses (outside `mapped`, inside `exclude_mapped`,
///   non-global under the well-known prefix, RFC 6052 §3.1) are left out.
/// - TTL: the minimum of the A record's TTL and the SOA TTL and SOA MINIMUM
///   of the negative AAAA response; without an SOA, at most 600 s (§5.1.7).
/// - Authority and additional sections empty (§5.1.6 does not synthesize
///   additional data).
/// - id, question, RD and CD from the client; RA from the A response; AA and
///   AD clear (§5.5: synthesized data is not validated); rcode NOERROR.
///
/// When the A response is not a NOERROR answer with usable A records, the
/// AAAA response is returned ([`Synthesis::AaaaResponse`], or
/// [`Synthesis::NoData`] when excluded AAAA records must be removed).
pub fn synthesize(
    query: &ClientQuery,
    aaaa_response: &Message,
    a_response: &Message,
    policy: &Dns64Policy,
) -> Synthesis {
    let nothing = || no_synthesis(query, aaaa_response, policy);
    if a_response.response_code() != ResponseCode::NoError {
        return nothing();
    }
    let chain = chain_names(a_response.answers(), query.question().name());
    let ttl_cap = negative_ttl(aaaa_response).unwrap_or(TTL_WITHOUT_SOA);
    let mut answers = Vec::new();
    let mut synthesized = 0usize;
    for record in a_response.answers() {
        if record.dns_class() != DNSClass::IN {
            continue;
        }
        match record.data() {
            RData::CNAME(_) => answers.push(record.clone()),
            RData::Unknown { code, .. } if u16::from(*code) == DNAME => {
                answers.push(record.clone())
            }
            RData::A(A(v4)) if chain.contains(record.name()) => {
                let Some(prefix) = policy.prefix_for(*v4) else {
                    continue;
                };
                let v6 = prefix.embed(*v4);
                let ttl = record.ttl().min(ttl_cap);
                answers.push(Record::from_rdata(
                    record.name().clone(),
                    ttl,
                    RData::AAAA(AAAA(v6)),
                ));
                synthesized += 1;
            }
            _ => {}
        }
    }
    if synthesized == 0 {
        return nothing();
    }
    let mut reply = query.reply_skeleton();
    reply.set_recursion_available(a_response.recursion_available());
    reply.insert_answers(answers);
    Synthesis::Synthesized(reply)
}

/// The reply when nothing is synthesized: the AAAA response, without the
/// excluded AAAA records if it had any (RFC 6147 §5.1.4).
fn no_synthesis(query: &ClientQuery, aaaa_response: &Message, policy: &Dns64Policy) -> Synthesis {
    if !has_excluded(aaaa_response, policy) {
        return Synthesis::AaaaResponse;
    }
    Synthesis::NoData(without_excluded(query, aaaa_response, policy))
}

/// Whether the answer section holds AAAA records inside `exclude`.
fn has_excluded(aaaa_response: &Message, policy: &Dns64Policy) -> bool {
    aaaa_response.answers().iter().any(|r| match r.data() {
        RData::AAAA(AAAA(v6)) => policy.is_excluded(v6),
        _ => false,
    })
}

/// The AAAA response for the client without its excluded AAAA records
/// (RFC 6147 §5.1.4). RRSIGs go with them (they signed the RRset as it
/// was), and AD is cleared: the answer is no longer the validated one.
fn without_excluded(query: &ClientQuery, aaaa_response: &Message, policy: &Dns64Policy) -> Message {
    let mut reply = aaaa_response.clone();
    reply.set_id(query.id()).set_authentic_data(false);
    reply.answers_mut().retain(|r| match r.data() {
        RData::AAAA(AAAA(v6)) => !policy.is_excluded(v6),
        _ => r.record_type() != RecordType::RRSIG,
    });
    reply.take_signature();
    reply
}

/// The queried name and every name reached from it through CNAME records of
/// `answers`.
fn chain_names(answers: &[Record], qname: &Name) -> Vec<Name> {
    let mut chain = vec![qname.clone()];
    let mut current = qname.clone();
    for _ in 0..MAX_CHAIN {
        let next = answers.iter().find_map(|r| match r.data() {
            RData::CNAME(c) if r.name() == &current => Some(c.0.clone()),
            _ => None,
        });
        match next {
            Some(n) if !chain.contains(&n) => {
                chain.push(n.clone());
                current = n;
            }
            _ => break,
        }
    }
    chain
}

/// AAAA records in the answer section owned by a name of `chain`.
fn aaaa_records<'a>(
    response: &'a Message,
    chain: &'a [Name],
) -> impl Iterator<Item = &'a AAAA> + 'a {
    response
        .answers()
        .iter()
        .filter_map(move |r| match r.data() {
            RData::AAAA(a) if r.dns_class() == DNSClass::IN && chain.contains(r.name()) => Some(a),
            _ => None,
        })
}

/// The negative-caching TTL of a response: min(SOA TTL, SOA MINIMUM) of the
/// SOA in its authority section (RFC 2308 §5).
fn negative_ttl(response: &Message) -> Option<u32> {
    response.name_servers().iter().find_map(|r| match r.data() {
        RData::SOA(soa) => Some(r.ttl().min(SOA::minimum(soa))),
        _ => None,
    })
}

/// The local answer for `ipv4only.arpa` A or AAAA (RFC 8880 §7.2): the
/// well-known addresses, for AAAA embedded under every prefix in use (RFC
/// 7050 §3: the client learns each one), whatever the special-purpose
/// filter and `mapped` say (RFC 7050 §2.2).
pub fn ipv4only_answer(query: &ClientQuery, policy: &Dns64Policy) -> Message {
    let mut reply = query.reply_skeleton();
    let owner = query.question().name().clone();
    if query.question().query_type() == RecordType::AAAA {
        for prefix in policy.all_prefixes() {
            for v4 in IPV4ONLY_ADDRS {
                let data = RData::AAAA(AAAA(prefix.embed(v4)));
                reply.add_answer(Record::from_rdata(owner.clone(), IPV4ONLY_TTL, data));
            }
        }
    } else {
        for v4 in IPV4ONLY_ADDRS {
            let data = RData::A(A(v4));
            reply.add_answer(Record::from_rdata(owner.clone(), IPV4ONLY_TTL, data));
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Plan;
    use crate::testutil::*;
    use std::net::Ipv6Addr;

    fn synth(q: &ClientQuery, aaaa: &Message, a: &Message) -> Message {
        match synthesize(q, aaaa, a, &policy_wkp()) {
            Synthesis::Synthesized(m) => m,
            other => panic!("not synthesized: {other:?}"),
        }
    }

    fn aaaa_addrs(m: &Message) -> Vec<(String, Ipv6Addr, u32)> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::AAAA(AAAA(v6)) => Some((r.name().to_string(), *v6, r.ttl())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rfc6147_5_1_1_real_aaaa_passes_through() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        r.add_answer(aaaa_rr("a.example.", "2001:db8::1", 300));
        assert_eq!(
            classify_aaaa(&q, &r, &policy_wkp()),
            AaaaVerdict::PassThrough(PassReason::RealAaaa)
        );
    }

    #[test]
    fn rfc6147_5_1_1_real_aaaa_behind_cname_passes_through() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        r.add_answer(cname_rr("a.example.", "b.example.", 300));
        r.add_answer(aaaa_rr("b.example.", "2001:db8::1", 300));
        assert_eq!(
            classify_aaaa(&q, &r, &policy_wkp()),
            AaaaVerdict::PassThrough(PassReason::RealAaaa)
        );
    }

    #[test]
    fn rfc6147_5_1_nodata_queries_a() {
        let q = client("a.example.", RecordType::AAAA);
        let r = nodata(&q, Some((3600, 300)));
        assert_eq!(classify_aaaa(&q, &r, &policy_wkp()), AaaaVerdict::QueryA);
        // A CNAME chain that ends without AAAA is NODATA too.
        let mut r = response(&q, ResponseCode::NoError);
        r.add_answer(cname_rr("a.example.", "b.example.", 300));
        assert_eq!(classify_aaaa(&q, &r, &policy_wkp()), AaaaVerdict::QueryA);
    }

    #[test]
    fn rfc6147_5_1_2_nxdomain_passes_through() {
        let q = client("a.example.", RecordType::AAAA);
        let r = response(&q, ResponseCode::NXDomain);
        assert_eq!(
            classify_aaaa(&q, &r, &policy_wkp()),
            AaaaVerdict::PassThrough(PassReason::NxDomain)
        );
    }

    #[test]
    fn rfc6147_5_1_2_servfail_treated_as_empty() {
        let q = client("a.example.", RecordType::AAAA);
        let r = response(&q, ResponseCode::ServFail);
        assert_eq!(classify_aaaa(&q, &r, &policy_wkp()), AaaaVerdict::QueryA);
        let mut p = policy_wkp();
        p.synthesize_on_error = false;
        assert_eq!(
            classify_aaaa(&q, &r, &p),
            AaaaVerdict::PassThrough(PassReason::Error(ResponseCode::ServFail))
        );
        // SERVFAIL on AAAA, A present: synthesized with the 600 s cap.
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 3600));
        let m = synth(&q, &r, &a);
        assert_eq!(aaaa_addrs(&m)[0].2, 600);
    }

    #[test]
    fn rfc6147_5_1_4_excluded_aaaa_counts_as_absent() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        r.add_answer(aaaa_rr("a.example.", "::ffff:192.0.2.1", 300));
        assert_eq!(classify_aaaa(&q, &r, &policy_wkp()), AaaaVerdict::QueryA);
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        let m = synth(&q, &r, &a);
        assert_eq!(
            aaaa_addrs(&m),
            vec![(
                "a.example.".into(),
                "64:ff9b::5db8:d822".parse().unwrap(),
                300
            )]
        );
        // One excluded and one real AAAA: the real one wins, alone.
        r.add_answer(aaaa_rr("a.example.", "2001:db8::1", 300));
        match classify_aaaa(&q, &r, &policy_wkp()) {
            AaaaVerdict::RealWithoutExcluded(m) => {
                assert_eq!(
                    aaaa_addrs(&m),
                    vec![("a.example.".into(), "2001:db8::1".parse().unwrap(), 300)]
                );
                assert_eq!((m.id(), m.authentic_data()), (q.id(), false));
            }
            other => panic!("{other:?}"),
        }
        // Only real ones: passed through unchanged.
        let mut real = response(&q, ResponseCode::NoError);
        real.add_answer(aaaa_rr("a.example.", "2001:db8::1", 300));
        assert_eq!(
            classify_aaaa(&q, &real, &policy_wkp()),
            AaaaVerdict::PassThrough(PassReason::RealAaaa)
        );
    }

    #[test]
    fn rfc6147_5_1_4_excluded_aaaa_removed_when_no_a() {
        let q = client("a.example.", RecordType::AAAA);
        let mut r = response(&q, ResponseCode::NoError);
        r.add_answer(aaaa_rr("a.example.", "::ffff:192.0.2.1", 300));
        let a = nodata(&q, None);
        match synthesize(&q, &r, &a, &policy_wkp()) {
            Synthesis::NoData(m) => {
                assert!(m.answers().is_empty());
                assert_eq!(m.response_code(), ResponseCode::NoError);
                assert_eq!(m.id(), q.id());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc6147_5_1_6_synthesizes_one_aaaa_per_a() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        a.add_answer(a_rr("a.example.", "8.8.4.4", 300));
        a.set_recursion_available(true);
        let m = synth(&q, &aaaa, &a);
        assert_eq!(
            aaaa_addrs(&m),
            vec![
                (
                    "a.example.".into(),
                    "64:ff9b::5db8:d822".parse().unwrap(),
                    300
                ),
                (
                    "a.example.".into(),
                    "64:ff9b::808:404".parse().unwrap(),
                    300
                ),
            ]
        );
        assert_eq!(m.id(), q.id());
        assert_eq!(m.queries(), q.message().queries());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.recursion_desired());
        assert!(m.recursion_available());
        assert!(m.name_servers().is_empty());
        assert!(m.additionals().is_empty());
        // It encodes and decodes.
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(back.answers().len(), 2);
    }

    #[test]
    fn rfc6147_5_1_6_cname_chain_kept() {
        let q = client("www.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(cname_rr("www.example.", "cdn.example.net.", 1000));
        a.add_answer(cname_rr("cdn.example.net.", "edge.example.org.", 900));
        a.add_answer(a_rr("edge.example.org.", "1.1.1.1", 60));
        // An A record of an unrelated name is not synthesized.
        a.add_answer(a_rr("other.example.", "192.0.2.10", 60));
        let m = synth(&q, &aaaa, &a);
        let types: Vec<_> = m.answers().iter().map(|r| r.record_type()).collect();
        assert_eq!(
            types,
            vec![RecordType::CNAME, RecordType::CNAME, RecordType::AAAA]
        );
        assert_eq!(m.answers()[0].ttl(), 1000);
        assert_eq!(
            aaaa_addrs(&m),
            vec![(
                "edge.example.org.".into(),
                "64:ff9b::101:101".parse().unwrap(),
                60
            )]
        );
    }

    #[test]
    fn rfc6147_5_1_6_additional_section_not_synthesized() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        a.add_additional(a_rr("ns.example.", "192.0.2.53", 300));
        let m = synth(&q, &aaaa, &a);
        assert!(m.additionals().is_empty());
    }

    #[test]
    fn rfc6147_5_1_6_a_failure_returns_aaaa_response() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        for rcode in [
            ResponseCode::NXDomain,
            ResponseCode::ServFail,
            ResponseCode::NoError,
        ] {
            let a = response(&q, rcode);
            assert_eq!(
                synthesize(&q, &aaaa, &a, &policy_wkp()),
                Synthesis::AaaaResponse
            );
        }
    }

    #[test]
    fn rfc6147_5_1_7_ttl_is_min_of_a_and_soa() {
        let q = client("a.example.", RecordType::AAAA);
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 3600));
        // SOA TTL 120, MINIMUM 900 -> 120.
        let m = synth(&q, &nodata(&q, Some((120, 900))), &a);
        assert_eq!(aaaa_addrs(&m)[0].2, 120);
        // SOA TTL 900, MINIMUM 60 -> 60.
        let m = synth(&q, &nodata(&q, Some((900, 60))), &a);
        assert_eq!(aaaa_addrs(&m)[0].2, 60);
        // A TTL lower than the SOA's.
        let mut a2 = response(&q, ResponseCode::NoError);
        a2.add_answer(a_rr("a.example.", "93.184.216.34", 30));
        let m = synth(&q, &nodata(&q, Some((900, 900))), &a2);
        assert_eq!(aaaa_addrs(&m)[0].2, 30);
    }

    #[test]
    fn rfc6147_5_1_7_ttl_600_without_soa() {
        let q = client("a.example.", RecordType::AAAA);
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 3600));
        let m = synth(&q, &nodata(&q, None), &a);
        assert_eq!(aaaa_addrs(&m)[0].2, 600);
    }

    #[test]
    fn rfc6052_3_1_non_global_ipv4_not_synthesized_under_well_known_prefix() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "10.1.2.3", 300));
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        let m = synth(&q, &aaaa, &a);
        assert_eq!(aaaa_addrs(&m).len(), 1);
        // Only private addresses: the NODATA AAAA response is returned.
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "10.1.2.3", 300));
        a.add_answer(a_rr("a.example.", "127.0.0.1", 300));
        assert_eq!(
            synthesize(&q, &aaaa, &a, &policy_wkp()),
            Synthesis::AaaaResponse
        );
        // A network-specific prefix has no such limit.
        let m = match synthesize(&q, &aaaa, &a, &policy_nsp()) {
            Synthesis::Synthesized(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            aaaa_addrs(&m)[0].1,
            "2001:db8:64::a01:203".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn rfc6147_5_5_ad_bit_cleared() {
        let q = client("a.example.", RecordType::AAAA);
        let mut aaaa = nodata(&q, Some((3600, 3600)));
        aaaa.set_authentic_data(true);
        let mut a = response(&q, ResponseCode::NoError);
        a.set_authentic_data(true).set_authoritative(true);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        let m = synth(&q, &aaaa, &a);
        assert!(!m.authentic_data());
        assert!(!m.authoritative());
    }

    #[test]
    fn rfc8880_7_2_ipv4only_arpa_answered_locally() {
        let q = client("IPv4only.arpa.", RecordType::AAAA);
        let m = match q.plan(&policy_wkp()) {
            Plan::Answer(m) => m,
            other => panic!("{other:?}"),
        };
        let addrs: Vec<_> = aaaa_addrs(&m).into_iter().map(|(_, a, t)| (a, t)).collect();
        assert_eq!(
            addrs,
            vec![
                ("64:ff9b::c000:aa".parse().unwrap(), IPV4ONLY_TTL),
                ("64:ff9b::c000:ab".parse().unwrap(), IPV4ONLY_TTL)
            ]
        );
        let q = client("ipv4only.arpa.", RecordType::A);
        assert!(matches!(q.plan(&policy_wkp()), Plan::Answer(m) if m.answers().len() == 2));
        let mut p = policy_wkp();
        p.answer_ipv4only_arpa = false;
        assert_eq!(
            client("ipv4only.arpa.", RecordType::AAAA).plan(&p),
            Plan::ForwardAaaa
        );
    }

    #[test]
    fn rfc6147_5_2_ranges_synthesized_under_their_own_prefix() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "198.51.100.7", 300));
        a.add_answer(a_rr("a.example.", "93.184.216.34", 300));
        a.add_answer(a_rr("a.example.", "10.0.0.1", 300));
        let mut p = policy_wkp();
        p.prefixes = vec![crate::PrefixRule {
            prefix: policy_nsp().prefix,
            ipv4: vec!["198.51.100.0/24".parse().unwrap()],
        }];
        let m = match synthesize(&q, &aaaa, &a, &p) {
            Synthesis::Synthesized(m) => m,
            other => panic!("{other:?}"),
        };
        let addrs: Vec<Ipv6Addr> = aaaa_addrs(&m).into_iter().map(|(_, a, _)| a).collect();
        // 10.0.0.1 falls to the well-known prefix, which must not carry it.
        assert_eq!(
            addrs,
            vec![
                "2001:db8:64::c633:6407".parse::<Ipv6Addr>().unwrap(),
                "64:ff9b::5db8:d822".parse().unwrap()
            ]
        );
    }

    #[test]
    fn rfc6147_5_1_4_exclude_mapped_addresses_not_synthesized() {
        let q = client("a.example.", RecordType::AAAA);
        let aaaa = nodata(&q, Some((3600, 3600)));
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "192.168.1.1", 300));
        let mut p = policy_nsp();
        assert!(matches!(
            synthesize(&q, &aaaa, &a, &p),
            Synthesis::Synthesized(_)
        ));
        p.exclude_mapped = vec!["192.168.0.0/16".parse().unwrap()];
        // Nothing left to synthesize: the NODATA answer goes to the client.
        assert_eq!(synthesize(&q, &aaaa, &a, &p), Synthesis::AaaaResponse);
        p.exclude_mapped.clear();
        p.mapped = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(synthesize(&q, &aaaa, &a, &p), Synthesis::AaaaResponse);
    }

    #[test]
    fn rfc7050_3_ipv4only_arpa_lists_every_prefix() {
        let mut p = policy_wkp();
        p.prefixes = vec![crate::PrefixRule {
            prefix: policy_nsp().prefix,
            ipv4: vec!["10.0.0.0/8".parse().unwrap()],
        }];
        let q = client("ipv4only.arpa.", RecordType::AAAA);
        let m = ipv4only_answer(&q, &p);
        let addrs: Vec<Ipv6Addr> = aaaa_addrs(&m).into_iter().map(|(_, a, _)| a).collect();
        assert_eq!(
            addrs,
            vec![
                "64:ff9b::c000:aa".parse::<Ipv6Addr>().unwrap(),
                "64:ff9b::c000:ab".parse().unwrap(),
                "2001:db8:64::c000:aa".parse().unwrap(),
                "2001:db8:64::c000:ab".parse().unwrap(),
            ]
        );
        // mapped does not hide the discovery addresses (RFC 7050 §2.2).
        p.mapped = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(ipv4only_answer(&q, &p).answers().len(), 4);
    }

    #[test]
    fn rfc6147_5_1_2_upstream_failure_counts_as_servfail() {
        // The server turns "every upstream timed out" into this reply and
        // classifies it like a SERVFAIL from upstream.
        let q = client("a.example.", RecordType::AAAA);
        let failed = q.error_reply(ResponseCode::ServFail);
        assert_eq!(
            classify_aaaa(&q, &failed, &policy_wkp()),
            AaaaVerdict::QueryA
        );
        let mut a = response(&q, ResponseCode::NoError);
        a.add_answer(a_rr("a.example.", "93.184.216.34", 3600));
        let m = synth(&q, &failed, &a);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(aaaa_addrs(&m)[0].2, TTL_WITHOUT_SOA);
    }
}
