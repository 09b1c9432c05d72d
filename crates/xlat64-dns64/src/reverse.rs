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
use xlat64_packet::special::allowed_under_well_known;

/// TTL of the synthesized ip6.arpa -> in-addr.arpa CNAME.
pub const REVERSE_CNAME_TTL: u32 = 600;

/// The in-addr.arpa name for a PTR query name that spells a full IPv6
/// address (32 nibbles) under the prefix, or `None`. Under the well-known
/// prefix, non-global IPv4 addresses are not mapped (RFC 6052 §3.1).
pub fn reverse_target(qname: &Name, policy: &Dns64Policy) -> Option<Name> {
    let IpNet::V6(net) = qname.parse_arpa_name().ok()? else {
        return None;
    };
    if net.prefix_len() != 128 || !policy.prefix.contains(&net.addr()) {
        return None;
    }
    let v4 = policy.prefix.extract(&net.addr())?;
    if policy.prefix.is_well_known() && !allowed_under_well_known(v4) {
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
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward);
        // Not a full address.
        let q = client("b.9.f.f.4.6.0.0.ip6.arpa.", RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward);
        // in-addr.arpa.
        let q = client("34.216.184.93.in-addr.arpa.", RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward);
        // Non-global IPv4 under the well-known prefix (RFC 6052 §3.1).
        let q = client(&ptr_name("64:ff9b::a00:1"), RecordType::PTR);
        assert_eq!(q.plan(&policy_wkp()), Plan::Forward);
        // Turned off.
        let mut p = policy_wkp();
        p.reverse = false;
        let q = client(&ptr_name("64:ff9b::5db8:d822"), RecordType::PTR);
        assert_eq!(q.plan(&p), Plan::Forward);
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
