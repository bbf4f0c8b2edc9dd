//! The daemon test harness both daemons' integration tests share: start a daemon binary on
//! a private socket directory with its log captured in a file, wait for its sockets,
//! connect frontends, signal it, and wait for its exit, every wait with a deadline.
//!
//! A harness failure is a failed test: every function here panics with a message that
//! names what was awaited and shows the daemon's log, instead of returning an error or
//! blocking for ever.
//!
//! ```no_run
//! use std::time::Duration;
//! use vhost_user_test_frontend::FrontendOptions;
//! use vhost_user_test_frontend::daemon::{Daemon, Launch};
//!
//! let mut d = Launch::new("target/debug/vhost-device-gpio").args(&["-l", "s8"]).start();
//! let fe = d.connect_with(0, FrontendOptions::default());
//! let exit = d.stop(libc::SIGTERM, Duration::from_secs(5));
//! assert!(exit.status.success());
//! # drop(fe);
//! ```

// Test tooling: a failed wait or an unusable environment fails the calling test loudly.
#![allow(clippy::panic, clippy::expect_used)]

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use vmm_sys_util::tempdir::TempDir;

use crate::{FrontendOptions, TestFrontend};

/// How long a daemon may take to create its sockets (an unoptimised binary on a loaded
/// machine starts slowly; a hang still fails the test).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How soon a daemon must exit after SIGTERM, SIGINT or SIGHUP (measured from the signal
/// to the reaped exit, with slack for a loaded 2-core machine).
pub const EXIT_LIMIT: Duration = Duration::from_secs(2);
/// How long [`Daemon::stop_at_once`] waits before declaring a hang.
pub const EXIT_WAIT: Duration = Duration::from_secs(10);
/// How often state (sockets, exit) is polled while waiting for it.
const POLL: Duration = Duration::from_millis(2);
/// The descriptor an inherited listening socket gets in the daemon, as systemd passes it.
pub const ACTIVATION_FD: RawFd = 3;

/// How a daemon is started: binary, arguments, log level, how it gets its sockets.
#[derive(Debug, Clone)]
pub struct Launch {
    binary: PathBuf,
    runner: Vec<String>,
    args: Vec<OsString>,
    sockets: usize,
    rust_log: Option<String>,
    activation: bool,
    frontend: FrontendOptions,
    env: Vec<(OsString, Option<OsString>)>,
    user: Option<u32>,
    current_dir: Option<PathBuf>,
    open_files: Option<(u64, u64)>,
}

/// Why [`Launch::try_start`] could not bring a daemon up.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Preparing the daemon's directory, log or socket failed.
    #[error("cannot prepare the daemon's run: {what}")]
    Setup {
        /// What was being prepared.
        what: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The process could not be spawned.
    #[error("cannot start {}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The spawn's error.
        #[source]
        source: io::Error,
    },
    /// The daemon exited before it served.
    #[error("{} exited during startup with {status}; log:\n{log}", binary.display())]
    Exited {
        /// The binary.
        binary: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// What it logged.
        log: String,
    },
    /// The daemon did not create its sockets in time.
    #[error("{} did not create its sockets {sockets:?} within {STARTUP_TIMEOUT:?}; log:\n{log}", binary.display())]
    NoSockets {
        /// The binary.
        binary: PathBuf,
        /// The sockets awaited.
        sockets: Vec<PathBuf>,
        /// What it logged.
        log: String,
    },
}

fn setup(what: impl Into<String>) -> impl FnOnce(io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Setup { what, source }
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    use std::fmt::Write as _;
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

impl Launch {
    /// `binary` with `-s DIR/sock` (sockets `DIR/sock0`, ...), one socket, `RUST_LOG=debug`.
    pub fn new(binary: impl AsRef<Path>) -> Self {
        Launch {
            binary: binary.as_ref().to_owned(),
            runner: Vec::new(),
            args: Vec::new(),
            sockets: 1,
            rust_log: Some("debug".to_owned()),
            activation: false,
            frontend: FrontendOptions::default(),
            env: Vec::new(),
            user: None,
            current_dir: None,
            open_files: None,
        }
    }

    /// Runs the binary through a command prefix, e.g. `qemu-aarch64-static -L
    /// /usr/aarch64-linux-gnu` for an arm64 daemon on an x86 host (see [`crate::binary`]).
    pub fn runner(mut self, prefix: &[String]) -> Self {
        self.runner = prefix.to_vec();
        self
    }

    /// The options [`Daemon::connect`] uses (the device's queue count, ...).
    pub fn frontend(mut self, opts: FrontendOptions) -> Self {
        self.frontend = opts;
        self
    }

    /// Adds command-line arguments (the harness adds the socket argument after them).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// How many sockets (`-c N`) the daemon is expected to create; pass `-c` in `args`.
    pub fn sockets(mut self, count: usize) -> Self {
        self.sockets = count;
        self
    }

    /// `RUST_LOG` for the daemon; `None` leaves it unset (the daemon's default level).
    pub fn rust_log(mut self, level: Option<&str>) -> Self {
        self.rust_log = level.map(str::to_owned);
        self
    }

    /// Socket activation: the harness binds `DIR/activated.sock` itself and passes the
    /// listening socket as descriptor 3 with `--fd 3`, as systemd does.
    pub fn socket_activation(mut self) -> Self {
        self.activation = true;
        self.sockets = 1;
        self
    }

    /// Sets the environment variable `key` for the daemon (`None`: removes it).
    pub fn env(mut self, key: &str, value: Option<&str>) -> Self {
        self.env
            .push((OsString::from(key), value.map(OsString::from)));
        self
    }

    /// Runs the daemon as user and group `uid` (the caller must be root). The binary is
    /// then a copy in the daemon's directory (made 0755 and root-owned, under /tmp) and its
    /// sockets are in a 0700 subdirectory of that user's: the run must not depend on the
    /// checkout's parents (a clone in a 0700 `mktemp -d`) being searchable by that user.
    /// std drops root's supplementary groups (setgroups(0)) along with the uid.
    pub fn user(mut self, uid: u32) -> Self {
        self.user = Some(uid);
        self
    }

    /// The daemon's working directory (default: the caller's).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts the daemon with `RLIMIT_NOFILE` set to `soft` and `hard` (to run it at the
    /// open-files limit).
    pub fn open_files_limit(mut self, soft: u64, hard: u64) -> Self {
        self.open_files = Some((soft, hard));
        self
    }

    /// The binary this launch runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Starts the daemon and waits (up to [`STARTUP_TIMEOUT`]) until it serves: until all
    /// its sockets exist, or with socket activation until it accepts a connection.
    /// Panics with the log if it exits first (see [`Launch::try_start`]).
    pub fn start(self) -> Daemon {
        self.try_start().unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    /// [`Launch::start`], returning what went wrong instead of panicking (for a harness
    /// that reports its own errors: the soak and benchmark programs, the sandbox checks).
    pub fn try_start(self) -> Result<Daemon, LaunchError> {
        let dir = TempDir::new_with_prefix("/tmp/vhost-device-test-")
            .map_err(|e| setup("create a temp dir")(io::Error::from_raw_os_error(e.errno())))?;
        let (binary, socket_dir) = match self.user {
            Some(uid) => prepare_for_user(dir.as_path(), &self.binary, uid)?,
            None => (self.binary.clone(), dir.as_path().to_owned()),
        };
        let log = dir.as_path().join("daemon.log");
        let log_file = File::create(&log).map_err(setup("create the daemon's log file"))?;
        let stdout = log_file.try_clone().map_err(setup("clone the log file"))?;
        let mut cmd = command(&self.runner, &binary);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file);
        match &self.rust_log {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(cwd) = &self.current_dir {
            cmd.current_dir(cwd);
        }
        if let Some(uid) = self.user {
            cmd.uid(uid).gid(uid);
        }
        if let Some((soft, hard)) = self.open_files {
            set_open_files_limit(&mut cmd, soft, hard);
        }
        let (sockets, listener) = if self.activation {
            let path = socket_dir.join("activated.sock");
            let listener = std::os::unix::net::UnixListener::bind(&path)
                .map_err(setup("bind the activation socket"))?;
            pass_as_fd3(&mut cmd, &listener);
            cmd.arg("--fd").arg(ACTIVATION_FD.to_string());
            (vec![path], Some(listener))
        } else {
            let base = socket_dir.join("sock");
            cmd.arg("-s").arg(&base);
            ((0..self.sockets).map(|i| indexed(&base, i)).collect(), None)
        };
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            binary: binary.clone(),
            source,
        })?;
        // The daemon has its own copy of the listening socket now.
        drop(listener);
        let mut d = Daemon {
            child: Some(child),
            exit: None,
            binary: self.binary,
            log,
            sockets,
            activation: self.activation,
            frontend: self.frontend,
            dir,
        };
        d.wait_until_serving()?;
        Ok(d)
    }
}

/// Makes `dir` 0755, copies `binary` into it (0755) and creates `dir/run`, 0700 and owned by
/// `uid`; returns the copy and the socket directory.
fn prepare_for_user(
    dir: &Path,
    binary: &Path,
    uid: u32,
) -> Result<(PathBuf, PathBuf), LaunchError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(setup(format!("chmod {mode:o} {}", path.display())))
    };
    mode(dir, 0o755)?;
    let run = dir.join("run");
    std::fs::create_dir(&run).map_err(setup(format!("create {}", run.display())))?;
    mode(&run, 0o700)?;
    std::os::unix::fs::chown(&run, Some(uid), Some(uid))
        .map_err(setup(format!("chown {uid} {}", run.display())))?;
    let name = binary.file_name().ok_or_else(|| {
        setup(format!("{} has no file name", binary.display()))(io::ErrorKind::InvalidInput.into())
    })?;
    let copy = dir.join(name);
    std::fs::copy(binary, &copy).map_err(setup(format!(
        "copy {} to {}",
        binary.display(),
        copy.display()
    )))?;
    mode(&copy, 0o755)?;
    Ok((copy, run))
}

/// A command running `binary` through `runner` (a command prefix; empty: directly).
pub fn command(runner: &[String], binary: &Path) -> Command {
    match runner.split_first() {
        None => Command::new(binary),
        Some((program, prefix_args)) => {
            let mut cmd = Command::new(program);
            cmd.args(prefix_args).arg(binary);
            cmd
        }
    }
}

/// Sets the child's `RLIMIT_NOFILE` before it runs the daemon.
fn set_open_files_limit(cmd: &mut Command, soft: u64, hard: u64) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: the closure runs in the forked child before exec and calls only setrlimit(2),
    // which is async-signal-safe, on a value it owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes `listener` descriptor [`ACTIVATION_FD`] of the child, without `FD_CLOEXEC`.
fn pass_as_fd3(cmd: &mut Command, listener: &std::os::unix::net::UnixListener) {
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and calls only dup2(2) and
    // fcntl(2), which are async-signal-safe; `fd` is open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if fd == ACTIVATION_FD {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, ACTIVATION_FD) != ACTIVATION_FD {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The instant `timeout` from now.
fn deadline_after(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .expect("a test timeout fits an Instant")
}

/// `base` with `index` appended, as the daemons name their sockets.
pub fn indexed(base: &Path, index: usize) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(index.to_string());
    PathBuf::from(s)
}

/// How a daemon ended after a signal.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Its exit status.
    pub status: ExitStatus,
    /// From the signal to the reaped exit (an upper bound of the daemon's own reaction).
    pub elapsed: Duration,
}

/// A running daemon; killed (SIGKILL) when dropped if it still runs. When dropped during a
/// panic it prints its log, so a failed test shows what the daemon said.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    binary: PathBuf,
    log: PathBuf,
    sockets: Vec<PathBuf>,
    activation: bool,
    frontend: FrontendOptions,
    // Last: removed after the child is gone.
    dir: TempDir,
}

impl Daemon {
    fn wait_until_serving(&mut self) -> Result<(), LaunchError> {
        let deadline = deadline_after(STARTUP_TIMEOUT);
        loop {
            if let Some(status) = self.poll_exit() {
                return Err(LaunchError::Exited {
                    binary: self.binary.clone(),
                    status,
                    log: self.log(),
                });
            }
            let ready = if self.activation {
                // The socket exists from the start; serving shows in the log only, so the
                // first connection (which retries) is the readiness check.
                true
            } else {
                self.sockets.iter().all(|s| s.exists())
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NoSockets {
                    binary: self.binary.clone(),
                    sockets: self.sockets.clone(),
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> libc::pid_t {
        let child = self.child.as_ref().expect("the daemon was already reaped");
        libc::pid_t::try_from(child.id()).expect("pid fits pid_t")
    }

    /// The path of socket `index`.
    pub fn socket(&self, index: usize) -> &Path {
        self.sockets
            .get(index)
            .unwrap_or_else(|| panic!("no socket {index}: {:?}", self.sockets))
    }

    /// The paths of all its sockets, in index order.
    pub fn sockets(&self) -> &[PathBuf] {
        &self.sockets
    }

    /// The private directory holding the sockets and the log.
    pub fn dir(&self) -> &Path {
        self.dir.as_path()
    }

    /// What the daemon wrote to stderr and stdout so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(log {} unreadable: {e})", self.log.display()))
    }

    /// The lines of [`Daemon::log`].
    pub fn log_lines(&self) -> Vec<String> {
        self.log().lines().map(str::to_owned).collect()
    }

    /// Connects a frontend with the launch's [`Launch::frontend`] options to socket `index`;
    /// panics with the log on failure.
    pub fn connect(&self, index: usize) -> TestFrontend {
        self.connect_with(index, self.frontend.clone())
    }

    /// The frontend options [`Daemon::connect`] uses.
    pub fn frontend_options(&self) -> FrontendOptions {
        self.frontend.clone()
    }

    /// Connects a frontend with `opts` to socket `index`; panics with the log on failure.
    pub fn connect_with(&self, index: usize, opts: FrontendOptions) -> TestFrontend {
        TestFrontend::connect(self.socket(index), opts).unwrap_or_else(|e| {
            panic!(
                "connect to {}: {e:?}; log:\n{}",
                self.socket(index).display(),
                self.log()
            )
        })
    }

    /// Whether the process still runs (a reaped exit is remembered).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// Panics with the exit status and log if the daemon is not running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.poll_exit() {
            panic!(
                "{} exited unexpectedly with {status}; log:\n{}",
                self.binary.display(),
                self.log()
            );
        }
    }

    /// How the process ended, if it has (reaped and remembered).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.poll_exit()
    }

    /// The file holding the daemon's stderr and stdout.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let child = self.child.as_mut().expect("child present until reaped");
            if let Some(status) = child.try_wait().expect("try_wait on the daemon") {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Sends `signal` with kill(2). Panics if the daemon was already reaped.
    pub fn signal(&mut self, signal: libc::c_int) {
        if let Some(status) = self.poll_exit() {
            panic!(
                "cannot send signal {signal}: the daemon already exited with {status}; log:\n{}",
                self.log()
            );
        }
        let pid = self.pid();
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child and
        // not yet reaped (checked just above), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the daemon to exit and returns its status; on a timeout
    /// panics with the log (the daemon is then killed by `Drop`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = deadline_after(timeout);
        loop {
            if let Some(status) = self.poll_exit() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} still running after {timeout:?}; log:\n{}",
                    self.binary.display(),
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal`, then [`Daemon::wait_exit`] with `timeout`; returns the status and
    /// the time from the signal to the reaped exit.
    pub fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> Exit {
        self.signal(signal);
        let sent = Instant::now();
        let status = self.wait_exit(timeout);
        Exit {
            status,
            elapsed: sent.elapsed(),
        }
    }

    /// Sends `signal` and checks what a termination signal must do: exit with status 0
    /// within [`EXIT_LIMIT`], having removed every socket file it created (an inherited
    /// socket is not the daemon's to remove: it must still exist).
    pub fn stop_at_once(&mut self, signal: libc::c_int) -> Exit {
        let exit = self.stop(signal, EXIT_WAIT);
        assert!(
            exit.status.success(),
            "exit status {} after signal {signal}; log:\n{}",
            exit.status,
            self.log()
        );
        assert!(
            exit.elapsed < EXIT_LIMIT,
            "exit took {:?} after signal {signal} (limit {EXIT_LIMIT:?}); log:\n{}",
            exit.elapsed,
            self.log()
        );
        for s in &self.sockets {
            assert_eq!(
                s.exists(),
                self.activation,
                "socket {} after signal {signal} (inherited: {}); log:\n{}",
                s.display(),
                self.activation,
                self.log()
            );
        }
        exit
    }

    /// Waits up to `timeout` until a line of the log contains `needle`; returns that line.
    /// Panics with the log on a timeout or if the daemon exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = deadline_after(timeout);
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            if let Some(status) = self.poll_exit() {
                panic!(
                    "daemon exited with {status} before logging {needle:?}; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "no log line containing {needle:?} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.exit.is_none() {
                // SIGKILL of our own child; an error means it is already gone.
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}--- end of log ---",
                self.binary.display(),
                self.log()
            );
        }
    }
}

/// Runs `binary` with `args` for a command line expected to make it exit (bad options,
/// `--print-capabilities`), with `RUST_LOG` unset and stdin empty; returns its output.
/// If it still runs after `timeout` (it accepted the command line and serves), it is
/// killed and the test fails with what it printed.
pub fn run_to_exit(binary: impl AsRef<Path>, args: &[&str], timeout: Duration) -> Output {
    run_to_exit_via(&[], binary, args, timeout)
}

/// [`run_to_exit`] through `runner`, a command prefix (see [`Launch::runner`]).
pub fn run_to_exit_via(
    runner: &[String],
    binary: impl AsRef<Path>,
    args: &[&str],
    timeout: Duration,
) -> Output {
    let binary = binary.as_ref();
    let dir = TempDir::new_with_prefix("/tmp/vhost-device-run-").expect("create temp dir");
    let out_path = dir.as_path().join("stdout");
    let err_path = dir.as_path().join("stderr");
    // Files, not pipes: a process that writes much cannot block on a full pipe.
    let mut child = command(runner, binary)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let deadline = deadline_after(timeout);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // SIGKILL of our own child; then reap it.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                binary.display(),
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_text(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let e = std::panic::catch_unwind(f).expect_err("the harness should have failed");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn run_to_exit_returns_status_and_output() {
        let out = run_to_exit("/bin/sh", &["-c", "echo out; echo err >&2; exit 3"], {
            Duration::from_secs(5)
        });
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn run_to_exit_fails_a_process_that_keeps_running() {
        let started = Instant::now();
        let text = panic_text(|| {
            run_to_exit(
                "/bin/sh",
                &["-c", "echo serving >&2; exec sleep 30"],
                Duration::from_millis(300),
            );
        });
        assert!(text.contains("did not exit within 300ms"), "{text}");
        assert!(text.contains("serving"), "the output is shown: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the kill took long"
        );
    }

    #[test]
    fn startup_failure_shows_the_log() {
        let text = panic_text(|| {
            Launch::new("/bin/sh")
                .args(&["-c", "echo bad option >&2; exit 2"])
                .start();
        });
        assert!(text.contains("exited during startup"), "{text}");
        assert!(text.contains("bad option"), "{text}");
    }

    #[test]
    fn environment_directory_and_startup_errors_reach_the_caller() {
        // The stand-in logs its variables and directory, then creates its "socket".
        let script =
            "echo \"x=${X-unset} y=${Y-unset} dir=$(pwd)\" >&2; : > \"${2}0\"; exec sleep 30";
        let d = Launch::new("/bin/sh")
            .args(&["-c", script, "sh"])
            .env("X", Some("set"))
            .env("Y", Some("dropped"))
            .env("Y", None)
            .current_dir("/")
            .start();
        assert!(d.log().contains("x=set y=unset dir=/\n"), "{}", d.log());
        let err = Launch::new("/bin/sh")
            .args(&["-c", "echo no way >&2; exit 3"])
            .try_start()
            .expect_err("a daemon that exits at once did not start");
        assert!(matches!(err, LaunchError::Exited { .. }), "{err}");
        assert!(err.to_string().contains("no way"), "{err}");
        let err = Launch::new("/nonexistent/daemon")
            .try_start()
            .expect_err("no such binary");
        assert!(matches!(err, LaunchError::Spawn { .. }), "{err}");
    }

    #[test]
    fn waits_for_sockets_signals_and_reaps() {
        // A stand-in daemon: creates its "socket" (the -s argument plus index 0), logs, and
        // waits for SIGTERM (a trap) to exit 0.
        let script = "trap 'echo bye >&2; exit 0' TERM; : > \"${2}0\"; echo ready >&2; \
                      while :; do sleep 0.01; done";
        let mut d = Launch::new("/bin/sh").args(&["-c", script, "sh"]).start();
        assert!(d.socket(0).exists());
        d.wait_for_log("ready", Duration::from_secs(5));
        d.assert_running();
        let exit = d.stop(libc::SIGTERM, Duration::from_secs(5));
        assert!(exit.status.success(), "{:?}", exit.status);
        assert!(d.log().contains("bye"), "{}", d.log());
        assert!(!d.is_running());
    }

    #[test]
    fn wait_exit_fails_on_a_timeout_and_drop_kills() {
        let script = ": > \"${2}0\"; exec sleep 30";
        let mut d = Launch::new("/bin/sh").args(&["-c", script, "sh"]).start();
        let pid = d.pid();
        let text = panic_text(std::panic::AssertUnwindSafe(|| {
            d.wait_exit(Duration::from_millis(100));
        }));
        assert!(text.contains("still running after 100ms"), "{text}");
        drop(d);
        // SAFETY: signal 0 only checks whether the (reaped) pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the daemon survived Drop");
    }
}
