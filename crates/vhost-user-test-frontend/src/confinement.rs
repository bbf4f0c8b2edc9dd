//! Checks of a daemon's sandbox, shared by both daemons' `tests/sandbox.rs`: the real binary
//! is started on a private socket, and its `/proc/PID/status` (every thread), its exit
//! signal and its log show what the sandbox allows.
//!
//! The forbidden-call checks need the daemon built with vhost-device-common's
//! `sandbox-test-trigger` feature (the daemons' dev-dependencies enable it), which reads
//! [`TRIGGER_ENV`].

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::TestFrontend;
pub use crate::binary::Subject;
use crate::daemon::{Daemon, chain};

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

/// Starts `subject` (through the shared launcher, so the chosen binary and runner) with
/// `extra` arguments, `RUST_LOG=info`, the test trigger `trigger` (if any; the variable is
/// removed otherwise), in `/`, as user and group `uid` (if given: see [`crate::daemon::Launch::user`]).
pub fn start(
    subject: &Subject,
    extra: &[&str],
    trigger: Option<&str>,
    uid: Option<u32>,
) -> Result<Daemon, CheckFailed> {
    let mut launch = subject
        .launch()
        .args(extra)
        .rust_log(Some("info"))
        .env(TRIGGER_ENV, trigger)
        .current_dir("/");
    if let Some(id) = uid {
        launch = launch.user(id);
    }
    launch.try_start().map_err(|e| {
        CheckFailed(format!(
            "start {} as uid {uid:?}: {}",
            subject.binary().describe(),
            chain(&e)
        ))
    })
}

/// Connects a frontend (full handshake) to `daemon`: the daemon is then serving, with its
/// vring worker threads running.
pub fn connect(daemon: &Daemon) -> Result<TestFrontend, CheckFailed> {
    TestFrontend::connect(daemon.socket(0), daemon.frontend_options()).map_err(|e| {
        CheckFailed(format!(
            "connect to {}: {e}; daemon log:\n{}",
            daemon.socket(0).display(),
            daemon.log()
        ))
    })
}

/// The confinement of every thread of process `pid`.
pub fn thread_statuses(pid: libc::pid_t) -> Result<Vec<ThreadStatus>, CheckFailed> {
    let tasks = format!("/proc/{pid}/task");
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

/// Whether `binary` was built with the sandbox test trigger (it then holds
/// [`TRIGGER_ENV`]'s name). A release or packaged binary must not be.
pub fn has_test_trigger(binary: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(binary)?;
    let needle = TRIGGER_ENV.as_bytes();
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}

/// For a check that needs the test trigger: true if the binary under test has it. A
/// binary chosen by variable (an installed package, which must lack it) is skipped with
/// one `SKIP <test>: ...` line on stderr; the workspace build must have it (the daemons'
/// dev-dependencies enable the feature), so there a missing trigger fails.
#[allow(clippy::panic)] // Test tooling: the panic is the test failure.
pub fn trigger_or_skip(subject: &Subject, test: &str) -> bool {
    let bin = subject.binary();
    match has_test_trigger(&bin.program) {
        Ok(true) => true,
        Ok(false) if !bin.is_workspace_build() => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: {} has no sandbox test trigger (built without the sandbox-test-trigger feature)",
                bin.describe()
            );
            false
        }
        Ok(false) => panic!(
            "{}: the workspace build has no sandbox test trigger; the dev-dependency on \
             vhost-device-common must enable the sandbox-test-trigger feature",
            bin.describe()
        ),
        Err(e) => panic!("read {}: {e}", bin.program.display()),
    }
}

/// Fails the calling test with what a check saw.
#[track_caller]
#[allow(clippy::panic)] // Test tooling: the panic is the test failure.
pub fn passed(result: Result<(), CheckFailed>) {
    if let Err(e) = result {
        panic!("{e}");
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
    let mut daemon = start(subject, &[], None, uid)?;
    let frontend = connect(&daemon)?;
    let threads = thread_statuses(daemon.pid())?;
    let bounding_set_droppable = uid.is_none() && is_root();
    if threads.len() < 4 {
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
    daemon.assert_running();
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
        let mut daemon = start(subject, extra, Some(name), None)?;
        // The trigger fires once the connection is accepted: the daemon may die before the
        // handshake ends, so the frontend's own result does not matter.
        let frontend = connect(&daemon);
        let status = daemon.wait_exit(TIMEOUT);
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
        let mut daemon = start(subject, &["--seccomp", "log"], Some(&list.join(",")), None)?;
        let frontend = connect(&daemon)?;
        for name in &list {
            let line = daemon.wait_for_log(&format!("trigger: {name}: returned"), TIMEOUT);
            // It reached the kernel: Landlock still refuses the signal (scope, EPERM) and
            // stderr is no terminal (ENOTTY); everything else succeeds.
            let kernel_said_no = (*name == "kill" && line.contains("Operation not permitted"))
                || (*name == "ioctl" && line.contains("Inappropriate ioctl"));
            if line.contains("returned -1") && !kernel_said_no {
                return fail(format!("{name} failed under --seccomp log: {line}"));
            }
        }
        daemon.assert_running();
        let threads = thread_statuses(daemon.pid())?;
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
fn audit_records(pid: libc::pid_t) -> Result<Vec<libc::c_long>, CheckFailed> {
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
        let mut daemon = start(subject, args, Some(&trigger), None)?;
        let frontend = connect(&daemon)?;
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
            let line = daemon.wait_for_log(&format!("trigger: {name}"), TIMEOUT);
            let line = if line.contains("returned") {
                line
            } else {
                daemon.wait_for_log(
                    &format!(
                        "trigger: {name}{}: returned",
                        if name == "kill" {
                            String::new()
                        } else {
                            format!(":{port}")
                        }
                    ),
                    TIMEOUT,
                )
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
        daemon.assert_running();
        frontend.disconnect();
    }
    Ok(())
}

/// Landlock alone (`--seccomp none`) refuses to open a file that any process may read; with
/// `--sandbox none` the same open succeeds and nothing is confined.
pub fn check_landlock_refuses_opens(subject: &Subject) -> Result<(), CheckFailed> {
    let path = "/proc/self/status";
    let trigger = format!("open:{path}");
    let mut daemon = start(subject, &["--seccomp", "none"], Some(&trigger), None)?;
    let line = daemon.wait_for_log(&format!("open {path}:"), TIMEOUT);
    if !line.contains("Permission denied") {
        return fail(format!("Landlock did not refuse the open: {line}"));
    }
    let threads = thread_statuses(daemon.pid())?;
    if threads
        .iter()
        .any(|t| t.seccomp != "0" || t.no_new_privs != "1")
    {
        return fail(format!(
            "--seccomp none: expected no filter, no_new_privs: {threads:?}"
        ));
    }
    drop(daemon);

    let mut daemon = start(subject, &["--sandbox", "none"], Some(&trigger), None)?;
    let line = daemon.wait_for_log(&format!("open {path}:"), TIMEOUT);
    if !line.contains("opened") {
        return fail(format!("--sandbox none: the open failed: {line}"));
    }
    let frontend = connect(&daemon)?;
    let threads = thread_statuses(daemon.pid())?;
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
    let mut daemon = start(subject, &[], Some(&trigger), None)?;
    let line = daemon.wait_for_log(&format!("open-path {path}:"), TIMEOUT);
    if !line.contains("Permission denied") {
        return fail(format!(
            "the filter did not refuse the open with EACCES: {line}"
        ));
    }
    let frontend = connect(&daemon)?;
    daemon.assert_running();
    frontend.disconnect();
    drop(daemon);

    let mut daemon = start(subject, &["--seccomp", "none"], Some(&trigger), None)?;
    let line = daemon.wait_for_log(&format!("open-path {path}:"), TIMEOUT);
    if !line.contains("opened") {
        return fail(format!(
            "--seccomp none: the O_PATH open failed, so the check above proves nothing: {line}"
        ));
    }
    Ok(())
}

/// Declares the sandbox tests of a daemon crate's `tests/sandbox.rs` against `$subject` (a
/// [`Subject`]): confined in every thread while serving (as the test's user, and as
/// user 65534 when root); each forbidden call kills with SIGSYS under the default `kill` and
/// under `trap`, and goes through under `log` (audited in dmesg: root); Landlock refuses
/// opens, signals and TCP; a refused open is not fatal. The checks that need the test
/// trigger are skipped, with a line, for a chosen binary built without it.
#[macro_export]
macro_rules! sandbox_tests {
    ($subject:expr) => {
        /// The unprivileged user of the quick start (nobody).
        const NOBODY: u32 = 65534;

        #[test]
        fn confined_while_serving() {
            $crate::confinement::passed($crate::confinement::check_confined_while_serving(
                &$subject, None,
            ));
        }

        #[test]
        fn confined_while_serving_as_an_unprivileged_user() {
            if !$crate::confinement::root_or_skip(
                "confined_while_serving_as_an_unprivileged_user",
                "it starts the daemon as user 65534 with setuid/setgid",
            ) {
                return;
            }
            $crate::confinement::passed($crate::confinement::check_confined_while_serving(
                &$subject,
                Some(NOBODY),
            ));
        }

        #[test]
        fn forbidden_call_kills_with_sigsys() {
            if $crate::confinement::trigger_or_skip(&$subject, "forbidden_call_kills_with_sigsys") {
                $crate::confinement::passed($crate::confinement::check_forbidden_call_kills(
                    &$subject,
                    &[],
                ));
            }
        }

        #[test]
        fn forbidden_call_under_trap_raises_sigsys() {
            if $crate::confinement::trigger_or_skip(
                &$subject,
                "forbidden_call_under_trap_raises_sigsys",
            ) {
                $crate::confinement::passed($crate::confinement::check_forbidden_call_kills(
                    &$subject,
                    &["--seccomp", "trap"],
                ));
            }
        }

        #[test]
        fn log_mode_lets_the_call_through() {
            if $crate::confinement::trigger_or_skip(&$subject, "log_mode_lets_the_call_through") {
                $crate::confinement::passed(
                    $crate::confinement::check_log_mode_lets_it_through(&$subject, false),
                );
            }
        }

        #[test]
        fn log_mode_calls_are_audited_in_dmesg() {
            if !$crate::confinement::root_or_skip(
                "log_mode_calls_are_audited_in_dmesg",
                "reads the kernel's audit records with dmesg, which kernel.dmesg_restrict keeps from other users",
            ) {
                return;
            }
            if $crate::confinement::trigger_or_skip(&$subject, "log_mode_calls_are_audited_in_dmesg") {
                $crate::confinement::passed(
                    $crate::confinement::check_log_mode_lets_it_through(&$subject, true),
                );
            }
        }

        #[test]
        fn landlock_refuses_new_opens_and_sandbox_none_does_not() {
            if $crate::confinement::trigger_or_skip(
                &$subject,
                "landlock_refuses_new_opens_and_sandbox_none_does_not",
            ) {
                $crate::confinement::passed($crate::confinement::check_landlock_refuses_opens(
                    &$subject,
                ));
            }
        }

        #[test]
        fn file_opens_refused_with_eacces_not_fatal() {
            if $crate::confinement::trigger_or_skip(&$subject, "file_opens_refused_with_eacces_not_fatal") {
                $crate::confinement::passed($crate::confinement::check_opens_refused_not_fatal(
                    &$subject,
                ));
            }
        }

        #[test]
        fn landlock_refuses_signals_and_tcp_and_sandbox_none_does_not() {
            if $crate::confinement::trigger_or_skip(
                &$subject,
                "landlock_refuses_signals_and_tcp_and_sandbox_none_does_not",
            ) {
                $crate::confinement::passed(
                    $crate::confinement::check_landlock_refuses_signals_and_tcp(&$subject),
                );
            }
        }
    };
}
