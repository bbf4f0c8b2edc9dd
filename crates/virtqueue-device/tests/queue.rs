//! Unit behaviour of the device-side queue against the crate's driver half and against
//! hand-written hostile rings.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use virtqueue_device::chain::ChainError;
use virtqueue_device::driver::{Buffer, DriverError, DriverQueue};
use virtqueue_device::ring::{
    Descriptor, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtqueue_device::{
    GuestMemory, KickLatch, LayoutError, MemoryError, QueueError, QueueLayout, SplitQueue,
};

const BASE: u64 = 0x4000_0000;
const SIZE: u16 = 8;
/// Data buffers live from here on.
const DATA: u64 = BASE + 0x1000;

fn region() -> Vec<u8> {
    vec![0u8; 0x4000]
}

fn layout(event_idx: bool, indirect: bool) -> QueueLayout {
    QueueLayout::packed_at(BASE, SIZE, event_idx, indirect).unwrap()
}

fn rd(addr: u64, len: u32) -> Buffer {
    Buffer {
        addr,
        len,
        writable: false,
    }
}

fn wr(addr: u64, len: u32) -> Buffer {
    Buffer {
        addr,
        len,
        writable: true,
    }
}

fn setup(mem: &GuestMemory<'_>, l: QueueLayout) -> (DriverQueue<8>, SplitQueue) {
    (
        DriverQueue::new(mem, l).unwrap(),
        SplitQueue::new(mem, l).unwrap(),
    )
}

fn chain_err(q: &mut SplitQueue, mem: &GuestMemory<'_>) -> ChainError {
    q.pop(mem).unwrap().unwrap().chain.unwrap_err()
}

#[test]
fn request_and_response_round_trip() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    mem.write(DATA, b"hello, device").unwrap();
    let head = drv
        .add(
            &mem,
            &[
                rd(DATA, 5),
                rd(DATA + 5, 8),
                wr(DATA + 0x100, 3),
                wr(DATA + 0x200, 2),
            ],
        )
        .unwrap();
    let popped = dev.pop(&mem).unwrap().unwrap();
    assert_eq!(popped.head, head);
    let chain = popped.chain.unwrap();
    assert_eq!((chain.readable_len(), chain.writable_len()), (13, 5));
    let mut buf = [0u8; 9];
    chain.read(&mem, 4, &mut buf).unwrap();
    assert_eq!(&buf, b"o, device", "a read spanning two buffers");
    chain.write(&mem, 1, b"abcd").unwrap();
    let mut out = [0u8; 3];
    mem.read(DATA + 0x100, &mut out).unwrap();
    assert_eq!(out[1..], *b"ab");
    mem.read(DATA + 0x200, &mut out[..2]).unwrap();
    assert_eq!(out[..2], *b"cd");
    // Beyond either direction's bytes: refused, nothing partial.
    assert!(chain.read(&mem, 10, &mut [0u8; 4]).is_err());
    assert!(chain.write(&mem, 4, b"xy").is_err());
    assert!(dev.pop(&mem).unwrap().is_none());
    dev.add_used(&mem, head, 5).unwrap();
    assert_eq!(drv.pop_used(&mem).unwrap(), Some((head, 5)));
    assert_eq!(drv.num_free(), SIZE, "descriptors back on the free list");
    assert!(drv.pop_used(&mem).unwrap().is_none());
    assert_eq!(dev.add_used(&mem, head, 1), Err(QueueError::UsedOverflow));
}

#[test]
fn indirect_tables_only_when_negotiated_and_well_formed() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, true));
    let table = DATA + 0x800;
    let head = drv
        .add_indirect(&mem, table, &[rd(DATA, 8), wr(DATA + 8, 1)])
        .unwrap();
    let chain = dev.pop(&mem).unwrap().unwrap().chain.unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!((chain.readable_len(), chain.writable_len()), (8, 1));
    dev.add_used(&mem, head, 1).unwrap();

    // Not negotiated.
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    drv.add_indirect(&mem, table, &[rd(DATA, 8)]).unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::BadIndirect);

    // Nested, with NEXT, and of a length that is not whole descriptors.
    let (mut drv, mut dev) = setup(&mem, layout(false, true));
    drv.add_indirect(&mem, table, &[rd(DATA, 8)]).unwrap();
    Descriptor {
        addr: table,
        len: 16,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: 0,
    }
    .write(&mem, table)
    .unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::BadIndirect, "nested");
    let l = layout(false, true);
    let (mut drv, mut dev) = setup(&mem, l);
    let h = drv.add_indirect(&mem, table, &[rd(DATA, 8)]).unwrap();
    let at = l.desc_table + 16 * u64::from(h);
    Descriptor {
        addr: table,
        len: 16,
        flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
        next: 1,
    }
    .write(&mem, at)
    .unwrap();
    assert_eq!(
        chain_err(&mut dev, &mem),
        ChainError::BadIndirect,
        "with NEXT"
    );
    let (mut drv, mut dev) = setup(&mem, l);
    let h = drv.add_indirect(&mem, table, &[rd(DATA, 8)]).unwrap();
    Descriptor {
        addr: table,
        len: 24,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: 0,
    }
    .write(&mem, l.desc_table + 16 * u64::from(h))
    .unwrap();
    assert_eq!(
        chain_err(&mut dev, &mem),
        ChainError::BadIndirect,
        "24 bytes"
    );
    // A table outside memory.
    let (mut drv, mut dev) = setup(&mem, l);
    let h = drv.add_indirect(&mem, table, &[rd(DATA, 8)]).unwrap();
    Descriptor {
        addr: BASE + 0x4000 - 16,
        len: 32,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: 0,
    }
    .write(&mem, l.desc_table + 16 * u64::from(h))
    .unwrap();
    assert!(matches!(
        chain_err(&mut dev, &mem),
        ChainError::Memory(MemoryError::OutOfRange { .. })
    ));
    // A loop inside the table.
    let (mut drv, mut dev) = setup(&mem, l);
    drv.add_indirect(&mem, table, &[rd(DATA, 8), rd(DATA, 8)])
        .unwrap();
    Descriptor {
        addr: DATA,
        len: 8,
        flags: VIRTQ_DESC_F_NEXT,
        next: 0,
    }
    .write(&mem, table + 16)
    .unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::Loop);
}

#[test]
fn hostile_chains_are_errors_and_the_queue_keeps_serving() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let l = layout(false, false);
    let desc = |i: u16| l.desc_table + 16 * u64::from(i);
    let (mut drv, mut dev) = setup(&mem, l);

    // A descriptor that links to itself.
    let h = drv.add(&mem, &[rd(DATA, 4)]).unwrap();
    Descriptor {
        addr: DATA,
        len: 4,
        flags: VIRTQ_DESC_F_NEXT,
        next: h,
    }
    .write(&mem, desc(h))
    .unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::Loop);
    dev.add_used(&mem, h, 0).unwrap();

    // next outside the table.
    let h = drv.add(&mem, &[rd(DATA, 4)]).unwrap();
    Descriptor {
        addr: DATA,
        len: 4,
        flags: VIRTQ_DESC_F_NEXT,
        next: SIZE,
    }
    .write(&mem, desc(h))
    .unwrap();
    assert_eq!(
        chain_err(&mut dev, &mem),
        ChainError::NextOutOfRange {
            next: SIZE,
            size: 8
        }
    );
    dev.add_used(&mem, h, 0).unwrap();

    // A buffer past the end of memory, and one whose end wraps the address space.
    let h = drv.add(&mem, &[rd(BASE + 0x3fff, 2)]).unwrap();
    assert!(matches!(
        chain_err(&mut dev, &mem),
        ChainError::Memory(MemoryError::OutOfRange { .. })
    ));
    dev.add_used(&mem, h, 0).unwrap();
    let h = drv.add(&mem, &[rd(u64::MAX, 2)]).unwrap();
    assert!(matches!(chain_err(&mut dev, &mem), ChainError::Memory(_)));
    dev.add_used(&mem, h, 0).unwrap();

    // Readable after writable.
    let h = drv.add(&mem, &[wr(DATA, 1), rd(DATA + 1, 1)]).unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::ReadableAfterWritable);
    dev.add_used(&mem, h, 0).unwrap();

    // More segments than MAX_SEGMENTS (through an indirect table, the ring has 8 entries).
    let (mut drv, mut dev) = setup(&mem, layout(false, true));
    let bufs: Vec<Buffer> = (0..17).map(|i| rd(DATA + i, 1)).collect();
    drv.add_indirect(&mem, DATA + 0x800, &bufs).unwrap();
    assert_eq!(chain_err(&mut dev, &mem), ChainError::TooManySegments);

    // Every completed chain reached the driver, and the queue still serves.
    let mut drv_count = 0;
    let (mut drv, mut dev) = setup(&mem, l);
    for _ in 0..20 {
        let h = drv.add(&mem, &[wr(DATA, 1)]).unwrap();
        let p = dev.pop(&mem).unwrap().unwrap();
        dev.add_used(&mem, p.head, 1).unwrap();
        assert_eq!(drv.pop_used(&mem).unwrap(), Some((h, 1)));
        drv_count += 1;
    }
    assert_eq!(drv_count, 20, "indices wrap the ring more than twice");
}

#[test]
fn zero_length_buffers_are_skipped_but_counted() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    drv.add(
        &mem,
        &[rd(DATA, 0), rd(DATA, 8), wr(DATA, 0), wr(DATA + 8, 1)],
    )
    .unwrap();
    let c = dev.pop(&mem).unwrap().unwrap().chain.unwrap();
    assert_eq!(c.segments().len(), 2);
    assert_eq!((c.readable_len(), c.writable_len()), (8, 1));
}

#[test]
fn hostile_ring_indices_stop_the_queue() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let l = layout(false, false);
    let (_drv, mut dev) = setup(&mem, l);
    let avail_idx = mem.atomic_u16(l.avail_ring + 2).unwrap();
    avail_idx.store(SIZE + 1, std::sync::atomic::Ordering::Release);
    assert_eq!(
        dev.pop(&mem),
        Err(QueueError::AvailTooFar {
            avail: 9,
            next: 0,
            size: 8
        })
    );
    assert_eq!(dev.pop(&mem), Err(QueueError::Stopped));
    assert!(dev.stopped().is_some());

    let (_drv, mut dev) = setup(&mem, l);
    avail_idx.store(1, std::sync::atomic::Ordering::Release);
    mem.atomic_u16(l.avail_ring + 4)
        .unwrap()
        .store(SIZE, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        dev.pop(&mem),
        Err(QueueError::HeadOutOfRange { head: 8, size: 8 })
    );

    // A driver that makes more chains available than the queue has, reusing heads the
    // device holds.
    let (mut drv, mut dev) = setup(&mem, l);
    for _ in 0..SIZE {
        drv.add(&mem, &[wr(DATA, 1)]).unwrap();
        dev.pop(&mem).unwrap().unwrap();
    }
    avail_idx.store(SIZE + 1, std::sync::atomic::Ordering::Release);
    assert_eq!(dev.pop(&mem), Err(QueueError::InFlightFull));
}

#[test]
fn layouts_are_validated() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    for size in [0, 3, 6, 65535] {
        let mut l = layout(false, false);
        l.size = size;
        assert_eq!(
            SplitQueue::new(&mem, l).unwrap_err(),
            QueueError::Layout(LayoutError::BadSize(size))
        );
    }
    let mut l = layout(false, false);
    l.used_ring += 2;
    assert!(matches!(
        SplitQueue::new(&mem, l),
        Err(QueueError::Layout(LayoutError::Ring {
            part: "used ring",
            ..
        }))
    ));
    let mut l = layout(false, false);
    l.desc_table = BASE + 0x4000 - 64;
    assert!(matches!(
        SplitQueue::new(&mem, l),
        Err(QueueError::Layout(LayoutError::Ring {
            part: "descriptor table",
            ..
        }))
    ));
    let l = QueueLayout::packed_at(BASE - 0x100, SIZE, false, false).unwrap();
    assert!(SplitQueue::new(&mem, l).is_err(), "below the region");
    assert!(QueueLayout::packed_at(u64::MAX - 8, SIZE, false, false).is_none());
}

#[test]
fn memory_bounds() {
    let mut r = vec![0u8; 64];
    let mem = GuestMemory::from_slice(&mut r, 0x1000).unwrap();
    assert_eq!(mem.offset(0x1000, 64), Ok(0));
    assert_eq!(mem.offset(0x103f, 1), Ok(63));
    assert!(mem.offset(0x103f, 2).is_err());
    assert!(mem.offset(0xfff, 1).is_err());
    assert!(mem.offset(0x1000, u64::MAX).is_err());
    assert_eq!(
        mem.atomic_u16(0x1001).unwrap_err(),
        MemoryError::Misaligned(0x1001)
    );
    assert!(mem.atomic_u32(0x103e).is_err());
    let mut r = vec![0u8; 64];
    assert!(matches!(
        GuestMemory::from_slice(&mut r, u64::MAX - 10),
        Err(MemoryError::RegionWraps { .. })
    ));
}

#[test]
fn interrupts_without_event_idx_follow_the_drivers_flag() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    let h = drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    let since = drv.avail_index();
    assert!(dev.drain(&mem, |_| Some(1)).unwrap(), "flags 0: interrupt");
    assert_eq!(drv.pop_used(&mem).unwrap(), Some((h, 1)));
    assert!(
        !dev.needs_interrupt(&mem).unwrap(),
        "nothing new since the last decision"
    );
    drv.set_interrupts(&mem, false).unwrap();
    drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    assert!(!dev.drain(&mem, |_| Some(1)).unwrap(), "NO_INTERRUPT");
    // Kicks: the device disabled them while draining and re-enabled them after.
    assert!(drv.needs_kick(&mem, since).unwrap());
    dev.disable_kicks(&mem).unwrap();
    assert!(!drv.needs_kick(&mem, since).unwrap());
}

#[test]
fn event_idx_interrupts_and_kicks() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(true, false));
    drv.set_interrupts(&mem, true).unwrap();
    for _ in 0..3 {
        drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    }
    // used_event = 0: the first used element crosses it.
    assert!(dev.drain(&mem, |_| Some(1)).unwrap());
    for _ in 0..3 {
        drv.pop_used(&mem).unwrap().unwrap();
    }
    // The driver does not re-arm: used_event stays 0, so 3 -> 5 does not cross it.
    let since = drv.avail_index();
    drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    assert!(
        drv.needs_kick(&mem, since).unwrap(),
        "avail_event = 3 after the drain"
    );
    drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    assert!(!dev.drain(&mem, |_| Some(1)).unwrap());
    // Re-armed at 5: the next one interrupts.
    drv.pop_used(&mem).unwrap().unwrap();
    drv.pop_used(&mem).unwrap().unwrap();
    drv.set_interrupts(&mem, true).unwrap();
    let since = drv.avail_index();
    drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    assert!(drv.needs_kick(&mem, since).unwrap());
    let since = drv.avail_index();
    drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    assert!(
        !drv.needs_kick(&mem, since).unwrap(),
        "avail_event still 5: no second kick"
    );
    assert!(dev.drain(&mem, |_| Some(1)).unwrap());
}

#[test]
fn enable_kicks_reports_a_chain_that_raced_it() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    for event_idx in [false, true] {
        let (mut drv, mut dev) = setup(&mem, layout(event_idx, false));
        assert!(!dev.enable_kicks(&mem).unwrap());
        drv.add(&mem, &[wr(DATA, 1)]).unwrap();
        assert!(
            dev.enable_kicks(&mem).unwrap(),
            "a chain arrived: drain again"
        );
    }
}

#[test]
fn held_chains_complete_later_in_any_order() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    let a = drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    let b = drv.add(&mem, &[wr(DATA + 1, 1)]).unwrap();
    let mut held = Vec::new();
    assert!(
        !dev.drain(&mem, |p| {
            held.push(p.head);
            None
        })
        .unwrap()
    );
    assert_eq!(dev.in_flight(), 2);
    dev.add_used(&mem, b, 1).unwrap();
    dev.add_used(&mem, a, 1).unwrap();
    assert_eq!(drv.pop_used(&mem).unwrap(), Some((b, 1)));
    assert_eq!(drv.pop_used(&mem).unwrap(), Some((a, 1)));
    assert_eq!(held, [a, b]);
}

#[test]
fn driver_refuses_bad_used_ids_and_full_rings() {
    let mut r = region();
    let mem = GuestMemory::from_slice(&mut r, BASE).unwrap();
    let (mut drv, mut dev) = setup(&mem, layout(false, false));
    let bufs = [wr(DATA, 1); 9];
    assert_eq!(drv.add(&mem, &bufs), Err(DriverError::Full));
    assert_eq!(drv.add(&mem, &[]), Err(DriverError::Empty));
    let h = drv.add(&mem, &[wr(DATA, 1)]).unwrap();
    dev.pop(&mem).unwrap().unwrap();
    dev.add_used(&mem, h + 1, 1).unwrap();
    assert_eq!(
        drv.pop_used(&mem),
        Err(DriverError::BadUsedId(u32::from(h + 1)))
    );
}

#[test]
fn kick_latch_collects_kicks_per_queue() {
    let latch = KickLatch::new();
    assert_eq!(latch.take(), 0);
    assert!(latch.kick(0));
    assert!(latch.kick(0));
    assert!(latch.kick(31));
    assert!(!latch.kick(32));
    assert_eq!(latch.take(), 1 | 1 << 31);
    assert_eq!(latch.take(), 0);
}

#[test]
fn writable_flag_constant_matches_the_spec() {
    assert_eq!(
        (VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT),
        (1, 2, 4)
    );
}
