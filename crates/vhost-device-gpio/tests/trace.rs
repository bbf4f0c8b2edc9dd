//! `--trace`: one line per message with the line's name and the result, one per returned
//! eventq buffer; nothing of the kind without the option.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost_user_test_frontend::daemon::Daemon;
use vhost_user_test_frontend::devices::gpio::*;

/// The daemon on a simulated 8-line chip at the default log level, plus `extra`.
fn start_traced(extra: &[&str]) -> Daemon {
    SUBJECT
        .launch_bare()
        .args(&["-l", "s8"])
        .args(extra)
        .rust_log(None)
        .start()
}

fn wait_for_line(d: &mut Daemon, line: &str) {
    let found = d.wait_for_log(line, TIMEOUT);
    assert!(found.ends_with(line), "{found:?} does not end in {line:?}");
}

fn trace_lines(d: &Daemon) -> usize {
    d.log_lines()
        .iter()
        .filter(|l| l.contains("vhost_device_trace"))
        .count()
}

#[test]
fn messages_and_interrupts_are_traced_with_line_names() {
    let mut d = start_traced(&["--trace"]);
    let mut fe = d.connect(0);
    // Line 0 drives line 1 (the simulated chip wires them).
    ok(&mut fe, SET_VALUE, 0, 0);
    wait_for_line(&mut d, "SET_VALUE 0 (sim-0) 0 -> OK");
    ok(&mut fe, SET_DIRECTION, 0, 1);
    wait_for_line(&mut d, "SET_DIRECTION 0 (sim-0) out -> OK");
    ok(&mut fe, SET_DIRECTION, 1, 2);
    ok(&mut fe, SET_IRQ_TYPE, 1, 1);
    wait_for_line(&mut d, "SET_IRQ_TYPE 1 (sim-1) edge-rising -> OK");
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
    wait_for_line(&mut d, "IRQ 1 (sim-1) edge-rising delivered");
    // An eventq buffer for a line without an interrupt type comes back INVALID.
    let head = arm(&mut fe, 3);
    expect_event(&mut fe, head, INVALID);
    wait_for_line(&mut d, "IRQ 3 (sim-3) returned INVALID");
}

#[test]
fn without_the_option_nothing_is_traced() {
    let mut d = start_traced(&[]);
    let mut fe = d.connect(0);
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_DIRECTION, 0, 1);
    d.wait_for_log("frontend connected", TIMEOUT);
    assert_eq!(trace_lines(&d), 0, "{}", d.log());
}
