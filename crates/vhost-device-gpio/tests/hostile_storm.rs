//! A storm of random malformed descriptor chains on both queues, interleaved with good
//! requests: every chain comes back, no good request is disturbed, the daemon keeps
//! serving, and it logs no line per request. Deterministic (fixed-seed PRNG).

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
use vhost_user_test_frontend::FrontendOptions;
use vhost_user_test_frontend::devices::gpio::*;

const SCRATCH: u32 = 2048;
const MEM_SIZE: usize = 4 << 20;
const ROUNDS: u32 = 100;
const CHAINS_PER_QUEUE: usize = 10;
/// At the default level: startup facts, connections, the per-ring budget of warnings and
/// the exit; a line per request would be thousands.
const MAX_LOG_LINES: usize = 20;

/// What the random chains read as requests: GET_LINE_NAMES, GET_DIRECTION and GET_VALUE
/// of lines 0, 1, 2 and 4. Read at any offset, the type field decodes to one of those
/// read-only types or to an invalid type, so the storm reaches the device without
/// changing the lines the good requests check.
fn scratch_pattern() -> Vec<u8> {
    let requests = [
        encode_request(GET_VALUE, 1, 0),
        encode_request(GET_DIRECTION, 0, 0),
        encode_request(GET_LINE_NAMES, 0, 0),
        encode_request(GET_VALUE, 4, 0),
        encode_request(GET_DIRECTION, 2, 0),
    ];
    requests
        .iter()
        .flatten()
        .copied()
        .cycle()
        .take(SCRATCH as usize)
        .collect()
}

/// A deterministic storm of random malformed chains on both queues, with good requests
/// between them: every chain comes back, every good request succeeds with the right value,
/// the daemon lives, and at the default log level it logs no line per request.
#[test]
fn random_malformed_chains_never_disturb_good_requests_and_log_no_line_per_request() {
    use vhost_user_test_frontend::hostile::{Arena, Rng, random_chain};
    use vm_memory::{Bytes, GuestAddress};

    // The default log level: what an operator sees.
    let mut d = SUBJECT
        .launch_bare()
        .args(&["-l", "s8"])
        .rust_log(None)
        .start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            mem_size: MEM_SIZE,
            ..SUBJECT.frontend_options()
        },
    );
    let mut rng = Rng::new(0x6770_696f_0000_0001);
    for round in 0..ROUNDS {
        for queue in [REQUESTQ, EVENTQ] {
            let scratch = fe.queue(queue).alloc_buffer(SCRATCH).unwrap();
            fe.memory()
                .write_slice(&scratch_pattern(), GuestAddress(scratch))
                .unwrap();
            let arena = Arena {
                scratch,
                scratch_len: SCRATCH,
                mem_size: MEM_SIZE as u64,
            };
            let q = fe.queue(queue);
            let heads: Vec<u16> = (0..CHAINS_PER_QUEUE)
                .map(|_| q.post_raw(&random_chain(&mut rng, arena)).unwrap())
                .collect();
            q.kick().unwrap();
            for h in heads {
                q.wait_head(h, TIMEOUT)
                    .unwrap_or_else(|e| panic!("round {round} queue {queue}: chain {h}: {e:?}"));
            }
            assert!(q.free_buffer(scratch));
        }
        // Line 0 drives line 1 (a wired pair): a full request/response cycle still works.
        let level = round % 2;
        ok(&mut fe, SET_VALUE, 0, level);
        ok(&mut fe, SET_DIRECTION, 0, DIR_OUT);
        ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
        assert_eq!(
            u32::from(ok(&mut fe, GET_VALUE, 1, 0)),
            level,
            "round {round}"
        );
    }
    d.assert_running();
    drop(fe);
    // After the exit every line is in the log.
    d.stop_at_once(libc::SIGTERM);
    let lines = d.log_lines();
    assert!(
        lines.iter().any(|l| l.contains("listening on")),
        "the default level shows startup facts:\n{}",
        d.log()
    );
    let requests = ROUNDS as usize * (2 * CHAINS_PER_QUEUE + 4);
    assert!(
        lines.len() < MAX_LOG_LINES,
        "{} log lines after {requests} requests:\n{}",
        lines.len(),
        d.log()
    );
}
