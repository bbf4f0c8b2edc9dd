//! The daemon binary a test runs: the workspace build by default, or one named by an
//! environment variable (an installed package's `/usr/bin/...`, a cross-built binary run
//! under a user-mode emulator given in [`RUNNER_VAR`]). The daemon harness
//! ([`crate::daemon`]) starts it.
//!
//! A variable that is set but unusable (empty, a missing file) is an error, never a silent
//! fallback to the workspace build: the test would then pass without testing what it was
//! asked to test.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::daemon::{Launch, run_to_exit_via};

/// A command prefix for the binary, split at whitespace, e.g.
/// `qemu-aarch64-static -L /usr/aarch64-linux-gnu` to run an arm64 daemon on an x86 host.
pub const RUNNER_VAR: &str = "VHOST_DEVICE_RUNNER";
/// Extra daemon arguments, split at whitespace, added to every [`DaemonBinary::launch`]:
/// `--seccomp none` under qemu-user, which does not implement seccomp(2) for its guest.
pub const EXTRA_ARGS_VAR: &str = "VHOST_DEVICE_EXTRA_ARGS";

/// [`DaemonBinary::origin`] of the workspace build.
const WORKSPACE_BUILD: &str = "the workspace build";

/// Why the binary under test cannot be chosen.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The variable is set to an empty string.
    #[error("{var} is set but empty")]
    Empty {
        /// The variable.
        var: String,
    },
    /// [`RUNNER_VAR`] or [`EXTRA_ARGS_VAR`] is not valid UTF-8.
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
}

/// The program to run as the daemon, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonBinary {
    /// The daemon binary.
    pub program: PathBuf,
    /// Command prefix from [`RUNNER_VAR`] (empty: run the binary directly).
    pub runner: Vec<String>,
    /// Arguments from [`EXTRA_ARGS_VAR`], given to every launched daemon.
    pub extra_args: Vec<String>,
    /// Where `program` came from: the variable's name, or "the workspace build".
    pub origin: String,
}

impl DaemonBinary {
    /// Whether this is the workspace build (not a binary named by a variable).
    pub fn is_workspace_build(&self) -> bool {
        self.origin == WORKSPACE_BUILD
    }

    /// `program` (named by `origin`, e.g. a command-line option) through [`RUNNER_VAR`]'s
    /// prefix if that is set, with [`EXTRA_ARGS_VAR`]'s arguments.
    pub fn given(program: PathBuf, origin: &str) -> Result<Self, BinaryError> {
        Ok(Self {
            program,
            runner: words(RUNNER_VAR, std::env::var_os(RUNNER_VAR))?,
            extra_args: words(EXTRA_ARGS_VAR, std::env::var_os(EXTRA_ARGS_VAR))?,
            origin: origin.to_owned(),
        })
    }

    /// The binary named by the variable `var` if it is set, else `workspace_build` (pass
    /// `env!("CARGO_BIN_EXE_<name>")`), run through [`RUNNER_VAR`]'s prefix if that is set,
    /// with [`EXTRA_ARGS_VAR`]'s arguments.
    pub fn from_env(var: &str, workspace_build: &str) -> Result<Self, BinaryError> {
        let mut bin = Self::from_values(
            var,
            std::env::var_os(var),
            std::env::var_os(RUNNER_VAR),
            workspace_build,
        )?;
        bin.extra_args = words(EXTRA_ARGS_VAR, std::env::var_os(EXTRA_ARGS_VAR))?;
        Ok(bin)
    }

    fn from_values(
        var: &str,
        program: Option<OsString>,
        runner: Option<OsString>,
        workspace_build: &str,
    ) -> Result<Self, BinaryError> {
        let (program, origin) = match program {
            None => (PathBuf::from(workspace_build), WORKSPACE_BUILD.to_owned()),
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
        Ok(Self {
            program,
            runner: words(RUNNER_VAR, runner)?,
            extra_args: Vec::new(),
            origin,
        })
    }

    /// One line for the test log: which binary, from where, through which runner, with
    /// which extra arguments.
    pub fn describe(&self) -> String {
        let mut s = format!("{} (from {})", self.program.display(), self.origin);
        if !self.runner.is_empty() {
            s.push_str(" run by `");
            s.push_str(&self.runner.join(" "));
            s.push('`');
        }
        if !self.extra_args.is_empty() {
            s.push_str(" with `");
            s.push_str(&self.extra_args.join(" "));
            s.push('`');
        }
        s
    }

    /// The harness's launcher for this binary (through the runner, if any, with the extra
    /// arguments).
    pub fn launch(&self) -> Launch {
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        Launch::new(&self.program).runner(&self.runner).args(&extra)
    }

    /// [`crate::daemon::run_to_exit`] for this binary (through the runner, if any).
    pub fn run_to_exit(&self, args: &[&str], timeout: Duration) -> Output {
        run_to_exit_via(&self.runner, &self.program, args, timeout)
    }
}

/// A daemon as the shared suites see it: which binary (the variable that may name another
/// build, and the workspace build), the arguments that give it a simulated device, and its
/// queues. Every launch of a shared suite goes through [`Subject::launch`], so every suite
/// runs the chosen binary through the chosen runner.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// Short name for messages (`i2c`, `gpio`); also the `type` of its capability document.
    pub name: &'static str,
    /// The variable naming another build (e.g. `VHOST_DEVICE_I2C_BIN`).
    pub bin_var: &'static str,
    /// The workspace build (`env!("CARGO_BIN_EXE_<name>")`).
    pub workspace_build: &'static str,
    /// Device arguments for one socket (e.g. `["-l", "s8"]`).
    pub device_args: &'static [&'static str],
    /// Device arguments for `n` sockets (`-c n` is added by [`Subject::launch_sockets`]).
    pub device_args_for: fn(usize) -> Vec<String>,
    /// Queues the device has (for the frontend's handshake).
    pub num_queues: usize,
    /// Entries per queue the frontend sets up.
    pub queue_size: u16,
    /// Checks one correct answer on a connected frontend; panics on a wrong one.
    pub probe: fn(&mut crate::TestFrontend),
}

impl Subject {
    /// The binary under test ([`DaemonBinary::from_env`]); panics if the variable is set
    /// but unusable (test tooling: the test must not silently test another binary).
    #[allow(clippy::panic)]
    pub fn binary(&self) -> DaemonBinary {
        DaemonBinary::from_env(self.bin_var, self.workspace_build).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The frontend options for this device.
    pub fn frontend_options(&self) -> crate::FrontendOptions {
        crate::FrontendOptions {
            num_queues: self.num_queues,
            queue_size: self.queue_size,
            ..crate::FrontendOptions::default()
        }
    }

    /// The launcher of the binary under test with the device of one socket.
    pub fn launch(&self) -> Launch {
        self.launch_bare().args(self.device_args)
    }

    /// The launcher of the binary under test without device arguments (the test gives
    /// its own).
    pub fn launch_bare(&self) -> Launch {
        self.binary().launch().frontend(self.frontend_options())
    }

    /// Starts the daemon with the device of one socket (see [`Launch::start`]).
    pub fn start(&self) -> crate::daemon::Daemon {
        self.launch().start()
    }

    /// Runs the binary under test with `args` for a command line that makes it exit (see
    /// [`crate::daemon::run_to_exit`]).
    pub fn run_to_exit(&self, args: &[&str], timeout: Duration) -> Output {
        self.binary().run_to_exit(args, timeout)
    }

    /// The launcher with `-c n` and the devices of `n` sockets.
    pub fn launch_sockets(&self, n: usize) -> Launch {
        let args = (self.device_args_for)(n);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.binary()
            .launch()
            .args(&["-c", &n.to_string()])
            .args(&args)
            .sockets(n)
            .frontend(self.frontend_options())
    }
}

/// The whitespace-separated words of the variable `var` (unset: none). Set but empty, or
/// not UTF-8, is an error.
fn words(var: &str, value: Option<OsString>) -> Result<Vec<String>, BinaryError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let value = value
        .into_string()
        .map_err(|_not_utf8| BinaryError::NotUnicode {
            var: var.to_owned(),
        })?;
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return Err(BinaryError::Empty {
            var: var.to_owned(),
        });
    }
    Ok(words)
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
        let runner = Some("sh  -c".into());
        let b = DaemonBinary::from_values("X_BIN", None, runner, "echo through-runner").unwrap();
        assert_eq!(b.runner, ["sh", "-c"]);
        assert!(b.describe().ends_with("run by `sh -c`"), "{}", b.describe());
        let out = b.run_to_exit(&[], Duration::from_secs(5));
        assert_eq!(out.stdout, b"through-runner\n");
        let err = DaemonBinary::from_values("X_BIN", None, Some(" ".into()), "/ws/d").unwrap_err();
        assert!(matches!(err, BinaryError::Empty { .. }), "{err}");
    }

    #[test]
    fn extra_args_are_words() {
        assert!(words("X_ARGS", None).unwrap().is_empty());
        let w = words("X_ARGS", Some(" --seccomp  none ".into())).unwrap();
        assert_eq!(w, ["--seccomp", "none"]);
        let err = words("X_ARGS", Some("".into())).unwrap_err();
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
