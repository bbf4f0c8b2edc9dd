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

use common::*;
use vhost_user_test_frontend::FrontendOptions;

/// A deterministic storm of random malformed chains on both queues, with good requests
/// between them: every chain comes back, every good request succeeds, the daemon lives.
#[test]
fn random_malformed_chains_never_disturb_good_requests() {
    use vhost_user_test_frontend::hostile::{Arena, Rng, random_chain};
    use vm_memory::{Bytes, GuestAddress};

    const SCRATCH: u32 = 2048;
    const MEM_SIZE: usize = 4 << 20;
    let mut d = sim8();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            mem_size: MEM_SIZE,
            ..frontend_options()
        },
    );
    let mut rng = Rng::new(0x6770_696f_0000_0001);
    for round in 0..40u32 {
        for queue in [0usize, 1] {
            let scratch = fe.queue(queue).alloc_buffer(SCRATCH).unwrap();
            fe.memory()
                .write_slice(&[0u8; SCRATCH as usize], GuestAddress(scratch))
                .unwrap();
            let arena = Arena {
                scratch,
                scratch_len: SCRATCH,
                mem_size: MEM_SIZE as u64,
            };
            let q = fe.queue(queue);
            let heads: Vec<u16> = (0..10)
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
}
