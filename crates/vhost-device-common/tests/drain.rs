//! The drain loop against rings a hostile driver or frontend wrote: it never spins, never
//! touches memory that could kill the process, and stops only the ring that was broken.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::os::fd::FromRawFd;

use vhost_device_common::queue::{self, Chain, ChainMemory, ChainSink, UsedRing, drain};
use vhost_device_common::{GuestMemory, Vring};
use vhost_user_backend::VringT;
use vhost_user_test_frontend::inproc::{Buf, RingDriver, Rings, vring};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

const RINGS: Rings = Rings {
    size: 8,
    desc: 0x1000,
    avail: 0x2000,
    used: 0x3000,
    data: 0x4000,
};

/// Returns every chain at once with a used length of 1.
#[derive(Default)]
struct Echo {
    seen: usize,
}

impl ChainSink for Echo {
    fn chain(&mut self, chain: Chain<'_>, _mem: ChainMemory<'_>, used: &mut UsedRing<'_>) {
        self.seen += 1;
        used.add(queue::head(&chain), 1);
    }
}

fn anon(len: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)]).unwrap()
}

fn memfd(len: u64) -> File {
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a new descriptor only this File owns.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(len).unwrap();
    f
}

fn setup(mmap: GuestMemoryMmap, event_idx: bool) -> (GuestMemory, Vring, RingDriver) {
    let mem = GuestMemoryAtomic::new(mmap.clone());
    let (v, _call) = vring::<Vring>(&mem, RINGS, event_idx).unwrap();
    (mem, v, RingDriver::new(mmap, RINGS).unwrap())
}

fn set_avail_idx(mmap: &GuestMemoryMmap, idx: u16) {
    mmap.write_obj(idx, GuestAddress(RINGS.avail + 2)).unwrap();
}

#[test]
fn a_good_ring_is_drained() {
    for event_idx in [false, true] {
        let (_m, v, mut d) = setup(anon(0x10_0000), event_idx);
        d.post(&[Buf::Out(&[1]), Buf::In(1)]).unwrap();
        d.post(&[Buf::In(4)]).unwrap();
        let mut echo = Echo::default();
        drain(&v, &mut echo);
        assert_eq!(echo.seen, 2);
        assert_eq!(d.used().unwrap().len(), 2);
        assert!(!v.is_stopped());
    }
}

#[test]
fn an_available_index_far_ahead_stops_the_ring_instead_of_spinning() {
    for event_idx in [false, true] {
        let mmap = anon(0x10_0000);
        let (_m, v, _d) = setup(mmap.clone(), event_idx);
        set_avail_idx(&mmap, 60000);
        let mut echo = Echo::default();
        // Before the fix this never returned with EVENT_IDX.
        drain(&v, &mut echo);
        assert_eq!(echo.seen, 0);
        assert!(v.is_stopped(), "event_idx={event_idx}");
        // A stopped ring stays quiet on further kicks...
        drain(&v, &mut echo);
        assert_eq!(echo.seen, 0);
        // ...until the frontend sets it up again.
        v.set_queue_next_avail(60000);
        assert!(!v.is_stopped());
    }
}

#[test]
fn a_base_far_ahead_of_the_driver_stops_the_ring() {
    let (_m, v, mut d) = setup(anon(0x10_0000), true);
    d.post(&[Buf::In(1)]).unwrap();
    v.set_queue_next_avail(30000);
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 0);
    assert!(v.is_stopped());
}

#[test]
fn out_of_range_heads_are_skipped_and_the_ring_keeps_running() {
    let mmap = anon(0x10_0000);
    let (_m, v, _d) = setup(mmap.clone(), true);
    for slot in 0..u64::from(RINGS.size) {
        mmap.write_obj(1000u16 + 7, GuestAddress(RINGS.avail + 4 + 2 * slot))
            .unwrap();
    }
    set_avail_idx(&mmap, RINGS.size);
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(
        echo.seen, 0,
        "no chain with a head beyond the queue reaches the device"
    );
    assert!(!v.is_stopped());
    // The queue still serves a good chain afterwards: descriptor 0, one writable byte.
    mmap.write_obj(RINGS.data, GuestAddress(RINGS.desc))
        .unwrap();
    mmap.write_obj(1u32, GuestAddress(RINGS.desc + 8)).unwrap();
    mmap.write_obj(2u16, GuestAddress(RINGS.desc + 12)).unwrap();
    mmap.write_obj(0u16, GuestAddress(RINGS.avail + 4)).unwrap();
    set_avail_idx(&mmap, RINGS.size + 1);
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1);
    let used_idx: u16 = mmap.read_obj(GuestAddress(RINGS.used + 2)).unwrap();
    assert_eq!(used_idx, 1, "only the good chain is in the used ring");
}

#[test]
fn a_ring_at_the_end_of_memory_is_stopped_not_read() {
    // The available ring's index is readable, its entries are not.
    let len = 0x10_0000u64;
    let rings = Rings {
        avail: len - 4,
        ..RINGS
    };
    let mmap = anon(usize::try_from(len).unwrap());
    let mem = GuestMemoryAtomic::new(mmap.clone());
    let (v, _call) = vring::<Vring>(&mem, rings, true).unwrap();
    mmap.write_obj(3u16, GuestAddress(rings.avail + 2)).unwrap();
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 0);
    assert!(v.is_stopped());
}

#[test]
fn a_kick_before_the_memory_table_is_harmless() {
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let v = Vring::new(mem.clone(), 8).unwrap();
    v.set_queue_event_idx(true);
    v.set_queue_ready(true);
    v.set_enabled(true);
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert!(!v.is_stopped(), "no memory yet is not an error");
    // The table arrives, the ring is set up, and it works.
    let mmap = anon(0x10_0000);
    mem.lock().unwrap().replace(mmap.clone());
    v.set_queue_info(RINGS.desc, RINGS.avail, RINGS.used)
        .unwrap();
    let mut d = RingDriver::new(mmap, RINGS).unwrap();
    d.post(&[Buf::In(1)]).unwrap();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1);
}

#[test]
fn a_region_larger_than_its_file_is_never_touched() {
    // 16 MiB declared over a 1 MiB memfd: the descriptor's buffer at 8 MiB is past the end of
    // the file, and reading it would kill this test with SIGBUS.
    let file = memfd(0x10_0000);
    let mmap = GuestMemoryMmap::from_ranges_with_files(&[(
        GuestAddress(0),
        0x100_0000,
        Some(FileOffset::new(file, 0)),
    )])
    .unwrap();
    let (_m, v, mut d) = setup(mmap.clone(), true);
    d.post(&[Buf::In(1)]).unwrap();
    mmap.write_obj(0x80_0000u64, GuestAddress(RINGS.desc))
        .unwrap();
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 0);
    assert!(v.is_stopped());
}

#[test]
fn a_memory_table_swapped_for_zeroed_memory_is_survived() {
    let (mem, v, mut d) = setup(anon(0x10_0000), true);
    d.post(&[Buf::In(1)]).unwrap();
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1);
    // Swap in zeroed memory: the ring's indices read 0, behind the device's position.
    mem.lock().unwrap().replace(anon(0x10_0000));
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1);
    assert!(
        v.is_stopped(),
        "an available index behind the device is out of range"
    );
}

/// A memory table the frontend sends after the ring checked the previous one is checked
/// before the ring touches it: a region beyond its file stops the ring instead of raising
/// SIGBUS, and a good table after it runs again.
#[test]
fn a_table_that_arrives_after_the_check_is_checked_again() {
    let good = |len| {
        GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(0),
            0x10_0000,
            Some(FileOffset::new(memfd(len), 0)),
        )])
        .unwrap()
    };
    let first = good(0x10_0000);
    let (mem, v, mut d) = setup(first, true);
    d.post(&[Buf::In(1)]).unwrap();
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1, "the first table was checked and runs");

    // Same layout, but a 64 KiB file behind the 1 MiB region: the ring at 0x1000.. is inside
    // the file, the descriptor's buffer at 0x80000 is not.
    let short = good(0x1_0000);
    let mut d = RingDriver::new(short.clone(), RINGS).unwrap();
    mem.lock().unwrap().replace(short);
    d.post(&[Buf::In(1)]).unwrap();
    drain(&v, &mut echo);
    assert_eq!(
        echo.seen, 1,
        "no chain of the unchecked table reaches the device"
    );
    assert!(v.is_stopped(), "the new table was checked and refused");

    let again = good(0x10_0000);
    mem.lock().unwrap().replace(again.clone());
    v.set_queue_next_avail(0);
    let mut d = RingDriver::new(again, RINGS).unwrap();
    d.post(&[Buf::In(1)]).unwrap();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 2, "a good table after it runs");
}

/// The ring remembers which table it checked without keeping it: once the library replaces
/// a table, its mappings go at once, not at the next kick.
#[test]
fn a_replaced_table_is_not_kept_mapped_by_the_ring() {
    let (mem, v, mut d) = setup(anon(0x10_0000), true);
    d.post(&[Buf::In(1)]).unwrap();
    let mut echo = Echo::default();
    drain(&v, &mut echo);
    assert_eq!(echo.seen, 1);
    let checked =
        std::sync::Arc::downgrade(&vm_memory::GuestAddressSpace::memory(&mem).into_inner());
    assert!(checked.upgrade().is_some(), "the table in use is alive");
    mem.lock().unwrap().replace(anon(0x10_0000));
    assert!(
        checked.upgrade().is_none(),
        "the checked table was released when it was replaced"
    );
    // And a layout change after a check does not keep it either.
    let (mem, v, mut d) = setup(anon(0x10_0000), true);
    d.post(&[Buf::In(1)]).unwrap();
    drain(&v, &mut echo);
    let checked =
        std::sync::Arc::downgrade(&vm_memory::GuestAddressSpace::memory(&mem).into_inner());
    v.set_queue_info(RINGS.desc, RINGS.avail, RINGS.used)
        .unwrap();
    mem.lock().unwrap().replace(anon(0x10_0000));
    assert!(checked.upgrade().is_none());
}

/// The drain loop takes chains from the available ring a few dozen at a time; a kick with
/// more than that available still gets every one of them, in order.
#[test]
fn a_kick_with_more_chains_than_one_take_drains_them_all() {
    let rings = Rings { size: 128, ..RINGS };
    for event_idx in [false, true] {
        let mmap = anon(0x10_0000);
        let mem = GuestMemoryAtomic::new(mmap.clone());
        let (v, _call) = vring::<Vring>(&mem, rings, event_idx).unwrap();
        let mut d = RingDriver::new(mmap, rings).unwrap();
        let posted: Vec<u16> = (0..100).map(|_| d.post(&[Buf::In(1)]).unwrap().0).collect();
        let mut echo = Echo::default();
        drain(&v, &mut echo);
        assert_eq!(echo.seen, posted.len(), "event_idx={event_idx}");
        let returned: Vec<u16> = d
            .used()
            .unwrap()
            .into_iter()
            .map(|(id, _)| u16::try_from(id).unwrap())
            .collect();
        assert_eq!(returned, posted, "every chain returned once, in order");
        assert!(!v.is_stopped());
    }
}
