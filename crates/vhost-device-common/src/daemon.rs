//! The daemon skeleton both daemons share: a device implements [`Device`] and its `main`
//! is `vhost_device_common::daemon::main::<MyDevice>()`.
//!
//! The skeleton owns, once for every daemon:
//! 1. `--print-capabilities`, answered before any other option is parsed;
//! 2. the command-line error style: one line, `NAME: message (try --help)`, status 2;
//! 3. logging set-up (`RUST_LOG`, default `info`);
//! 4. blocking SIGTERM/SIGINT/SIGHUP before any thread exists;
//! 5. validation ([`Device::configure`]), then opening the devices ([`Device::open`]), then
//!    binding the sockets: a bad option or device fails before any socket exists;
//! 6. entering the sandbox ([`crate::sandbox`], with [`Device::SYSCALLS`]) once the devices
//!    and sockets are open, before any thread exists;
//! 7. serving, one fresh device per connection ([`Device::virtio_device`]), each behind a
//!    [`crate::backend::Backend`] that owns the protections every backend needs;
//! 8. top-level error reporting: `NAME: error: message: source: ...` on one line, status 1.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::backend::VirtioDevice;
use crate::listener::{self, ListenerError, SocketConfig};
use crate::report::ErrorChain;
use crate::sandbox::{self, DeviceSyscalls, SandboxConfig, SandboxError};
use crate::serve::{self, ServeError};
use crate::{capabilities, logging, signals};

/// A vhost-user device daemon.
pub trait Device: Sized + Send + Sync + 'static {
    /// The program name, for messages and thread names.
    const NAME: &'static str;
    /// The virtio device type `--print-capabilities` reports (`"i2c"`, `"gpio"`).
    const DEVICE_TYPE: &'static str;
    /// The command line.
    type Args: Parser;
    /// The validated command line, before any device is opened.
    type Config;
    /// The virtio device one connection sees (served by a [`crate::backend::Backend`]).
    type Virtio: VirtioDevice;
    /// Why the command line or a device was refused.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The device's part of the seccomp allowlist (its ioctls).
    const SYSCALLS: DeviceSyscalls;

    /// The sandbox options (`--seccomp`, `--sandbox`) of the command line.
    fn sandbox(args: &Self::Args) -> SandboxConfig;

    /// Validates the command line: where to listen and what to serve. Opens nothing.
    fn configure(args: Self::Args) -> Result<(SocketConfig, Self::Config), Self::Error>;

    /// Opens every device (and logs what it found), before any socket exists.
    fn open(config: Self::Config, sockets: &SocketConfig) -> Result<Self, Self::Error>;

    /// A fresh device for a new connection on socket `index`: nothing of an earlier
    /// connection survives.
    fn virtio_device(&self, index: usize) -> Result<Self::Virtio, Self::Error>;
}

/// Why a daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    /// The command line or a device was refused.
    #[error(transparent)]
    Device(E),
    /// A socket could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenerError),
    /// The sandbox could not be entered.
    #[error("cannot enter the sandbox")]
    Sandbox(#[from] SandboxError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Validates, opens, binds and serves until a termination signal (then `Ok`).
pub fn run<D: Device>(args: D::Args) -> Result<(), RunError<D::Error>> {
    // Before any thread exists, so that every thread inherits the blocked set.
    let signals = signals::block_termination_signals().map_err(ServeError::Signals)?;
    let sandbox_config = D::sandbox(&args);
    let (sockets, config) = D::configure(args).map_err(RunError::Device)?;
    let device = Arc::new(D::open(config, &sockets).map_err(RunError::Device)?);
    let bound = listener::bind(&sockets)?;
    // Everything is open: from here on the process opens nothing and holds no privilege.
    sandbox::enter(&sandbox_config, &D::SYSCALLS, &bound)?;
    serve::run(D::NAME, bound, signals, move |index| {
        device.virtio_device(index)
    })?;
    Ok(())
}

/// Parses the command line in the skeleton's style: `--help`/`--version` print and exit 0;
/// an error is one line on stderr and exit status 2.
pub fn parse_args<A: Parser>(name: &str) -> Result<A, ExitCode> {
    match A::try_parse() {
        Ok(a) => Ok(a),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{name}: {} (try --help)", one_line(&e.to_string()));
            Err(ExitCode::from(2))
        }
    }
}

/// clap's message without the usage block, on one line.
fn one_line(text: &str) -> String {
    let message = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    match message.strip_prefix("error: ") {
        Some(m) => m.to_owned(),
        None => message,
    }
}

/// The whole `main` of a daemon.
pub fn main<D: Device>() -> ExitCode {
    capabilities::exit_if_requested(D::DEVICE_TYPE);
    let args = match parse_args::<D::Args>(D::NAME) {
        Ok(a) => a,
        Err(code) => return code,
    };
    logging::init();
    match run::<D>(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {}", D::NAME, ErrorChain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let text = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: x [OPTIONS]\n\nFor more information, try '--help'.\n";
        assert_eq!(one_line(text), "unexpected argument '--bogus' found");
    }
}
