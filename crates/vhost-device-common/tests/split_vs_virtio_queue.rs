//! Differential test of the request path's split ring (`split::SplitRing` over `ram::Ram`)
//! against virtio-queue's generic path (`Queue::iter` + `chain::layout`, `add_used`,
//! `needs_notification`, `enable_notification`) on random rings: what the drain loop took
//! from virtio-queue before it walked rings itself must come out the same, chain by chain,
//! byte by byte.
//!
//! Random rings mean hostile ones: descriptors pointing into holes, across regions and past
//! the end of memory; `next` beyond the table and loops; INDIRECT tables that are misaligned,
//! too long, nested or outside memory; available indices too far ahead; any `used_event`.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;

use proptest::prelude::*;
use vhost_device_common::chain::{ChainLayout, layout};
use vhost_device_common::ram::Ram;
use vhost_device_common::split::SplitRing;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const SIZE: u16 = 16;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
/// Where the random indirect tables go (a page of random descriptors).
const INDIRECT: u64 = 0x4000;
/// End of the first region; the second starts right after it (a buffer may cross).
const SPLIT: u64 = 0x8000;
/// A region beyond a hole.
const FAR: u64 = 0x2_0000;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), SPLIT as usize),
        (GuestAddress(SPLIT), 0x8000),
        (GuestAddress(FAR), 0x1000),
    ])
    .unwrap()
}

/// Addresses worth trying: inside, at region ends, across the adjacent regions, in the hole,
/// beyond everything, at the indirect page (also misaligned), at the rings themselves.
fn address() -> impl Strategy<Value = u64> {
    prop_oneof![
        0x5000u64..0x6000,
        (INDIRECT..INDIRECT + 0x100),
        Just(SPLIT - 8),
        Just(SPLIT - 1),
        Just(0xfff8u64),
        0x1_0000u64..0x1_0100,
        Just(FAR),
        Just(FAR + 0xff0),
        Just(u64::MAX - 7),
        Just(DESC),
        Just(USED),
    ]
}

fn flags() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(5),
        0u16..8,
        any::<u16>()
    ]
}

fn length() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..40,
        (0u32..8).prop_map(|n| n * 16),
        Just(0x10_0000),
        Just(u32::MAX),
        Just(u32::MAX - 15),
    ]
}

fn desc() -> impl Strategy<Value = (u64, u32, u16, u16)> {
    (
        address(),
        length(),
        flags(),
        prop_oneof![0u16..20, any::<u16>()],
    )
}

#[derive(Debug, Clone)]
struct Ring {
    table: Vec<(u64, u32, u16, u16)>,
    indirect: Vec<(u64, u32, u16, u16)>,
    avail: Vec<u16>,
    start: u16,
    ahead: u16,
    start_used: u16,
    used_event: u16,
    event_idx: bool,
    lens: Vec<u32>,
}

fn ring() -> impl Strategy<Value = Ring> {
    (
        prop::collection::vec(desc(), usize::from(SIZE)),
        prop::collection::vec(desc(), 16),
        prop::collection::vec(
            prop_oneof![0u16..SIZE, 0u16..40, any::<u16>()],
            usize::from(SIZE),
        ),
        any::<u16>(),
        prop_oneof![0u16..=SIZE, Just(SIZE + 1), any::<u16>()],
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        prop::collection::vec(any::<u32>(), usize::from(SIZE)),
    )
        .prop_map(
            |(table, indirect, avail, start, ahead, start_used, used_event, event_idx, lens)| {
                Ring {
                    table,
                    indirect,
                    avail,
                    start,
                    ahead,
                    start_used,
                    used_event,
                    event_idx,
                    lens,
                }
            },
        )
}

fn write_descs(mem: &GuestMemoryMmap, at: u64, descs: &[(u64, u32, u16, u16)]) {
    for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
        let base = at + 16 * i as u64;
        mem.write_obj(addr.to_le(), GuestAddress(base)).unwrap();
        mem.write_obj(len.to_le(), GuestAddress(base + 8)).unwrap();
        mem.write_obj(flags.to_le(), GuestAddress(base + 12))
            .unwrap();
        mem.write_obj(next.to_le(), GuestAddress(base + 14))
            .unwrap();
    }
}

/// Guest memory holding `r`, and a queue set up on it at `r`'s positions.
fn build(r: &Ring) -> (GuestMemoryMmap, Queue) {
    let mem = memory();
    write_descs(&mem, DESC, &r.table);
    write_descs(&mem, INDIRECT, &r.indirect);
    for (i, &head) in r.avail.iter().enumerate() {
        mem.write_obj(head.to_le(), GuestAddress(AVAIL + 4 + 2 * i as u64))
            .unwrap();
    }
    let avail_idx = r.start.wrapping_add(r.ahead);
    mem.write_obj(avail_idx.to_le(), GuestAddress(AVAIL + 2))
        .unwrap();
    mem.write_obj(
        r.used_event.to_le(),
        GuestAddress(AVAIL + 4 + 2 * u64::from(SIZE)),
    )
    .unwrap();
    let mut q = Queue::new(SIZE).unwrap();
    q.set_size(SIZE);
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_event_idx(r.event_idx);
    q.set_next_avail(r.start);
    q.set_next_used(r.start_used);
    q.set_ready(true);
    (mem, q)
}

/// Each chain's head and layout (or error text), or `Err` when the index was refused.
type Chains = Result<Vec<(u16, Result<ChainLayout, String>)>, ()>;

/// What virtio-queue makes of the ring: the chains (head and layout or error text), or the
/// error of `iter`; then the used ring and the notification decision after returning every
/// chain whose head is in range.
#[derive(Debug, PartialEq)]
struct Outcome {
    chains: Chains,
    used: Vec<u8>,
    notify: Option<bool>,
    reenable: Option<bool>,
    avail_event: u16,
    positions: (u16, u16),
}

/// The outcome, with what both paths leave in memory and in the queue read back alike.
fn outcome(
    mem: &GuestMemoryMmap,
    q: &Queue,
    chains: Chains,
    notify: Option<bool>,
    reenable: Option<bool>,
) -> Outcome {
    let mut used = vec![0u8; 4 + 8 * usize::from(SIZE) + 2];
    mem.read_slice(&mut used, GuestAddress(USED)).unwrap();
    let avail_event = mem
        .read_obj(GuestAddress(USED + 4 + 8 * u64::from(SIZE)))
        .unwrap();
    Outcome {
        chains,
        used,
        notify,
        reenable,
        avail_event,
        positions: (q.next_avail(), q.next_used()),
    }
}

fn reference(r: &Ring) -> Outcome {
    let (mem, mut q) = build(r);
    let chains: Chains = match q.iter(&mem) {
        Err(_) => Err(()),
        Ok(iter) => Ok(iter
            .map(|c| {
                let head = c.head_index();
                (head, layout(c).map_err(|(_, e)| e.to_string()))
            })
            .collect()),
    };
    let mut notify = None;
    let mut reenable = None;
    if let Ok(chains) = &chains {
        let mut added = false;
        for ((head, _), &len) in chains.iter().zip(&r.lens) {
            if *head < SIZE {
                q.add_used(&mem, *head, len).unwrap();
                added = true;
            }
        }
        if added {
            notify = Some(q.needs_notification(&mem).unwrap());
        }
        if r.event_idx {
            reenable = Some(q.enable_notification(&mem).unwrap());
        }
    }
    outcome(&mem, &q, chains, notify, reenable)
}

fn fast(r: &Ring) -> Outcome {
    let (mem, mut q) = build(r);
    let ram = Ram::new(Arc::new(mem.clone()));
    let mut ring = SplitRing::of(&q);
    let since = ring.next_used();
    let chains: Chains = match ring.pending(&ram) {
        Err(_) => Err(()),
        Ok(n) => {
            let mut out = ChainLayout::default();
            let mut v = Vec::new();
            for _ in 0..n {
                let head = ring.pop(&ram).unwrap();
                let walked = ring.walk(&ram, head, &mut out).map(|()| out);
                v.push((head, walked.map_err(|e| e.to_string())));
            }
            Ok(v)
        }
    };
    let mut notify = None;
    let mut reenable = None;
    if let Ok(chains) = &chains {
        let mut added = false;
        for ((head, _), &len) in chains.iter().zip(&r.lens) {
            if *head < SIZE {
                ring.add_used(&ram, *head, len).unwrap();
                added = true;
            }
        }
        ring.publish_used(&ram).unwrap();
        if added {
            notify = Some(ring.needs_notification(&ram, since).unwrap());
        }
        if r.event_idx {
            reenable = Some(ring.enable_notification(&ram).unwrap());
        }
    }
    ring.store_positions(&mut q);
    outcome(&mem, &q, chains, notify, reenable)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn split_ring_walk_matches_virtio_queue(r in ring()) {
        let want = reference(&r);
        let got = fast(&r);
        prop_assert_eq!(got, want);
    }
}

/// The strategies reach what the test is about (a test of nothing but empty rings would
/// pass too): chains of several kinds, errors, indirect tables and refused indices.
#[test]
fn random_rings_cover_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut refused, mut errors, mut multi, mut indirect, mut notified) = (0, 0, 0, 0, 0);
    for _ in 0..2000 {
        let r = ring().new_tree(&mut runner).unwrap().current();
        let o = reference(&r);
        match &o.chains {
            Err(()) => refused += 1,
            Ok(chains) => {
                for (head, c) in chains {
                    match c {
                        Err(_) => errors += 1,
                        Ok(l) if l.readable.as_slice().len() + l.writable.as_slice().len() > 1 => {
                            multi += 1
                        }
                        Ok(_) => {}
                    }
                    if usize::from(*head) < r.table.len() && r.table[usize::from(*head)].2 & 4 != 0
                    {
                        indirect += 1;
                    }
                }
            }
        }
        if o.notify == Some(true) {
            notified += 1;
        }
    }
    let counts = format!(
        "refused {refused}, chain errors {errors}, multi-descriptor {multi}, indirect heads {indirect}, notified {notified}"
    );
    assert!(refused > 50, "{counts}");
    assert!(errors > 10, "{counts}");
    assert!(multi > 50, "{counts}");
    assert!(indirect > 50, "{counts}");
    assert!(notified > 50, "{counts}");
}
