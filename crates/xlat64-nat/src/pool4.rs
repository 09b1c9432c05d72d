//! The IPv4 transport addresses shared by all clients (RFC 6146 §3.5.1.1).

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Pool of IPv4 addresses; each address offers ports 1024..=65535 for TCP
/// and UDP and identifiers 0..=65535 for ICMP.
#[derive(Debug, Clone)]
pub struct Pool4 {
    addrs: Vec<Ipv4Addr>,
}

impl Pool4 {
    /// Builds a pool from prefixes (a single address is a /32). Empty input is an error.
    pub fn new(nets: &[Ipv4Net]) -> Result<Self, &'static str> {
        todo!()
    }

    /// Whether `addr` belongs to the pool.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        todo!()
    }

    /// The addresses in the pool.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }
}
