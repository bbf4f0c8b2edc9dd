//! vhost-user virtio-i2c device daemon. The device logic lives in `virtio-i2c-core`; the
//! daemon skeleton (command-line style, logging, signals, sockets, serving, error reporting)
//! in `vhost-device-common`. The modules, the same in both daemons:
//!
//! - [`args`]: the command line and its validation;
//! - [`backend`]: the device's part of the vhost-user backend (features, queue, the worker);
//! - [`chains`]: descriptor chains <-> the core crate;
//! - [`trace`]: `--trace` lines;
//! - [`host`]: host backends behind the core's `I2cAdapter` trait (`host::linux`,
//!   `host::sim`) and the router that gives the guest one bus.

pub mod args;
pub mod backend;
pub mod chains;
pub mod host;
pub mod trace;

use std::sync::Arc;

use vhost_device_common::daemon::Device;
use vhost_device_common::listener::SocketConfig;
use vhost_device_common::sandbox::{DeviceSyscalls, SandboxConfig};

use crate::args::{Args, Config, ConfigError};
use crate::backend::VirtioI2c;
use crate::host::{Router, SetupError};

/// Why the daemon refused to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A device could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The I2C daemon: one router over every configured device, shared by all sockets.
#[derive(Debug)]
pub struct I2cDaemon {
    router: Arc<Router>,
    trace: bool,
}

impl Device for I2cDaemon {
    const NAME: &'static str = "vhost-device-i2c";
    const DEVICE_TYPE: &'static str = "i2c";
    type Args = Args;
    type Config = Config;
    type Virtio = VirtioI2c;
    type Error = Error;
    const SYSCALLS: DeviceSyscalls = SYSCALLS;

    fn sandbox(args: &Args) -> SandboxConfig {
        SandboxConfig::from(&args.sandbox)
    }

    fn configure(args: Args) -> Result<(SocketConfig, Config), Error> {
        let config = Config::try_from(args)?;
        Ok((config.sockets.clone(), config))
    }

    fn open(config: Config, _sockets: &SocketConfig) -> Result<Self, Error> {
        let router = Router::open(&config.adapters, &config.simulated)?;
        Ok(I2cDaemon {
            router: Arc::new(router),
            trace: config.trace,
        })
    }

    fn virtio_device(&self, _index: usize) -> Result<VirtioI2c, Error> {
        Ok(VirtioI2c::new(Arc::clone(&self.router), self.trace))
    }
}

/// The ioctls of `/dev/i2c-N` the daemon issues while serving: those of host/linux.rs,
/// which owns their numbers.
pub const SYSCALLS: DeviceSyscalls = DeviceSyscalls {
    ioctls: host::linux::IOCTLS,
};
