//! The sandbox of the real `vhost-device-i2c` binary (checks shared with the other daemon in
//! vhost-user-test-frontend's `confinement` module): confined in every thread while
//! serving, as the test's user and as an unprivileged user (that one only as root, else skipped); a forbidden call kills it with SIGSYS under
//! the default `--seccomp kill` (and under `trap`) and goes through under `--seccomp log`; Landlock refuses new
//! opens; `--sandbox none` turns it all off.
#![allow(clippy::unwrap_used)]

use vhost_user_test_frontend::confinement::{self, Subject};

const SUBJECT: Subject = Subject {
    binary: env!("CARGO_BIN_EXE_vhost-device-i2c"),
    device_args: &["--simulate", "24c02@0x50"],
    num_queues: 1,
};

/// The unprivileged user of the quick start (nobody).
const NOBODY: u32 = 65534;

#[test]
fn confined_while_serving() {
    confinement::check_confined_while_serving(&SUBJECT, None).unwrap();
}

#[test]
fn confined_while_serving_as_an_unprivileged_user() {
    if !confinement::root_or_skip(
        "confined_while_serving_as_an_unprivileged_user",
        "it starts the daemon as user 65534 with setuid/setgid",
    ) {
        return;
    }
    confinement::check_confined_while_serving(&SUBJECT, Some(NOBODY)).unwrap();
}

#[test]
fn forbidden_call_kills_with_sigsys() {
    confinement::check_forbidden_call_kills(&SUBJECT, &[]).unwrap();
}

#[test]
fn forbidden_call_under_trap_raises_sigsys() {
    confinement::check_forbidden_call_kills(&SUBJECT, &["--seccomp", "trap"]).unwrap();
}

#[test]
fn log_mode_lets_the_call_through() {
    confinement::check_log_mode_lets_it_through(&SUBJECT, false).unwrap();
}

#[test]
fn log_mode_calls_are_audited_in_dmesg() {
    if !confinement::root_or_skip(
        "log_mode_calls_are_audited_in_dmesg",
        "reads the kernel's audit records with dmesg, which kernel.dmesg_restrict keeps from other users",
    ) {
        return;
    }
    confinement::check_log_mode_lets_it_through(&SUBJECT, true).unwrap();
}

#[test]
fn landlock_refuses_new_opens_and_sandbox_none_does_not() {
    confinement::check_landlock_refuses_opens(&SUBJECT).unwrap();
}

#[test]
fn file_opens_refused_with_eacces_not_fatal() {
    confinement::check_opens_refused_not_fatal(&SUBJECT).unwrap();
}

#[test]
fn landlock_refuses_signals_and_tcp_and_sandbox_none_does_not() {
    confinement::check_landlock_refuses_signals_and_tcp(&SUBJECT).unwrap();
}
