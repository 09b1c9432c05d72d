//! `xlat64 run`: sets up the TUN device, routes, DNS64 server and control
//! socket, runs until SIGTERM/SIGINT, then removes what it set up.

use crate::binding_log::BindingLog;
use crate::config::{self, Config};
use crate::control::{self, ControlState};
use crate::datapath::{device, Datapath};
use crate::dns64::{Dns64Reloader, Dns64Server};
use crate::sys::host_addrs;
use crate::sys::netlink::RouteSet;
use crate::sys::shared_address::{SharedRules, ROUTE_TABLE};
use ipnet::IpNet;
use std::io;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use xlat64_nat::Nat64Config;

/// Runs the daemon; returns the process exit code (0 after a clean stop).
pub fn run(config: Config, file: Option<PathBuf>) -> i32 {
    // The lifecycle (signals, reload, routes) and DNS64 over TCP: a
    // current-thread runtime, on this thread, so that the thread that
    // drops privileges and keeps CAP_NET_ADMIN for the exit is the one that
    // removes the routes. DNS64 over UDP has threads of its own
    // (`runtime.io-threads`, dns64/udp_threads.rs), the packet path too.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let mut running = Running::default();
        let (died_tx, mut died) = mpsc::unbounded_channel();
        let (reload_tx, mut reloads) = mpsc::unbounded_channel::<oneshot::Sender<ReloadOutcome>>();
        let mut started = running.start(&config, died_tx, reload_tx).await;
        if let (Ok(()), Some(user)) = (&started, &config.runtime.user) {
            started = running.drop_privileges(user);
        }
        let code = match started {
            Ok(()) => {
                tracing::info!("xlat64 running; SIGTERM or SIGINT stops it, SIGHUP (or xlat64 reload) reloads the configuration and reopens the binding log");
                let mut hangup = match signal(SignalKind::hangup()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: cannot wait for signals: {e}");
                        running.stop().await;
                        return 1;
                    }
                };
                let mut drain_check = tokio::time::interval(DRAIN_CHECK);
                loop {
                    tokio::select! {
                        _ = drain_check.tick(), if !running.draining.is_empty() => {
                            running.end_drained().await;
                        }
                        _ = hangup.recv() => {
                            if let Some(log) = &running.binding_log {
                                log.reopen();
                                tracing::info!("SIGHUP: reopening the binding log");
                            }
                            let outcome = running.reload(&file).await;
                            log_reload("SIGHUP", &outcome);
                        }
                        Some(reply) = reloads.recv() => {
                            let outcome = running.reload(&file).await;
                            log_reload("xlat64 reload", &outcome);
                            let _ = reply.send(outcome);
                        }
                        signalled = wait_for_signal() => break match signalled {
                            Ok(name) => {
                                tracing::info!(signal = name, "stopping");
                                0
                            }
                            Err(e) => {
                                eprintln!("error: cannot wait for signals: {e}");
                                1
                            }
                        },
                        // Never half alive: a dead part stops the whole daemon,
                        // so that a supervisor restarts it.
                        Some(why) = died.recv() => {
                            tracing::error!("{why}; stopping, removing routes, exiting with status 1");
                            eprintln!("error: {why}");
                            break 1;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
        running.stop().await;
        code
    })
}

/// What `start` set up, so that `stop` removes exactly that, also after a
/// failed start.
#[derive(Default)]
struct Running {
    shutdown: CancellationToken,
    routes: Option<RouteSet>,
    /// The policy rules of pool4 addresses shared with the host.
    shared_rules: Option<SharedRules>,
    datapath: Option<Datapath>,
    binding_log: Option<BindingLog>,
    /// The control socket and the directory created for it.
    control: Option<(PathBuf, Option<PathBuf>)>,
    control_thread: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The configuration in force, and the NAT64's as the workers got it
    /// (the base a reload changes).
    config: Option<Config>,
    nat_config: Option<Nat64Config>,
    /// Changes the running DNS64 server's settings on a reload.
    dns64: Option<Dns64Reloader>,
    /// pool4 entries a reload removed whose route stays until none of
    /// their draining addresses holds a binding.
    draining: Vec<ipnet::Ipv4Net>,
}

/// How often draining pool4 entries are checked for their last binding.
const DRAIN_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// A pool4 change a reload will apply: the pool as the NAT will hold it,
/// entries to route, entries to drain.
struct Pool4Change {
    pool: xlat64_nat::Pool4,
    route: Vec<ipnet::Ipv4Net>,
    drain: Vec<ipnet::Ipv4Net>,
}

/// The NAT64 settings a reload may change ([`config::LIVE_KEYS`]), from
/// `section` into `nat`; at start too, so that both ways agree.
fn apply_live(nat: &mut Nat64Config, section: &config::Nat64Section) {
    nat.timeouts = section.timeouts.to_timeouts();
    nat.lowest_ipv6_mtu = section.lowest_ipv6_mtu;
    nat.rfc6791_v4 = section.rfc6791_v4.clone();
    nat.icmp_errors_per_second = section.icmp_errors_per_second;
    nat.max_sessions = section.limits.max_sessions();
    nat.mss_clamp = section.mss_clamp();
    nat.filtering = section.filtering.to_nat();
    nat.drop_external_tcp = section.drop_externally_initiated_tcp;
    nat.max_simultaneous_opens = section.limits.max_simultaneous_opens;
    nat.max_sessions_per_client = config::limit(section.limits.max_sessions_per_client);
    nat.max_ports_per_client = config::limit(section.limits.max_ports_per_client);
    nat.max_new_bindings_per_client = config::limit(section.limits.max_new_bindings_per_second);
    nat.port_reuse_delay = std::time::Duration::from_secs(section.port_reuse_delay);
    nat.denied = section
        .deny_destinations
        .iter()
        .map(|d| d.to_nat())
        .collect();
}

/// What a reload did: the keys it applied (empty: nothing changed), or why
/// it applied nothing.
pub type ReloadOutcome = Result<Vec<String>, String>;

impl Running {
    /// `[runtime] user`: hands the control socket (and the directory made
    /// for it) to the user, then becomes it, keeping `CAP_NET_ADMIN` on
    /// this thread only (the routes and rules come off at exit).
    fn drop_privileges(&mut self, user: &str) -> Result<(), String> {
        let (uid, gid) = crate::sys::process::lookup_user(user)?;
        if let Some((socket, dir)) = &self.control {
            for path in std::iter::once(socket).chain(dir.as_ref()) {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
                    format!(
                        "runtime.user {user}: cannot hand {} over: {e}",
                        path.display()
                    )
                })?;
            }
        }
        crate::sys::process::drop_to_user(user)?;
        tracing::info!(
            user,
            uid,
            gid,
            "running as {user}, with CAP_NET_ADMIN kept for the exit only"
        );
        Ok(())
    }

    /// Re-reads the configuration (`file`, else the embedded defaults) and
    /// applies what may change while running; refuses, changing nothing,
    /// an invalid file or a change to any other key.
    async fn reload(&mut self, file: &Option<PathBuf>) -> ReloadOutcome {
        let loaded = match file {
            Some(path) => Config::load(path),
            None => Config::embedded_defaults(),
        };
        let new = loaded.map_err(|e| format!("{e} (nothing was applied)"))?;
        let host = host_addrs::networks().unwrap_or_default();
        new.check_host(&host)
            .map_err(|e| format!("{e} (nothing was applied)"))?;
        let Some(old) = &self.config else {
            return Err("not running yet".into());
        };
        let changed = old.live_changes(&new).map_err(|e| e.to_string())?;
        if changed.is_empty() {
            return Ok(changed);
        }
        let unapplied = |e: String| format!("{e} (nothing was applied)");
        // Everything is checked (and what can fail prepared) before
        // anything is applied, so that a refusal applies nothing.
        let pool4 = match changed.iter().any(|k| k == "nat64.pool4") {
            true => Some(self.plan_pool4(old, &new, &host).map_err(unapplied)?),
            false => None,
        };
        let dns64 = match (&self.dns64, &new.dns64) {
            (Some(server), Some(section)) if changed.iter().any(|k| k.starts_with("dns64.")) => {
                Some(server.prepare(section).map_err(unapplied)?)
            }
            _ => None,
        };
        let log_target = match changed.iter().any(|k| k == "nat64.log.bindings") {
            true => {
                let target = new.nat64.as_ref().and_then(|n| n.log.bindings_target());
                match (&self.binding_log, target) {
                    (Some(_), Some(target)) => {
                        let out = crate::binding_log::open(&target).map_err(unapplied)?;
                        Some((target, out))
                    }
                    _ => {
                        return Err(unapplied(
                            "nat64.log.bindings: turning the binding log on or off needs a restart; only its target can change while running".into(),
                        ))
                    }
                }
            }
            false => None,
        };
        // The one apply that can fail undoes itself, and comes first.
        if let Some(change) = &pool4 {
            self.route_pool4(change).await.map_err(unapplied)?;
        }
        if let (Some(log), Some((target, out))) = (&self.binding_log, log_target) {
            log.retarget(target, out);
        }
        if let (Some(nat), Some(section), Some(datapath)) =
            (&mut self.nat_config, &new.nat64, &self.datapath)
        {
            apply_live(nat, section);
            if let Some(change) = &pool4 {
                nat.pool4 = change.pool.clone();
            }
            if !datapath.view().reconfigure(nat).await {
                return Err("a packet worker is gone".into());
            }
        }
        if changed.iter().any(|k| k == "runtime.log-level") {
            // Validated with the file: only a vanished log can fail here.
            if let Err(e) = crate::logging::set_level(&new.runtime.log_level) {
                tracing::warn!("{e}");
            }
        }
        if let Some(dns64) = dns64 {
            tracing::info!("reload: {}", dns64.apply());
        }
        if let Some(change) = pool4 {
            self.draining.retain(|net| !change.route.contains(net));
            for net in change.drain {
                if !self.draining.contains(&net) {
                    tracing::info!(%net, "pool4 entry removed: draining (no new bindings; its route stays until its last binding expires)");
                    self.draining.push(net);
                }
            }
        }
        self.config = Some(new);
        Ok(changed)
    }

    /// What a change of `nat64.pool4` from `old` to `new` does, or why it
    /// cannot be applied while running.
    fn plan_pool4(
        &self,
        old: &Config,
        new: &Config,
        host: &[IpNet],
    ) -> Result<Pool4Change, String> {
        let (Some(nat), Some(old_section), Some(new_section)) =
            (&self.nat_config, &old.nat64, &new.nat64)
        else {
            return Err("nat64.pool4: no NAT64 is running".into());
        };
        if new_section.deterministic.is_some() {
            return Err("nat64.pool4: cannot change while nat64.deterministic is set (it computes each client's address and ports from the pool); restart to apply".into());
        }
        if old.shared_with_host(host) != new.shared_with_host(host) {
            return Err("nat64.pool4: adding or removing an address this host holds itself (shared by port range) needs a restart".into());
        }
        let wanted = config::Pool4Entry::to_pool(&new.pool4_on_host(host))
            .map_err(|e| format!("nat64.pool4: {e}"))?;
        let pool = nat
            .pool4
            .updated(&wanted)
            .map_err(|e| format!("nat64.pool4: {e}"))?;
        let nets = |s: &config::Nat64Section| s.pool4.iter().map(|e| e.0).collect::<Vec<_>>();
        let (was, now) = (nets(old_section), nets(new_section));
        let routes = self.routes.as_ref();
        Ok(Pool4Change {
            pool,
            route: now
                .iter()
                .filter(|n| {
                    !routes.is_some_and(|r| r.has(IpNet::V4(**n))) || self.draining.contains(n)
                })
                .copied()
                .collect(),
            drain: was.iter().filter(|n| !now.contains(n)).copied().collect(),
        })
    }

    /// Routes the entries a pool4 change adds (those draining have their
    /// route still); on a failure, removes those it added.
    async fn route_pool4(&mut self, change: &Pool4Change) -> Result<(), String> {
        let Some(routes) = &mut self.routes else {
            return Ok(());
        };
        let mut added = Vec::new();
        for net in &change.route {
            let net = IpNet::V4(*net);
            if routes.has(net) {
                continue;
            }
            if let Err(e) = routes.add(net).await {
                for done in added {
                    routes.remove(done).await;
                }
                return Err(format!("nat64.pool4: {e}"));
            }
            added.push(net);
        }
        Ok(())
    }

    /// Removes the route of each draining pool4 entry none of whose
    /// draining addresses holds a binding any more.
    async fn end_drained(&mut self) {
        let (Some(datapath), Some(nat)) = (&self.datapath, &self.nat_config) else {
            return;
        };
        let view = datapath.view();
        let mut busy = std::collections::BTreeSet::new();
        for i in 0..view.workers() {
            let Some(figures) = view.figures(i).await else {
                return;
            };
            busy.extend(figures.pool4_use.iter().map(|(a, _)| *a));
        }
        let still_draining = |net: &ipnet::Ipv4Net| {
            net.hosts()
                .chain([net.network(), net.broadcast()])
                .filter(|a| {
                    nat.pool4
                        .index_of(*a)
                        .is_some_and(|i| nat.pool4.is_draining(i))
                })
                .any(|a| busy.contains(&a))
        };
        let (keep, done): (Vec<_>, Vec<_>) =
            self.draining.iter().partition(|net| still_draining(net));
        self.draining = keep;
        if let Some(routes) = &mut self.routes {
            for net in done {
                routes.remove(IpNet::V4(net)).await;
                tracing::info!(%net, "pool4 entry drained: its last binding expired; route removed");
            }
        }
    }
}

impl Running {
    async fn start(
        &mut self,
        config: &Config,
        died: mpsc::UnboundedSender<String>,
        reload: mpsc::UnboundedSender<oneshot::Sender<ReloadOutcome>>,
    ) -> Result<(), String> {
        self.config = Some(config.clone());
        // Before any socket: DNS64 and the control socket hold one
        // descriptor per TCP connection and per upstream query.
        match crate::sys::process::raise_open_files_limit() {
            Ok((before, now)) if now > before => {
                tracing::info!(before, now, "open files limit raised to the hard limit");
            }
            Ok((_, now)) => tracing::info!(limit = now, "open files limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
        }
        let mut state = ControlState {
            reload: Some(reload),
            ..ControlState::default()
        };
        if let Some(nat_section) = &config.nat64 {
            let prefix = config.nat64_prefix().expect("validated with [nat64]");
            let nets: Vec<_> = nat_section.pool4.iter().map(|p| p.0).collect();
            let host = host_addrs::networks().unwrap_or_default();
            let pool4 = config::Pool4Entry::to_pool(&config.pool4_on_host(&host))
                .map_err(|e| format!("nat64.pool4: {e}"))?;
            warn_if_not_forwarding();
            let workers = config.runtime.workers();
            // How clients and ports are dealt to the workers.
            let split = xlat64_nat::Shard {
                deterministic: nat_section.deterministic(),
                ..xlat64_nat::Shard::ONE
                    .with_client_prefix(nat_section.limits.client_prefix)
                    .with_port_block(nat_section.port_block)
            };
            let queues = device::open(
                &nat_section.tun,
                nat_section.mtu,
                nat_section.offload,
                workers,
                split,
            )
            .map_err(|e| {
                format!(
                    "nat64.tun: cannot open TUN device `{}`: {e}",
                    nat_section.tun
                )
            })?;
            let ifindex = queues.queues[0].if_index().map_err(|e| {
                format!(
                    "nat64.tun: cannot read the index of `{}`: {e}",
                    nat_section.tun
                )
            })?;
            let mut routes =
                RouteSet::new(ifindex).map_err(|e| format!("cannot open a netlink socket: {e}"))?;
            // Pool4 addresses the host holds itself are shared by port
            // range: routed in a table of their own, by policy rules.
            let shared = config.shared_with_host(&host);
            let added = async {
                routes.add(IpNet::V6(prefix.net())).await?;
                for net in &nets {
                    if net.prefix_len() == 32 && shared.iter().any(|s| s.addr == net.addr()) {
                        routes.add_in(IpNet::V4(*net), ROUTE_TABLE).await?;
                    } else {
                        routes.add(IpNet::V4(*net)).await?;
                    }
                }
                Ok::<(), String>(())
            }
            .await;
            // Routes the kernel drops (the device set down and up) come back.
            if added.is_ok() {
                self.tasks
                    .push(tokio::spawn(routes.watch(self.shutdown.clone())));
            }
            let handle = routes.handle();
            self.routes = Some(routes);
            added?;
            if !shared.is_empty() {
                self.shared_rules =
                    Some(SharedRules::install(handle, &nat_section.tun, &shared).await?);
                tracing::info!(
                    shared = ?shared,
                    table = ROUTE_TABLE,
                    "pool4 addresses of this host shared by port range: policy rules installed before the local table"
                );
            }
            let local_v4 = host_addrs::ipv4_networks().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list the host's IPv4 addresses; they are not protected from translation");
                Vec::new()
            });
            // The routes are in place: the kernel's own choice of source
            // towards the prefix is the gateway's address on the IPv6 side.
            let icmp_source_v6 = nat_section.rfc6791_v6.or_else(|| {
                let first = pool4.addrs().first()?;
                host_addrs::source_towards(prefix.embed(*first))
            });
            tracing::info!(
                source = ?icmp_source_v6,
                local_v4 = ?local_v4,
                "ICMPv6 errors of the gateway come from this source; these IPv4 networks are never translated to"
            );
            let mut nat_config =
                Nat64Config::new(prefix, pool4, nat_section.timeouts.to_timeouts());
            nat_config.ipv6_mtu = nat_section.mtu;
            nat_config.icmp_source_v6 = icmp_source_v6;
            nat_config.local_v4 = local_v4;
            nat_config.fragments = nat_section.fragments.to_limits();
            apply_live(&mut nat_config, nat_section);
            nat_config.statics = nat_section
                .statics
                .iter()
                .map(config::StaticSection::to_nat)
                .collect();
            nat_config.port_block = nat_section.port_block;
            nat_config.shard = split;
            if let Some(target) = nat_section.log.bindings_target() {
                let log = BindingLog::start(target)?;
                state.binding_log_dropped = Some(log.dropped_counter());
                self.binding_log = Some(log);
                nat_config.log_bindings = true;
            }
            let log_handle = self.binding_log.as_ref().map(BindingLog::handle);
            let workers = queues.queues.len();
            let datapath = Datapath::start(queues, &nat_config, log_handle, died.clone())
                .map_err(|e| format!("cannot start the packet workers: {e}"))?;
            state.datapath = Some(datapath.view());
            self.datapath = Some(datapath);
            self.nat_config = Some(nat_config.clone());
            tracing::info!(
                prefix = %prefix.net(),
                pool4 = ?nets,
                tun = %nat_section.tun,
                workers,
                max_sessions = nat_config.max_sessions,
                "NAT64 translating"
            );
        }
        if let Some(dns_section) = &config.dns64 {
            let server = Dns64Server::bind(dns_section, config.runtime.io_threads).await?;
            state.dns = Some(server.counters());
            state.dns_cache = Some(server.cache_flusher());
            self.dns64 = Some(server.reloader());
            let token = self.shutdown.clone();
            let served = tokio::spawn(server.run(token.clone()));
            // Never half alive: DNS64 ending before shutdown (a panic in
            // its tasks) stops the daemon too.
            let died = died.clone();
            self.tasks.push(tokio::spawn(async move {
                let why = match served.await {
                    Ok(()) if token.is_cancelled() => return,
                    Ok(()) => "the DNS64 server stopped".to_string(),
                    Err(e) => format!("the DNS64 server failed: {e}"),
                };
                let _ = died.send(why);
            }));
            tracing::info!(
                listen = ?dns_section.listen,
                upstream = ?dns_section.upstream,
                prefix = ?dns_section.prefix,
                "DNS64 serving"
            );
        }
        if let Some(metrics) = &config.metrics {
            let listener = control::metrics::bind(metrics.listen).await?;
            self.tasks.push(tokio::spawn(control::metrics::serve(
                listener,
                state.clone(),
                self.shutdown.clone(),
            )));
            tracing::info!(listen = %metrics.listen, "metrics served at /metrics");
        }
        self.tasks.push(tokio::spawn(control::alerts::watch(
            state.clone(),
            self.shutdown.clone(),
        )));
        let bound = control::bind(&config.control.socket)?;
        let listener = bound.listener;
        self.control = Some((bound.path, bound.created_dir));
        let thread = control::spawn(listener, state, self.shutdown.clone())
            .map_err(|e| format!("cannot start the control socket thread: {e}"))?;
        self.control_thread = Some(thread);
        // Everything is up: tell systemd (Type=notify), if it runs us.
        crate::sys::notify::notify("READY=1\nSTATUS=translating");
        Ok(())
    }

    async fn stop(&mut self) {
        crate::sys::notify::notify("STOPPING=1");
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(thread) = self.control_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(datapath) = self.datapath.take() {
            if tokio::task::spawn_blocking(move || datapath.stop())
                .await
                .is_err()
            {
                tracing::warn!("cannot wait for the packet workers to stop");
            }
        }
        // After the workers: what they queued is written.
        if let Some(log) = self.binding_log.take() {
            let _ = tokio::task::spawn_blocking(move || log.stop()).await;
        }
        if let Some(mut rules) = self.shared_rules.take() {
            rules.remove().await;
        }
        if let Some(mut routes) = self.routes.take() {
            routes.remove_all().await;
        }
        if let Some((path, dir)) = self.control.take() {
            let _ = std::fs::remove_file(path);
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// One log line for a reload's outcome.
fn log_reload(by: &str, outcome: &ReloadOutcome) {
    match outcome {
        Ok(keys) if keys.is_empty() => tracing::info!("{by}: configuration unchanged"),
        Ok(keys) => tracing::info!(applied = ?keys, "{by}: configuration reloaded"),
        Err(why) => tracing::warn!("{by}: {why}"),
    }
}

async fn wait_for_signal() -> io::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// A gateway whose kernel does not forward drops every client packet before
/// it reaches the TUN device, silently: say so at start.
fn warn_if_not_forwarding() {
    for (path, what) in [
        ("/proc/sys/net/ipv6/conf/all/forwarding", "IPv6"),
        ("/proc/sys/net/ipv4/ip_forward", "IPv4"),
    ] {
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0") {
            tracing::warn!(
                "{what} forwarding is off ({path} = 0): the kernel will not pass client traffic to the TUN device"
            );
        }
    }
}
