//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_I2C_BIN=/usr/bin/vhost-device-i2c`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says, and
//! a simulated EEPROM and an absent address give the same answers on every build.

// Test code: a panic is a failed test (also in the shared helpers of `common`).
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ABSENT, EEPROM, ERR, OK, one, quick, read_reg, status, write_reg};
use vhost_user_test_frontend::FrontendOptions;
use vhost_user_test_frontend::binary::{DaemonBinary, json_string_field};

/// Names the binary to test instead of the workspace build.
const BIN_VAR: &str = "VHOST_DEVICE_I2C_BIN";
/// The directory of the QEMU capability file (default: the repository's contrib/qemu).
const JSON_DIR_VAR: &str = "VHOST_DEVICE_QEMU_JSON_DIR";
const JSON_NAME: &str = "50-vhost-device-i2c.json";
/// Where the package installs the binary: the capability file's `binary`.
const INSTALLED: &str = "/usr/bin/vhost-device-i2c";
/// Upper bound of `--print-capabilities`, also under an emulator.
const RUN_LIMIT: Duration = Duration::from_secs(15);

fn binary_under_test() -> DaemonBinary {
    let bin = DaemonBinary::from_env(BIN_VAR, common::binary()).unwrap_or_else(|e| panic!("{e}"));
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
    let out = binary_under_test().run_to_exit(&["--print-capabilities"], RUN_LIMIT);
    assert!(out.status.success(), "--print-capabilities: {out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
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
    let mut daemon = binary_under_test()
        .launch()
        .args(&["--simulate", "24c02@0x50"])
        .rust_log(None)
        .frontend(FrontendOptions {
            num_queues: 1,
            ..FrontendOptions::default()
        })
        .start();
    let mut fe = daemon.connect(0);
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
        "the EEPROM answers a quick write"
    );
    fe.disconnect();

    // SIGTERM: exit 0 at once, socket removed (the harness checks both).
    let exit = daemon.stop(libc::SIGTERM, Duration::from_secs(10));
    assert!(exit.status.success(), "SIGTERM: {:?}", exit.status);
}
