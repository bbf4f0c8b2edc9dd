//! A storm of random malformed descriptor chains, interleaved with good requests: every
//! chain must come back (used ring), no good request may be disturbed, and the daemon must
//! keep serving. Deterministic (fixed-seed PRNG), so a failure reproduces.

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

use common::*;
use vhost_user_test_frontend::FrontendOptions;
use vhost_user_test_frontend::hostile::{Arena, Rng, random_chain};
use vm_memory::{Bytes, GuestAddress};

const SCRATCH: u32 = 4096;
const MEM_SIZE: usize = 4 << 20;
const ROUNDS: usize = 60;
const CHAINS_PER_ROUND: usize = 12;

#[test]
fn random_malformed_chains_never_disturb_good_requests() {
    let d = simulated();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            num_queues: 1,
            mem_size: MEM_SIZE,
            ..Default::default()
        },
    );
    let scratch = fe.queue(0).alloc_buffer(SCRATCH).unwrap();
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let arena = Arena {
        scratch,
        scratch_len: SCRATCH,
        mem_size: MEM_SIZE as u64,
    };
    for round in 0..ROUNDS {
        // Fresh zeroes: a header read from scratch is address 0, not on the bus.
        fe.memory()
            .write_slice(&[0u8; SCRATCH as usize], GuestAddress(scratch))
            .unwrap();
        let q = fe.queue(0);
        let mut heads = Vec::new();
        for _ in 0..CHAINS_PER_ROUND {
            heads.push(q.post_raw(&random_chain(&mut rng, arena)).unwrap());
        }
        // Whatever group the storm left open ends here; the good request starts a new one.
        let terminator = q.post(&quick(ABSENT, false, false), false).unwrap();
        let good = q
            .post(&write(EEPROM, &[0x80, round as u8], false), false)
            .unwrap();
        q.kick().unwrap();
        for h in heads {
            q.wait_head(h, TIMEOUT)
                .unwrap_or_else(|e| panic!("round {round}: chain {h} not returned: {e:?}"));
        }
        let t = q.wait_head(terminator, TIMEOUT).unwrap();
        assert_eq!(status(&t), ERR, "round {round}: absent address answered OK");
        let g = q.wait_head(good, TIMEOUT).unwrap();
        assert_eq!((status(&g), g.used_len), (OK, 1), "round {round}: {g:?}");
        assert_eq!(
            read_reg(&mut fe, EEPROM, 0x80, 1),
            [round as u8],
            "round {round}"
        );
    }
    still_serves(&mut fe);
    drop(fe);
    // And the daemon still accepts a new frontend.
    let mut fe = d.connect(0);
    still_serves(&mut fe);
}
