//! The daemon binary as shipped, whichever build it is: the workspace build (plain
//! `cargo test`), the installed package (`VHOST_DEVICE_I2C_BIN=/usr/bin/vhost-device-i2c`,
//! tests/packaging.sh) or the arm64 build under qemu-user (`VHOST_DEVICE_RUNNER`,
//! tests/arm64.sh). It answers `--print-capabilities` as its QEMU capability file says (the
//! shared `smoke_tests!`), and a simulated EEPROM and an absent address give the same
//! answers on every build.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::SUBJECT;
use vhost_user_test_frontend::devices::i2c::{
    ABSENT, EEPROM, ERR, OK, one, quick, read_reg, status, write_reg,
};
use vhost_user_test_frontend::suites::announce;

vhost_user_test_frontend::smoke_tests!(SUBJECT);

#[test]
fn simulated_eeprom_write_then_read_and_absent_address() {
    announce(&SUBJECT);
    let mut daemon = SUBJECT.launch().rust_log(None).start();
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
