//! The daemon's life as a process and a vhost-user device: feature and config negotiation,
//! a fresh device after a reconnect, several sockets, termination signals (SIGTERM, SIGINT,
//! SIGHUP), `--print-capabilities`, rejected command lines and `--fd` socket activation.

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
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_test_frontend::devices::gpio::*;
use vhost_user_test_frontend::{Desc, FrontendOptions};
use virtio_gpio_core::msg::{CONFIG_SIZE, VIRTIO_GPIO_F_IRQ};

#[test]
fn features_queues_and_config() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let offered = fe.offered_features();
    for (bit, name) in [
        (VIRTIO_GPIO_F_IRQ, "VIRTIO_GPIO_F_IRQ"),
        (28, "INDIRECT_DESC"),
        (29, "EVENT_IDX"),
        (32, "VERSION_1"),
    ] {
        assert_ne!(offered & (1 << bit), 0, "{name} not offered: {offered:#x}");
    }
    assert_ne!(
        offered & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(),
        0,
        "PROTOCOL_FEATURES not offered: {offered:#x}"
    );
    let proto = VhostUserProtocolFeatures::from_bits_truncate(fe.protocol_features());
    for wanted in [
        VhostUserProtocolFeatures::MQ,
        VhostUserProtocolFeatures::CONFIG,
        VhostUserProtocolFeatures::REPLY_ACK,
    ] {
        assert!(proto.contains(wanted), "{wanted:?} missing from {proto:?}");
    }
    assert_eq!(fe.backend_queue_num(), Some(2));
    let size = u32::try_from(names_blob(8).len()).unwrap();
    let mut want = vec![8, 0, 0, 0];
    want.extend_from_slice(&size.to_le_bytes());
    assert_eq!(want.len(), CONFIG_SIZE);
    assert_eq!(fe.get_config(0, 8).unwrap(), want);
    assert_eq!(fe.get_config(4, 4).unwrap(), size.to_le_bytes());
    // Partial reads inside the config space.
    assert_eq!(fe.get_config(0, 2).unwrap(), vec![8, 0]);
    assert_eq!(fe.get_config(2, 2).unwrap(), vec![0, 0]);
    // Reads past the end get a short (error) answer from the backend; the vhost crate's
    // frontend then blocks waiting for the missing bytes, so that case is covered by the
    // backend's unit test instead.
}

#[test]
fn reconnect_resets_state() {
    let mut d = SUBJECT.start();
    {
        let mut fe = d.connect(0);
        pair_with_irq(&mut fe, IRQ_RISING);
        ok(&mut fe, SET_VALUE, 0, 1);
        let _held = arm(&mut fe, 1);
        output(&mut fe, 4, 1);
        fe.disconnect();
    }
    let mut fe = d.connect(0);
    for line in [0, 1, 4, SENTINEL_OUT, SENTINEL_IN] {
        assert_eq!(ok(&mut fe, GET_DIRECTION, line, 0), 0, "line {line}");
    }
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_DIRECTION, 5, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0, "old driver released");
    assert_eq!(ok(&mut fe, GET_VALUE, 5, 0), 0, "old driver released");
    // No interrupt type survives, and no latched edge.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, INVALID);
    quiet_check_setup(&mut fe);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_RISING);
    let _held = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    d.assert_running();
}

#[test]
fn two_chips_at_once() {
    let d = SUBJECT
        .launch_bare()
        .args(&["-c", "2", "-l", "s8:s10"])
        .sockets(2)
        .start();
    let mut a = d.connect(0);
    let mut b = d.connect(1);
    assert_eq!(a.get_config(0, 2).unwrap(), vec![8, 0]);
    assert_eq!(b.get_config(0, 2).unwrap(), vec![10, 0]);
    err(&mut a, GET_DIRECTION, 8, 0);
    assert_eq!(ok(&mut b, GET_DIRECTION, 8, 0), 0);
    // Separate chips: wiring and interrupts do not cross.
    pair_with_irq(&mut a, IRQ_RISING);
    pair_with_irq(&mut b, IRQ_RISING);
    let ha = arm(&mut a, 1);
    let hb = arm(&mut b, 1);
    ok(&mut b, SET_VALUE, 0, 1);
    expect_event(&mut b, hb, VALID);
    expect_quiet(&mut a);
    assert_eq!(ok(&mut a, GET_VALUE, 1, 0), 0);
    ok(&mut a, SET_VALUE, 0, 1);
    expect_event(&mut a, ha, VALID);
}

#[test]
fn kick_before_ring_enable_is_not_lost() {
    let d = SUBJECT.start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            enable_rings: false,
            ..SUBJECT.frontend_options()
        },
    );
    let q = fe.queue(REQUESTQ);
    let head = q
        .post(
            &[
                Desc::Out(encode_request(GET_DIRECTION, 0, 0).to_vec()),
                Desc::In(2),
            ],
            false,
        )
        .unwrap();
    q.kick().unwrap();
    // A disabled ring is not served: nothing can come back. (This window can only make
    // the check weaker on a slow machine, never flaky.)
    let early = q.wait_used(std::time::Duration::from_millis(100));
    assert!(
        matches!(early, Err(vhost_user_test_frontend::Error::Timeout)),
        "served while disabled: {early:?}"
    );
    // Enabling the ring serves what was kicked before, with no new kick.
    fe.enable_ring(0, true).unwrap();
    fe.enable_ring(1, true).unwrap();
    let c = fe.queue(REQUESTQ).wait_head(head, TIMEOUT).unwrap();
    assert_eq!(c.used_len, 2);
    assert_eq!(c.written[0], vec![OK, 0]);
}

#[test]
fn sigterm_with_a_connected_frontend_exits_0_at_once_and_removes_the_socket() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    output(&mut fe, 0, 1);
    // An eventq buffer held (waiting for an interrupt) must not hold up the exit.
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_FALLING);
    let _held = arm(&mut fe, 1);
    assert!(d.socket(0).exists());
    d.stop_at_once(libc::SIGTERM);
    drop(fe);
}

/// Runs the daemon with a bad command line (`-s DIR/gpio.sock` prepended unless the line
/// has `--fd` or the marker `NO-SOCKET`);
/// checks the exit status (2: a usage error from the parser, 1: a refused configuration),
/// the one-line error naming the problem, and that no socket was
/// created.
fn rejected(extra: &[&str], code: i32, mentions: &str) {
    let dir =
        vmm_sys_util::tempdir::TempDir::new_with_prefix("/tmp/vhost-device-gpio-test-").unwrap();
    let base = dir.as_path().join("gpio.sock");
    let mut args = Vec::new();
    if !extra.contains(&"--fd") && !extra.contains(&"NO-SOCKET") {
        args.extend(["-s", base.to_str().unwrap()]);
    }
    args.extend(extra.iter().filter(|a| **a != "NO-SOCKET"));
    let out = SUBJECT.run_to_exit(&args, TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", out.status);
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line:\n{stderr}");
    assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.as_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{args:?} left {left:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_command_lines_fail_before_binding() {
    for (args, code, needle) in [
        (&[][..], 2, "--device-list"),
        (&["-l", "s8", "--bogus"], 2, "--bogus"),
        (&["-c", "2", "-l", "s8"], 1, "socket-count"),
        (&["-l", "s8:s8"], 1, "socket-count"),
        (&["-c", "2", "-l", "0:0"], 1, "more than once"),
        (&["-l", "s0"], 1, "s0"),
        (&["-l", "x"], 1, "\"x\""),
        (&["-l", "250"], 1, "/dev/gpiochip250"),
        (&["NO-SOCKET", "-l", "s8"], 2, "socket-path"),
        (&["--fd", "3", "-c", "2", "-l", "s1:s1"], 1, "exactly one"),
    ] {
        rejected(args, code, needle);
    }
    // The positive check of the same path: a good command line binds and serves.
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 0, 0), 0);
    d.assert_running();
}

// Signals, --print-capabilities and --fd, as for every daemon.
vhost_user_test_frontend::lifecycle_tests!(SUBJECT);
