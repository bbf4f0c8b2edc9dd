//! Helpers for the daemons' request-path benchmarks: percentiles of timing samples and the
//! eventfd floor, the cost of one notification round trip with no virtqueue at all.
//!
//! The floor mirrors what a vhost-user request costs in notifications alone: the driver
//! writes the kick eventfd and sleeps in `poll` on the call eventfd; the device thread wakes
//! in `epoll_wait` on the kick eventfd (as `vhost-user-backend`'s vring worker does), reads
//! it, and writes the call eventfd; the driver reads the call eventfd. A daemon's round trip
//! divided by this floor is what its request handling costs on top of the two wake-ups.

use std::io;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

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

/// Waits until `fd` is readable (no timeout: the peer always answers).
fn poll_readable(fd: &EventFd) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and the count is 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, -1) };
        if ret > 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if ret < 0 && err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
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
}
