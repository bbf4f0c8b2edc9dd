//! The virtio-gpio driver side of the daemons' tests, driving a device the way QEMU and
//! Linux's gpio-virtio driver do: line requests on the requestq, interrupt buffers on the
//! eventq, each answer checked. Protocol values come from `virtio_gpio_core::msg`, never
//! typed again.

// Test tooling: a failed request or wrong answer fails the calling test loudly.
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

pub use virtio_gpio_core::msg::encode_request;
pub use virtio_gpio_core::msg::msg_type::*;
use virtio_gpio_core::msg::{Direction, EventStatus, IrqType, Status};

use crate::{Completion, Desc, TestFrontend};

/// Upper bound of every wait on the daemon: a hang fails the test instead of blocking it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Response status: success.
pub const OK: u8 = Status::Ok as u8;
/// Response status: failure.
pub const ERR: u8 = Status::Err as u8;
/// Event status: the buffer came back without an interrupt.
pub const INVALID: u8 = EventStatus::Invalid as u8;
/// Event status: an interrupt.
pub const VALID: u8 = EventStatus::Valid as u8;

/// Line direction: none.
pub const DIR_NONE: u32 = Direction::None as u32;
/// Line direction: output.
pub const DIR_OUT: u32 = Direction::Out as u32;
/// Line direction: input.
pub const DIR_IN: u32 = Direction::In as u32;

/// Interrupt type: none.
pub const IRQ_NONE: u32 = IrqType::None as u32;
/// Interrupt type: rising edge.
pub const IRQ_RISING: u32 = IrqType::EdgeRising as u32;
/// Interrupt type: falling edge.
pub const IRQ_FALLING: u32 = IrqType::EdgeFalling as u32;
/// Interrupt type: both edges.
pub const IRQ_BOTH: u32 = IrqType::EdgeBoth as u32;
/// Interrupt type: level high.
pub const IRQ_HIGH: u32 = IrqType::LevelHigh as u32;
/// Interrupt type: level low.
pub const IRQ_LOW: u32 = IrqType::LevelLow as u32;

/// The requestq.
pub const REQUESTQ: usize = 0;
/// The eventq.
pub const EVENTQ: usize = 1;

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
/// The input of the sentinel pair.
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

/// One correct answer from a fresh device (the probe of the shared tests): line 0 is not
/// configured (nothing of an earlier connection survives), and driven high and then low it
/// drives its simulated partner, line 1, the same.
pub fn probe(fe: &mut TestFrontend) {
    assert_eq!(
        ok(fe, GET_DIRECTION, 0, 0),
        0,
        "line 0 of a fresh device is unconfigured"
    );
    output(fe, 0, 1);
    ok(fe, SET_DIRECTION, 1, DIR_IN);
    assert_eq!(ok(fe, GET_VALUE, 1, 0), 1, "line 1 follows line 0 high");
    ok(fe, SET_VALUE, 0, 0);
    assert_eq!(ok(fe, GET_VALUE, 1, 0), 0, "line 1 follows line 0 low");
}
