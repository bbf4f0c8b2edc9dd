//! A daemon under test: the real binary started on a private socket with its log captured,
//! watched through /proc (alive, CPU time, open fds) after each attack of
//! [`crate::attacks`], and asked by a fresh well-behaved connection whether it still serves.
//!
//! A daemon crate's test names its [`Target`] (binary, arguments, queues, and a probe that
//! checks one correct answer) and lists the attacks with [`crate::hostile_frontend_tests`].

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Launch};
use crate::raw::{RawError, RawFrontend, RawOptions};

/// How long a fresh connection may take to get its correct answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The window over which idle CPU is measured.
pub const CPU_WINDOW: Duration = Duration::from_secs(1);
/// Largest share of one core an idle daemon may use over [`CPU_WINDOW`].
pub const MAX_IDLE_CPU: f64 = 0.05;
/// Most log lines one attack (with its checks) may add.
pub const MAX_LOG_LINES: usize = 20;
/// Largest log growth read back into memory; beyond it the growth is reported in bytes.
const MAX_LOG_READ: u64 = 4 << 20;

/// What is tested: a daemon binary and how to talk to it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Short name for messages (`i2c`, `gpio`).
    pub name: &'static str,
    /// Path of the binary.
    pub binary: &'static str,
    /// Arguments besides `-s SOCKET` (a simulated device).
    pub args: &'static [&'static str],
    /// Queues a frontend sets up.
    pub num_queues: usize,
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
}

impl Dut {
    /// Starts `target` with `RUST_LOG=info` (or `HOSTILE_RUST_LOG` when debugging an attack;
    /// the log bound is meant for the default) and waits for its socket.
    pub fn start(target: Target) -> Result<Dut, String> {
        let level = std::env::var("HOSTILE_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
        let mut daemon = Launch::new(target.binary)
            .args(target.args)
            .rust_log(Some(&level))
            .start();
        let pid = u32::try_from(daemon.pid()).map_err(|e| format!("pid: {e}"))?;
        if let Some(status) = daemon.exited() {
            return Err(format!(
                "{}: daemon died: {}",
                target.name,
                describe_exit(status)
            ));
        }
        Ok(Dut {
            target,
            daemon,
            pid,
            log_mark: 0,
        })
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
            num_queues: self.target.num_queues,
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

    /// CPU time (user + system, all threads) used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| format!("cannot read /proc/{}/stat: {e}", self.pid()))?;
        // Fields after the command name (which may contain spaces) in parentheses.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or("malformed /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
        let field = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("no field {i} in /proc stat"))
        };
        Ok(field(11)?.saturating_add(field(12)?))
    }

    /// Share of one core used over [`CPU_WINDOW`].
    pub fn cpu_share(&self) -> Result<f64, String> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = u32::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
        let before = self.cpu_ticks()?;
        let start = Instant::now();
        std::thread::sleep(CPU_WINDOW);
        let ticks = self.cpu_ticks()?.saturating_sub(before);
        let seconds = Duration::from_secs(ticks)
            .checked_div(hz)
            .unwrap_or_default()
            .as_secs_f64();
        Ok(seconds / start.elapsed().as_secs_f64())
    }

    /// Number of open file descriptors.
    pub fn fd_count(&self) -> Result<usize, String> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(Iterator::count)
            .map_err(|e| format!("cannot list /proc/{}/fd: {e}", self.pid()))
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

    /// Alive, and a fresh connection answers correctly: the quick check between the rounds
    /// of one attack.
    pub fn quick_check(&mut self, what: &str) -> Result<(), String> {
        self.alive().map_err(|e| format!("after {what}: {e}"))?;
        self.fresh_answer()
            .map(|_| ())
            .map_err(|e| format!("after {what}: {e}"))?;
        self.alive().map_err(|e| format!("after {what}: {e}"))
    }

    /// The checks after an attack, with the attacker's connection still open if it has one:
    /// alive; idle CPU; GET_VRING_BASE answered (or the connection closed by the daemon);
    /// then, with the attacker gone, a fresh connection answers within a second; the log grew
    /// by at most [`MAX_LOG_LINES`] lines. Every failed check is reported.
    pub fn check_after(&mut self, attacker: Option<RawFrontend>) -> Result<(), String> {
        let mut failures = Vec::new();
        self.alive()?;
        match self.cpu_share() {
            Ok(share) if share > MAX_IDLE_CPU => failures.push(format!(
                "busy while idle: {:.0}% of a core over {CPU_WINDOW:?}",
                share * 100.0
            )),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        if let Some(fe) = attacker {
            for q in 0..u32::try_from(self.target.num_queues).unwrap_or(1) {
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

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

/// A log line cut to 300 characters.
fn cut(line: &str) -> String {
    line.chars().take(300).collect()
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

/// Runs one attack against a fresh daemon of `target` and panics with the attack's name,
/// what was observed and the end of the daemon's log if it fails.
#[track_caller]
#[allow(clippy::panic)] // Test tooling: the panic is the test failure.
pub fn run_attack(target: Target, name: &str, attack: fn(&mut Dut) -> Result<(), String>) {
    let mut dut = match Dut::start(target) {
        Ok(d) => d,
        Err(e) => panic!("{}: {name}: cannot start the daemon: {e}", target.name),
    };
    dut.mark();
    crate::attacks::take_findings();
    let result = attack(&mut dut);
    let mut findings = crate::attacks::take_findings();
    if let Err(e) = result {
        findings.push(e);
    }
    if !findings.is_empty() {
        let e = findings.join("; ");
        let (bytes, _, text) = dut.log_since_mark();
        let lines: Vec<&str> = text.lines().collect();
        let tail: Vec<String> = if lines.len() > 16 {
            let head = lines.iter().take(8);
            let end = lines.iter().skip(lines.len().saturating_sub(8));
            head.chain([&"..."]).chain(end).map(|l| cut(l)).collect()
        } else {
            lines.iter().map(|l| cut(l)).collect()
        };
        panic!(
            "{} daemon, attack `{name}`: {e}\n--- daemon log during the attack ({bytes} bytes) ---\n{}\n---",
            target.name,
            tail.join("\n")
        );
    }
}

/// Declares one `#[test]` per listed attack of [`crate::attacks`] against `$target`
/// (an expression of type [`Target`]).
#[macro_export]
macro_rules! hostile_frontend_tests {
    ($target:expr; $($attack:ident),+ $(,)?) => {
        $(
            #[test]
            fn $attack() {
                $crate::dut::run_attack(
                    $target,
                    stringify!($attack),
                    $crate::attacks::$attack,
                );
            }
        )+
    };
}
