//! Helpers for the daemons' request-path benchmarks: percentiles of timing samples and the
//! eventfd floor, the cost of one notification round trip with no virtqueue at all.
//!
//! The floor mirrors what a vhost-user request costs in notifications alone: the driver
//! writes the kick eventfd and sleeps in `poll` on the call eventfd; the device thread wakes
//! in `epoll_wait` on the kick eventfd (as `vhost-user-backend`'s vring worker does), reads
//! it, and writes the call eventfd; the driver reads the call eventfd. A daemon's round trip
//! divided by this floor is what its request handling costs on top of the two wake-ups.
//!
//! Besides, the frame every request-path benchmark shares: [`BenchDaemon`] starts the
//! daemon under test on a chosen CPU, [`alternate_with_floor`] interleaves floor blocks with
//! the benchmark's own, [`measure_placements`] measures with the daemon on the driver's CPU
//! and then on a second one, and [`Placements`] renders the results as a Markdown table.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::TestQueue;
use crate::daemon::{Daemon, Launch};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// Median, 99th percentile and extremes of a set of timing samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Smallest sample.
    pub min: Duration,
    /// 50th percentile (nearest rank).
    pub median: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// The sample at nearest rank `pct` percent of the sorted `sorted`.
fn rank(sorted: &[Duration], pct: usize) -> Option<Duration> {
    let n = sorted.len();
    // Nearest rank: ceil(pct * n / 100), 1-based.
    let r = pct.checked_mul(n)?.div_ceil(100).max(1);
    sorted.get(r.checked_sub(1)?).copied()
}

/// Sorts `samples` and summarizes them; `None` if there are none.
pub fn percentiles(samples: &mut [Duration]) -> Option<Percentiles> {
    samples.sort_unstable();
    Some(Percentiles {
        count: samples.len(),
        min: *samples.first()?,
        median: rank(samples, 50)?,
        p99: rank(samples, 99)?,
        max: *samples.last()?,
    })
}

/// How long one round trip of the floor may take before the benchmark fails (the peer is
/// a thread of this process that always answers; a bug must not hang the benchmark).
const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(10);

/// Waits until `fd` is readable, for at most [`ROUND_TRIP_LIMIT`].
fn poll_readable(fd: &EventFd) -> io::Result<()> {
    let start = Instant::now();
    loop {
        let left = ROUND_TRIP_LIMIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the device thread did not signal within {ROUND_TRIP_LIMIT:?}"),
            ));
        }
        if crate::poll::readable(fd, Some(left))? {
            return Ok(());
        }
    }
}

/// The CPUs this thread may run on, in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: `cpu < CPU_SETSIZE`, within the set.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread to `cpu`. Threads and processes it creates afterwards
/// inherit the restriction (a spawned daemon runs wholly on `cpu`).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    if cpu >= max {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` was checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The device side of the floor: `rounds` times, wait for a kick, consume it, signal.
fn floor_device(kick: &EventFd, call: &EventFd, rounds: usize) -> io::Result<()> {
    let epoll = Epoll::new()?;
    epoll.ctl(
        ControlOperation::Add,
        kick.as_raw_fd(),
        EpollEvent::new(EventSet::IN, 0),
    )?;
    let mut events = [EpollEvent::default(); 4];
    let mut served = 0usize;
    while served < rounds {
        match epoll.wait(-1, &mut events) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match kick.read() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        call.write(1)?;
        served = served.saturating_add(1);
    }
    Ok(())
}

/// Measures `rounds` eventfd round trips between this thread (the driver) and a second
/// thread (the device, pinned to `device_cpu` if given), after `warmup` unmeasured ones.
/// Returns one sample per round trip: kick written to call consumed.
pub fn eventfd_floor(
    warmup: usize,
    rounds: usize,
    device_cpu: Option<usize>,
) -> io::Result<Vec<Duration>> {
    let kick = EventFd::new(EFD_NONBLOCK)?;
    let call = EventFd::new(EFD_NONBLOCK)?;
    let device_kick = kick.try_clone()?;
    let device_call = call.try_clone()?;
    let total = warmup.saturating_add(rounds);
    let device = thread::Builder::new()
        .name("eventfd-floor".into())
        .spawn(move || {
            if let Some(cpu) = device_cpu {
                pin_current_thread(cpu)?;
            }
            floor_device(&device_kick, &device_call, total)
        })?;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..total {
        let start = Instant::now();
        kick.write(1)?;
        poll_readable(&call)?;
        call.read()?;
        let elapsed = start.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    // On an error above the device thread is left waiting; the benchmark exits anyway.
    device
        .join()
        .map_err(|_| io::Error::other("eventfd floor device thread panicked"))??;
    Ok(samples)
}

/// Runs `blocks` blocks, each `per_block` eventfd round trips of the floor (after `warmup`
/// unmeasured ones, the device thread on `device_cpu`) followed by one call of `block`, so
/// that machine noise hits the floor and the benchmark's own measurements alike. Returns the
/// floor samples.
pub fn alternate_with_floor(
    blocks: usize,
    warmup: usize,
    per_block: usize,
    device_cpu: Option<usize>,
    mut block: impl FnMut(),
) -> io::Result<Vec<Duration>> {
    let mut floor = Vec::with_capacity(blocks.saturating_mul(per_block));
    for _ in 0..blocks {
        floor.extend(eventfd_floor(warmup, per_block, device_cpu)?);
        block();
    }
    Ok(floor)
}

/// A daemon under benchmark, started wholly on one CPU through the shared launcher
/// ([`crate::daemon::Launch`], so the chosen binary and runner); killed when dropped.
#[derive(Debug)]
pub struct BenchDaemon {
    daemon: Daemon,
}

impl BenchDaemon {
    /// Starts `launch` (with `RUST_LOG=error`) with this thread pinned to `cpu`, so that the
    /// daemon and all its threads run on `cpu`, then pins this thread back on `home`. The
    /// daemon's first listener is [`socket`](Self::socket).
    pub fn start(launch: Launch, cpu: usize, home: usize) -> io::Result<Self> {
        pin_current_thread(cpu)?;
        let started = launch.rust_log(Some("error")).try_start();
        pin_current_thread(home)?;
        let daemon = started.map_err(|e| io::Error::other(crate::daemon::chain(&e)))?;
        Ok(Self { daemon })
    }

    /// The socket the daemon listens on.
    pub fn socket(&self) -> &Path {
        self.daemon.socket(0)
    }
}

/// `d` in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// What one placement of the daemon measured: the benchmark's own `results`, the eventfd
/// floor, and the queue the frontend negotiated.
#[derive(Clone, Debug)]
pub struct Measured<R> {
    /// The benchmark's own results.
    pub results: R,
    /// The eventfd floor, measured alongside.
    pub floor: Percentiles,
    /// Entries of the measured queue.
    pub queue_size: u16,
    /// Whether `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    pub event_idx: bool,
}

impl<R> Measured<R> {
    /// `results`, the summary of the `floor` samples and the parameters of the measured
    /// queue `q`; `None` if there are no floor samples.
    pub fn new(q: &TestQueue, results: R, floor: &mut [Duration]) -> Option<Self> {
        Some(Self {
            results,
            floor: percentiles(floor)?,
            queue_size: q.size(),
            event_idx: q.event_idx(),
        })
    }
}

/// Measurements with the daemon on the driver's CPU and, if there is one, on a second CPU.
#[derive(Clone, Debug)]
pub struct Placements<R> {
    /// The CPUs this program may run on.
    pub cpus: Vec<usize>,
    /// The driver thread's CPU, the first allowed one.
    pub home: usize,
    /// One entry per placement: a column name (`same CPU (n)`, `other CPU (m)`) and what was
    /// measured.
    pub runs: Vec<(String, Measured<R>)>,
    /// Time all the placements took.
    pub elapsed: Duration,
}

/// Pins this thread to the first allowed CPU and calls `measure(cpu, home)` with the daemon
/// to be placed on that same CPU, then on the second allowed CPU if there is one.
pub fn measure_placements<R>(
    mut measure: impl FnMut(usize, usize) -> Measured<R>,
) -> io::Result<Placements<R>> {
    let cpus = allowed_cpus()?;
    let home = *cpus
        .first()
        .ok_or_else(|| io::Error::other("no CPU allowed"))?;
    pin_current_thread(home)?;
    let started = Instant::now();
    let mut runs = vec![(format!("same CPU ({home})"), measure(home, home))];
    if let Some(&other) = cpus.get(1) {
        runs.push((format!("other CPU ({other})"), measure(other, home)));
    }
    Ok(Placements {
        cpus,
        home,
        runs,
        elapsed: started.elapsed(),
    })
}

impl<R> Placements<R> {
    fn first(&self) -> Option<&Measured<R>> {
        self.runs.first().map(|(_, m)| m)
    }

    /// The paragraph above the table: `what` (the daemon, its configuration and "split
    /// ring(s)"), then the queue size, EVENT_IDX, the placements and the total time.
    pub fn caption(&self, what: &str) -> String {
        let (queue_size, event_idx) = self
            .first()
            .map_or((0, false), |m| (m.queue_size, m.event_idx));
        format!(
            "{what} of {queue_size} entries, EVENT_IDX {}, driver thread pinned to CPU {}, \
             daemon (and the floor's device thread) on the CPU named per column; {} CPUs \
             allowed; {:.1} s total",
            if event_idx { "on" } else { "off" },
            self.home,
            self.cpus.len(),
            self.elapsed.as_secs_f64()
        )
    }

    /// The whole report for `println!` (which adds the closing blank line): a blank line, the
    /// [caption](Self::caption) of `what`, a blank line, the [head](Self::head), `rows` and
    /// the [floor's row](Self::floor_row) labelled `floor_label`.
    pub fn report(&self, what: &str, rows: &[String], floor_label: &str) -> String {
        let mut out = format!("\n{}\n\n{}\n", self.caption(what), self.head());
        for row in rows {
            out.push_str(row);
            out.push('\n');
        }
        out.push_str(&self.floor_row(floor_label));
        out.push('\n');
        out
    }

    /// The table's header and rule lines: a median, p99 and median / floor column per
    /// placement.
    pub fn head(&self) -> String {
        let mut header = String::from("| measurement | samples |");
        let mut rule = String::from("|---|---:|");
        for (name, _) in &self.runs {
            header.push_str(&format!(" {name}: median | p99 | median / floor |"));
            rule.push_str("---:|---:|---:|");
        }
        format!("{header}\n{rule}")
    }

    /// A row of `label`, `count` and, per placement, the cells `cells` renders (each ending
    /// in `|`).
    pub fn row(&self, label: &str, count: usize, cells: impl Fn(&Measured<R>) -> String) -> String {
        let mut line = format!("| {label} | {count} |");
        for (_, m) in &self.runs {
            line.push_str(&cells(m));
        }
        line
    }

    /// A latency row: the samples `pick` selects, their median and p99 and the median over
    /// the floor's.
    pub fn latency_row(&self, label: &str, pick: impl Fn(&R) -> &Percentiles) -> String {
        let count = self.first().map_or(0, |m| pick(&m.results).count);
        self.row(label, count, |m| {
            let p = pick(&m.results);
            format!(
                " {:.2} µs | {:.2} µs | {:.2}x |",
                micros(p.median),
                micros(p.p99),
                micros(p.median) / micros(m.floor.median)
            )
        })
    }

    /// The floor's row.
    pub fn floor_row(&self, label: &str) -> String {
        let count = self.first().map_or(0, |m| m.floor.count);
        self.row(label, count, |m| {
            format!(
                " {:.2} µs | {:.2} µs | 1.00x |",
                micros(m.floor.median),
                micros(m.floor.p99)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<Duration> = (1..=100u64).rev().map(Duration::from_micros).collect();
        let p = percentiles(&mut s).unwrap();
        assert_eq!(p.count, 100);
        assert_eq!(p.min, Duration::from_micros(1));
        assert_eq!(p.median, Duration::from_micros(50));
        assert_eq!(p.p99, Duration::from_micros(99));
        assert_eq!(p.max, Duration::from_micros(100));
        let mut one = [Duration::from_micros(7)];
        let p = percentiles(&mut one).unwrap();
        assert_eq!((p.median, p.p99), (one[0], one[0]));
        assert!(percentiles(&mut []).is_none());
    }

    #[test]
    fn floor_returns_one_sample_per_round() {
        let s = eventfd_floor(2, 5, None).unwrap();
        assert_eq!(s.len(), 5);
        let cpu = allowed_cpus().unwrap()[0];
        let s = eventfd_floor(2, 5, Some(cpu)).unwrap();
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn floor_alternates_with_the_blocks() {
        let mut calls = 0;
        let s = alternate_with_floor(3, 1, 4, None, || calls += 1).unwrap();
        assert_eq!((s.len(), calls), (12, 3));
    }

    #[test]
    fn table_has_a_column_group_per_placement() {
        let p = |us| Percentiles {
            count: 2,
            min: Duration::from_micros(us),
            median: Duration::from_micros(us),
            p99: Duration::from_micros(us),
            max: Duration::from_micros(us),
        };
        let m = Measured {
            results: p(4),
            floor: p(2),
            queue_size: 64,
            event_idx: true,
        };
        let t = Placements {
            cpus: vec![0, 1],
            home: 0,
            runs: vec![
                ("same CPU (0)".into(), m.clone()),
                ("other CPU (1)".into(), m),
            ],
            elapsed: Duration::from_millis(1500),
        };
        assert_eq!(
            t.caption("x, split ring"),
            "x, split ring of 64 entries, EVENT_IDX on, driver thread pinned to CPU 0, daemon \
             (and the floor's device thread) on the CPU named per column; 2 CPUs allowed; 1.5 s \
             total"
        );
        assert_eq!(
            t.head(),
            "| measurement | samples | same CPU (0): median | p99 | median / floor | other CPU \
             (1): median | p99 | median / floor |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        assert_eq!(
            t.latency_row("a", |r| r),
            "| a | 2 | 4.00 µs | 4.00 µs | 2.00x | 4.00 µs | 4.00 µs | 2.00x |"
        );
        assert_eq!(
            t.floor_row("f"),
            "| f | 2 | 2.00 µs | 2.00 µs | 1.00x | 2.00 µs | 2.00 µs | 1.00x |"
        );
        let report = t.report("x, split ring", &["| r |".into()], "f");
        let lines: Vec<&str> = report.lines().collect();
        // `println!` of the report adds the closing blank line.
        assert!(report.ends_with("|\n"));
        assert_eq!(lines.len(), 7);
        assert_eq!((lines[0], lines[2], lines[5]), ("", "", "| r |"));
        assert!(lines[1].starts_with("x, split ring of 64 entries"));
        assert!(lines[3].starts_with("| measurement |"));
        assert!(lines[6].starts_with("| f | 2 |"));
    }
}
