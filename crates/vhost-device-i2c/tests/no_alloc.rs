//! Proves that the request path allocates nothing per request: the backend is built
//! in-process on a simulated bus, a split ring is laid out by hand in guest memory, and a
//! round of requests (quick, write, write+read group) is handled by `handle_event` while a
//! counting global allocator watches the calling thread.
// Test code: panics are failures, buffers are indexed directly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;

use clap::Parser;

use vhost_device_common::{GuestMemory, Vring};
use vhost_device_i2c::args::{Args, Config};
use vhost_device_i2c::bus::Bus;
use vhost_device_i2c::device::I2cBackend;
use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_i2c_core::VIRTIO_I2C_MSG_OK;
use virtio_i2c_core::request::encode_header;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

// ---- a global allocator that counts the allocations of the thread that asks ----

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

// ---- a hand-made split ring ----

const QSIZE: u16 = 256;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const DATA: u64 = 0x10000;
const EEPROM: u8 = 0x50;

/// The driver side of one split virtqueue, written straight into guest memory.
struct Driver {
    mem: GuestMemoryMmap,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
    next_data: u64,
}

/// A descriptor to post: device-readable bytes, or `n` device-writable bytes.
enum D<'a> {
    Out(&'a [u8]),
    In(u32),
}

impl Driver {
    fn new(mem: GuestMemoryMmap) -> Self {
        Driver {
            mem,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
            next_data: DATA,
        }
    }

    /// Posts one chain; returns its head and the guest addresses of its writable buffers.
    fn post(&mut self, descs: &[D<'_>]) -> (u16, Vec<u64>) {
        let mut writable = Vec::new();
        let head = self.next_desc % QSIZE;
        for (i, d) in descs.iter().enumerate() {
            let slot = self.next_desc % QSIZE;
            self.next_desc = self.next_desc.wrapping_add(1);
            let addr = self.next_data;
            let (len, mut flags) = match d {
                D::Out(bytes) => {
                    self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
                    (bytes.len() as u32, 0u16)
                }
                D::In(n) => {
                    self.mem
                        .write_slice(&vec![0xee; *n as usize], GuestAddress(addr))
                        .unwrap();
                    writable.push(addr);
                    (*n, 2u16) // VRING_DESC_F_WRITE
                }
            };
            self.next_data += 0x100;
            let next = self.next_desc % QSIZE;
            if i + 1 < descs.len() {
                flags |= 1; // VRING_DESC_F_NEXT
            }
            let at = GuestAddress(DESC + 16 * u64::from(slot));
            self.mem.write_obj(addr, at).unwrap();
            self.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
            self.mem.write_obj(next, GuestAddress(at.0 + 14)).unwrap();
        }
        let ring_slot = self.avail_idx % QSIZE;
        self.mem
            .write_obj(head, GuestAddress(AVAIL + 4 + 2 * u64::from(ring_slot)))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(AVAIL + 2))
            .unwrap();
        (head, writable)
    }

    /// Every used element not yet seen, as (id, len).
    fn used(&mut self) -> Vec<(u32, u32)> {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let mut out = Vec::new();
        while self.used_seen != idx {
            let at = USED + 4 + 8 * u64::from(self.used_seen % QSIZE);
            let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
            out.push((id, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        // Re-arm (EVENT_IDX), as a driver does after consuming: signal the next completion.
        self.mem
            .write_obj(
                self.used_seen,
                GuestAddress(AVAIL + 4 + 2 * u64::from(QSIZE)),
            )
            .unwrap();
        out
    }

    fn byte(&self, addr: u64) -> u8 {
        self.mem.read_obj(GuestAddress(addr)).unwrap()
    }
}

struct Setup {
    backend: I2cBackend,
    vrings: Vec<Vring>,
    driver: Driver,
    call: EventFd,
}

fn setup(event_idx: bool) -> Setup {
    // The bus exactly as the daemon builds it for `--simulate 24c02@0x50`.
    let args = Args::try_parse_from([
        "vhost-device-i2c",
        "-s",
        "/nonexistent/i2c.sock",
        "--simulate",
        "24c02@0x50",
    ])
    .unwrap();
    let bus = Bus::open(&Config::try_from(args).unwrap()).unwrap();
    let backend = I2cBackend::new(Arc::new(bus));

    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem: GuestMemory = GuestMemoryAtomic::new(mmap.clone());
    let vring = Vring::new(mem.clone(), QSIZE).unwrap();
    vring.set_queue_info(DESC, AVAIL, USED).unwrap();
    vring.set_queue_size(QSIZE);
    vring.set_queue_event_idx(event_idx);
    vring.set_queue_ready(true);
    vring.set_enabled(true);
    // A real call eventfd, so signalling the guest is part of what is measured.
    let call = EventFd::new(EFD_NONBLOCK).unwrap();
    // SAFETY: the clone's descriptor is owned by nobody else; the File takes it over.
    let call_file = unsafe { File::from_raw_fd(call.try_clone().unwrap().into_raw_fd()) };
    vring.set_call(Some(call_file));
    backend.set_event_idx(event_idx);
    backend.update_memory(mem).unwrap();
    Setup {
        backend,
        vrings: vec![vring],
        driver: Driver::new(mmap),
        call,
    }
}

/// What a posted request must come back with.
struct Expect {
    head: u16,
    used_len: u32,
    status: u64,
    data: Option<(u64, u8)>,
}

/// Posts the round's requests, one kick's worth at a time, calling `kick` after each
/// transfer (as Linux kicks once per transfer); returns what to check afterwards.
fn round(s: &mut Setup, mut kick: impl FnMut(&Setup)) -> Vec<Expect> {
    let mut expect = Vec::new();
    for i in 0..8u8 {
        // Quick (zero-length write).
        let (head, w) = s
            .driver
            .post(&[D::Out(&encode_header(EEPROM, false, false)), D::In(1)]);
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        kick(s);
        // Write one byte at offset 0x20 + i.
        let (head, w) = s.driver.post(&[
            D::Out(&encode_header(EEPROM, false, false)),
            D::Out(&[0x20 + i, 0xa0 + i]),
            D::In(1),
        ]);
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        kick(s);
        // Read it back: offset write with FAIL_NEXT, then a 1-byte read; one kick.
        let (head, w) = s.driver.post(&[
            D::Out(&encode_header(EEPROM, false, true)),
            D::Out(&[0x20 + i]),
            D::In(1),
        ]);
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        let (head, w) = s.driver.post(&[
            D::Out(&encode_header(EEPROM, true, false)),
            D::In(1),
            D::In(1),
        ]);
        expect.push(Expect {
            head,
            used_len: 2,
            status: w[1],
            data: Some((w[0], 0xa0 + i)),
        });
        kick(s);
    }
    expect
}

fn handle(s: &Setup) -> usize {
    let (r, n) = allocations_in(|| s.backend.handle_event(0, EventSet::IN, &s.vrings, 0));
    r.unwrap();
    n
}

fn check(s: &mut Setup, expect: &[Expect]) {
    let used = s.driver.used();
    assert_eq!(used.len(), expect.len(), "every request completed once");
    for (u, e) in used.iter().zip(expect) {
        assert_eq!(*u, (u32::from(e.head), e.used_len), "used element");
        assert_eq!(s.driver.byte(e.status), VIRTIO_I2C_MSG_OK, "status");
        if let Some((at, want)) = e.data {
            assert_eq!(s.driver.byte(at), want, "read data");
        }
    }
    // The guest was signalled.
    assert!(s.call.read().unwrap() > 0);
}

fn request_path_allocates_nothing(event_idx: bool) {
    let mut s = setup(event_idx);
    // Warm-up. The only allocation allowed here is once per thread, not per request:
    // the first `GuestMemoryAtomic::memory()` on a thread registers arc-swap's thread-local
    // debt node (one small Box, kept for the thread's life).
    let mut warm = Vec::new();
    let expect = round(&mut s, |s| warm.push(handle(s)));
    check(&mut s, &expect);
    assert!(warm[0] <= 1, "first kick allocated {}", warm[0]);
    assert!(warm[1..].iter().all(|&n| n == 0), "warm-up: {warm:?}");

    let mut counts = Vec::new();
    let expect = round(&mut s, |s| counts.push(handle(s)));
    check(&mut s, &expect);
    assert_eq!(counts.len(), 24);
    assert!(
        counts.iter().all(|&n| n == 0),
        "allocations per kick: {counts:?}"
    );

    // A whole round drained by one event (batch of 32 chains, 8 groups).
    let expect = round(&mut s, |_| {});
    let n = handle(&s);
    check(&mut s, &expect);
    assert_eq!(n, 0, "allocations while draining a batch");
}

#[test]
fn i2c_request_path_allocates_nothing() {
    request_path_allocates_nothing(false);
}

#[test]
fn i2c_request_path_allocates_nothing_with_event_idx() {
    request_path_allocates_nothing(true);
}

#[test]
fn the_counter_sees_this_threads_allocations_only() {
    let (v, n) = allocations_in(|| vec![1u8; 100]);
    assert_eq!((v.len(), n), (100, 1));
    let (_, n) = allocations_in(|| std::thread::spawn(|| vec![0u8; 100].len()).join().unwrap());
    // Spawning allocates here (the thread's handle); the child's vector is not counted.
    assert!(n >= 1);
    let (_, n) = allocations_in(|| std::hint::black_box(3) + 4);
    assert_eq!(n, 0);
}
