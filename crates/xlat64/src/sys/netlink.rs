//! Routes to the TUN device over rtnetlink, their restoration when the
//! kernel drops them, and their removal at shutdown.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
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
        match add_route(&self.handle, self.ifindex, net).await {
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

/// Adds the route `net` -> the device `ifindex` (failing if one exists).
async fn add_route(handle: &Handle, ifindex: u32, net: IpNet) -> Result<(), rtnetlink::Error> {
    match net {
        IpNet::V4(n) => handle.route().add(v4_route(n, ifindex)).execute().await,
        IpNet::V6(n) => handle.route().add(v6_route(n, ifindex)).execute().await,
    }
}

impl RouteSet {
    /// Watches the routes this set added until `stop`. It listens to the
    /// kernel's link and route notifications (rtnetlink multicast groups);
    /// when one concerns the device (a route through it deleted, the link
    /// changed) or notifications were lost, and every [`WATCH_INTERVAL`]
    /// besides, it asks the kernel to add each route again: "exists" means
    /// it is still there, success means the kernel had dropped it (the
    /// device was set down and up, which removes its routes) and it is back,
    /// logged once. While the device is down the kernel refuses, and the
    /// link coming up triggers the next round.
    pub fn watch(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> {
        let (handle, ifindex, routes) = (self.handle.clone(), self.ifindex, self.added.clone());
        async move {
            let mut events = match subscribe() {
                Ok(events) => Some(events),
                Err(e) => {
                    tracing::warn!(error = %e, interval = ?WATCH_INTERVAL, "cannot listen to route changes; checking the routes periodically only");
                    None
                }
            };
            let mut missing_logged = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                    event = next_event(&mut events) => {
                        if !concerns(&event, ifindex) {
                            continue;
                        }
                    }
                }
                let mut down = false;
                for &net in &routes {
                    match add_route(&handle, ifindex, net).await {
                        Ok(()) => {
                            tracing::warn!(%net, "route to the TUN device was gone (device set down?); restored")
                        }
                        Err(e) if is_exists(&e) => {}
                        Err(e) => {
                            down = true;
                            if !missing_logged {
                                tracing::warn!(%net, error = %e, "route to the TUN device is gone and cannot be restored yet (device down?); retrying");
                            }
                        }
                    }
                }
                missing_logged = down;
            }
        }
    }
}

/// How often [`RouteSet::watch`] checks the routes without a notification
/// (in case notifications were lost or cannot be had).
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A notification from the kernel's link and route groups, or the end of
/// them (the listening connection closed).
type Event = Option<NetlinkMessage<RouteNetlinkMessage>>;

/// A netlink connection subscribed to link and route changes: its handle
/// (kept so that the connection lives) and its notifications.
type Subscription = (
    Handle,
    futures::channel::mpsc::UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
);

/// Subscribes to the kernel's link and route changes.
fn subscribe() -> std::io::Result<Subscription> {
    use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK};
    use rtnetlink::sys::{AsyncSocket, SocketAddr};
    let (mut conn, handle, messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(conn);
    Ok((handle, messages))
}

/// The next notification; never, without a subscription or after it ended.
async fn next_event(events: &mut Option<Subscription>) -> Event {
    use futures::StreamExt;
    let Some((_, rx)) = events.as_mut() else {
        return std::future::pending().await;
    };
    let event = rx.next().await.map(|(m, _)| m);
    if event.is_none() {
        tracing::warn!(interval = ?WATCH_INTERVAL, "route change notifications ended; checking the routes periodically only");
        *events = None;
    }
    event
}

/// Whether a notification may mean a route of ours is gone or can be put
/// back: a route through the device deleted, the device's link changed, or
/// notifications lost (the socket's buffer overran).
fn concerns(event: &Event, ifindex: u32) -> bool {
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::route::RouteAttribute;
    let Some(message) = event else {
        return false;
    };
    match &message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => r
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == ifindex)),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => l.header.index == ifindex,
        NetlinkPayload::Overrun(_) | NetlinkPayload::Error(_) => true,
        _ => false,
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
