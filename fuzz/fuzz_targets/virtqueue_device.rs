//! The no_std device-side virtqueue (`virtqueue-device`) against arbitrary guest memory: the
//! input's first two bytes pick the queue size (1 to 256) and the negotiated features
//! (EVENT_IDX, INDIRECT_DESC); the rest is the memory (rings, descriptors, indirect tables,
//! buffers), zero-padded to 4 KiB. The device pops, copies in and out of every chain, and
//! completes it, until the ring is empty or stops. Checks: no panic, no access outside the
//! region (the region is a slice: an out-of-bounds access would be caught), every accepted
//! chain inside memory with readable buffers first and at most MAX_SEGMENTS of them, and a
//! stopped queue refuses everything after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtqueue_device::{GuestMemory, MAX_SEGMENTS, QueueLayout, SplitQueue};

const BASE: u64 = 0x1_0000;
const MEM: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let Some((&[size_log, features], rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let mut region = [0u8; MEM];
    let n = rest.len().min(MEM);
    region[..n].copy_from_slice(&rest[..n]);
    let mem = GuestMemory::from_slice(&mut region, BASE).expect("4 KiB at 0x10000");
    let size = 1u16 << (size_log % 9);
    let Some(layout) = QueueLayout::packed_at(BASE, size, features & 1 != 0, features & 2 != 0)
    else {
        return;
    };
    let Ok(mut queue) = SplitQueue::new(&mem, layout) else {
        return; // A ring of 256 entries does not fit in 4 KiB.
    };
    let mut scratch = [0u8; 512];
    for _ in 0..64 {
        let popped = match queue.pop(&mem) {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(_) => {
                assert!(queue.stopped().is_some());
                assert!(queue.pop(&mem).is_err(), "a stopped queue served");
                break;
            }
        };
        assert!(popped.head < size);
        let mut used = 0u32;
        if let Ok(chain) = popped.chain {
            assert!(chain.segments().len() <= MAX_SEGMENTS);
            let mut writable_seen = false;
            for s in chain.segments() {
                assert!(mem.check(s.addr, u64::from(s.len)).is_ok(), "segment outside memory");
                assert!(s.writable || !writable_seen, "readable after writable");
                writable_seen |= s.writable;
            }
            let r = chain.readable_len().min(scratch.len());
            chain.read(&mem, 0, &mut scratch[..r]).expect("readable bytes inside memory");
            let w = chain.writable_len().min(scratch.len());
            chain.write(&mem, 0, &scratch[..w]).expect("writable bytes inside memory");
            used = u32::try_from(w).unwrap_or(0);
        }
        queue.add_used(&mem, popped.head, used).expect("completing a popped chain");
    }
    let _ = queue.needs_interrupt(&mem);
    let _ = queue.enable_kicks(&mem);
});
