//! Hostile and malformed requests on both queues: each gets ERR (or INVALID on the eventq)
//! when a status byte can be written, used length 0 otherwise, and the device keeps serving.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost_user_test_frontend::devices::gpio::*;
use vhost_user_test_frontend::{
    Completion, Desc, RawDesc, TestFrontend, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

/// Far beyond the test frontend's guest memory.
const OUTSIDE: u64 = 0xffff_ffff_0000;

/// The request/response pair a test sends, and checks, in one place.
fn chain(fe: &mut TestFrontend, descs: &[Desc]) -> Completion {
    transact(fe, descs)
}

/// Checks a completion: used length and the bytes of the first writable buffer.
fn assert_completion(c: &Completion, used_len: u32, first: &[u8], what: &str) {
    assert_eq!(c.used_len, used_len, "{what}: {c:?}");
    assert_eq!(
        c.written.first().map(Vec::as_slice).unwrap_or_default(),
        first,
        "{what}: {c:?}"
    );
}

#[test]
fn bad_lines_types_and_values_get_err_and_good_ones_ok() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    // Line 7 is the last line: the same requests succeed there, fail one past it.
    assert_eq!(ok(&mut fe, GET_DIRECTION, 7, 0), 0);
    err(&mut fe, GET_DIRECTION, 8, 0);
    err(&mut fe, GET_VALUE, u16::MAX, 0);
    ok(&mut fe, SET_DIRECTION, 7, DIR_IN);
    err(&mut fe, SET_DIRECTION, 8, DIR_OUT);
    ok(&mut fe, SET_VALUE, 7, 1);
    err(&mut fe, SET_VALUE, 100, 1);
    ok(&mut fe, SET_IRQ_TYPE, 7, IRQ_BOTH);
    err(&mut fe, SET_IRQ_TYPE, 8, IRQ_BOTH);
    // Unknown message types around the six known ones.
    for t in [0, 7, u16::MAX] {
        err(&mut fe, t, 0, 0);
    }
    // Values and directions just past the valid ones.
    ok(&mut fe, SET_VALUE, 0, 1);
    err(&mut fe, SET_VALUE, 0, 2);
    ok(&mut fe, SET_DIRECTION, 0, DIR_IN);
    err(&mut fe, SET_DIRECTION, 0, 3);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    for good in [
        IRQ_NONE,
        IRQ_RISING,
        IRQ_FALLING,
        IRQ_BOTH,
        IRQ_HIGH,
        IRQ_LOW,
    ] {
        ok(&mut fe, SET_IRQ_TYPE, 1, good);
    }
    for bad in [5, 6, 7, 9, 16, u32::MAX] {
        err(&mut fe, SET_IRQ_TYPE, 1, bad);
    }
    // An interrupt type on an output is refused; on an input it was accepted above.
    output(&mut fe, 0, 0);
    err(&mut fe, SET_IRQ_TYPE, 0, IRQ_RISING);
    still_serves(&mut fe);
    d.assert_running();
}

/// A good request works after whatever came before: line 0 drives line 1.
fn still_serves(fe: &mut TestFrontend) {
    output(fe, 2, 1);
    ok(fe, SET_DIRECTION, 3, DIR_IN);
    assert_eq!(ok(fe, GET_VALUE, 3, 0), 1, "follow-up request");
    ok(fe, SET_DIRECTION, 2, DIR_NONE);
    ok(fe, SET_DIRECTION, 3, DIR_NONE);
}

#[test]
fn wrong_buffer_sizes_get_err_in_what_fits() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let good = encode_request(GET_DIRECTION, 0, 0).to_vec();
    let c = chain(&mut fe, &[Desc::Out(good.clone()), Desc::In(2)]);
    assert_completion(&c, 2, &[OK, 0], "the well-formed request");
    let c = chain(&mut fe, &[Desc::Out(good.clone()), Desc::In(3)]);
    assert_completion(&c, 2, &[ERR, 0, 0], "3-byte response buffer");
    let c = chain(&mut fe, &[Desc::Out(good.clone()), Desc::In(1)]);
    assert_completion(&c, 1, &[ERR], "1-byte response buffer");
    // No response buffer at all: nothing can be written.
    let c = chain(&mut fe, &[Desc::Out(good.clone())]);
    assert_completion(&c, 0, &[], "no response buffer");
    // Short and long requests.
    let c = chain(&mut fe, &[Desc::Out(good[..7].to_vec()), Desc::In(2)]);
    assert_completion(&c, 2, &[ERR, 0], "7-byte request");
    let mut long = good.clone();
    long.push(0);
    let c = chain(&mut fe, &[Desc::Out(long), Desc::In(2)]);
    assert_completion(&c, 2, &[ERR, 0], "9-byte request");
    // GET_LINE_NAMES needs exactly 1 + gpio_names_size bytes.
    let names = encode_request(GET_LINE_NAMES, 0, 0).to_vec();
    let size = u32::try_from(names_blob(8).len()).unwrap();
    let c = chain(&mut fe, &[Desc::Out(names.clone()), Desc::In(size + 1)]);
    assert_eq!((c.used_len, c.written[0][0]), (size + 1, OK), "{c:?}");
    let c = chain(&mut fe, &[Desc::Out(names), Desc::In(size)]);
    assert_eq!((c.used_len, c.written[0][0]), (2, ERR), "{c:?}");
    // Still serving, correctly.
    let c = chain(&mut fe, &[Desc::Out(good), Desc::In(2)]);
    assert_completion(&c, 2, &[OK, 0], "after the bad ones");
}

#[test]
fn unusable_chains_come_back_with_used_length_0_or_err() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    let good = encode_request(GET_DIRECTION, 0, 0).to_vec();
    // Response buffer before the request (device-readable after device-writable): the
    // chain's layout is refused as a whole, so nothing is written.
    let c = chain(&mut fe, &[Desc::In(2), Desc::Out(good.clone())]);
    assert_completion(&c, 0, &[0, 0], "writable before readable");
    let q = fe.queue(REQUESTQ);
    // Request outside guest memory, response buffer usable: ERR.
    let resp = q.alloc_buffer(2).unwrap();
    let head = q
        .post_raw(&[
            RawDesc {
                addr: OUTSIDE,
                len: 8,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            RawDesc {
                addr: resp,
                len: 2,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        ])
        .unwrap();
    q.kick().unwrap();
    let c = q.wait_head(head, TIMEOUT).unwrap();
    let mut status = [0xee_u8; 2];
    vm_memory::Bytes::read_slice(q.memory(), &mut status, vm_memory::GuestAddress(resp)).unwrap();
    assert_eq!(
        (c.used_len, status),
        (2, [ERR, 0]),
        "request outside memory"
    );
    // Both buffers outside guest memory: no status byte can be written.
    let head = q
        .post_raw(&[
            RawDesc {
                addr: OUTSIDE,
                len: 8,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            RawDesc {
                addr: OUTSIDE + 0x1000,
                len: 2,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        ])
        .unwrap();
    q.kick().unwrap();
    let c = q.wait_head(head, TIMEOUT).unwrap();
    assert_eq!(c.used_len, 0, "everything outside memory: {c:?}");
    // A chain whose `next` leaves the descriptor table ends there: an 8-byte request with
    // no response buffer, returned with used length 0.
    let head = q
        .post_raw(&[RawDesc {
            addr: resp,
            len: 8,
            flags: VIRTQ_DESC_F_NEXT,
            next: 60_000,
        }])
        .unwrap();
    q.kick().unwrap();
    let c = q
        .wait_head(head, TIMEOUT)
        .unwrap_or_else(|e| panic!("chain with next beyond the table: {e:?}"));
    assert_eq!(c.used_len, 0, "next beyond the table: {c:?}");
    still_serves(&mut fe);
    d.assert_running();
}

#[test]
fn indirect_and_split_descriptors() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let r = encode_request(SET_VALUE, 2, 1).to_vec();
    let c = fe
        .queue(REQUESTQ)
        .transact(&[Desc::Out(r), Desc::In(2)], true, TIMEOUT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0].clone()), (2, vec![OK, 0]));
    let r = encode_request(SET_DIRECTION, 2, DIR_OUT);
    let c = fe
        .queue(REQUESTQ)
        .transact(
            &[
                Desc::Out(r[..3].to_vec()),
                Desc::Out(r[3..].to_vec()),
                Desc::In(1),
                Desc::In(1),
            ],
            true,
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(c.used_len, 2);
    assert_eq!(c.written, vec![vec![OK], vec![0]]);
    assert_eq!(ok(&mut fe, GET_VALUE, 2, 0), 1);
}

#[test]
fn malformed_eventq_buffers_come_back_invalid_or_with_used_length_0() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    // The well-formed buffer for a line without an interrupt type: INVALID at once.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, INVALID);
    // Held while the line has a type (the sentinel shows nothing came back).
    pair_with_irq(&mut fe, IRQ_RISING);
    let held = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    let e = fe.queue(EVENTQ);
    // A 3-byte line field: INVALID in the status byte.
    let c = e
        .transact(&[Desc::Out(vec![1, 0, 0]), Desc::In(1)], false, TIMEOUT)
        .unwrap();
    assert_completion(&c, 1, &[INVALID], "3-byte eventq request");
    let c = e
        .transact(&[Desc::Out(vec![1]), Desc::In(1)], false, TIMEOUT)
        .unwrap();
    assert_completion(&c, 1, &[INVALID], "1-byte eventq request");
    // No status byte: used length 0.
    let c = e
        .transact(&[Desc::Out(vec![1, 0])], false, TIMEOUT)
        .unwrap();
    assert_completion(&c, 0, &[], "eventq buffer without a status byte");
    // The held buffer is undisturbed and fires.
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, held, VALID);
    d.assert_running();
}
