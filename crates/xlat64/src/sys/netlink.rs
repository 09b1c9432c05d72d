//! Routes to the TUN device over rtnetlink, and their removal at shutdown.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Routes this process added, so that exactly those are removed at shutdown.
pub struct RouteSet {
    handle: Handle,
    ifindex: u32,
    added: Vec<IpNet>,
}

impl RouteSet {
    /// Opens a netlink connection (its task runs on the current tokio runtime).
    pub fn new(ifindex: u32) -> std::io::Result<RouteSet> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(RouteSet {
            handle,
            ifindex,
            added: Vec::new(),
        })
    }

    /// Routes `net` to the device. An existing route to `net` is an error:
    /// replacing it silently could hide a configuration mistake.
    pub async fn add(&mut self, net: IpNet) -> Result<(), String> {
        let result = match net {
            IpNet::V4(n) => {
                self.handle
                    .route()
                    .add(v4_route(n, self.ifindex))
                    .execute()
                    .await
            }
            IpNet::V6(n) => {
                self.handle
                    .route()
                    .add(v6_route(n, self.ifindex))
                    .execute()
                    .await
            }
        };
        match result {
            Ok(()) => {
                self.added.push(net);
                Ok(())
            }
            Err(e) if is_exists(&e) => Err(format!(
                "a route to {net} already exists (see `ip route show {net}`); remove it or change the configuration"
            )),
            Err(e) => Err(format!("cannot add route to {net}: {e}")),
        }
    }

    /// Removes the routes this set added, in reverse order; failures are logged.
    pub async fn remove_all(&mut self) {
        while let Some(net) = self.added.pop() {
            let result = match net {
                IpNet::V4(n) => {
                    self.handle
                        .route()
                        .del(v4_route(n, self.ifindex))
                        .execute()
                        .await
                }
                IpNet::V6(n) => {
                    self.handle
                        .route()
                        .del(v6_route(n, self.ifindex))
                        .execute()
                        .await
                }
            };
            match result {
                Ok(()) => tracing::info!(%net, "route removed"),
                // The device may already be gone, taking its routes with it.
                Err(e) => tracing::debug!(%net, error = %e, "route removal"),
            }
        }
    }
}

fn v4_route(n: Ipv4Net, ifindex: u32) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(n.network(), n.prefix_len())
        .output_interface(ifindex)
        .build()
}

fn v6_route(n: Ipv6Net, ifindex: u32) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(n.network(), n.prefix_len())
        .output_interface(ifindex)
        .build()
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}
