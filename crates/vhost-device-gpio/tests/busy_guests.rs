//! Eight busy guests at once on one daemon (`-c 8`, eight simulated chips) under the
//! default sandbox (see vhost-user-test-frontend's `load` module): every socket loaded
//! concurrently for a bounded time with reconnects, then every socket still answers
//! correctly, the process is alive and its descriptors and memory did not grow. Three busy
//! guests used to kill the daemon with SIGSYS: glibc's malloc read
//! /sys/devices/system/cpu/online once the seccomp filter was in place.

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

mod common;

use std::time::Duration;

use vhost_user_test_frontend::load::{self, Kind, LoadPlan};

#[test]
fn eight_busy_guests_under_the_default_sandbox() {
    let chips = ["s8"; 8].join(":");
    let mut d = common::launch()
        .args(&["-c", "8", "-l", &chips])
        .sockets(8)
        .start();
    let report = load::assert_serves_busy_guests(
        &mut d,
        LoadPlan {
            kind: Kind::Gpio,
            batch: 8,
            duration: Duration::from_secs(3),
            reconnect_every: 200,
        },
    );
    assert_eq!(report.guests.len(), 8);
}
