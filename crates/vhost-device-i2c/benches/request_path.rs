//! Request-path benchmark of the real `vhost-device-i2c` binary (bench profile) serving a
//! simulated 24c02 at 0x50, driven through `vhost-user-test-frontend`:
//!
//! (a) one zero-length (SMBus quick) request: post + kick + wait for the used element;
//! (b) a 1-byte EEPROM read group: write of the offset with FAIL_NEXT, then a 1-byte read;
//! (c) throughput: 32 quick requests per kick;
//! (d) the eventfd floor: the same kick/call round trip between two threads, no virtqueue.
//!
//! Run with `cargo bench -p vhost-device-i2c --bench request_path`. The driver (this
//! program's main thread) is pinned to the first allowed CPU; everything is measured twice,
//! with the daemon and the floor's device thread on that same CPU, then on a second CPU (a
//! wake-up across CPUs costs far more than one on the same CPU, so an unpinned run mixes two
//! distributions). The four measurements run in alternating blocks so that machine noise
//! hits each alike; everything is reported as medians (and p99) of this one run.
// A benchmark program: it panics on setup failures, indexes its own buffers and prints.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};
use vhost_user_test_frontend::binary::DaemonBinary;

use vhost_user_test_frontend::bench::{
    BenchDaemon, Measured, Percentiles, alternate_with_floor, measure_placements, percentiles,
};
use vhost_user_test_frontend::{
    FrontendOptions, RawDesc, TestFrontend, TestQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_i2c_core::VIRTIO_I2C_MSG_OK;
use virtio_i2c_core::request::encode_header;
use vm_memory::{Bytes, GuestAddress};

const EEPROM: u8 = 0x50;
/// EEPROM offset the read group reads.
const OFFSET: u8 = 0x10;
const VALUE: u8 = 0x5a;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Blocks of alternating measurements; per block: floor and (a) samples, (b) samples,
/// (c) batches.
const BLOCKS: usize = 20;
const PER_BLOCK: usize = 2_000;
const GROUP_PER_BLOCK: usize = 1_000;
const BATCH_PER_BLOCK: usize = 100;
const WARMUP: usize = 1_000;
const BATCH: usize = 32;

/// One request laid out once in guest memory and re-posted as a raw chain every round.
struct Request {
    descs: Vec<RawDesc>,
    /// Guest address of the status byte.
    status: u64,
}

fn buffer(q: &mut TestQueue, bytes: &[u8]) -> u64 {
    let at = q.alloc_buffer(bytes.len() as u32).unwrap();
    q.memory().write_slice(bytes, GuestAddress(at)).unwrap();
    at
}

/// Header (and payload), then `read_len` writable bytes (if any), then the status byte.
fn request(
    q: &mut TestQueue,
    read: bool,
    fail_next: bool,
    payload: &[u8],
    read_len: u32,
    status: u64,
) -> Request {
    let hdr = buffer(q, &encode_header(EEPROM, read, fail_next));
    let mut descs = vec![RawDesc {
        addr: hdr,
        len: 8,
        flags: 0,
        next: 0,
    }];
    if !payload.is_empty() {
        let data = buffer(q, payload);
        descs.push(RawDesc {
            addr: data,
            len: payload.len() as u32,
            flags: 0,
            next: 0,
        });
    }
    if read_len > 0 {
        let data = q.alloc_buffer(read_len).unwrap();
        descs.push(RawDesc {
            addr: data,
            len: read_len,
            flags: VIRTQ_DESC_F_WRITE,
            next: 0,
        });
    }
    descs.push(RawDesc {
        addr: status,
        len: 1,
        flags: VIRTQ_DESC_F_WRITE,
        next: 0,
    });
    let last = descs.len() - 1;
    for (i, d) in descs.iter_mut().enumerate() {
        if i < last {
            d.flags |= VIRTQ_DESC_F_NEXT;
            d.next = (i + 1) as u16;
        }
    }
    Request { descs, status }
}

fn status_buffer(q: &mut TestQueue) -> u64 {
    q.alloc_buffer(1).unwrap()
}

/// Posts `requests`, kicks once, waits for all of them; returns the time taken. Status bytes
/// are poisoned before and checked after the timed part.
fn round(q: &mut TestQueue, requests: &[&Request]) -> Duration {
    for r in requests {
        q.memory()
            .write_obj(0xffu8, GuestAddress(r.status))
            .unwrap();
    }
    let start = Instant::now();
    for r in requests {
        q.post_raw(&r.descs).unwrap();
    }
    q.kick().unwrap();
    for _ in requests {
        q.wait_used(TIMEOUT).unwrap();
    }
    let elapsed = start.elapsed();
    for r in requests {
        let s: u8 = q.memory().read_obj(GuestAddress(r.status)).unwrap();
        assert_eq!(s, VIRTIO_I2C_MSG_OK, "request failed");
    }
    elapsed
}

/// Results of one placement, besides the floor.
struct Results {
    quick: Percentiles,
    group: Percentiles,
    batch: Percentiles,
}

/// Runs every measurement with the daemon and the floor's device thread on `cpu` while this
/// thread stays on `home`.
fn measure(cpu: usize, home: usize) -> Measured<Results> {
    let binary = DaemonBinary::from_env(
        "VHOST_DEVICE_I2C_BIN",
        env!("CARGO_BIN_EXE_vhost-device-i2c"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let daemon = BenchDaemon::start(
        binary.launch().args(&["--simulate", "24c02@0x50"]),
        cpu,
        home,
    )
    .unwrap();
    let mut fe = TestFrontend::connect(daemon.socket(), FrontendOptions::default())
        .expect("connect to vhost-device-i2c");
    let q = fe.queue(0);

    // (a) quick.
    let st = status_buffer(q);
    let quick = request(q, false, false, &[], 0, st);
    // Put a known byte at OFFSET, then (b): offset write with FAIL_NEXT + 1-byte read.
    let st = status_buffer(q);
    let init = request(q, false, false, &[OFFSET, VALUE], 0, st);
    round(q, &[&init]);
    let st = status_buffer(q);
    let set_offset = request(q, false, true, &[OFFSET], 0, st);
    let st = status_buffer(q);
    let read1 = request(q, true, false, &[], 1, st);
    let read_data = read1.descs[1].addr;
    // (c) 32 quick requests, each with its own status byte.
    let batch: Vec<Request> = (0..BATCH)
        .map(|_| {
            let st = status_buffer(q);
            request(q, false, false, &[], 0, st)
        })
        .collect();
    let batch_refs: Vec<&Request> = batch.iter().collect();

    // Warm-up of every shape.
    for _ in 0..WARMUP {
        round(q, &[&quick]);
        round(q, &[&set_offset, &read1]);
    }
    for _ in 0..WARMUP / 10 {
        round(q, &batch_refs);
    }
    // All four measurements in alternating blocks, so that noise hits each alike.
    let mut quick_samples = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut group = Vec::with_capacity(BLOCKS * GROUP_PER_BLOCK);
    let mut batches = Vec::with_capacity(BLOCKS * BATCH_PER_BLOCK);
    let mut floor = alternate_with_floor(BLOCKS, WARMUP / 10, PER_BLOCK, Some(cpu), || {
        for _ in 0..PER_BLOCK {
            quick_samples.push(round(q, &[&quick]));
        }
        for _ in 0..GROUP_PER_BLOCK {
            q.memory().write_obj(0u8, GuestAddress(read_data)).unwrap();
            group.push(round(q, &[&set_offset, &read1]));
            let got: u8 = q.memory().read_obj(GuestAddress(read_data)).unwrap();
            assert_eq!(got, VALUE, "EEPROM read returned the wrong byte");
        }
        for _ in 0..BATCH_PER_BLOCK {
            batches.push(round(q, &batch_refs));
        }
    })
    .expect("eventfd floor");
    let results = Results {
        quick: percentiles(&mut quick_samples).unwrap(),
        group: percentiles(&mut group).unwrap(),
        batch: percentiles(&mut batches).unwrap(),
    };
    Measured::new(q, results, &mut floor).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter, so arguments are ignored.
    let p = measure_placements(measure).unwrap();
    type Pick = fn(&Results) -> &Percentiles;
    let latencies: [(&str, Pick); 3] = [
        ("(a) quick request round trip (post + kick + wait)", |r| {
            &r.quick
        }),
        (
            "(b) 1-byte EEPROM read group (offset write FAIL_NEXT + read 1), one kick",
            |r| &r.group,
        ),
        ("(c) 32 quick requests, one kick: time per batch", |r| {
            &r.batch
        }),
    ];
    let mut rows: Vec<String> = latencies
        .into_iter()
        .map(|(label, pick)| p.latency_row(label, pick))
        .collect();
    let rate = |d: Duration| BATCH as f64 / d.as_secs_f64();
    rows.push(p.row(
        &format!("(c) throughput, {BATCH} per kick (median batch; p99 column: p99 batch)"),
        p.runs[0].1.results.batch.count,
        |m| {
            format!(
                " {:.0} req/s | {:.0} req/s | |",
                rate(m.results.batch.median),
                rate(m.results.batch.p99)
            )
        },
    ));
    println!(
        "{}",
        p.report(
            "vhost-device-i2c request path: bench-profile daemon, --simulate 24c02@0x50, split \
             ring",
            &rows,
            "(d) eventfd floor: kick + call between two threads, no virtqueue"
        )
    );
}
