//! vhost-user virtio-i2c device daemon: the vhost-user backend, the Linux host adapters,
//! the simulated devices and the command line. The device logic itself lives in
//! `virtio-i2c-core`.

pub mod args;
pub mod bus;
pub mod device;
pub mod linux;
pub mod sim;

use std::convert::Infallible;
use std::sync::Arc;

use vhost_device_common::sandbox::{self, DeviceSyscalls, Ioctl, SandboxError};
use vhost_device_common::serve::{self, ServeError};
use vhost_device_common::{listener, logging};

use crate::args::{Args, Config, ConfigError};
use crate::bus::{Bus, SetupError};
use crate::device::I2cBackend;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A device could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A socket could not be bound.
    #[error(transparent)]
    Listen(#[from] listener::ListenerError),
    /// The sandbox could not be entered.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The ioctls of `/dev/i2c-N` the daemon issues while serving (linux.rs).
pub const SYSCALLS: DeviceSyscalls = DeviceSyscalls {
    ioctls: &[
        Ioctl {
            name: "I2C_SLAVE",
            request: 0x0703,
        },
        Ioctl {
            name: "I2C_FUNCS",
            request: 0x0705,
        },
        Ioctl {
            name: "I2C_RDWR",
            request: 0x0707,
        },
        Ioctl {
            name: "I2C_SMBUS",
            request: 0x0720,
        },
    ],
};

/// Runs the daemon with parsed arguments until SIGTERM/SIGINT.
pub fn run(args: Args) -> Result<(), Error> {
    logging::init();
    let signals = serve::block_termination_signals()?;
    let config = Config::try_from(args)?;
    // Devices first, sockets second: a bad device fails before anything listens.
    let bus = Arc::new(Bus::open(&config)?);
    let sockets = listener::bind(&config.sockets)?;
    sandbox::enter(&config.sandbox, &SYSCALLS, &sockets)?;
    serve::run("vhost-device-i2c", sockets, signals, move |_socket| {
        Ok::<_, Infallible>(I2cBackend::new(Arc::clone(&bus)))
    })?;
    Ok(())
}
