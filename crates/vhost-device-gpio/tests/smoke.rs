//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_GPIO_BIN=/usr/bin/vhost-device-gpio`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says (the
//! shared `smoke_tests!`), and a simulated chip gives the same answers on every build:
//! config, line values through the wired pair 0-1, and an edge interrupt.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::SUBJECT;
use vhost_user_test_frontend::devices::gpio::{
    DIR_IN, DIR_OUT, GET_DIRECTION, GET_VALUE, IRQ_RISING, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
    VALID, arm, expect_event, names_blob, ok,
};
use vhost_user_test_frontend::suites::announce;

vhost_user_test_frontend::smoke_tests!(SUBJECT);

#[test]
fn simulated_chip_config_values_and_interrupt() {
    announce(&SUBJECT);
    let mut daemon = SUBJECT.launch().rust_log(None).start();
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
