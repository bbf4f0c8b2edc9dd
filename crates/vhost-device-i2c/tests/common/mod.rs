//! Shared helpers of the integration tests: start the real `vhost-device-i2c` binary
//! through the shared daemon harness ([`vhost_user_test_frontend::daemon`]) and build,
//! submit and check virtio-i2c requests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;

pub use vhost_user_test_frontend::daemon::{Daemon, Launch};
use vhost_user_test_frontend::{Completion, Desc, FrontendOptions, TestFrontend};
use virtio_i2c_core::request::encode_header;
use virtio_i2c_core::{VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK};
use vmm_sys_util::tempdir::TempDir;

/// Upper bound of every wait on the daemon: a hang fails the test instead of blocking it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The simulated EEPROM.
pub const EEPROM: u8 = 0x50;
/// The simulated RTC.
pub const RTC: u8 = 0x68;
/// An address with no device.
pub const ABSENT: u8 = 0x51;

pub const OK: u8 = VIRTIO_I2C_MSG_OK;
pub const ERR: u8 = VIRTIO_I2C_MSG_ERR;

/// The path of the daemon binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vhost-device-i2c")
}

/// A fresh private directory for sockets.
pub fn temp_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/vhost-device-i2c-test-").expect("create temp dir")
}

/// The simulated devices every test daemon serves: a 24c02 at 0x50, a ds1338 at 0x68.
pub const SIMULATED: [&str; 4] = ["--simulate", "24c02@0x50", "--simulate", "ds1338@0x68"];

/// How the i2c daemon is started: the simulated devices, one queue per frontend.
pub fn launch() -> Launch {
    Launch::new(binary())
        .args(&SIMULATED)
        .frontend(FrontendOptions {
            num_queues: 1,
            ..Default::default()
        })
}

/// Starts the daemon with the simulated devices plus `extra` arguments and waits until all
/// `count` sockets exist.
pub fn start(extra: &[&str], count: usize) -> Daemon {
    launch().args(extra).sockets(count).start()
}

/// Starts the daemon with the simulated devices and one socket.
pub fn simulated() -> Daemon {
    start(&[], 1)
}

/// Runs the binary with `args` to completion (for command lines that make it exit), with a
/// deadline: a daemon that starts serving instead of exiting fails the test.
pub fn run_to_exit(args: &[&str]) -> Output {
    vhost_user_test_frontend::daemon::run_to_exit(binary(), args, TIMEOUT)
}

/// A write request: header, data, status.
pub fn write(addr: u8, data: &[u8], fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, false, fail_next).to_vec()),
        Desc::Out(data.to_vec()),
        Desc::In(1),
    ]
}

/// A read request of `len` bytes: header, buffer, status.
pub fn read(addr: u8, len: u32, fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, true, fail_next).to_vec()),
        Desc::In(len),
        Desc::In(1),
    ]
}

/// A zero-length request (SMBus quick): header and status only.
pub fn quick(addr: u8, read: bool, fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, read, fail_next).to_vec()),
        Desc::In(1),
    ]
}

/// The status byte of a completed request (the last writable buffer's last byte).
pub fn status(c: &Completion) -> u8 {
    *c.written
        .last()
        .and_then(|b| b.last())
        .expect("completion has a status byte")
}

/// The data a read request received (its first writable buffer, for [`read`] chains).
pub fn data(c: &Completion) -> &[u8] {
    &c.written[0]
}

/// Posts every chain of `requests` (one group or several), kicks once (as Linux does for
/// one transfer) and returns the completions in request order.
pub fn submit(fe: &mut TestFrontend, requests: &[Vec<Desc>], indirect: bool) -> Vec<Completion> {
    let q = fe.queue(0);
    // The whole batch becomes visible at once: a device that happens to be draining while
    // the chains are posted must not see (and run) a group cut in half.
    q.hold(true).expect("hold");
    let heads: Vec<u16> = requests
        .iter()
        .map(|r| q.post(r, indirect).expect("post"))
        .collect();
    q.hold(false).expect("publish");
    q.kick().expect("kick");
    heads
        .into_iter()
        .map(|h| q.wait_head(h, TIMEOUT).expect("completion"))
        .collect()
}

/// Runs one request and returns its completion.
pub fn one(fe: &mut TestFrontend, request: Vec<Desc>) -> Completion {
    fe.queue(0)
        .transact(&request, false, TIMEOUT)
        .expect("completion")
}

/// Reads `len` bytes of the device at `addr` from register/offset `reg`, as a write+read
/// group; asserts that both requests succeed.
pub fn read_reg(fe: &mut TestFrontend, addr: u8, reg: u8, len: u32) -> Vec<u8> {
    let done = submit(
        fe,
        &[write(addr, &[reg], true), read(addr, len, false)],
        false,
    );
    assert_eq!(status(&done[0]), OK, "register write: {done:?}");
    assert_eq!(done[0].used_len, 1);
    assert_eq!(status(&done[1]), OK, "read: {done:?}");
    assert_eq!(done[1].used_len, 1 + len);
    data(&done[1]).to_vec()
}

/// Writes `bytes` at register/offset `reg` of the device at `addr`; asserts success.
pub fn write_reg(fe: &mut TestFrontend, addr: u8, reg: u8, bytes: &[u8]) {
    let mut payload = vec![reg];
    payload.extend_from_slice(bytes);
    let done = one(fe, write(addr, &payload, false));
    assert_eq!((status(&done), done.used_len), (OK, 1), "write: {done:?}");
}

/// A good request that must succeed: proves the queue still serves.
pub fn still_serves(fe: &mut TestFrontend) {
    let done = one(fe, quick(EEPROM, false, false));
    assert_eq!(
        (status(&done), done.used_len),
        (OK, 1),
        "follow-up request: {done:?}"
    );
    assert_eq!(read_reg(fe, EEPROM, 0xf8, 1).len(), 1);
}
