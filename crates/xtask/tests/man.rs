//! `cargo xtask man` writes a page per daemon, generated from its clap definitions.
// The whole file is test code: its helpers may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn check(dir: &std::path::Path, page: &str, options: &[&str]) {
    let path = dir.join(page);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!text.trim().is_empty(), "{page} is empty");
    // roff escapes '-' as "\-".
    let plain = text.replace("\\-", "-");
    for option in options {
        assert!(plain.contains(option), "{page} does not mention {option}");
    }
}

#[test]
fn library_writes_both_pages() {
    let dir = out_dir("man-lib");
    let pages = xtask::man_pages(&dir).unwrap();
    assert_eq!(
        pages,
        vec![
            dir.join("vhost-device-i2c.1"),
            dir.join("vhost-device-gpio.1")
        ]
    );
    check(
        &dir,
        "vhost-device-i2c.1",
        &[
            "--socket-path",
            "--device-list",
            "--simulate",
            "--seccomp",
            "--sandbox",
        ],
    );
    check(
        &dir,
        "vhost-device-gpio.1",
        &["--socket-path", "--device-list", "--seccomp", "--sandbox"],
    );
}

#[test]
fn binary_writes_and_prints_paths() {
    let dir = out_dir("man-bin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["man", "--out-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
    assert_eq!(
        printed,
        vec![
            dir.join("vhost-device-i2c.1"),
            dir.join("vhost-device-gpio.1")
        ]
    );
    check(
        &dir,
        "vhost-device-i2c.1",
        &[
            "--socket-path",
            "--device-list",
            "--simulate",
            "--seccomp",
            "--sandbox",
        ],
    );
    check(
        &dir,
        "vhost-device-gpio.1",
        &["--socket-path", "--device-list", "--seccomp", "--sandbox"],
    );
}
