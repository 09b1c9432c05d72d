//! What the gateway host itself holds: its networks (IPv4 ones are never a
//! translation destination; `check` refuses a pool4 or prefix that
//! overlaps them) and the IPv6 address it answers clients from (the source
//! of the ICMPv6 errors it sends). Read once at start.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The IPv4 addresses of every interface with their prefix lengths.
pub fn ipv4_networks() -> io::Result<Vec<Ipv4Net>> {
    Ok(networks()?
        .into_iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        })
        .collect())
}

/// The addresses of every interface, both families, with their prefix
/// lengths (getifaddrs(3); std has no interface listing, and rtnetlink's
/// address dump would need the async runtime here for one read at start).
pub fn networks() -> io::Result<Vec<IpNet>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut nets = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if let (Some(addr), Some(mask)) = (sockaddr_v4(ifa.ifa_addr), sockaddr_v4(ifa.ifa_netmask))
        {
            let len = u32::from(mask).leading_ones() as u8;
            if let Ok(net) = Ipv4Net::new(addr, len) {
                nets.push(IpNet::V4(net));
            }
        }
        if let (Some(addr), Some(mask)) = (sockaddr_v6(ifa.ifa_addr), sockaddr_v6(ifa.ifa_netmask))
        {
            let len = u128::from(mask).leading_ones() as u8;
            if let Ok(net) = Ipv6Net::new(addr, len) {
                nets.push(IpNet::V6(net));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(nets)
}

fn sockaddr_v4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null sockaddr from getifaddrs; its family says its type.
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET {
            return None;
        }
        let sin = &*(sa as *const libc::sockaddr_in);
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}

fn sockaddr_v6(sa: *const libc::sockaddr) -> Option<Ipv6Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null sockaddr from getifaddrs; its family says its type.
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET6 {
            return None;
        }
        let sin6 = &*(sa as *const libc::sockaddr_in6);
        Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
    }
}

/// The kernel's local port range (`net.ipv4.ip_local_port_range`), from
/// which the host's own connections take their ports; `None` if unreadable.
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut words = text.split_whitespace().map(|w| w.parse::<u16>().ok());
    Some((words.next()??, words.next()??))
}

/// The address the kernel would send from towards `towards` (source
/// address selection, RFC 6724), without sending anything: a connected UDP
/// socket's local address.
pub fn source_towards(towards: Ipv6Addr) -> Option<Ipv6Addr> {
    let socket = UdpSocket::bind("[::]:0").ok()?;
    socket
        .connect(SocketAddr::new(IpAddr::V6(towards), 9))
        .ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V6(a) if !a.is_unspecified() && !a.is_loopback() => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_port_range_is_read() {
        let (lo, hi) = local_port_range().expect("readable");
        assert!(lo <= hi);
    }

    #[test]
    fn loopback_network_is_listed() {
        let nets = ipv4_networks().unwrap();
        assert!(
            nets.iter().any(|n| n.addr() == Ipv4Addr::LOCALHOST),
            "{nets:?}"
        );
    }
}
