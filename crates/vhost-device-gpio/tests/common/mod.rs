//! Shared helpers of the integration tests: start the real `vhost-device-gpio` binary
//! through the shared daemon harness ([`vhost_user_test_frontend::daemon`]) and drive it
//! the way QEMU and Linux's gpio-virtio driver do. Protocol values come from
//! `virtio_gpio_core::msg`, never typed again.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;

pub use vhost_user_test_frontend::daemon::{Daemon, Launch};
use vhost_user_test_frontend::{Completion, Desc, FrontendOptions, TestFrontend};
pub use virtio_gpio_core::msg::encode_request;
pub use virtio_gpio_core::msg::msg_type::*;
use virtio_gpio_core::msg::{Direction, EventStatus, IrqType, Status};

/// Upper bound of every wait on the daemon: a hang fails the test instead of blocking it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub const OK: u8 = Status::Ok as u8;
pub const ERR: u8 = Status::Err as u8;
pub const INVALID: u8 = EventStatus::Invalid as u8;
pub const VALID: u8 = EventStatus::Valid as u8;

pub const DIR_NONE: u32 = Direction::None as u32;
pub const DIR_OUT: u32 = Direction::Out as u32;
pub const DIR_IN: u32 = Direction::In as u32;

pub const IRQ_NONE: u32 = IrqType::None as u32;
pub const IRQ_RISING: u32 = IrqType::EdgeRising as u32;
pub const IRQ_FALLING: u32 = IrqType::EdgeFalling as u32;
pub const IRQ_BOTH: u32 = IrqType::EdgeBoth as u32;
pub const IRQ_HIGH: u32 = IrqType::LevelHigh as u32;
pub const IRQ_LOW: u32 = IrqType::LevelLow as u32;

/// requestq and eventq.
pub const REQUESTQ: usize = 0;
pub const EVENTQ: usize = 1;

/// The path of the daemon binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vhost-device-gpio")
}

/// Frontend options as QEMU >= 9 uses them: two queues of 64 entries.
pub fn frontend_options() -> FrontendOptions {
    FrontendOptions {
        num_queues: 2,
        queue_size: 64,
        ..FrontendOptions::default()
    }
}

/// How the gpio daemon is started (add `-l ...`), two queues per frontend.
pub fn launch() -> Launch {
    Launch::new(binary()).frontend(frontend_options())
}

/// Starts the daemon with `args` and one socket.
pub fn start(args: &[&str]) -> Daemon {
    launch().args(args).start()
}

/// Starts the daemon with one simulated 8-line chip (`-l s8`).
pub fn sim8() -> Daemon {
    start(&["-l", "s8"])
}

/// Runs the binary with `args` to completion (for command lines that make it exit), with a
/// deadline: a daemon that starts serving instead of exiting fails the test.
pub fn run_to_exit(args: &[&str]) -> Output {
    vhost_user_test_frontend::daemon::run_to_exit(binary(), args, TIMEOUT)
}

/// Sends one chain on the requestq and waits for it.
pub fn transact(fe: &mut TestFrontend, chain: &[Desc]) -> Completion {
    fe.queue(REQUESTQ)
        .transact(chain, false, TIMEOUT)
        .unwrap_or_else(|e| panic!("request {chain:?}: {e:?}"))
}

/// Sends one request with a 2-byte response buffer; returns (status, value).
pub fn req(fe: &mut TestFrontend, t: u16, line: u16, value: u32) -> (u8, u8) {
    let c = transact(
        fe,
        &[
            Desc::Out(encode_request(t, line, value).to_vec()),
            Desc::In(2),
        ],
    );
    assert_eq!(c.used_len, 2, "used length of a response: {c:?}");
    (c.written[0][0], c.written[0][1])
}

/// Sends a request that must succeed; returns the value byte.
pub fn ok(fe: &mut TestFrontend, t: u16, line: u16, value: u32) -> u8 {
    let (status, v) = req(fe, t, line, value);
    assert_eq!(status, OK, "request type {t} line {line} value {value}");
    v
}

/// Sends a request that must fail with ERR.
pub fn err(fe: &mut TestFrontend, t: u16, line: u16, value: u32) {
    assert_eq!(
        req(fe, t, line, value).0,
        ERR,
        "type {t} line {line} value {value}"
    );
}

/// Queues an eventq buffer for `line` (unmasks it); returns its head.
pub fn arm(fe: &mut TestFrontend, line: u16) -> u16 {
    let q = fe.queue(EVENTQ);
    let head = q
        .post(
            &[Desc::Out(line.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .expect("post an eventq buffer");
    q.kick().expect("kick the eventq");
    head
}

/// Waits for the eventq buffer `head` to come back with `status`.
pub fn expect_event(fe: &mut TestFrontend, head: u16, status: u8) {
    let c = fe
        .queue(EVENTQ)
        .wait_head(head, TIMEOUT)
        .unwrap_or_else(|e| panic!("eventq buffer {head}: {e:?}"));
    assert_eq!(c.used_len, 1, "eventq used length: {c:?}");
    assert_eq!(c.written[0][0], status, "eventq status: {c:?}");
}

/// The sentinel pair of [`expect_quiet`]: line `SENTINEL_IN` watches `SENTINEL_OUT`.
pub const SENTINEL_OUT: u16 = 6;
pub const SENTINEL_IN: u16 = 7;

/// Checks that no eventq buffer came back, without a time window: raises an edge on the
/// sentinel pair (lines 6-7, set up by [`quiet_check_setup`]) and waits for its event.
/// The chip reports edges through one notification in the order they happened and the
/// eventq is completed in order, so any interrupt the earlier actions raised or any buffer
/// due at queue time comes back before the sentinel's.
pub fn expect_quiet(fe: &mut TestFrontend) {
    let level = ok(fe, GET_VALUE, SENTINEL_OUT, 0);
    let head = arm(fe, SENTINEL_IN);
    ok(fe, SET_VALUE, SENTINEL_OUT, u32::from(level == 0));
    let c = fe
        .queue(EVENTQ)
        .wait_used(TIMEOUT)
        .unwrap_or_else(|e| panic!("sentinel event on line {SENTINEL_IN}: {e:?}"));
    assert_eq!(
        (c.head, c.used_len, c.written[0][0]),
        (head, 1, VALID),
        "an eventq buffer came back before the sentinel: {c:?}"
    );
}

/// Prepares the sentinel pair of [`expect_quiet`] (line 6 output, line 7 input with both
/// edges). Needs a chip of at least 8 lines.
pub fn quiet_check_setup(fe: &mut TestFrontend) {
    output(fe, SENTINEL_OUT, 0);
    ok(fe, SET_DIRECTION, SENTINEL_IN, DIR_IN);
    ok(fe, SET_IRQ_TYPE, SENTINEL_IN, IRQ_BOTH);
}

/// Makes `line` an output at `value`, as Linux does (value first, then direction).
pub fn output(fe: &mut TestFrontend, line: u16, value: u32) {
    ok(fe, SET_VALUE, line, value);
    ok(fe, SET_DIRECTION, line, DIR_OUT);
}

/// Line 1 as an input with interrupt type `irq`, line 0 as a low output driving it; also
/// prepares the sentinel pair of [`expect_quiet`].
pub fn pair_with_irq(fe: &mut TestFrontend, irq: u32) {
    quiet_check_setup(fe);
    output(fe, 0, 0);
    ok(fe, SET_DIRECTION, 1, DIR_IN);
    ok(fe, SET_IRQ_TYPE, 1, irq);
}

/// The GET_LINE_NAMES blob of a simulated chip of `n` lines.
pub fn names_blob(n: u16) -> Vec<u8> {
    (0..n)
        .flat_map(|l| format!("sim-{l}\0").into_bytes())
        .collect()
}
