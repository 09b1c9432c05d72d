//! The IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates), as
//! RFC 6052 §3.1 needs it: which IPv4 addresses are not global.

use std::net::Ipv4Addr;

/// True when `addr` may be embedded under the well-known prefix: it is
/// globally reachable per the IANA special-purpose registry, or it is
/// 192.0.0.170 / 192.0.0.171 (RFC 7050 §2.2, RFC 8880).
pub fn allowed_under_well_known(addr: Ipv4Addr) -> bool {
    todo!()
}
