//! The two limits ARCHITECTURE.md states for a hostile frontend or driver, each at its
//! edge: one drain call handles at most four queues' worth of chains and then re-kicks
//! itself (so a driver that keeps the ring full never holds the vring lock for ever), and
//! a running ring keeps at most four replaced kick descriptors, refusing the fifth.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};

use vhost_device_common::Vring;
use vhost_device_common::queue::{self, Chain, ChainMemory, ChainSink, UsedRing, drain};
use vhost_user_backend::VringT;
use vhost_user_test_frontend::inproc::{Buf, RingDriver, Rings, vring};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const RINGS: Rings = Rings {
    size: 8,
    desc: 0x1000,
    avail: 0x2000,
    used: 0x3000,
    data: 0x4000,
};
/// Chains one drain call may handle: four queues' worth (queue.rs's ROUNDS_PER_CALL).
const BUDGET: usize = 4 * RINGS.size as usize;
/// Replaced kick descriptors a running ring keeps (vring.rs's MAX_RETIRED_KICKS).
const KEPT_KICKS: usize = 4;

/// A driver that never lets the ring run dry: each chain the device takes is made
/// available again at once (the available index moves on by one, to a slot that holds the
/// same heads), up to `limit` times so that a drain without a budget fails instead of
/// hanging the test.
struct Refill {
    mmap: GuestMemoryMmap,
    seen: usize,
    limit: usize,
}

impl ChainSink for Refill {
    fn chain(&mut self, chain: Chain<'_>, _mem: ChainMemory<'_>, used: &mut UsedRing<'_>) {
        self.seen += 1;
        used.add(queue::head(&chain), 1);
        if self.seen < self.limit {
            let at = GuestAddress(RINGS.avail + 2);
            let idx: u16 = self.mmap.read_obj(at).unwrap();
            self.mmap.write_obj(idx.wrapping_add(1), at).unwrap();
        }
    }
}

fn eventfd_file(fd: &EventFd) -> File {
    // SAFETY: a new descriptor (a dup) that only this File owns.
    unsafe { File::from_raw_fd(fd.try_clone().unwrap().into_raw_fd()) }
}

/// The eventfd's counter, read and reset (0 when nothing was written).
fn take(fd: &EventFd) -> u64 {
    fd.read().unwrap_or(0)
}

#[test]
fn one_drain_call_handles_four_queues_worth_then_rekicks() {
    for event_idx in [false, true] {
        let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let mem = GuestMemoryAtomic::new(mmap.clone());
        let (v, _call) = vring::<Vring>(&mem, RINGS, event_idx).unwrap();
        let kick = EventFd::new(EFD_NONBLOCK).unwrap();
        v.set_kick(Some(eventfd_file(&kick)));
        let mut driver = RingDriver::new(mmap.clone(), RINGS).unwrap();
        for _ in 0..RINGS.size {
            driver.post(&[Buf::In(1)]).unwrap();
        }
        let mut sink = Refill {
            mmap,
            seen: 0,
            limit: 10 * BUDGET,
        };
        drain(&v, &mut sink);
        assert_eq!(
            sink.seen, BUDGET,
            "event_idx={event_idx}: chains in one call"
        );
        assert_eq!(
            take(&kick),
            1,
            "event_idx={event_idx}: the drain re-kicked itself"
        );
        assert!(!v.is_stopped());
        // The positive side: the next call (the re-kick's) goes on where this one stopped.
        drain(&v, &mut sink);
        assert_eq!(
            sink.seen,
            2 * BUDGET,
            "event_idx={event_idx}: the second call"
        );
    }
}

/// A drain with less than the budget available returns without re-kicking: the re-kick
/// above is the budget's, not every call's.
#[test]
fn a_drain_within_the_budget_does_not_rekick() {
    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem = GuestMemoryAtomic::new(mmap.clone());
    let (v, _call) = vring::<Vring>(&mem, RINGS, true).unwrap();
    let kick = EventFd::new(EFD_NONBLOCK).unwrap();
    v.set_kick(Some(eventfd_file(&kick)));
    let mut driver = RingDriver::new(mmap.clone(), RINGS).unwrap();
    for _ in 0..RINGS.size {
        driver.post(&[Buf::In(1)]).unwrap();
    }
    // The eight posted chains and fifteen refills: 23 chains, fewer than the budget.
    let limit = BUDGET / 2;
    let mut sink = Refill {
        mmap,
        seen: 0,
        limit,
    };
    drain(&v, &mut sink);
    assert_eq!(sink.seen, RINGS.size as usize + limit - 1);
    assert_eq!(take(&kick), 0, "no re-kick");
}

#[test]
fn a_running_ring_keeps_four_replaced_kicks_and_refuses_the_fifth() {
    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem = GuestMemoryAtomic::new(mmap);
    let (v, _call) = vring::<Vring>(&mem, RINGS, false).unwrap();
    let kicks: Vec<EventFd> = (0..=KEPT_KICKS + 1)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    v.set_kick(Some(eventfd_file(&kicks[0])));
    for (i, kick) in kicks.iter().enumerate().skip(1) {
        // The library starts the ring again after each accepted replacement.
        v.set_queue_ready(true);
        v.set_kick(Some(eventfd_file(kick)));
        let accepted = !v.get_ref().get_queue().ready();
        assert_eq!(accepted, i <= KEPT_KICKS, "replacement {i}");
    }
    // Every kept descriptor (the current one and the four replaced) is drained by a read
    // of the kick; the refused one is not the ring's.
    for k in &kicks {
        k.write(1).unwrap();
    }
    assert!(v.read_kick().unwrap());
    for (i, k) in kicks.iter().enumerate() {
        let left = take(k);
        if i <= KEPT_KICKS {
            assert_eq!(left, 0, "kick {i} was kept and drained");
        } else {
            assert_eq!(left, 1, "kick {i} was refused: the ring never read it");
        }
    }
}
