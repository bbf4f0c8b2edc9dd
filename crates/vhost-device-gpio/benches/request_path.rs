//! Request-path benchmark of the real `vhost-device-gpio` binary (bench profile) serving a
//! simulated 8-line chip (`-l s8`), driven through `vhost-user-test-frontend`: the round trip
//! of one GET_VALUE request (post + kick + wait), against the eventfd floor (the same
//! kick/call round trip between two threads, no virtqueue).
//!
//! Run with `cargo bench -p vhost-device-gpio --bench request_path`. As in the I2C benchmark,
//! the driver thread is pinned to the first allowed CPU and everything is measured with the
//! daemon on that CPU and then on a second one, GET_VALUE and the floor in alternating blocks;
//! medians and p99 of this one run.
// A benchmark program: it panics on setup failures, indexes its own buffers and prints.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};
use vhost_user_test_frontend::binary::DaemonBinary;

use vhost_user_test_frontend::bench::{
    BenchDaemon, Measured, Percentiles, alternate_with_floor, measure_placements, percentiles,
};
use vhost_user_test_frontend::{
    Desc, FrontendOptions, RawDesc, TestFrontend, TestQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{GET_VALUE, SET_DIRECTION, SET_VALUE};
use vm_memory::{Bytes, GuestAddress};

const TIMEOUT: Duration = Duration::from_secs(5);
const BLOCKS: usize = 20;
const PER_BLOCK: usize = 2_000;
const WARMUP: usize = 1_000;
const LINE: u16 = 0;
const DIR_OUT: u32 = 1;

/// Sets up line 0 as an output driving 1 (allocating test-frontend calls; not measured).
fn setup(q: &mut TestQueue) {
    for (t, v) in [(SET_DIRECTION, DIR_OUT), (SET_VALUE, 1)] {
        let c = q
            .transact(
                &[Desc::Out(encode_request(t, LINE, v).to_vec()), Desc::In(2)],
                false,
                TIMEOUT,
            )
            .unwrap();
        assert_eq!(c.written[0], [0, 0], "setup request failed");
    }
}

/// One GET_VALUE chain laid out once and re-posted raw; returns (descriptors, response).
fn get_value(q: &mut TestQueue) -> (Vec<RawDesc>, u64) {
    let req = q.alloc_buffer(8).unwrap();
    q.memory()
        .write_slice(&encode_request(GET_VALUE, LINE, 0), GuestAddress(req))
        .unwrap();
    let resp = q.alloc_buffer(2).unwrap();
    let descs = vec![
        RawDesc {
            addr: req,
            len: 8,
            flags: VIRTQ_DESC_F_NEXT,
            next: 1,
        },
        RawDesc {
            addr: resp,
            len: 2,
            flags: VIRTQ_DESC_F_WRITE,
            next: 0,
        },
    ];
    (descs, resp)
}

/// Posts, kicks, waits; the response is poisoned before and checked after the timed part.
fn round(q: &mut TestQueue, descs: &[RawDesc], resp: u64) -> Duration {
    q.memory()
        .write_slice(&[0xff, 0xff], GuestAddress(resp))
        .unwrap();
    let start = Instant::now();
    q.post_raw(descs).unwrap();
    q.kick().unwrap();
    let c = q.wait_used(TIMEOUT).unwrap();
    let elapsed = start.elapsed();
    let mut out = [0u8; 2];
    q.memory().read_slice(&mut out, GuestAddress(resp)).unwrap();
    assert_eq!((c.used_len, out), (2, [0, 1]), "GET_VALUE failed");
    elapsed
}

struct Results {
    get_value: Percentiles,
}

fn measure(cpu: usize, home: usize) -> Measured<Results> {
    let binary = DaemonBinary::from_env(
        "VHOST_DEVICE_GPIO_BIN",
        env!("CARGO_BIN_EXE_vhost-device-gpio"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let daemon = BenchDaemon::start(binary.launch().args(&["-l", "s8"]), cpu, home).unwrap();
    let mut fe = TestFrontend::connect(
        daemon.socket(),
        FrontendOptions {
            num_queues: 2,
            queue_size: 64,
            ..Default::default()
        },
    )
    .expect("connect to vhost-device-gpio");
    let q = fe.queue(0);
    setup(q);
    let (descs, resp) = get_value(q);
    for _ in 0..WARMUP {
        round(q, &descs, resp);
    }
    let mut samples = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut floor = alternate_with_floor(BLOCKS, WARMUP / 10, PER_BLOCK, Some(cpu), || {
        for _ in 0..PER_BLOCK {
            samples.push(round(q, &descs, resp));
        }
    })
    .expect("eventfd floor");
    let results = Results {
        get_value: percentiles(&mut samples).unwrap(),
    };
    Measured::new(q, results, &mut floor).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter, so arguments are ignored.
    let p = measure_placements(measure).unwrap();
    let rows = [
        p.latency_row("GET_VALUE round trip (post + kick + wait)", |r| {
            &r.get_value
        }),
    ];
    println!(
        "{}",
        p.report(
            "vhost-device-gpio request path: bench-profile daemon, -l s8, split rings",
            &rows,
            "eventfd floor: kick + call between two threads, no virtqueue"
        )
    );
}
