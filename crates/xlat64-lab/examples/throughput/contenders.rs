//! The three contenders and how each is started and stopped in the lab's
//! gateway namespace: plain kernel IPv6 forwarding (always there), TAYGA and
//! xlat64 (each started for its turn only, so that their routes to the
//! NAT64 prefix never clash).

use std::fs;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;
use xlat64_lab::{self as lab, Gateway, Lab, LabProcess, NAT64_PREFIX, SERVER_V6};

use crate::measure;

/// TAYGA's TUN device.
const TAYGA_TUN: &str = "tayga0";
/// TAYGA's own IPv4 address (the source of the ICMPv4 errors it makes).
const TAYGA_V4: &str = "192.0.2.254";
/// TAYGA's dynamic pool: each IPv6 client gets one of these addresses.
pub(crate) const TAYGA_POOL: &str = "192.0.2.128/25";
/// How long a translator may take to pass its first ping.
const FIRST_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Who forwards the packets between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contender {
    /// Plain kernel IPv6 forwarding to the server's IPv6 address.
    Kernel,
    /// TAYGA (stateless NAT64 on a TUN device, Debian's package).
    Tayga,
    /// xlat64 (stateful NAT64 on a TUN device).
    Xlat64,
}

impl Contender {
    /// All of them, in table order.
    pub(crate) const ALL: [Contender; 3] = [Contender::Kernel, Contender::Tayga, Contender::Xlat64];

    /// Its column title.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Kernel => "kernel",
            Contender::Tayga => "TAYGA",
            Contender::Xlat64 => "xlat64",
        }
    }

    /// Its index in [`Contender::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The server's address as the client reaches it through this contender.
    pub(crate) fn target(self) -> Ipv6Addr {
        match self {
            Contender::Kernel => SERVER_V6,
            Contender::Tayga | Contender::Xlat64 => lab::server_via_nat64(),
        }
    }
}

/// A started contender.
pub(crate) enum Running {
    /// Nothing to run.
    Kernel,
    /// `tayga --nodetach` in the gateway namespace.
    Tayga(LabProcess),
    /// `xlat64 run` in the gateway namespace.
    Xlat64(Gateway),
}

impl Running {
    /// The translator's process id, if there is a translator process.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Running::Kernel => None,
            Running::Tayga(p) => Some(p.id()),
            Running::Xlat64(g) => Some(g.pid()),
        }
    }

    /// What the translator printed so far, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = match self {
            Running::Kernel => return String::new(),
            Running::Tayga(p) => p.log(),
            Running::Xlat64(g) => g.log(),
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("\n  its log (last lines):\n{tail}")
    }

    /// Stops the translator and removes what was set up for it; a problem
    /// is reported, the benchmark goes on.
    pub(crate) fn stop(self, lab: &Lab) -> Result<(), String> {
        match self {
            Running::Kernel => Ok(()),
            Running::Xlat64(mut g) => match g.stop() {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!(
                    "xlat64 exited with {}{}",
                    lab::describe_status(status),
                    Running::Xlat64(g).log_tail()
                )),
                Err(e) => Err(format!("stopping xlat64: {e}")),
            },
            Running::Tayga(mut p) => {
                let stopped = p.stop().map_err(|e| format!("stopping tayga: {e}"));
                drop(p);
                // The TUN device is persistent (--mktun): deleting it also
                // removes its routes, so that xlat64 can add its own.
                let removed = crate::ip_in(lab.gateway(), &["link", "del", TAYGA_TUN]);
                stopped.map(|_| ()).and(removed)
            }
        }
    }
}

/// Starts `contender` and checks that a ping reaches the server through it.
pub(crate) fn start(lab: &Lab, contender: Contender, xlat64: &Path) -> Result<Running, String> {
    let running = match contender {
        Contender::Kernel => Running::Kernel,
        Contender::Xlat64 => Running::Xlat64(
            lab.start_gateway(xlat64)
                .map_err(|e| format!("starting xlat64: {e}"))?,
        ),
        Contender::Tayga => Running::Tayga(start_tayga(lab)?),
    };
    if let Err(e) = measure::reachable(lab, contender.target(), FIRST_PING_TIMEOUT) {
        let why = format!("{e}{}", running.log_tail());
        if let Err(e) = running.stop(lab) {
            eprintln!("warning: {e}");
        }
        return Err(why);
    }
    Ok(running)
}

/// Whether the `tayga` program can be found; `Err` says why not.
pub(crate) fn tayga_available() -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        if dir.join("tayga").is_file() {
            return Ok(());
        }
    }
    Err("the tayga program is not installed (Debian package `tayga`)".into())
}

/// The version of Debian's tayga package, if dpkg knows it.
pub(crate) fn tayga_version() -> Option<String> {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "tayga"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// TAYGA in the gateway namespace: its TUN device made with `--mktun`, the
/// NAT64 prefix and the dynamic pool routed to it, then `tayga --nodetach`
/// (foreground, so that the lab owns and kills it).
fn start_tayga(lab: &Lab) -> Result<LabProcess, String> {
    tayga_available()?;
    let data_dir = lab.dir().join("tayga");
    fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let conf = lab
        .write_file(
            "tayga.conf",
            &format!(
                "tun-device {TAYGA_TUN}\nipv4-addr {TAYGA_V4}\nprefix {NAT64_PREFIX}\n\
                 dynamic-pool {TAYGA_POOL}\ndata-dir {}\n",
                data_dir.display()
            ),
        )
        .map_err(|e| format!("writing tayga.conf: {e}"))?;
    let conf = conf.display().to_string();
    let out = lab
        .run_in(lab.gateway(), &["tayga", "--mktun", "-c", &conf])
        .map_err(|e| format!("tayga --mktun: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tayga --mktun failed ({}): {}{}",
            lab::describe_status(out.status),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let set_up = (|| {
        crate::ip_in(lab.gateway(), &["link", "set", TAYGA_TUN, "up"])?;
        crate::ip_in(
            lab.gateway(),
            &["-6", "route", "add", NAT64_PREFIX, "dev", TAYGA_TUN],
        )?;
        crate::ip_in(
            lab.gateway(),
            &["-4", "route", "add", TAYGA_POOL, "dev", TAYGA_TUN],
        )?;
        let mut process = lab
            .spawn_in(lab.gateway(), &["tayga", "--nodetach", "-c", &conf])
            .map_err(|e| format!("starting tayga: {e}"))?;
        // It opens its TUN device and data directory at once; an early exit
        // means a configuration it does not take.
        match process.wait_timeout(Duration::from_millis(300)) {
            Ok(None) => Ok(process),
            Ok(Some(status)) => Err(format!(
                "tayga exited at start with {}: {}",
                lab::describe_status(status),
                process.log().trim()
            )),
            Err(e) => Err(format!("tayga: {e}")),
        }
    })();
    if set_up.is_err() {
        let _ = crate::ip_in(lab.gateway(), &["link", "del", TAYGA_TUN]);
    }
    set_up
}
