//! Proves that the request path allocates nothing per request: the backend is built
//! in-process exactly as the daemon builds it for `-l s8` (a simulated chip), two split rings
//! (requestq, eventq) are laid out by hand in guest memory, and rounds of GET_VALUE,
//! SET_VALUE and GET_DIRECTION requests, plus the interrupt path they trigger (a host edge
//! completing a held eventq buffer, the buffer re-queued), are handled by `handle_event`
//! while a counting global allocator watches the calling thread.
//!
//! Not covered: a host chip (`/dev/gpiochipN`, needs hardware or gpio-sim). There, by
//! reading host/cdev.rs: every operation (line request, reconfigure, GET_VALUE, SET_VALUE,
//! edge read) is one ioctl or read on stack structures (gpiocdev-uapi) through the chip or
//! request fd, so they allocate nothing. Error paths (which format messages) are not
//! covered.
// Test code: panics are failures, buffers are indexed directly.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use vhost_device_common::{GuestMemory, Vring};
use vhost_device_gpio::GpioDaemon;
use vhost_device_gpio::backend::{GpioBackend, HOST_EDGES};
use vhost_device_gpio::host::{Host, HostSource};
use vhost_user_backend::VhostUserBackend;
use vhost_user_test_frontend::inproc::{
    Buf, CountingAllocator, RingDriver, Rings, allocations_in, vring,
};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{
    GET_DIRECTION, GET_VALUE, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
};
use vm_memory::{GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

#[global_allocator]
static A: CountingAllocator = CountingAllocator;

// ---- hand-made split rings ----

const QSIZE: u16 = 256;
const REQUEST_QUEUE: u16 = 0;
const EVENT_QUEUE: u16 = 1;
/// The backend's device event for the host chip's edge descriptor (numbered by the shared
/// backend).
const HOST_EVENTS: u16 = GpioBackend::<Host>::source_event_id(HOST_EDGES).unwrap();

const OK: u8 = 0;
const VALID: u8 = 1;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;
const IRQ_EDGE_BOTH: u32 = 3;
/// Line 0 drives; line 1 is wired to it in the simulator.
const OUT_LINE: u16 = 0;
const IN_LINE: u16 = 1;

const REQUEST_RINGS: Rings = Rings {
    size: QSIZE,
    desc: 0x1000,
    avail: 0x2000,
    used: 0x3000,
    data: 0x10000,
};
const EVENT_RINGS: Rings = Rings {
    size: QSIZE,
    desc: 0x4000,
    avail: 0x5000,
    used: 0x6000,
    data: 0x80000,
};

/// What a posted chain must come back with: used length and bytes at addresses.
struct Expect {
    head: u16,
    used_len: u32,
    bytes: Vec<(u64, u8)>,
}

struct Setup {
    backend: GpioBackend<Host>,
    vrings: Vec<Vring>,
    requests: RingDriver,
    events: RingDriver,
    calls: [EventFd; 2],
    /// The eventq buffer the device holds on the input line.
    held: Option<Expect>,
}

fn setup(event_idx: bool) -> Setup {
    // The backend exactly as the daemon makes it for `-l s8`.
    let backend = GpioDaemon::backend_for(&[HostSource::Simulated(8)], 0, false).unwrap();
    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem: GuestMemory = GuestMemoryAtomic::new(mmap.clone());
    let (requestq, request_call) = vring(&mem, REQUEST_RINGS, event_idx).unwrap();
    let (eventq, event_call) = vring(&mem, EVENT_RINGS, event_idx).unwrap();
    backend.set_event_idx(event_idx);
    backend.update_memory(mem).unwrap();
    let mut s = Setup {
        backend,
        vrings: vec![requestq, eventq],
        requests: RingDriver::new(mmap.clone(), REQUEST_RINGS).unwrap(),
        events: RingDriver::new(mmap, EVENT_RINGS).unwrap(),
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
    assert!(
        s.events.used().unwrap().is_empty(),
        "the eventq buffer is held"
    );
    s
}

/// Posts one requestq message with a 2-byte response buffer.
fn request(s: &mut Setup, t: u16, line: u16, value: u32, want: u8) -> Expect {
    let (head, w) = s
        .requests
        .post(&[Buf::Out(&encode_request(t, line, value)), Buf::In(2)])
        .unwrap();
    Expect {
        head,
        used_len: 2,
        bytes: vec![(w[0], OK), (w[0] + 1, want)],
    }
}

/// Queues an eventq buffer for the input line; it completes VALID on the next edge.
fn queue_event_buffer(s: &mut Setup) -> Expect {
    let (head, w) = s
        .events
        .post(&[Buf::Out(&IN_LINE.to_le_bytes()), Buf::In(1)])
        .unwrap();
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

fn check_queue(d: &mut RingDriver, call: &EventFd, expect: &[Expect]) {
    let used = d.used().unwrap();
    assert_eq!(used.len(), expect.len(), "every chain completed once");
    for (u, e) in used.iter().zip(expect) {
        assert_eq!(*u, (u32::from(e.head), e.used_len), "used element");
        for &(at, want) in &e.bytes {
            assert_eq!(d.byte(at).unwrap(), want, "response byte at {at:#x}");
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
