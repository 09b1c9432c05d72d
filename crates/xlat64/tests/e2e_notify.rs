//! The daemon tells a service manager (`Type=notify`, NOTIFY_SOCKET) that
//! it is ready once it runs, and that it stops. The only test of this
//! binary: the environment variable it sets reaches just that daemon.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use xlat64_lab::Lab;

#[test]
fn the_daemon_notifies_ready_and_stopping() {
    if !common::can_run("notify", &["ip"]) {
        return;
    }
    let lab = Lab::create("notify").expect("lab");
    let socket_path = lab.dir().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    std::env::set_var("NOTIFY_SOCKET", &socket_path);
    let mut gateway = lab
        .start_gateway(&common::exe())
        .expect("start the gateway");
    std::env::remove_var("NOTIFY_SOCKET");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY from the daemon");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // Ready means the control socket answers.
    assert!(gateway.cli(&["stats"]).expect("stats").status.success());
    let status = gateway.stop().expect("stop");
    assert!(status.success());
    let n = socket.recv(&mut buf).expect("STOPPING from the daemon");
    assert_eq!(&buf[..n], b"STOPPING=1");
}
