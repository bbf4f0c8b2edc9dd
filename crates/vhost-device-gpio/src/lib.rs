//! vhost-user virtio-gpio device daemon. The device logic lives in `virtio-gpio-core`; the
//! daemon skeleton (command-line style, logging, signals, sockets, serving, error reporting)
//! in `vhost-device-common`. The modules, the same in both daemons:
//!
//! - [`args`]: the command line and its validation;
//! - [`backend`]: the device's part of the vhost-user backend (features, config space,
//!   queues, the worker);
//! - [`chains`]: descriptor chains <-> the core crate;
//! - [`trace`]: `--trace` lines;
//! - [`host`]: host backends behind the core's `GpioHost` trait (`host::linux`, the GPIO
//!   character device through gpiocdev, and `host::sim`).

pub mod args;
pub mod backend;
pub mod chains;
pub mod host;
pub mod trace;

use log::info;
use vhost_device_common::daemon::Device;
use vhost_device_common::listener::SocketConfig;
use vhost_device_common::sandbox::{DeviceSyscalls, Ioctl, SandboxConfig};
use virtio_gpio_core::device::NoLinesError;

use crate::args::{Args, Config, ConfigError};
use vhost_device_common::backend::Backend;

use crate::backend::{GpioBackend, VirtioGpio};
use crate::host::{Host, HostError, HostSource, OpenError};

/// Why the daemon refused to start, or a connection's backend could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line.
    #[error("invalid arguments")]
    Config(#[from] ConfigError),
    /// A GPIO device could not be opened.
    #[error("GPIO device unavailable")]
    Open(#[from] OpenError),
    /// The host chip could not be set up for a connection.
    #[error("cannot set up the host chip")]
    Host(#[from] HostError),
    /// The chip has no lines.
    #[error(transparent)]
    NoLines(#[from] NoLinesError),
    /// No device was configured for this socket.
    #[error("no GPIO device for socket {0}")]
    NoDevice(usize),
}

/// The GPIO daemon: one device per socket, opened at startup.
#[derive(Debug)]
pub struct GpioDaemon {
    sources: Vec<HostSource>,
    trace: bool,
}

impl GpioDaemon {
    /// A fresh device for one connection on socket `index`: every line released, no
    /// interrupt state.
    pub fn device_for(
        sources: &[HostSource],
        index: usize,
        trace: bool,
    ) -> Result<VirtioGpio<Host>, Error> {
        let source = sources.get(index).ok_or(Error::NoDevice(index))?;
        Ok(VirtioGpio::new(source.instantiate()?, trace)?)
    }

    /// [`GpioDaemon::device_for`] behind the backend a connection gets (for tests and fuzz
    /// targets that drive the backend directly).
    pub fn backend_for(
        sources: &[HostSource],
        index: usize,
        trace: bool,
    ) -> Result<GpioBackend<Host>, Error> {
        Self::device_for(sources, index, trace).map(Backend::new)
    }
}

impl Device for GpioDaemon {
    const NAME: &'static str = "vhost-device-gpio";
    const DEVICE_TYPE: &'static str = "gpio";
    type Args = Args;
    type Config = Config;
    type Virtio = VirtioGpio<Host>;
    type Error = Error;
    const SYSCALLS: DeviceSyscalls = SYSCALLS;

    fn sandbox(args: &Args) -> SandboxConfig {
        SandboxConfig::from(&args.sandbox)
    }

    fn configure(args: Args) -> Result<(SocketConfig, Config), Error> {
        let config = Config::try_from(args)?;
        Ok((config.sockets.clone(), config))
    }

    fn open(config: Config, sockets: &SocketConfig) -> Result<Self, Error> {
        // Every device is opened before any socket exists: a missing chip fails here.
        let sources = config
            .devices
            .iter()
            .map(|d| HostSource::open(*d))
            .collect::<Result<Vec<_>, _>>()?;
        let paths = sockets.paths();
        for (index, source) in sources.iter().enumerate() {
            match paths.get(index) {
                Some(p) => info!("{}: {}", p.display(), source.describe()),
                None => info!("inherited socket: {}", source.describe()),
            }
        }
        Ok(GpioDaemon {
            sources,
            trace: config.trace,
        })
    }

    fn virtio_device(&self, index: usize) -> Result<VirtioGpio<Host>, Error> {
        Self::device_for(&self.sources, index, self.trace)
    }
}

/// The GPIO uAPI v2 ioctls the daemon issues while serving (host/linux.rs): GET_LINE on the
/// chip opened at startup (a line request), the others on line request fds.
pub const SYSCALLS: DeviceSyscalls = DeviceSyscalls {
    ioctls: &[
        Ioctl {
            name: "GPIO_V2_GET_LINE_IOCTL",
            request: 0xc250_b407,
        },
        Ioctl {
            name: "GPIO_V2_LINE_SET_CONFIG_IOCTL",
            request: 0xc110_b40d,
        },
        Ioctl {
            name: "GPIO_V2_LINE_GET_VALUES_IOCTL",
            request: 0xc010_b40e,
        },
        Ioctl {
            name: "GPIO_V2_LINE_SET_VALUES_IOCTL",
            request: 0xc010_b40f,
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use gpiocdev_uapi::v2;

    /// `_IOWR(0xB4, nr, size)` as linux/gpio.h defines the v2 ioctls.
    fn iowr(nr: u32, size: usize) -> u32 {
        (3 << 30) | (u32::try_from(size).unwrap() << 16) | (0xb4 << 8) | nr
    }

    #[test]
    fn allowed_ioctls_match_the_uapi_structures() {
        let want = [
            iowr(0x07, size_of::<v2::LineRequest>()),
            iowr(0x0d, size_of::<v2::LineConfig>()),
            iowr(0x0e, size_of::<v2::LineValues>()),
            iowr(0x0f, size_of::<v2::LineValues>()),
        ];
        let got: Vec<u32> = SYSCALLS.ioctls.iter().map(|i| i.request).collect();
        assert_eq!(got, want);
    }
}
