//! Proves that the request path allocates nothing per request: the backend is built
//! in-process exactly as the daemon builds it for `-l s8` (a simulated chip), two split rings
//! (requestq, eventq) are laid out by hand in guest memory, and rounds of GET_VALUE,
//! SET_VALUE and GET_DIRECTION requests, plus the interrupt path they trigger (a host edge
//! completing a held eventq buffer, the buffer re-queued), are handled by `handle_event`
//! while a counting global allocator watches the calling thread.
//!
//! Not covered: a host chip (`/dev/gpiochipN`, needs hardware or gpio-sim). There, by
//! reading gpiocdev 0.8: GET_VALUE and SET_VALUE are one ioctl each on stack structures,
//! and edge reads use a stack buffer, so they allocate nothing; SET_DIRECTION and
//! SET_IRQ_TYPE request or reconfigure the line through gpiocdev's builder, which allocates
//! (configuration vectors, the chip path). Those are line set-up messages, not the hot path,
//! and changing them would mean replacing gpiocdev's request API. Error paths (which format
//! messages) are not covered either.
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

use vhost_device_common::{GuestMemory, Vring};
use vhost_device_gpio::backend;
use vhost_device_gpio::host::{Host, HostSource};
use vhost_device_gpio::vhu_gpio::GpioBackend;
use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{
    GET_DIRECTION, GET_VALUE, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
};
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

// ---- hand-made split rings ----

const QSIZE: u16 = 256;
const REQUEST_QUEUE: u16 = 0;
const EVENT_QUEUE: u16 = 1;
/// The backend's device event for the host chip's edge descriptor.
const HOST_EVENTS: u16 = 3;

const OK: u8 = 0;
const VALID: u8 = 1;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;
const IRQ_EDGE_BOTH: u32 = 3;
/// Line 0 drives; line 1 is wired to it in the simulator.
const OUT_LINE: u16 = 0;
const IN_LINE: u16 = 1;

/// Where one queue lives in guest memory.
#[derive(Clone, Copy)]
struct Rings {
    desc: u64,
    avail: u64,
    used: u64,
    data: u64,
}

const REQUEST_RINGS: Rings = Rings {
    desc: 0x1000,
    avail: 0x2000,
    used: 0x3000,
    data: 0x10000,
};
const EVENT_RINGS: Rings = Rings {
    desc: 0x4000,
    avail: 0x5000,
    used: 0x6000,
    data: 0x80000,
};

/// The driver side of one split virtqueue, written straight into guest memory.
struct Driver {
    mem: GuestMemoryMmap,
    rings: Rings,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

/// A descriptor to post: device-readable bytes, or `n` device-writable bytes.
enum D<'a> {
    Out(&'a [u8]),
    In(u32),
}

impl Driver {
    fn new(mem: GuestMemoryMmap, rings: Rings) -> Self {
        Driver {
            mem,
            rings,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    /// Posts one chain; returns its head and the guest addresses of its writable buffers.
    fn post(&mut self, descs: &[D<'_>]) -> (u16, Vec<u64>) {
        let r = self.rings;
        let mut writable = Vec::new();
        let head = self.next_desc % QSIZE;
        for (i, d) in descs.iter().enumerate() {
            let slot = self.next_desc % QSIZE;
            self.next_desc = self.next_desc.wrapping_add(1);
            // Buffers are recycled with the descriptor slots.
            let addr = r.data + 0x40 * u64::from(slot);
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
            let next = self.next_desc % QSIZE;
            if i + 1 < descs.len() {
                flags |= 1; // VRING_DESC_F_NEXT
            }
            let at = r.desc + 16 * u64::from(slot);
            self.mem.write_obj(addr, GuestAddress(at)).unwrap();
            self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
            self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
        }
        let ring_slot = self.avail_idx % QSIZE;
        self.mem
            .write_obj(head, GuestAddress(r.avail + 4 + 2 * u64::from(ring_slot)))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(r.avail + 2))
            .unwrap();
        (head, writable)
    }

    /// Every used element not yet seen, as (id, len).
    fn used(&mut self) -> Vec<(u32, u32)> {
        let r = self.rings;
        let idx: u16 = self.mem.read_obj(GuestAddress(r.used + 2)).unwrap();
        let mut out = Vec::new();
        while self.used_seen != idx {
            let at = r.used + 4 + 8 * u64::from(self.used_seen % QSIZE);
            let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
            out.push((id, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        // Re-arm (EVENT_IDX), as a driver does after consuming: signal the next completion.
        self.mem
            .write_obj(
                self.used_seen,
                GuestAddress(r.avail + 4 + 2 * u64::from(QSIZE)),
            )
            .unwrap();
        out
    }

    fn byte(&self, addr: u64) -> u8 {
        self.mem.read_obj(GuestAddress(addr)).unwrap()
    }
}

/// What a posted chain must come back with: used length and bytes at addresses.
struct Expect {
    head: u16,
    used_len: u32,
    bytes: Vec<(u64, u8)>,
}

struct Setup {
    backend: GpioBackend<Host>,
    vrings: Vec<Vring>,
    requests: Driver,
    events: Driver,
    calls: [EventFd; 2],
    /// The eventq buffer the device holds on the input line.
    held: Option<Expect>,
}

fn vring(mem: &GuestMemory, r: Rings, event_idx: bool) -> (Vring, EventFd) {
    let vring = Vring::new(mem.clone(), QSIZE).unwrap();
    vring.set_queue_info(r.desc, r.avail, r.used).unwrap();
    vring.set_queue_size(QSIZE);
    vring.set_queue_event_idx(event_idx);
    vring.set_queue_ready(true);
    vring.set_enabled(true);
    // A real call eventfd, so signalling the guest is part of what is measured.
    let call = EventFd::new(EFD_NONBLOCK).unwrap();
    // SAFETY: the clone's descriptor is owned by nobody else; the File takes it over.
    let call_file = unsafe { File::from_raw_fd(call.try_clone().unwrap().into_raw_fd()) };
    vring.set_call(Some(call_file));
    (vring, call)
}

fn setup(event_idx: bool) -> Setup {
    // The backend exactly as the daemon makes it for `-l s8`.
    let backend = backend(&[HostSource::Simulated(8)], 0).unwrap();
    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem: GuestMemory = GuestMemoryAtomic::new(mmap.clone());
    let (requestq, request_call) = vring(&mem, REQUEST_RINGS, event_idx);
    let (eventq, event_call) = vring(&mem, EVENT_RINGS, event_idx);
    backend.set_event_idx(event_idx);
    backend.update_memory(mem).unwrap();
    let mut s = Setup {
        backend,
        vrings: vec![requestq, eventq],
        requests: Driver::new(mmap.clone(), REQUEST_RINGS),
        events: Driver::new(mmap, EVENT_RINGS),
        calls: [request_call, event_call],
        held: None,
    };
    // Line 0 an output, line 1 an input with edge interrupts and a buffer waiting on it.
    let mut expect = Vec::new();
    for (t, line, v) in [
        (SET_DIRECTION, OUT_LINE, DIR_OUT),
        (SET_DIRECTION, IN_LINE, DIR_IN),
        (SET_IRQ_TYPE, IN_LINE, IRQ_EDGE_BOTH),
    ] {
        expect.push(request(&mut s, t, line, v, 0));
        handle(&s, REQUEST_QUEUE);
    }
    check(&mut s, &expect, &[]);
    s.held = Some(queue_event_buffer(&mut s));
    handle(&s, EVENT_QUEUE);
    assert!(s.events.used().is_empty(), "the eventq buffer is held");
    s
}

/// Posts one requestq message with a 2-byte response buffer.
fn request(s: &mut Setup, t: u16, line: u16, value: u32, want: u8) -> Expect {
    let (head, w) = s
        .requests
        .post(&[D::Out(&encode_request(t, line, value)), D::In(2)]);
    Expect {
        head,
        used_len: 2,
        bytes: vec![(w[0], OK), (w[0] + 1, want)],
    }
}

/// Queues an eventq buffer for the input line; it completes VALID on the next edge.
fn queue_event_buffer(s: &mut Setup) -> Expect {
    let (head, w) = s.events.post(&[D::Out(&IN_LINE.to_le_bytes()), D::In(1)]);
    Expect {
        head,
        used_len: 1,
        bytes: vec![(w[0], VALID)],
    }
}

/// Handles one device event with allocation counting; returns the count.
fn handle(s: &Setup, event: u16) -> usize {
    let (r, n) = allocations_in(|| s.backend.handle_event(event, EventSet::IN, &s.vrings, 0));
    r.unwrap();
    n
}

fn check_queue(d: &mut Driver, call: &EventFd, expect: &[Expect]) {
    let used = d.used();
    assert_eq!(used.len(), expect.len(), "every chain completed once");
    for (u, e) in used.iter().zip(expect) {
        assert_eq!(*u, (u32::from(e.head), e.used_len), "used element");
        for &(at, want) in &e.bytes {
            assert_eq!(d.byte(at), want, "response byte at {at:#x}");
        }
    }
    if !expect.is_empty() {
        assert!(call.read().unwrap() > 0, "the guest was signalled");
    }
}

fn check(s: &mut Setup, requests: &[Expect], events: &[Expect]) {
    check_queue(&mut s.requests, &s.calls[0], requests);
    check_queue(&mut s.events, &s.calls[1], events);
}

/// One round: 8 times SET_VALUE on the output (which fires the input's interrupt), the edge
/// delivered, the eventq buffer re-queued, GET_VALUE on both lines and GET_DIRECTION.
/// `kick(setup, device_event)` runs after each step, as the vring worker would; with
/// `kick` doing nothing, the caller drains everything afterwards.
fn round(s: &mut Setup, mut kick: impl FnMut(&Setup, u16)) -> (Vec<Expect>, Vec<Expect>) {
    let mut requests = Vec::new();
    // Each edge fires the buffer held at that time; the last one queued stays held.
    let mut events: Vec<Expect> = s.held.take().into_iter().collect();
    for i in 0..8 {
        let v = u8::from(i % 2 == 0);
        requests.push(request(s, SET_VALUE, OUT_LINE, u32::from(v), 0));
        kick(s, REQUEST_QUEUE);
        kick(s, HOST_EVENTS);
        events.push(queue_event_buffer(s));
        kick(s, EVENT_QUEUE);
        requests.push(request(s, GET_VALUE, IN_LINE, 0, v));
        kick(s, REQUEST_QUEUE);
        requests.push(request(s, GET_VALUE, OUT_LINE, 0, v));
        kick(s, REQUEST_QUEUE);
        requests.push(request(s, GET_DIRECTION, OUT_LINE, 0, DIR_OUT as u8));
        kick(s, REQUEST_QUEUE);
    }
    s.held = events.pop();
    (requests, events)
}

fn request_path_allocates_nothing(event_idx: bool) {
    let mut s = setup(event_idx);
    // Warm-up. The only allocation allowed here is once per thread, not per request:
    // the first `GuestMemoryAtomic::memory()` on a thread registers arc-swap's thread-local
    // debt node (one small Box, kept for the thread's life). `setup` already ran on this
    // thread, so nothing at all is expected.
    let mut warm = Vec::new();
    let (requests, events) = round(&mut s, |s, e| warm.push(handle(s, e)));
    check(&mut s, &requests, &events);
    assert!(warm.iter().all(|&n| n == 0), "warm-up: {warm:?}");

    let mut counts = Vec::new();
    let (requests, events) = round(&mut s, |s, e| counts.push(handle(s, e)));
    check(&mut s, &requests, &events);
    assert_eq!(events.len(), 8);
    assert_eq!(counts.len(), 8 * 6);
    assert!(
        counts.iter().all(|&n| n == 0),
        "allocations per event: {counts:?}"
    );

    // A whole round of requests drained by one requestq event (32 chains), then the host
    // edges by one event: the buffer held before the round fires once, the later edges are
    // latched. (The round's eventq buffers are posted but never kicked.)
    let held = s.held.take();
    let (requests, _) = round(&mut s, |_, _| {});
    let n = handle(&s, REQUEST_QUEUE) + handle(&s, HOST_EVENTS);
    check(&mut s, &requests, held.as_slice());
    assert_eq!(n, 0, "allocations while draining a batch");
}

#[test]
fn gpio_request_path_allocates_nothing() {
    request_path_allocates_nothing(false);
}

#[test]
fn gpio_request_path_allocates_nothing_with_event_idx() {
    request_path_allocates_nothing(true);
}

#[test]
fn the_counter_sees_this_threads_allocations_only() {
    let (v, n) = allocations_in(|| vec![1u8; 100]);
    assert_eq!((v.len(), n), (100, 1));
    let (_, n) = allocations_in(|| std::hint::black_box(3) + 4);
    assert_eq!(n, 0);
}
