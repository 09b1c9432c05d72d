//! Start-up, shut-down and configuration errors of the real binary.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;
use xlat64_lab::{self as lab, Lab, GATEWAY_V6, NAT64_PREFIX, POOL4, TUN};

fn routes(lab: &Lab) -> (String, String, String) {
    let show = |args: &[&str]| {
        let out = lab.run_in(lab.gateway(), args).expect("ip");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    (
        show(&["ip", "-6", "route", "show", NAT64_PREFIX]),
        show(&["ip", "-4", "route", "show", &format!("{POOL4}/32")]),
        show(&["ip", "-o", "link", "show"]),
    )
}

#[test]
fn sigterm_exits_0_and_removes_the_routes() {
    if !common::can_run("sigterm_exits_0_and_removes_the_routes", &[]) {
        return;
    }
    let lab = Lab::create("term").expect("build the lab");
    let mut gateway = lab
        .start_gateway(&common::exe())
        .unwrap_or_else(|e| panic!("{e}"));
    let (v6, v4, links) = routes(&lab);
    assert!(
        v6.contains(&format!("dev {TUN}")),
        "route {NAT64_PREFIX} while running: `{v6}`"
    );
    assert!(
        v4.contains(&format!("dev {TUN}")),
        "route {POOL4} while running: `{v4}`"
    );
    assert!(
        links.contains(&format!(" {TUN}:")),
        "TUN {TUN} while running: {links}"
    );

    let status = gateway.stop().expect("xlat64 exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "{}; log:\n{}",
        lab::describe_status(status),
        gateway.log()
    );
    let (v6, v4, links) = routes(&lab);
    assert_eq!(v6, "", "route {NAT64_PREFIX} left behind");
    assert_eq!(v4, "", "route {POOL4} left behind");
    assert!(
        !links.contains(&format!(" {TUN}:")),
        "TUN {TUN} left behind: {links}"
    );
}

fn check(config: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("xlat64-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("check.toml");
    std::fs::write(&path, config).unwrap();
    let out = lab::run_with_timeout(
        Command::new(common::exe())
            .arg("check")
            .arg("--config")
            .arg(&path),
        Duration::from_secs(10),
    )
    .expect("xlat64 check");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Needs neither root nor the lab.
#[test]
fn check_names_the_bad_key() {
    let cases = [
        ("[nat64]\nprefx = \"64:ff9b::/96\"\n", "nat64.prefx"),
        ("[nat64]\nprefix = \"2001:db8::/33\"\n", "nat64.prefix"),
        ("[nat64]\npool4 = [\"300.1.1.1\"]\n", "nat64.pool4[0]"),
        (
            "[dns64]\nlisten = [\"nope\"]\nupstream = [\"192.0.2.53:53\"]\n",
            "dns64.listen[0]",
        ),
        ("[nat65]\n", "nat65"),
    ];
    for (config, key) in cases {
        let (code, stdout, stderr) = check(config);
        assert_eq!(
            code, 1,
            "check of {config:?}: stdout {stdout} stderr {stderr}"
        );
        let all = format!("{stdout}{stderr}");
        let errors: Vec<&str> = all.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line for {config:?}:\n{all}");
        assert!(
            errors[0].starts_with(&format!("error: {key}: ")),
            "{config:?}: `{}`",
            errors[0]
        );
    }
    let (code, stdout, stderr) = check("[nat64]\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n");
    assert_eq!(code, 0, "valid config: {stderr}");
    assert!(
        stdout.contains("64:ff9b::/96"),
        "check prints the effective config:\n{stdout}"
    );
}

/// `xlat64 run` in the gateway namespace with `config` (written to `name`),
/// which must exit by itself within 15 s.
fn run_to_exit(lab: &Lab, name: &str, config: &str) -> std::process::Output {
    let config = lab.write_file(name, config).unwrap();
    let exe = common::exe();
    lab.run_in_timeout(
        lab.gateway(),
        &[
            exe.as_os_str(),
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        Duration::from_secs(15),
    )
    .expect("xlat64 run exits by itself")
}

#[test]
fn run_with_the_dns_port_taken_fails_with_one_error_line() {
    if !common::can_run("run_with_the_dns_port_taken_fails_with_one_error_line", &[]) {
        return;
    }
    let lab = Lab::create("busy").expect("build the lab");
    let dns = SocketAddr::from((GATEWAY_V6, 53));
    let _taken = lab
        .in_netns(lab.gateway(), || {
            Ok((UdpSocket::bind(dns)?, TcpListener::bind(dns)?))
        })
        .expect("occupy port 53 in the gateway namespace");
    let out = run_to_exit(&lab, "busy.toml", &lab.gateway_config());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}; stderr:\n{stderr}",
        lab::describe_status(out.status)
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one `error:` line:\n{stderr}");
    assert!(
        errors[0].contains("53"),
        "the error names the address: `{}`",
        errors[0]
    );
    let (v6, v4, links) = routes(&lab);
    assert_eq!(
        (v6.as_str(), v4.as_str()),
        ("", ""),
        "routes left behind after a failed start"
    );
    assert!(
        !links.contains(&format!(" {TUN}:")),
        "TUN left behind after a failed start: {links}"
    );
}

/// `control.socket` naming an existing regular file: `run` refuses with one
/// error line and leaves the file alone; a directory it creates for the
/// socket is removed at stop, and the socket is never open to others.
#[test]
fn the_control_socket_never_replaces_a_file_and_cleans_up_its_directory() {
    if !common::can_run("control_socket_paths", &[]) {
        return;
    }
    let lab = Lab::create("ctl").expect("build the lab");
    let victim = lab.write_file("precious.txt", "keep me\n").unwrap();
    let config_text = lab.gateway_config().replace(
        &lab.control_socket().display().to_string(),
        &victim.display().to_string(),
    );
    let out = run_to_exit(&lab, "ctl.toml", &config_text);
    let exe = common::exe();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("not a socket"), "stderr:\n{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");

    // A socket in a directory that does not exist yet.
    let dir = lab.dir().join("run-xlat64");
    let socket = dir.join("control.sock");
    let config_text = lab.gateway_config().replace(
        &lab.control_socket().display().to_string(),
        &socket.display().to_string(),
    );
    let config = lab.write_file("ctl2.toml", &config_text).unwrap();
    let mut process = lab
        .spawn_in(
            lab.gateway(),
            &[
                exe.as_os_str(),
                "run".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ],
        )
        .expect("start xlat64");
    lab::wait_until(Duration::from_secs(10), || Ok(socket.exists())).expect("the socket appears");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "directory mode {dir_mode:o}");
    let status = process.stop().expect("stop");
    assert_eq!(status.code(), Some(0), "{}", process.log());
    assert!(!socket.exists(), "socket left behind");
    assert!(!dir.exists(), "directory xlat64 created left behind");
}

/// The TUN device set down and up (which makes the kernel drop its routes):
/// xlat64 puts the routes back by itself and traffic flows again.
#[test]
fn routes_dropped_by_the_kernel_come_back() {
    if !common::can_run("routes_come_back", &["ping"]) {
        return;
    }
    let lab = Lab::create("rback").expect("build the lab");
    let mut gateway = lab
        .start_gateway(&common::exe())
        .unwrap_or_else(|e| panic!("{e}"));
    for state in ["down", "up"] {
        let out = lab
            .run_in(lab.gateway(), &["ip", "link", "set", TUN, state])
            .expect("ip link set");
        assert!(out.status.success(), "ip link set {TUN} {state}: {out:?}");
        if state == "down" {
            let (v6, _, _) = routes(&lab);
            assert_eq!(v6, "", "the kernel kept the route: the test proves nothing");
        }
    }
    lab::wait_until(Duration::from_secs(10), || {
        let (v6, v4, _) = routes(&lab);
        Ok(v6.contains(TUN) && v4.contains(TUN))
    })
    .unwrap_or_else(|_| panic!("routes not restored: {:?}\n{}", routes(&lab), gateway.log()));
    let server = lab::server_via_nat64().to_string();
    let out = lab
        .run_in(lab.client(), &["ping", "-6", "-c", "2", "-W", "2", &server])
        .expect("ping");
    assert!(
        out.status.success(),
        "ping after the routes came back: {out:?}\n{}",
        gateway.log()
    );
    assert!(
        gateway.is_running(),
        "the gateway stopped:\n{}",
        gateway.log()
    );
    assert!(
        gateway.log().contains("restored"),
        "no log line:\n{}",
        gateway.log()
    );
}
