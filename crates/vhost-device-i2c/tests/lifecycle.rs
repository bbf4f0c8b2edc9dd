//! Process-level behaviour of the real binary: termination signals, `--print-capabilities`
//! and rejected command lines.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;

/// The daemon must exit within a second of SIGTERM/SIGINT. The measurement (from kill to
/// the reaped exit) gets a little slack for scheduling noise on a loaded 2-core machine.
const EXIT_LIMIT: Duration = Duration::from_millis(1500);
/// How long to wait at most before declaring a hang.
const EXIT_WAIT: Duration = Duration::from_secs(5);

#[test]
fn sigterm_with_a_connected_frontend_exits_0_and_removes_the_socket() {
    let mut d = Daemon::simulated();
    let mut fe = d.connect(0);
    still_serves(&mut fe);
    // Requests in flight at the signal must not hold up the exit.
    let q = fe.queue(0);
    q.post(&write(EEPROM, &[0x10], true), false).unwrap();
    q.kick().unwrap();
    let socket = d.socket(0);
    assert!(socket.exists());
    let (status, elapsed) = d.stop(libc::SIGTERM, EXIT_WAIT);
    assert!(status.success(), "exit status {status}; log:\n{}", d.log());
    assert!(
        elapsed < EXIT_LIMIT,
        "exit took {elapsed:?} after SIGTERM; log:\n{}",
        d.log()
    );
    assert!(!socket.exists(), "socket {} left behind", socket.display());
    drop(fe);
}

#[test]
fn sigint_when_idle_exits_0_and_removes_every_socket() {
    let mut d = Daemon::start(&["-c", "3"], 3);
    let (status, elapsed) = d.stop(libc::SIGINT, EXIT_WAIT);
    assert!(status.success(), "exit status {status}; log:\n{}", d.log());
    assert!(
        elapsed < EXIT_LIMIT,
        "exit took {elapsed:?} after SIGINT; log:\n{}",
        d.log()
    );
    for i in 0..3 {
        assert!(!d.socket(i).exists(), "socket {i} left behind");
    }
}

#[test]
fn sigterm_after_a_frontend_left_exits_0() {
    let mut d = Daemon::simulated();
    drop(d.connect(0));
    let (status, elapsed) = d.stop(libc::SIGTERM, EXIT_WAIT);
    assert!(status.success(), "exit status {status}");
    assert!(elapsed < EXIT_LIMIT, "exit took {elapsed:?}");
    assert!(!d.socket(0).exists());
}

#[test]
fn print_capabilities_prints_the_i2c_document_and_ignores_other_options() {
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
        let out = run_to_exit(args);
        assert!(out.status.success(), "{args:?}: {}", out.status);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let doc = stdout.trim();
        assert!(doc.starts_with('{') && doc.ends_with('}'), "{doc}");
        assert!(doc.contains("\"type\": \"i2c\""), "{doc}");
        assert!(doc.contains("\"features\": []"), "{doc}");
        assert!(out.stderr.is_empty(), "{args:?}: stderr {:?}", out.stderr);
    }
}

/// Runs the daemon with a bad command line; checks the exit status, the one-line error
/// naming the problem, and that no socket was created.
fn rejected(extra: &[&str], mentions: &[&str]) {
    let dir = temp_dir();
    let base = dir.as_path().join("i2c.sock");
    let mut args = vec!["-s", base.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_to_exit(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{extra:?} accepted");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{extra:?}: expected one line, got:\n{stderr}"
    );
    for m in mentions {
        assert!(
            lines[0].contains(m),
            "{extra:?}: {:?} does not mention {m:?}",
            lines[0]
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.as_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{extra:?} left {left:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn duplicate_address_is_rejected() {
    rejected(
        &["--simulate", "24c02@0x50", "--simulate", "ds1338@0x50"],
        &["0x50", "more than once"],
    );
    // The same address in decimal and hex, across --device-list and --simulate.
    rejected(
        &["--simulate", "24c02@80", "-l", "99:0x50"],
        &["0x50", "more than once"],
    );
}

#[test]
fn address_out_of_range_is_rejected() {
    rejected(&["--simulate", "24c02@0x78"], &["0x78"]);
    rejected(&["--simulate", "24c02@0x02"], &["0x02"]);
    rejected(&["-l", "99:0x78"], &["0x78"]);
}

#[test]
fn unknown_model_is_rejected() {
    rejected(&["--simulate", "24c99@0x50"], &["24c99"]);
    rejected(&["--simulate", "24c02"], &["24c02"]);
}

#[test]
fn missing_adapter_is_rejected_before_binding() {
    rejected(&["-l", "99:0x50"], &["i2c-99"]);
    // Also when simulated devices come with it.
    rejected(&["-l", "99:0x50", "--simulate", "ds1338@0x68"], &["i2c-99"]);
    rejected(
        &["-l", "no such adapter name:0x50"],
        &["no such adapter name"],
    );
}

#[test]
fn no_device_is_rejected() {
    rejected(&[], &["device"]);
}

/// systemd-style socket activation: the daemon serves a listening socket it inherited,
/// keeps serving it across frontends, and leaves the socket file (not its own) alone at exit.
#[test]
fn inherited_listening_socket_is_served_with_fd() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    use std::process::{Command, Stdio};
    use vhost_user_test_frontend::{FrontendOptions, TestFrontend};

    let dir = temp_dir();
    let path = dir.as_path().join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on a descriptor we own so the child inherits it.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let mut child = Command::new(binary())
        .args(["--fd", &fd.to_string(), "--simulate", "24c02@0x50"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(listener);
    for _ in 0..2 {
        let mut fe = TestFrontend::connect(
            &path,
            FrontendOptions {
                num_queues: 1,
                ..Default::default()
            },
        )
        .unwrap();
        still_serves(&mut fe);
        fe.disconnect();
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + EXIT_WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "{status}");
    assert!(
        path.exists(),
        "an inherited socket is not the daemon's to remove"
    );
}

#[test]
fn fd_that_is_not_a_listening_socket_is_rejected() {
    let out = std::process::Command::new(binary())
        .args(["--fd", "0", "--simulate", "24c02@0x50"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fd 0"), "{err}");
}
