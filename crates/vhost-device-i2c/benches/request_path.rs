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
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::print_stdout
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vhost_user_test_frontend::bench::{
    Percentiles, allowed_cpus, eventfd_floor, percentiles, pin_current_thread,
};
use vhost_user_test_frontend::{
    FrontendOptions, RawDesc, TestFrontend, TestQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_i2c_core::VIRTIO_I2C_MSG_OK;
use virtio_i2c_core::request::encode_header;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempdir::TempDir;

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

/// The daemon under test; killed when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    /// Starts the daemon wholly on `cpu`, then puts this thread back on `home`.
    fn start(cpu: usize, home: usize) -> Daemon {
        pin_current_thread(cpu).unwrap();
        let dir = TempDir::new_with_prefix("/tmp/vhost-device-i2c-bench-").unwrap();
        let base = dir.as_path().join("i2c.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vhost-device-i2c"))
            .arg("-s")
            .arg(&base)
            .args(["--simulate", "24c02@0x50"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        pin_current_thread(home).unwrap();
        let mut socket = base.into_os_string();
        socket.push("0");
        Daemon {
            child,
            socket: socket.into(),
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Results of one placement.
struct Results {
    quick: Percentiles,
    group: Percentiles,
    batch: Percentiles,
    floor: Percentiles,
    queue_size: u16,
    event_idx: bool,
}

/// Runs every measurement with the daemon and the floor's device thread on `cpu` while this
/// thread stays on `home`.
fn measure(cpu: usize, home: usize) -> Results {
    let daemon = Daemon::start(cpu, home);
    let mut fe = TestFrontend::connect(&daemon.socket, FrontendOptions::default())
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
    let mut floor = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut quick_samples = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut group = Vec::with_capacity(BLOCKS * GROUP_PER_BLOCK);
    let mut batches = Vec::with_capacity(BLOCKS * BATCH_PER_BLOCK);
    for _ in 0..BLOCKS {
        floor.extend(eventfd_floor(WARMUP / 10, PER_BLOCK, Some(cpu)).expect("eventfd floor"));
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
    }
    Results {
        quick: percentiles(&mut quick_samples).unwrap(),
        group: percentiles(&mut group).unwrap(),
        batch: percentiles(&mut batches).unwrap(),
        floor: percentiles(&mut floor).unwrap(),
        queue_size: q.size(),
        event_idx: q.event_idx(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter, so arguments are ignored.
    let cpus = allowed_cpus().unwrap();
    let home = cpus[0];
    pin_current_thread(home).unwrap();
    let started = Instant::now();
    let mut runs = vec![(format!("same CPU ({home})"), measure(home, home))];
    if let Some(&other) = cpus.get(1) {
        runs.push((format!("other CPU ({other})"), measure(other, home)));
    }
    let elapsed = started.elapsed();

    let r0 = &runs[0].1;
    println!();
    println!(
        "vhost-device-i2c request path: bench-profile daemon, --simulate 24c02@0x50, split ring \
         of {} entries, EVENT_IDX {}, driver thread pinned to CPU {home}, daemon (and the \
         floor's device thread) on the CPU named per column; {} CPUs allowed; {:.1} s total",
        r0.queue_size,
        if r0.event_idx { "on" } else { "off" },
        cpus.len(),
        elapsed.as_secs_f64()
    );
    println!();
    let mut header = String::from("| measurement | samples |");
    let mut rule = String::from("|---|---:|");
    for (name, _) in &runs {
        header += &format!(" {name}: median | p99 | median / floor |");
        rule += "---:|---:|---:|";
    }
    println!("{header}");
    println!("{rule}");
    type Pick = fn(&Results) -> &Percentiles;
    let rows: [(&str, Pick); 3] = [
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
    for (label, pick) in rows {
        let mut line = format!("| {label} | {} |", pick(r0).count);
        for (_, r) in &runs {
            let p = pick(r);
            line += &format!(
                " {:.2} µs | {:.2} µs | {:.2}x |",
                us(p.median),
                us(p.p99),
                us(p.median) / us(r.floor.median)
            );
        }
        println!("{line}");
    }
    let rate = |d: Duration| BATCH as f64 / d.as_secs_f64();
    let mut line = format!(
        "| (c) throughput, {BATCH} per kick (median batch; p99 column: p99 batch) | {} |",
        r0.batch.count
    );
    for (_, r) in &runs {
        line += &format!(
            " {:.0} req/s | {:.0} req/s | |",
            rate(r.batch.median),
            rate(r.batch.p99)
        );
    }
    println!("{line}");
    let mut line = format!(
        "| (d) eventfd floor: kick + call between two threads, no virtqueue | {} |",
        r0.floor.count
    );
    for (_, r) in &runs {
        line += &format!(
            " {:.2} µs | {:.2} µs | 1.00x |",
            us(r.floor.median),
            us(r.floor.p99)
        );
    }
    println!("{line}");
    println!();
}
