//! Proves that the request path allocates nothing per request: the backend is built
//! in-process on a simulated bus, a split ring is laid out by hand in guest memory, and a
//! round of requests (quick, write, write+read group) is handled by `handle_event` while a
//! counting global allocator watches the calling thread.
// Test code: panics are failures, buffers are indexed directly.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::sync::Arc;

use clap::Parser;

use vhost_device_common::{GuestMemory, Vring};
use vhost_device_i2c::args::{Args, Config};
use vhost_device_i2c::backend::{I2cBackend, VirtioI2c};
use vhost_device_i2c::host::Router;
use vhost_user_backend::VhostUserBackend;
use vhost_user_test_frontend::inproc::{
    Buf, CountingAllocator, RingDriver, Rings, allocations_in, vring,
};
use virtio_i2c_core::VIRTIO_I2C_MSG_OK;
use virtio_i2c_core::request::encode_header;
use vm_memory::{GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

#[global_allocator]
static A: CountingAllocator = CountingAllocator;

// ---- a hand-made split ring ----

const RINGS: Rings = Rings {
    size: 256,
    desc: 0x1000,
    avail: 0x2000,
    used: 0x3000,
    data: 0x10000,
};
const EEPROM: u8 = 0x50;

struct Setup {
    backend: I2cBackend,
    vrings: Vec<Vring>,
    driver: RingDriver,
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
    let config = Config::try_from(args).unwrap();
    let router = Router::open(&config.adapters, &config.simulated).unwrap();
    let backend = I2cBackend::new(VirtioI2c::new(Arc::new(router), false));

    let mmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mem: GuestMemory = GuestMemoryAtomic::new(mmap.clone());
    let (vring, call) = vring(&mem, RINGS, event_idx).unwrap();
    backend.set_event_idx(event_idx);
    backend.update_memory(mem).unwrap();
    Setup {
        backend,
        vrings: vec![vring],
        driver: RingDriver::new(mmap, RINGS).unwrap(),
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
            .post(&[Buf::Out(&encode_header(EEPROM, false, false)), Buf::In(1)])
            .unwrap();
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        kick(s);
        // Write one byte at offset 0x20 + i.
        let (head, w) = s
            .driver
            .post(&[
                Buf::Out(&encode_header(EEPROM, false, false)),
                Buf::Out(&[0x20 + i, 0xa0 + i]),
                Buf::In(1),
            ])
            .unwrap();
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        kick(s);
        // Read it back: offset write with FAIL_NEXT, then a 1-byte read; one kick.
        let (head, w) = s
            .driver
            .post(&[
                Buf::Out(&encode_header(EEPROM, false, true)),
                Buf::Out(&[0x20 + i]),
                Buf::In(1),
            ])
            .unwrap();
        expect.push(Expect {
            head,
            used_len: 1,
            status: w[0],
            data: None,
        });
        let (head, w) = s
            .driver
            .post(&[
                Buf::Out(&encode_header(EEPROM, true, false)),
                Buf::In(1),
                Buf::In(1),
            ])
            .unwrap();
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
    let used = s.driver.used().unwrap();
    assert_eq!(used.len(), expect.len(), "every request completed once");
    for (u, e) in used.iter().zip(expect) {
        assert_eq!(*u, (u32::from(e.head), e.used_len), "used element");
        assert_eq!(
            s.driver.byte(e.status).unwrap(),
            VIRTIO_I2C_MSG_OK,
            "status"
        );
        if let Some((at, want)) = e.data {
            assert_eq!(s.driver.byte(at).unwrap(), want, "read data");
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
