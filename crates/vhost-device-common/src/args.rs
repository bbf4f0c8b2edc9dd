//! The options every daemon shares: the sockets (drop-in compatible with rust-vmm's
//! daemons), `--print-capabilities`, `--trace`, and the sandbox (`--seccomp`, `--sandbox`,
//! in the style of virtiofsd).

use std::num::NonZeroUsize;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::listener::SocketConfig;
use crate::sandbox::{SandboxConfig, SandboxMode, SeccompMode};

/// `-s/--socket-path`, `-c/--socket-count` and `--fd`; flatten into a daemon's `Args`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[group(skip)]
pub struct SocketArgs {
    /// Base path of the listening vhost-user sockets: PATH0 ... PATH{N-1} are created.
    ///
    /// The socket index is always appended, even for one socket. A stale socket file is
    /// replaced; one that a live process still listens on is refused. Exactly one of
    /// --socket-path and --fd is required.
    #[arg(
        short = 's',
        long = "socket-path",
        value_name = "PATH",
        required_unless_present = "fd",
        conflicts_with = "fd"
    )]
    pub socket_path: Option<PathBuf>,

    /// Serve an inherited listening Unix socket (e.g. systemd socket activation).
    ///
    /// FD is the number of a listening Unix stream socket inherited from the parent (3
    /// with systemd); it serves one guest, so --socket-count must be 1.
    #[arg(long = "fd", value_name = "FD")]
    pub fd: Option<RawFd>,

    /// Number of sockets (and guests) served at once.
    ///
    /// Creates PATH0 ... PATH{N-1}, each serving one guest at a time.
    #[arg(short = 'c', long = "socket-count", value_name = "N", default_value_t = NonZeroUsize::MIN)]
    pub socket_count: NonZeroUsize,
}

/// `--print-capabilities`, flattened into each daemon's `Args` so that `--help` and the man
/// page list it; [`crate::capabilities`] answers it before the command line is parsed.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[group(skip)]
pub struct CapabilitiesArgs {
    /// Print the vhost-user backend capabilities as JSON and exit.
    ///
    /// Prints {"type": "<device type>", "features": []} and exits 0, ignoring every other
    /// option.
    // Answered before the command line is parsed (see `capabilities`); declared here so that
    // --help lists it.
    #[arg(long = "print-capabilities")]
    pub print_capabilities: bool,
}

/// `--seccomp` and `--sandbox`, flattened into each daemon's `Args`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[group(skip)]
pub struct SandboxArgs {
    /// What happens to a system call outside the daemon's allowlist, once serving.
    ///
    /// kill (the default) ends the process with SIGSYS; log allows it and writes an audit
    /// record (dmesg); trap sends SIGSYS to the calling thread; none installs no filter.
    #[arg(long = "seccomp", value_enum, value_name = "ACTION", default_value_t = SeccompMode::Kill)]
    pub seccomp: SeccompMode,

    /// Confinement entered after setup: full (no new privileges, every capability dropped,
    /// Landlock, seccomp) or none (for debugging).
    #[arg(long = "sandbox", value_enum, value_name = "MODE", default_value_t = SandboxMode::Full)]
    pub sandbox: SandboxMode,
}

impl From<&SandboxArgs> for SandboxConfig {
    fn from(args: &SandboxArgs) -> Self {
        Self {
            seccomp: args.seccomp,
            sandbox: args.sandbox,
        }
    }
}

/// Why socket options were rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SocketArgsError {
    /// `--fd` is one socket; more cannot be served from it.
    #[error("--fd serves exactly one socket, but --socket-count is {0}")]
    FdWithCount(usize),
    /// Neither option was given (clap normally catches this).
    #[error("one of --socket-path or --fd is required")]
    Missing,
    /// Negative descriptor numbers are not descriptors.
    #[error("--fd {0} is not a file descriptor number")]
    BadFd(RawFd),
    /// Refuse to take over standard input, output or error as the listening socket.
    #[error("--fd {0} is a standard stream, not an inherited listening socket")]
    StdioFd(RawFd),
}

impl TryFrom<&SocketArgs> for SocketConfig {
    type Error = SocketArgsError;

    fn try_from(args: &SocketArgs) -> Result<Self, Self::Error> {
        match (&args.socket_path, args.fd) {
            (Some(base), None) => Ok(SocketConfig::Paths {
                base: base.clone(),
                count: args.socket_count,
            }),
            (None, Some(fd)) => {
                if args.socket_count.get() != 1 {
                    Err(SocketArgsError::FdWithCount(args.socket_count.get()))
                } else if fd < 0 {
                    Err(SocketArgsError::BadFd(fd))
                } else if fd <= 2 {
                    Err(SocketArgsError::StdioFd(fd))
                } else {
                    Ok(SocketConfig::Fd(fd))
                }
            }
            _ => Err(SocketArgsError::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct TestArgs {
        #[command(flatten)]
        sockets: SocketArgs,
    }

    fn parse(args: &[&str]) -> Result<SocketConfig, String> {
        let a = TestArgs::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        SocketConfig::try_from(&a.sockets).map_err(|e| e.to_string())
    }

    #[test]
    fn socket_path_with_count() {
        let c = parse(&["-s", "/tmp/x.sock", "-c", "3"]).unwrap();
        assert_eq!(c.count(), 3);
        assert_eq!(
            c.paths(),
            vec![
                PathBuf::from("/tmp/x.sock0"),
                PathBuf::from("/tmp/x.sock1"),
                PathBuf::from("/tmp/x.sock2")
            ]
        );
    }

    #[test]
    fn single_socket_still_gets_index_suffix() {
        let c = parse(&["--socket-path", "/run/i2c.sock"]).unwrap();
        assert_eq!(c.paths(), vec![PathBuf::from("/run/i2c.sock0")]);
    }

    #[test]
    fn fd_alone() {
        assert_eq!(parse(&["--fd", "3"]).unwrap(), SocketConfig::Fd(3));
    }

    #[test]
    fn rejected_combinations() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-s", "/x", "--fd", "3"]).is_err());
        assert!(
            parse(&["--fd", "3", "-c", "2"])
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(parse(&["-s", "/x", "-c", "0"]).is_err());
        assert!(parse(&["--fd", "-1"]).is_err());
        assert!(
            parse(&["--fd", "1"])
                .unwrap_err()
                .contains("standard stream")
        );
    }
}
