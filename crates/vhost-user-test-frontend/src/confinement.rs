//! Checks of a daemon's sandbox, shared by both daemons' `tests/sandbox.rs`: the real binary
//! is started on a private socket, and its `/proc/PID/status` (every thread), its exit
//! signal and its log show what the sandbox allows.
//!
//! The forbidden-call checks need the daemon built with vhost-device-common's
//! `sandbox-test-trigger` feature (the daemons' dev-dependencies enable it), which reads
//! [`TRIGGER_ENV`].

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{FrontendOptions, TestFrontend};

/// The test trigger's environment variable (see vhost-device-common's sandbox.rs).
pub const TRIGGER_ENV: &str = "VHOST_DEVICE_SANDBOX_TEST_TRIGGER";
/// Upper bound of every wait on the daemon.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A failed check, with what was seen.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(String);

fn fail<T>(msg: impl Into<String>) -> Result<T, CheckFailed> {
    Err(CheckFailed(msg.into()))
}

/// The daemon under test: its binary and the arguments that give it one device.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// Path of the daemon binary.
    pub binary: &'static str,
    /// Device arguments (e.g. `["-l", "s8"]`).
    pub device_args: &'static [&'static str],
    /// Queues the device has (for the frontend's handshake).
    pub num_queues: usize,
}

/// A started daemon; killed and its directory removed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

/// What `/proc/PID/task/TID/status` says about one thread's confinement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatus {
    /// The thread's id.
    pub tid: String,
    /// `Seccomp:` (0 none, 2 filter).
    pub seccomp: String,
    /// `NoNewPrivs:`.
    pub no_new_privs: String,
    /// `CapEff:`, `CapPrm:`, `CapInh:`, `CapAmb:` and `CapBnd:`, in that order.
    pub caps: [String; 5],
}

impl Subject {
    /// Starts the daemon on a fresh socket directory with `extra` arguments, the test
    /// trigger `trigger` (if any), as user and group `uid` (if given).
    ///
    /// For another user the daemon is a copy of the binary in a fresh root-owned 0755
    /// directory under /tmp, and its socket directory is that user's: it must not depend on
    /// the checkout's parents (a clone in a 0700 `mktemp -d`) or `$TMPDIR` being
    /// searchable by that user.
    pub fn start(
        &self,
        extra: &[&str],
        trigger: Option<&str>,
        uid: Option<u32>,
    ) -> Result<Daemon, CheckFailed> {
        let parent = match uid {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = parent.join(format!(
            "vhost-device-sandbox-test-{}-{}",
            std::process::id(),
            next_id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        create_dir(&dir, 0o755)?;
        let run_dir = dir.join("run");
        create_dir(&run_dir, 0o700)?;
        let binary = match uid {
            Some(id) => {
                std::os::unix::fs::chown(&run_dir, Some(id), Some(id))
                    .map_err(|e| CheckFailed(format!("chown {}: {e}", run_dir.display())))?;
                reachable_copy(Path::new(self.binary), &dir)?
            }
            None => PathBuf::from(self.binary),
        };
        let base = run_dir.join("d.sock");
        let log = dir.join("daemon.log");
        let log_file =
            File::create(&log).map_err(|e| CheckFailed(format!("create the log file: {e}")))?;
        let mut cmd = Command::new(&binary);
        cmd.arg("-s")
            .arg(&base)
            .args(self.device_args)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove(TRIGGER_ENV)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(t) = trigger {
            cmd.env(TRIGGER_ENV, t);
        }
        if let Some(id) = uid {
            // std drops root's supplementary groups (setgroups(0)) along with the uid.
            cmd.uid(id).gid(id);
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return fail(format!(
                    "spawn {} (testing {}) as uid {uid:?}: {e}",
                    binary.display(),
                    self.binary
                ));
            }
        };
        let mut socket = base.into_os_string();
        socket.push("0");
        Ok(Daemon {
            child,
            dir,
            socket: PathBuf::from(socket),
            log,
        })
    }

    /// Connects a frontend (full handshake) to `daemon`: the daemon is then serving, with
    /// its vring worker threads running.
    pub fn connect(&self, daemon: &Daemon) -> Result<TestFrontend, CheckFailed> {
        TestFrontend::connect(
            &daemon.socket,
            FrontendOptions {
                num_queues: self.num_queues,
                ..FrontendOptions::default()
            },
        )
        .map_err(|e| {
            CheckFailed(format!(
                "connect to {}: {e}; daemon log:\n{}",
                daemon.socket.display(),
                daemon.log()
            ))
        })
    }
}

/// Creates `dir` (which must not exist) with exactly `mode`, whatever the umask.
fn create_dir(dir: &Path, mode: u32) -> Result<(), CheckFailed> {
    std::fs::create_dir(dir).map_err(|e| CheckFailed(format!("create {}: {e}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| CheckFailed(format!("chmod {:o} {}: {e}", mode, dir.display())))
}

/// Copies `binary` into `dir` with mode 0755, for a user that may not reach the original.
fn reachable_copy(binary: &Path, dir: &Path) -> Result<PathBuf, CheckFailed> {
    let name = binary
        .file_name()
        .ok_or_else(|| CheckFailed(format!("{} has no file name", binary.display())))?;
    let copy = dir.join(name);
    std::fs::copy(binary, &copy).map_err(|e| {
        CheckFailed(format!(
            "copy {} to {}: {e}",
            binary.display(),
            copy.display()
        ))
    })?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| CheckFailed(format!("chmod 755 {}: {e}", copy.display())))?;
    Ok(copy)
}

fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The socket the daemon listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The confinement of every thread of the daemon.
    pub fn threads(&self) -> Result<Vec<ThreadStatus>, CheckFailed> {
        let tasks = format!("/proc/{}/task", self.pid());
        let entries =
            std::fs::read_dir(&tasks).map_err(|e| CheckFailed(format!("read {tasks}: {e}")))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let tid = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
                continue; // the thread ended meanwhile
            };
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|| format!("<no {name}>"))
            };
            out.push(ThreadStatus {
                tid,
                seccomp: field("Seccomp:"),
                no_new_privs: field("NoNewPrivs:"),
                caps: [
                    field("CapEff:"),
                    field("CapPrm:"),
                    field("CapInh:"),
                    field("CapAmb:"),
                    field("CapBnd:"),
                ],
            });
        }
        if out.is_empty() {
            return fail(format!("no thread under {tasks}"));
        }
        Ok(out)
    }

    /// Waits (up to a deadline) for the daemon to exit.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, CheckFailed> {
        let deadline = Instant::now().checked_add(TIMEOUT);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => return fail(format!("wait for the daemon: {e}")),
            }
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return fail(format!(
                    "the daemon did not exit within {TIMEOUT:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to a deadline) until the log contains `needle`; returns that line.
    pub fn wait_log(&mut self, needle: &str) -> Result<String, CheckFailed> {
        let deadline = Instant::now().checked_add(TIMEOUT);
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return fail(format!(
                    "the daemon exited ({status}) before logging {needle:?}; log:\n{}",
                    self.log()
                ));
            }
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return fail(format!(
                    "no {needle:?} in the log within {TIMEOUT:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Fails unless the daemon is still running.
    pub fn assert_running(&mut self) -> Result<(), CheckFailed> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => fail(format!(
                "the daemon exited ({status}); log:\n{}",
                self.log()
            )),
            Err(e) => fail(format!("wait for the daemon: {e}")),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const NO_CAPS: &str = "0000000000000000";

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For a test only root can run: true as root; otherwise prints one line on stderr,
/// `SKIP <test>: needs root (<why>)`, and returns false (the test then returns early).
/// Written to the stderr handle, not with `eprintln!`, which libtest captures (and shows
/// only for failed tests): a skip must be seen in a passing run.
pub fn root_or_skip(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: needs root ({why})");
    false
}

/// A serving daemon (a frontend connected) is confined in every thread: seccomp filter
/// mode, no_new_privs, and empty effective, permitted, inheritable and ambient capability
/// sets (and an empty bounding set when started by root and staying root: only
/// CAP_SETPCAP can shrink it). `uid` runs it as that user (which needs root).
pub fn check_confined_while_serving(
    subject: &Subject,
    uid: Option<u32>,
) -> Result<(), CheckFailed> {
    let mut daemon = subject.start(&[], None, uid)?;
    let frontend = subject.connect(&daemon)?;
    let threads = daemon.threads()?;
    let bounding_set_droppable = uid.is_none() && is_root();
    if threads.len() < 3 {
        return fail(format!(
            "expected the main, signal, socket and vring threads, found {threads:?}"
        ));
    }
    for t in &threads {
        let caps_ok = t.caps.iter().take(4).all(|c| c == NO_CAPS)
            && (!bounding_set_droppable || t.caps.get(4).is_some_and(|c| c == NO_CAPS));
        if t.seccomp != "2" || t.no_new_privs != "1" || !caps_ok {
            return fail(format!(
                "thread {} is not confined: {t:?}; log:\n{}",
                t.tid,
                daemon.log()
            ));
        }
    }
    daemon.assert_running()?;
    frontend.disconnect();
    Ok(())
}

/// The forbidden calls of the test trigger, each with the system call the filter sees
/// (vhost-device-common's sandbox.rs documents what each one tests).
pub const FORBIDDEN: &[(&str, libc::c_long)] = &[
    ("socket", libc::SYS_socket),
    ("fork", libc::SYS_clone),
    ("mmap-exec", libc::SYS_mmap),
    ("mprotect-exec", libc::SYS_mprotect),
    ("ioctl", libc::SYS_ioctl),
    ("fcntl", libc::SYS_fcntl),
    ("prctl", libc::SYS_prctl),
    ("kill", libc::SYS_kill),
];

/// Each forbidden call (a call off the allowlist, and each argument filter: clone without
/// CLONE_THREAD, PROT_EXEC in mmap and mprotect, an ioctl request, an fcntl command and a
/// prctl option not on their lists) kills the daemon with SIGSYS under `extra` (the default
/// `--seccomp kill`, or `trap`), and is made after serving began: a frontend is connected,
/// the trigger logs the call before making it, and never logs its return.
pub fn check_forbidden_call_kills(subject: &Subject, extra: &[&str]) -> Result<(), CheckFailed> {
    for &(name, _) in FORBIDDEN {
        let mut daemon = subject.start(extra, Some(name), None)?;
        // The trigger fires once the connection is accepted: the daemon may die before the
        // handshake ends, so the frontend's own result does not matter.
        let frontend = subject.connect(&daemon);
        let status = daemon.wait_exit()?;
        drop(frontend);
        let log = daemon.log();
        if status.signal() != Some(libc::SIGSYS) {
            return fail(format!(
                "{name} under {extra:?}: expected death by SIGSYS, got {status}; log:\n{log}"
            ));
        }
        let connected = log.find("frontend connected");
        let calling = log.find(&format!("trigger: {name}: calling after serving began"));
        if !matches!((connected, calling), (Some(c), Some(t)) if c < t) {
            return fail(format!(
                "{name} under {extra:?}: the call was not made after a frontend connected; log:\n{log}"
            ));
        }
        if log.contains(&format!("trigger: {name}: returned")) {
            return fail(format!("{name} returned under {extra:?}; log:\n{log}"));
        }
    }
    Ok(())
}

/// Under `--seccomp log` every forbidden call goes through, the daemon serves on with the
/// filter in every thread, and the kernel audits each call (a `type=1326` record with the
/// daemon's pid and the call's number in `dmesg`). The kernel rate-limits those records
/// (printk: about 10 per 5 s, shared with every other test's SIGSYS): a missing record is
/// looked for again in a new run after the limit's window, up to three runs.
///
/// `audit`: also require the audit records (reading them needs root where
/// `kernel.dmesg_restrict` is set, as on Debian).
pub fn check_log_mode_lets_it_through(subject: &Subject, audit: bool) -> Result<(), CheckFailed> {
    let mut missing: Vec<(&str, libc::c_long)> = FORBIDDEN.to_vec();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(5500));
        }
        let list: Vec<&str> = missing.iter().map(|&(n, _)| n).collect();
        let mut daemon = subject.start(&["--seccomp", "log"], Some(&list.join(",")), None)?;
        let frontend = subject.connect(&daemon)?;
        for name in &list {
            let line = daemon.wait_log(&format!("trigger: {name}: returned"))?;
            // It reached the kernel: Landlock still refuses the signal (scope, EPERM) and
            // stderr is no terminal (ENOTTY); everything else succeeds.
            let kernel_said_no = (*name == "kill" && line.contains("Operation not permitted"))
                || (*name == "ioctl" && line.contains("Inappropriate ioctl"));
            if line.contains("returned -1") && !kernel_said_no {
                return fail(format!("{name} failed under --seccomp log: {line}"));
            }
        }
        daemon.assert_running()?;
        let threads = daemon.threads()?;
        if threads.iter().any(|t| t.seccomp != "2") {
            return fail(format!(
                "--seccomp log: a thread has no filter: {threads:?}"
            ));
        }
        frontend.disconnect();
        if !audit {
            return Ok(());
        }
        let pid = daemon.pid();
        let records = audit_records(pid)?;
        missing.retain(|&(_, nr)| !records.contains(&nr));
        if missing.is_empty() {
            return Ok(());
        }
    }
    fail(format!(
        "--seccomp log: no audit record in dmesg for {missing:?} after three runs"
    ))
}

/// The system call numbers of the seccomp audit records (`type=1326`) of `pid` in `dmesg`.
fn audit_records(pid: u32) -> Result<Vec<libc::c_long>, CheckFailed> {
    let out = Command::new("dmesg")
        .output()
        .map_err(|e| CheckFailed(format!("cannot run dmesg to read the audit records: {e}")))?;
    if !out.status.success() {
        return fail(format!(
            "dmesg failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let pid_field = format!(" pid={pid} ");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("type=1326") && l.contains(&pid_field))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("syscall="))
                .and_then(|n| n.parse().ok())
        })
        .collect())
}

/// Landlock alone (`--seccomp none`) refuses what the filter would also stop: a signal to a
/// process outside the daemon (scope, `kill(parent, 0)`: EPERM) and a TCP connection
/// (network rules: EACCES); with `--sandbox none` both succeed. Needs a kernel with
/// Landlock ABI 6 (Linux 6.12): the daemon must log "Landlock enforced".
pub fn check_landlock_refuses_signals_and_tcp(subject: &Subject) -> Result<(), CheckFailed> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| CheckFailed(format!("bind a TCP listener: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| CheckFailed(format!("listener address: {e}")))?
        .port();
    let trigger = format!("kill,tcp-connect:{port}");
    for (args, refused) in [
        (&["--seccomp", "none"][..], true),
        (&["--sandbox", "none"][..], false),
    ] {
        let mut daemon = subject.start(args, Some(&trigger), None)?;
        let frontend = subject.connect(&daemon)?;
        if refused && !daemon.log().contains("sandbox: Landlock enforced") {
            return fail(format!(
                "this kernel does not enforce every Landlock feature the check needs (ABI 6, Linux >= 6.12); log:\n{}",
                daemon.log()
            ));
        }
        for (name, errno) in [
            ("kill", "Operation not permitted"),
            ("tcp-connect", "Permission denied"),
        ] {
            let line = daemon.wait_log(&format!("trigger: {name}"))?;
            let line = if line.contains("returned") {
                line
            } else {
                daemon.wait_log(&format!(
                    "trigger: {name}{}: returned",
                    if name == "kill" {
                        String::new()
                    } else {
                        format!(":{port}")
                    }
                ))?
            };
            let ok = if refused {
                line.contains("returned -1") && line.contains(errno)
            } else {
                line.contains("returned 0")
            };
            if !ok {
                return fail(format!(
                    "{name} under {args:?}: expected {}: {line}",
                    if refused { errno } else { "success" }
                ));
            }
        }
        daemon.assert_running()?;
        frontend.disconnect();
    }
    Ok(())
}

/// Landlock alone (`--seccomp none`) refuses to open a file that any process may read; with
/// `--sandbox none` the same open succeeds and nothing is confined.
pub fn check_landlock_refuses_opens(subject: &Subject) -> Result<(), CheckFailed> {
    let path = "/proc/self/status";
    let trigger = format!("open:{path}");
    let mut daemon = subject.start(&["--seccomp", "none"], Some(&trigger), None)?;
    let line = daemon.wait_log(&format!("open {path}:"))?;
    if !line.contains("Permission denied") {
        return fail(format!("Landlock did not refuse the open: {line}"));
    }
    let threads = daemon.threads()?;
    if threads
        .iter()
        .any(|t| t.seccomp != "0" || t.no_new_privs != "1")
    {
        return fail(format!(
            "--seccomp none: expected no filter, no_new_privs: {threads:?}"
        ));
    }
    drop(daemon);

    let mut daemon = subject.start(&["--sandbox", "none"], Some(&trigger), None)?;
    let line = daemon.wait_log(&format!("open {path}:"))?;
    if !line.contains("opened") {
        return fail(format!("--sandbox none: the open failed: {line}"));
    }
    let frontend = subject.connect(&daemon)?;
    let threads = daemon.threads()?;
    if threads.iter().any(|t| t.seccomp != "0") {
        return fail(format!("--sandbox none: a thread is filtered: {threads:?}"));
    }
    frontend.disconnect();
    Ok(())
}

/// A file open under the default filter is refused with EACCES, not fatal: libc opens files
/// on paths of its own (glibc's malloc under load) and copes with a refusal, so the daemon
/// must go on serving. The open uses O_PATH, which Landlock does not restrict, so the
/// refusal seen is the seccomp filter's; with `--seccomp none` the same open succeeds.
pub fn check_opens_refused_not_fatal(subject: &Subject) -> Result<(), CheckFailed> {
    let path = "/proc/self/status";
    let trigger = format!("open-path:{path}");
    let mut daemon = subject.start(&[], Some(&trigger), None)?;
    let line = daemon.wait_log(&format!("open-path {path}:"))?;
    if !line.contains("Permission denied") {
        return fail(format!(
            "the filter did not refuse the open with EACCES: {line}"
        ));
    }
    let frontend = subject.connect(&daemon)?;
    daemon.assert_running()?;
    frontend.disconnect();
    drop(daemon);

    let mut daemon = subject.start(&["--seccomp", "none"], Some(&trigger), None)?;
    let line = daemon.wait_log(&format!("open-path {path}:"))?;
    if !line.contains("opened") {
        return fail(format!(
            "--seccomp none: the O_PATH open failed, so the check above proves nothing: {line}"
        ));
    }
    Ok(())
}
