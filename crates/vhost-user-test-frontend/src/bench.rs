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
//!
//! And the pieces of the `bench` binary, which measures any daemon from its command line:
//! [`CommandDaemon`], the floor between two processes ([`eventfd_floor_process`]), a
//! process's CPU time from `/proc` ([`ProcessCpu`]) and chains laid out once and re-posted
//! raw, every answer checked ([`RawChain`], [`run_batch`]).

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
    let samples = ping(&kick, &call, total, warmup)?;
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

/// The hidden first argument with which a benchmark program runs as the device side of
/// [`eventfd_floor_process`] (see [`floor_device_process`]).
pub const FLOOR_DEVICE_ARG: &str = "__eventfd-floor-device";

/// Like [`eventfd_floor`], but the device side is a second *process*, as a daemon is: the
/// program `exe` run as `exe FLOOR_DEVICE_ARG KICK_FD CALL_FD ROUNDS CPU`, which must call
/// [`floor_device_process`] with those arguments. It inherits the two eventfds (created
/// without `EFD_CLOEXEC`) and pins itself on `device_cpu`.
pub fn eventfd_floor_process(
    exe: &Path,
    warmup: usize,
    rounds: usize,
    device_cpu: usize,
) -> io::Result<Vec<Duration>> {
    let kick = EventFd::new(EFD_NONBLOCK)?;
    let call = EventFd::new(EFD_NONBLOCK)?;
    let total = warmup.saturating_add(rounds);
    let mut child = std::process::Command::new(exe)
        .arg(FLOOR_DEVICE_ARG)
        .arg(kick.as_raw_fd().to_string())
        .arg(call.as_raw_fd().to_string())
        .arg(total.to_string())
        .arg(device_cpu.to_string())
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let measured = ping(&kick, &call, total, warmup);
    if measured.is_err() {
        // The helper may be waiting for a kick that never comes.
        let _ = child.kill();
    }
    let status = child.wait()?;
    let samples = measured?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the eventfd floor's device process failed: {status}"
        )));
    }
    Ok(samples)
}

/// The driver side of a floor measurement: `total` kick/call round trips over `kick` and
/// `call`; the times of those after the first `warmup`.
fn ping(kick: &EventFd, call: &EventFd, total: usize, warmup: usize) -> io::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(total.saturating_sub(warmup));
    for i in 0..total {
        let start = Instant::now();
        kick.write(1)?;
        poll_readable(call)?;
        call.read()?;
        let elapsed = start.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

/// The device side of [`eventfd_floor_process`], given the arguments after
/// [`FLOOR_DEVICE_ARG`]: pins this process, then serves the round trips.
pub fn floor_device_process(args: &[String]) -> io::Result<()> {
    let number = |i: usize| -> io::Result<usize> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("{FLOOR_DEVICE_ARG}: bad arguments {args:?}")))
    };
    let (kick, call, rounds, cpu) = (number(0)?, number(1)?, number(2)?, number(3)?);
    let fd = |n: usize| {
        std::os::fd::RawFd::try_from(n).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (kick, call) = (fd(kick)?, fd(call)?);
    // Refuse anything but the two inherited eventfds before taking ownership of them.
    for f in [kick, call] {
        let link = std::fs::read_link(format!("/proc/self/fd/{f}"))?;
        if link.as_os_str() != "anon_inode:[eventfd]" || kick == call {
            return Err(io::Error::other(format!(
                "descriptor {f} is not an eventfd"
            )));
        }
    }
    // SAFETY: `kick` and `call` are distinct descriptors this process inherited, checked
    // above to be eventfds; nothing else in this process owns them.
    let (kick, call) = unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(kick),
            std::os::fd::FromRawFd::from_raw_fd(call),
        )
    };
    let (kick, call): (EventFd, EventFd) = (kick, call);
    pin_current_thread(cpu)?;
    floor_device(&kick, &call, rounds)
}

/// The CPU time a process (all its threads) has used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCpu {
    /// `utime + stime` of `/proc/PID/stat`, in clock ticks (`USER_HZ`, 100 per second).
    pub ticks: u64,
    /// The sum of the first field of `/proc/PID/task/*/schedstat`: nanoseconds on a CPU of
    /// the threads alive now (precise, where ticks are sampled).
    pub sched_ns: u64,
}

/// Clock ticks per second of `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

impl ProcessCpu {
    /// Reads the CPU time of `pid` from `/proc`.
    pub fn of(pid: u32) -> io::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let ticks = stat_cpu_ticks(&stat)
            .ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))?;
        let mut sched_ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            // A thread may end between the listing and the read: it no longer counts.
            let Ok(s) = std::fs::read_to_string(task?.path().join("schedstat")) else {
                continue;
            };
            let ns = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok());
            sched_ns = sched_ns.saturating_add(ns.unwrap_or(0));
        }
        Ok(Self { ticks, sched_ns })
    }

    /// CPU time used between `before` and `self`, from ticks and from schedstat.
    pub fn since(&self, before: &Self) -> (Duration, Duration) {
        let hz = clock_ticks_per_second();
        let ticks = self.ticks.saturating_sub(before.ticks);
        let from_ticks = Duration::from_secs_f64(ticks as f64 / hz as f64);
        let from_sched = Duration::from_nanos(self.sched_ns.saturating_sub(before.sched_ns));
        (from_ticks, from_sched)
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line; the command name in
/// parentheses may itself hold spaces and parentheses, so fields count after the last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state): utime is the 12th entry, stime the 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty
/// or if a value is NaN.
pub fn median_f64(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    if v.iter().any(|x| x.is_nan()) {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => v.get(mid).copied(),
        _ => Some((v.get(mid.checked_sub(1)?)? + v.get(mid)?) / 2.0),
    }
}

/// How long [`CommandDaemon::start`] waits for the socket.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon started from a command line (any daemon, ours or another project's), wholly
/// on one CPU; killed when dropped. Each `{socket}` in the words is replaced with a path in
/// a fresh directory; the daemon's socket is that path, or that path with `0` appended (as
/// daemons given `-c N` name theirs), whichever appears first.
#[derive(Debug)]
pub struct CommandDaemon {
    child: std::process::Child,
    socket: std::path::PathBuf,
    listening_after: Duration,
    log: std::path::PathBuf,
    _dir: vmm_sys_util::tempdir::TempDir,
}

/// The placeholder [`CommandDaemon::start`] replaces with the socket path.
pub const SOCKET_PLACEHOLDER: &str = "{socket}";

impl CommandDaemon {
    /// Runs `words` (program and arguments, `{socket}` replaced; `RUST_LOG=error` unless
    /// `RUST_LOG` is set) with this thread pinned to `cpu`, so the daemon and all its threads
    /// run there, pins this thread back on `home`, and waits until the socket exists (polled
    /// every 100 µs; binding and listening are one call in the daemons measured).
    pub fn start(words: &[String], cpu: usize, home: usize) -> io::Result<Self> {
        let dir = vmm_sys_util::tempdir::TempDir::new_with_prefix("/tmp/vhost-device-bench-")
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        let base = dir.as_path().join("dev.sock");
        let base_str = base
            .to_str()
            .ok_or_else(|| io::Error::other("temp dir is not UTF-8"))?;
        let mut words = words
            .iter()
            .map(|w| w.replace(SOCKET_PLACEHOLDER, base_str));
        let program = words
            .next()
            .ok_or_else(|| io::Error::other("empty daemon command line"))?;
        let log = dir.as_path().join("daemon.log");
        let mut cmd = std::process::Command::new(&program);
        cmd.args(words)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "error");
        }
        pin_current_thread(cpu)?;
        let started = Instant::now();
        let spawned = cmd.spawn();
        pin_current_thread(home)?;
        let mut child =
            spawned.map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
        let mut indexed = base.clone().into_os_string();
        indexed.push("0");
        let candidates = [base.clone(), std::path::PathBuf::from(indexed)];
        let found = loop {
            use std::os::unix::fs::FileTypeExt;
            let found = candidates
                .iter()
                .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()));
            if let Some(p) = found {
                break Ok(p.clone());
            }
            if let Some(status) = child.try_wait()? {
                break Err(format!("{program} exited ({status}) before listening"));
            }
            if started.elapsed() > LISTEN_TIMEOUT {
                break Err(format!(
                    "{program} did not listen within {LISTEN_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_micros(100));
        };
        let listening_after = started.elapsed();
        match found {
            Ok(socket) => Ok(Self {
                child,
                socket,
                listening_after,
                log,
                _dir: dir,
            }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Err(io::Error::other(format!("{why}; its output:\n{text}")))
            }
        }
    }

    /// The socket the daemon listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time from spawning the process until its socket existed.
    pub fn listening_after(&self) -> Duration {
        self.listening_after
    }

    /// What the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CommandDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request chain laid out once in guest memory and re-posted raw, so that the
/// frontend's own cost per request stays small and equal for every daemon measured.
#[derive(Clone, Debug)]
pub struct RawChain {
    descs: Vec<crate::RawDesc>,
    /// (address, length) of each device-writable buffer, in chain order.
    writable: Vec<(u64, u32)>,
    /// The bytes every device-writable buffer must hold after completion, concatenated.
    want: Vec<u8>,
}

/// A chain to lay out: device-readable buffers, device-writable lengths, the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// The device-readable buffers, in order (they come first in the chain).
    pub out: Vec<Vec<u8>>,
    /// Lengths of the device-writable buffers that follow.
    pub writable: Vec<u32>,
    /// The bytes the writable buffers must hold afterwards, concatenated.
    pub want: Vec<u8>,
}

/// Byte written into device-writable buffers before each post, so a daemon that answers
/// without writing is caught.
const RAW_POISON: u8 = 0xa5;

/// Why a batch of raw chains failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The frontend failed (a full ring, a timeout, a bad used element).
    #[error("frontend")]
    Frontend(#[from] crate::Error),
    /// A daemon's answer was wrong.
    #[error("chain {index} of the batch: answer {got:02x?}, expected {want:02x?}")]
    BadAnswer {
        /// Index of the chain in the batch.
        index: usize,
        /// What the writable buffers held.
        got: Vec<u8>,
        /// What they must hold.
        want: Vec<u8>,
    },
}

impl RawChain {
    /// Allocates and fills the buffers of `spec` in `q`'s memory.
    pub fn lay_out(q: &mut TestQueue, spec: &ChainSpec) -> Result<Self, crate::Error> {
        use vm_memory::{Bytes, GuestAddress};
        let mut descs = Vec::new();
        for bytes in &spec.out {
            let len = u32::try_from(bytes.len())?;
            let at = q.alloc_buffer(len)?;
            q.memory().write_slice(bytes, GuestAddress(at))?;
            descs.push(crate::RawDesc {
                addr: at,
                len,
                flags: 0,
                next: 0,
            });
        }
        let mut writable = Vec::new();
        for &len in &spec.writable {
            let at = q.alloc_buffer(len)?;
            writable.push((at, len));
            descs.push(crate::RawDesc {
                addr: at,
                len,
                flags: crate::VIRTQ_DESC_F_WRITE,
                next: 0,
            });
        }
        let count = descs.len();
        for (i, d) in descs.iter_mut().enumerate() {
            let next = i.saturating_add(1);
            if next < count {
                d.flags |= crate::VIRTQ_DESC_F_NEXT;
                d.next = u16::try_from(next)?;
            }
        }
        Ok(Self {
            descs,
            writable,
            want: spec.want.clone(),
        })
    }

    /// Descriptors the chain takes in the ring.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    /// Whether the chain has no descriptor (never, once laid out from a spec with buffers).
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }
}

/// Fills the device-writable buffers of `chains` with a poison byte (the first 8 bytes of
/// each: the answers checked are no longer), so a daemon that answers without writing is
/// caught by [`check_batch`].
pub fn poison_batch(q: &TestQueue, chains: &[RawChain]) -> Result<(), crate::Error> {
    use vm_memory::{Bytes, GuestAddress};
    let poison = [RAW_POISON; 8];
    for c in chains {
        for &(at, len) in &c.writable {
            let n = usize::try_from(len)?;
            let bytes = poison.get(..n.min(8)).unwrap_or_default();
            q.memory().write_slice(bytes, GuestAddress(at))?;
        }
    }
    Ok(())
}

/// Posts every chain of `chains` (published at once), kicks once and waits for all of them
/// ([`crate::load::ANSWER_TIMEOUT`] each): the part of a request a benchmark times.
pub fn submit_batch(q: &mut TestQueue, chains: &[RawChain]) -> Result<(), crate::Error> {
    q.hold(true)?;
    for c in chains {
        q.post_raw(&c.descs)?;
    }
    q.hold(false)?;
    q.kick()?;
    for _ in chains {
        q.wait_used(crate::load::ANSWER_TIMEOUT)?;
    }
    Ok(())
}

/// Checks the answer of every chain of a completed batch; `buf` is scratch space.
pub fn check_batch(
    q: &TestQueue,
    chains: &[RawChain],
    buf: &mut Vec<u8>,
) -> Result<(), BatchError> {
    use vm_memory::{Bytes, GuestAddress};
    for (index, c) in chains.iter().enumerate() {
        buf.clear();
        for &(at, len) in &c.writable {
            let start = buf.len();
            let n = usize::try_from(len).map_err(crate::Error::from)?;
            buf.resize(start.saturating_add(n), 0);
            let dst = buf.get_mut(start..).unwrap_or_default();
            q.memory()
                .read_slice(dst, GuestAddress(at))
                .map_err(crate::Error::from)?;
        }
        if *buf != c.want {
            return Err(BatchError::BadAnswer {
                index,
                got: buf.clone(),
                want: c.want.clone(),
            });
        }
    }
    Ok(())
}

/// [`poison_batch`], [`submit_batch`] and [`check_batch`]: one checked batch.
pub fn run_batch(
    q: &mut TestQueue,
    chains: &[RawChain],
    buf: &mut Vec<u8>,
) -> Result<(), BatchError> {
    poison_batch(q, chains)?;
    submit_batch(q, chains)?;
    check_batch(q, chains, buf)
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
    fn median_of_odd_even_and_empty() {
        assert_eq!(median_f64(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f64(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median_f64(&[]), None);
        assert_eq!(median_f64(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn stat_ticks_count_fields_after_the_last_parenthesis() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 10 0 0 0 250 17 0 0 20 0 3 0";
        assert_eq!(stat_cpu_ticks(stat), Some(267));
        assert_eq!(stat_cpu_ticks("42 (x) S 1"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn process_cpu_of_this_process_grows() {
        let pid = std::process::id();
        let a = ProcessCpu::of(pid).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let b = ProcessCpu::of(pid).unwrap();
        assert!(b.ticks >= a.ticks);
        assert!(b.since(&a).1 > Duration::ZERO, "{a:?} {b:?}");
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
