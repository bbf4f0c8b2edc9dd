//! Property tests against the split-ring rules of the virtio spec (2.7):
//! - arbitrary bytes as rings and descriptors never panic, and every chain the device
//!   accepts obeys the rules (inside memory, readable before writable, at most
//!   MAX_SEGMENTS buffers, lengths that add up);
//! - for well-formed driver traffic (random direct and indirect chains, completions in
//!   random order, EVENT_IDX on or off), the device sees exactly the chains the driver made
//!   available, in ring order, and the driver gets back exactly the used lengths;
//! - the interrupt decision equals the spec's formula on a reference model.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use proptest::prelude::*;
use virtqueue_device::driver::{Buffer, DriverQueue};
use virtqueue_device::{GuestMemory, MAX_SEGMENTS, QueueLayout, SplitQueue};

const BASE: u64 = 0x8000;
const MEM: usize = 0x2000;

proptest! {
    #[test]
    fn arbitrary_rings_never_panic_and_accepted_chains_obey_the_rules(
        bytes in proptest::collection::vec(any::<u8>(), MEM),
        size_log in 0u32..5,
        event_idx: bool,
        indirect: bool,
        completions in proptest::collection::vec(any::<u32>(), 0..40),
    ) {
        let mut r = bytes;
        let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
        let size = 1u16 << size_log;
        let layout = QueueLayout::packed_at(BASE, size, event_idx, indirect).unwrap();
        let mut q = SplitQueue::new(&mem, layout).unwrap();
        for len in completions {
            match q.pop(&mem) {
                Ok(Some(p)) => {
                    prop_assert!(p.head < size);
                    if let Ok(c) = p.chain {
                        prop_assert!(c.segments().len() <= MAX_SEGMENTS);
                        let mut seen_writable = false;
                        let (mut r, mut w) = (0usize, 0usize);
                        for s in c.segments() {
                            prop_assert!(mem.check(s.addr, u64::from(s.len)).is_ok());
                            prop_assert!(s.len > 0);
                            prop_assert!(s.writable || !seen_writable);
                            seen_writable |= s.writable;
                            if s.writable { w += s.len as usize } else { r += s.len as usize }
                        }
                        prop_assert_eq!((r, w), (c.readable_len(), c.writable_len()));
                    }
                    q.add_used(&mem, p.head, len).unwrap();
                }
                Ok(None) => {}
                Err(_) => {
                    prop_assert!(q.stopped().is_some());
                    break;
                }
            }
            let _ = q.needs_interrupt(&mem);
            let _ = q.enable_kicks(&mem);
        }
    }

    #[test]
    fn device_sees_what_the_driver_made_available(
        chains in proptest::collection::vec(
            (proptest::collection::vec((1u32..64, any::<bool>()), 1..6), any::<bool>(), any::<u32>()),
            1..60,
        ),
        event_idx: bool,
        order in any::<u64>(),
    ) {
        let mut r = vec![0u8; MEM];
        let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
        let layout = QueueLayout::packed_at(BASE, 8, event_idx, true).unwrap();
        let mut drv: DriverQueue<8> = DriverQueue::new(&mem, layout).unwrap();
        let mut dev = SplitQueue::new(&mem, layout).unwrap();
        let data = BASE + 0x400;
        let mut outstanding: Vec<(u16, u32)> = Vec::new();
        let mut returned = Vec::new();
        let mut expected = Vec::new();
        let mut rng = order;
        for (n, (shape, use_indirect, used_len)) in chains.into_iter().enumerate() {
            // Readable buffers first, as the spec requires of the driver.
            let mut bufs: Vec<Buffer> = shape.iter().enumerate().map(|(i, &(len, w))| Buffer {
                addr: data + (i as u64) * 64,
                len,
                writable: w,
            }).collect();
            bufs.sort_by_key(|b| b.writable);
            // Keep at most 4 in flight, and enough free descriptors for this chain.
            let needed = if use_indirect { 1 } else { u16::try_from(bufs.len()).unwrap() };
            loop {
                while let Some(u) = drv.pop_used(&mem).unwrap() {
                    prop_assert_eq!(Some(u), returned.first().copied());
                    returned.remove(0);
                }
                if outstanding.len() < 4 && drv.num_free() >= needed {
                    break;
                }
                prop_assert!(!outstanding.is_empty(), "descriptors lost");
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let i = (rng >> 33) as usize % outstanding.len();
                let (head, len) = outstanding.remove(i);
                dev.add_used(&mem, head, len).unwrap();
                let _ = dev.needs_interrupt(&mem);
                returned.push((head, len));
            }
            let head = if use_indirect {
                let table = BASE + 0x1000 + ((n % 8) as u64) * 0x100;
                drv.add_indirect(&mem, table, &bufs).unwrap()
            } else {
                drv.add(&mem, &bufs).unwrap()
            };
            let p = dev.pop(&mem).unwrap().unwrap();
            prop_assert_eq!(p.head, head);
            let c = p.chain.unwrap();
            let got: Vec<Buffer> = c.segments().iter().map(|s| Buffer { addr: s.addr, len: s.len, writable: s.writable }).collect();
            prop_assert_eq!(&got, &bufs);
            prop_assert!(dev.pop(&mem).unwrap().is_none());
            outstanding.push((head, used_len));
            expected.push(head);
            while let Some(u) = drv.pop_used(&mem).unwrap() {
                prop_assert_eq!(Some(u), returned.first().copied());
                returned.remove(0);
            }
        }
        for (head, len) in outstanding.drain(..) {
            dev.add_used(&mem, head, len).unwrap();
            returned.push((head, len));
        }
        while let Some(u) = drv.pop_used(&mem).unwrap() {
            prop_assert_eq!(Some(u), returned.first().copied());
            returned.remove(0);
        }
        prop_assert!(returned.is_empty());
        prop_assert_eq!(drv.num_free(), 8);
    }

    #[test]
    fn interrupt_decision_is_the_specs_formula(
        steps in proptest::collection::vec((0u16..5, any::<u16>()), 1..50),
    ) {
        let mut r = vec![0u8; MEM];
        let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
        let layout = QueueLayout::packed_at(BASE, 8, true, false).unwrap();
        let mut drv: DriverQueue<8> = DriverQueue::new(&mem, layout).unwrap();
        let mut dev = SplitQueue::new(&mem, layout).unwrap();
        let used_event_at = layout.avail_ring + 4 + 2 * 8;
        let mut used: u16 = 0;
        let mut signalled: u16 = 0;
        for (batch, event) in steps {
            for _ in 0..batch {
                let h = drv.add(&mem, &[Buffer { addr: BASE + 0x400, len: 1, writable: true }]).unwrap();
                let p = dev.pop(&mem).unwrap().unwrap();
                dev.add_used(&mem, p.head, 1).unwrap();
                prop_assert_eq!(drv.pop_used(&mem).unwrap(), Some((h, 1)));
                used = used.wrapping_add(1);
            }
            mem.write(used_event_at, &event.to_le_bytes()).unwrap();
            // Spec 2.7.10: interrupt iff the used index moved past used_event since the last
            // decision: used_event in [old, new) (mod 2^16).
            let want = used != signalled
                && used.wrapping_sub(event).wrapping_sub(1) < used.wrapping_sub(signalled);
            prop_assert_eq!(dev.needs_interrupt(&mem).unwrap(), want);
            signalled = used;
        }
    }
}
