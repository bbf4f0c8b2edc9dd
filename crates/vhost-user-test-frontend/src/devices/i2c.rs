//! The virtio-i2c driver side of the daemons' tests: requests (write, read, zero-length,
//! FAIL_NEXT groups) built with the core crate's encoder, submitted through a
//! [`TestFrontend`], and their status bytes checked. Protocol values come from
//! `virtio_i2c_core`, never typed again.

// Test tooling: a failed request or wrong answer fails the calling test loudly.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use virtio_i2c_core::request::encode_header;
use virtio_i2c_core::{VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK};

use crate::{Completion, Desc, TestFrontend};

/// Upper bound of every wait on the daemon: a hang fails the test instead of blocking it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The simulated EEPROM.
pub const EEPROM: u8 = 0x50;
/// The simulated RTC.
pub const RTC: u8 = 0x68;
/// An address with no device.
pub const ABSENT: u8 = 0x51;

/// The status byte of a request that succeeded.
pub const OK: u8 = VIRTIO_I2C_MSG_OK;
/// The status byte of a request that failed.
pub const ERR: u8 = VIRTIO_I2C_MSG_ERR;

/// The simulated devices the test daemons serve: a 24c02 at 0x50, a ds1338 at 0x68.
pub const SIMULATED: [&str; 4] = ["--simulate", "24c02@0x50", "--simulate", "ds1338@0x68"];

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
    assert_eq!(done[1].used_len, len.saturating_add(1));
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
