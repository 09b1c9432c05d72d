//! The systemd unit (`contrib/systemd/xlat64.service`) passes
//! `systemd-analyze verify`.

mod common;

use std::process::Command;

fn unit_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/systemd/xlat64.service"
    );
    std::fs::read_to_string(path).expect("the unit file")
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !common::can_run("unit", &["systemd-analyze"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("xlat64-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Verified against the binary under test, where the package puts
    // /usr/bin/xlat64.
    let unit = unit_text().replace("/usr/bin/xlat64", &common::exe().display().to_string());
    let path = dir.join("xlat64.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.trim().is_empty(), "systemd-analyze: {said}");
}
