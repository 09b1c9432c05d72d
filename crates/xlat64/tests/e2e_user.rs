//! `[runtime] user`: the daemon drops to an unprivileged user after setup,
//! still translates and answers DNS, and still removes its routes on
//! SIGTERM (it keeps CAP_NET_ADMIN for that on one thread).

mod common;

use xlat64_lab::{self as lab, server_via_nat64, GATEWAY_V6, NAT64_PREFIX};

#[test]
fn an_unprivileged_daemon_translates_answers_and_cleans_up() {
    let Some(world) = common::world("user", &["ping", "dig"]) else {
        return;
    };
    // The world's gateway runs as root; this one as nobody, same lab.
    let common::World {
        mut gateway, lab, ..
    } = world;
    gateway.stop().expect("stop the root gateway");
    let mut config = lab.gateway_config();
    if config.contains("[runtime]\n") {
        config = config.replacen("[runtime]\n", "[runtime]\nuser = \"nobody\"\n", 1);
    } else {
        config.push_str("\n[runtime]\nuser = \"nobody\"\n");
    }
    let mut gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .expect("start as nobody");
    let status = std::fs::read_to_string(format!("/proc/{}/status", gateway.pid())).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65534"),
        "{uid}"
    );
    // Every thread runs as nobody, and only the main thread (which removes
    // the routes at exit) keeps a capability: the packet workers, the DNS64
    // threads and the control socket's have none.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", gateway.pid())).unwrap();
    let mut names = Vec::new();
    for task in tasks {
        let path = task.unwrap().path();
        let status = std::fs::read_to_string(path.join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        let (tid, comm) = (field("Pid:"), field("Name:"));
        assert!(
            field("Uid:").split_whitespace().all(|id| id == "65534"),
            "thread {tid} ({comm}): {status}"
        );
        if tid != gateway.pid().to_string() {
            assert_eq!(
                u64::from_str_radix(&field("CapPrm:"), 16).unwrap(),
                0,
                "thread {tid} ({comm}) keeps capabilities"
            );
        }
        names.push(comm);
    }
    assert!(
        names.iter().any(|n| n.starts_with("xlat64-dns64-")),
        "no DNS64 thread among {names:?}"
    );
    assert!(
        gateway.log().contains("running as nobody"),
        "{}",
        gateway.log()
    );
    let server = server_via_nat64().to_string();
    let out = lab
        .run_in(
            lab.client(),
            &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &server],
        )
        .expect("ping");
    assert!(out.status.success(), "{out:?}\n{}", gateway.log());
    let at = format!("@{GATEWAY_V6}");
    let out = lab
        .run_in(
            lab.client(),
            &[
                "dig",
                "+short",
                "+time=2",
                &at,
                "AAAA",
                "v4only.xlat64.test",
            ],
        )
        .expect("dig");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim() == server,
        "{out:?}\n{}",
        gateway.log()
    );
    // SIGTERM: exit 0, routes and control socket gone.
    let status = gateway.stop().expect("stop");
    assert!(status.success(), "{}", lab::describe_status(status));
    let routes = lab
        .run_in(lab.gateway(), &["ip", "-6", "route", "show", NAT64_PREFIX])
        .expect("ip route");
    assert!(
        routes.stdout.is_empty(),
        "route left: {routes:?}\n{}",
        gateway.log()
    );
    // The socket file may stay (nobody cannot write the lab's directory);
    // nothing answers on it, and the next start replaces it.
    assert!(std::os::unix::net::UnixStream::connect(lab.control_socket()).is_err());
}
