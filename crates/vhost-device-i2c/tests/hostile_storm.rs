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
use vhost_user_test_frontend::{
    FrontendOptions, RawDesc, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use vm_memory::{Bytes, GuestAddress};

/// xorshift64*: small, deterministic, good enough to shuffle shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SCRATCH: u32 = 4096;
const MEM_SIZE: usize = 4 << 20;
const ROUNDS: usize = 60;
const CHAINS_PER_ROUND: usize = 12;

/// A random descriptor that can only touch the scratch buffer or memory that does not exist,
/// so the device's writes can never land in the rings this frontend relies on.
fn random_desc(rng: &mut Rng, scratch: u64, len: usize) -> RawDesc {
    let (addr, dlen) = match rng.below(4) {
        0 | 1 => {
            let off = rng.below(u64::from(SCRATCH / 2));
            (scratch + off, rng.below(u64::from(SCRATCH / 2)) as u32)
        }
        2 => (MEM_SIZE as u64 + rng.below(1 << 30), rng.below(64) as u32),
        _ => (u64::MAX - rng.below(64), rng.below(64) as u32),
    };
    let mut flags = 0;
    if rng.below(2) == 0 {
        flags |= VIRTQ_DESC_F_WRITE;
    }
    if rng.below(3) == 0 {
        flags |= VIRTQ_DESC_F_NEXT;
    }
    if rng.below(10) == 0 {
        flags |= VIRTQ_DESC_F_INDIRECT;
    }
    // Links stay inside the chain or point past the whole table (never into other chains).
    let next = if rng.below(5) == 0 {
        0xffff - rng.below(16) as u16
    } else {
        rng.below(len as u64) as u16
    };
    RawDesc {
        addr,
        len: dlen,
        flags,
        next,
    }
}

#[test]
fn random_malformed_chains_never_disturb_good_requests() {
    let d = Daemon::simulated();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            num_queues: 1,
            mem_size: MEM_SIZE,
            ..Default::default()
        },
    );
    let scratch = fe.queue(0).alloc_buffer(SCRATCH).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..ROUNDS {
        // Fresh zeroes: a header read from scratch is address 0, not on the bus.
        fe.memory()
            .write_slice(&[0u8; SCRATCH as usize], GuestAddress(scratch))
            .unwrap();
        let q = fe.queue(0);
        let mut heads = Vec::new();
        for _ in 0..CHAINS_PER_ROUND {
            let len = 1 + rng.below(4) as usize;
            let chain: Vec<RawDesc> = (0..len)
                .map(|_| random_desc(&mut rng, scratch, len))
                .collect();
            heads.push(q.post_raw(&chain).unwrap());
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
