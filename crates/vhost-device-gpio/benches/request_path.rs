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
    Desc, FrontendOptions, RawDesc, TestFrontend, TestQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{GET_VALUE, SET_DIRECTION, SET_VALUE};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempdir::TempDir;

const TIMEOUT: Duration = Duration::from_secs(5);
const BLOCKS: usize = 20;
const PER_BLOCK: usize = 2_000;
const WARMUP: usize = 1_000;
const LINE: u16 = 0;
const DIR_OUT: u32 = 1;

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
        let dir = TempDir::new_with_prefix("/tmp/vhost-device-gpio-bench-").unwrap();
        let base = dir.as_path().join("gpio.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vhost-device-gpio"))
            .arg("-s")
            .arg(&base)
            .args(["-l", "s8"])
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Results {
    get_value: Percentiles,
    floor: Percentiles,
    queue_size: u16,
    event_idx: bool,
}

fn measure(cpu: usize, home: usize) -> Results {
    let daemon = Daemon::start(cpu, home);
    let mut fe = TestFrontend::connect(
        &daemon.socket,
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
    let mut floor = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut samples = Vec::with_capacity(BLOCKS * PER_BLOCK);
    for _ in 0..BLOCKS {
        floor.extend(eventfd_floor(WARMUP / 10, PER_BLOCK, Some(cpu)).expect("eventfd floor"));
        for _ in 0..PER_BLOCK {
            samples.push(round(q, &descs, resp));
        }
    }
    Results {
        get_value: percentiles(&mut samples).unwrap(),
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
        "vhost-device-gpio request path: bench-profile daemon, -l s8, split rings of {} \
         entries, EVENT_IDX {}, driver thread pinned to CPU {home}, daemon (and the floor's \
         device thread) on the CPU named per column; {} CPUs allowed; {:.1} s total",
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
    let mut line = format!(
        "| GET_VALUE round trip (post + kick + wait) | {} |",
        r0.get_value.count
    );
    for (_, r) in &runs {
        line += &format!(
            " {:.2} µs | {:.2} µs | {:.2}x |",
            us(r.get_value.median),
            us(r.get_value.p99),
            us(r.get_value.median) / us(r.floor.median)
        );
    }
    println!("{line}");
    let mut line = format!(
        "| eventfd floor: kick + call between two threads, no virtqueue | {} |",
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
