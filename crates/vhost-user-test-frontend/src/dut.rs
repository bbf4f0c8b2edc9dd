//! A daemon under test: the real binary started on a private socket with its log captured,
//! watched through /proc (alive, CPU time, open fds) after each attack of
//! [`crate::attacks`], and asked by a fresh well-behaved connection whether it still serves.
//!
//! A daemon crate's test names its [`Target`] (the daemon, and a probe that checks one
//! correct answer); the attacks and their runner are in [`crate::attacks`].

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

pub use crate::binary::Subject;
use crate::daemon::Daemon;
pub use crate::daemon::chain;
use crate::raw::{RawError, RawFrontend, RawOptions};

/// How long a fresh connection may take to get its correct answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The window over which idle CPU is measured after an attack's last round.
pub const CPU_WINDOW: Duration = Duration::from_secs(1);
/// The window over which idle CPU is measured after each earlier round: shorter, so that
/// every round of a 40-round attack can be checked, and still a real measurement because
/// CPU time is read in nanoseconds (a process CPU clock), not in 10 ms clock ticks.
pub const ROUND_CPU_WINDOW: Duration = Duration::from_millis(100);
/// Most open descriptors a daemon may hold after an attack beyond what it held before,
/// each time measured once a fresh connection has come and gone.
pub const MAX_FD_GROWTH: usize = 0;
/// Largest share of one core an idle daemon may use over [`CPU_WINDOW`].
pub const MAX_IDLE_CPU: f64 = 0.05;
/// Most log lines one attack (with its checks) may add.
pub const MAX_LOG_LINES: usize = 20;
/// Largest log growth read back into memory; beyond it the growth is reported in bytes.
const MAX_LOG_READ: u64 = 4 << 20;

/// What is tested: a daemon (binary, device, queues) and how to talk to it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The daemon; its launches honour the chosen binary and runner.
    pub subject: Subject,
    /// Entries per queue.
    pub queue_size: u16,
    /// Checks one correct answer on a handshaken frontend; `Err` says what was wrong.
    pub probe: fn(&mut RawFrontend) -> Result<(), String>,
    /// A well-formed request for queue 0 that the device completes (header and buffers).
    pub request: fn() -> Vec<crate::Desc>,
}

/// A running daemon under attack (on the shared [`crate::daemon`] harness, which kills it
/// when dropped).
#[derive(Debug)]
pub struct Dut {
    /// The target.
    pub target: Target,
    daemon: Daemon,
    pid: u32,
    /// Byte offset of the log at the start of the current attack.
    log_mark: u64,
    /// Open descriptors once the first fresh connection had come and gone.
    fd_baseline: usize,
    /// Observations that fail the attack but do not end it (the checks still run).
    findings: RefCell<Vec<String>>,
}

impl Dut {
    /// Starts `target` with `RUST_LOG=info` (or `HOSTILE_RUST_LOG` when debugging an attack;
    /// the log bound is meant for the default) and waits for its socket.
    pub fn start(target: Target) -> Result<Dut, String> {
        let level = std::env::var("HOSTILE_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
        let mut daemon = target
            .subject
            .launch()
            .rust_log(Some(&level))
            .try_start()
            .map_err(|e| format!("{}: {}", target.subject.name, chain(&e)))?;
        let pid = u32::try_from(daemon.pid()).map_err(|e| format!("pid: {e}"))?;
        if let Some(status) = daemon.exited() {
            return Err(format!(
                "{}: daemon died: {}",
                target.subject.name,
                describe_exit(status)
            ));
        }
        let mut dut = Dut {
            target,
            daemon,
            pid,
            log_mark: 0,
            fd_baseline: 0,
            findings: RefCell::new(Vec::new()),
        };
        // The baseline of the descriptor check: the state after a fresh connection, which
        // is also the state every check leaves the daemon in.
        dut.fresh_answer()
            .map_err(|e| format!("{}: before any attack: {e}", target.subject.name))?;
        dut.fd_baseline = dut.settled_fd_count(None)?;
        Ok(dut)
    }

    /// Records a failure of the running attack and lets it go on to its checks (an
    /// explicit part of the daemon under test, where a thread-local side channel was).
    pub fn note(&self, finding: String) {
        self.findings.borrow_mut().push(finding);
    }

    /// The failures [`Dut::note`]d since the last call.
    pub fn take_findings(&self) -> Vec<String> {
        std::mem::take(&mut *self.findings.borrow_mut())
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        self.daemon.socket(0)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Options for a frontend that matches the target.
    pub fn options(&self) -> RawOptions {
        RawOptions {
            num_queues: self.target.subject.num_queues,
            queue_size: self.target.queue_size,
            ..RawOptions::default()
        }
    }

    /// Connects a raw frontend (nothing sent yet).
    pub fn raw(&self, opts: RawOptions) -> Result<RawFrontend, String> {
        RawFrontend::connect(self.socket(), opts).map_err(|e| format!("connect: {}", chain(&e)))
    }

    /// Connects and completes the normal handshake.
    pub fn good(&self, opts: RawOptions) -> Result<RawFrontend, String> {
        RawFrontend::handshake(self.socket(), opts)
            .map_err(|e| format!("normal handshake: {}", chain(&e)))
    }

    /// `Err` if the process has exited (with how it ended).
    pub fn alive(&mut self) -> Result<(), String> {
        match self.daemon.exited() {
            None => Ok(()),
            Some(status) => Err(format!("daemon died: {}", describe_exit(status))),
        }
    }

    /// CPU time (user + system, all threads, live and exited) used so far, read from the
    /// process's CPU-time clock (nanosecond resolution).
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let pid = libc::pid_t::try_from(self.pid).map_err(|e| format!("pid: {e}"))?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `clock` is a valid clockid_t to write; the result is checked.
        let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
        if rc != 0 {
            return Err(format!(
                "clock_getcpuclockid({pid}): {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write; the result is checked.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return Err(format!(
                "CPU clock of {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let secs = u64::try_from(ts.tv_sec).map_err(|e| format!("CPU clock: {e}"))?;
        let nanos = u32::try_from(ts.tv_nsec).map_err(|e| format!("CPU clock: {e}"))?;
        Ok(Duration::new(secs, nanos))
    }

    /// Share of one core used over `window`.
    pub fn cpu_share(&self, window: Duration) -> Result<f64, String> {
        let before = self.cpu_time()?;
        let start = Instant::now();
        std::thread::sleep(window);
        let used = self.cpu_time()?.saturating_sub(before);
        Ok(used.as_secs_f64() / start.elapsed().as_secs_f64())
    }

    /// Number of open file descriptors.
    pub fn fd_count(&self) -> Result<usize, String> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(Iterator::count)
            .map_err(|e| format!("cannot list /proc/{}/fd: {e}", self.pid()))
    }

    /// The fd count once it has settled: at most `target` (when given; polled every 5 ms,
    /// as a connection's teardown ends just after it closes) or unchanged for 100 ms, within
    /// 2 s; the last count otherwise.
    pub fn settled_fd_count(&self, target: Option<usize>) -> Result<usize, String> {
        let deadline = Instant::now().checked_add(Duration::from_secs(2));
        let mut last = self.fd_count()?;
        let poll = Duration::from_millis(if target.is_some() { 5 } else { 100 });
        loop {
            if target.is_some_and(|t| last <= t) || deadline.is_none_or(|d| Instant::now() >= d) {
                return Ok(last);
            }
            std::thread::sleep(poll);
            let now = self.fd_count()?;
            if target.is_none() && now == last {
                return Ok(now);
            }
            last = now;
        }
    }

    /// Marks the start of an attack: log growth is counted from here.
    pub fn mark(&mut self) {
        self.log_mark = std::fs::metadata(self.daemon.log_path()).map_or(0, |m| m.len());
    }

    /// The log written since [`Dut::mark`]: (bytes, lines counted in at most the first
    /// 4 MiB, text of those bytes).
    pub fn log_since_mark(&self) -> (u64, usize, String) {
        let mut text = String::new();
        let mut bytes = 0;
        if let Ok(mut f) = File::open(self.daemon.log_path()) {
            bytes = f
                .metadata()
                .map_or(0, |m| m.len())
                .saturating_sub(self.log_mark);
            if f.seek(SeekFrom::Start(self.log_mark)).is_ok() {
                let mut buf = Vec::new();
                let _ = f.take(MAX_LOG_READ).read_to_end(&mut buf);
                text = String::from_utf8_lossy(&buf).into_owned();
            }
        }
        let lines = text.lines().count();
        (bytes, lines, text)
    }

    /// The whole log (at most its first 4 MiB).
    pub fn log(&self) -> String {
        let mut buf = Vec::new();
        if let Ok(f) = File::open(self.daemon.log_path()) {
            let _ = f.take(MAX_LOG_READ).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// A fresh, well-behaved connection: handshake and the target's probe, within
    /// [`ANSWER_WITHIN`]. Returns how long it took.
    pub fn fresh_answer(&mut self) -> Result<Duration, String> {
        let start = Instant::now();
        let opts = RawOptions {
            timeout: ANSWER_WITHIN,
            ..self.options()
        };
        let mut fe = RawFrontend::handshake(self.socket(), opts)
            .map_err(|e| format!("fresh connection: handshake failed: {}", chain(&e)))?;
        (self.target.probe)(&mut fe).map_err(|e| format!("fresh connection: {e}"))?;
        let took = start.elapsed();
        drop(fe);
        if took > ANSWER_WITHIN {
            return Err(format!(
                "fresh connection answered after {took:?} (limit {ANSWER_WITHIN:?})"
            ));
        }
        Ok(took)
    }

    /// The checks after an attack, with the attacker's connection still open if it has one
    /// (see [`Dut::check_after_window`]), idle CPU over [`CPU_WINDOW`].
    pub fn check_after(&mut self, attacker: Option<RawFrontend>) -> Result<(), String> {
        self.check_after_window(attacker, CPU_WINDOW)
    }

    /// The same checks after one round `what` of a several-round attack, idle CPU over
    /// [`ROUND_CPU_WINDOW`]; the log is counted from the last [`Dut::mark`] (the start of
    /// the round). Failures are prefixed with the round.
    pub fn check_round(&mut self, what: &str, attacker: Option<RawFrontend>) -> Result<(), String> {
        self.check_after_window(attacker, ROUND_CPU_WINDOW)
            .map_err(|e| format!("after {what}: {e}"))
    }

    /// The checks after an attack, with the attacker's connection still open if it has one:
    /// alive; idle CPU over `window`; GET_VRING_BASE answered (or the connection closed by
    /// the daemon); then, with the attacker gone, a fresh connection answers within a second;
    /// the open descriptors are back to what they were before the first attack; the log grew
    /// by at most [`MAX_LOG_LINES`] lines since [`Dut::mark`]. Every failed check is
    /// reported.
    pub fn check_after_window(
        &mut self,
        attacker: Option<RawFrontend>,
        window: Duration,
    ) -> Result<(), String> {
        let mut failures = Vec::new();
        self.alive()?;
        match self.cpu_share(window) {
            Ok(share) if share > MAX_IDLE_CPU => failures.push(format!(
                "busy while idle: {:.0}% of a core over {window:?}",
                share * 100.0
            )),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        if let Some(fe) = attacker {
            for q in 0..u32::try_from(self.target.subject.num_queues).unwrap_or(1) {
                match fe.conn.get_vring_base(q, ANSWER_WITHIN) {
                    Ok(_) => {}
                    Err(e) if e.is_closed() => break,
                    Err(RawError::Timeout(t)) => {
                        failures.push(format!(
                            "GET_VRING_BASE {q} on the attacking connection got no reply \
                             within {t:?} (a vring worker holds the queue?)"
                        ));
                        break;
                    }
                    Err(e) => {
                        failures.push(format!(
                            "GET_VRING_BASE {q} on the attacking connection: {}",
                            chain(&e)
                        ));
                        break;
                    }
                }
            }
            drop(fe);
        }
        self.alive()?;
        if let Err(e) = self.fresh_answer() {
            failures.push(e);
        }
        self.alive()?;
        let baseline = self.fd_baseline;
        let limit = baseline.saturating_add(MAX_FD_GROWTH);
        match self.settled_fd_count(Some(limit)) {
            Ok(now) if now > limit => failures.push(format!(
                "open descriptors grew from {baseline} to {now} (limit +{MAX_FD_GROWTH}): \
                 the attack's descriptors were kept"
            )),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        let (bytes, lines, _) = self.log_since_mark();
        if lines > MAX_LOG_LINES || bytes > MAX_LOG_READ {
            failures.push(format!(
                "log grew by {bytes} bytes, {lines} lines in its first 4 MiB, during the attack \
                 (limit {MAX_LOG_LINES} lines)"
            ));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGBUS) => "killed by SIGBUS".to_owned(),
        Some(libc::SIGSEGV) => "killed by SIGSEGV".to_owned(),
        Some(libc::SIGABRT) => "aborted (SIGABRT; a panic?)".to_owned(),
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exited with {status}"),
    }
}
