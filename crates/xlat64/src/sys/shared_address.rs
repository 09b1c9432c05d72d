//! A pool4 address the gateway host holds itself (a small site's one uplink
//! address), shared with the host by port range: policy routing rules,
//! installed and removed here, send the NAT's share of the replies to the
//! TUN device instead of local delivery.
//!
//! For each shared address A with range F-L, in the IPv4 rule list, before
//! the `local` table's rule (which delivers everything addressed to the
//! host):
//!
//! ```text
//! 0:  from all iif <tun> lookup local                        (1)
//! 0:  from all to A ipproto tcp dport F-L lookup 6464        (2)
//! 0:  from all to A ipproto udp dport F-L lookup 6464
//! 0:  from all to A ipproto icmp lookup 6464                 (3)
//! 0:  from all lookup local                                  (moved behind)
//! table 6464: A dev <tun>
//! ```
//!
//! (1) What the NAT writes back into the device for the host (the ICMP
//! messages it does not claim, [`xlat64_nat::Verdict::ToHost`]) is
//! delivered locally, not steered round again. (3) Rules cannot match ICMP
//! identifiers, so every ICMP message to A goes to the NAT, which keeps
//! what its bindings claim (replies to clients' pings, errors about their
//! sessions) and gives the rest back through (1): the host's own pings and
//! the errors about its own connections (path MTU discovery) still work.
//!
//! The rules carry the protocol number [`RULE_PROTOCOL`] (`proto 64` in
//! `ip rule`), so that the rules of a daemon that was killed are found and
//! removed at the next start. Left behind, they are harmless: table 6464
//! is empty without the device, and lookups fall through to `local`.
//!
//! The kernel also needs `accept_local` on the device (translated packets
//! come out of it with the host's own address as source), and reverse-path
//! filtering off or loose there.

use crate::config::SharedAddress;
use futures::TryStreamExt;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, IpVersion};

/// The routing table holding the routes of shared addresses to the device.
pub const ROUTE_TABLE: u32 = 6464;
/// The protocol number of the rules this module installs.
pub const RULE_PROTOCOL: u8 = 64;
/// The kernel's `local` routing table.
const LOCAL_TABLE: u32 = 255;
/// IANA protocol numbers the rules match.
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The rules installed for the shared addresses, removed by
/// [`SharedRules::remove`].
pub struct SharedRules {
    handle: Handle,
    installed: Vec<RuleMessage>,
}

impl SharedRules {
    /// Installs the rules for `shared` (non-empty) on device `tun`, and
    /// the device settings they need. The routes to the device in
    /// [`ROUTE_TABLE`] are the caller's (they are restored with the others
    /// when the device goes down and up).
    pub async fn install(
        handle: Handle,
        tun: &str,
        shared: &[SharedAddress],
    ) -> Result<SharedRules, String> {
        set_device_sysctls(tun)?;
        remove_stale(&handle).await;
        let mut rules = SharedRules {
            handle,
            installed: Vec::new(),
        };
        let ours: Vec<RuleMessage> = our_rules(tun, shared)
            .into_iter()
            .map(|r| at(r, 0))
            .collect();
        let local_first = rules.local_rule_at_zero().await?.map(|r| at(r, 0));
        if let Some(local) = &local_first {
            // The `local` rule moves behind ours without a moment with no
            // `local` rule at all: a copy at priority 1 first.
            let copy = at(local.clone(), 1);
            rules.add(copy.clone()).await?;
            let moved = async {
                rules.del(local.clone()).await?;
                for rule in &ours {
                    rules.add(rule.clone()).await?;
                    rules.installed.push(rule.clone());
                }
                // Same priority, added after ours: behind them.
                rules.add(local.clone()).await
            }
            .await;
            if moved.is_err() {
                let _ = rules.add(local.clone()).await;
            }
            rules.del(copy).await?;
            moved?;
        } else {
            // `local` is already behind priority 0 (moved by the
            // administrator, as VRF setups do): ours go first.
            for rule in &ours {
                rules.add(rule.clone()).await?;
                rules.installed.push(rule.clone());
            }
        }
        Ok(rules)
    }

    /// Removes the installed rules; the `local` rule stays first again.
    pub async fn remove(&mut self) {
        while let Some(rule) = self.installed.pop() {
            if let Err(e) = self.handle.rule().del(rule).execute().await {
                tracing::warn!(error = %e, "cannot remove a policy rule of a shared pool4 address");
            }
        }
        tracing::info!("policy rules of shared pool4 addresses removed");
    }

    /// The `local` table's rule at priority 0, as the kernel installs it,
    /// if it is there.
    async fn local_rule_at_zero(&self) -> Result<Option<RuleMessage>, String> {
        let all: Vec<RuleMessage> = self
            .handle
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(|e| format!("cannot list the IPv4 policy rules: {e}"))?;
        let present = all
            .iter()
            .any(|r| table_of(r) == LOCAL_TABLE && priority_of(r) == 0 && selects_all(r));
        Ok(present.then(|| {
            let mut rule = base_rule();
            rule.header.table = LOCAL_TABLE as u8;
            rule.attributes
                .push(RuleAttribute::Protocol(RouteProtocol::Kernel));
            rule
        }))
    }

    async fn add(&self, rule: RuleMessage) -> Result<(), String> {
        let mut request = self.handle.rule().add();
        *request.message_mut() = rule;
        request
            .execute()
            .await
            .map_err(|e| format!("cannot add a policy rule for a shared pool4 address: {e}"))
    }

    async fn del(&self, rule: RuleMessage) -> Result<(), String> {
        self.handle
            .rule()
            .del(rule)
            .execute()
            .await
            .map_err(|e| format!("cannot remove a policy rule: {e}"))
    }
}

/// An IPv4 rule "lookup table", priority 0, no selectors yet.
fn base_rule() -> RuleMessage {
    let mut rule = RuleMessage::default();
    rule.header.family = AddressFamily::Inet;
    rule.header.action = RuleAction::ToTable;
    rule
}

/// `rule` at priority `pref`, explicitly: without one, the kernel would
/// choose one behind the first rule.
fn at(mut rule: RuleMessage, pref: u32) -> RuleMessage {
    rule.attributes
        .retain(|a| !matches!(a, RuleAttribute::Priority(_)));
    rule.attributes.push(RuleAttribute::Priority(pref));
    rule
}

/// The rules for `shared` on device `tun`, in order.
fn our_rules(tun: &str, shared: &[SharedAddress]) -> Vec<RuleMessage> {
    let tagged = |mut rule: RuleMessage| {
        rule.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::Other(RULE_PROTOCOL)));
        rule
    };
    let mut back = base_rule();
    back.header.table = LOCAL_TABLE as u8;
    back.attributes
        .push(RuleAttribute::Iifname(tun.to_string()));
    let mut rules = vec![tagged(back)];
    for s in shared {
        for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP] {
            let mut rule = base_rule();
            rule.header.dst_len = 32;
            rule.attributes.push(RuleAttribute::Table(ROUTE_TABLE));
            rule.attributes
                .push(RuleAttribute::Destination(s.addr.into()));
            rule.attributes
                .push(RuleAttribute::IpProtocol(proto.into()));
            if proto != PROTO_ICMP {
                rule.attributes
                    .push(RuleAttribute::DestinationPortRange(RulePortRange {
                        start: *s.ports.start(),
                        end: *s.ports.end(),
                    }));
            }
            rules.push(tagged(rule));
        }
    }
    rules
}

/// Removes the rules a daemon that did not stop cleanly left behind.
async fn remove_stale(handle: &Handle) {
    let stale: Vec<RuleMessage> = match handle
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
    {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the IPv4 policy rules");
            return;
        }
    };
    for rule in stale.into_iter().filter(|r| {
        r.attributes
            .contains(&RuleAttribute::Protocol(RouteProtocol::Other(
                RULE_PROTOCOL,
            )))
    }) {
        match handle.rule().del(rule).execute().await {
            Ok(()) => tracing::info!("removed a policy rule left by an earlier run"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove a policy rule left by an earlier run")
            }
        }
    }
}

fn table_of(r: &RuleMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn priority_of(r: &RuleMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

/// Whether a rule matches every packet (no address, interface, mark or
/// protocol selector): the kernel's default rules.
fn selects_all(r: &RuleMessage) -> bool {
    r.header.src_len == 0
        && r.header.dst_len == 0
        && !r.attributes.iter().any(|a| {
            matches!(
                a,
                RuleAttribute::Destination(_)
                    | RuleAttribute::Source(_)
                    | RuleAttribute::Iifname(_)
                    | RuleAttribute::Oifname(_)
                    | RuleAttribute::FwMark(_)
                    | RuleAttribute::TunId(_)
                    | RuleAttribute::L3MDev(true)
                    | RuleAttribute::UidRange(_)
                    | RuleAttribute::IpProtocol(_)
                    | RuleAttribute::SourcePortRange(_)
                    | RuleAttribute::DestinationPortRange(_)
            )
        })
}

/// `accept_local` on the device, and reverse-path filtering off there;
/// a warning when strict filtering for all devices overrides that.
fn set_device_sysctls(tun: &str) -> Result<(), String> {
    for (key, value) in [("accept_local", "1"), ("rp_filter", "0")] {
        let path = format!("/proc/sys/net/ipv4/conf/{tun}/{key}");
        std::fs::write(&path, value).map_err(|e| format!("cannot set {path} to {value}: {e}"))?;
    }
    if std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter")
        .is_ok_and(|v| v.trim() == "1")
    {
        tracing::warn!("net.ipv4.conf.all.rp_filter = 1 (strict) overrides the TUN device's setting: the kernel drops what the NAT sends from a shared pool4 address; set it to 2 (loose) or 0");
    }
    Ok(())
}
