//! Without `--config`, the commands read /etc/xlat64/xlat64.toml when it
//! exists (and `check` says so), else the embedded defaults. The test puts
//! a file there inside a mount namespace of its own (a tmpfs over /etc),
//! so the machine's /etc is never touched.

mod common;

use std::process::Command;

#[test]
fn without_config_the_file_in_etc_is_read_and_named() {
    if !common::can_run("etcconfig", &["unshare", "mount", "sh"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("xlat64-etcconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("xlat64.toml");
    std::fs::write(
        &file,
        "[nat64]\ntun = \"frometc\"\n\n[dns64]\nupstream = [\"192.0.2.53:53\"]\n",
    )
    .unwrap();
    let script = format!(
        "mount -t tmpfs xlat64-test /etc && mkdir /etc/xlat64 && cp {} /etc/xlat64/xlat64.toml && exec {} check",
        file.display(),
        common::exe().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("# configuration from /etc/xlat64/xlat64.toml\n"),
        "{text}"
    );
    assert!(text.contains("tun = \"frometc\""), "{text}");
    // Without the file: the embedded defaults, said so.
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "mount -t tmpfs xlat64-test /etc && printf 'nameserver 192.0.2.53\\n' > /etc/resolv.conf && exec {} check",
                common::exe().display()
            ),
        ])
        .output()
        .expect("unshare");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# the embedded defaults"), "{text}");
    assert!(text.contains("tun = \"nat64\""), "{text}");
}
