//! Shared helpers of the integration tests: start the real `vhost-device-i2c` binary on a
//! private socket directory, connect test frontends to it, build virtio-i2c requests, and
//! stop the daemon with a signal.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use vhost_user_test_frontend::{Completion, Desc, FrontendOptions, TestFrontend};
use virtio_i2c_core::request::encode_header;
use virtio_i2c_core::{VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK};
use vmm_sys_util::tempdir::TempDir;

/// Upper bound of every wait on the daemon: a hang fails the test instead of blocking it.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Startup may be slow on a loaded machine (the binary is large and unoptimised).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The simulated EEPROM.
pub const EEPROM: u8 = 0x50;
/// The simulated RTC.
pub const RTC: u8 = 0x68;
/// An address with no device.
pub const ABSENT: u8 = 0x51;

pub const OK: u8 = VIRTIO_I2C_MSG_OK;
pub const ERR: u8 = VIRTIO_I2C_MSG_ERR;

/// The path of the daemon binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vhost-device-i2c")
}

/// A fresh private directory for sockets and logs.
pub fn temp_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/vhost-device-i2c-test-").expect("create temp dir")
}

/// A running daemon, killed (SIGKILL) when dropped unless it was stopped already.
pub struct Daemon {
    child: Option<Child>,
    /// `-s` argument; the daemon listens on `base0`, `base1`, ...
    base: PathBuf,
    log: PathBuf,
    count: usize,
    // Last: removed after the child is gone.
    dir: TempDir,
}

impl Daemon {
    /// Starts the daemon with the two simulated devices (24c02 at 0x50, ds1338 at 0x68)
    /// plus `extra` arguments, and waits until all `count` sockets exist.
    pub fn start(extra: &[&str], count: usize) -> Daemon {
        let dir = temp_dir();
        let base = dir.as_path().join("i2c.sock");
        let log = dir.as_path().join("daemon.log");
        let log_file = File::create(&log).expect("create log file");
        let child = Command::new(binary())
            .arg("-s")
            .arg(&base)
            .args(["--simulate", "24c02@0x50", "--simulate", "ds1338@0x68"])
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn vhost-device-i2c");
        let mut d = Daemon {
            child: Some(child),
            base,
            log,
            count,
            dir,
        };
        d.wait_for_sockets();
        d
    }

    /// Starts the daemon with the default options (one socket).
    pub fn simulated() -> Daemon {
        Daemon::start(&[], 1)
    }

    fn wait_for_sockets(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if (0..self.count).all(|i| self.socket(i).exists()) {
                return;
            }
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                panic!(
                    "daemon exited during startup with {status}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sockets did not appear within {STARTUP_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("daemon already stopped")
    }

    /// The path of socket `index`.
    pub fn socket(&self, index: usize) -> PathBuf {
        socket_path(&self.base, index)
    }

    /// The directory holding the sockets.
    pub fn dir(&self) -> &Path {
        self.dir.as_path()
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connects a frontend with one queue of the default size to socket `index`.
    pub fn connect(&self, index: usize) -> TestFrontend {
        self.connect_with(
            index,
            FrontendOptions {
                num_queues: 1,
                ..Default::default()
            },
        )
    }

    /// Connects a frontend with `opts` to socket `index`.
    pub fn connect_with(&self, index: usize, opts: FrontendOptions) -> TestFrontend {
        TestFrontend::connect(&self.socket(index), opts)
            .unwrap_or_else(|e| panic!("connect: {e:?}; log:\n{}", self.log()))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child_mut().try_wait().expect("try_wait").is_none()
    }

    /// Sends `signal` and waits up to `timeout` for the process to exit. Returns the exit
    /// status and the time from the signal to the exit; panics on a timeout (the process
    /// is then killed by `Drop`).
    pub fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> (ExitStatus, Duration) {
        let pid = libc::pid_t::try_from(self.child_mut().id()).expect("pid fits pid_t");
        let sent = Instant::now();
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child,
        // not yet reaped (so the pid cannot have been reused).
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = sent + timeout;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                let elapsed = sent.elapsed();
                self.child = None;
                return (status, elapsed);
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running {timeout:?} after signal {signal}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ---\n{}--- end of daemon log ---",
                self.log()
            );
        }
    }
}

/// `base` with the socket index appended, as the daemon names its sockets.
pub fn socket_path(base: &Path, index: usize) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(index.to_string());
    PathBuf::from(s)
}

/// Runs the binary with `args` to completion (for options that make it exit), with a
/// timeout: a daemon that starts serving instead of exiting fails the test.
pub fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vhost-device-i2c");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{args:?} did not exit within {TIMEOUT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The outputs are small: they fit the pipe buffers, so nothing was lost by waiting.
    child.wait_with_output().expect("collect output")
}

/// A write request: header, data, status.
pub fn write(addr: u8, data: &[u8], fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, false, fail_next).to_vec()),
        Desc::Out(data.to_vec()),
        Desc::In(1),
    ]
}

/// A read request of `len` bytes: header, buffer, status.
pub fn read(addr: u8, len: u32, fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, true, fail_next).to_vec()),
        Desc::In(len),
        Desc::In(1),
    ]
}

/// A zero-length request (SMBus quick): header and status only.
pub fn quick(addr: u8, read: bool, fail_next: bool) -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(addr, read, fail_next).to_vec()),
        Desc::In(1),
    ]
}

/// The status byte of a completed request (the last writable buffer's last byte).
pub fn status(c: &Completion) -> u8 {
    *c.written
        .last()
        .and_then(|b| b.last())
        .expect("completion has a status byte")
}

/// The data a read request received (its first writable buffer, for [`read`] chains).
pub fn data(c: &Completion) -> &[u8] {
    &c.written[0]
}

/// Posts every chain of `requests` (one group or several), kicks once (as Linux does for
/// one transfer) and returns the completions in request order.
pub fn submit(fe: &mut TestFrontend, requests: &[Vec<Desc>], indirect: bool) -> Vec<Completion> {
    let q = fe.queue(0);
    // The whole batch becomes visible at once: a device that happens to be draining while
    // the chains are posted must not see (and run) a group cut in half.
    q.hold(true).expect("hold");
    let heads: Vec<u16> = requests
        .iter()
        .map(|r| q.post(r, indirect).expect("post"))
        .collect();
    q.hold(false).expect("publish");
    q.kick().expect("kick");
    heads
        .into_iter()
        .map(|h| q.wait_head(h, TIMEOUT).expect("completion"))
        .collect()
}

/// Runs one request and returns its completion.
pub fn one(fe: &mut TestFrontend, request: Vec<Desc>) -> Completion {
    fe.queue(0)
        .transact(&request, false, TIMEOUT)
        .expect("completion")
}

/// Reads `len` bytes of the device at `addr` from register/offset `reg`, as a write+read
/// group; asserts that both requests succeed.
pub fn read_reg(fe: &mut TestFrontend, addr: u8, reg: u8, len: u32) -> Vec<u8> {
    let done = submit(
        fe,
        &[write(addr, &[reg], true), read(addr, len, false)],
        false,
    );
    assert_eq!(status(&done[0]), OK, "register write: {done:?}");
    assert_eq!(done[0].used_len, 1);
    assert_eq!(status(&done[1]), OK, "read: {done:?}");
    assert_eq!(done[1].used_len, 1 + len);
    data(&done[1]).to_vec()
}

/// Writes `bytes` at register/offset `reg` of the device at `addr`; asserts success.
pub fn write_reg(fe: &mut TestFrontend, addr: u8, reg: u8, bytes: &[u8]) {
    let mut payload = vec![reg];
    payload.extend_from_slice(bytes);
    let done = one(fe, write(addr, &payload, false));
    assert_eq!((status(&done), done.used_len), (OK, 1), "write: {done:?}");
}

/// A good request that must succeed: proves the queue still serves.
pub fn still_serves(fe: &mut TestFrontend) {
    let done = one(fe, quick(EEPROM, false, false));
    assert_eq!(
        (status(&done), done.used_len),
        (OK, 1),
        "follow-up request: {done:?}"
    );
    assert_eq!(read_reg(fe, EEPROM, 0xf8, 1).len(), 1);
}
