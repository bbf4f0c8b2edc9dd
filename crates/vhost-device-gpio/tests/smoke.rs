//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_GPIO_BIN=/usr/bin/vhost-device-gpio`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says, and
//! a simulated chip gives the same answers on every build: config, line values through
//! the wired pair 0-1, and an edge interrupt.
// The whole file is test code.
#![allow(clippy::indexing_slicing, clippy::panic)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use vhost_user_test_frontend::binary::{DaemonBinary, json_string_field};
use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{
    GET_DIRECTION, GET_VALUE, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
};
use vmm_sys_util::tempdir::TempDir;

/// Names the binary to test instead of the workspace build.
const BIN_VAR: &str = "VHOST_DEVICE_GPIO_BIN";
/// The directory of the QEMU capability file (default: the repository's contrib/qemu).
const JSON_DIR_VAR: &str = "VHOST_DEVICE_QEMU_JSON_DIR";
const JSON_NAME: &str = "50-vhost-device-gpio.json";
/// Where the package installs the binary: the capability file's `binary`.
const INSTALLED: &str = "/usr/bin/vhost-device-gpio";
/// Startup and exit may be slow under an emulator.
const SLOW: Duration = Duration::from_secs(30);
/// Upper bound of one request.
const WAIT: Duration = Duration::from_secs(5);

const OK: u8 = 0;
const VALID: u8 = 1;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;
const IRQ_RISING: u32 = 1;

fn binary_under_test() -> DaemonBinary {
    let bin = DaemonBinary::from_env(BIN_VAR, env!("CARGO_BIN_EXE_vhost-device-gpio"))
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

/// Sends one request that must succeed; returns the value byte of the response.
fn ok(fe: &mut TestFrontend, msg_type: u16, line: u16, value: u32) -> u8 {
    let request = [
        Desc::Out(encode_request(msg_type, line, value).to_vec()),
        Desc::In(2),
    ];
    let c = fe
        .queue(0)
        .transact(&request, false, WAIT)
        .unwrap_or_else(|e| panic!("type {msg_type} line {line}: {e}"));
    assert_eq!(c.used_len, 2, "type {msg_type} line {line}: used length");
    assert_eq!(
        c.written[0][0], OK,
        "type {msg_type} line {line} value {value}: status"
    );
    c.written[0][1]
}

#[test]
fn print_capabilities_matches_the_qemu_capability_file() {
    let printed = binary_under_test()
        .run_to_exit(&["--print-capabilities"], SLOW)
        .unwrap_or_else(|e| panic!("{e}"));
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
    let bin = binary_under_test();
    let dir = TempDir::new_with_prefix("/tmp/vhost-device-gpio-smoke-")
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let base = dir.as_path().join("gpio.sock");
    let mut daemon = bin
        .spawn(
            [
                OsStr::new("-s"),
                base.as_os_str(),
                OsStr::new("-l"),
                OsStr::new("s8"),
            ],
            &dir.as_path().join("daemon.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.as_path().join("gpio.sock0");
    daemon
        .wait_for_socket(&socket, SLOW)
        .unwrap_or_else(|e| panic!("{e}"));

    let opts = FrontendOptions {
        num_queues: 2,
        queue_size: 64,
        ..FrontendOptions::default()
    };
    let mut fe = TestFrontend::connect(&socket, opts)
        .unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", daemon.log()));
    // 8 lines; the names blob "sim-0\0" ... "sim-7\0" is 48 bytes.
    assert_eq!(
        fe.get_config(0, 8)
            .unwrap_or_else(|e| panic!("GET_CONFIG: {e}")),
        [8, 0, 0, 0, 48, 0, 0, 0]
    );

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
    let q = fe.queue(1);
    let head = q
        .post(
            &[Desc::Out(1u16.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .unwrap_or_else(|e| panic!("post eventq buffer: {e}"));
    q.kick().unwrap_or_else(|e| panic!("kick eventq: {e}"));
    ok(&mut fe, SET_VALUE, 0, 1);
    let event = fe
        .queue(1)
        .wait_head(head, WAIT)
        .unwrap_or_else(|e| panic!("interrupt on line 1: {e}; log:\n{}", daemon.log()));
    assert_eq!(
        (event.used_len, event.written[0][0]),
        (1, VALID),
        "eventq answer"
    );
    fe.disconnect();

    let exit = daemon.terminate(SLOW).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "SIGTERM: {exit}; log:\n{}", daemon.log());
    assert!(!socket.exists(), "{} left behind", socket.display());
}
