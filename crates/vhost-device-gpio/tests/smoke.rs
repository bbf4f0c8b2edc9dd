//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_GPIO_BIN=/usr/bin/vhost-device-gpio`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says, and
//! a simulated chip gives the same answers on every build: config, line values through
//! the wired pair 0-1, and an edge interrupt.

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

use common::{
    DIR_IN, DIR_OUT, GET_DIRECTION, GET_VALUE, IRQ_RISING, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
    VALID, arm, expect_event, frontend_options, names_blob, ok,
};
use vhost_user_test_frontend::binary::{DaemonBinary, json_string_field};

/// Names the binary to test instead of the workspace build.
const BIN_VAR: &str = "VHOST_DEVICE_GPIO_BIN";
/// The directory of the QEMU capability file (default: the repository's contrib/qemu).
const JSON_DIR_VAR: &str = "VHOST_DEVICE_QEMU_JSON_DIR";
const JSON_NAME: &str = "50-vhost-device-gpio.json";
/// Where the package installs the binary: the capability file's `binary`.
const INSTALLED: &str = "/usr/bin/vhost-device-gpio";
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
        Some("gpio"),
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
fn simulated_chip_config_values_and_interrupt() {
    let mut daemon = binary_under_test()
        .launch()
        .args(&["-l", "s8"])
        .rust_log(None)
        .frontend(frontend_options())
        .start();
    let mut fe = daemon.connect(0);
    // 8 lines, and the size of the names blob "sim-0\0" ... "sim-7\0".
    let names_size = u32::try_from(names_blob(8).len()).unwrap();
    let mut config = vec![8, 0, 0, 0];
    config.extend_from_slice(&names_size.to_le_bytes());
    let got = fe
        .get_config(0, 8)
        .unwrap_or_else(|e| panic!("GET_CONFIG: {e}"));
    assert_eq!(got, config);

    // Line 0 drives its partner, line 1.
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_DIRECTION, 0, DIR_OUT);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 0, 0), 1, "line 0 is an output");
    assert_eq!(
        ok(&mut fe, GET_VALUE, 1, 0),
        1,
        "line 1 follows line 0 high"
    );
    ok(&mut fe, SET_VALUE, 0, 0);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0, "line 1 follows line 0 low");

    // A rising edge on line 1 comes back on the eventq.
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_RISING);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
    fe.disconnect();

    // SIGTERM: exit 0 at once, socket removed (the harness checks both).
    let exit = daemon.stop(libc::SIGTERM, Duration::from_secs(10));
    assert!(exit.status.success(), "SIGTERM: {:?}", exit.status);
}
