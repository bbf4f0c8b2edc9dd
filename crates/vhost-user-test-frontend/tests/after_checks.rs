//! Each after-check of the hostile-frontend suite ([`Dut::check_after`]) is seen to fail
//! against a deliberately broken stand-in daemon (the `broken-backend` binary of this
//! crate) and to pass against the same stand-in behaving: a spin fails the idle-CPU check,
//! a flood the log bound, an unanswered GET_VRING_BASE its check, kept descriptors the
//! descriptor check, each alone. And a misbehaviour in one middle round of an attack is
//! caught in that round.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use vhost_user_test_frontend::Desc;
use vhost_user_test_frontend::dut::{Dut, Subject, Target, chain};
use vhost_user_test_frontend::raw::{RawFrontend, code};

const BINARY: &str = env!("CARGO_BIN_EXE_broken-backend");

/// The stand-in answers GET_FEATURES; that is its whole "device".
fn probe(fe: &mut RawFrontend) -> Result<(), String> {
    fe.conn
        .call(code::GET_FEATURES, &[], Duration::from_secs(1))
        .map(drop)
        .map_err(|e| format!("GET_FEATURES: {}", chain(&e)))
}

fn request() -> Vec<Desc> {
    vec![Desc::Out(vec![0]), Desc::In(1)]
}

fn target(args: &'static [&'static str]) -> Target {
    Target {
        subject: Subject {
            name: "stand-in",
            // Never set: the stand-in is always this crate's build.
            bin_var: "VHOST_DEVICE_STAND_IN_BIN",
            workspace_build: BINARY,
            device_args: args,
            device_args_for: |_| Vec::new(),
            num_queues: 1,
            queue_size: 64,
            probe: |_| {},
        },
        queue_size: 64,
        probe,
        request,
    }
}

/// What every check message starts with, by kind.
const CPU: &str = "busy while idle";
const LOG: &str = "log grew by";
const VRING_BASE: &str = "GET_VRING_BASE 0 on the attacking connection got no reply";
const FDS: &str = "open descriptors grew";
const ALL: [&str; 4] = [CPU, LOG, VRING_BASE, FDS];

/// Starts the stand-in, connects an "attacker" (a normal handshake) and runs the checks
/// with it connected; returns their verdict.
fn checks_against(args: &'static [&'static str]) -> Result<(), String> {
    let mut dut = Dut::start(target(args)).expect("the stand-in starts and answers");
    dut.mark();
    let attacker = dut
        .good(dut.options())
        .expect("handshake with the stand-in");
    dut.check_after(Some(attacker))
}

/// The checks fail, by the check of `kind` and no other.
fn fails_by(args: &'static [&'static str], kind: &str) {
    let err = checks_against(args).expect_err("the broken stand-in passed the checks");
    assert!(err.contains(kind), "expected {kind:?}: {err}");
    for other in ALL.iter().filter(|k| **k != kind) {
        assert!(!err.contains(other), "only {kind:?} should fail: {err}");
    }
}

#[test]
fn a_behaving_stand_in_passes_every_check() {
    checks_against(&["--misbehave", "none"]).unwrap();
}

#[test]
fn a_spinning_daemon_fails_the_idle_cpu_check() {
    fails_by(&["--misbehave", "spin"], CPU);
}

#[test]
fn a_flooding_daemon_fails_the_log_bound() {
    fails_by(&["--misbehave", "flood"], LOG);
}

#[test]
fn a_daemon_ignoring_get_vring_base_fails_its_check() {
    fails_by(&["--misbehave", "ignore-get-vring-base"], VRING_BASE);
}

#[test]
fn a_daemon_keeping_descriptors_fails_the_descriptor_check() {
    fails_by(&["--misbehave", "leak-fds"], FDS);
}

/// Connection 1 is Dut::start's fresh answer; each round of the attack then opens two (the
/// attacker, then the checks' fresh connection), so connection 4 is round 2's attacker.
#[test]
fn a_flood_in_a_middle_round_is_caught_in_that_round() {
    let mut dut = Dut::start(target(&["--misbehave", "flood", "--only-connection", "4"]))
        .expect("the stand-in starts and answers");
    dut.mark();
    let err = vhost_user_test_frontend::attacks::vring_index_out_of_range(&mut dut)
        .expect_err("the flood in round 2 went unnoticed");
    assert!(
        err.starts_with("after SET_VRING_NUM u32::MAX: log grew by"),
        "{err}"
    );
    assert!(dut.take_findings().is_empty());
}

#[test]
fn the_same_attack_passes_against_the_behaving_stand_in() {
    let mut dut = Dut::start(target(&["--misbehave", "none"])).unwrap();
    dut.mark();
    vhost_user_test_frontend::attacks::vring_index_out_of_range(&mut dut).unwrap();
    assert_eq!(dut.take_findings(), Vec::<String>::new());
}
