//! `--trace`: one line per FAIL_NEXT group, in `i2ctransfer` syntax, with the result; and
//! nothing of the kind without the option.

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
use vhost_user_test_frontend::devices::i2c::*;

/// Waits until the daemon's log has a line ending in `line` (trace lines are written as
/// requests are answered).
fn wait_for_line(d: &mut Daemon, line: &str) {
    let found = d.wait_for_log(line, TIMEOUT);
    assert!(found.ends_with(line), "{found:?} does not end in {line:?}");
}

fn trace_lines(d: &Daemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains("vhost_device_trace"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_group_is_traced_as_i2ctransfer_arguments() {
    let mut d = SUBJECT.launch().args(&["--trace"]).start();
    let mut fe = d.connect(0);
    write_reg(&mut fe, EEPROM, 0x00, &[0xde, 0xad]);
    wait_for_line(&mut d, "w3@0x50 0x00 0xde 0xad -> OK");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x00, 2), [0xde, 0xad]);
    wait_for_line(&mut d, "w1@0x50 0x00 r2@0x50 -> 0xde 0xad");
    let done = submit(&mut fe, &[write(ABSENT, &[0x00, 0x01], false)], false);
    assert_eq!(status(&done[0]), ERR);
    wait_for_line(&mut d, "w2@0x51 0x00 0x01 -> ERR (no device)");
    let done = submit(&mut fe, &[quick(RTC, false, false)], false);
    assert_eq!(status(&done[0]), OK);
    wait_for_line(&mut d, "w0@0x68 -> OK");
    // One line per group, not per request.
    assert_eq!(trace_lines(&d).len(), 4, "{}", d.log());
}

#[test]
fn without_the_option_nothing_is_traced() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    write_reg(&mut fe, EEPROM, 0x00, &[0x01]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x00, 1), [0x01]);
    // The positive path (the same requests with --trace) is the test above; here the log
    // has the connection line but no trace line.
    d.wait_for_log("frontend connected", TIMEOUT);
    assert!(trace_lines(&d).is_empty(), "{}", d.log());
}

/// The hex bytes `data` as the trace shows them.
fn hex(data: &[u8]) -> String {
    data.iter()
        .map(|b| format!("{b:#04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message of more than 16 bytes is shown as its first 16 bytes and `...`, in the
/// transfer and in what a read returned; one of exactly 16 bytes is shown whole.
#[test]
fn messages_over_16_bytes_are_cut_with_an_ellipsis() {
    let mut d = SUBJECT.launch().args(&["--trace"]).start();
    let mut fe = d.connect(0);
    let mut sixteen = vec![0x00];
    sixteen.extend(0x20..0x2f_u8);
    assert_eq!(sixteen.len(), 16);
    one(&mut fe, write(EEPROM, &sixteen, false));
    let whole = format!("w16@0x50 {} -> ", hex(&sixteen));
    let line = d.wait_for_log(&whole, TIMEOUT);
    assert!(!line.contains("..."), "{line}");

    let long: Vec<u8> = (0x40..0x54_u8).collect();
    let mut message = vec![0x00];
    message.extend_from_slice(&long);
    one(&mut fe, write(EEPROM, &message, false));
    let cut = format!("w21@0x50 {} ... -> ", hex(&message[..16]));
    d.wait_for_log(&cut, TIMEOUT);

    let read_back = read_reg(&mut fe, EEPROM, 0x00, 20);
    let shown = format!("w1@0x50 0x00 r20@0x50 -> {} ...", hex(&read_back[..16]));
    wait_for_line(&mut d, &shown);
}
