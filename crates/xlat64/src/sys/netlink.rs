//! Routes to the TUN device over rtnetlink, their restoration when the
//! kernel drops them, and their removal at shutdown.

use ipnet::IpNet;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Routes this process added, so that exactly those are removed at shutdown.
pub struct RouteSet {
    handle: Handle,
    ifindex: u32,
    /// Each route with its routing table (`RT_TABLE_MAIN` for most);
    /// shared with [`RouteSet::watch`], which restores what it lists.
    added: Arc<Mutex<Vec<(IpNet, u32)>>>,
}

/// The kernel's main routing table.
pub const MAIN_TABLE: u32 = 254;

impl RouteSet {
    /// Opens a netlink connection (its task runs on the current tokio runtime).
    pub fn new(ifindex: u32) -> std::io::Result<RouteSet> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(RouteSet {
            handle,
            ifindex,
            added: Arc::default(),
        })
    }

    /// Routes `net` to the device. An existing route to `net` is an error:
    /// replacing it silently could hide a configuration mistake.
    pub async fn add(&mut self, net: IpNet) -> Result<(), String> {
        self.add_in(net, MAIN_TABLE).await
    }

    /// Routes `net` to the device in routing table `table`.
    pub async fn add_in(&mut self, net: IpNet, table: u32) -> Result<(), String> {
        match add_route(&self.handle, self.ifindex, net, table).await {
            Ok(()) => {
                self.listed().push((net, table));
                Ok(())
            }
            Err(e) if is_exists(&e) => Err(format!(
                "a route to {net} already exists in table {table} (see `ip route show table {table} {net}`); remove it or change the configuration"
            )),
            Err(e) => Err(format!("cannot add route to {net} in table {table}: {e}")),
        }
    }

    /// The netlink handle (for the policy rules of shared addresses).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Whether this set routes `net` (in any table).
    pub fn has(&self, net: IpNet) -> bool {
        self.listed().iter().any(|(n, _)| *n == net)
    }

    /// Removes the route to `net` this set added (a pool4 entry drained
    /// after a reload), first from the list the watch restores.
    pub async fn remove(&mut self, net: IpNet) {
        let entry = {
            let mut listed = self.listed();
            let at = listed.iter().position(|(n, _)| *n == net);
            at.map(|at| listed.remove(at))
        };
        if let Some((net, table)) = entry {
            self.delete(net, table).await;
        }
    }

    /// Removes the routes this set added, in reverse order; failures are logged.
    pub async fn remove_all(&mut self) {
        loop {
            let Some((net, table)) = self.listed().pop() else {
                break;
            };
            self.delete(net, table).await;
        }
    }

    async fn delete(&self, net: IpNet, table: u32) {
        let result = self
            .handle
            .route()
            .del(route(net, self.ifindex, table))
            .execute()
            .await;
        match result {
            Ok(()) => tracing::info!(%net, "route removed"),
            // The device may already be gone, taking its routes with it.
            Err(e) => tracing::debug!(%net, error = %e, "route removal"),
        }
    }

    /// The routes added, locked (never across an await).
    fn listed(&self) -> std::sync::MutexGuard<'_, Vec<(IpNet, u32)>> {
        self.added.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds the route `net` -> the device `ifindex` in `table` (failing if one
/// exists).
async fn add_route(
    handle: &Handle,
    ifindex: u32,
    net: IpNet,
    table: u32,
) -> Result<(), rtnetlink::Error> {
    handle
        .route()
        .add(route(net, ifindex, table))
        .execute()
        .await
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
        let (handle, ifindex, listed) = (self.handle.clone(), self.ifindex, self.added.clone());
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
                // What is listed now: a reload adds and removes routes.
                let routes = listed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for &(net, table) in &routes {
                    match add_route(&handle, ifindex, net, table).await {
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

/// The route `net` -> the device `ifindex` in `table`.
fn route(net: IpNet, ifindex: u32, table: u32) -> rtnetlink::packet_route::route::RouteMessage {
    match net {
        IpNet::V4(n) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(n.network(), n.prefix_len())
            .output_interface(ifindex)
            .table_id(table)
            .build(),
        IpNet::V6(n) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(n.network(), n.prefix_len())
            .output_interface(ifindex)
            .table_id(table)
            .build(),
    }
}

/// Whether a netlink request failed because what it adds exists (EEXIST).
pub fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}
