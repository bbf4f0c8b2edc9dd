//! The daemon's life as a process and a vhost-user device: feature negotiation, a new
//! frontend after a disconnect, several sockets, termination signals (SIGTERM, SIGINT,
//! SIGHUP), `--print-capabilities`, rejected command lines and `--fd` socket activation.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_test_frontend::devices::i2c::*;
use vmm_sys_util::tempdir::TempDir;

/// A fresh private directory for sockets.
fn temp_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/vhost-device-i2c-test-").expect("create temp dir")
}

#[test]
fn sigterm_with_a_connected_frontend_exits_0_at_once_and_removes_the_socket() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    still_serves(&mut fe);
    // Requests in flight at the signal (an unfinished group) must not hold up the exit.
    let q = fe.queue(0);
    q.post(&write(EEPROM, &[0x10], true), false).unwrap();
    q.kick().unwrap();
    assert!(d.socket(0).exists());
    d.stop_at_once(libc::SIGTERM);
    drop(fe);
}

/// Runs the daemon with a bad command line; checks the exit status (1), the one-line error
/// naming the problem, and that no socket was created.
fn rejected(extra: &[&str], mentions: &[&str]) {
    let dir = temp_dir();
    let base = dir.as_path().join("i2c.sock");
    let mut args = vec!["-s", base.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = SUBJECT.run_to_exit(&args, TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 1: a refused configuration (2 would be a usage error from the parser).
    assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", out.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{extra:?}: expected one line, got:\n{stderr}"
    );
    for m in mentions {
        assert!(
            lines[0].contains(m),
            "{extra:?}: {:?} does not mention {m:?}",
            lines[0]
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.as_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{extra:?} left {left:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn duplicate_address_is_rejected() {
    rejected(
        &["--simulate", "24c02@0x50", "--simulate", "ds1338@0x50"],
        &["0x50", "more than once"],
    );
    // The same address in decimal and hex, across --device-list and --simulate.
    rejected(
        &["--simulate", "24c02@80", "-l", "99:0x50"],
        &["0x50", "more than once"],
    );
    // The positive check of the same path: the two models at distinct addresses serve.
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    still_serves(&mut fe);
    d.assert_running();
}

#[test]
fn unknown_option_is_a_usage_error() {
    let dir = temp_dir();
    let base = dir.as_path().join("i2c.sock");
    let base = base.to_str().unwrap();
    let out = SUBJECT.run_to_exit(
        &["-s", base, "--simulate", "24c02@0x50", "--bogus"],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("--bogus"), "{err}");
    assert_eq!(std::fs::read_dir(dir.as_path()).unwrap().count(), 0);
}

#[test]
fn address_out_of_range_is_rejected() {
    rejected(&["--simulate", "24c02@0x78"], &["0x78"]);
    rejected(&["--simulate", "24c02@0x02"], &["0x02"]);
    rejected(&["-l", "99:0x78"], &["0x78"]);
}

#[test]
fn unknown_model_is_rejected() {
    rejected(&["--simulate", "24c99@0x50"], &["24c99"]);
    rejected(&["--simulate", "24c02"], &["24c02"]);
}

#[test]
fn missing_adapter_is_rejected_before_binding() {
    rejected(&["-l", "99:0x50"], &["i2c-99"]);
    // Also when simulated devices come with it.
    rejected(&["-l", "99:0x50", "--simulate", "ds1338@0x68"], &["i2c-99"]);
    rejected(
        &["-l", "no such adapter name:0x50"],
        &["no such adapter name"],
    );
}

#[test]
fn no_device_is_rejected() {
    rejected(&[], &["device"]);
}

#[test]
fn negotiation_offers_the_virtio_i2c_features() {
    let d = SUBJECT.start();
    let fe = d.connect(0);
    let offered = fe.offered_features();
    for (bit, name) in [
        (32, "VERSION_1"),
        (28, "INDIRECT_DESC"),
        (29, "EVENT_IDX"),
        (30, "PROTOCOL_FEATURES"),
        (0, "VIRTIO_I2C_F_ZERO_LENGTH_REQUEST"),
    ] {
        assert_ne!(offered & (1 << bit), 0, "{name} not offered: {offered:#x}");
    }
    // Nothing the frontend wants was refused.
    assert_eq!(fe.acked_features() & offered, fe.acked_features());
    assert!(fe.event_idx());
    let proto = VhostUserProtocolFeatures::from_bits_truncate(fe.protocol_features());
    assert!(proto.contains(VhostUserProtocolFeatures::MQ), "{proto:?}");
    assert!(
        proto.contains(VhostUserProtocolFeatures::REPLY_ACK),
        "{proto:?}"
    );
    assert_eq!(fe.backend_queue_num(), Some(1));
}

#[test]
fn a_new_connection_works_after_a_disconnect() {
    let d = SUBJECT.start();
    {
        let mut fe = d.connect(0);
        write_reg(&mut fe, EEPROM, 0x80, &[0x42]);
        assert_eq!(read_reg(&mut fe, EEPROM, 0x80, 1), [0x42]);
    }
    {
        // Leave requests in flight (including an unfinished group) when disconnecting.
        let mut fe = d.connect(0);
        let q = fe.queue(0);
        q.post(&write(EEPROM, &[0x90], true), false).unwrap();
        q.post(&read(EEPROM, 4, false), false).unwrap();
        q.post(&write(EEPROM, &[0x98], true), false).unwrap();
        q.kick().unwrap();
    }
    for _ in 0..2 {
        let mut fe = d.connect(0);
        still_serves(&mut fe);
        write_reg(&mut fe, EEPROM, 0x88, &[0x24]);
        assert_eq!(read_reg(&mut fe, EEPROM, 0x88, 1), [0x24]);
    }
    let mut d = d;
    assert!(d.is_running());
}

#[test]
fn two_sockets_serve_two_frontends_at_once() {
    let d = SUBJECT.launch_sockets(2).start();
    let mut fe0 = d.connect(0);
    let mut fe1 = d.connect(1);
    // Both connected at once; both transfer, interleaved.
    still_serves(&mut fe0);
    still_serves(&mut fe1);
    // They share the simulated devices.
    write_reg(&mut fe0, EEPROM, 0xa0, &[0xde, 0xad]);
    assert_eq!(read_reg(&mut fe1, EEPROM, 0xa0, 2), [0xde, 0xad]);
    write_reg(&mut fe1, RTC, 0x10, &[0xbe]);
    assert_eq!(read_reg(&mut fe0, RTC, 0x10, 1), [0xbe]);
    // One frontend leaving does not disturb the other, and its socket takes a new one.
    drop(fe0);
    still_serves(&mut fe1);
    let mut fe0 = d.connect(0);
    assert_eq!(read_reg(&mut fe0, EEPROM, 0xa0, 2), [0xde, 0xad]);
}

// Signals, --print-capabilities and --fd, as for every daemon.
vhost_user_test_frontend::lifecycle_tests!(SUBJECT);

/// What the daemon says of guest memory a frontend could shrink under it (memory.rs).
const UNSEALED: &str = "not sealed against shrinking";

/// QEMU seals its memfd memory backend against shrinking (the test frontend does too): such
/// memory cannot be cut from under the daemon, and nothing is said about it.
#[test]
fn guest_memory_sealed_against_shrinking_is_served_without_a_word() {
    let mut d = SUBJECT.start();
    for _ in 0..2 {
        let mut fe = d.connect(0);
        still_serves(&mut fe);
    }
    d.assert_running();
    let log = d.log();
    assert!(!log.contains(UNSEALED), "sealed memory reported:\n{log}");
}

/// Unsealed memory is served too (refusing it would refuse QEMU without sealing), with one
/// info line per run that its frontend could end the process, not one per connection.
#[test]
fn unsealed_guest_memory_is_served_and_said_once_per_run() {
    let mut d = SUBJECT.start();
    let unsealed = vhost_user_test_frontend::FrontendOptions {
        seal_memory: false,
        ..d.frontend_options()
    };
    for _ in 0..2 {
        let mut fe = d.connect_with(0, unsealed.clone());
        still_serves(&mut fe);
    }
    d.assert_running();
    let lines: Vec<String> = d
        .log_lines()
        .into_iter()
        .filter(|l| l.contains(UNSEALED))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line across two connections:\n{}",
        d.log()
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("INFO") && l.contains("SIGBUS")),
        "{lines:?}"
    );
}
