//! Reverse mapping (RFC 6147 §5.3.1): "a DNS64 [...] receiving a PTR query
//! for an address under the prefix [...] could synthesize a CNAME mapping
//! the ip6.arpa namespace to the corresponding in-addr.arpa name."

use crate::policy::Dns64Policy;
use crate::query::ClientQuery;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record};
use ipnet::IpNet;
use std::net::IpAddr;

/// TTL of the synthesized ip6.arpa -> in-addr.arpa CNAME.
pub const REVERSE_CNAME_TTL: u32 = 600;

/// The in-addr.arpa name for a PTR query name that spells a full IPv6
/// address (32 nibbles) under one of the prefixes, or `None`. Only
/// addresses the DNS64 would synthesize are mapped: the embedded IPv4
/// address must go to that same prefix ([`Dns64Policy::prefix_for`]; so,
/// e.g., non-global IPv4 under the well-known prefix is not, RFC 6052 §3.1).
pub fn reverse_target(qname: &Name, policy: &Dns64Policy) -> Option<Name> {
    let IpNet::V6(net) = qname.parse_arpa_name().ok()? else {
        return None;
    };
    if net.prefix_len() != 128 {
        return None;
    }
    let addr = net.addr();
    // Nested prefixes: the most specific one holding the address.
    let prefix = policy
        .all_prefixes()
        .into_iter()
        .filter(|p| p.contains(&addr))
        .max_by_key(|p| p.net().prefix_len())?;
    let v4 = prefix.extract(&addr)?;
    if policy.prefix_for(v4) != Some(prefix) {
        return None;
    }
    Some(Name::from(IpAddr::V4(v4)))
}

/// The reply to a reverse query: a CNAME from the queried ip6.arpa name to
/// `target`, followed by the upstream PTR response's answer and authority
/// sections and its rcode (RFC 6147 §5.3.1, RFC 6604 for the rcode of a
/// chain). Additional section empty, AD clear.
pub fn reverse_answer(query: &ClientQuery, target: &Name, ptr_response: &Message) -> Message {
    let mut reply = query.reply_skeleton();
    reply
        .set_response_code(ptr_response.response_code())
        .set_recursion_available(ptr_response.recursion_available());
    reply.add_answer(Record::from_rdata(
        query.question().name().clone(),
        REVERSE_CNAME_TTL,
        RData::CNAME(CNAME(target.clone())),
    ));
    reply.add_answers(ptr_response.answers().iter().cloned());
    reply.add_name_servers(ptr_response.name_servers().iter().cloned());
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Plan;
    use crate::testutil::*;
    use crate::PassReason;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::RecordType;
    use std::net::Ipv6Addr;

    fn ptr_name(addr: &str) -> String {
        Name::from(IpAddr::V6(addr.parse::<Ipv6Addr>().unwrap())).to_string()
    }

    #[test]
    fn rfc6147_5_3_1_ptr_under_prefix_maps_to_in_addr_arpa() {
        let q = client(&ptr_name("64:ff9b::5db8:d822"), RecordType::PTR);
        let target = match q.plan(&policy_wkp()) {
            Plan::Reverse { target } => target,
            other => panic!("{other:?}"),
        };
        assert_eq!(target, name("34.216.184.93.in-addr.arpa."));
        let mut ptr = response(&q, ResponseCode::NoError);
        ptr.add_answer(Record::from_rdata(
            target.clone(),
            3600,
            RData::PTR(PTR(name("host.example."))),
        ));
        let m = reverse_answer(&q, &target, &ptr);
        assert_eq!(m.id(), q.id());
        assert_eq!(m.queries(), q.message().queries());
        let types: Vec<_> = m.answers().iter().map(|r| r.record_type()).collect();
        assert_eq!(types, vec![RecordType::CNAME, RecordType::PTR]);
        assert_eq!(m.answers()[0].name(), q.question().name());
    }

    #[test]
    fn rfc6147_5_3_1_nxdomain_of_in_addr_arpa_kept() {
        let q = client(&ptr_name("64:ff9b::5db8:d822"), RecordType::PTR);
        let target = name("34.216.184.93.in-addr.arpa.");
        let ptr = response(&q, ResponseCode::NXDomain);
        let m = reverse_answer(&q, &target, &ptr);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(m.answers().len(), 1);
    }

    #[test]
    fn rfc6147_5_3_1_other_ptr_passes_through() {
        // Outside the prefix.
        let q = client(&ptr_name("2001:db8::1"), RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::NotAaaa));
        // Not a full address.
        let q = client("b.9.f.f.4.6.0.0.ip6.arpa.", RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::NotAaaa));
        // in-addr.arpa.
        let q = client("34.216.184.93.in-addr.arpa.", RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::NotAaaa));
        // Non-global IPv4 under the well-known prefix (RFC 6052 §3.1).
        let q = client(&ptr_name("64:ff9b::a00:1"), RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward(PassReason::NotAaaa));
        // Turned off.
        let mut p = policy_wkp();
        p.reverse = false;
        let q = client(&ptr_name("64:ff9b::5db8:d822"), RecordType::PTR);
        assert_eq!(q.plan(&p), Plan::Forward(PassReason::NotAaaa));
    }

    #[test]
    fn rfc6147_5_3_1_network_specific_prefix() {
        let q = client(&ptr_name("2001:db8:64::a00:1"), RecordType::PTR);
        assert_eq!(
            q.plan(&policy_nsp()),
            Plan::Reverse {
                target: name("1.0.0.10.in-addr.arpa.")
            }
        );
    }
}
