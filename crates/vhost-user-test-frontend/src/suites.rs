//! The integration tests both daemons share, written once: a daemon crate names its
//! [`Subject`] (binary, simulated device, queues, probe) and expands a suite with a macro;
//! its own test files keep only what is particular to its device.
//!
//! - [`lifecycle_tests!`]: termination signals (SIGINT idle on three sockets, SIGTERM after
//!   a frontend left, SIGHUP with a frontend connected), `--print-capabilities` whatever
//!   else is on the command line, `--fd` socket activation and a `--fd` that is no socket,
//!   `--trace` whatever `RUST_LOG` says, a connection set-up failure (at the open-files
//!   limit) logged once per run of failures.
//! - [`smoke_tests!`]: `--print-capabilities` against the QEMU capability file (the test
//!   packaging and the arm64 run point at an installed or cross-built binary).
//! - [`busy_guests_tests!`]: eight busy guests at once under the default sandbox.

// Test tooling: a failed check fails the calling test loudly.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

pub use crate::binary::Subject;
use crate::binary::json_string_field;
use crate::load::{self, Kind, LoadPlan};

/// Upper bound of the waits of these tests; a command line that makes the daemon exit is
/// given as long (an emulated binary starts slowly).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Prints which binary is tested (the arm64 and packaging runs look for this line).
pub fn announce(subject: &Subject) {
    eprintln!("testing {}", subject.binary().describe());
}

/// SIGINT to an idle daemon with three sockets: exit 0 at once, every socket removed.
pub fn sigint_when_idle(subject: &Subject) {
    let mut d = subject.launch_sockets(3).start();
    d.stop_at_once(libc::SIGINT);
}

/// SIGTERM after a frontend came and went: exit 0 at once, the socket removed.
pub fn sigterm_after_a_frontend_left(subject: &Subject) {
    let mut d = subject.start();
    drop(d.connect(0));
    d.stop_at_once(libc::SIGTERM);
}

/// SIGHUP is not "reload": it is blocked and waited for like SIGTERM, so a daemon whose
/// terminal goes away exits cleanly (status 0, sockets removed) instead of being killed by
/// the default action with its socket files left behind.
pub fn sighup_with_a_connected_frontend(subject: &Subject) {
    let mut d = subject.launch_sockets(2).start();
    let mut fe = d.connect(0);
    (subject.probe)(&mut fe);
    d.stop_at_once(libc::SIGHUP);
    let received = format!("signal {} received", libc::SIGHUP);
    assert!(d.log().contains(&received), "{}", d.log());
    drop(fe);
}

/// `--print-capabilities` prints the device's document on stdout and nothing on stderr,
/// and exits 0, whatever else is on the command line (bad options, a socket path that
/// cannot exist).
pub fn print_capabilities_ignores_other_options(subject: &Subject) {
    for args in [
        &["--print-capabilities"][..],
        &[
            "--bogus",
            "--print-capabilities",
            "-l",
            "nonsense",
            "-c",
            "0",
        ],
        &["-s", "/nonexistent/dir/x.sock", "--print-capabilities"],
    ] {
        let out = subject.run_to_exit(args, TIMEOUT);
        assert!(out.status.success(), "{args:?}: {}", out.status);
        let stdout = String::from_utf8(out.stdout).expect("the document is UTF-8");
        let doc = stdout.trim();
        assert!(doc.starts_with('{') && doc.ends_with('}'), "{doc}");
        let type_field = format!("\"type\": \"{}\"", subject.name);
        assert!(doc.contains(&type_field), "{doc}");
        assert!(doc.contains("\"features\": []"), "{doc}");
        assert!(out.stderr.is_empty(), "{args:?}: stderr {:?}", out.stderr);
    }
}

/// systemd-style socket activation: the daemon serves a listening socket it inherited as
/// `--fd 3`, keeps serving it across frontends (each gets a fresh device: the probe checks
/// it), and leaves the socket file (not its own) alone at exit.
pub fn inherited_listening_socket_is_served(subject: &Subject) {
    let mut d = subject.launch().socket_activation().start();
    for _ in 0..2 {
        let mut fe = d.connect(0);
        (subject.probe)(&mut fe);
        fe.disconnect();
    }
    d.wait_for_log("inherited listening socket fd 3", TIMEOUT);
    d.stop_at_once(libc::SIGTERM);
}

/// `--fd 0` (in [`crate::daemon::run_to_exit`] descriptor 0 is /dev/null: open, but not a
/// socket) is refused with exit status 1 and one line naming it. The same command line with
/// a listening socket serves: [`inherited_listening_socket_is_served`].
pub fn fd_that_is_not_a_listening_socket_is_rejected(subject: &Subject) {
    let mut args = vec!["--fd", "0"];
    args.extend_from_slice(subject.device_args);
    let out = subject.run_to_exit(&args, TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("--fd 0"), "{err}");
}

/// `--trace` lines are written whatever `RUST_LOG` says (the trace target is enabled on
/// its own): under `warn`, `off` and `error`, a probe with `--trace` leaves trace lines.
/// (That nothing is traced without `--trace` is each daemon's own `trace` test.)
pub fn trace_shown_whatever_rust_log_says(subject: &Subject) {
    for level in ["warn", "off", "error"] {
        let mut d = subject
            .launch()
            .args(&["--trace"])
            .rust_log(Some(level))
            .start();
        let mut fe = d.connect(0);
        (subject.probe)(&mut fe);
        let line = d.wait_for_log("vhost_device_trace", TIMEOUT);
        assert!(line.contains(" INFO "), "RUST_LOG={level}: {line}");
        fe.disconnect();
    }
}

/// Open-files hard limit of [`setup_failure_logged_once_per_run`]'s daemon.
const OPEN_FILES_HARD: u64 = 4096;

/// The error line of a connection set-up that failed, without its "; retrying".
fn failure_cause(line: &str) -> &str {
    let text = line.split_once("] ").map_or(line, |(_, t)| t);
    text.strip_suffix("; retrying").unwrap_or(text)
}

/// The first "; retrying" line of `d`'s log, or `None` if the daemon exits first; fails
/// the test if neither happens within [`TIMEOUT`].
fn first_failure_or_exit(d: &mut crate::daemon::Daemon) -> Option<String> {
    let deadline = std::time::Instant::now()
        .checked_add(TIMEOUT)
        .expect("a deadline");
    loop {
        if let Some(line) = d.log().lines().find(|l| l.ends_with("; retrying")) {
            return Some(line.to_owned());
        }
        if d.exited().is_some() {
            return None;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither a set-up failure nor an exit within {TIMEOUT:?}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lines of `log` that name `cause`, and those of them at error level.
fn count_cause(log: &str, cause: &str) -> (usize, usize) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(cause)).collect();
    let errors = lines.iter().filter(|l| l.contains(" ERROR ")).count();
    (lines.len(), errors)
}

/// A connection that cannot be set up (here at the open-files limit: the daemon started
/// under the smallest limit it starts under) is logged at error level once per run of
/// failures, however many attempts fail (the others at debug level), the socket keeps
/// listening, and once descriptors are available again (the limit raised from outside)
/// the daemon serves a frontend and says it serves again.
pub fn setup_failure_logged_once_per_run(subject: &Subject) {
    let (mut d, limit, first) = (4..=16)
        .find_map(|n| {
            let launch = subject.launch().open_files_limit(n, OPEN_FILES_HARD);
            let mut d = launch.try_start().ok()?;
            // It may still die after binding its socket (entering the sandbox needs a
            // descriptor too): the first limit it serves under is the one.
            let line = first_failure_or_exit(&mut d)?;
            Some((d, n, line))
        })
        .unwrap_or_else(|| panic!("the daemon served under no open-files limit up to 16"));
    let cause = failure_cause(&first).to_owned();
    // Three failed attempts in this run (50 + 100 ms apart), all logged, one as an error.
    let deadline = std::time::Instant::now()
        .checked_add(TIMEOUT)
        .expect("a deadline");
    while count_cause(&d.log(), &cause).0 < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "limit {limit}: no third attempt within {TIMEOUT:?}; log:\n{}",
            d.log()
        );
        d.assert_running();
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, errors) = count_cause(&d.log(), &cause);
    assert_eq!(
        errors,
        1,
        "limit {limit}: one error line per run; log:\n{}",
        d.log()
    );

    let raised = libc::rlimit {
        rlim_cur: OPEN_FILES_HARD,
        rlim_max: OPEN_FILES_HARD,
    };
    // SAFETY: prlimit(2) on our own child (running: checked above) reads `raised` and
    // writes nothing (no old-limit pointer).
    let rc = unsafe { libc::prlimit(d.pid(), libc::RLIMIT_NOFILE, &raised, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let mut fe = d.connect(0);
    (subject.probe)(&mut fe);
    fe.disconnect();
    d.wait_for_log("serving again", TIMEOUT);
    let (_, errors) = count_cause(&d.log(), &cause);
    assert_eq!(
        errors,
        1,
        "one error line for the whole run; log:\n{}",
        d.log()
    );
    d.assert_running();
}

/// The directory of the QEMU capability files (default: the repository's contrib/qemu).
pub const JSON_DIR_VAR: &str = "VHOST_DEVICE_QEMU_JSON_DIR";

/// The QEMU capability file of `subject`, `50-vhost-device-<name>.json`.
pub fn capability_file(subject: &Subject) -> PathBuf {
    let dir = match std::env::var_os(JSON_DIR_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contrib/qemu"),
    };
    dir.join(format!("50-vhost-device-{}.json", subject.name))
}

/// The binary under test answers `--print-capabilities` as its QEMU capability file says
/// (`type`), and the file names the installed binary (`/usr/bin/vhost-device-<name>`) and
/// has a description.
pub fn print_capabilities_matches_the_capability_file(subject: &Subject) {
    announce(subject);
    let out = subject.run_to_exit(&["--print-capabilities"], TIMEOUT);
    assert!(out.status.success(), "--print-capabilities: {out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        json_string_field(&printed, "type"),
        Some(subject.name),
        "{printed}"
    );
    let path = capability_file(subject);
    let file = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        json_string_field(&file, "type"),
        json_string_field(&printed, "type"),
        "{}: `type` differs from --print-capabilities",
        path.display()
    );
    let installed = format!("/usr/bin/vhost-device-{}", subject.name);
    assert_eq!(
        json_string_field(&file, "binary"),
        Some(installed.as_str()),
        "{}",
        path.display()
    );
    assert!(
        json_string_field(&file, "description").is_some_and(|d| !d.is_empty()),
        "{}: no description",
        path.display()
    );
}

/// Eight busy guests at once on one daemon (`-c 8`) under the default sandbox (see
/// [`load::assert_serves_busy_guests`]). Three busy guests used to kill the daemon with
/// SIGSYS: glibc's malloc read /sys/devices/system/cpu/online once the seccomp filter was
/// in place.
pub fn eight_busy_guests(subject: &Subject) {
    let kind = Kind::parse(subject.name)
        .unwrap_or_else(|| panic!("no load for a {} device", subject.name));
    let mut d = subject.launch_sockets(8).start();
    let report = load::assert_serves_busy_guests(
        &mut d,
        LoadPlan {
            kind,
            batch: 8,
            duration: Duration::from_secs(3),
            reconnect_every: 200,
        },
    );
    assert_eq!(report.guests.len(), 8);
}

/// Declares the lifecycle tests both daemons share (see [`crate::suites`]) against
/// `$subject`, a [`Subject`].
#[macro_export]
macro_rules! lifecycle_tests {
    ($subject:expr) => {
        #[test]
        fn sigint_when_idle_exits_0_at_once_and_removes_every_socket() {
            $crate::suites::sigint_when_idle(&$subject);
        }

        #[test]
        fn sigterm_after_a_frontend_left_exits_0_at_once() {
            $crate::suites::sigterm_after_a_frontend_left(&$subject);
        }

        #[test]
        fn sighup_with_a_connected_frontend_exits_0_at_once_and_removes_the_sockets() {
            $crate::suites::sighup_with_a_connected_frontend(&$subject);
        }

        #[test]
        fn print_capabilities_prints_the_document_and_ignores_other_options() {
            $crate::suites::print_capabilities_ignores_other_options(&$subject);
        }

        #[test]
        fn inherited_listening_socket_is_served_with_fd() {
            $crate::suites::inherited_listening_socket_is_served(&$subject);
        }

        #[test]
        fn fd_that_is_not_a_listening_socket_is_rejected() {
            $crate::suites::fd_that_is_not_a_listening_socket_is_rejected(&$subject);
        }

        #[test]
        fn trace_is_shown_whatever_rust_log_says() {
            $crate::suites::trace_shown_whatever_rust_log_says(&$subject);
        }

        #[test]
        fn a_connection_set_up_failure_is_logged_once_per_run() {
            $crate::suites::setup_failure_logged_once_per_run(&$subject);
        }
    };
}

/// Declares the smoke test both daemons share (the capability file) against `$subject`.
#[macro_export]
macro_rules! smoke_tests {
    ($subject:expr) => {
        #[test]
        fn print_capabilities_matches_the_qemu_capability_file() {
            $crate::suites::print_capabilities_matches_the_capability_file(&$subject);
        }
    };
}

/// Declares the busy-guests test both daemons share against `$subject`.
#[macro_export]
macro_rules! busy_guests_tests {
    ($subject:expr) => {
        #[test]
        fn eight_busy_guests_under_the_default_sandbox() {
            $crate::suites::eight_busy_guests(&$subject);
        }
    };
}
