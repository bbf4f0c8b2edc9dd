//! Line requests on simulated chips: names, directions, values, the wired pairs, and
//! descriptor layouts a driver may use.

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
use vhost_user_test_frontend::Desc;
use vhost_user_test_frontend::devices::gpio::*;

#[test]
fn line_names_layout() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let blob = names_blob(8);
    let len = u32::try_from(blob.len()).unwrap();
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(encode_request(GET_LINE_NAMES, 0, 0).to_vec()),
                Desc::In(len + 1),
            ],
            false,
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(c.used_len, len + 1);
    assert_eq!(c.written[0][0], OK);
    assert_eq!(&c.written[0][1..], blob.as_slice());
    // A buffer of the wrong size is an error.
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(encode_request(GET_LINE_NAMES, 0, 0).to_vec()),
                Desc::In(2),
            ],
            false,
            TIMEOUT,
        )
        .unwrap();
    assert_eq!((c.used_len, c.written[0].as_slice()), (2, &[ERR, 0][..]));
}

#[test]
fn direction_and_value() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    for line in 0..8 {
        assert_eq!(ok(&mut fe, GET_DIRECTION, line, 0), 0);
    }
    // SET_VALUE before SET_DIRECTION(OUT) takes effect when the line becomes an output.
    ok(&mut fe, SET_VALUE, 4, 1);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 4, DIR_OUT);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 1);
    ok(&mut fe, SET_VALUE, 4, 0);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 5, DIR_IN);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 5, 0), 2);
    // NONE discards the pending value: a new output starts low.
    ok(&mut fe, SET_VALUE, 4, 1);
    ok(&mut fe, SET_DIRECTION, 4, DIR_NONE);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 4, DIR_OUT);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 0);
}

#[test]
fn wired_pairs() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_DIRECTION, 3, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
    output(&mut fe, 0, 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 3, 0), 0, "other pairs unaffected");
    // The wiring works both ways.
    output(&mut fe, 3, 1);
    ok(&mut fe, SET_DIRECTION, 2, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 2, 0), 1);
    ok(&mut fe, SET_VALUE, 0, 0);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
    // A released driver leaves its partner low.
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_DIRECTION, 0, DIR_NONE);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
}
