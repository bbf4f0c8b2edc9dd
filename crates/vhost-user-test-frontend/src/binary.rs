//! The daemon binary a test runs: the workspace build by default, or one named by an
//! environment variable (an installed package's `/usr/bin/...`, a cross-built binary run
//! under a user-mode emulator given in [`RUNNER_VAR`]).
//!
//! A variable that is set but unusable (empty, a missing file) is an error, never a silent
//! fallback to the workspace build: the test would then pass without testing what it was
//! asked to test.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A command prefix for the binary, split at whitespace, e.g.
/// `qemu-aarch64-static -L /usr/aarch64-linux-gnu` to run an arm64 daemon on an x86 host.
pub const RUNNER_VAR: &str = "VHOST_DEVICE_RUNNER";

/// Pause between checks while waiting for a socket or an exit.
const POLL: Duration = Duration::from_millis(10);

/// Why the binary under test cannot be chosen or run.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The variable is set to an empty string.
    #[error("{var} is set but empty")]
    Empty {
        /// The variable.
        var: String,
    },
    /// The variable is not valid UTF-8 (only [`RUNNER_VAR`] must be).
    #[error("{var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: String,
    },
    /// The binary named by the variable does not exist.
    #[error("{var}={} does not exist", path.display())]
    Missing {
        /// The variable.
        var: String,
        /// Its value.
        path: PathBuf,
    },
    /// The process could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program (the runner when there is one).
        program: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The daemon's log file could not be created.
    #[error("cannot create the log file {}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for or signalling the process failed.
    #[error("cannot wait for or signal the daemon")]
    Wait(#[source] io::Error),
    /// The daemon exited while it was expected to run.
    #[error("the daemon exited ({status}) before {what}; log:\n{log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// What was awaited.
        what: String,
        /// Its log so far.
        log: String,
    },
    /// The daemon was stopped or found exited before.
    #[error("the daemon has already exited")]
    Gone,
    /// A wait ran past its deadline.
    #[error("{what} did not happen within {timeout:?}; log:\n{log}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        timeout: Duration,
        /// The daemon's log so far.
        log: String,
    },
}

/// The program to run as the daemon, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonBinary {
    /// The daemon binary.
    pub program: PathBuf,
    /// Command prefix from [`RUNNER_VAR`] (empty: run the binary directly).
    pub runner: Vec<String>,
    /// Where `program` came from: the variable's name, or "the workspace build".
    pub origin: String,
}

impl DaemonBinary {
    /// The binary named by the variable `var` if it is set, else `workspace_build` (pass
    /// `env!("CARGO_BIN_EXE_<name>")`), run through [`RUNNER_VAR`]'s prefix if that is set.
    pub fn from_env(var: &str, workspace_build: &str) -> Result<Self, BinaryError> {
        Self::from_values(
            var,
            std::env::var_os(var),
            std::env::var_os(RUNNER_VAR),
            workspace_build,
        )
    }

    fn from_values(
        var: &str,
        program: Option<OsString>,
        runner: Option<OsString>,
        workspace_build: &str,
    ) -> Result<Self, BinaryError> {
        let (program, origin) = match program {
            None => (
                PathBuf::from(workspace_build),
                "the workspace build".to_owned(),
            ),
            Some(v) if v.is_empty() => {
                return Err(BinaryError::Empty {
                    var: var.to_owned(),
                });
            }
            Some(v) => {
                let path = PathBuf::from(v);
                if !path.exists() {
                    return Err(BinaryError::Missing {
                        var: var.to_owned(),
                        path,
                    });
                }
                (path, var.to_owned())
            }
        };
        let runner = match runner {
            None => Vec::new(),
            Some(r) => {
                let r = r
                    .into_string()
                    .map_err(|_unicode| BinaryError::NotUnicode {
                        var: RUNNER_VAR.to_owned(),
                    })?;
                let words: Vec<String> = r.split_whitespace().map(str::to_owned).collect();
                if words.is_empty() {
                    return Err(BinaryError::Empty {
                        var: RUNNER_VAR.to_owned(),
                    });
                }
                words
            }
        };
        Ok(Self {
            program,
            runner,
            origin,
        })
    }

    /// One line for the test log: which binary, from where, through which runner.
    pub fn describe(&self) -> String {
        let mut s = format!("{} (from {})", self.program.display(), self.origin);
        if !self.runner.is_empty() {
            s.push_str(&format!(" run by `{}`", self.runner.join(" ")));
        }
        s
    }

    /// A command that runs the binary (through the runner, if any) with no arguments yet.
    pub fn command(&self) -> Command {
        match self.runner.split_first() {
            None => Command::new(&self.program),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
        }
    }

    fn program_name(&self) -> String {
        self.runner
            .first()
            .cloned()
            .unwrap_or_else(|| self.program.display().to_string())
    }

    /// Runs the binary with `args` to completion and returns its stdout, failing if it runs
    /// longer than `timeout` (it is then killed) or exits non-zero.
    pub fn run_to_exit(&self, args: &[&str], timeout: Duration) -> Result<String, BinaryError> {
        let mut child = self
            .command()
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BinaryError::Spawn {
                program: self.program_name(),
                source,
            })?;
        let what = format!(
            "the exit of `{} {}`",
            self.program.display(),
            args.join(" ")
        );
        let deadline = Instant::now().checked_add(timeout);
        while child.try_wait().map_err(BinaryError::Wait)?.is_none() {
            if deadline.is_none_or(|d| Instant::now() >= d) {
                let _ = child.kill();
                let out = child.wait_with_output().map_err(BinaryError::Wait)?;
                return Err(BinaryError::Timeout {
                    what,
                    timeout,
                    log: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            std::thread::sleep(POLL);
        }
        // The outputs are small: they fit the pipe buffers, so nothing was lost by waiting.
        let out = child.wait_with_output().map_err(BinaryError::Wait)?;
        if !out.status.success() {
            return Err(BinaryError::Exited {
                status: out.status,
                what,
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the daemon with `args`, its stderr going to `log` (`RUST_LOG=info`).
    pub fn spawn<I, S>(&self, args: I, log: &Path) -> Result<DaemonProcess, BinaryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log_file = File::create(log).map_err(|source| BinaryError::Log {
            path: log.to_owned(),
            source,
        })?;
        let child = self
            .command()
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|source| BinaryError::Spawn {
                program: self.program_name(),
                source,
            })?;
        Ok(DaemonProcess {
            child: Some(child),
            log: log.to_owned(),
        })
    }
}

/// A daemon started by [`DaemonBinary::spawn`]; killed when dropped unless it exited.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl DaemonProcess {
    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails unless the daemon is still running (`what` names what was awaited).
    fn ensure_running(&mut self, what: &str) -> Result<&mut Child, BinaryError> {
        let Some(child) = self.child.as_mut() else {
            return Err(BinaryError::Gone);
        };
        let Some(status) = child.try_wait().map_err(BinaryError::Wait)? else {
            return self.child.as_mut().ok_or(BinaryError::Gone);
        };
        self.child = None;
        Err(BinaryError::Exited {
            status,
            what: what.to_owned(),
            log: self.log(),
        })
    }

    /// Waits until `socket` exists, failing if the daemon exits or `timeout` passes first.
    pub fn wait_for_socket(&mut self, socket: &Path, timeout: Duration) -> Result<(), BinaryError> {
        let what = format!("the socket {} appeared", socket.display());
        let deadline = Instant::now().checked_add(timeout);
        loop {
            self.ensure_running(&what)?;
            if socket.exists() {
                return Ok(());
            }
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return Err(BinaryError::Timeout {
                    what,
                    timeout,
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, BinaryError> {
        let child = self.ensure_running("SIGTERM was sent")?;
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|e| BinaryError::Wait(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, not
        // yet reaped (so the pid cannot have been reused).
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(BinaryError::Wait(io::Error::last_os_error()));
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let child = self.child.as_mut().ok_or(BinaryError::Gone)?;
            if let Some(status) = child.try_wait().map_err(BinaryError::Wait)? {
                self.child = None;
                return Ok(status);
            }
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return Err(BinaryError::Timeout {
                    what: "the exit after SIGTERM".to_owned(),
                    timeout,
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The string value of `"key"` in a flat JSON object such as a QEMU vhost-user capability
/// file or `--print-capabilities` output. `None` if the key is absent, its value is not a
/// string, or the string has escapes (none of these documents use them).
pub fn json_string_field<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let after_key = doc.split_once(quoted.as_str())?.1;
    let value = after_key.trim_start().strip_prefix(':')?.trim_start();
    let (s, _rest) = value.strip_prefix('"')?.split_once('"')?;
    (!s.contains('\\')).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variable_means_the_workspace_build() {
        let b = DaemonBinary::from_values("X_BIN", None, None, "/ws/daemon").unwrap();
        assert_eq!(b.program, PathBuf::from("/ws/daemon"));
        assert!(b.runner.is_empty());
        assert!(b.describe().contains("the workspace build"));
    }

    #[test]
    fn a_set_variable_must_name_an_existing_file() {
        let err = DaemonBinary::from_values("X_BIN", Some("".into()), None, "/ws/d").unwrap_err();
        assert!(matches!(err, BinaryError::Empty { .. }), "{err}");
        let missing = Some("/nonexistent/vhost-device-x".into());
        let err = DaemonBinary::from_values("X_BIN", missing, None, "/ws/d").unwrap_err();
        assert!(matches!(err, BinaryError::Missing { .. }), "{err}");
        let ok = DaemonBinary::from_values("X_BIN", Some("/bin/sh".into()), None, "/ws/d");
        assert_eq!(ok.unwrap().origin, "X_BIN");
    }

    #[test]
    fn runner_prefixes_the_command() {
        let runner = Some("qemu-aarch64-static  -L /usr/aarch64-linux-gnu".into());
        let b = DaemonBinary::from_values("X_BIN", None, runner, "/ws/d").unwrap();
        let c = b.command();
        assert_eq!(c.get_program(), "qemu-aarch64-static");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["-L", "/usr/aarch64-linux-gnu", "/ws/d"]);
        let err = DaemonBinary::from_values("X_BIN", None, Some(" ".into()), "/ws/d").unwrap_err();
        assert!(matches!(err, BinaryError::Empty { .. }), "{err}");
    }

    #[test]
    fn json_fields() {
        let doc = "{\n  \"type\": \"i2c\",\n  \"features\": []\n}\n";
        assert_eq!(json_string_field(doc, "type"), Some("i2c"));
        assert_eq!(json_string_field(doc, "features"), None);
        assert_eq!(json_string_field(doc, "binary"), None);
        assert_eq!(json_string_field("{\"a\" : \"x\\\"y\"}", "a"), None);
        assert_eq!(json_string_field("{\"a\":\"b\"}", "a"), Some("b"));
    }
}
