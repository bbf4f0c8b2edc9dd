//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_I2C_BIN=/usr/bin/vhost-device-i2c`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says, and
//! a simulated EEPROM and an absent address give the same answers on every build.
// Test code: a panic is a failed test (the shared helpers in `common` rely on this too).
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use common::{
    ABSENT, EEPROM, ERR, OK, one, quick, read_reg, socket_path, status, temp_dir, write_reg,
};
use vhost_user_test_frontend::binary::{DaemonBinary, json_string_field};
use vhost_user_test_frontend::{FrontendOptions, TestFrontend};

/// Names the binary to test instead of the workspace build.
const BIN_VAR: &str = "VHOST_DEVICE_I2C_BIN";
/// The directory of the QEMU capability file (default: the repository's contrib/qemu).
const JSON_DIR_VAR: &str = "VHOST_DEVICE_QEMU_JSON_DIR";
const JSON_NAME: &str = "50-vhost-device-i2c.json";
/// Where the package installs the binary: the capability file's `binary`.
const INSTALLED: &str = "/usr/bin/vhost-device-i2c";
/// Startup and exit may be slow under an emulator.
const SLOW: Duration = Duration::from_secs(30);

fn binary_under_test() -> DaemonBinary {
    let bin = DaemonBinary::from_env(BIN_VAR, env!("CARGO_BIN_EXE_vhost-device-i2c"))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("testing {}", bin.describe());
    bin
}

fn capability_file() -> PathBuf {
    let dir = match std::env::var_os(JSON_DIR_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contrib/qemu"),
    };
    dir.join(JSON_NAME)
}

#[test]
fn print_capabilities_matches_the_qemu_capability_file() {
    let printed = binary_under_test()
        .run_to_exit(&["--print-capabilities"], SLOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json_string_field(&printed, "type"),
        Some("i2c"),
        "{printed}"
    );

    let path = capability_file();
    let file = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        json_string_field(&file, "type"),
        json_string_field(&printed, "type"),
        "{}: `type` differs from --print-capabilities",
        path.display()
    );
    assert_eq!(
        json_string_field(&file, "binary"),
        Some(INSTALLED),
        "{}",
        path.display()
    );
    assert!(
        json_string_field(&file, "description").is_some_and(|d| !d.is_empty()),
        "{}: no description",
        path.display()
    );
}

#[test]
fn simulated_eeprom_write_then_read_and_absent_address() {
    let bin = binary_under_test();
    let dir = temp_dir();
    let base = dir.as_path().join("i2c.sock");
    let mut daemon = bin
        .spawn(
            [
                OsStr::new("-s"),
                base.as_os_str(),
                OsStr::new("--simulate"),
                OsStr::new("24c02@0x50"),
            ],
            &dir.as_path().join("daemon.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = socket_path(&base, 0);
    daemon
        .wait_for_socket(&socket, SLOW)
        .unwrap_or_else(|e| panic!("{e}"));

    let mut fe = TestFrontend::connect(&socket, FrontendOptions::default())
        .unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", daemon.log()));
    write_reg(&mut fe, EEPROM, 0x10, &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x10, 4), [0xde, 0xad, 0xbe, 0xef]);
    let done = one(&mut fe, quick(ABSENT, false, false));
    assert_eq!(
        (status(&done), done.used_len),
        (ERR, 1),
        "no device at 0x51"
    );
    let done = one(&mut fe, quick(EEPROM, false, false));
    assert_eq!(
        (status(&done), done.used_len),
        (OK, 1),
        "EEPROM answers a quick write"
    );
    fe.disconnect();

    let exit = daemon.terminate(SLOW).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "SIGTERM: {exit}; log:\n{}", daemon.log());
    assert!(!socket.exists(), "{} left behind", socket.display());
}
