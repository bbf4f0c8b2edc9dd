//! A storm of random malformed descriptor chains interleaved with real FAIL_NEXT groups to
//! the simulated devices: every chain comes back (used ring), every good group gets exactly
//! its results, a group that must fail executes nothing, the daemon keeps serving, and at
//! the default log level it logs no line per request. Deterministic (fixed-seed PRNG), so a
//! failure reproduces.

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
use vhost_user_test_frontend::devices::i2c::*;
use vhost_user_test_frontend::hostile::{Arena, Rng, random_chain};
use vhost_user_test_frontend::{Completion, Desc, FrontendOptions, TestFrontend};
use vm_memory::{Bytes, GuestAddress};

const SCRATCH: u32 = 4096;
const MEM_SIZE: usize = 4 << 20;
const ROUNDS: usize = 100;
/// Malformed chains before each good group.
const CHAINS_PER_SLOT: usize = 10;
/// At the default level: startup facts, connections, the per-ring budget of warnings and
/// the exit; a line per request would be thousands.
const MAX_LOG_LINES: usize = 20;

/// The EEPROM offsets the good groups own (the storm cannot reach the EEPROM, see
/// [`scratch_pattern`]).
const GOOD_OFFSET: u8 = 0x40;
/// Written only by groups that must fail: stays erased.
const NEVER_WRITTEN: u8 = 0x48;

/// What the random chains read as requests: repeated 8-byte headers for the RTC (0x68)
/// with every combination of M_RD and FAIL_NEXT. Read at any offset, the address field
/// decodes to the RTC or to an invalid address, never to the EEPROM, so the storm can
/// reach a real device and join or break real groups without touching the good groups'
/// EEPROM data.
fn scratch_pattern() -> Vec<u8> {
    (0..SCRATCH as usize / 8)
        .flat_map(|i| [RTC << 1, 0, 0, 0, (i % 4) as u8, 0, 0, 0])
        .collect()
}

/// One good slot: its chains and a check of their completions.
struct Slot {
    requests: Vec<Vec<Desc>>,
    check: fn(round: usize, done: &[Completion]),
}

/// The good slots of one round, each led by a terminator: a request without FAIL_NEXT to
/// an absent address ends (and fails) whatever group the malformed chains left open.
fn slots(round: usize) -> Vec<Slot> {
    let v = round as u8;
    vec![
        Slot {
            requests: vec![
                quick(ABSENT, false, false),
                write(EEPROM, &[GOOD_OFFSET, v, !v], false),
                write(EEPROM, &[GOOD_OFFSET], true),
                read(EEPROM, 2, false),
            ],
            check: |round, done| {
                let v = round as u8;
                assert_eq!((status(&done[0]), done[0].used_len), (ERR, 1), "terminator");
                assert_eq!((status(&done[1]), done[1].used_len), (OK, 1), "write");
                assert_eq!((status(&done[2]), done[2].used_len), (OK, 1), "offset");
                assert_eq!((status(&done[3]), done[3].used_len), (OK, 3), "read");
                assert_eq!(data(&done[3]), [v, !v], "read back in the same kick");
            },
        },
        Slot {
            // A group that must fail at its second message: nothing of it runs.
            requests: vec![
                quick(ABSENT, false, false),
                write(EEPROM, &[NEVER_WRITTEN, 0x55], true),
                read(ABSENT, 1, true),
                write(EEPROM, &[NEVER_WRITTEN, 0x66], false),
            ],
            check: |_, done| {
                for (i, c) in done.iter().enumerate() {
                    assert_eq!((status(c), c.used_len), (ERR, 1), "failing group {i}");
                }
            },
        },
        Slot {
            // A register read of the RTC (its RAM may hold storm bytes: only the shape is
            // checked).
            requests: vec![
                quick(ABSENT, false, false),
                write(RTC, &[0x08], true),
                read(RTC, 4, false),
            ],
            check: |_, done| {
                assert_eq!((status(&done[0]), done[0].used_len), (ERR, 1), "terminator");
                assert_eq!((status(&done[1]), done[1].used_len), (OK, 1), "rtc offset");
                assert_eq!((status(&done[2]), done[2].used_len), (OK, 5), "rtc read");
            },
        },
    ]
}

fn storm(fe: &mut TestFrontend, rng: &mut Rng, arena: Arena, round: usize) {
    fe.memory()
        .write_slice(&scratch_pattern(), GuestAddress(arena.scratch))
        .unwrap();
    let slots = slots(round);
    let q = fe.queue(0);
    // The whole round becomes visible at once and is served in one drain.
    q.hold(true).unwrap();
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for slot in &slots {
        for _ in 0..CHAINS_PER_SLOT {
            bad.push(q.post_raw(&random_chain(rng, arena)).unwrap());
        }
        let heads: Vec<u16> = slot
            .requests
            .iter()
            .map(|r| q.post(r, false).unwrap())
            .collect();
        good.push(heads);
    }
    q.hold(false).unwrap();
    q.kick().unwrap();
    for h in bad {
        q.wait_head(h, TIMEOUT)
            .unwrap_or_else(|e| panic!("round {round}: malformed chain {h} not returned: {e:?}"));
    }
    for (slot, heads) in slots.iter().zip(good) {
        let done: Vec<Completion> = heads
            .into_iter()
            .map(|h| {
                q.wait_head(h, TIMEOUT)
                    .unwrap_or_else(|e| panic!("round {round}: good request {h}: {e:?}"))
            })
            .collect();
        (slot.check)(round, &done);
    }
}

#[test]
fn random_malformed_chains_never_disturb_real_groups_and_log_no_line_per_request() {
    // The default log level: what an operator sees.
    let mut d = SUBJECT.launch().rust_log(None).start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            num_queues: 1,
            mem_size: MEM_SIZE,
            ..Default::default()
        },
    );
    let scratch = fe.queue(0).alloc_buffer(SCRATCH).unwrap();
    let arena = Arena {
        scratch,
        scratch_len: SCRATCH,
        mem_size: MEM_SIZE as u64,
    };
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    for round in 0..ROUNDS {
        storm(&mut fe, &mut rng, arena, round);
    }
    assert_eq!(
        read_reg(&mut fe, EEPROM, NEVER_WRITTEN, 1),
        [0xff],
        "a failing group ran"
    );
    still_serves(&mut fe);
    drop(fe);
    // And the daemon still accepts a new frontend.
    let mut fe = d.connect(0);
    still_serves(&mut fe);
    drop(fe);
    // After the exit every line is in the log.
    d.stop_at_once(libc::SIGTERM);
    let lines = d.log_lines();
    assert!(
        lines.iter().any(|l| l.contains("listening on")),
        "the default level shows startup facts:\n{}",
        d.log()
    );
    let requests = ROUNDS * (3 * CHAINS_PER_SLOT + 11);
    assert!(
        lines.len() < MAX_LOG_LINES,
        "{} log lines after {requests} requests:\n{}",
        lines.len(),
        d.log()
    );
}
